#!/usr/bin/python3
"""soak -- a bounded soak run of the real server (make soak).

Starts objs/postern on loopback (store_spool, policy_relay, 2 workers,
its own spool under objs/soak/) and for SOAK_SECS seconds (default 600)
drives it with well-behaved load (smtp-source, and our own senders that
record every "250 ... queued as ID" with a digest of the message) and
with abusive clients (garbage, overlong lines, disconnects mid-DATA and
mid-BDAT, pipelined floods, slow trickles, AUTH without TLS, RSET storms,
clients that never read, drops right after the final dot).

The run has two halves.  The first churns: a reload every minute and one
worker killed with SIGKILL.  The second is steady: no reload, so that
the same two workers live long enough for their memory to be judged.
Between the halves the load pauses, the server reloads and the new
workers' open files are counted: the baseline they must return to when
the load stops at the end.

At the end, after a graceful stop, it asserts:
  1. every acknowledged message is in queue/, whole and byte for byte;
     nothing stored that was not acknowledged, except messages whose
     client went away after the final dot (or whose worker was killed
     then); spool/tmp/ and corrupt/ are empty;
  2. the steady workers' RSS did not grow from the first third of the
     samples (after warm-up) to the last by more than 2 MiB and 20%;
  3. their open descriptors are back at the baseline once the load stops;
  4. the master lived, no worker died on a signal but the one killed,
     no alert/crit/emerg line in the log;
  5. a fresh session still gets 220 and a message through;
and that no reply the server owed took longer than REPLY_TIMEOUT and
none broke the protocol (an overlong line accepted, AUTH without TLS).
Exit status 0 when all hold; otherwise every failure is printed.
"""

import base64
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
OBJS = os.path.join(ROOT, "objs")
POSTERN = os.path.join(OBJS, "postern")
MODULES = os.path.join(OBJS, "modules")
DIR = os.path.join(OBJS, "soak")
SPOOL = os.path.join(DIR, "spool")
CONF = os.path.join(DIR, "postern.conf")
LOG = os.path.join(DIR, "error.log")
SMTP_SOURCE = "/usr/sbin/smtp-source"

SECS = int(os.environ.get("SOAK_SECS") or 600)
SAMPLE_EVERY = 10.0
REPLY_TIMEOUT = 60.0            # a reply the server owes; longer is a hang
SESSION_LIMIT = 90.0            # any one client session, whatever it does
RSS_LIMIT_KB = 2048             # growth allowed: both this and ...
RSS_LIMIT_PCT = 20.0            # ... this much must be exceeded to fail

TRACKED = "soak@client.test"    # our counting senders (and the slow one)
SOURCE = "s@client.test"        # smtp-source
DOTDROP = "abuse-dotdrop@client.test"   # may be stored: left after the dot
NOREAD = "abuse-noread@client.test"     # may be stored: never read the 250
QUEUED = re.compile(rb"^250 2\.0\.0 Ok: queued as ([0-9A-V]{18})")
QUEUE_ID = re.compile(r"^[0-9A-V]{18}$")
SPOOL_HEADER = re.compile(rb"^POSTERN-SPOOL [23] (\d{20}) (\d{20})\n")

CONF_TEXT = """\
load_module {modules}/store_spool.so;
load_module {modules}/policy_relay.so;
daemon off;
worker_processes 2;
error_log {log} info;
pid {dir}/postern.pid;
spool_dir {spool};

smtp {{
    hostname mx.soak.test;
    max_connections_per_ip 1000;
    server {{
        listen 127.0.0.1:{port};
        local_domains example.test;
    }}
}}
"""


class Hang(Exception):
    pass


class Closed(Exception):
    pass


# -- what happened ------------------------------------------------------

