"""pstest -- helpers for Postern's integration tests.

Every test starts the real objs/postern on 127.0.0.1 with a configuration
written for it, in a private directory under objs/run/, and talks to it
with real clients (smtplib, swaks, smtp-source, openssl s_client) and real
peers (dnsmasq...) that the test starts itself.  Nothing here touches the
network beyond loopback, and every wait is bounded.

    from pstest import Server, PstTestCase

    class T(PstTestCase):
        def test_x(self):
            srv = self.server('''
                smtp { server { listen {port}; local_domains example.test; } }
            ''')
            with srv.smtp() as c:
                c.ehlo("client.test")
                ...
            self.assertEqual(srv.queue_count(), 1)

A configuration template may use {port}, {port2} ... (free loopback ports,
already "127.0.0.1:N"), {portnum}, {dir} (the test's directory), {spool},
{modules} (objs/modules), {root} (the source tree) and {resolver}.
The top-level lines (load_module, daemon, pid, spool_dir, error_log) are
added unless the template has its own (set preamble=False).

RawClient.reply() checks the syntax of every reply line (RFC 5321 4.2.1)
and keeps the raw bytes in last_raw; replies(n) reads a pipelined batch,
pending() shows what the server sent unasked.  Server.transaction() runs
MAIL/RCPT/DATA on a RawClient; wait_log(), wait_tmp_empty() and
check_queue_consistent() look at the effects; workers(), worker_for()
and connection_pids() tell which process serves what (ps, ss -p).
"""

import base64
import glob
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import threading
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OBJS = os.path.join(ROOT, "objs")
POSTERN = os.path.join(OBJS, "postern")
MODULES = os.path.join(OBJS, "modules")
RUN = os.path.join(OBJS, "run")
DEFAULT_MODULES = ("store_spool", "policy_relay")
# PST_VALGRIND=1 runs every server under valgrind (slow: use -k to pick)
VALGRIND = os.environ.get("PST_VALGRIND") == "1"


QUEUE_ID = re.compile(r"^[0-9A-V]{18}$")
SPOOL_HEADER = re.compile(rb"^POSTERN-SPOOL [23] (\d{20}) (\d{20})\n")


def queue_path(spool, qid):
    """Where queue/XY/ID lives (docs/SPOOL.md, format 3)."""
    return os.path.join(spool, "queue", qid[-2:], qid)


def read_queue_file(path):
    """A format 3 (or 2) queue file: 58-byte header, message, envelope."""
    with open(path, "rb") as f:
        data = f.read()
    m = SPOOL_HEADER.match(data)
    assert m, "no format 3 header in %s: %r" % (path, data[:60])
    mlen, elen = int(m.group(1)), int(m.group(2))
    assert len(data) == 58 + mlen + elen, \
        "%s: size %d, header says %d" % (path, len(data), 58 + mlen + elen)
    return data[58:58 + mlen], data[58 + mlen:].decode()


_handed_out = set()
_handed_lock = threading.Lock()


