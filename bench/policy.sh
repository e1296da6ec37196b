#!/bin/sh
#
# bench/policy.sh -- what a realistic edge policy costs in throughput.
#
# Two Postern servers run side by side on loopback:
#   baseline  store_spool + policy_relay (local_domains only: without
#             relay control nothing would be accepted at all)
#   policy    the same, plus policy_limits (conn/msg/rcpt rates high
#             enough never to trigger), policy_access with 1,000 PCRE2
#             and CIDR rules over client, client name, HELO, sender,
#             recipient and header lines, and policy_recipients with a
#             100,000-user table that every recipient is looked up in
# smtp-source sends the same load to each in turn (SESSIONS parallel
# sessions, one message of SIZE bytes per connection, a different
# recipient each time from the table), REPS times, alternating (and
# alternating which of the two goes first), after a warm-up run each.
# It prints every run, the medians and the ratio policy/baseline.
# Every message must get 250 (smtp-source stops on anything else), so
# a rule that matched the load would show.
#
# usage: bench/policy.sh   (from the source tree, after make)
#   environment: SESSIONS=100 MSGS=10000 REPS=5 SIZE=4096 FSYNC=on
#                WORKERS=auto SPOOL_BASE=objs/bench-policy
# The two servers share one spool directory (they never run at the same
# time, and every run starts from an empty queue), so that the file
# system's own bookkeeping -- ext4 searching around the inodes the last
# cleanup deleted -- weighs on both alike.  SPOOL_BASE=/dev/shm puts it
# on tmpfs, which measures the CPU the policy costs without the disk.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OBJS=$ROOT/objs
DIR=$OBJS/bench-policy
SESSIONS=${SESSIONS:-100}
MSGS=${MSGS:-10000}
REPS=${REPS:-5}
SIZE=${SIZE:-4096}
FSYNC=${FSYNC:-on}
WORKERS=${WORKERS:-auto}
SPOOL_BASE=${SPOOL_BASE:-$DIR}
SRC=$(command -v smtp-source || echo /usr/sbin/smtp-source)

die() {
    echo "bench/policy.sh: $*" >&2
    exit 1
}

[ -x "$OBJS/postern" ] || die "build first: ./configure && make"
[ -x "$SRC" ] || die "smtp-source not found (apt-get install postfix)"
for m in store_spool policy_relay policy_limits policy_access \
         policy_recipients; do
    [ -f "$OBJS/modules/$m.so" ] || die "module $m is not built"
done

rm -rf "$DIR"
mkdir -p "$DIR"
case $SPOOL_BASE in
    "$DIR") ;;
    *) SPOOL_BASE=$SPOOL_BASE/postern-bench-policy.$$
       mkdir -p "$SPOOL_BASE" ;;
esac

free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# -- the policy ------------------------------------------------------------

# 100,000 users; smtp-source -N prepends a sequence number to "user", so
# the load's recipients are 1user, 2user ... and every one is in here
awk 'BEGIN { for (i = 1; i <= 100000; i++) print i "user" }' \
    > "$DIR/users.txt"

# 1,000 rules; none matches the load (sender@client.test, HELO
# bench.client.test, recipients NNNuser@example.test, Subject "Weekly
# report", client 127.0.0.1 without a reverse name)
awk 'function r(fmt, k, i) {
        for (i = 0; i < k; i++) { printf fmt "\n", i; n++ } }
    BEGIN {
    r("access_rule client 10.%d.0.0/16 reject;", 50)
    r("access_rule client_name ~* \"\\.dyn%d\\.isp\\.example$\"" \
      " reject 554 5.7.1 \"Dynamic address\";", 100)
    r("access_rule helo ~* \"^bot%d\\.\" reject;", 80)
    r("access_rule helo ~* \"^(?:zombie|drone)%d$\" reject;", 20)
    r("access_rule mail ~* \"@spamdomain%d\\.example$\" reject 550" \
      " 5.7.1 \"Sender blocked\";", 300)
    r("access_rule mail ~* \"^bulk%d[._-]\" tempfail;", 60)
    r("access_rule mail = \"ceo%d@phish.example\" reject;", 40)
    r("access_rule rcpt ~* \"^spamtrap%d@\" reject 550 5.1.1" \
      " \"No such user\";", 200)
    r("access_rule rcpt ~* \"^(?:old|former)-staff%d@example\\.test$\"" \
      " reject;", 50)
    r("access_rule header ~* \"^X-Mailer: MassMailer %d\" reject 554" \
      " 5.7.1 \"Bulk mail\";", 60)
    r("access_rule header ~* \"^Subject:.*\\b(casino|lottery)%d\\b\"" \
      " reject;", 40)
    if (n != 1000) { print "rule count " n > "/dev/stderr"; exit 1 }
}' > "$DIR/access.rules"