class Ledger:
    """Every message of the counting senders, by token: its digest and
    what became of it (refused, in doubt after the dot, acknowledged)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next = 0
        self.sha = {}
        self.state = {}         # token -> "open"|"indoubt"|"refused"|qid
        self.acked = {}         # qid -> token

    def new(self):
        with self.lock:
            self.next += 1
            self.state[self.next] = "open"
            return self.next

    def set(self, tok, state):
        with self.lock:
            self.state[tok] = state
            if QUEUE_ID.match(state):
                self.acked[state] = tok

    def count(self, what):
        with self.lock:
            if what == "acked":
                return len(self.acked)
            return sum(1 for v in self.state.values() if v == what)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.kinds = {}         # kind -> {outcome: n}
        self.hangs = []
        self.bad = []           # replies that break the protocol
        self.notes = []
        self.source_acked = 0
        self.source_doubt = 0   # sessions of smtp-source runs that failed
        self.source_runs = [0, 0]
        self.sent = {DOTDROP: 0, NOREAD: 0}

    def outcome(self, kind, what):
        with self.lock:
            d = self.kinds.setdefault(kind, {})
            d[what] = d.get(what, 0) + 1

    def hang(self, kind, what):
        with self.lock:
            self.hangs.append("%s: %s (t=%.0fs)" % (kind, what, now()))

    def note(self, text):
        with self.lock:
            self.notes.append("t=%4.0fs %s" % (now(), text))
        print("soak: t=%4.0fs %s" % (now(), text), flush=True)


T0 = time.monotonic()
ledger = Ledger()
stats = Stats()
stop_load = threading.Event()       # end of the run
pause_load = threading.Event()      # between the halves


def now():
    return time.monotonic() - T0


# -- a client connection --------------------------------------------------

class Conn:
    def __init__(self, port, kind):
        self.kind = kind
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.settimeout(REPLY_TIMEOUT)
        self.buf = b""
        self.deadline = time.monotonic() + SESSION_LIMIT

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.s.sendall(data)
        except socket.timeout:
            raise Hang("send blocked for %.0fs" % REPLY_TIMEOUT)
        except OSError as e:
            raise Closed(str(e))

    def recv(self, what):
        try:
            chunk = self.s.recv(65536)
        except socket.timeout:
            raise Hang("no %s within %.0fs" % (what, REPLY_TIMEOUT))
        except OSError as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("closed by server")
        self.buf += chunk

    def reply(self, what="reply"):
        """(code, last line as bytes, all lines)."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                self.recv(what)
            ln, self.buf = self.buf.split(b"\n", 1)
            lines.append(ln.rstrip(b"\r"))
            if len(ln) < 4 or ln[3:4] != b"-":
                break
        try:
            code = int(lines[-1][:3])
        except ValueError:
            raise AssertionError("malformed reply %r" % lines)
        return code, lines[-1], lines

    def cmd(self, text, what=None):
        self.send(text + "\r\n")
        return self.reply(what or text.split(" ")[0])

    def until_closed(self, limit=30.0):
        """Read and drop whatever comes until the server closes; a Hang
        when it has not within limit seconds."""
        end = time.monotonic() + limit
        self.s.settimeout(1.0)
        while time.monotonic() < end:
            try:
                if not self.s.recv(65536):
                    return
            except socket.timeout:
                continue
            except OSError:
                return
        raise Hang("connection not closed within %.0fs" % limit)

    def close(self, reset=False):
        try:
            if reset:
                self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
            self.s.close()
        except OSError:
            pass


def run_session(kind, fn, port):
    """One client session of any kind, its outcome counted."""
    c = None
    try:
        c = Conn(port, kind)
        outcome = fn(c) or "ok"
    except Hang as e:
        stats.hang(kind, str(e))
        outcome = "hang"
    except Closed:
        outcome = "closed"
    except OSError as e:
        outcome = "error " + type(e).__name__
    except AssertionError as e:
        with stats.lock:
            stats.bad.append("%s: %s (t=%.0fs)" % (kind, e, now()))
        outcome = "bad reply"
    finally:
        if c is not None:
            c.close()
    stats.outcome(kind, outcome)


# -- message bodies --------------------------------------------------------

def make_body(tok, size):
    """(on the wire: dot-stuffed, as stored: unstuffed), both CRLF."""
    lines = [b"Subject: soak %d" % tok, b"X-Soak-Token: %d" % tok, b""]
    n = 0
    while n < size:
        ln = bytes(random.choice(b"abcdefghij KLMNOP.0123456789")
                   for _ in range(random.randint(0, 120)))
        if random.random() < 0.05:
            ln = b"." + ln
        lines.append(ln)
        n += len(ln) + 2
    plain = b"\r\n".join(lines) + b"\r\n"
    wire = b"\r\n".join(b"." + ln if ln.startswith(b".") else ln
                        for ln in lines) + b"\r\n"
    return wire, plain


def body_size():
    r = random.random()
    if r < 0.6:
        return random.randint(100, 2000)
    if r < 0.95:
        return random.randint(2000, 40000)
    return random.randint(40000, 400000)


def strip_received(msg):
    """The stored message without our Received: header (folded with
    TAB continuation lines)."""
    if not msg.startswith(b"Received: "):
        return None
    lines = msg.split(b"\r\n")
    i = 1
    while i < len(lines) and lines[i].startswith(b"\t"):
        i += 1
    return b"\r\n".join(lines[i:])


# -- well-behaved senders ----------------------------------------------------

