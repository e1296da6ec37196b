#!/usr/bin/env python3
"""One measured run of bench/redis.sh: the same smtp-source load spread
over N Postern nodes at once, with the counters read before and after,
appended as one TSV row to --out.

usage: redis_run.py --label L --rep R --nodes ADDR:PORT,... \\
           --metrics URL,... --masters PID,... --redis-port P \\
           --redis-pid PID --spools DIR,... --sessions S --msgs M \\
           --rcpts K --size B [--reuse] [--timeout SEC] --logdir DIR \\
           --out FILE

The S sessions and M messages are split over the nodes (one smtp-source
per node, all started together); the run lasts from the first start to
the last exit.  Counters, as deltas over the run:

  postern_cpu_s   CPU time of every thread of every node's master and its
                  descendants (/proc/PID/task/TID/schedstat, in ns)
  redis_cpu_s     the same of redis-server (all its threads)
  client_cpu_s    the smtp-source processes (RUSAGE_CHILDREN)
  busy_cpu_s      the machine's busy CPU (/proc/stat), other tenants too
  scripts         Redis's EVALSHA and EVAL calls (policy_limits' script)
  redis_calls     every cmdstat's calls (commands run by the scripts too),
                  less the INFO commands this script sends
  hook_count, hook_sum_s, hook_slow
                  postern_hook_duration_seconds{module="policy_limits"}
                  of every node: calls, seconds, calls over 0.1 s (the
                  default redis_timeout: a check that took the fallback)
  accepted, refused
                  postern_messages_accepted_total and the sum of
                  postern_messages_rejected_total and _tempfailed_total
  stored          files in the nodes' spool/queue after the run
"""
import argparse
import os
import re
import resource
import socket
import subprocess
import time
import urllib.request

CLK = os.sysconf("SC_CLK_TCK")
COLUMNS = ("label", "rep", "nodes", "sessions", "msgs", "rcpts", "size",
           "reuse", "rc", "secs", "stored", "accepted", "refused",
           "postern_cpu_s", "redis_cpu_s", "client_cpu_s", "busy_cpu_s",
           "scripts", "redis_calls", "hook_count", "hook_sum_s", "hook_slow")


def children():
    """{ppid: [pid, ...]} of every process."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:                 # gone meanwhile
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def task_cpu(pid):
    """CPU seconds of every thread of pid (schedstat: nanoseconds)."""
    t = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                t += int(f.read().split()[0])
    except OSError:                     # gone meanwhile
        pass
    return t / 1e9


def tree_cpu(kids, roots):
    """CPU seconds of the roots and all their descendants."""
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(kids.get(p, ()))
    return sum(task_cpu(p) for p in seen)


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK      # less idle and iowait


def redis_commandstats(port):
    """{command: calls} from INFO commandstats."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"INFO commandstats\r\n")
        f = s.makefile("rb")
        n = int(f.readline()[1:])
        text = f.read(n + 2).decode()
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r"^cmdstat_([^:]+):calls=(\d+)", text, re.M)}


