"""pstredis -- a real redis-server started by a test (Debian's
redis-server package), the state several Postern nodes share (issue
#14), and a small RESP client to look at it.

    r = RedisPeer("name")                       # 127.0.0.1, a free port
    ... "redis_server %s;" % r.address ...
    r.keys("postern:*"); r.call("PTTL", key)
    r.stop(); r.start()                         # an empty Redis again
    r.pause(); r.resume()                       # a Redis that hangs

In a network namespace (tests/integration/pstnet.py):

    RedisPeer("name", host="10.201.0.1", port=6379,
              launcher=hub.launcher, socket_factory=hub.socket)

No persistence: a restart is an empty Redis, as after a crash without
AOF.  Every wait is bounded.
"""

import os
import shutil
import signal
import subprocess

from pstest import RUN, free_port, open_connection, stop_process, wait_for

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisPeer:
    """redis-server on host:port, its files under objs/run/NAME-redis."""

    def __init__(self, name, args=(), host="127.0.0.1", port=None,
                 launcher=(), socket_factory=None):
        self.host = host
        self.port = port or free_port()
        self.launcher = list(launcher)
        self.socket_factory = socket_factory
        self.dir = os.path.join(RUN, name + "-redis")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.args = list(args)
        self.proc = None
        self.start()

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self.proc = subprocess.Popen(
            self.launcher
            + [REDIS, "--port", str(self.port), "--bind", self.host,
               "--save", "", "--appendonly", "no", "--dir", self.dir,
               "--logfile", os.path.join(self.dir, "redis.log")] + self.args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(self.answers, 10, what="redis-server")
        except AssertionError:
            stop_process(self.proc)       # not left running
            raise

    def answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("redis-server exited")
        try:
            # any answer will do: NOAUTH too, with the default user off
            return self.call("PING") is not None
        except OSError:
            return False

    def call(self, *args, auth=True):
        """One command over RESP; the reply as str/int/list/None."""
        cmds = []
        if auth and "--requirepass" in self.args:
            cmds.append(("AUTH", self.args[self.args.index("--requirepass")
                                            + 1]))
        cmds.append(args)
        with open_connection(self.host, self.port, 5,
                             socket_factory=self.socket_factory) as s:
            f = s.makefile("rb")
            for c in cmds:
                s.sendall(b"*%d\r\n" % len(c) + b"".join(
                    b"$%d\r\n%s\r\n" % (len(str(a).encode()), str(a).encode())
                    for a in c))
            for _ in cmds:
                r = self._read(f)
            return r

    def _read(self, f):
        line = f.readline().rstrip(b"\r\n")
        t, rest = line[:1], line[1:].decode()
        if t == b"+":
            return rest
        if t == b"-":
            return RuntimeError(rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise AssertionError("bad RESP line %r" % line)

    def keys(self, pattern="*"):
        return sorted(self.call("KEYS", pattern))

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc is not None:
            self.resume()
            stop_process(self.proc)
            self.proc = None
