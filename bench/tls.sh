#!/bin/bash
# bench/tls.sh -- SMTP over TLS: Postern beside Postfix with TLS, in one
# run, on loopback, with the same certificate and the same load.
#
#   bench/tls.sh                     (make first; run as root for Postfix)
#   REPS=5 SECS=15 CONCS="10 100" bench/tls.sh
#
# Two measures at each concurrency (CONCS, default 10 and 100 clients):
#   sessions  complete sessions per second, each with STARTTLS and a full
#             handshake (no resumption) and one message
#   messages  messages per second through long-lived TLS sessions
# Both servers store every message durably before "250" (Postern's spool
# with fsync; Postfix's HOLD queue, fsync by cleanup).  Runs alternate
# between the servers, REPS times; the table gives medians, and server
# CPU milliseconds per session or message (from /proc).
#
# The Postfix peer is the one of /work/shared/bench (setup.sh postfix,
# peerctl.sh), as a separate instance under /tmp/peers-tls on port 2611
# (so that it does not disturb other benchmarks), with TLS switched on
# with postconf.  Postern listens on 127.0.0.1:2612.  Results go to
# $OUT (default /tmp/bench-tls/STAMP): results.tsv, logs, configs.
#
# The load generator (bench/tls_load.py, Python threads in 2 processes)
# shares the machine's CPUs with the servers: at high rates it limits
# both servers alike, which the CPU-per-message column shows.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${BENCH_SHARED:-/work/shared/bench}
PY=/usr/bin/python3
REPS=${REPS:-3}
SECS=${SECS:-10}
CONCS=${CONCS:-"10 100"}
POSTERN_PORT=${POSTERN_PORT:-2612}
export PEERS_ROOT=${PEERS_ROOT:-/tmp/peers-tls}
export POSTFIX_PORT=${POSTFIX_PORT:-2611}
OUT=${OUT:-/tmp/bench-tls/$(date +%Y%m%d-%H%M%S)}
POSTERN_PID=""

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$ROOT/objs/postern" ] || die "build first: ./configure && make"
[ -x "$SHARED/setup.sh" ] || die "no peer harness in $SHARED"
mkdir -p "$OUT/tls" "$OUT/spool"

cleanup() {
    if [ -n "$POSTERN_PID" ] && kill -0 "$POSTERN_PID" 2>/dev/null; then
        kill -TERM "$POSTERN_PID"
        wait "$POSTERN_PID" 2>/dev/null || true
    fi
    "$SHARED/peerctl.sh" stop postfix >/dev/null 2>&1 || true
}
trap cleanup EXIT

# one ECDSA P-256 certificate for both servers
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 30 -subj /CN=localhost -keyout "$OUT/tls/key.pem" \
    -out "$OUT/tls/cert.pem" 2>/dev/null
chmod 644 "$OUT/tls/cert.pem"

# --- Postfix with TLS -------------------------------------------------
"$SHARED/setup.sh" postfix >"$OUT/setup.log" 2>&1 \
    || die "setup.sh postfix failed (see $OUT/setup.log)"
postconf -c "$PEERS_ROOT/postfix/conf" -e \
    "smtpd_tls_security_level = may" \
    "smtpd_tls_cert_file = $OUT/tls/cert.pem" \
    "smtpd_tls_key_file = $OUT/tls/key.pem" \
    "smtpd_tls_loglevel = 0"
"$SHARED/peerctl.sh" stop postfix >/dev/null 2>&1 || true
"$SHARED/peerctl.sh" start postfix 2>>"$OUT/setup.log" \
    || die "postfix did not start (see $OUT/setup.log)"

# --- Postern ----------------------------------------------------------
cat > "$OUT/postern.conf" <<EOF
load_module $ROOT/objs/modules/store_spool.so;
load_module $ROOT/objs/modules/policy_relay.so;
daemon off;
worker_processes auto;
worker_connections 4096;
error_log $OUT/postern.log notice;
pid $OUT/postern.pid;
spool_dir $OUT/spool;
smtp {
    hostname localhost;
    max_connections_per_ip 10000;
    # Postfix has no per-session message cap; ours (1000) would make
    # long "messages" sessions reconnect
    max_messages_per_session 0;
    tls_certificate     $OUT/tls/cert.pem;
    tls_certificate_key $OUT/tls/key.pem;
    server {
        listen 127.0.0.1:$POSTERN_PORT backlog=1024;
        relay_networks 127.0.0.0/8;
    }
}
EOF
ulimit -n 20000 2>/dev/null || true
"$ROOT/objs/postern" -p "$ROOT/" -c "$OUT/postern.conf" -f \
    >"$OUT/postern.stderr" 2>&1 &
