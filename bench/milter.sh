#!/bin/bash
# bench/milter.sh -- the cost of one milter on the receive path: rspamd's
# milter proxy in the loop, Postern and Postfix side by side in one run
# (issue 12).  Four variants, interleaved in every repetition:
#   postern        this tree's build, store_spool (fsync on), no milter
#   postern+rspamd the same with `milter inet:...` to rspamd
#   postfix        a private Postfix, every message filed on hold
#                  (cleanup writes and fsyncs it; nothing is delivered)
#   postfix+rspamd the same with smtpd_milters to the same rspamd
# One rspamd (a self-scanning milter proxy, the milter_headers plugin
# only, no DNS off this machine), smtp-source as the client.
#
# usage: bench/milter.sh [-r REPS] [-n MSGS] [-s SESSIONS] [-l BYTES]
#   -r  repetitions (default 3)     -n  messages per run (default 2000)
#   -s  sessions (default 20)       -l  message size (default 4096)
#   -o  results directory (default objs/bench/milter-<stamp>)
# Needs root (Postfix's master), rspamd, postfix, smtp-source and a built
# tree ("make").  Loopback only; every process it starts is stopped when
# it exits; each run is bounded by a timeout.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=3 N=2000 S=20 L=4096 OUT=
while [ $# -gt 0 ]; do
    case $1 in
        -r) REPS=$2; shift 2 ;;
        -n) N=$2; shift 2 ;;
        -s) S=$2; shift 2 ;;
        -l) L=$2; shift 2 ;;
        -o) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d'; exit 0 ;;
        *) echo "milter.sh: unknown option $1" >&2; exit 64 ;;
    esac
done

die() { echo "milter.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }
[ "$(id -u)" = 0 ] || die "needs root (Postfix's master process)"
for t in rspamd postfix postsuper postcat smtp-source; do
    command -v "$t" >/dev/null || die "$t is not installed"
done
[ -x "$ROOT/objs/postern" ] || die "build first: ./configure && make"

W=/tmp/postern-milter-bench
OUT=${OUT:-$ROOT/objs/bench/milter-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
RSPAMD_PORT=2691 DEAD_PORT=2692 PT_PORT=2693 PTM_PORT=2694
PF_PORT=2695 PFM_PORT=2696
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    postfix -c "$W/pf/conf" stop >/dev/null 2>&1 || true
    [ -f "$W/rspamd/rspamd.pid" ] && kill -TERM "$(cat "$W/rspamd/rspamd.pid")" 2>/dev/null
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {       # wait_port PORT: until it greets with 220 (~15 s)
    local _
    for _ in $(seq 1 60); do
        if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && head -c 3 <&3" \
               2>/dev/null | grep -q 220; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

wait_listen() {     # wait_listen PORT: until something accepts (~15 s)
    local _
    for _ in $(seq 1 60); do
        timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null && return 0
        sleep 0.25
    done
    return 1
}

start_rspamd() {
    local d=$W/rspamd
    mkdir -p "$d"; chmod 755 "$W" "$d"
    cat > "$d/rspamd.conf" <<EOF
options {
    pidfile = "$d/rspamd.pid";
    filters = "";
    dns { nameserver = ["127.0.0.1:$DEAD_PORT"]; timeout = 1s; retransmits = 1; }
    control_socket = "$d/rspamd.sock mode=0600";
    history_file = "$d/history";
    cache_file = "$d/symbols.cache";
    dynamic_conf = "$d/dynamic";
    tempdir = "$d";
}
logging { type = "file"; filename = "$d/rspamd.log"; level = "warning"; }
actions { reject = 15; add_header = 6; greylist = 4; }
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
    count = 1;
    spam_header = "X-Spam";
    upstream "local" { default = yes; self_scan = yes; }
}
EOF
    rspamd -i -f -c "$d/rspamd.conf" >"$d/stdout" 2>&1 &
    PIDS+=($!)
    wait_listen "$RSPAMD_PORT" || die "rspamd did not come up: $(tail -3 "$d/rspamd.log" 2>/dev/null)"
    log "rspamd milter proxy on 127.0.0.1:$RSPAMD_PORT"
}

start_postern() {   # start_postern NAME PORT [MILTER]
    local d=$W/$1 milter=
    rm -rf "$d"; mkdir -p "$d/spool"
    [ -n "${3:-}" ] && milter="milter inet:127.0.0.1:$RSPAMD_PORT default_action=tempfail timeout=30s;"
    cat > "$d/postern.conf" <<EOF
load_module $ROOT/objs/modules/store_spool.so;
load_module $ROOT/objs/modules/policy_relay.so;
${3:+load_module $ROOT/objs/modules/filter_milter.so;}
daemon off;
worker_processes auto;
error_log $d/postern.log notice;
pid $d/postern.pid;
spool_dir $d/spool;
spool_fsync on;
smtp {
    hostname postern-milter.bench.test;
    max_connections_per_ip 1000;
    server {
        listen 127.0.0.1:$2;
        local_domains bench.test;
        $milter
    }
}
EOF
    "$ROOT/objs/postern" -p "$d/" -c postern.conf -t >/dev/null \
        || die "postern $1: bad configuration"
    "$ROOT/objs/postern" -p "$d/" -c postern.conf -f >"$d/stdout" 2>&1 &
    PIDS+=($!)
    wait_port "$2" || die "postern $1 did not come up"
    log "postern $1 on 127.0.0.1:$2"
}

start_postfix() {
    local d=$W/pf
    rm -rf "$d"; mkdir -p "$d/conf" "$d/queue" "$d/data"
    chown postfix "$d/data"
    cat > "$d/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $d/queue
data_directory = $d/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-milter-bench
maillog_file_prefixes = $d
maillog_file = $d/maillog
myhostname = postfix-milter.bench.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_client_access static:HOLD
in_flow_delay = 0
milter_protocol = 6
milter_default_action = tempfail
EOF
    cat > "$d/conf/master.cf" <<EOF
127.0.0.1:$PF_PORT inet n - n - - smtpd
127.0.0.1:$PFM_PORT inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:$RSPAMD_PORT
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    postfix -c "$d/conf" check >/dev/null 2>&1 \
        || { script -qc "postfix -c $d/conf check" /dev/null >&2; die "postfix check failed"; }
    postfix -c "$d/conf" start >/dev/null 2>&1 || die "postfix start failed"
    wait_port "$PF_PORT" || die "postfix did not come up"
    wait_port "$PFM_PORT" || die "postfix did not come up (milter port)"
    log "postfix on 127.0.0.1:$PF_PORT, with the milter on :$PFM_PORT"
}

count() {           # count VARIANT: messages stored
    case $1 in
        postern)        find "$W/pt/spool/queue" -type f ! -name '*.state' | wc -l ;;
        postern+rspamd) find "$W/ptm/spool/queue" -type f ! -name '*.state' | wc -l ;;
        postfix|postfix+rspamd) find "$W/pf/queue/hold" -type f | wc -l ;;
    esac
}

