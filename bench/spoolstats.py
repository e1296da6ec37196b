#!/usr/bin/env python3
"""Sum the group-commit counters that store_spool logs when each worker
exits, and print one TSV row:

  label sessions size msgs batches msgs_per_batch max_batch
        fsyncs_per_msg dir_fsyncs_per_msg ms_per_batch latency_ms
        latency_max_ms

usage: spoolstats.py --label L --sessions S --size B POSTERN.LOG
"""
import argparse
import re
import sys

RX = re.compile(r"spool: group commit: (\d+) message\(s\) in (\d+) batch\(es\),"
                r" [\d.]+ per batch \(max (\d+)\), ([\d.]+) directory fsync\(s\)"
                r" per message, ([\d.]+) ms per batch"
                r"(?:, commit latency ([\d.]+) ms \(max ([\d.]+)\))?")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--label", required=True)
    p.add_argument("--sessions", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("log")
    a = p.parse_args()
    msgs = batches = maxb = 0
    dirs = ms = lat = 0.0
    latmax = float("nan")
    for line in open(a.log, errors="replace"):
        m = RX.search(line)
        if not m:
            continue
        n, b = int(m.group(1)), int(m.group(2))
        msgs += n
        batches += b
        maxb = max(maxb, int(m.group(3)))
        dirs += float(m.group(4)) * n
        ms += float(m.group(5)) * b
        if m.group(6):
            lat += float(m.group(6)) * n
            latmax = max(float(m.group(7)), 0 if latmax != latmax else latmax)
        else:
            lat = float("nan")
    if not batches:
        sys.exit(f"{a.log}: no group commit line")
    # 2 fdatasync per message (message file and envelope) + directory fsyncs
    print(f"{a.label}\t{a.sessions}\t{a.size}\t{msgs}\t{batches}\t{msgs / batches:.2f}\t"
          f"{maxb}\t{(2 * msgs + dirs) / msgs:.3f}\t{dirs / msgs:.3f}\t{ms / batches:.2f}\t"
          f"{lat / msgs:.2f}\t{latmax:.2f}")


if __name__ == "__main__":
    main()
