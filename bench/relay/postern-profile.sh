# shellcheck shell=bash
# Subject profile for the shared relay harness (shared/bench/relay/):
# Postern as a relay.  Copy it over the harness's profiles/postern.sh
# (bench/relay/README) and run with POSTERN_SRC=<built tree>
# POSTERN_RELAY_READY=1.
#
#   start held          relay_hold on; (every message the engine takes is
#                       held durably until released)
#   release all         postern queue release
#   flush               postern queue flush
#   count STATE         postern queue count all|held|deferred (reads the
#                       spool's small state files, never the daemon);
#                       the file count below is the fallback for a build
#                       without it
#   DNS                 resolver 127.0.0.1:53; MX hosts on port 25
#   logging             error_log at info: one line per recipient outcome
#                       (Postfix logs 4-5 per delivered message)
#
# Postern's delivery defaults are kept: relay_concurrency 100,
# relay_destination_concurrency 20 (window starting at 5),
# relay_destination_rcpt_limit 50, relay_connection_reuse 100 messages,
# relay_connection_idle 5s, relay_min_backoff 5m, relay_max_backoff 1h.

POSTERN_SRC=${POSTERN_SRC:-}
POSTERN_BIN=${POSTERN_BIN:-${POSTERN_SRC:+$POSTERN_SRC/objs/postern}}
PT_CONF=$RB_STATE/postern.conf

pt() { "$POSTERN_BIN" -p "$POSTERN_SRC/" -c "$PT_CONF" "$@"; }

mta_check() {
    if [ "${POSTERN_RELAY_READY:-}" != 1 ]; then
        echo "profiles/postern.sh is a template: Postern has no relay delivery yet (set POSTERN_RELAY_READY=1 once it does)"
        return 1
    fi
    [ -n "$POSTERN_SRC" ] && [ -x "$POSTERN_BIN" ] ||
        { echo "set POSTERN_SRC to a built source tree (objs/postern)"; return 1; }
}

mta_describe() {
    "$POSTERN_BIN" -V 2>/dev/null | sed -n 1p
    pt -T 2>/dev/null | grep -E 'relay|resolver|worker' | sed 's/^/    /'
}

mta_setup() {
    mkdir -p "$RB_STATE/spool"
    cat > "$PT_CONF" <<CF
load_module objs/modules/store_spool.so;
load_module objs/modules/policy_relay.so;
load_module objs/modules/relay_mx.so;
daemon on;
worker_processes auto;
error_log $RB_STATE/postern.log info;
pid $RB_STATE/postern.pid;
spool_dir $RB_STATE/spool;
resolver 127.0.0.1:53;
relay_hold off;
smtp {
    hostname relay.relaybench.test;
    max_connections_per_ip 1000;
    server {
        listen 127.0.0.1:$RB_INJECT_PORT;
        relay_networks 127.0.0.0/8;
    }
}
CF
    pt -t
}

mta_start() {   # held|live
    if [ "${1:-live}" = held ]; then
        sed -i 's/^relay_hold .*/relay_hold on;/' "$PT_CONF"
    else
        sed -i 's/^relay_hold .*/relay_hold off;/' "$PT_CONF"
    fi
    pt
}

mta_pids() { cat "$RB_STATE/postern.pid" 2>/dev/null; }

mta_stop() {
    local pid; pid=$(mta_pids)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    pt -s stop
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}

mta_reset() {
    rm -rf "$RB_STATE/spool"; mkdir -p "$RB_STATE/spool"
    : > "$RB_STATE/postern.log"
}

mta_inject_port() { echo "$RB_INJECT_PORT"; }
mta_release_all() { pt queue release; }
mta_flush() { pt queue flush; }
# postern queue count STATE when this build has it; else the spool's
# files, as the Postfix profile counts its queue files
mta_queue_count() {
    local n h
    # deferred here = waiting for a retry: all but the held ones (mail
    # behind a dead destination waits untried, with no state written)
    if [ "${1:-all}" = deferred ] && n=$(pt queue count all 2>/dev/null) \
        && h=$(pt queue count held 2>/dev/null); then
        echo $(( n - h )); return
    fi
    if n=$(pt queue count "${1:-all}" 2>/dev/null); then
        echo "${n%% *}"; return
    fi
    local q="$RB_STATE/spool/queue"
    case "${1:-all}" in
    held)     find "$q" -name '*.state' -print0 2>/dev/null | xargs -0 -r grep -l '^hold 1' | wc -l ;;
    # waiting for a retry: everything not held (mail behind a dead
    # destination waits in memory, with no per-message state written)
    deferred) echo $(( $(find "$q" -type f ! -name '*.state' 2>/dev/null | wc -l)
                       - $(find "$q" -name '*.state' -print0 2>/dev/null | xargs -0 -r grep -l '^hold 1' | wc -l) )) ;;
    *)        find "$q" -type f ! -name '*.state' 2>/dev/null | wc -l ;;
    esac
}