POSTERN_PID=$!
for _ in $(seq 1 80); do
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$POSTERN_PORT \
                          && head -c 3 <&3" 2>/dev/null | grep -q 220; then
        break
    fi
    sleep 0.25
done
kill -0 "$POSTERN_PID" || die "postern did not start (see $OUT)"

count() {
    case $1 in
        postern) find "$OUT/spool/queue" -type f | wc -l ;;
        postfix) "$SHARED/peerctl.sh" count postfix ;;
    esac
}
clean() {
    case $1 in
        postern) find "$OUT/spool/queue" -type f -delete ;;
        postfix) "$SHARED/peerctl.sh" clean postfix >/dev/null ;;
    esac
}
# shellcheck disable=SC2046  # a peer's spec may be several pids
cpu() {
    case $1 in
        postern) "$PY" "$SHARED/procstat.py" cpu "$POSTERN_PID" ;;
        postfix) "$PY" "$SHARED/procstat.py" cpu \
                     $("$SHARED/peerctl.sh" spec postfix) ;;
    esac
}
port() { [ "$1" = postern ] && echo "$POSTERN_PORT" || echo "$POSTFIX_PORT"; }

printf 'server\tmode\tconc\trep\trate\tdone\terrors\tstored\tcpu_s\n' \
    > "$OUT/results.tsv"

# a short warm-up of each (page cache, first handshakes)
for s in postern postfix; do
    "$PY" "$HERE/tls_load.py" sessions 127.0.0.1 "$(port $s)" -c 4 -t 2 \
        >/dev/null
done

for rep in $(seq 1 "$REPS"); do
    for conc in $CONCS; do
        for mode in sessions messages; do
            for s in postern postfix; do
                clean "$s"
                c0=$(cpu "$s")
                line=$("$PY" "$HERE/tls_load.py" "$mode" 127.0.0.1 \
                       "$(port $s)" -c "$conc" -t "$SECS")
                sleep 1            # let the last commits land
                c1=$(cpu "$s")
                stored=$(count "$s")
                rate=$(sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$line")
                done_=$(sed -n 's/.* done=\([0-9]*\).*/\1/p' <<<"$line")
                errs=$(sed -n 's/.* errors=\([0-9]*\).*/\1/p' <<<"$line")
                cpus=$("$PY" -c "print('%.2f' % ($c1 - $c0))")
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$mode" \
                    "$conc" "$rep" "$rate" "$done_" "$errs" "$stored" \
                    "$cpus" >> "$OUT/results.tsv"
                log "rep $rep $s $mode c=$conc: $rate/s (stored $stored," \
                    "errors $errs, server cpu ${cpus}s)"
            done
        done
    done
done

"$PY" - "$OUT/results.tsv" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
cells = {}
for r in rows:
    cells.setdefault((r["mode"], int(r["conc"]), r["server"]), []).append(r)
print("\nmedians over %d run(s) each (rate per second; server CPU ms per"
      " session or message)" % max(len(v) for v in cells.values()))
print("%-9s %5s  %-8s %9s %9s %9s %7s" % ("mode", "conc", "server",
      "rate", "min-max", "cpu_ms", "errors"))
for key in sorted(cells):
    v = cells[key]
    rates = [float(r["rate"]) for r in v]
    per = [1000 * float(r["cpu_s"]) / max(1, int(r["done"])) for r in v]
    errs = sum(int(r["errors"]) for r in v)
    print("%-9s %5d  %-8s %9.1f %4.0f-%-4.0f %9.2f %7d" % (
        key[0], key[1], key[2], statistics.median(rates), min(rates),
        max(rates), statistics.median(per), errs))
EOF
log "results in $OUT"