def tracked_session(c, nmsgs=None, slow=False):
    code, _, _ = c.reply("greeting")
    if code != 220:
        return "greeting %d" % code
    if slow:
        c.send = trickle(c.send)
    code, _, lines = c.cmd("EHLO soak.client.test")
    if code != 250:
        return "ehlo %d" % code
    ext = b" ".join(lines).upper()
    chunking = b"CHUNKING" in ext
    pipelining = b"PIPELINING" in ext
    for _ in range(nmsgs or random.randint(1, 5)):
        size = random.randint(50, 600) if slow else body_size()
        tok = ledger.new()
        wire, plain = make_body(tok, size)
        with ledger.lock:
            ledger.sha[tok] = hashlib.sha256(plain).hexdigest()
        env = ["MAIL FROM:<%s>" % TRACKED,
               "RCPT TO:<u%d@example.test>" % (tok % 50)]
        bdat = chunking and random.random() < 0.3
        if not bdat:
            env.append("DATA")
        if pipelining and random.random() < 0.5:
            c.send("".join(x + "\r\n" for x in env))
            codes = [c.reply(x.split(":")[0])[0] for x in env]
        else:
            codes = [c.cmd(x, x.split(":")[0])[0] for x in env]
        want = [250, 250] + ([] if bdat else [354])
        if codes != want:
            ledger.set(tok, "refused")
            if codes[-1] == 354:
                c.send(".\r\n")
                c.reply("reply to an empty message")
            c.cmd("RSET")
            continue
        if bdat:
            pieces = []
            rest = plain
            while len(rest) > 30000 and random.random() < 0.7:
                cut = random.randint(1, 30000)
                pieces.append(rest[:cut])
                rest = rest[cut:]
            for p in pieces:
                c.send(b"BDAT %d\r\n" % len(p) + p)
                code, _, _ = c.reply("BDAT chunk")
                if code != 250:
                    break
            ledger.set(tok, "indoubt")
            c.send(b"BDAT %d LAST\r\n" % len(rest) + rest)
        else:
            c.send(wire)
            ledger.set(tok, "indoubt")
            c.send(".\r\n")
        code, last, _ = c.reply("reply to the end of data")
        m = QUEUED.match(last)
        if code == 250 and m:
            ledger.set(tok, m.group(1).decode())
        else:
            ledger.set(tok, "refused")
            stats.note("refused: %r" % last)
    c.cmd("QUIT")
    return "ok"


def trickle(send):
    """Wrap a send: a few bytes at a time with pauses (a slow client)."""
    def slow_send(data):
        if isinstance(data, str):
            data = data.encode()
        i = 0
        while i < len(data):
            n = random.randint(1, 7)
            send(data[i:i + n])
            i += n
            time.sleep(random.uniform(0.002, 0.03))
    return slow_send


def tracked_loop(port):
    while not stop_load.is_set():
        if pause_load.is_set():
            time.sleep(0.2)
            continue
        run_session("tracked", tracked_session, port)


def source_loop(port):
    """smtp-source again and again; -c prints a counter of completed
    messages, the last value is what one run got acknowledged."""
    while not stop_load.is_set():
        if pause_load.is_set():
            time.sleep(0.2)
            continue
        n, sessions = random.choice([200, 500, 1000]), 20
        try:
            p = subprocess.run([SMTP_SOURCE, "-c", "-s", str(sessions),
                                "-m", str(n), "-l", "4096", "-f", SOURCE,
                                "-t", "u@example.test",
                                "127.0.0.1:%d" % port],
                               capture_output=True, timeout=120)
            out, err, rc = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out, err, rc = e.stdout or b"", b"", "timeout"
            stats.hang("smtp-source", "run of %d not done in 120s" % n)
        counts = re.findall(rb"(\d+)\r", out)
        done = int(counts[-1]) if counts else 0
        with stats.lock:
            stats.source_acked += done
            if rc == 0 and done == n:
                stats.source_runs[0] += 1
            else:
                stats.source_runs[1] += 1
                stats.source_doubt += sessions
        if rc != 0:
            stats.note("smtp-source exit %s after %d of %d: %s" % (
                rc, done, n, err.decode(errors="replace").strip()[-200:]))
        stats.outcome("smtp-source", "ok" if rc == 0 else "failed")
        time.sleep(random.uniform(0.5, 2.0))


# -- abusive clients ----------------------------------------------------------
#
# Each takes a fresh Conn, does one kind of harm and returns an outcome.
# A reply the server owes must come within REPLY_TIMEOUT (else: Hang);
# being closed on is fine for all of them.

def greet(c):
    code, _, _ = c.reply("greeting")
    if code != 220:
        raise Closed("greeting %d" % code)
    c.cmd("EHLO abuse.client.test")


