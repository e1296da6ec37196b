#!/bin/bash
# bench/milter.sh -- the cost of one milter on the receive path (issue 12):
# rspamd's milter proxy in the loop, Postern and Postfix side by side in
# one run.  Four variants, interleaved in every repetition (the starting
# variant rotates from one repetition to the next):
#   postern         the build of POSTERN_SRC, store_spool with the default
#                   durability (spool_fsync on), default settings otherwise
#   postern+rspamd  the same with `milter inet:127.0.0.1:PORT` to rspamd
#   postfix         a private Postfix from the shared harness (setup.sh,
#                   peerctl.sh): every message filed on hold, cleanup(8)
#                   fsyncs its queue file, nothing is delivered
#   postfix+rspamd  the same instance, a second smtpd port with
#                   `smtpd_milters = inet:127.0.0.1:PORT`
# One rspamd (a self-scanning milter proxy with the milter_headers plugin
# only, as in tests/integration/test_milter_peers.py), smtp-source as the
# client (HELO, a new connection per message).
#
# usage: bench/milter.sh [options]
#   -r N            repetitions (default 3, at most 20)
#   -n N            messages per run (default 5000, at most 50000)
#   -s N            concurrent sessions (default 20)
#   -l BYTES        message size (default 4096)
#   --sample K      Postfix messages read back with postcat per milter
#                   run (default 20; every stored file is also grepped)
#   --rspamd-count N  rspamd proxy processes (default 1, as in the test)
#   --max-time S    limit of one smtp-source run (default 300)
#   --port P        first of 6 loopback ports (default 2691)
#   --no-build      do not run configure/make in POSTERN_SRC
#   -o DIR          results (default objs/bench/milter-<stamp>)
# environment:
#   POSTERN_SRC     the Postern tree to build and measure (default: the
#                   tree this script is in); built with ./configure (when
#                   it has no Makefile yet) and make -j2
#   BENCH_SHARED    the shared peer harness (default /work/shared/bench)
#
# Per run: messages that reached the server's queue, msgs/s (stored
# messages / wall time of smtp-source), whether every stored message of a
# milter variant carries rspamd's headers (and none of the others), CPU
# seconds of the MTA, of rspamd, of smtp-source and of everything else on
# the machine (/proc/stat's busy time minus those three: a sign of other
# tenants, approximate; it came out below zero in runs where the servers
# mostly wait), warnings logged.  Output in DIR: runs.tsv (every run),
# summary.tsv (medians), summary.txt (table and ratios), logs/.
#
# Needs root (Postfix's master), rspamd, postfix, smtp-source.  Loopback
# only (rspamd and Postfix run in the harness's private mount namespace,
# whose resolv.conf points at 127.0.0.1); every process it starts is
# stopped by pid when it exits, also on Ctrl-C; each run is bounded.
set -euo pipefail

# one compound command: bash parses the whole script before running it,
# so that editing this file during a run cannot change the run
{
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=$(cd "${POSTERN_SRC:-$ROOT}" && pwd)
SHARED=${BENCH_SHARED:-/work/shared/bench}
[ -x "$SHARED/peerctl.sh" ] || { echo "milter.sh: $SHARED/peerctl.sh not found (BENCH_SHARED)" >&2; exit 1; }

REPS=3 N=5000 S=20 L=4096 SAMPLE=20 RSPAMD_COUNT=1 MAX_TIME=300
BASE_PORT=2691 BUILD=1 OUT=
while [ $# -gt 0 ]; do
    case $1 in
        -r) REPS=$2; shift 2 ;;
        -n) N=$2; shift 2 ;;
        -s) S=$2; shift 2 ;;
        -l) L=$2; shift 2 ;;
        --sample) SAMPLE=$2; shift 2 ;;
        --rspamd-count) RSPAMD_COUNT=$2; shift 2 ;;
        --max-time) MAX_TIME=$2; shift 2 ;;
        --port) BASE_PORT=$2; shift 2 ;;
        --no-build) BUILD=; shift ;;
        -o) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "milter.sh: unknown option $1 (-h for help)" >&2; exit 64 ;;
    esac
done

