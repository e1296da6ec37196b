"""Redis Sentinel in the core Redis service (issue #14): the nodes find
the master by asking the sentinels (redis_sentinel, redis_master_name),
on their event loops, as the sentinel client guidelines say.

A real master, a replica and a sentinel (`redis-server --sentinel`, in
Debian's redis-server package) on loopback ports: state is shared
through the master the sentinel names; after SENTINEL FAILOVER, or the
master killed, the nodes follow the new master within a bound and the
state is still shared; with every sentinel down the fallback applies.
A fake sentinel (a thread here) plays what a real one does only by
accident: a stale answer naming a replica (ROLE refuses it), a master
made a replica without its clients killed (READONLY), an unknown name,
a host name for an address, a +switch-master push on demand."""

import os
import socket
import subprocess
import threading
import time
import unittest

from pstest import PstTestCase, RUN, free_port, wait_for
from pstredis import REDIS, RedisPeer
from test_redis import MODULES, NODE

NAME = "mymaster"
LIMITS = "greylist off; limit_msg_rate 2/h; limit_backend redis;"


class SentinelPeer(RedisPeer):
    """redis-server --sentinel on 127.0.0.1:<port>, watching one master
    with a quorum of 1 and short delays (down after 1 s)."""

    def __init__(self, name, master_port, args=()):
        self.master_port = master_port
        super().__init__(name + "-sentinel", args)

    def start(self):
        conf = os.path.join(self.dir, "sentinel.conf")
        if not os.path.exists(conf):      # a restart keeps what it learnt
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 1\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 10000\n"
                        % (self.port, self.dir, NAME, self.master_port,
                           NAME, NAME))
        self.proc = subprocess.Popen(
            [REDIS, conf, "--sentinel", "--logfile",
             os.path.join(self.dir, "sentinel.log")] + self.args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(self.answers, 10, what="redis-server --sentinel")
        except AssertionError:
            self.stop()
            raise

    def replica_ready(self):
        """The sentinel knows a replica that is in sync: FAILOVER can
        promote it."""
        for r in self.call("SENTINEL", "replicas", NAME) or []:
            d = dict(zip(r[::2], r[1::2]))
            if (d.get("flags") == "slave"
                    and d.get("master-link-status") == "ok"):
                return True
        return False


def resp(v):
    """RESP2 bytes of a str, int, None (null array) or list."""
    if v is None:
        return b"*-1\r\n"
    if isinstance(v, int):
        return b":%d\r\n" % v
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(resp(x) for x in v)
    b = v.encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


class FakeSentinel:
    """Answers SENTINEL get-master-addr-by-name with self.answer (an
    (ip, port) pair, or None for the null reply), AUTH against
    self.password, SUBSCRIBE; push() sends a +switch-master message to
    the subscribers.  Counts the questions."""

    def __init__(self, answer=None, password=None):
        self.answer = answer
        self.password = password
        self.asked = 0
        self.subscribers = []
        self.conns = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.running = True
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def _accept(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _serve(self, c):
        f = c.makefile("rb")
        authed = self.password is None
        try:
            while self.running:
                line = f.readline()
                if not line.startswith(b"*"):
                    return
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:-2].decode())
                cmd = args[0].upper()
                if cmd == "AUTH":
                    authed = args[-1] == self.password
                    c.sendall(b"+OK\r\n" if authed else
                              b"-WRONGPASS invalid username-password pair\r\n")
                elif not authed:
                    c.sendall(b"-NOAUTH Authentication required.\r\n")
                elif cmd == "SENTINEL":
                    with self.lock:
                        self.asked += 1
                        a = self.answer
                    c.sendall(resp(None if a is None
                                   else [a[0], str(a[1])]))
                elif cmd == "SUBSCRIBE":
                    c.sendall(resp(["subscribe", args[1], 1]))
                    with self.lock:
                        self.subscribers.append(c)
                else:
                    c.sendall(b"-ERR unknown command\r\n")
        except (OSError, ValueError):
            pass

    def push(self, text):
        with self.lock:
            subs = list(self.subscribers)
        for c in subs:
            try:
                c.sendall(resp(["message", "+switch-master", text]))
            except OSError:
                pass

    def stop(self):
        self.running = False
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
        self.thread.join(5)