def abuse_garbage(c):
    greet(c)
    for _ in range(random.randint(1, 30)):
        ln = bytes(random.randint(1, 255) for _ in
                   range(random.randint(1, 300))).replace(b"\n", b"")
        c.send((ln or b"x") + random.choice([b"\r\n", b"\n"]))
        code, _, _ = c.reply("reply to garbage")
        if code == 421:
            c.until_closed()
            return "421"


def abuse_overlong(c):
    greet(c)
    n = random.choice([3000, 70000, 1 << 20])
    code, _, _ = c.cmd("MAIL FROM:<" + "a" * n + "@client.test>",
                       "reply to an overlong command")
    if code != 500:
        raise AssertionError("overlong command: %d, not 500" % code)
    code, _, _ = c.cmd("NOOP")
    if code != 250:
        raise AssertionError("NOOP after an overlong line: %d" % code)
    # an overlong line in the message: refused at the end, never stored
    c.cmd("MAIL FROM:<abuse-long@client.test>")
    c.cmd("RCPT TO:<u@example.test>")
    code, _, _ = c.cmd("DATA")
    if code != 354:
        return "data %d" % code
    c.send(b"Subject: long\r\n\r\n" + b"x" * random.choice(
        [70000, 300000]) + b"\r\n.\r\n")
    code, last, _ = c.reply("reply to a message with an overlong line")
    if code == 250:
        raise AssertionError("overlong message line accepted: %r" % last)
    c.cmd("QUIT")


def abuse_middata(c):
    greet(c)
    c.cmd("MAIL FROM:<abuse-middata@client.test>")
    c.cmd("RCPT TO:<u@example.test>")
    code, _, _ = c.cmd("DATA")
    if code != 354:
        return "data %d" % code
    wire, _ = make_body(0, random.randint(0, 100000))
    c.send(wire[:random.randint(0, len(wire))])
    if random.random() < 0.3:
        time.sleep(random.uniform(0.1, 3))
    c.close(reset=random.random() < 0.5)


def abuse_midbdat(c):
    greet(c)
    c.cmd("MAIL FROM:<abuse-midbdat@client.test>")
    c.cmd("RCPT TO:<u@example.test>")
    if random.random() < 0.5:
        c.send(b"BDAT 1000\r\n" + b"y" * 1000)
        c.reply("reply to BDAT")
    n = random.randint(1, 200000)
    c.send(b"BDAT %d LAST\r\n" % n + b"z" * random.randint(0, n - 1))
    if random.random() < 0.3:
        time.sleep(random.uniform(0.1, 3))
    c.close(reset=random.random() < 0.5)


def abuse_flood(c):
    """A pipelined flood without waiting: the server must answer in
    order, stop at its limits and close."""
    greet(c)
    cmds = []
    for _ in range(random.randint(50, 2000)):
        cmds.append(random.choice([
            "NOOP", "RSET", "HELP", "VRFY u@example.test",
            "MAIL FROM:<abuse-flood@client.test>", "RCPT TO:<u@example.test>",
            "RCPT TO:<u@relay.invalid>", "EHLO again.test", "XYZZY",
            "MAIL FROM:<bad", "BDAT x"]))
    cmds.append("QUIT")
    c.send("".join(x + "\r\n" for x in cmds))
    c.until_closed(REPLY_TIMEOUT)


def abuse_auth(c):
    greet(c)
    for _ in range(random.randint(1, 30)):
        code, _, _ = c.cmd(random.choice([
            "AUTH PLAIN " + base64.b64encode(b"\0alice\0secret").decode(),
            "AUTH LOGIN", "AUTH CRAM-MD5", "AUTH PLAIN", "AUTH XOAUTH2 xx",
            "AUTH " + "A" * 500]), "reply to AUTH")
        if code == 334:         # a mechanism went on: cancel it
            c.cmd("*", "reply to a cancelled AUTH")
        elif code == 421:
            c.until_closed()
            return "421"
        elif code < 500:
            raise AssertionError("AUTH without TLS answered %d" % code)


def abuse_rset(c):
    greet(c)
    pipelined = random.random() < 0.5
    for i in range(random.randint(10, 400)):
        if i % 20 == 0:
            c.cmd("MAIL FROM:<abuse-rset@client.test>")
        if pipelined:
            c.send("RSET\r\n" * 10)
            codes = [c.reply("reply to RSET")[0] for _ in range(10)]
        else:
            codes = [c.cmd("RSET")[0]]
        if 421 in codes:
            c.until_closed()
            return "421"


