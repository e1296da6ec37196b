#!/bin/bash
# bench/run.sh -- Postern against Postfix and smtp-sink, in one run.
#
# usage: bench/run.sh [options]          ("make bench" runs it with none)
#   -q, --quick        a short subset: 4 KiB x 10,100 sessions, 3 repetitions
#                      of ~3 s, idle memory at N=1000 only (~5 min)
#   -s "1 10 100"      concurrent sessions (smtp-source -s)
#   -l "4096 102400"   message body sizes in bytes
#   -r N               repetitions per cell (default 5)
#   --target S         seconds per run, sizes the message count (default 5)
#   -d                 many messages per session (smtp-source -d)
#   --peers "postfix sink"   peers to run beside Postern ("" for none)
#   --idle "1000 5000" idle sessions for the memory test ("" to skip)
#   --idle-reps N      repetitions of each idle test (default 3)
#   --idle-peers       also measure the peers' memory per idle session
#   --stats            group-commit statistics per cell (fresh server each)
#   --profile "perf strace"   profile Postern instead of comparing: for
#                      each cell one smtp-source run with perf record -g
#                      (perf.txt: hottest symbols), strace -c -f (syscalls
#                      per message), perfstat (perf stat: CPU per message)
#                      or trace (perf trace -s: the slowest syscalls of
#                      the event-loop threads, i.e. loop stalls) on its
#                      workers; no peers, no idle test
#   --variant LABEL:OBJS[:CONF]   benchmark another Postern build (OBJS is
#                      its objs/ directory) and/or configuration (CONF is
#                      appended at the top level of its configuration, e.g.
#                      "spool_sync_threads 4;"); repeatable.  Without it one
#                      variant runs: postern:objs (this tree's build).
#   --clean-settle S   after emptying a server's queue before each run,
#                      sync and wait S seconds (default 0): ext4 without a
#                      journal (this VM) skips recently deleted inodes on
#                      every create, so a run that starts right after
#                      thousands of deletions pays for them (see
#                      docs/PERFORMANCE.md)
#   --clean-mode delete|aside   how queues are emptied before a run:
#                      delete the files (default, as the shared harness
#                      does) or move them aside into a trash directory on
#                      the same file system, deleted when run.sh exits
#                      (Postern and Postfix only; see --clean-settle)
#   -o DIR             results (default objs/bench/<stamp>)
#
# It builds nothing: run "make" first.  Every server it starts listens on
# loopback only and is stopped, by pid, when the script exits for any
# reason; Postern's spool and the peers' queues are emptied before every
# run and at the end.  The peers run from a private copy of the shared
# harness's state (PEERS_ROOT, default /tmp/postern-bench/peers, ports
# 2681-2684) so that other users of /work/shared/bench are not disturbed.
#
# Output in DIR: bench.tsv (every run, bench.sh columns, file per
# repetition in bench-repN.tsv), idle.tsv, stats.tsv, report.txt
# (report.py tables), summary.md (medians, min-max, ratios against the
# peers measured in the same run), load.txt (machine load before/after),
# logs/.
set -euo pipefail