class SentinelCase(PstTestCase):

    def peer(self, p):
        self._peers.append(p)
        return p

    def pair(self):
        """A master and its replica, in sync."""
        now = ["--repl-diskless-sync-delay", "0"]   # not 5 s
        m = self.peer(RedisPeer(self.tag() + "-m", now))
        r = self.peer(RedisPeer(self.tag() + "-r", now + [
            "--replicaof", "127.0.0.1", str(m.port)]))
        wait_for(lambda: "master_link_status:up"
                 in r.call("INFO", "replication"), 10, what="replica sync")
        return m, r

    def tag(self):
        return self.id().split(".")[-1]

    def node(self, name, sentinels, conf=LIMITS, top="", wait=True):
        srv = self.server(NODE % (name, conf), modules=MODULES, workers=1,
                          name=self.tag() + "_" + name,
                          extra_top="redis_sentinel %s;\n"
                                    "redis_master_name %s;\n"
                                    "redis_timeout 200ms;\n%s"
                                    % (" ".join(sentinels), NAME, top))
        if wait:
            srv.wait_log(r"worker: \w+: redis %s@127\.0\.0\.1:\d+: connected"
                         % NAME)
        return srv

    def connected(self, srv, port, count=2, timeout=10):
        # the worker and the queue process each have a connection
        srv.wait_log(r"redis %s@127\.0\.0\.1:%d: connected" % (NAME, port),
                     timeout, count)

    def mail(self, srv, source=None):
        with srv.raw(source=source) as c:
            c.cmd("EHLO client.test")
            return c.cmd("MAIL FROM:<s@client.test>")[0]


class RealSentinelTest(SentinelCase):

    def test_shared_state_then_failover(self):
        m, r = self.pair()
        s = self.peer(SentinelPeer(self.tag(), m.port))
        dead = "127.0.0.1:%d" % free_port()
        # the first address answers nothing: the next one is asked, and
        # moved to the front for the next discovery
        a = self.node("a", [dead, s.address])
        b = self.node("b", [dead, s.address])
        self.connected(a, m.port)
        self.connected(b, m.port)
        a.wait_log(r"redis sentinel %s: cannot connect" % dead)
        a.wait_log(r"redis sentinel %s: watching \+switch-master"
                   % s.address)

        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(self.mail(b), 451)       # only Redis knows
        self.assertEqual(m.keys(), ["postern:limit:msg:127.0.0.1"])

        wait_for(s.replica_ready, 15, what="the sentinel to see the replica")
        wait_for(lambda: r.keys() == m.keys(), 5, what="replication")
        t0 = time.monotonic()
        self.assertEqual(s.call("SENTINEL", "FAILOVER", NAME), "OK")
        # the push makes the nodes leave the old master at once: without
        # it they would write to it until the sentinel demotes it (8 s
        # or more later, when it kills its clients)
        self.connected(a, r.port, timeout=6)
        self.connected(b, r.port, timeout=6)
        took = time.monotonic() - t0
        self.assertLess(took, 6.0)
        a.wait_log(r"redis sentinel %s: \+switch-master \"%s\" to "
                   r"127\.0\.0\.1:%d" % (s.address, NAME, r.port))

        # the state came over with the replica, new state goes there
        self.assertEqual(self.mail(b), 451)
        self.assertEqual(self.mail(a, source="127.0.0.2"), 250)
        self.assertEqual(r.keys(), ["postern:limit:msg:127.0.0.1",
                                    "postern:limit:msg:127.0.0.2"])
        # the sentinel that answered went first: the dead one was tried
        # once per process only, at the first discovery
        for srv in (a, b):
            self.assertEqual(srv.log().count("redis sentinel %s: cannot"
                                             " connect" % dead), 2)

    def test_master_killed(self):
        m, r = self.pair()
        s = self.peer(SentinelPeer(self.tag(), m.port))
        a = self.node("a", [s.address])
        self.connected(a, m.port)
        self.assertEqual(self.mail(a), 250)
        wait_for(s.replica_ready, 15, what="the sentinel to see the replica")
        # replication is asynchronous: a write the master took just
        # before it died may be lost with it (docs/SCALING.md)
        wait_for(lambda: r.keys() == ["postern:limit:msg:127.0.0.1"], 5,
                 what="the write to reach the replica")

        t0 = time.monotonic()
        m.proc.kill()
        m.proc.wait(5)
        # served at once meanwhile, by the node's own bucket
        self.assertEqual(self.mail(a), 250)
        self.assertLess(time.monotonic() - t0, 3.0)
        a.wait_log(r"redis %s@127\.0\.0\.1:%d: connection lost"
                   % (NAME, m.port))
        # down after 1 s, then the failover: the nodes follow
        self.connected(a, r.port, timeout=15)
        self.assertLess(time.monotonic() - t0, 15.0)
        # Redis counted one message of 2 before: one more is allowed
        self.assertEqual(self.mail(a, source="127.0.0.2"), 250)
        self.assertEqual(r.keys(), ["postern:limit:msg:127.0.0.1",
                                    "postern:limit:msg:127.0.0.2"])

    def test_all_sentinels_down_then_back(self):
        m, r = self.pair()
        pw = os.path.join(RUN, "sentinel-pw-%d" % os.getpid())
        with open(pw, "w") as f:
            f.write("s3ntinel\n")
        self.addCleanup(os.unlink, pw)
        s = self.peer(SentinelPeer(self.tag(), m.port,
                                   ["--requirepass", "s3ntinel"]))
        a = self.node("a", [s.address],
                      top="redis_sentinel_password_file %s;" % pw)
        self.connected(a, m.port)

        s.stop()
        m.stop()
        t0 = time.monotonic()
        # the local bucket decides, at once
        self.assertEqual([self.mail(a) for _ in range(3)], [250, 250, 451])
        self.assertLess(time.monotonic() - t0, 5.0)
        a.wait_log(r"redis %s: no sentinel reachable; state falls back"
                   % NAME)

        m.start()
        s.start()
        self.connected(a, m.port, count=4, timeout=15)
        self.assertEqual(self.mail(a), 250)       # an empty Redis again
        self.assertEqual(m.keys(), ["postern:limit:msg:127.0.0.1"])


