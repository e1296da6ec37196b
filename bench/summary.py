#!/usr/bin/env python3
"""Markdown summary of one bench/run.sh result directory: medians with
min-max, CPU per message, ratios against the peers measured in the same
run (ratio of medians, and the range of per-repetition ratios), memory
per idle session, group-commit statistics and the two targets of issue 2.

usage: summary.py --out-dir DIR
"""
import argparse
import csv
import os
import statistics

PEERS = ("postfix", "sink", "haraka", "opensmtpd", "opensmtpd-hold")


def med(v):
    return statistics.median(v) if v else float("nan")


def kib(size):
    return f"{size // 1024} KiB"


def load_bench(path):
    cells = {}
    for r in csv.DictReader(open(path), delimiter="\t"):
        if r["rep"] == "pilot":
            continue
        m = int(r["msgs"])
        ok = r["rc"] == "0" and r["msgs_per_s"] != "nan"
        rate = float(r["msgs_per_s"]) if ok else int(r["stored"]) / float(r["client_s"])
        stored = float(r["stored_per_s"]) if r["stored_per_s"] not in ("nan", "") else float("nan")
        cpu = float(r["srv_cpu_settled_s"]) / m * 1000 if r["srv_cpu_settled_s"] != "nan" else float("nan")
        other = float(r["other_cpu_s"]) / float(r["client_s"]) if r["other_cpu_s"] != "nan" else float("nan")
        key = (r["label"], int(r["size"]), int(r["sessions"]))
        cells.setdefault(key, []).append(dict(rep=r["rep"], rate=rate, ok=ok, stored=stored,
                                              cpu=cpu, other=other))
    return cells


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out-dir", required=True)
    a = p.parse_args()
    d = a.out_dir
    out = []
    bench = os.path.join(d, "bench.tsv")
    verdict = []
    if os.path.exists(bench):
        cells = load_bench(bench)
        labels = []
        for k in cells:
            if k[0] not in labels:
                labels.append(k[0])
        ours = [x for x in labels if x not in PEERS]
        peers = [x for x in labels if x in PEERS]
        cols = sorted({(k[1], k[2]) for k in cells})
        head = "| server | " + " | ".join(f"{kib(l)} c={s}" for l, s in cols) + " |"
        sep = "| --- |" + " --- |" * len(cols)

        out += ["## Throughput, msgs/s (client saw 250 for every message)", "",
                "Median of the repetitions (min-max); `*` = a run hit the time limit.", "",
                head, sep]
        for lab in labels:
            row = []
            for c in cols:
                rs = cells.get((lab,) + c)
                if not rs:
                    row.append("-")
                    continue
                v = [x["rate"] for x in rs]
                mark = "" if all(x["ok"] for x in rs) else "*"
                row.append(f"{med(v):.0f}{mark} ({min(v):.0f}-{max(v):.0f})")
            out.append(f"| {lab} | " + " | ".join(row) + " |")

        out += ["", "Stored (every message complete in the queue), msgs/s, median:", "",
                head, sep]
        for lab in labels:
            row = []
            for c in cols:
                rs = cells.get((lab,) + c)
                v = [x["stored"] for x in rs or [] if x["stored"] == x["stored"]]
                row.append(f"{med(v):.0f}" if v else "-")
            out.append(f"| {lab} | " + " | ".join(row) + " |")

        out += ["", "## Server CPU per message, ms (median; all processes and threads)", "",
                head, sep]
        for lab in labels:
            row = []
            for c in cols:
                rs = cells.get((lab,) + c)
                row.append(f"{med([x['cpu'] for x in rs]):.3f}" if rs else "-")
            out.append(f"| {lab} | " + " | ".join(row) + " |")

        if ours and peers:
            out += ["", "## Ratios measured in the same run", "",
                    "ratio of the medians [range of the per-repetition ratios]", "",
                    "| ratio | " + " | ".join(f"{kib(l)} c={s}" for l, s in cols) + " |", sep]
            for o in ours:
                for pe in peers:
                    row = []
                    for c in cols:
                        a_, b_ = cells.get((o,) + c), cells.get((pe,) + c)
                        if not a_ or not b_:
                            row.append("-")
                            continue
                        r = med([x["rate"] for x in a_]) / med([x["rate"] for x in b_])
                        byrep = {x["rep"]: x["rate"] for x in b_}
                        pr = [x["rate"] / byrep[x["rep"]] for x in a_ if x["rep"] in byrep and byrep[x["rep"]]]
                        row.append(f"{r:.2f} [{min(pr):.2f}-{max(pr):.2f}]" if pr else f"{r:.2f}")
                        if pe == "postfix" and c == (4096, 100):
                            verdict.append(f"* {o} vs postfix, 4 KiB c=100: {r:.2f}x "
                                           f"(target >= 2x): {'MET' if r >= 2 else 'NOT MET'}")
                        if pe == "sink" and c == (4096, 100):
                            verdict.append(f"* {o} vs smtp-sink, 4 KiB c=100: {r:.2f}x "
                                           f"(long-term goal 0.5x)")
                    out.append(f"| {o} / {pe} | " + " | ".join(row) + " |")

        out += ["", "Other tenants' CPU during the runs (cores busy, median of all runs):"
                f" {med([x['other'] for rs in cells.values() for x in rs if x['other'] == x['other']]):.2f}"]

    stats = os.path.join(d, "stats.tsv")
    if os.path.exists(stats):
        rows = list(csv.DictReader(open(stats), delimiter="\t"))
        if rows:
            out += ["", "## Group commit (one run per cell, fresh server)", "",
                    "| server | size | sessions | messages | batches | msgs/batch | max | "
                    "fsyncs/msg | dir fsyncs/msg | ms/batch | commit latency ms (max) |",
                    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r in rows:
                out.append(f"| {r['label']} | {kib(int(r['size']))} | {r['sessions']} | {r['msgs']} | "
                           f"{r['batches']} | {r['msgs_per_batch']} | {r['max_batch']} | "
                           f"{r['fsyncs_per_msg']} | {r['dir_fsyncs_per_msg']} | "
                           f"{r.get('ms_per_batch', '-')} | "
                           f"{r.get('latency_ms', '-')} ({r.get('latency_max_ms', '-')}) |")

    idle = os.path.join(d, "idle.tsv")
    if os.path.exists(idle):
        cells = {}
        for line in open(idle):
            f = line.rstrip("\n").split("\t")
            if f[0] != "RESULT":
                continue
            cells.setdefault((f[1], int(f[2])), []).append((int(f[3]), float(f[8]), float(f[9])))
        if cells:
            out += ["", "## Memory per idle session (after EHLO), KiB, fresh server each time", "",
                    "| server | N | runs | opened | RSS/session median (min-max) | PSS/session median (min-max) |",
                    "| --- | --- | --- | --- | --- | --- |"]
            for (lab, n), rs in sorted(cells.items()):
                rss = [x[1] for x in rs]
                pss = [x[2] for x in rs]
                out.append(f"| {lab} | {n} | {len(rs)} | {min(x[0] for x in rs)} | "
                           f"{med(rss):.1f} ({min(rss):.1f}-{max(rss):.1f}) | "
                           f"{med(pss):.1f} ({min(pss):.1f}-{max(pss):.1f}) |")
                if lab not in PEERS:
                    worst = max(med(rss), med(pss))
                    verdict.append(f"* {lab}, {n} idle sessions: {worst:.1f} KiB per session "
                                   f"(target < 16 KiB): {'MET' if worst < 16 else 'NOT MET'}")

    if verdict:
        out += ["", "## Targets (issue 2)", ""] + verdict
    print("\n".join(out))


if __name__ == "__main__":
    main()