# the whole script is one compound command: bash parses it before running
# it, so that editing this file during a run cannot change the run
{
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${BENCH_SHARED:-/work/shared/bench}
[ -x "$SHARED/bench.sh" ] || { echo "run.sh: $SHARED/bench.sh not found (BENCH_SHARED)" >&2; exit 1; }

export PEERS_ROOT=${PEERS_ROOT:-/tmp/postern-bench/peers}
export PEERS_CGROUP=${PEERS_CGROUP:-/sys/fs/cgroup/cpuacct/postern-bench}
export POSTFIX_PORT=${POSTFIX_PORT:-2681}
export OPENSMTPD_PORT=${OPENSMTPD_PORT:-2682}
export HARAKA_PORT=${HARAKA_PORT:-2683}
export SINK_PORT=${SINK_PORT:-2684}
POSTERN_PORT=${POSTERN_PORT:-2670}
. "$SHARED/lib.sh"

SESSIONS="1 10 100"; SIZES="4096 102400"; REPS=5; TARGET=5; REUSE=
PEERS="postfix sink"; IDLE_N="1000 5000"; IDLE_REPS=3; IDLE_PEERS=
STATS=; VARIANTS=(); OUT=; PROFILE=; CLEAN_SETTLE=0; CLEAN_MODE=delete
while [ $# -gt 0 ]; do
    case $1 in
        -q|--quick) SESSIONS="10 100"; SIZES=4096; REPS=3; TARGET=3
                    IDLE_N=1000; IDLE_REPS=2; shift ;;
        -s) SESSIONS=$2; shift 2 ;;
        -l) SIZES=$2; shift 2 ;;
        -r) REPS=$2; shift 2 ;;
        --target) TARGET=$2; shift 2 ;;
        -d) REUSE=-d; shift ;;
        --peers) PEERS=$2; shift 2 ;;
        --idle) IDLE_N=$2; shift 2 ;;
        --idle-reps) IDLE_REPS=$2; shift 2 ;;
        --idle-peers) IDLE_PEERS=1; shift ;;
        --stats) STATS=1; shift ;;
        --profile) PROFILE=$2; shift 2 ;;
        --clean-settle) CLEAN_SETTLE=$2; shift 2 ;;
        --clean-mode) CLEAN_MODE=$2; shift 2 ;;
        --variant) VARIANTS+=("$2"); shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
        *) die "unknown option $1 (-h for help)" ;;
    esac