common() {   # common NAME PORT
    cat <<EOF
daemon off;
worker_processes $WORKERS;
error_log $DIR/$1/error.log notice;
pid $DIR/$1/postern.pid;
spool_dir $SPOOL_BASE/spool;
spool_fsync $FSYNC;
EOF
}

PORT_B=$(free_port)
PORT_P=$(free_port)
mkdir -p "$DIR/baseline" "$DIR/policy"

{
    echo "load_module $OBJS/modules/store_spool.so;"
    echo "load_module $OBJS/modules/policy_relay.so;"
    common baseline
    cat <<EOF
smtp {
    hostname mx.example.test;
    max_connections_per_ip 10000;
    server {
        listen 127.0.0.1:$PORT_B;
        local_domains example.test;
    }
}
EOF
} > "$DIR/baseline/postern.conf"

{
    for m in store_spool policy_limits policy_access policy_recipients \
             policy_relay; do
        echo "load_module $OBJS/modules/$m.so;"
    done
    common policy
    cat <<EOF
smtp {
    hostname mx.example.test;
    max_connections_per_ip 10000;
    server {
        listen 127.0.0.1:$PORT_P;
        local_domains example.test;
        limit_conn_rate 1000000/s;
        limit_msg_rate 1000000/s;
        limit_rcpt_rate 1000000/s;
        include $DIR/access.rules;
        recipients example.test file $DIR/users.txt;
        sender_require_fqdn on;
    }
}
EOF
} > "$DIR/policy/postern.conf"

PIDS=""
cleanup() {
    for p in $PIDS; do
        kill "$p" 2>/dev/null || true
    done
    for p in $PIDS; do
        wait "$p" 2>/dev/null || true
    done
    case $SPOOL_BASE in
        "$DIR") ;;
        *) rm -rf "$SPOOL_BASE" ;;
    esac
}
trap cleanup EXIT INT TERM

start() {   # start NAME PORT
    "$OBJS/postern" -p "$ROOT/" -c "$DIR/$1/postern.conf" -f \
        > "$DIR/$1/stderr.log" 2>&1 &
    PIDS="$PIDS $!"
    i=0
    until "$SRC" -m 1 -f sender@client.test -t 1user@example.test \
              -M bench.client.test "127.0.0.1:$2" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "$1 did not start:" >&2;
                            cat "$DIR/$1/stderr.log" >&2; exit 1; }
        sleep 0.1
    done
}

start baseline "$PORT_B"
start policy "$PORT_P"

# the policy is in force: a rule's recipient, an unknown user, a listed
# sender are refused (smtp-source fails), the load's addresses are not
for bad in "-t spamtrap7@example.test" "-t nosuchuser@example.test" \
           "-f x@spamdomain299.example -t 1user@example.test"; do
    # shellcheck disable=SC2086
    if "$SRC" -m 1 -M bench.client.test -f sender@client.test $bad \
           "127.0.0.1:$PORT_P" >/dev/null 2>&1; then
        die "the policy server accepted \"$bad\""
    fi
done

