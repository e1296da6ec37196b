#!/usr/bin/env python3
"""Event-loop stalls from a `perf trace -s` summary of Postern's workers.

usage: loopstalls.py TRACE.raw MESSAGES "WORKER_PID..."

A worker's event-loop thread is the thread whose tid is the worker's pid;
everything it does outside epoll_pwait() delays every session of that
worker.  Prints, for the event-loop threads together, each syscall's
calls per message, average and maximum duration, and the time per
message spent in syscalls; then the same totals for the other threads
(the store's sync threads), where waiting for the disk belongs.
"""
import re
import sys

HEAD = re.compile(r"^\s*(\S.*?) \((\d+)\), (\d+) events")
ROW = re.compile(r"^\s+(\w+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)")


def main():
    path, n, pids = sys.argv[1], int(sys.argv[2]), set(sys.argv[3].split())
    loop, other = {}, {}
    cur = None
    for line in open(path, errors="replace"):
        m = HEAD.match(line)
        if m:
            cur = loop if m.group(2) in pids else other
            continue
        m = ROW.match(line)
        if m and cur is not None:
            name = m.group(1)
            calls, total, mx = int(m.group(2)), float(m.group(4)), float(m.group(7))
            c, t, x = cur.get(name, (0, 0.0, 0.0))
            cur[name] = (c + calls, t + total, max(x, mx))
    print(f"event-loop threads ({n} messages): syscalls other than epoll_pwait")
    print(f"{'syscall':<18}{'calls/msg':>10}{'avg us':>9}{'max ms':>9}{'us/msg':>9}")
    busy = 0.0
    for name, (c, t, x) in sorted(loop.items(), key=lambda kv: -kv[1][1]):
        if name.startswith("epoll"):
            continue
        busy += t
        print(f"{name:<18}{c / n:>10.2f}{t * 1000 / c:>9.1f}{x:>9.2f}{t * 1000 / n:>9.1f}")
    worst = max(((x, k) for k, (c, t, x) in loop.items() if not k.startswith("epoll")), default=(0, "-"))
    print(f"loop time in syscalls per message: {busy * 1000 / n:.1f} us; longest single call:"
          f" {worst[0]:.2f} ms ({worst[1]})")
    if other:
        print()
        print("sync threads (waiting for the disk is their job)")
        for name, (c, t, x) in sorted(other.items(), key=lambda kv: -kv[1][1])[:8]:
            print(f"{name:<18}{c / n:>10.2f}{t * 1000 / c:>9.1f}{x:>9.2f}{t * 1000 / n:>9.1f}")


if __name__ == "__main__":
    main()