# the shared harness's settings (log, die, PY); its state is made
# private below: own root (PEERS_ROOT), ports and cgroup
export POSTFIX_PORT=$((BASE_PORT + 4))
export PEERS_CGROUP=/sys/fs/cgroup/cpuacct/postern-milter-$$
# shellcheck source=/dev/null
. "$SHARED/lib.sh"

num() {             # num OPTION VALUE MIN MAX
    case $2 in ''|*[!0-9]*) die "$1 must be a number, not '$2'" ;; esac
    if [ "$2" -lt "$3" ] || [ "$2" -gt "$4" ]; then die "$1 must be $3..$4"; fi
}
num -r "$REPS" 1 20; num -n "$N" 1 50000; num -s "$S" 1 1000
num -l "$L" 1 10485760; num --sample "$SAMPLE" 0 1000
num --rspamd-count "$RSPAMD_COUNT" 1 8; num --max-time "$MAX_TIME" 1 600
num --port "$BASE_PORT" 1024 65000
[ "$(id -u)" = 0 ] || die "needs root (Postfix's master process)"
for t in rspamd postfix postsuper postcat smtp-source /usr/bin/time; do
    command -v "$t" >/dev/null || die "$t is not installed"
done

RSPAMD_PORT=$BASE_PORT DEAD_PORT=$((BASE_PORT + 1))
PT_PORT=$((BASE_PORT + 2)) PTM_PORT=$((BASE_PORT + 3))
PF_PORT=$POSTFIX_PORT PFM_PORT=$((BASE_PORT + 5))
for p in $RSPAMD_PORT $DEAD_PORT $PT_PORT $PTM_PORT $PF_PORT $PFM_PORT; do
    if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null; then
        die "port $p is in use (--port to choose others)"
    fi
done