# CPU seconds (user + system) of a server: the master and its workers
cpu() {   # cpu NAME
    master=$(cat "$DIR/$1/postern.pid")
    for p in $master $(pgrep -P "$master"); do
        cat "/proc/$p/stat" 2>/dev/null
    done | awk -v hz="$(getconf CLK_TCK)" '
        { sub(/^.*\) /, ""); t += $12 + $13 } END { printf "%.3f\n", t / hz }'
}

run() {   # run NAME PORT -> prints "msgs/s cpu-ms-per-message"
    find "$SPOOL_BASE/spool/queue" -type f -delete
    c0=$(cpu "$1")
    t0=$(date +%s.%N)
    if ! timeout 300 "$SRC" -s "$SESSIONS" -m "$MSGS" -l "$SIZE" -N \
            -f sender@client.test -t user@example.test \
            -M bench.client.test -S "Weekly report" \
            "127.0.0.1:$2" > "$DIR/$1/source.log" 2>&1; then
        echo "smtp-source failed against $1:" >&2
        cat "$DIR/$1/source.log" >&2
        tail -5 "$DIR/$1/error.log" >&2
        exit 1
    fi
    t1=$(date +%s.%N)
    c1=$(cpu "$1")
    stored=$(find "$SPOOL_BASE/spool/queue" -type f | wc -l)
    [ "$stored" -eq "$MSGS" ] || { echo "$1: $stored of $MSGS stored" >&2;
                                  exit 1; }
    echo "$t0 $t1 $c0 $c1" | awk -v m="$MSGS" '{
        printf "%.0f %.3f\n", m / ($2 - $1), ($4 - $3) * 1000 / m }'
}

median() {   # median of column $1 of stdin
    awk -v c="$1" '{ print $c }' | sort -n | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2];
        else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "policy bench: $SESSIONS sessions, $MSGS messages of $SIZE bytes per" \
     "run, $REPS runs each, spool_fsync $FSYNC, workers $WORKERS," \
     "spool under $SPOOL_BASE"
echo "policy: $(wc -l < "$DIR/access.rules") access rules," \
     "$(wc -l < "$DIR/users.txt") users, rate limits"

# warm-up (page cache, JIT, connection tables), not counted
run baseline "$PORT_B" > /dev/null
run policy "$PORT_P" > /dev/null

: > "$DIR/baseline.runs"
: > "$DIR/policy.runs"
: > "$DIR/pair.ratios"
r=1
while [ $r -le "$REPS" ]; do
    # alternate which goes first, so that neither always follows the
    # other's disk activity
    if [ $((r % 2)) -eq 1 ]; then
        b=$(run baseline "$PORT_B")
        p=$(run policy "$PORT_P")
    else
        p=$(run policy "$PORT_P")
        b=$(run baseline "$PORT_B")
    fi
    echo "$b" >> "$DIR/baseline.runs"
    echo "$p" >> "$DIR/policy.runs"
    echo "$b $p" | awk '{ print $3 / $1 }' >> "$DIR/pair.ratios"
    echo "$b $p" | awk -v r="$r" '{ printf "run %d: baseline %d msgs/s" \
        " (server CPU %.3f ms/msg), policy %d msgs/s (%.3f ms/msg)\n",
        r, $1, $2, $3, $4 }'
    r=$((r + 1))
done

B=$(median 1 < "$DIR/baseline.runs")
P=$(median 1 < "$DIR/policy.runs")
BC=$(median 2 < "$DIR/baseline.runs")
PC=$(median 2 < "$DIR/policy.runs")
echo "$B $BC $P $PC" | awk '{ printf "median: baseline %.0f msgs/s" \
    " (%.3f ms CPU/msg), policy %.0f msgs/s (%.3f ms CPU/msg)\n",
    $1, $2, $3, $4 }'
R=$(median 1 < "$DIR/pair.ratios")
echo "$P $B $PC $BC $R" | awk '{ printf "throughput ratio policy/baseline:" \
    " %.3f (median of the per-run ratios %.3f); CPU per message ratio:" \
    " %.3f\n", $1 / $2, $5, $3 / $4 }'
