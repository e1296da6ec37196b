#!/bin/bash
# bench/redis.sh -- N Postern nodes with Redis-backed rate limits against
# the same nodes with local (shared-memory) limits, and what the Redis
# round trip costs per message (issue #14).
#
# usage: bench/redis.sh [options]          ("make bench-redis" runs it)
#   -n N       nodes per variant (default 2)
#   -s S       concurrent sessions in all, split over the nodes (100)
#   -m M       messages per run in all, split over the nodes (10000)
#   -k K       recipients per message (smtp-source -r, default 1)
#   -l B       message size in bytes (4096)
#   -r R       repetitions per variant (5)
#   -d         many messages per session (smtp-source -d)
#   -w W       worker_processes of each node (auto)
#   --timeout SEC   time limit of one run (300)
#   -o DIR     results (default objs/bench-redis/<stamp>)
#
# Two sets of N nodes run side by side on loopback, each node with its own
# address (local: 127.0.1.I, redis: 127.0.2.I), port, spool and metrics
# listener, all sharing one redis-server on 127.0.0.1 (no persistence).
# The nodes are configured as bench/run.sh's (store_spool with its
# durable settings, spool_fsync on; worker_processes auto; per-IP
# limits off) plus policy_limits with limit_conn_rate, limit_msg_rate
# and limit_rcpt_rate at 1000000/s: high enough that nothing is refused,
# so that the checks are measured and not refusals.  The two sets differ
# in one line: "limit_backend shm;" or "limit_backend redis;" (both have
# redis_server, so both hold the same idle connections).  No greylisting
# (policy_greylist is not loaded).
#
# smtp-source sends the load (HELO, a new connection per message unless
# -d): one smtp-source per node, all at once; the run is timed from the
# first start to the last exit.  After one warm-up run per variant (not
# counted), the variants alternate, the first of each repetition
# alternating too.  A run counts only if smtp-source saw 2xx throughout,
# every message is in a spool, the nodes' metrics count it accepted and
# no refusal or temporary failure, and Redis ran one script per
# connection, MAIL and RCPT of the redis set (none decided locally
# without asking); bench/redis_summary.py checks, its report and the
# exit status say.  The client's address is 127.0.0.1 for every node,
# so all nodes check the same keys in Redis.
#
# Every process it starts is stopped by pid when it exits, whatever the
# reason (the smtp-source processes of a run cut short end on the
# stopped nodes); the work directory objs/bench-redis/run (configurations,
# spools, Redis) is removed then.  Output in DIR: runs.tsv (every run,
# bench/redis_run.py's columns), summary.md (bench/redis_summary.py),
# setup.txt, load.txt (what else ran on the machine), logs/.
set -euo pipefail

# one compound command: bash parses it whole before running it
{
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OBJS=$ROOT/objs
PY=/usr/bin/python3
NODES=2; SESSIONS=100; MSGS=10000; RCPTS=1; SIZE=4096; REPS=5; REUSE=
WORKERS=auto; TIMEOUT=300; OUT=
die() { echo "bench/redis.sh: $*" >&2; exit 1; }
log() { echo "$(date +%H:%M:%S) $*"; }
while [ $# -gt 0 ]; do
    case $1 in
        -n) NODES=$2; shift 2 ;;
        -s) SESSIONS=$2; shift 2 ;;
        -m) MSGS=$2; shift 2 ;;
        -k) RCPTS=$2; shift 2 ;;
        -l) SIZE=$2; shift 2 ;;
        -r) REPS=$2; shift 2 ;;
        -d) REUSE=--reuse; shift ;;
        -w) WORKERS=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
        *) die "unknown option $1 (-h for help)" ;;
    esac
done
[ "$NODES" -ge 1 ] && [ "$NODES" -le 250 ] || die "-n: 1 to 250 nodes"
[ "$SESSIONS" -ge "$NODES" ] || die "-s: at least one session per node"
[ "$MSGS" -ge "$NODES" ] || die "-m: at least one message per node"
[ -x "$OBJS/postern" ] || die "build first: ./configure && make"
for m in store_spool policy_relay policy_limits; do
    [ -f "$OBJS/modules/$m.so" ] || die "module $m is not built"
