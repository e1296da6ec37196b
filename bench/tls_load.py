#!/usr/bin/python3
"""tls_load.py -- SMTP load over TLS (STARTTLS) for bench/tls.sh.

    tls_load.py sessions HOST PORT -c N [-t SECONDS] [-p PROCS]
    tls_load.py messages HOST PORT -c N [-t SECONDS] [-p PROCS]

sessions: each client loops over complete sessions: connect, EHLO,
STARTTLS, full handshake (no resumption), EHLO, one message, QUIT.
messages: each client opens one TLS session and sends messages in it
until the time is up.

N clients run as threads spread over PROCS processes (the GIL is
released in OpenSSL, the processes avoid contention on it).  Prints one
line: "<mode> conc=N secs=S done=COUNT rate=COUNT/S errors=E".
Loopback only; every socket operation has a timeout.
"""

import argparse
import multiprocessing
import socket
import ssl
import sys
import threading
import time

BODY = (b"Subject: tls bench\r\nFrom: <bench@client.test>\r\n"
        b"To: <u@example.test>\r\n\r\n" + b"x" * 70 + b"\r\n") \
    + (b"y" * 76 + b"\r\n") * 12


class Smtp:
    def __init__(self, host, port, ctx):
        self.sock = socket.create_connection((host, port), timeout=30)
        self.ctx = ctx
        self.buf = b""
        self.expect(b"220")

    def reply(self):
        while True:
            i = self.buf.find(b"\r\n")
            while i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                if line[3:4] == b" ":
                    return line
                i = self.buf.find(b"\r\n")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def expect(self, code):
        line = self.reply()
        if not line.startswith(code):
            raise RuntimeError("unexpected reply %r" % line)

    def cmd(self, text, code):
        self.sock.sendall(text)
        self.expect(code)

    def starttls(self):
        self.cmd(b"EHLO client.test\r\n", b"250")
        self.cmd(b"STARTTLS\r\n", b"220")
        self.sock = self.ctx.wrap_socket(self.sock,
                                         server_hostname="localhost")
        self.cmd(b"EHLO client.test\r\n", b"250")

    def message(self):
        # pipelined envelope, as PIPELINING allows
        self.sock.sendall(b"MAIL FROM:<bench@client.test>\r\n"
                          b"RCPT TO:<u@example.test>\r\nDATA\r\n")
        self.expect(b"250")
        self.expect(b"250")
        self.expect(b"354")
        self.cmd(BODY + b".\r\n", b"250")

    def quit(self):
        try:
            self.sock.sendall(b"QUIT\r\n")
            self.expect(b"221")
        finally:
            self.sock.close()


def worker(mode, host, port, nthreads, deadline, out):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    counts = [0] * nthreads
    errors = [0] * nthreads

    def run(i):
        while time.monotonic() < deadline:
            try:
                s = Smtp(host, port, ctx)
                s.starttls()
                if mode == "sessions":
                    s.message()
                    s.quit()
                    counts[i] += 1
                    continue
                while time.monotonic() < deadline:
                    s.message()
                    counts[i] += 1
                s.quit()
            except (OSError, RuntimeError, ssl.SSLError):
                errors[i] += 1
                time.sleep(0.01)

    threads = [threading.Thread(target=run, args=(i,))
               for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline - time.monotonic() + 60)
    out.put((sum(counts), sum(errors)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("sessions", "messages"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("-c", dest="conc", type=int, default=10)
    ap.add_argument("-t", dest="secs", type=float, default=10.0)
    ap.add_argument("-p", dest="procs", type=int, default=2)
    a = ap.parse_args()
    if not a.host.startswith("127.") and a.host != "::1":
        sys.exit("tls_load.py: loopback only")

    procs = min(a.procs, a.conc)
    share = [a.conc // procs + (1 if i < a.conc % procs else 0)
             for i in range(procs)]
    q = multiprocessing.Queue()
    t0 = time.monotonic()
    deadline = t0 + a.secs
    ps = [multiprocessing.Process(target=worker,
                                  args=(a.mode, a.host, a.port, n, deadline,
                                        q)) for n in share]
    for p in ps:
        p.start()
    done = errors = 0
    for _ in ps:
        d, e = q.get(timeout=a.secs + 120)
        done += d
        errors += e
    for p in ps:
        p.join(10)
    secs = time.monotonic() - t0
    print("%s conc=%d secs=%.1f done=%d rate=%.1f errors=%d"
          % (a.mode, a.conc, secs, done, done / secs, errors))


if __name__ == "__main__":
    main()