done
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=("postern:$ROOT/objs")
[ -z "$PROFILE" ] || { PEERS=; IDLE_N=; }
OUT=${OUT:-$ROOT/objs/bench/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
RUN=$ROOT/objs/bench/run            # prefixes of the Postern servers
exec > >(tee -a "$OUT/logs/run.log") 2>&1

# ------------------------------------------------------------------
# Postern servers: one per variant, port POSTERN_PORT + index

declare -A V_OBJS V_CONF V_PORT V_PID
LABELS=()
i=0
for v in "${VARIANTS[@]}"; do
    label=${v%%:*}; rest=${v#*:}
    objs=${rest%%:*}; conf=
    [ "$rest" != "$objs" ] && conf=${rest#*:}
    [ -x "$objs/postern" ] && [ -f "$objs/modules/store_spool.so" ] \
        || die "$objs/postern or its modules missing: run make"
    V_OBJS[$label]=$(cd "$objs" && pwd); V_CONF[$label]=$conf
    V_PORT[$label]=$((POSTERN_PORT + i)); V_PID[$label]=
    LABELS+=("$label"); i=$((i + 1))
done

postern_conf() {    # postern_conf LABEL -> writes PREFIX/bench.conf
    local l=$1 p=$RUN/$1
    mkdir -p "$p/log" "$p/spool"
    cat > "$p/bench.conf" <<EOF
# generated by bench/run.sh: durable spool (fsync on), real disk
load_module ${V_OBJS[$l]}/modules/store_spool.so;
load_module ${V_OBJS[$l]}/modules/policy_relay.so;

daemon off;
worker_processes auto;
worker_connections 12000;
worker_rlimit_nofile $(ulimit -Hn);
error_log log/postern.log notice;
pid postern.pid;
spool_dir spool;
spool_fsync on;
${V_CONF[$l]}

smtp {
    hostname postern-bench.localdomain;
    max_connections 20000;
    max_connections_per_ip 20000;
    max_messages_per_session 100000;
    server {
        listen 127.0.0.1:${V_PORT[$l]} backlog=4096;
        local_domains peers-sink.localdomain;
    }
}
EOF
}

wait_banner() {     # wait_banner PORT: until it greets with 220 (~10 s)
    for _ in $(seq 1 40); do
        if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && head -c 3 <&3" \
               2>/dev/null | grep -q 220; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

postern_start() {   # postern_start LABEL
    local l=$1 p=$RUN/$1
    postern_conf "$l"
    "${V_OBJS[$l]}/postern" -p "$p/" -c bench.conf -t >/dev/null 2>&1 \
        || { "${V_OBJS[$l]}/postern" -p "$p/" -c bench.conf -t; die "bad config"; }
    ulimit -n "$(ulimit -Hn)"
    "${V_OBJS[$l]}/postern" -p "$p/" -c bench.conf -f \
        >>"$p/log/stdout" 2>&1 </dev/null &
    V_PID[$l]=$!
    wait_banner "${V_PORT[$l]}" || die "postern $l did not come up: $(tail -5 "$p/log/postern.log" 2>/dev/null)"
    log "postern[$l] up on 127.0.0.1:${V_PORT[$l]} (pid ${V_PID[$l]})"
}

postern_stop() {    # postern_stop LABEL: QUIT, then TERM, then KILL (by pid)
    local l=$1 pid=${V_PID[$1]} kids k
    [ -n "$pid" ] || return 0
    V_PID[$l]=
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$("$PY" "$SHARED/procstat.py" pids "$pid" 2>/dev/null || echo "$pid")
    kill -QUIT "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

postern_count() { echo "find $RUN/$1/spool/queue -type f | wc -l"; }
settle_cmd() { [ "$CLEAN_SETTLE" = 0 ] || echo "; sync; sleep $CLEAN_SETTLE"; }
# aside: rename into RUN/trash/<time>/ (no inode is freed during the runs)
aside_cmd() { echo "d=$RUN/trash/\$(date +%s%N); mkdir -p \$d; find $* -type f -exec mv -t \$d {} +"; }
postern_clean() {
    if [ "$CLEAN_MODE" = aside ]; then
        echo "$(aside_cmd "$RUN/$1/spool/queue"); : > $RUN/$1/log/postern.log$(settle_cmd)"
    else
        # tmp/ holds only the running workers' pre-created files (pool-*)
        echo "find $RUN/$1/spool/queue -type f -delete; find $RUN/$1/spool/tmp -type f ! -name 'pool-*' -delete; : > $RUN/$1/log/postern.log$(settle_cmd)"
    fi
}
peer_clean() {
    if [ "$CLEAN_MODE" = aside ] && [ "$1" = postfix ]; then
        echo "$(aside_cmd "$PEERS_ROOT/postfix/queue/hold" "$PEERS_ROOT/postfix/queue/incoming"); : > $PEERS_ROOT/postfix/maillog$(settle_cmd)"
    else
        echo "$SHARED/peerctl.sh clean $1$(settle_cmd)"
    fi
}

# ------------------------------------------------------------------
# Cleanup on every exit

PEERS_STARTED=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for l in "${LABELS[@]}"; do postern_stop "$l"; done
    for p in "${PEERS_STARTED[@]}"; do
        "$SHARED/peerctl.sh" clean "$p" >/dev/null 2>&1 || true
        "$SHARED/peerctl.sh" stop "$p" >/dev/null 2>&1 || true
    done
    rm -rf "$RUN"
    [ $rc -eq 0 ] || log "run.sh failed (rc=$rc); partial results in $OUT"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_snapshot() {   # what else is running on the 2 cores
    { echo "== $1: $(date -Is)"; uptime
      ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -8; } >> "$OUT/load.txt"
}

# ------------------------------------------------------------------
# Start everything

load_snapshot start
{ echo "git: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) $(git -C "$ROOT" status --porcelain 2>/dev/null | wc -l) changed file(s)"
  echo "variants: ${VARIANTS[*]}"; echo "peers: $PEERS"
  echo "sessions: $SESSIONS  sizes: $SIZES  reps: $REPS  target: $TARGET s  reuse: ${REUSE:-no}"
  echo "idle: ${IDLE_N:-none} x $IDLE_REPS"; nproc; uname -r; } > "$OUT/setup.txt"

rm -rf "$RUN"
for l in "${LABELS[@]}"; do postern_start "$l"; done

if [ -n "$PEERS" ]; then
    for p in $PEERS; do
        case $p in postfix|haraka|opensmtpd) "$SHARED/setup.sh" "$p" >"$OUT/logs/setup-$p.log" 2>&1 \
            || die "setup.sh $p failed (see $OUT/logs/setup-$p.log)" ;; esac
        PEERS_STARTED+=("$p")
        "$SHARED/peerctl.sh" start "$p"
        "$SHARED/peerctl.sh" clean "$p"
    done
fi

peer_port() {
    case $1 in
        postfix) echo "$POSTFIX_PORT" ;; opensmtpd*) echo "$OPENSMTPD_PORT" ;;
        haraka) echo "$HARAKA_PORT" ;; sink) echo "$SINK_PORT" ;;
    esac
}