done
command -v smtp-source >/dev/null || die "smtp-source not found (apt-get install postfix)"
REDIS=$(command -v redis-server) || die "redis-server not found (apt-get install redis-server)"

WORK=$OBJS/bench-redis/run
OUT=${OUT:-$OBJS/bench-redis/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/logs/run.log") 2>&1

free_port() {      # free_port ADDR: a TCP port free on ADDR now
    "$PY" -c 'import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "$1"
}

# ------------------------------------------------------------------
# Processes, stopped by pid on every exit

REDIS_PID=; RUN_PID=
declare -A PID ADDR PORT MPORT
stop_pid() {       # stop_pid PID: TERM, up to 5 s, then KILL it and its children
    local pid=$1 kids
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$(pgrep -P "$pid" || true)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for k in $pid $kids; do kill -KILL "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # a run under way: its smtp-source processes fail on the stopped nodes
    [ -z "$RUN_PID" ] || kill -TERM "$RUN_PID" 2>/dev/null || true
    for k in "${!PID[@]}"; do stop_pid "${PID[$k]}"; done
    [ -z "$REDIS_PID" ] || stop_pid "$REDIS_PID"
    rm -rf "$WORK"
    [ $rc -eq 0 ] || log "redis.sh failed (rc=$rc); results so far in $OUT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_snapshot() {  # what else is running on the machine
    { echo "== $1: $(date -Is)"; uptime
      ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -8; } >> "$OUT/load.txt"
}

# ------------------------------------------------------------------
# Redis and the nodes

rm -rf "$WORK"
mkdir -p "$WORK/redis"
REDIS_PORT=$(free_port 127.0.0.1)
"$REDIS" --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK/redis" --logfile "$WORK/redis/redis.log" >/dev/null 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 50); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping | grep -q PONG || die "redis-server did not start"
log "redis-server on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"

node_conf() {      # node_conf VARIANT I BACKEND -> the node's postern.conf
    local d=$WORK/$1-$2
    cat <<EOF
# generated by bench/redis.sh: bench/run.sh's durable spool, plus limits
load_module $OBJS/modules/store_spool.so;
load_module $OBJS/modules/policy_relay.so;
load_module $OBJS/modules/policy_limits.so;

daemon off;
worker_processes $WORKERS;
worker_connections 12000;
worker_rlimit_nofile $(ulimit -Hn);
error_log $d/error.log notice;
pid $d/postern.pid;
spool_dir $d/spool;
spool_fsync on;
redis_server 127.0.0.1:$REDIS_PORT;
metrics_listen ${ADDR[$1-$2]}:${MPORT[$1-$2]};

smtp {
    hostname $1-$2.bench.test;
    max_connections 20000;
    max_connections_per_ip 20000;
    max_messages_per_session 100000;
    server {
        listen ${ADDR[$1-$2]}:${PORT[$1-$2]} backlog=4096;
        local_domains example.test;
        limit_conn_rate 1000000/s;
        limit_msg_rate 1000000/s;
        limit_rcpt_rate 1000000/s;
        limit_backend $3;
    }
}
EOF
}

wait_banner() {    # wait_banner ADDR PORT: until it greets with 220 (~10 s)
    for _ in $(seq 1 40); do
        if timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2 && head -c 3 <&3" \
               2>/dev/null | grep -q 220; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

node_start() {     # node_start VARIANT I BACKEND
    local k=$1-$2 d=$WORK/$1-$2
    mkdir -p "$d/spool"
    [ "$1" = local ] && ADDR[$k]=127.0.1.$2 || ADDR[$k]=127.0.2.$2
    PORT[$k]=$(free_port "${ADDR[$k]}")
    MPORT[$k]=$(free_port "${ADDR[$k]}")
    node_conf "$1" "$2" "$3" > "$d/postern.conf"
    "$OBJS/postern" -p "$d/" -c "$d/postern.conf" -t >/dev/null 2>&1 \
        || { "$OBJS/postern" -p "$d/" -c "$d/postern.conf" -t; die "bad configuration"; }
    ulimit -n "$(ulimit -Hn)"
    "$OBJS/postern" -p "$d/" -c "$d/postern.conf" -f > "$d/stdout" 2>&1 </dev/null &
    PID[$k]=$!
    wait_banner "${ADDR[$k]}" "${PORT[$k]}" \
        || die "node $k did not come up: $(tail -5 "$d/error.log" 2>/dev/null)"
    log "node $k on ${ADDR[$k]}:${PORT[$k]} (pid ${PID[$k]}, limit_backend $3)"
}

VARIANTS="local redis"
for i in $(seq 1 "$NODES"); do
    node_start local "$i" shm
    node_start redis "$i" redis
done

joined() {         # joined VARIANT FORMAT: one FORMAT per node, comma-separated
    local i k out=
    for i in $(seq 1 "$NODES"); do
        k=$1-$i
        out+=,$(case $2 in
            smtp) echo "${ADDR[$k]}:${PORT[$k]}" ;;
            metrics) echo "http://${ADDR[$k]}:${MPORT[$k]}/metrics" ;;
            pid) echo "${PID[$k]}" ;;
            spool) echo "$WORK/$k/spool" ;;
        esac)
    done
    echo "${out#,}"
}

