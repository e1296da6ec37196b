#!/usr/bin/env python3
"""Markdown summary of bench/redis.sh's runs.tsv: per variant (local,
redis) the medians and min-max of every run, the ratio redis/local
(ratio of the medians and the range of the per-repetition ratios) and
the cost per message of the Redis round trip.  Exit status 1 when a run
failed: smtp-source not 0, a message not stored or not counted
accepted, a refusal, or (without -d) a check of the redis variant that
was not sent to Redis.  Checks that timed out are counted, not failed.

usage: redis_summary.py RUNS.TSV
"""
import csv
import statistics
import sys


def med(v):
    return statistics.median(v) if v else float("nan")


def expected_scripts(r):
    """Scripts a redis run sends when every check is asked of Redis: one
    per connection, MAIL and RCPT; None with -d (connections unknown)."""
    if r["reuse"] != "0":
        return None
    if r["label"] != "redis":
        return 0
    return int(r["msgs"]) * (2 + int(r["rcpts"]))


def per_run(r):
    m, s = int(r["msgs"]), float(r["secs"])
    want = expected_scripts(r)
    return {
        "rate": m / s,
        "postern_ms": float(r["postern_cpu_s"]) * 1e3 / m,
        "redis_us": float(r["redis_cpu_s"]) * 1e6 / m,
        "scripts": float(r["scripts"]) / m,
        "calls": float(r["redis_calls"]) / m,
        "hooks": float(r["hook_count"]) / m,
        "hook_us": float(r["hook_sum_s"]) * 1e6 / m,
        "slow": int(r["hook_slow"]),
        "other": (float(r["busy_cpu_s"]) - float(r["postern_cpu_s"])
                  - float(r["redis_cpu_s"]) - float(r["client_cpu_s"])) / s,
        "ok": (r["rc"] == "0" and int(r["stored"]) == m
               and float(r["refused"]) == 0
               and int(float(r["accepted"])) == m
               and (want is None or int(r["scripts"]) == want)),
    }


def cell(v, fmt):
    return "%s (%s-%s)" % (fmt % med(v), fmt % min(v), fmt % max(v))


ROWS = (("msgs/s", "rate", "%.0f"),
        ("Postern CPU per message, ms (all nodes)", "postern_ms", "%.3f"),
        ("Redis CPU per message, us", "redis_us", "%.1f"),
        ("Redis scripts (EVALSHA) per message", "scripts", "%.2f"),
        ("Redis commands per message (scripts' too)", "calls", "%.2f"),
        ("policy_limits hook calls per message", "hooks", "%.2f"),
        ("policy_limits hook time per message, us (its calls' sum)",
         "hook_us", "%.0f"),
        ("hook calls over 0.1 s (redis_timeout: decided locally)", "slow",
         "%d"),
        ("other tenants, cores busy", "other", "%.2f"))


def main():
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
    runs = {}
    for r in rows:
        runs.setdefault(r["label"], {})[r["rep"]] = per_run(r)
    first = rows[0]
    out = ["Load: %s nodes, %s sessions and %s messages per run in all"
           " (split over the nodes), %s recipient(s) per message, %s"
           " bytes; %d runs per variant." % (
               first["nodes"], first["sessions"], first["msgs"],
               first["rcpts"], first["size"],
               max(len(v) for v in runs.values())), ""]
    labels = [x for x in ("local", "redis") if x in runs]
    out += ["| median (min-max) | " + " | ".join(labels) + " |",
            "| --- |" + " --- |" * len(labels)]
    for title, key, fmt in ROWS:
        out.append("| %s | " % title + " | ".join(
            cell([x[key] for x in runs[lab].values()], fmt)
            for lab in labels) + " |")

    bad = ["%s rep %s" % (lab, rep) for lab in labels
           for rep, x in runs[lab].items() if not x["ok"]]
    if len(labels) == 2:
        loc, red = runs["local"], runs["redis"]
        reps = sorted(set(loc) & set(red), key=int)
        ratio = med([x["rate"] for x in red.values()]) / \
            med([x["rate"] for x in loc.values()])
        pr = [red[k]["rate"] / loc[k]["rate"] for k in reps]
        cost = [1e6 / red[k]["rate"] - 1e6 / loc[k]["rate"] for k in reps]
        cpu = [(red[k]["postern_ms"] - loc[k]["postern_ms"]) * 1e3
               for k in reps]
        out += ["",
                "* throughput redis/local: **%.3f** (ratio of the medians;"
                " per repetition %.3f-%.3f, median %.3f)"
                % (ratio, min(pr), max(pr), med(pr)),
                "* wall time per message added by Redis, 1/rate_redis -"
                " 1/rate_local: **%.1f us** (median of the repetitions;"
                " %.1f to %.1f)" % (med(cost), min(cost), max(cost)),
                "* Postern CPU per message added (redis - local, all"
                " nodes): %.1f us (median; %.1f to %.1f)"
                % (med(cpu), min(cpu), max(cpu)),
                "* Redis's own CPU per message: %.1f us; per script call:"
                " %.1f us" % (med([x["redis_us"] for x in red.values()]),
                              med([x["redis_us"] / x["scripts"]
                                   for x in red.values() if x["scripts"]]))]
    slow = sum(int(r["hook_slow"]) for r in rows if r["label"] == "redis")
    checks = sum(int(r["scripts"]) for r in rows if r["label"] == "redis")
    out += ["", "Every run: smtp-source saw only 2xx, every message stored"
            " and counted accepted, 0 refused, and (without -d) every check"
            " of the redis variant sent to Redis (one script per"
            " connection, MAIL and RCPT)." if not bad else
            "FAILED runs (a refusal, an smtp-source error, a message not"
            " stored, or a check decided locally without asking Redis): "
            + ", ".join(bad),
            "", "Checks of the redis variant over 0.1 s (redis_timeout: the"
            " local bucket decided; the script still ran in Redis): %d of"
            " %d." % (slow, checks)]
    print("\n".join(out))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