class FakeSentinelTest(SentinelCase):

    def fake(self, answer=None, password=None):
        return self.peer(FakeSentinel(answer, password))

    def test_stale_sentinel_names_a_replica(self):
        m, r = self.pair()
        f = self.fake(("127.0.0.1", r.port))
        a = self.node("a", [f.address], wait=False)
        a.wait_log(r"redis %s@127\.0\.0\.1:%d: the sentinels' master says"
                   r" ROLE slave: asking again" % (NAME, r.port))
        # the fallback meanwhile
        self.assertEqual([self.mail(a) for _ in range(3)], [250, 250, 451])
        self.assertNotRegex(a.log(), r"redis \S+: connected")
        # the sentinel learns: the next discovery finds the master
        f.answer = ("127.0.0.1", m.port)
        self.connected(a, m.port, timeout=10)
        self.assertEqual(self.mail(a, source="127.0.0.2"), 250)
        self.assertEqual(m.keys(), ["postern:limit:msg:127.0.0.2"])

    def test_readonly_master_asks_again(self):
        # a master made a replica without its clients killed: the first
        # write says READONLY, the node asks the sentinels again
        m, r = self.pair()
        f = self.fake(("127.0.0.1", m.port))
        a = self.node("a", [f.address])
        self.connected(a, m.port)
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(r.call("REPLICAOF", "NO", "ONE"), "OK")
        self.assertEqual(m.call("REPLICAOF", "127.0.0.1", r.port), "OK")
        f.answer = ("127.0.0.1", r.port)
        self.mail(a)                  # on the replica: READONLY, fallback
        a.wait_log(r"redis %s@127\.0\.0\.1:%d: READONLY: no longer the"
                   r" master" % (NAME, m.port))
        self.connected(a, r.port, count=1, timeout=10)
        self.assertEqual(self.mail(a, source="127.0.0.2"), 250)
        self.assertIn("postern:limit:msg:127.0.0.2", r.keys())

    def test_switch_master_push(self):
        m, r = self.pair()
        f = self.fake(("127.0.0.1", m.port))
        a = self.node("a", [f.address])
        self.connected(a, m.port)
        a.wait_log(r"redis sentinel %s: watching \+switch-master"
                   % f.address, count=2)
        self.assertEqual(r.call("REPLICAOF", "NO", "ONE"), "OK")
        f.answer = ("127.0.0.1", r.port)
        asked = f.asked
        # another master's move is not ours
        f.push("other 127.0.0.1 1 127.0.0.1 2")
        time.sleep(0.3)
        self.assertEqual(f.asked, asked)
        t0 = time.monotonic()
        f.push("%s 127.0.0.1 %d 127.0.0.1 %d" % (NAME, m.port, r.port))
        self.connected(a, r.port, timeout=5)
        self.assertLess(time.monotonic() - t0, 2.0)
        a.wait_log(r"redis %s@127\.0\.0\.1:%d: the sentinels moved the"
                   r" master: reconnecting" % (NAME, m.port))
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(r.keys(), ["postern:limit:msg:127.0.0.1"])
        self.assertEqual(m.keys(), [])

    def test_unknown_name_and_names_for_addresses(self):
        unknown = self.fake(None)
        named = self.fake(("redis.example.test", 6379))
        a = self.node("a", [unknown.address, named.address], wait=False)
        a.wait_log(r"redis sentinel %s: does not know master \"%s\""
                   % (unknown.address, NAME))
        a.wait_log(r"redis sentinel %s: its answer for master \"%s\" is not"
                   r" an IP address" % (named.address, NAME))
        a.wait_log(r"redis %s: no sentinel named a usable master" % NAME)
        self.assertEqual([self.mail(a) for _ in range(3)], [250, 250, 451])

        b = self.node("b", [unknown.address], wait=False)
        b.wait_log(r"redis %s: the sentinels do not know this master name"
                   % NAME)

    def test_silent_sentinel_is_skipped(self):
        # a sentinel that takes the connection and never answers costs
        # redis_sentinel_timeout (300ms), then the next one is asked
        m = self.peer(RedisPeer(self.tag() + "-m"))
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)                  # never accepted, never read
        self.addCleanup(silent.close)
        f = self.fake(("127.0.0.1", m.port))
        quiet = "127.0.0.1:%d" % silent.getsockname()[1]
        t0 = time.monotonic()
        a = self.node("a", [quiet, f.address])
        self.connected(a, m.port)
        a.wait_log(r"redis sentinel %s: no answer within"
                   r" redis_sentinel_timeout" % quiet)
        self.assertLess(time.monotonic() - t0, 10.0)
        self.assertEqual(self.mail(a), 250)
        self.assertEqual(m.keys(), ["postern:limit:msg:127.0.0.1"])

    def test_sentinel_auth(self):
        f = self.fake(("127.0.0.1", free_port()), password="right")
        pw = os.path.join(RUN, "fake-pw-%d" % os.getpid())
        with open(pw, "w") as fh:
            fh.write("wrong\n")
        self.addCleanup(os.unlink, pw)
        a = self.node("a", [f.address], wait=False,
                      top="redis_sentinel_password_file %s;" % pw)
        a.wait_log(r"redis sentinel %s: AUTH refused: WRONGPASS"
                   % f.address)
        a.wait_log(r"redis %s: no sentinel reachable" % NAME)
        self.assertEqual(f.asked, 0)