# a server is "KIND^LABEL^PORT^SPEC^COUNT^CLEAN" (^ = US, \x1f: the
# commands contain pipes and may be empty)
US=$'\x1f'
servers=()
for l in "${LABELS[@]}"; do
    servers+=("postern$US$l$US${V_PORT[$l]}$US${V_PID[$l]}$US$(postern_count "$l")$US$(postern_clean "$l")")
done
for p in $PEERS; do
    cnt="$SHARED/peerctl.sh count $p"; [ "$p" = sink ] && cnt=
    servers+=("peer$US$p$US$(peer_port "$p")$US$("$SHARED/peerctl.sh" spec "$p")$US$cnt$US$(peer_clean "$p")")
done

bench_one() {       # bench_one SERVER REPS [bench.sh options...]
    local kind label port spec cnt clean
    IFS=$US read -r kind label port spec cnt clean <<< "$1"; shift
    local reps=$1; shift
    "$SHARED/bench.sh" -r "$reps" $REUSE --server "$spec" \
        ${cnt:+--count "$cnt"} --clean "$clean" --label "$label" \
        --settle 10 "$@" 127.0.0.1 "$port"
}

# ------------------------------------------------------------------
# Profiles: one run per cell with a tool attached to the workers

profile_one() {     # profile_one TOOL LABEL SESSIONS SIZE MSGS
    local tool=$1 lab=$2 s=$3 l=$4 n=$5 base tpid workers
    base=$OUT/profile-$tool-$lab-$l-$s
    [ -e "$base.txt" ] && base=$base-$(date +%s)
    workers=$(pgrep -P "${V_PID[$lab]}" | paste -sd, -)
    bash -c "$(postern_clean "$lab")"
    case $tool in
        perf) perf record -q -g -o "$base.data" -p "$workers" >/dev/null 2>&1 & tpid=$! ;;
        perfstat) perf stat -e task-clock,context-switches,cpu-migrations,page-faults,cycles,instructions \
                      -p "$workers" -o "$base.txt" >/dev/null 2>&1 & tpid=$! ;;
        trace) perf trace -s -p "$workers" -o "$base.raw" >/dev/null 2>&1 & tpid=$! ;;
        strace) strace -c -f -o "$base.raw" $(for w in ${workers//,/ }; do echo -p "$w"; done) \
                    >/dev/null 2>&1 & tpid=$! ;;
        *) die "unknown profiler $tool" ;;
    esac
    sleep 1
    local t0 t1; t0=$(date +%s.%N)
    timeout 120 smtp-source $REUSE -s "$s" -m "$n" -l "$l" -M peers-bench.localdomain \
        -f bench@peers-bench.localdomain -t rcpt@peers-sink.localdomain \
        "inet:127.0.0.1:${V_PORT[$lab]}" >/dev/null 2>&1 || log "smtp-source failed ($tool $lab s=$s l=$l)"
    t1=$(date +%s.%N)
    sleep 0.5
    kill -INT "$tpid" 2>/dev/null || true
    wait "$tpid" 2>/dev/null || true
    local rate; rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}')
    case $tool in
        perfstat) local tc; tc=$(awk '/task-clock/{gsub(",","",$1); print $1; exit}' "$base.txt")
                  echo "task-clock per message: $(awk -v t="$tc" -v n="$n" 'BEGIN{printf "%.3f", t/n}') ms" >> "$base.txt" ;;
        perf) perf report -i "$base.data" --stdio --no-children --percent-limit 0.7 \
                  --sort dso,symbol -g none 2>/dev/null > "$base.txt"
              perf report -i "$base.data" --stdio --no-children --sort comm,dso \
                  -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -20 >> "$base.txt" ;;
        trace) "$PY" "$ROOT/bench/loopstalls.py" "$base.raw" "$n" "${workers//,/ }" > "$base.txt" ;;
        strace) "$PY" - "$base.raw" "$n" > "$base.txt" <<'PYEOF'
