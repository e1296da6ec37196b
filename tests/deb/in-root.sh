#!/bin/bash
#
# in-root.sh -- run by deb-test.sh inside the fresh Debian root, as
# root, in network and PID namespaces of its own (bash: /dev/tcp).  Prints one line per
# check; exits 1 at the first failure.
#
set -u
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

fail() { echo "FAIL: $*"; [ -f /tmp/postern.log ] && tail -20 /tmp/postern.log; exit 1; }
ok() { echo "ok: $*"; }

# every wait is bounded: N tries of 0.2 s
wait_for() {   # wait_for TRIES COMMAND...
    n=$1; shift
    while [ "$n" -gt 0 ]; do
        "$@" 2>/dev/null && return 0
        sleep 0.2
        n=$((n - 1))
    done
    return 1
}

greets() { exec 3<>/dev/tcp/127.0.0.1/25 && read -r l <&3 && exec 3<&- \
           && case "$l" in 220*) return 0 ;; esac; return 1; }

reply() {   # the last line of the next reply (continuations skipped)
    local l
    while IFS= read -r -t 20 l <&3; do
        l=${l%$'\r'}
        echo "S: $l" >&2
        case "$l" in [0-9][0-9][0-9]-*) continue ;; esac
        echo "$l"
        return 0
    done
    return 1
}

smtp_send() {   # one message to postmaster@localhost, a reply at a time
    local r
    exec 3<>/dev/tcp/127.0.0.1/25 || return 1
    reply > /dev/null || return 1
    for c in "EHLO deb-test.example" "MAIL FROM:<a@deb-test.example>" \
             "RCPT TO:<postmaster@localhost>" "DATA"; do
        printf '%s\r\n' "$c" >&3
        r=$(reply) || return 1
        case "$r" in 2*|354*) ;; *) echo "$c: $r"; return 1 ;; esac
    done
    printf 'Subject: deb-test\r\n\r\nfrom the package test\r\n.\r\n' >&3
    r=$(reply) || return 1
    printf 'QUIT\r\n' >&3
    exec 3<&-
    echo "$r"
}

dpkg -i /tmp/postern.deb > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log; fail "dpkg -i"; }
ok "dpkg -i: $(dpkg-query -W -f='${Package} ${Version} ${Status}' postern)"

getent passwd postern > /dev/null || fail "no postern account"
ok "account: $(getent passwd postern)"
[ -f /etc/postern/tls/cert.pem ] && [ -f /etc/postern/tls/key.pem ] \
    || fail "no certificate made by postinst"
[ "$(stat -c %a /etc/postern/tls/key.pem)" = 600 ] || fail "key mode"
[ "$(stat -c %a /etc/postern/users)" = 600 ] || fail "users file mode"
ok "certificate and key made by postinst"