clean_spools() {   # every node's queue and leftover temporary files
    find "$WORK"/*-*/spool/queue -type f -delete 2>/dev/null || true
    find "$WORK"/*-*/spool/tmp -type f ! -name 'pool-*' -delete 2>/dev/null || true
}

run_one() {        # run_one VARIANT REP MSGS OUTFILE
    local t0=$SECONDS
    clean_spools
    log "run $1 $2 (spools emptied in $((SECONDS - t0)) s)"
    "$PY" "$ROOT/bench/redis_run.py" --label "$1" --rep "$2" \
        --nodes "$(joined "$1" smtp)" --metrics "$(joined "$1" metrics)" \
        --masters "$(joined "$1" pid)" --spools "$(joined "$1" spool)" \
        --redis-port "$REDIS_PORT" --redis-pid "$REDIS_PID" \
        --sessions "$SESSIONS" --msgs "$3" --rcpts "$RCPTS" --size "$SIZE" \
        $REUSE --timeout "$TIMEOUT" --logdir "$OUT/logs" --out "$4" &
    RUN_PID=$!          # waited for in the background: a signal acts at once
    wait "$RUN_PID"
    RUN_PID=
}

# ------------------------------------------------------------------
# The runs

load_snapshot start
{ echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed file(s)"
  echo "command: bench/redis.sh -n $NODES -s $SESSIONS -m $MSGS -k $RCPTS -l $SIZE -r $REPS ${REUSE:+-d} -w $WORKERS"
  echo "date: $(date -Is)"; echo "cpus: $(nproc)"; uname -r
  "$REDIS" --version; } > "$OUT/setup.txt"

log "warm-up: one run per variant, not counted"
for v in $VARIANTS; do
    run_one "$v" warm-up "$MSGS" "$OUT/warmup.tsv"
done

for rep in $(seq 1 "$REPS"); do
    order=$VARIANTS
    [ $((rep % 2)) -eq 0 ] && order="redis local"
    for v in $order; do run_one "$v" "$rep" "$MSGS" "$OUT/runs.tsv"; done
    load_snapshot "after repetition $rep"
done
clean_spools
load_snapshot end

for k in "${!PID[@]}"; do     # a warning would put the runs in doubt
    if grep -E ' (warn|error|crit|alert|emerg): ' "$WORK/$k/error.log" \
           > "$OUT/logs/$k-warnings.log"; then
        log "node $k logged warnings: $OUT/logs/$k-warnings.log"
    else
        rm -f "$OUT/logs/$k-warnings.log"
    fi
done
cp "$WORK/redis/redis.log" "$OUT/logs/"

rc=0
"$PY" "$ROOT/bench/redis_summary.py" "$OUT/runs.tsv" > "$OUT/summary.md" || rc=$?
cat "$OUT/summary.md"
log "results in $OUT"
exit $rc
}