def abuse_noread(c):
    """Commands and a message, and never a reply read: the server's
    output backs up; we leave after a few seconds."""
    c.s.settimeout(10)
    burst = ("EHLO noread.test\r\nMAIL FROM:<%s>\r\nRCPT TO:<u@example.test>"
             "\r\nRSET\r\nHELP\r\n" % NOREAD) * random.randint(10, 3000)
    try:
        c.s.sendall(burst.encode())
        if random.random() < 0.5:
            wire, _ = make_body(0, random.randint(100, 5000))
            c.s.sendall(("MAIL FROM:<%s>\r\nRCPT TO:<u@example.test>\r\n"
                         "DATA\r\n" % NOREAD).encode() + wire + b".\r\n")
            with stats.lock:
                stats.sent[NOREAD] += 1
            c.s.sendall(b"NOOP\r\n" * random.randint(1, 50000))
    except (socket.timeout, OSError):
        pass
    time.sleep(random.uniform(0.5, 5))
    c.close(reset=random.random() < 0.5)


def abuse_dotdrop(c):
    greet(c)
    c.cmd("MAIL FROM:<%s>" % DOTDROP)
    c.cmd("RCPT TO:<u@example.test>")
    code, _, _ = c.cmd("DATA")
    if code != 354:
        return "data %d" % code
    wire, _ = make_body(0, random.randint(100, 20000))
    with stats.lock:
        stats.sent[DOTDROP] += 1
    c.send(wire + b".\r\n")
    c.close(reset=random.random() < 0.5)


def abuse_halfclose(c):
    greet(c)
    c.cmd("MAIL FROM:<abuse-halfclose@client.test>")
    c.send("RCPT TO:<u@example.test>\r\n")
    c.s.shutdown(socket.SHUT_WR)
    c.until_closed()


def abuse_early(c):
    """Talks before the greeting."""
    c.send("EHLO early.test\r\nMAIL FROM:<abuse-early@client.test>\r\n")
    for _ in range(3):
        c.reply("reply to an early talker")
    c.cmd("QUIT")


def abuse_slow(c):
    return tracked_session(c, nmsgs=random.randint(1, 2), slow=True)


ABUSE = [("garbage", abuse_garbage, 3), ("overlong", abuse_overlong, 2),
         ("middata", abuse_middata, 3), ("midbdat", abuse_midbdat, 3),
         ("flood", abuse_flood, 2), ("auth", abuse_auth, 2),
         ("rset", abuse_rset, 2), ("noread", abuse_noread, 2),
         ("dotdrop", abuse_dotdrop, 2), ("halfclose", abuse_halfclose, 1),
         ("early", abuse_early, 1), ("slow", abuse_slow, 1)]


def abuse_loop(port):
    kinds = [(k, f) for k, f, w in ABUSE for _ in range(w)]
    while not stop_load.is_set():
        if pause_load.is_set():
            time.sleep(0.2)
            continue
        kind, fn = random.choice(kinds)
        run_session(kind, fn, port)
        time.sleep(random.uniform(0, 0.2))


# -- the server ----------------------------------------------------------------