clean() {           # clean VARIANT: empty its queue
    case $1 in
        postern)        find "$W/pt/spool/queue" -type f -delete ;;
        postern+rspamd) find "$W/ptm/spool/queue" -type f -delete ;;
        postfix*)       postsuper -c "$W/pf/conf" -d ALL hold >/dev/null 2>&1 || true ;;
    esac
    sync
}

scanned() {         # scanned VARIANT: did rspamd's header reach a stored message?
    local f
    case $1 in
        postern+rspamd)
            f=$(find "$W/ptm/spool/queue" -type f ! -name '*.state' | head -1)
            grep -q "X-Spamd-Result" "$f" ;;
        postfix+rspamd)
            f=$(find "$W/pf/queue/hold" -type f | head -1)
            # all of postcat read (grep -q would make it die of SIGPIPE)
            postcat -c "$W/pf/conf" -h "$f" 2>/dev/null | grep "X-Spamd-Result" >/dev/null ;;
        *) return 0 ;;
    esac
}

port_of() {
    case $1 in
        postern) echo $PT_PORT ;; postern+rspamd) echo $PTM_PORT ;;
        postfix) echo $PF_PORT ;; postfix+rspamd) echo $PFM_PORT ;;
    esac
}

run_one() {         # run_one VARIANT REP -> a TSV row
    local v=$1 rep=$2 t0 t1 got rate ok=ok
    clean "$v"
    t0=$(date +%s.%N)
    timeout 300 smtp-source -s "$S" -m "$N" -l "$L" -f bench@client.test \
        -t user@bench.test -M client.test "127.0.0.1:$(port_of "$v")" \
        >/dev/null 2>&1 || ok=timeout
    t1=$(date +%s.%N)
    got=$(count "$v")
    [ "$got" -eq "$N" ] || ok="stored-$got"
    scanned "$v" || ok="no-rspamd-header"
    rate=$(echo "$N $t0 $t1" | awk '{printf "%.1f", $1 / ($3 - $2)}')
    printf '%s\t%s\t%s\t%s\t%s\n' "$v" "$rep" "$rate" "$got" "$ok" | tee -a "$OUT/runs.tsv"
}

rm -rf "$W"; mkdir -p "$W"
printf 'variant\trep\tmsgs_per_s\tstored\tstatus\n' > "$OUT/runs.tsv"
log "milter bench: $REPS repetitions, $N messages of $L bytes, $S sessions; results in $OUT"
start_rspamd
start_postern pt $PT_PORT
start_postern ptm $PTM_PORT milter
start_postfix

VARIANTS="postern postern+rspamd postfix postfix+rspamd"
for v in $VARIANTS; do              # warm-up: rspamd's first scans
    N_SAVE=$N; N=100; run_one "$v" 0 >/dev/null; N=$N_SAVE
done
for rep in $(seq 1 "$REPS"); do
    for v in $VARIANTS; do
        run_one "$v" "$rep"
    done
done

awk -F'\t' '
    NR > 1 && $2 > 0 { n[$1]++; r[$1, n[$1]] = $3; if ($5 != "ok") bad[$1]++ }
    function median(v,    i, j, k, t, a) {
        for (i = 1; i <= n[v]; i++) a[i] = r[v, i]
        for (i = 1; i <= n[v]; i++) for (j = i + 1; j <= n[v]; j++)
            if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        k = int((n[v] + 1) / 2)
        return (n[v] % 2) ? a[k] : (a[k] + a[k + 1]) / 2
    }
    END {
        split("postern postern+rspamd postfix postfix+rspamd", vs, " ")
        printf "%-16s %12s %6s\n", "variant", "msgs/s", "bad"
        for (i = 1; i <= 4; i++) {
            m[vs[i]] = median(vs[i])
            printf "%-16s %12.1f %6d\n", vs[i], m[vs[i]], bad[vs[i]]
        }
        printf "\npostern+rspamd / postern        %.2f\n", m["postern+rspamd"] / m["postern"]
        printf "postfix+rspamd / postfix        %.2f\n", m["postfix+rspamd"] / m["postfix"]
        printf "postern+rspamd / postfix+rspamd %.2f\n", m["postern+rspamd"] / m["postfix+rspamd"]
        printf "postern / postfix               %.2f\n", m["postern"] / m["postfix"]
    }' "$OUT/runs.tsv" | tee "$OUT/summary.txt"