class SentinelConfigTest(SentinelCase):

    def check(self, top, expect):
        srv = self.server(NODE % ("a", LIMITS), modules=MODULES,
                          start=False, extra_top=top)
        r = srv.run_tool("-t")
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, expect)

    def test_errors_name_the_line(self):
        conf = r"postern\.conf:(\d+)"
        self.check("redis_server 127.0.0.1:6379;\n"
                   "redis_sentinel 127.0.0.1:26379;\n",
                   conf + r": \"redis_sentinel\" directive cannot be used"
                   r" with \"redis_server\"")
        self.check("redis_sentinel 127.0.0.1:26379;\n"
                   "redis_server 127.0.0.1:6379;\n",
                   conf + r": \"redis_server\" directive cannot be used"
                   r" with \"redis_sentinel\"")
        self.check("redis_timeout 1s;\nredis_sentinel 127.0.0.1;\n",
                   conf + r": \"redis_sentinel\" needs"
                   r" \"redis_master_name\"")
        self.check("redis_master_name mymaster;\nredis_server 127.0.0.1;\n",
                   r"\"redis_master_name\" and \"redis_sentinel_\*\" need"
                   r" \"redis_sentinel\"")
        self.check("redis_sentinel sentinel.example.test:26379;\n",
                   conf + r": \"redis_sentinel sentinel\.example\.test:26379"
                   r"\" must be an IP address")
        self.check("redis_sentinel 127.0.0.1;\nredis_master_name 'a b';\n",
                   conf + r": \"redis_master_name\" directive must be"
                   r" printable ASCII without spaces")

    def test_line_of_the_sentinel_directive(self):
        srv = self.server(NODE % ("a", LIMITS), modules=MODULES,
                          start=False,
                          extra_top="redis_timeout 1s;\n"
                                    "redis_sentinel 127.0.0.1 [::1]:5;\n")
        r = srv.run_tool("-t")
        with open(srv.conffile) as f:
            line = [i + 1 for i, l in enumerate(f)
                    if l.startswith("redis_sentinel")][0]
        self.assertIn("postern.conf:%d: \"redis_sentinel\" needs" % line,
                      r.stderr)


if __name__ == "__main__":
    unittest.main()
