#!/usr/bin/python3
"""slow_sender.py -- one honest but slow client: a message of SIZE bytes
sent at RATE bytes per second (in 64 KiB pieces), to check that the
slow-client limits (smtp_min_data_rate, smtp_data_timeout) leave it
alone.  Not a test: it takes SIZE / RATE seconds (100 MB at 1 MB/s is
100 s).

    slow_sender.py HOST PORT [--size 100m] [--rate 1m] [--bdat]

Prints "result=CODE seconds=S rate=R" (CODE: the reply to the end of
the data, or "dropped" if the server closed first).  Loopback only.
"""

import argparse
import socket
import time


def size(text):
    mult = {"k": 1024, "m": 1024 * 1024, "g": 1024 ** 3}
    t = text.lower()
    return int(t[:-1]) * mult[t[-1]] if t[-1] in mult else int(t)


def reply(f):
    while True:
        line = f.readline()
        if not line:
            return None
        if line[3:4] == b" ":
            return line.decode(errors="replace").strip()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--size", type=size, default=size("100m"))
    p.add_argument("--rate", type=size, default=size("1m"))
    p.add_argument("--bdat", action="store_true")
    a = p.parse_args()

    s = socket.create_connection((a.host, a.port), timeout=600)
    f = s.makefile("rb")
    reply(f)
    for cmd in (b"EHLO slow.client.test", b"MAIL FROM:<slow@client.test>",
                b"RCPT TO:<u@peers-sink.localdomain>"):
        s.sendall(cmd + b"\r\n")
        reply(f)
    line = b"y" * 1022 + b"\r\n"
    piece = line * 64
    n = a.size // len(piece)
    if a.bdat:
        s.sendall(b"BDAT %d LAST\r\n" % (n * len(piece)))
    else:
        s.sendall(b"DATA\r\n")
        reply(f)
    t0 = time.monotonic()
    try:
        for i in range(n):
            s.sendall(piece)
            # keep to the rate: where the next piece should start
            ahead = t0 + (i + 1) * len(piece) / a.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        if not a.bdat:
            s.sendall(b".\r\n")
        r = reply(f)
    except OSError:
        r = None
    secs = time.monotonic() - t0
    print("result=%s seconds=%.1f rate=%.0f" % (
        (r or "dropped").split()[0], secs, n * len(piece) / secs))


if __name__ == "__main__":
    main()