OUT=${OUT:-$ROOT/objs/bench/milter-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
W=$(mktemp -d /tmp/postern-milter.XXXXXX)
chmod 755 "$W"                      # Postfix's and Postern's users go through
export PEERS_ROOT=$W/peers
PEERS_RUN=$PEERS_ROOT/run
# a copy of the output in the log; tee ignores Ctrl-C so that the
# cleanup's messages still reach it
exec > >(trap '' INT TERM; exec tee -a "$OUT/logs/run.log") 2>&1

# ------------------------------------------------------------------
# Cleanup on every exit: only what this script started, by pid

RSPAMD_PID='' CLIENT_PID='' PF_STARTED=''
declare -A PT_PID=()
# shellcheck disable=SC2317  # called from the trap
stop_tree() {       # stop_tree PID SIGNAL: SIGNAL, wait 5 s, KILL the tree
    local pid=$1 kids k
    kill -0 "$pid" 2>/dev/null || return 0
    kids=$("$PY" "$SHARED/procstat.py" pids "$pid" 2>/dev/null || echo "$pid")
    kill "-$2" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    for k in $kids; do kill -KILL "$k" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}
# shellcheck disable=SC2317
cleanup() {
    local rc=$? v
    trap - EXIT INT TERM
    set +e
    # timeout(1) passes the TERM on to its process group (smtp-source)
    [ -n "$CLIENT_PID" ] && kill -TERM "$CLIENT_PID" 2>/dev/null
    for v in "${!PT_PID[@]}"; do stop_tree "${PT_PID[$v]}" QUIT; done
    if [ -n "$PF_STARTED" ]; then
        "$SHARED/peerctl.sh" stop postfix >/dev/null 2>&1
        rmdir "$PEERS_CGROUP" 2>/dev/null
    fi
    [ -n "$RSPAMD_PID" ] && stop_tree "$RSPAMD_PID" TERM
    # keep the servers' logs, drop their queues and configurations
    for v in rspamd/rspamd.log pt/postern.log ptm/postern.log peers/postfix/maillog; do
        [ -f "$W/$v" ] && cp "$W/$v" "$OUT/logs/${v//\//-}"
    done
    rm -rf "$W"
    [ "$rc" -eq 0 ] || log "milter.sh failed (rc=$rc); partial results in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------
# Build

if [ -n "$BUILD" ]; then
    log "building $SRC (log: $OUT/logs/build.log)"
    ( cd "$SRC" && { [ -f Makefile ] || ./configure; } && make -j2 ) \
        >"$OUT/logs/build.log" 2>&1 || die "build failed: $(tail -5 "$OUT/logs/build.log")"
fi
OBJS=$SRC/objs
for f in postern modules/store_spool.so modules/policy_relay.so modules/filter_milter.so; do
    [ -e "$OBJS/$f" ] || die "$OBJS/$f missing: build $SRC first"
done

# ------------------------------------------------------------------
# Servers

wait_listen() {     # wait_listen PORT [220]: until it accepts (and greets)
    for _ in $(seq 1 80); do
        if [ -z "${2:-}" ]; then
            timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        elif timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && head -c 3 <&3" \
                 2>/dev/null | grep -q 220; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

start_rspamd() {    # the proxy of test_milter_peers.py, logging warnings only
    local d=$W/rspamd
    mkdir -p "$d" "$PEERS_RUN"
    cat > "$d/rspamd.conf" <<EOF
options {
    pidfile = "$d/rspamd.pid";
    filters = "";
    # nothing is looked up off this machine: a loopback port nobody serves
    dns { nameserver = ["127.0.0.1:$DEAD_PORT"]; timeout = 1s; retransmits = 1; }
    control_socket = "$d/rspamd.sock mode=0600";
    history_file = "$d/history";
    cache_file = "$d/symbols.cache";
    dynamic_conf = "$d/dynamic";
    tempdir = "$d";
}
logging { type = "file"; filename = "$d/rspamd.log"; level = "warning"; }
actions { reject = 15; add_header = 6; greylist = 4; }
# one plugin: the headers a milter adds to every message it scans
modules { path = "/usr/share/rspamd/plugins/milter_headers.lua"; }
milter_headers {
    use = ["x-spamd-result", "x-rspamd-queue-id", "x-spam-status"];
    skip_local = false;
    skip_authenticated = false;
}
worker "rspamd_proxy" {
    bind_socket = "127.0.0.1:$RSPAMD_PORT";
    milter = yes;
    timeout = 30s;
    count = $RSPAMD_COUNT;
    spam_header = "X-Spam";
    upstream "local" { default = yes; self_scan = yes; }
}
EOF
    : > "$d/rspamd.log"
    "$SHARED/nsrun.sh" -- rspamd -i -f -c "$d/rspamd.conf" >"$d/stdout" 2>&1 </dev/null &
    RSPAMD_PID=$!
    wait_listen "$RSPAMD_PORT" \
        || die "rspamd did not come up: $(tail -3 "$d/rspamd.log" "$d/stdout" 2>/dev/null)"
    log "rspamd $(rspamd --version 2>/dev/null | awk '{print $NF; exit}'): milter proxy on 127.0.0.1:$RSPAMD_PORT (pid $RSPAMD_PID, $RSPAMD_COUNT process(es))"
}

start_postern() {   # start_postern DIR PORT [milter]
    local d=$W/$1 milter='' mod=
    mkdir -p "$d/spool"
    if [ -n "${3:-}" ]; then
        mod="load_module $OBJS/modules/filter_milter.so;"
        milter="milter inet:127.0.0.1:$RSPAMD_PORT default_action=tempfail timeout=30s;"
    fi
    cat > "$d/postern.conf" <<EOF
# generated by bench/milter.sh: default durability (spool_fsync on)
load_module $OBJS/modules/store_spool.so;
load_module $OBJS/modules/policy_relay.so;
$mod
daemon off;
worker_processes auto;
error_log $d/postern.log notice;
pid $d/postern.pid;
spool_dir $d/spool;

smtp {
    hostname postern-milter.localdomain;
    server {
        listen 127.0.0.1:$2;
        local_domains peers-sink.localdomain;
        $milter
    }
}
EOF
    "$OBJS/postern" -p "$d/" -c postern.conf -t >"$d/check" 2>&1 \
        || die "postern $1: bad configuration: $(cat "$d/check")"
    "$OBJS/postern" -p "$d/" -c postern.conf -f >"$d/stdout" 2>&1 </dev/null &
    PT_PID[$1]=$!
    wait_listen "$2" 220 || die "postern $1 did not come up: $(tail -5 "$d/postern.log")"
    log "postern ($OBJS) on 127.0.0.1:$2${3:+ with the milter} (pid ${PT_PID[$1]})"
}

start_postfix() {   # the harness's instance plus a port with the milter
    local c=$PEERS_ROOT/postfix/conf
    "$SHARED/setup.sh" postfix >"$OUT/logs/setup-postfix.log" 2>&1 \
        || die "setup.sh postfix failed (see $OUT/logs/setup-postfix.log)"
    echo "127.0.0.1:$PFM_PORT inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:$RSPAMD_PORT" \
        >> "$c/master.cf"
    postfix -c "$c" check >/dev/null 2>&1 || die "postfix check failed"
    PF_STARTED=1
    "$SHARED/peerctl.sh" start postfix
    wait_listen "$PFM_PORT" 220 || die "postfix did not come up on $PFM_PORT"
    log "postfix $(postconf -c "$c" -h mail_version) on 127.0.0.1:$PF_PORT, with the milter on :$PFM_PORT"
}

# ------------------------------------------------------------------
# Per variant: port, queue, count, clean, checks

VARIANTS=(postern postern+rspamd postfix postfix+rspamd)
port_of() {
    case $1 in
        postern) echo "$PT_PORT" ;; postern+rspamd) echo "$PTM_PORT" ;;
        postfix) echo "$PF_PORT" ;; postfix+rspamd) echo "$PFM_PORT" ;;
    esac
}
dir_of() { case $1 in postern) echo "$W/pt" ;; postern+rspamd) echo "$W/ptm" ;; esac; }