import sys
n = int(sys.argv[2])
print(f"syscalls per message ({n} messages), all threads of the workers")
print(f"{'syscall':<20}{'calls/msg':>10}{'errors/msg':>11}{'us/msg':>9}")
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) >= 5 and f[0][0].isdigit() and not line.startswith("100.00"):
        name = f[-1]; calls = int(f[3]); errs = int(f[4]) if len(f) == 6 else 0
        rows.append((calls / n, errs / n, float(f[1]) * 1e6 / n, name))
for c, e, us, name in sorted(rows, reverse=True):
    print(f"{name:<20}{c:>10.2f}{e:>11.2f}{us:>9.1f}")
print(f"{'total':<20}{sum(r[0] for r in rows):>10.2f}")
PYEOF
        ;;
    esac
    echo "$tool $lab s=$s l=$l: $n messages, $rate msgs/s under the profiler" | tee -a "$base.txt"
}

if [ -n "$PROFILE" ]; then
    for tool in $PROFILE; do for lab in "${LABELS[@]}"; do
        for l in $SIZES; do for s in $SESSIONS; do
            profile_one "$tool" "$lab" "$s" "$l" "$((l > 10000 ? 2000 : 5000))"
        done; done
    done; done
    SESSIONS=
fi

# ------------------------------------------------------------------
# Throughput: pilots size each cell per server, then repetitions are the
# outer loop and the servers the inner one, so that every server sees
# the same drifts of this shared machine within seconds of the others.

declare -A NMSG
if [ -n "$SESSIONS" ] && [ -n "$SIZES" ]; then
    log "pilots (message count per cell, ~$TARGET s per run)"
    for sv in "${servers[@]}"; do
        label=$(echo "$sv" | cut -d"$US" -f2)
        bench_one "$sv" 0 -s "$SESSIONS" -l "$SIZES" --target "$TARGET" \
            2>"$OUT/logs/pilot-$label.log" >/dev/null || true
        while read -r s l n; do NMSG[$label,$l,$s]=$n; done < <(
            sed -n 's/.*pilot s=\([0-9]*\) l=\([0-9]*\): .* -> \([0-9]*\) messages.*/\1 \2 \3/p' \
                "$OUT/logs/pilot-$label.log")
    done

    for rep in $(seq 1 "$REPS"); do
        log "repetition $rep/$REPS"
        for l in $SIZES; do for s in $SESSIONS; do for sv in "${servers[@]}"; do
            label=$(echo "$sv" | cut -d"$US" -f2)
            n=${NMSG[$label,$l,$s]:-200}
            bench_one "$sv" 1 -s "$s" -l "$l" -m "$n" --out "$OUT/bench-rep$rep.tsv" \
                >/dev/null 2>>"$OUT/logs/bench.log" || log "bench.sh failed: $label s=$s l=$l"
            tail -1 "$OUT/logs/bench.log"
        done; done; done
        load_snapshot "after repetition $rep"
    done
    # one file, with the repetition number in the "rep" column
    head -1 "$OUT/bench-rep1.tsv" > "$OUT/bench.tsv"
    for rep in $(seq 1 "$REPS"); do
        tail -n +2 "$OUT/bench-rep$rep.tsv" | awk -F'\t' -v OFS='\t' -v r="$rep" '{$5=r; print}' >> "$OUT/bench.tsv"
    done