def metrics(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    v = {"accepted": 0.0, "refused": 0.0, "hook_count": 0.0,
         "hook_sum_s": 0.0, "hook_fast": 0.0}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, val = line.rsplit(" ", 1)
        if name == "postern_messages_accepted_total":
            v["accepted"] += float(val)
        elif name.startswith(("postern_messages_rejected_total{",
                              "postern_messages_tempfailed_total{")):
            v["refused"] += float(val)
        elif 'module="policy_limits"' not in name:
            continue
        elif name.startswith("postern_hook_duration_seconds_count"):
            v["hook_count"] += float(val)
        elif name.startswith("postern_hook_duration_seconds_sum"):
            v["hook_sum_s"] += float(val)
        elif name.endswith('le="0.1"}'):
            v["hook_fast"] += float(val)
    return v


def snapshot(a):
    kids = children()
    v = {"postern_cpu_s": tree_cpu(kids, a.masters),
         "redis_cpu_s": tree_cpu(kids, [a.redis_pid]),
         "busy_cpu_s": machine_busy()}
    cs = redis_commandstats(a.redis_port)
    v["scripts"] = cs.get("evalsha", 0) + cs.get("eval", 0)
    v["redis_calls"] = sum(cs.values()) - cs.get("info", 0)
    for url in a.metrics:
        for k, x in metrics(url).items():
            v[k] = v.get(k, 0.0) + x
    return v


def split(total, n, i):
    return total // n + (1 if i < total % n else 0)


def run_load(a):
    """Start one smtp-source per node, wait for all (bounded); rc 0 when
    every one saw 2xx throughout, 124 on the time limit."""
    procs, n = [], len(a.nodes)
    t0 = time.monotonic()
    for i, node in enumerate(a.nodes):
        cmd = ["smtp-source", "-s", str(max(1, split(a.sessions, n, i))),
               "-m", str(split(a.msgs, n, i)), "-l", str(a.size),
               "-r", str(a.rcpts), "-N", "-f", "sender@client.test",
               "-t", "user@example.test", "-M", "bench.client.test"]
        cmd += ["-d"] if a.reuse else []
        log = open(os.path.join(a.logdir, "source-%d.log" % (i + 1)), "a")
        log.write("== %s rep %s: %s\n" % (a.label, a.rep, " ".join(cmd)))
        log.flush()
        procs.append(subprocess.Popen(cmd + [node], stdout=log,
                                      stderr=subprocess.STDOUT))
        log.close()
    rc = 0
    for p in procs:
        left = a.timeout - (time.monotonic() - t0)
        try:
            rc = max(rc, p.wait(timeout=max(left, 0.1)))
        except subprocess.TimeoutExpired:
            rc = 124
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, time.monotonic() - t0


def stored(spools):
    return sum(len(files) for d in spools
               for _, _, files in os.walk(os.path.join(d, "queue")))


def main():
    p = argparse.ArgumentParser()
    for opt in ("label", "rep", "logdir", "out"):
        p.add_argument("--" + opt, required=True)
    for opt in ("nodes", "metrics", "spools"):
        p.add_argument("--" + opt, required=True, type=lambda s: s.split(","))
    p.add_argument("--masters", required=True,
                   type=lambda s: [int(x) for x in s.split(",")])
    for opt in ("redis-port", "redis-pid", "sessions", "msgs", "rcpts",
                "size"):
        p.add_argument("--" + opt, required=True, type=int)
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--timeout", type=float, default=300)
    a = p.parse_args()

    before = snapshot(a)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rc, secs = run_load(a)
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = snapshot(a)

    row = {"label": a.label, "rep": a.rep, "nodes": len(a.nodes),
           "sessions": a.sessions, "msgs": a.msgs, "rcpts": a.rcpts,
           "size": a.size,
           "reuse": int(a.reuse), "rc": rc, "secs": "%.4f" % secs,
           "stored": stored(a.spools),
           "client_cpu_s": "%.3f" % (ru1.ru_utime + ru1.ru_stime
                                     - ru0.ru_utime - ru0.ru_stime)}
    for k in after:
        d = after[k] - before[k]
        row[k] = "%d" % d if float(d).is_integer() else "%.6f" % d
    row["hook_slow"] = "%d" % ((after["hook_count"] - before["hook_count"])
                               - (after["hook_fast"] - before["hook_fast"]))
    new = not os.path.exists(a.out) or os.path.getsize(a.out) == 0
    with open(a.out, "a") as f:
        if new:
            f.write("\t".join(COLUMNS) + "\n")
        f.write("\t".join(str(row[c]) for c in COLUMNS) + "\n")
    print("%s rep %s: %d msgs in %.2f s = %.0f msgs/s, rc %d, stored %s,"
          " refused %s, scripts %s, redis CPU %s s, postern CPU %s s"
          % (a.label, a.rep, a.msgs, secs, a.msgs / secs, rc, row["stored"],
             row["refused"], row["scripts"], row["redis_cpu_s"],
             row["postern_cpu_s"]))


if __name__ == "__main__":
    main()