stored_files() {    # stored_files VARIANT: one path per stored message
    case $1 in
        postern*) find "$(dir_of "$1")/spool/queue" -type f ! -name '*.state*' ;;
        postfix*) find "$PEERS_ROOT/postfix/queue/"{hold,incoming,active,deferred} \
                      -type f 2>/dev/null ;;
    esac
}

clean() {           # clean VARIANT: empty its queue and its log
    local d
    case $1 in
        postern*) d=$(dir_of "$1")
                  find "$d/spool/queue" -type f -delete
                  find "$d/spool/tmp" -type f ! -name 'pool-*' -delete 2>/dev/null || true
                  : > "$d/postern.log" ;;
        postfix*) "$SHARED/peerctl.sh" clean postfix ;;
    esac
    sync
}

mta_spec() {        # procstat.py SPEC of the variant's server
    case $1 in
        postern*) echo "${PT_PID[$(basename "$(dir_of "$1")")]}" ;;
        postfix*) "$SHARED/peerctl.sh" spec postfix ;;
    esac
}

cpu_of() { "$PY" "$SHARED/procstat.py" cpu "$1" 2>/dev/null || echo nan; }
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8+$9)/hz; exit}' /proc/stat; }
calc() { case " $1 " in *nan*) echo nan ;; *) awk "BEGIN{printf \"%.3f\", $1}" ;; esac; }

warnings() {        # warnings VARIANT: warnings and errors its server logged
    case $1 in
        postern*) grep -cE '\[(warn|error|crit|alert|emerg)\]' "$(dir_of "$1")/postern.log" ;;
        postfix*) grep -cE ' (warning|error|fatal|panic): ' "$PEERS_ROOT/postfix/maillog" ;;
    esac || true
}

# hdr_missing VARIANT FILES: how many stored files lack rspamd's two
# headers (milter variants) or carry one (the others).  Postfix's queue
# files are records, but each header line is one record, its name intact.
hdr_check() {
    local v=$1 list=$2 h bad=0 n
    case $v in
        *+rspamd)
            for h in X-Spamd-Result: X-Rspamd-Queue-Id:; do
                n=$({ xargs -r grep -L -F "$h" < "$list" || true; } | wc -l)
                bad=$((bad + n))
            done ;;
        *) bad=$({ xargs -r grep -l -F X-Rspamd-Queue-Id: < "$list" || true; } | wc -l) ;;
    esac
    echo "$bad"
}

# sample_check VARIANT FILES: read K Postfix messages back with postcat
# (the header section as Postfix will deliver it); prints "checked bad"
sample_check() {
    local v=$1 list=$2 f checked=0 bad=0 hdrs
    [ "$v" = postfix+rspamd ] || { echo "0 0"; return; }
    while read -r f; do
        checked=$((checked + 1))
        hdrs=$(postcat -c "$PEERS_ROOT/postfix/conf" -h "$f" 2>/dev/null || true)
        case $hdrs in
            *X-Spamd-Result:*X-Rspamd-Queue-Id:*|*X-Rspamd-Queue-Id:*X-Spamd-Result:*) ;;
            *) bad=$((bad + 1)); log "no rspamd header in $(basename "$f") (postcat)" ;;
        esac
    done < <(shuf -n "$SAMPLE" "$list")
    echo "$checked $bad"
}