fi

# ------------------------------------------------------------------
# Group commit: how many messages share a batch (fresh server per cell,
# the store logs its counters when the worker exits)

if [ -n "$STATS" ]; then
    echo -e "label\tsessions\tsize\tmsgs\tbatches\tmsgs_per_batch\tmax_batch\tfsyncs_per_msg\tdir_fsyncs_per_msg\tms_per_batch\tlatency_ms\tlatency_max_ms" > "$OUT/stats.tsv"
    for lab in "${LABELS[@]}"; do for l in $SIZES; do for s in $SESSIONS; do
        postern_stop "$lab"; bash -c "$(postern_clean "$lab")"; postern_start "$lab"
        n=${NMSG[$lab,$l,$s]:-2000}
        timeout 120 smtp-source $REUSE -s "$s" -m "$n" -l "$l" -M peers-bench.localdomain \
            -f bench@peers-bench.localdomain -t rcpt@peers-sink.localdomain \
            "inet:127.0.0.1:${V_PORT[$lab]}" >/dev/null 2>&1 || log "smtp-source failed (stats $lab s=$s l=$l)"
        postern_stop "$lab"
        "$PY" "$ROOT/bench/spoolstats.py" --label "$lab" --sessions "$s" --size "$l" \
            "$RUN/$lab/log/postern.log" >> "$OUT/stats.tsv" || true
        bash -c "$(postern_clean "$lab")"
        postern_start "$lab"
    done; done; done
fi

# ------------------------------------------------------------------
# Memory per idle session: a fresh server for every measurement

if [ -n "$IDLE_N" ]; then
    idle_targets=("${servers[@]:0:${#LABELS[@]}}")
    if [ -n "$IDLE_PEERS" ]; then
        for sv in "${servers[@]:${#LABELS[@]}}"; do idle_targets+=("$sv"); done
    fi
    for rep in $(seq 1 "$IDLE_REPS"); do for n in $IDLE_N; do
        for sv in "${idle_targets[@]}"; do
            IFS=$US read -r kind label port spec cnt clean <<< "$sv"
            if [ "$label" = postfix ] && [ "$n" -gt 100 ]; then continue; fi
            if [ "$kind" = postern ]; then
                postern_stop "$label"; postern_start "$label"; pids=${V_PID[$label]}
            else
                "$SHARED/peerctl.sh" restart "$label" >/dev/null; pids=$("$SHARED/peerctl.sh" pids "$label")
            fi
            sleep 1
            "$PY" "$SHARED/idle-conns.py" 127.0.0.1 "$port" "$n" --server "$pids" \
                --label "$label" --parallel 50 | tee -a "$OUT/logs/idle.txt" \
                | grep '^RESULT' >> "$OUT/idle.tsv" || log "idle-conns $label N=$n: not all sessions opened"
            tail -3 "$OUT/logs/idle.txt" | grep 'per connection' || true
        done
    done; done
fi

load_snapshot end

# ------------------------------------------------------------------
# Reports

{
    [ -s "$OUT/bench.tsv" ] && "$PY" "$SHARED/report.py" "$OUT/bench.tsv" \
        ${IDLE_N:+--idle "$OUT/idle.tsv"}
    [ ! -s "$OUT/bench.tsv" ] && [ -s "$OUT/idle.tsv" ] && "$PY" "$SHARED/idle-summary.py" "$OUT/idle.tsv"
    true
} > "$OUT/report.txt" 2>&1
"$PY" "$ROOT/bench/summary.py" --out-dir "$OUT" > "$OUT/summary.md" 2>&1 || true
cat "$OUT/report.txt" "$OUT/summary.md"
log "results in $OUT"
exit
}