for c in /etc/postern/postern.conf /etc/postern/*.conf.example; do
    postern -t -c "$c" > /tmp/t.log 2>&1 || { cat /tmp/t.log; fail "postern -t -c $c"; }
done
ok "postern -t on every installed configuration"
man -w postern.conf > /dev/null 2>&1 || [ -f /usr/share/man/man5/postern.conf.5.gz ] \
    || fail "no postern.conf(5)"

# what an administrator turns on next: Prometheus and JSON logs
sed -i 's|^spool_dir .*|&\nmetrics_listen 127.0.0.1:9464;\nlog_format json;|' \
    /etc/postern/postern.conf
postern -t > /tmp/t.log 2>&1 || { cat /tmp/t.log; fail "postern -t with metrics"; }

unit=/lib/systemd/system/postern.service
pre=$(sed -n 's/^ExecStartPre=//p' "$unit" | head -1)
start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$start" ] || fail "no ExecStart in $unit"
mkdir -p /run/postern                   # RuntimeDirectory=postern
$pre > /tmp/pre.log 2>&1 || { cat /tmp/pre.log; fail "ExecStartPre $pre"; }
$start > /tmp/postern.log 2>&1 &
pid=$!
wait_for 100 greets || fail "no greeting on port 25 after start ($start)"
ok "started by ExecStart ($start), pid $pid, greets on port 25"

for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = postern ] || continue
    [ "${p#/proc/}" = "$pid" ] && continue
    uid=$(awk '/^Uid:/ { print $2 }' "$p/status")
    [ "$uid" = "$(id -u postern)" ] || fail "child ${p#/proc/} runs as uid $uid"
done
ok "children run as postern"

r=$(smtp_send)
echo "$r" | grep -q '^250 2.0.0 Ok: queued as' || { echo "$r"; fail "message refused"; }
wait_for 50 sh -c 'postern queue count | grep -qx 1' || fail "queue count"
ok "message accepted on port 25 and in the queue: $(postern queue list | tail -1)"

scrape() {
    exec 4<>/dev/tcp/127.0.0.1/9464 || return 1
    printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&4
    timeout 10 cat <&4
    exec 4<&-
}
m=$(scrape)
echo "$m" | grep -q '^postern_messages_accepted_total 1' \
    || { echo "$m" | head -20; fail "metrics: no accepted message"; }
ok "metrics: $(echo "$m" | grep '^postern_messages_accepted_total')"
grep '"event":"queued"' /tmp/postern.log | grep -q '"to":"<postmaster@localhost>"' \
    || fail "no JSON queued record in the log"
ok "JSON log: $(grep -c '"event":"queued"' /tmp/postern.log) queued record"
postern status > /tmp/status.log 2>&1 || { cat /tmp/status.log; fail "postern status"; }
ok "postern status: $(head -1 /tmp/status.log)"

kill -HUP "$pid"
wait_for 100 grep -q reconfigured /tmp/postern.log || fail "reload"
wait_for 50 greets || fail "no greeting after reload"
ok "reloaded (HUP, as ExecReload)"

stop() {
    kill -QUIT "$pid"                   # KillSignal=SIGQUIT
    n=150
    while kill -0 "$pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.2; n=$((n - 1)); done
    kill -0 "$pid" 2>/dev/null && fail "still running 30 s after QUIT"
    wait "$pid" || fail "exit status $? after QUIT"
}
stop
ok "stopped by QUIT, exit status 0"

# sendmail for every account while the server is down: setgid to the
# maildrop group made by postinst, named in the installed postern.conf
[ "$(stat -c '%a %U %G' /usr/sbin/postern-sendmail)" = "2755 root postern-maildrop" ] \
    || fail "postern-sendmail: $(stat -c '%a %U %G' /usr/sbin/postern-sendmail)"
grep -qx 'maildrop_group postern-maildrop;' /etc/postern/postern.conf \
    || fail "no maildrop_group in postern.conf"
printf 'Subject: maildrop\n\nfrom nobody\n' > /tmp/md.txt
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    postern-sendmail -i postmaster@localhost < /tmp/md.txt > /tmp/md.log 2>&1 \
    || { cat /tmp/md.log; fail "postern-sendmail as nobody: exit $?"; }
[ "$(ls /var/spool/postern/maildrop | wc -l)" = 1 ] \
    || fail "nothing in the maildrop: $(ls -la /var/spool/postern/maildrop)"
ok "postern-sendmail as nobody, server down: left in the maildrop"
$start > /tmp/postern.log 2>&1 &
pid=$!
wait_for 100 sh -c 'postern queue count | grep -qx 2' \
    || fail "maildrop not taken into the queue: $(postern queue count)"
stop
ok "taken into the queue at the next start, stopped again"

dpkg --purge postern > /tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "purge"; }
dpkg-query -W postern > /dev/null 2>&1 && \
    [ "$(dpkg-query -W -f='${Status}' postern)" != "unknown ok not-installed" ] \
    && fail "still known to dpkg: $(dpkg-query -W -f='${Status}' postern)"
for f in /etc/postern /var/spool/postern /var/log/postern /usr/sbin/postern \
         /usr/lib/postern /lib/systemd/system/postern.service \
         /etc/logrotate.d/postern /usr/lib/tmpfiles.d/postern.conf; do
    [ -e "$f" ] && fail "left after purge: $f"
done
ok "purged: nothing left (the postern account stays, as Debian advises)"
echo "deb-test: all checks passed"