# ------------------------------------------------------------------
# One run

HDR=$'variant\trep\tmsgs\tstored\tseconds\tmsgs_per_s\trc\thdr_bad\tsample\tsample_bad\tmta_cpu_s\trspamd_cpu_s\tclient_cpu_s\tother_cpu_s\twarnings\trspamd_log\tstatus'
run_one() {         # run_one VARIANT REP [MSGS] -> appends a row to runs.tsv
    local v=$1 rep=$2 m=${3:-$N} rc=0 spec t0 t1 b0 b1 c0 c1 r0 r1 rl0
    local got secs rate ucpu other list hb sample sbad warn rlog status
    clean "$v"
    sleep 1
    spec=$(mta_spec "$v")
    rl0=$(wc -l < "$W/rspamd/rspamd.log")
    c0=$(cpu_of "$spec"); r0=$(cpu_of "$RSPAMD_PID"); b0=$(busy); t0=$(date +%s.%N)
    timeout "$MAX_TIME" /usr/bin/time -f '%U %S' -o "$W/client.time" \
        smtp-source -s "$S" -m "$m" -l "$L" -M peers-bench.localdomain \
        -f bench@peers-bench.localdomain -t rcpt@peers-sink.localdomain \
        "inet:127.0.0.1:$(port_of "$v")" >"$W/client.out" 2>&1 </dev/null &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=
    t1=$(date +%s.%N); b1=$(busy); c1=$(cpu_of "$spec"); r1=$(cpu_of "$RSPAMD_PID")
    [ $rc -eq 0 ] || log "$v: smtp-source rc=$rc: $(tail -c 300 "$W/client.out" | tr '\n' ' ')"

    list=$W/stored.list
    stored_files "$v" > "$list"
    got=$(wc -l < "$list")
    secs=$(calc "$t1 - $t0")
    rate=$(calc "$got / ($t1 - $t0)")
    ucpu=$(awk '{print $1 + $2}' "$W/client.time" 2>/dev/null | tail -1)
    other=$(calc "$b1 - $b0 - ($c1 - $c0) - ($r1 - $r0) - ${ucpu:-0}")
    hb=$(hdr_check "$v" "$list")
    read -r sample sbad < <(sample_check "$v" "$list")
    warn=$(warnings "$v")
    rlog=$(( $(wc -l < "$W/rspamd/rspamd.log") - rl0 ))
    [ "$rlog" -eq 0 ] || tail -n "$rlog" "$W/rspamd/rspamd.log" > "$OUT/logs/rspamd-$v-$rep.log"
    [ "$warn" -eq 0 ] || case $v in
        postern*) cp "$(dir_of "$v")/postern.log" "$OUT/logs/postern-$v-$rep.log" ;;
        postfix*) cp "$PEERS_ROOT/postfix/maillog" "$OUT/logs/maillog-$v-$rep.log" ;;
    esac

    status=ok
    [ $rc -eq 0 ] || status="rc=$rc"
    [ "$got" -eq "$m" ] || status="$status,stored=$got"
    [ "$hb" -eq 0 ] || status="$status,hdr_bad=$hb"
    [ "$sbad" -eq 0 ] || status="$status,sample_bad=$sbad"
    status=${status#ok,}
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$v" "$rep" "$m" "$got" "$secs" "$rate" "$rc" "$hb" "$sample" "$sbad" \
        "$(calc "$c1 - $c0")" "$(calc "$r1 - $r0")" "${ucpu:-nan}" "$other" \
        "$warn" "$rlog" "$status" >> "$OUT/runs.tsv"
    printf '%-15s rep %s: %6s msgs/s  stored %s/%s  mta %ss rspamd %ss other %ss cpu  warnings %s/%s  %s\n' \
        "$v" "$rep" "$rate" "$got" "$m" "$(calc "$c1 - $c0")" "$(calc "$r1 - $r0")" \
        "$other" "$warn" "$rlog" "$status"
}

