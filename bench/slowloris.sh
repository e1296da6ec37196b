#!/bin/bash
# bench/slowloris.sh -- trickling clients (slowloris) against one Postern
# worker and against Postfix, in one run, on loopback: how many
# tricklers a server holds before good clients suffer.
#
#   bench/slowloris.sh              (make first; run as root for Postfix)
#   NS="100 1000 4000" SECS=15 INTERVAL=1 bench/slowloris.sh
#
# For each N (NS) and each server, bench/slowloris.py opens N
# connections that send a command one byte every INTERVAL seconds and
# never finish it, then runs good transactions one after the other for
# SECS seconds.  The table gives, per server and N: the tricklers
# accepted, greeted and cut off by the server, and the good
# transactions done, failed, and their latency.  Servers:
#
#   postern        1 worker, the defaults (smtp_command_deadline =
#                  smtp_command_timeout = 5m: within the run nobody is
#                  cut); max_connections_per_ip raised so that one
#                  address can open them all (by default 50 per address
#                  stop a single-source slowloris first)
#   postern-dl10   the same with smtp_command_deadline 10s
#   postfix        the shared harness's peer (default_process_limit 100
#                  smtpd processes; smtpd_timeout restarts on each read,
#                  no per-request deadline by default)
#
# Peers from /work/shared/bench (setup.sh, peerctl.sh) in a private
# PEERS_ROOT (/tmp/peers-slowloris, Postfix on 2631); Postern on 2632,
# 2633.  Results in $OUT (default /tmp/bench-slowloris/STAMP).  Every
# server started here is stopped by pid at exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${BENCH_SHARED:-/work/shared/bench}
PY=/usr/bin/python3
NS=${NS:-"100 1000 4000"}
SECS=${SECS:-15}
INTERVAL=${INTERVAL:-1}
export PEERS_ROOT=${PEERS_ROOT:-/tmp/peers-slowloris}
export POSTFIX_PORT=${POSTFIX_PORT:-2631}
P1=${POSTERN_PORT:-2632}
P2=$((P1 + 1))
OUT=${OUT:-/tmp/bench-slowloris/$(date +%Y%m%d-%H%M%S)}
PIDS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$ROOT/objs/postern" ] || die "build first: ./configure && make"
[ -x "$SHARED/setup.sh" ] || die "no peer harness in $SHARED"
mkdir -p "$OUT"

cleanup() {
    for p in "${PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p"
            wait "$p" 2>/dev/null || true
        fi
    done
    "$SHARED/peerctl.sh" stop postfix >/dev/null 2>&1 || true
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

"$SHARED/setup.sh" postfix >"$OUT/setup.log" 2>&1 \
    || die "setup.sh postfix failed (see $OUT/setup.log)"
"$SHARED/peerctl.sh" stop postfix >/dev/null 2>&1 || true
"$SHARED/peerctl.sh" start postfix 2>>"$OUT/setup.log" \
    || die "postfix did not start (see $OUT/setup.log)"

start_postern() {   # start_postern NAME PORT EXTRA
    local d=$OUT/$1
    mkdir -p "$d/spool"
    cat > "$d/postern.conf" <<EOF
load_module $ROOT/objs/modules/store_spool.so;
load_module $ROOT/objs/modules/policy_relay.so;
daemon off;
worker_processes 1;
worker_connections 12000;
worker_rlimit_nofile $(ulimit -Hn);
error_log $d/postern.log notice;
pid $d/postern.pid;
spool_dir $d/spool;
smtp {
    hostname localhost;
    max_connections 20000;
    max_connections_per_ip 20000;
    $3
    server {
        listen 127.0.0.1:$2 backlog=4096;
        local_domains peers-sink.localdomain;
    }
}
EOF
    "$ROOT/objs/postern" -p "$ROOT/" -c "$d/postern.conf" -f \
        >"$d/stderr.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 1 80); do
        if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$2 \
                              && head -c 3 <&3" 2>/dev/null | grep -q 220
        then
            return 0
        fi
        sleep 0.25
    done
    die "postern $1 did not start (see $d)"
}

start_postern postern "$P1" ""
start_postern postern-dl10 "$P2" "smtp_command_deadline 10s;"

port() {
    case $1 in
        postern) echo "$P1" ;; postern-dl10) echo "$P2" ;;
        postfix) echo "$POSTFIX_PORT" ;;
    esac
}

printf 'server\tn\tresult\n' > "$OUT/results.tsv"
for n in 0 $NS; do
    for s in postern postern-dl10 postfix; do
        line=$("$PY" "$HERE/slowloris.py" 127.0.0.1 "$(port "$s")" -n "$n" \
               -i "$INTERVAL" -t "$SECS")
        printf '%s\t%s\t%s\n' "$s" "$n" "$line" >> "$OUT/results.tsv"
        log "$s n=$n: $line"
        "$SHARED/peerctl.sh" clean postfix >/dev/null 2>&1 || true
        find "$OUT"/postern*/spool/queue -type f -delete 2>/dev/null || true
        sleep 2        # let the servers close what the run left
    done
done

"$PY" - "$OUT/results.tsv" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print("\n%-13s %5s %9s %7s %5s %6s %6s %8s %8s" % (
    "server", "N", "accepted", "greeted", "cut", "good", "failed",
    "p50_ms", "p99_ms"))
for r in rows:
    kv = dict(x.split("=", 1) for x in r["result"].split())
    print("%-13s %5s %9s %7s %5s %6s %6s %8s %8s" % (
        r["server"], r["n"], kv["connected"], kv["greeted"], kv["cut"],
        kv["good"], kv["failed"], kv["p50_ms"], kv["p99_ms"]))
EOF
log "results in $OUT"