def free_ports(n):
    """n distinct TCP ports on 127.0.0.1 that nothing listens on now.

    Every probe socket stays bound until all n are chosen (closed one by
    one, the kernel may hand the same port out twice in a row), and this
    process never returns a port twice."""
    socks, ports = [], []
    try:
        with _handed_lock:
            while len(ports) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
                if port not in _handed_out:
                    ports.append(port)
            _handed_out.update(ports)
            return ports
    finally:
        for s in socks:
            s.close()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    """Poll pred() until it is true; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def stop_workers(pids):
    """SIGSTOP the workers and wait until each is stopped, so that no
    connection can still be handed to one of them on its way out of
    epoll_wait()."""
    for p in pids:
        os.kill(int(p), signal.SIGSTOP)

    def stopped():
        for p in pids:
            with open("/proc/%d/stat" % int(p)) as f:
                if f.read().rsplit(")", 1)[1].split()[0] not in "tT":
                    return False
        return True
    wait_for(stopped, 10, what="workers stopped")


def continue_workers(pids):
    for p in pids:
        os.kill(int(p), signal.SIGCONT)



def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def plain(user, password, authzid=""):
    """An AUTH PLAIN response."""
    return b64("%s\0%s\0%s" % (authzid, user, password))


def passwd_line(user, password, *opts):
    """A users-file line made by "postern passwd"."""
    p = subprocess.run([POSTERN, "passwd"] + list(opts) + [user],
                       input=password + "\n", capture_output=True,
                       text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("postern passwd: " + p.stderr)
    return p.stdout.strip()



def have(cmd):
    return shutil.which(cmd) is not None or os.path.exists(cmd)


def open_connection(host, port, timeout=10.0, source=None,
                    socket_factory=None):
    """A TCP connection to host:port (from the source address when
    given).  socket_factory makes the unconnected socket: one of a
    network namespace (pstnet.Netns.socket) reaches peers there."""
    if socket_factory is None:
        return socket.create_connection((host, port), timeout=timeout,
                                        source_address=(source, 0)
                                        if source else None)
    s = socket_factory()
    try:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s


class _SMTP(smtplib.SMTP):
    """smtplib over a connection that Server.open_connection() makes."""

    def __init__(self, opener, host, port, timeout):
        self._opener = opener
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host, port, timeout):
        return self._opener(port, timeout)


class RawClient:
    """A line-level SMTP client for what smtplib will not send: pipelined
    bytes, bare LF, overlong lines, partial writes, early talk."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, greet=True,
                 source=None, sock=None):
        self.sock = sock or open_connection(host, port, timeout, source)
        self.timeout = timeout
        self.buf = b""
        self.last_raw = b""
        self.greeting = self.reply() if greet else None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by server; buffered %r"
                                      % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        """One (possibly multi-line) reply as (code, [lines]).  The raw
        bytes of it are kept in self.last_raw.  Every line must be
        "DDD-text" or, the last one, "DDD text", with the same code
        (RFC 5321 4.2.1)."""
        lines = []
        raw = b""
        code = None
        while True:
            ln = self.line()
            raw += ln
            if (len(ln) < 5 or not ln.endswith(b"\r\n")
                    or not ln[:3].isdigit() or ln[:1] not in b"2345"):
                raise AssertionError("malformed reply line %r" % ln)
            if code is not None and ln[:3] != code:
                raise AssertionError("code changes inside a reply: %r"
                                     % (raw,))
            code = ln[:3]
            lines.append(ln[4:-2].decode("utf-8", "replace"))
            if ln[3:4] == b" ":
                self.last_raw = raw
                return int(code), lines
            if ln[3:4] != b"-":
                raise AssertionError("malformed reply line %r" % ln)

    def replies(self, n):
        """n replies in a row (after a pipelined write)."""
        return [self.reply() for _ in range(n)]

    def pending(self, wait=0.3):
        """Bytes the server sent that nobody read yet (waits a little);
        b"" when there is nothing.  Used to prove there is no extra
        reply."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, BlockingIOError):
            pass
        except ConnectionResetError:
            pass
        finally:
            self.sock.settimeout(self.timeout)
        data, self.buf = self.buf, b""
        return data

    def cmd(self, text):
        self.send(text + "\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.reply()

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class Server:
    """One postern instance on loopback, with its own directory."""

    def __init__(self, name, conf, preamble=True, modules=DEFAULT_MODULES,
                 workers=2, extra_top="", resolver=None, env=None,
                 host="127.0.0.1", port=None, launcher=(),
                 socket_factory=None):
        """host, port: where clients connect (default: the first of the
        free loopback ports, {port}); launcher: the argv that runs
        objs/postern (["ip", "netns", "exec", NS] for a node in a
        network namespace); socket_factory: makes the sockets of
        clients that reach host (pstnet.Netns.socket)."""
        self.name = name
        self.host = host
        self.launcher = list(launcher)
        self.socket_factory = socket_factory
        self.dir = os.path.join(RUN, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        self.logfile = os.path.join(self.dir, "error.log")
        self.pidfile = os.path.join(self.dir, "postern.pid")
        self.conffile = os.path.join(self.dir, "postern.conf")
        self.ports = free_ports(4)
        self.port = port or self.ports[0]
        self.proc = None
        self.env = env
        self.resolver = resolver
        self.write_conf(conf, preamble, modules, workers, extra_top)

    def subst(self, text):
        values = {
            "port": "127.0.0.1:%d" % self.ports[0],
            "port2": "127.0.0.1:%d" % self.ports[1],
            "port3": "127.0.0.1:%d" % self.ports[2],
            "port4": "127.0.0.1:%d" % self.ports[3],
            "portnum": str(self.ports[0]),
            "dir": self.dir,
            "spool": self.spool,
            "modules": MODULES,
            "root": ROOT,
            "resolver": self.resolver or "",
        }
        return re.sub(r"\{(\w+)\}",
                      lambda m: values.get(m.group(1), m.group(0)), text)

    def write_conf(self, conf, preamble=True, modules=DEFAULT_MODULES,
                   workers=2, extra_top=""):
        self._conf_args = (conf, preamble, modules, workers, extra_top)
        top = ""
        self.nworkers = workers if preamble else None
        if preamble:
            top = "".join("load_module %s/%s.so;\n" % (MODULES, m)
                          for m in modules)
            top += ("daemon off;\nworker_processes %d;\n"
                    "error_log %s info;\npid %s;\nspool_dir %s;\n"
                    % (workers, self.logfile, self.pidfile, self.spool))
            if self.resolver:
                top += "resolver %s;\n" % self.resolver
        with open(self.conffile, "w") as f:
            f.write(top + self.subst(extra_top) + "\n" + self.subst(conf))

    # -- life cycle ---------------------------------------------------

    def start(self, wait=True, expect_fail=False):
        """Start the server; with wait, until it greets on every worker.

        The ports came from free_ports(), which cannot stop another test
        process from binding one of them in between: a first start that
        fails only for that reason is retried on fresh ports."""
        for attempt in range(3):
            try:
                return self._start(wait, expect_fail)
            except AssertionError:
                if (self.proc.poll() is None or attempt == 2
                        or getattr(self, "_started", False)
                        or "Address already in use" not in self.log()):
                    raise
            for f in ("stderr", "error"):
                os.rename(os.path.join(self.dir, f + ".log"),
                          os.path.join(self.dir, "%s.%d.log" % (f, attempt)))
            self.ports = free_ports(4)
            self.port = self.ports[0]
            self.write_conf(*self._conf_args)

    def _start(self, wait, expect_fail):
        self._close_output()
        self.output = open(os.path.join(self.dir, "stderr.log"), "ab")
        argv = self.launcher + [POSTERN, "-p", ROOT + "/", "-c",
                                self.conffile, "-f"]
        if VALGRIND:
            # every process of the server (forks stay under valgrind);
            # memory errors only -- leak reports at exit are noise here
            argv = ["valgrind", "-q", "--error-exitcode=99",
                    "--leak-check=no", "--track-fds=no",
                    "--log-file=" + os.path.join(self.dir, "valgrind.%p")
                    ] + argv
        self.proc = subprocess.Popen(
            argv, stdout=self.output, stderr=self.output, env=self.env,
            start_new_session=True)
        if expect_fail:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                raise AssertionError("server started but should not have")
            return self.proc.returncode
        if wait:
            self.wait_ready()
            self._started = True
            if self.nworkers:
                # every worker up, with its title (workers() needs it)
                wait_for(lambda: len(self.workers()) == self.nworkers, 15,
                         what="%d workers" % self.nworkers)
        return None

    def wait_ready(self, port=None, timeout=15.0):
        port = port or self.port

        def greets():
            if self.proc.poll() is not None:
                raise AssertionError("postern exited with %s:\n%s"
                                     % (self.proc.returncode, self.stderr()))
            try:
                with self.open_connection(port, timeout=2) as s:
                    s.settimeout(5)
                    return s.recv(512).startswith(b"220")
            except OSError:
                return False
        wait_for(greets, timeout, what="postern on port %d" % port)

    def send_signal(self, sig):
        os.kill(self.master_pid(), sig)

    def reload(self):
        self.send_signal(signal.SIGHUP)

    def master_pid(self):
        return self.proc.pid

    def role_pids(self, role):
        """PIDs of the running children of a role, from postern status
        (None when it does not answer)."""
        r = self.run_tool("status", "--json")
        if r.returncode != 0:
            return None
        return [p["pid"] for p in json.loads(r.stdout)["processes"]
                if p["role"] == role and p["state"] == "running"]

    def workers(self):
        """PIDs of the master's current children."""
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid",
                              str(self.master_pid())],
                             capture_output=True, text=True).stdout
        if VALGRIND:
            # valgrind keeps its own argv: no process titles to go by,
            # but the control socket knows each child's role
            pids = self.role_pids("worker")
            if pids is not None:
                return pids
            return [int(l.split()[0]) for l in out.splitlines()]
        return [int(l.split()[0]) for l in out.splitlines()
                if "worker process" in l and "shutting down" not in l]

    def queue_process(self):
        """PID of the master's running queue process, or None."""
        if VALGRIND:
            pids = self.role_pids("queue")
            return pids[0] if pids else None
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid",
                              str(self.master_pid())],
                             capture_output=True, text=True).stdout
        for l in out.splitlines():
            if "queue process" in l and "shutting down" not in l:
                return int(l.split()[0])
        return None

    @property
    def control(self):
        """The default control socket (SPOOL/control)."""
        return os.path.join(self.spool, "control")

    def connection_pids(self):
        """{worker pid: established connections on the first port}
        (from ss -p)."""
        out = subprocess.run(["ss", "-tnpH", "state", "established",
                              "sport", "= :%d" % self.port],
                             capture_output=True, text=True).stdout
        counts = {}
        for pid in re.findall(r"pid=(\d+)", out):
            counts[int(pid)] = counts.get(int(pid), 0) + 1
        return counts

    def worker_for(self, client):
        """PID of the worker serving a RawClient (from ss -p)."""
        cport = client.sock.getsockname()[1]

        def find():
            out = subprocess.run(
                ["ss", "-tnpH", "state", "established", "( sport = :%d and "
                 "dport = :%d )" % (self.port, cport)],
                capture_output=True, text=True).stdout
            m = re.search(r"pid=(\d+)", out)
            return int(m.group(1)) if m else None
        return wait_for(find, 5, what="the worker of port %d" % cport)

    @staticmethod
    def rss_kb(pid):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def children(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid",
                              str(self.master_pid())],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        if self.proc is None or self.proc.poll() is not None:
            self._close_output()
            return self.proc.returncode if self.proc else None
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
            raise AssertionError("postern did not stop within %.0fs"
                                 % timeout)
        finally:
            self._close_output()
        return self.proc.returncode

    def reap_group(self):
        """SIGKILL whatever is left of the server's process group (its
        session): workers a test orphaned on purpose, or a server whose
        start failed half-way.  Called after every test."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _close_output(self):
        out = getattr(self, "output", None)
        if out is not None and not out.closed:
            out.close()

    def kill_all(self):
        """kill -9 of the whole process group (master and children)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        # children get SIGQUIT from PDEATHSIG when not killed; make sure
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(["pgrep", "-f", self.conffile],
                                 capture_output=True, text=True).stdout
            if not out.strip():
                return
            for p in out.split():
                try:
                    os.kill(int(p), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            time.sleep(0.05)

    # -- observation --------------------------------------------------

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stderr(self):
        try:
            with open(os.path.join(self.dir, "stderr.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def queue_ids(self):
        """The IDs of the messages in queue/XY/ (format 3)."""
        return sorted(f for f in self.queue_files() if QUEUE_ID.match(f))

    def queue_count(self):
        return len(self.queue_ids())

    def queue_file(self, qid):
        """(message bytes, envelope text) of queue/XY/ID, checked against
        the header (docs/SPOOL.md)."""
        return read_queue_file(queue_path(self.spool, qid))

    def message(self, qid):
        return self.queue_file(qid)[0]

    def envelope(self, qid):
        return self.queue_file(qid)[1]

    def body(self, qid):
        """The stored message without our Received: header."""
        data = self.message(qid)
        assert data.startswith(b"Received: "), data[:80]
        # our header is folded with TAB continuation lines
        lines = data.split(b"\r\n")
        i = 1
        while lines[i].startswith(b"\t"):
            i += 1
        return b"\r\n".join(lines[i:])

    def tmp_files(self):
        """Files being received: spool/tmp/PID/* (and anything stray
        directly in spool/tmp)."""
        found = []
        for root, dirs, files in os.walk(os.path.join(self.spool, "tmp")):
            found += [os.path.join(root, f) for f in files]
        return found

    def queue_files(self):
        """Every file name in queue/ and its XY/ directories (names only:
        IDs, ID.state, anything else found there)."""
        found = []
        q = os.path.join(self.spool, "queue")
        for root, dirs, files in os.walk(q):
            found += files
        return sorted(found)

    def wait_tmp_empty(self, timeout=10.0):
        """spool/tmp empties once the server has seen a session end;
        give it a bounded moment."""
        try:
            wait_for(lambda: not self.tmp_files(), timeout,
                     what="spool/tmp to be empty")
        except AssertionError:
            raise AssertionError("spool/tmp not empty: %r"
                                 % self.tmp_files())

    def wait_log(self, pattern, timeout=10.0, count=1):
        """Wait until the error log has count lines matching the regular
        expression; returns the matches."""
        rx = re.compile(pattern)

        def found():
            m = [l for l in self.log().splitlines() if rx.search(l)]
            return m if len(m) >= count else None
        try:
            return wait_for(found, timeout, what="log line /%s/" % pattern)
        except AssertionError:
            raise AssertionError("no %d log line(s) matching /%s/ in %s:\n%s"
                                 % (count, pattern, self.logfile,
                                    self.log()[-3000:]))

    def check_queue_consistent(self):
        """Only queue files (and their states) in queue/XY/, each
        complete: header, message, an envelope that names the same ID."""
        q = os.path.join(self.spool, "queue")
        for root, dirs, files in os.walk(q):
            if root == q:
                assert not files, "flat files in queue/: %r" % files
                continue
            for f in files:
                # ID, its state, a state being written (a running queue
                # process renames it over ID.state)
                assert QUEUE_ID.match(f[:18]) and (
                    f[18:] in ("", ".state")
                    or f[18:].startswith(".state-new-")), \
                    "not a queue file: " + f
                assert os.path.basename(root) == f[16:18], \
                    "%s in the wrong directory %s" % (f, root)
        for f in self.queue_ids():
            msg, env = self.queue_file(f)
            assert env.startswith(("POSTERN-ENVELOPE 2\n",
                                   "POSTERN-ENVELOPE 1\n")), env[:40]
            assert env.endswith("\nend\n"), env[-40:]
            assert "\nid %s\n" % f in env, env[:80]

    # -- clients -------------------------------------------------------

    def open_connection(self, port=None, timeout=10.0, source=None):
        """A connected socket to the server (from source when given)."""
        return open_connection(self.host, port or self.port, timeout,
                               source, self.socket_factory)

    def smtp(self, timeout=10.0, port=None):
        if self.socket_factory is None:
            return smtplib.SMTP(self.host, port or self.port,
                                timeout=timeout)
        return _SMTP(lambda p, t: self.open_connection(p, t), self.host,
                     port or self.port, timeout)

    def raw(self, greet=True, timeout=10.0, port=None, source=None):
        return RawClient(port or self.port, timeout=timeout, greet=greet,
                         sock=self.open_connection(port, timeout, source))

    def transaction(self, c, body, sender="sender@client.test",
                    rcpts=("user@example.test",), helo=None):
        """MAIL, RCPT..., DATA and the (already dot-stuffed, CRLF-ended)
        body over a RawClient; returns the reply to the final dot."""
        if helo:
            r = c.cmd("EHLO " + helo)
            assert r[0] == 250, r
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r[0] == 250, r
        for rc in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rc)
            assert r[0] == 250, r
        r = c.cmd("DATA")
        assert r[0] == 354, r
        c.send(body + b".\r\n")
        return c.reply()

    def send(self, sender="sender@client.test", rcpts=("user@example.test",),
             body=b"Subject: test\r\n\r\nhello\r\n"):
        with self.smtp() as c:
            c.ehlo("client.test")
            return c.sendmail(sender, list(rcpts), body)

    def run_tool(self, *args):
        return subprocess.run([POSTERN, "-p", ROOT + "/", "-c",
                               self.conffile] + list(args),
                              capture_output=True, text=True, timeout=30)


class Dnsmasq:
    """dnsmasq on 127.0.0.1:<port> serving the records a test needs.
    records: list of dnsmasq options, e.g. "--mx-host=dest.test,mx.dest.test,10".
    """

    def __init__(self, records, name):
        self.port = free_port_udp()
        # not the server's directory: Server() empties that one
        self.dir = os.path.join(RUN, name + "-dns")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.logfile = os.path.join(self.dir, "dnsmasq.log")
        binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        args = [binary, "--no-daemon", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces",
                "--no-resolv", "--no-hosts", "--log-queries",
                "--log-facility=" + self.logfile, "--user=root" if
                os.geteuid() == 0 else "--user=" + os.environ.get("USER", ""),
                "--pid-file="] + list(records)
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(self.answers, 10, what="dnsmasq")

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("dnsmasq exited")
        return os.path.exists(self.logfile) and \
            "started" in open(self.logfile).read()

    def queries(self):
        try:
            return open(self.logfile).read()
        except FileNotFoundError:
            return ""

    def stop(self):
        stop_process(self.proc)


def stop_process(proc, timeout=5):
    """End a peer: SIGTERM, then SIGKILL if it is still there after
    timeout seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def free_port_udp():
    """A port free for UDP and for TCP on 127.0.0.1: dnsmasq binds
    both, and fails to start when the TCP one is taken."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind(("127.0.0.1", port))
        except OSError:
            continue
        with _handed_lock:
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise AssertionError("no port free for both UDP and TCP")


class PstTestCase(unittest.TestCase):
    """Starts servers and peers through self.server()/self.dnsmasq() and
    stops them (and checks the log for crashes) after each test."""

    def setUp(self):
        self._servers = []
        self._peers = []

    def tearDown(self):
        for p in self._peers:
            p.stop()
        for s in self._servers:
            try:
                s.stop()
            except AssertionError:
                pass
            finally:
                s.reap_group()
            log = s.log() + s.stderr()
            # a worker that died on a signal is a bug, whatever the test
            bad = [l for l in log.splitlines()
                   if "exited on signal" in l and "signal 9" not in l
                   and "signal 15" not in l]
            if bad and not getattr(self, "allow_worker_crash", False):
                self.fail("worker crashed:\n" + "\n".join(bad))
            for kw in ("AddressSanitizer", "runtime error:"):
                if kw in log:
                    self.fail("sanitizer report in %s:\n%s" % (s.dir, log))
            for vg in glob.glob(os.path.join(s.dir, "valgrind.*")):
                with open(vg) as f:
                    report = f.read()
                if report.strip():
                    self.fail("valgrind report %s:\n%s" % (vg, report))

    def server(self, conf, start=True, name=None, **kw):
        name = name or self.id().split(".", 1)[-1].replace(".", "_")
        srv = Server(name, conf, **kw)
        self._servers.append(srv)
        if start:
            srv.start()
        return srv

    def dnsmasq(self, records, name=None):
        name = name or self.id().split(".", 1)[-1].replace(".", "_")
        d = Dnsmasq(records, name)
        self._peers.append(d)
        return d

    def assertReply(self, reply, code, text=None):
        got_code, lines = reply if isinstance(reply[1], list) else \
            (reply[0], [reply[1].decode() if isinstance(reply[1], bytes)
                        else reply[1]])
        self.assertEqual(got_code, code, "reply %r" % (reply,))
        if text is not None:
            self.assertIn(text, " ".join(lines))


BASIC = """
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test localhost;
    }
}
"""