def postern(*args, timeout=30):
    return subprocess.run([POSTERN, "-p", ROOT + "/", "-c", CONF]
                          + list(args), capture_output=True, text=True,
                          timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workers(master):
    """{pid: title} of the master's children that are current workers."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(master)],
                         capture_output=True, text=True).stdout
    return [int(ln.split()[0]) for ln in out.splitlines()
            if "worker process" in ln and "shutting down" not in ln]


def children(master):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)],
                         capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return None


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def wait_until(pred, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return pred()


def greets(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(5)
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


def established(port):
    out = subprocess.run(["ss", "-tnH", "state", "established",
                          "( sport = :%d or dport = :%d )" % (port, port)],
                         capture_output=True, text=True).stdout
    return len(out.splitlines())


# -- the end: the spool and the log ------------------------------------------------

def read_queue_file(path):
    with open(path, "rb") as f:
        data = f.read()
    m = SPOOL_HEADER.match(data)
    if not m:
        return None, None
    mlen, elen = int(m.group(1)), int(m.group(2))
    if len(data) != 58 + mlen + elen:
        return None, None
    return data[58:58 + mlen], data[58 + mlen:].decode(errors="replace")


def check_spool(fail, summary):
    qdir = os.path.join(SPOOL, "queue")
    # format 3: queue/XY/ID (docs/SPOOL.md)
    paths = {}
    for root, dirs, files in os.walk(qdir):
        for name in files:
            paths[name] = os.path.join(root, name)
    names = sorted(paths)
    stored = {}                 # sender -> count
    seen_tok = {}
    for name in names:
        if not QUEUE_ID.match(name):
            fail("not a queue file: queue/" + name)
            continue
        msg, env = read_queue_file(paths[name])
        if msg is None:
            fail("queue/%s is incomplete or damaged" % name)
            continue
        if (not env.startswith("POSTERN-ENVELOPE 2\n")
                or not env.endswith("\nend\n")
                or "\nid %s\n" % name not in env):
            fail("queue/%s: bad envelope %r" % (name, env[:80]))
            continue
        m = re.search(r"\nsender (\S*)\n", env)
        sender = m.group(1) if m else "?"
        stored[sender] = stored.get(sender, 0) + 1
        if sender != TRACKED:
            continue
        m = re.search(rb"\r\nX-Soak-Token: (\d+)\r\n", msg)
        tok = int(m.group(1)) if m else None
        st = ledger.state.get(tok)
        if tok in seen_tok:
            fail("token %s stored twice: %s and %s" % (tok, seen_tok[tok],
                                                       name))
        seen_tok[tok] = name
        if st == name:
            body = strip_received(msg)
            if body is None or hashlib.sha256(body).hexdigest() \
                    != ledger.sha[tok]:
                fail("queue/%s (token %d): stored bytes differ from what "
                     "was sent" % (name, tok))
        elif st != "indoubt":
            fail("queue/%s (token %s) stored but %s" % (
                name, tok, "acknowledged as %s" % st if st and
                QUEUE_ID.match(st) else "never acknowledged (%s)" % st))
    for qid, tok in ledger.acked.items():
        if seen_tok.get(tok) != qid:
            fail("acknowledged %s (token %d) is not in the spool" % (qid,
                                                                     tok))
    n_src = stored.pop(SOURCE, 0)
    if n_src < stats.source_acked:
        fail("smtp-source: %d acknowledged, only %d stored"
             % (stats.source_acked, n_src))
    if n_src > stats.source_acked + stats.source_doubt:
        fail("smtp-source: %d stored, more than %d acknowledged + %d in "
             "doubt" % (n_src, stats.source_acked, stats.source_doubt))
    stored.pop(TRACKED, None)
    for sender in (DOTDROP, NOREAD):
        n = stored.pop(sender, 0)
        if n > stats.sent[sender]:
            fail("%s: %d stored, only %d sent" % (sender, n,
                                                  stats.sent[sender]))
        summary.append("%s: %d sent, %d stored (allowed)"
                       % (sender, stats.sent[sender], n))
    for sender, n in stored.items():
        fail("%d message(s) from %s stored; never acknowledged" % (n, sender))
    summary.insert(0, "smtp-source: %d acknowledged, %d stored (runs ok %d, "
                   "failed %d)" % (stats.source_acked, n_src,
                                   stats.source_runs[0],
                                   stats.source_runs[1]))
    p = postern("queue", "count", timeout=120)
    if p.returncode != 0 or p.stdout.split()[:1] != [str(len(names))]:
        fail("postern queue count says %r (rc %d), queue/ holds %d"
             % (p.stdout.strip() or p.stderr.strip(), p.returncode,
                len(names)))
    for sub in ("tmp", "corrupt"):
        left = []
        for root, dirs, files in os.walk(os.path.join(SPOOL, sub)):
            left += [os.path.join(root, f) for f in files + dirs]
        if left:
            fail("spool/%s not empty after a graceful stop: %s"
                 % (sub, left[:10]))
    return len(names)


def check_log(fail, killed):
    with open(LOG, "rb") as f:
        log = f.read().decode("utf-8", "replace")
    ok_kill = "worker process %d exited on signal 9" % killed if killed \
        else None
    died, bad = [], []
    for ln in log.splitlines():
        if ok_kill and ok_kill in ln:
            continue
        if "exited on signal" in ln or "exited with code" in ln:
            died.append(ln)
        if re.search(r" (alert|crit|emerg): ", ln):
            bad.append(ln)
    if killed and ok_kill not in log:
        fail("no log line for the worker killed on purpose (%s)" % ok_kill)
    for ln in died[:20]:
        fail("worker died: " + ln)
    for ln in bad[:20]:
        fail("log: " + ln)
    for kw in ("AddressSanitizer", "runtime error:"):
        if kw in log:
            fail("sanitizer report in " + LOG)
    return log


# -- the run ---------------------------------------------------------------------

class Run:
    def __init__(self, proc, port):
        self.proc = proc
        self.master = proc.pid
        self.port = port
        self.failures = []
        self.series = {}        # pid -> [(t, phase, rss KiB, fds)]
        self.phase = "churn"
        self.reloads = 0
        self.killed = None
        self.baseline = {}
        self.final_fds = {}
        self.load_secs = 0.0

    def fail(self, msg):
        self.failures.append(msg)
        print("soak: FAIL: " + msg, flush=True)

    def sample(self):
        t = now()
        for pid in [self.master] + workers(self.master):
            self.series.setdefault(pid, []).append(
                (t, self.phase, rss_kb(pid), nfds(pid)))

    def reload(self):
        before = set(workers(self.master))
        p = postern("-s", "reload")
        if p.returncode != 0:
            self.fail("postern -s reload: rc %d %s" % (p.returncode,
                                                       p.stderr.strip()))
            return
        self.reloads += 1

        def new_workers():
            w = workers(self.master)
            return len(w) == 2 and not before & set(w)
        if not wait_until(new_workers, 30):
            self.fail("no new workers 30s after reload %d" % self.reloads)
        stats.note("reload %d: workers %s" % (self.reloads,
                                              workers(self.master)))

    def kill_one(self):
        pid = random.choice(workers(self.master))
        os.kill(pid, signal.SIGKILL)
        self.killed = pid
        stats.note("kill -9 worker %d" % pid)

        def respawned():
            w = workers(self.master)
            return len(w) == 2 and pid not in w
        if not wait_until(respawned, 15):
            self.fail("no worker respawned after kill -9 of %d" % pid)

    def quiesce(self, limit):
        """Pause the load and wait until no session is open."""
        pause_load.set()
        if not wait_until(lambda: established(self.port) == 0, limit):
            stats.note("still %d connection(s) after %.0fs of pause"
                       % (established(self.port), limit))

    def start_steady(self):
        """Between the halves: reload without load, warm the new
        workers with a few messages, count their descriptors."""
        self.quiesce(150)
        self.reload()
        if not wait_until(lambda: len(children(self.master)) == 2, 60):
            self.fail("old workers still there 60s after the last reload")
        for _ in range(8):
            run_session("tracked", lambda c: tracked_session(c, 1),
                        self.port)
        time.sleep(1)
        self.baseline = {pid: nfds(pid) for pid in workers(self.master)}
        stats.note("steady phase; descriptors of the workers: %s"
                   % self.baseline)
        self.phase = "steady"
        pause_load.clear()

    def drive(self):
        threads = [threading.Thread(target=source_loop, args=(self.port,))]
        threads += [threading.Thread(target=tracked_loop, args=(self.port,))
                    for _ in range(3)]
        threads += [threading.Thread(target=abuse_loop, args=(self.port,))
                    for _ in range(4)]
        for t in threads:
            t.daemon = True
            t.start()
        half = SECS / 2.0
        every = min(60.0, max(10.0, SECS / 10.0))
        next_reload, next_sample = every, 0.0
        while now() < SECS:
            if now() >= next_sample:
                self.sample()
                next_sample += SAMPLE_EVERY
            if self.phase == "churn":
                if self.killed is None and now() >= SECS / 4.0:
                    self.kill_one()
                if now() >= next_reload and now() < half:
                    self.reload()
                    next_reload += every
                if now() >= half:
                    self.start_steady()
            if self.proc.poll() is not None:
                self.fail("the master exited (%s) during the run"
                          % self.proc.returncode)
                break
            time.sleep(0.5)
        self.load_secs = now()
        stop_load.set()
        for t in threads:
            t.join(SESSION_LIMIT + 150)
            if t.is_alive():
                self.fail("a load thread did not finish within its bound")
        self.phase = "end"

    def finish(self):
        if self.proc.poll() is not None:
            self.fail("the master is gone (exit %s)" % self.proc.returncode)
            return
        if not wait_until(lambda: established(self.port) == 0, 30):
            self.fail("%d connection(s) still open 30s after the load"
                      % established(self.port))
        # 3. descriptors back at the baseline
        for pid, base in self.baseline.items():
            if nfds(pid) is None:
                self.fail("steady worker %d is gone" % pid)
        wait_until(lambda: all(nfds(p) == b for p, b in
                               self.baseline.items()), 20)
        self.final_fds = {p: nfds(p) for p in self.baseline}
        for pid, base in self.baseline.items():
            if self.final_fds[pid] is not None \
                    and self.final_fds[pid] != base:
                self.fail("worker %d: %s open descriptors after the load, "
                          "%d before" % (pid, self.final_fds[pid], base))
        self.sample()
        # 5. a fresh session still works
        before = ledger.count("acked")
        run_session("final", lambda c: tracked_session(c, 1), self.port)
        if ledger.count("acked") != before + 1:
            self.fail("a fresh session did not get a message through: %s"
                      % stats.kinds.get("final"))
        # 4. the master and both workers
        w = workers(self.master)
        if len(w) != 2:
            self.fail("%d worker(s) at the end, not 2: %s" % (len(w), w))
        p = postern("-s", "quit")
        if p.returncode != 0:
            self.fail("postern -s quit: rc %d %s" % (p.returncode,
                                                     p.stderr.strip()))
        try:
            rc = self.proc.wait(60)
            if rc != 0:
                self.fail("the master exited with %d after QUIT" % rc)
        except subprocess.TimeoutExpired:
            self.fail("the master did not exit within 60s of QUIT")

    def check_rss(self, summary):
        for pid in sorted(self.baseline):
            s = [r for _, ph, r, _ in self.series.get(pid, [])
                 if ph == "steady" and r]
            s = s[max(2, len(s) // 5):]       # warm-up
            if len(s) < 6:
                summary.append("worker %d: %d samples after warm-up, too "
                               "few to judge growth" % (pid, len(s)))
                continue
            k = len(s) // 3
            first = sum(s[:k]) / k
            last = sum(s[-k:]) / k
            grow = last - first
            pct = 100.0 * grow / first
            summary.append("worker %d: RSS %.0f -> %.0f KiB (%+.0f KiB, "
                           "%+.1f%%) first to last third" % (pid, first,
                                                             last, grow,
                                                             pct))
            if grow > RSS_LIMIT_KB and pct > RSS_LIMIT_PCT:
                self.fail("worker %d: RSS grew %.0f KiB (%.1f%%) in the "
                          "steady phase" % (pid, grow, pct))


def mib(kb):
    return "%.1f" % (kb / 1024.0) if kb else "-"


def report(run, stored, summary):
    secs = max(run.load_secs, 1.0)
    acked = ledger.count("acked")
    total = acked + stats.source_acked
    print("\n==== soak summary (%.0fs of load) ====" % secs)
    print("messages acknowledged: %d (our senders %d, smtp-source %d), "
          "%.0f msgs/s; stored: %d" % (total, acked, stats.source_acked,
                                        total / secs, stored))
    print("our senders: %d in doubt after the dot, %d refused, %d not "
          "finished" % (ledger.count("indoubt"), ledger.count("refused"),
                        ledger.count("open")))
    for ln in summary:
        print("  " + ln)
    print("reloads: %d; killed on purpose: worker %s" % (run.reloads,
                                                          run.killed))
    print("RSS in MiB every %.0fs (phase c=churn s=steady e=end):"
          % SAMPLE_EVERY)
    for pid, s in run.series.items():
        who = "master" if pid == run.master else \
            "steady worker" if pid in run.baseline else "worker"
        print("  %-13s %6d: %s" % (who, pid, " ".join(
            "%s%s" % (ph[0], mib(r)) for _, ph, r, _ in s)))
    print("descriptors of the steady workers: baseline %s, after the load "
          "%s, max under load %s" % (
              run.baseline, run.final_fds,
              {p: max((f or 0) for _, _, _, f in run.series.get(p, []))
               for p in run.baseline}))
    print("sessions by kind:")
    for kind in sorted(stats.kinds):
        print("  %-12s %s" % (kind, ", ".join(
            "%s %d" % kv for kv in sorted(stats.kinds[kind].items()))))
    if stats.notes:
        print("notes (%d):" % len(stats.notes))
        for n in stats.notes[:30]:
            print("  " + n)


def main():
    if SECS < 20:
        sys.exit("soak: SOAK_SECS must be at least 20")
    for tool in (POSTERN, SMTP_SOURCE):
        if not os.access(tool, os.X_OK):
            sys.exit("soak: %s is missing (make first)" % tool)
    shutil.rmtree(DIR, ignore_errors=True)
    os.makedirs(DIR)
    os.chmod(DIR, 0o755)
    port = free_port()
    with open(CONF, "w") as f:
        f.write(CONF_TEXT.format(modules=MODULES, log=LOG, dir=DIR,
                                 spool=SPOOL, port=port))
    p = postern("-t")
    if p.returncode != 0:
        sys.exit("soak: postern -t: " + p.stderr)
    out = open(os.path.join(DIR, "stderr.log"), "ab")
    proc = subprocess.Popen([POSTERN, "-p", ROOT + "/", "-c", CONF, "-f"],
                            stdout=out, stderr=out, start_new_session=True)
    run = Run(proc, port)
    try:
        if not wait_until(lambda: greets(port) or proc.poll() is not None,
                          15) or proc.poll() is not None:
            sys.exit("soak: postern did not start; see %s" % DIR)
        print("soak: postern on 127.0.0.1:%d for %ds, directory %s"
              % (port, SECS, DIR), flush=True)
        run.drive()
        run.finish()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()
    summary = []
    stored = check_spool(run.fail, summary)
    check_log(run.fail, run.killed)
    run.check_rss(summary)
    for h in stats.hangs:
        run.fail("hang: " + h)
    for b in stats.bad:
        run.fail("unexpected reply: " + b)
    report(run, stored, summary)
    if run.failures:
        print("\nsoak: FAILED (%d):" % len(run.failures))
        for f in run.failures:
            print("  " + f)
        sys.exit(1)
    print("\nsoak: passed")


if __name__ == "__main__":
    main()
