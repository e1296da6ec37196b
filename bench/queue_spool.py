#!/usr/bin/env python3
"""Write a spool of N deferred messages (format 3, one recipient each,
spread over D domains, next try an hour away) for the queue engine's
start-up figures: time from start to "spool scanned" and the queue
process's memory per message (docs/PERFORMANCE.md).

    bench/queue_spool.py SPOOL_DIR [N] [DOMAINS] [DUE]

DUE 1: the next try is now (every message due at start).  Run as root,
the files go to the account the server's children run as (POSTERN_USER,
default nobody).
"""

import os
import pwd
import sys
import time

B32 = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def b32(v, n):
    s = ""
    for _ in range(n):
        s = B32[v & 31] + s
        v >>= 5
    return s


def main():
    spool = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    ndom = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    due = len(sys.argv) > 4 and sys.argv[4] == "1"
    now = int(time.time())
    msg = (b"Received: from bench.test\r\n\tby postern.test\r\n"
           b"Subject: queue bench\r\n\r\n" + b"x" * 1000 + b"\r\n")
    os.makedirs(os.path.join(spool, "queue"), exist_ok=True)
    base = (now * 1000000) >> 5
    for i in range(n):
        qid = b32(base, 11) + b32(i, 7)
        d = os.path.join(spool, "queue", qid[-2:])
        os.makedirs(d, exist_ok=True)
        env = ("POSTERN-ENVELOPE 2\nid %s\narrival %d.000000\n"
               "protocol esmtp\nsender bench@bench.test\nsize %d\n"
               "rcpt user%d@d%d.test state=pending\nend\n"
               % (qid, now, len(msg), i, i % ndom)).encode()
        hdr = b"POSTERN-SPOOL 3 %020d %020d\n" % (len(msg), len(env))
        with open(os.path.join(d, qid), "wb") as f:
            f.write(hdr + msg + env)
        st = ("POSTERN-STATE 1\nid %s\nrcpt user%d@d%d.test state=deferred"
              " attempts=1 next-try=%d last-try=%d reply=451+204.0.0+20bench"
              "\nend\n" % (qid, i, i % ndom, now - 1 if due else now + 3600,
                             now)).encode()
        with open(os.path.join(d, qid + ".state"), "wb") as f:
            f.write(st)


def chown_tree(spool):
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(os.environ.get("POSTERN_USER", "nobody"))
    for root, dirs, files in os.walk(spool):
        for n in [root] + [os.path.join(root, f) for f in files]:
            os.chown(n, pw.pw_uid, pw.pw_gid)


if __name__ == "__main__":
    main()
    chown_tree(sys.argv[1])