# ------------------------------------------------------------------
# Run

{ echo "date: $(date -Is)"
  echo "postern: $SRC ($(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)," \
       "$(git -C "$SRC" status --porcelain 2>/dev/null | wc -l) changed file(s))"
  echo "command: bench/milter.sh -r $REPS -n $N -s $S -l $L --sample $SAMPLE --rspamd-count $RSPAMD_COUNT"
  echo "cpus: $(nproc), $(uname -r)"; uptime; } > "$OUT/setup.txt"
cat "$OUT/setup.txt"
log "milter bench: $REPS repetitions, $N messages of $L bytes, $S sessions; results in $OUT"
printf '%s\n' "$HDR" > "$OUT/runs.tsv"

start_rspamd
start_postern pt "$PT_PORT"
start_postern ptm "$PTM_PORT" milter
start_postfix

# warm-up: rspamd's first scans, the servers' first processes (rep 0,
# not in the summary)
for v in "${VARIANTS[@]}"; do run_one "$v" 0 $((S * 5)); done
for rep in $(seq 1 "$REPS"); do
    for i in 0 1 2 3; do
        run_one "${VARIANTS[$(( (i + rep - 1) % 4 ))]}" "$rep"
    done
done
for v in "${VARIANTS[@]}"; do clean "$v"; done
uptime >> "$OUT/setup.txt"

"$PY" - "$OUT/runs.tsv" "$OUT/summary.tsv" <<'EOF' | tee "$OUT/summary.txt"
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")
        if r["rep"] != "0"]
names = ["postern", "postern+rspamd", "postfix", "postfix+rspamd"]
def med(rs, key, per=1.0):
    v = [float(r[key]) * per for r in rs if r[key] != "nan"]
    return statistics.median(v) if v else float("nan")
m = {}
with open(sys.argv[2], "w") as out:
    out.write("variant\truns\tok\tmedian_msgs_per_s\tmin\tmax"
              "\tmta_cpu_ms_per_msg\trspamd_cpu_ms_per_msg\tother_cpu_s\n")
    print(f"{'variant':<16}{'runs ok':>8}{'msgs/s':>9}{'(min-max)':>14}"
          f"{'MTA ms/msg':>12}{'rspamd ms/msg':>15}{'other CPU s':>13}")
    for n in names:
        rs = [r for r in rows if r["variant"] == n]
        ok = [r for r in rs if r["status"] == "ok"]
        rates = [float(r["msgs_per_s"]) for r in ok]
        m[n] = statistics.median(rates) if rates else float("nan")
        lo = min(rates) if rates else float("nan")
        hi = max(rates) if rates else float("nan")
        msgs = int(rs[0]["msgs"]) if rs else 1
        mta = med(ok, "mta_cpu_s", 1000.0 / msgs)
        rsp = med(ok, "rspamd_cpu_s", 1000.0 / msgs)
        oth = med(ok, "other_cpu_s")
        out.write(f"{n}\t{len(rs)}\t{len(ok)}\t{m[n]:.1f}\t{lo:.1f}\t{hi:.1f}"
                  f"\t{mta:.3f}\t{rsp:.3f}\t{oth:.2f}\n")
        span = f"{lo:.0f}-{hi:.0f}"
        print(f"{n:<16}{len(ok):>4}/{len(rs):<3}{m[n]:>9.0f}{span:>14}"
              f"{mta:>12.3f}{rsp:>15.3f}{oth:>13.2f}")
print()
for a, b in [("postern+rspamd", "postern"), ("postfix+rspamd", "postfix"),
             ("postern+rspamd", "postfix+rspamd"), ("postern", "postfix")]:
    print(f"{a + ' / ' + b:<34}{m[a] / m[b]:>6.2f}")
bad = [r for r in rows if r["status"] != "ok"]
for r in bad:
    print(f"not ok: {r['variant']} rep {r['rep']}: {r['status']}")
warn = [r for r in rows if r["warnings"] != "0" or r["rspamd_log"] != "0"]
for r in warn:
    print(f"logged: {r['variant']} rep {r['rep']}: {r['warnings']} MTA"
          f" warning(s), {r['rspamd_log']} rspamd log line(s) (see logs/)")
EOF
log "results in $OUT"
exit
}
