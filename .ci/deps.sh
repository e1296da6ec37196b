#!/bin/sh
# Install what a fresh Debian 12 machine lacks to build Postern and run
# its whole test suite.  Idempotent; needs root (use sudo).
set -eu

export DEBIAN_FRONTEND=noninteractive

# build
PKGS="build-essential pkg-config libssl-dev libpcre2-dev check
libsubunit-dev libunbound-dev libevent-dev libcrypt-dev libidn2-dev
libcurl4-openssl-dev libhiredis-dev"
# tests: real clients and peers, and the tools the tests use
PKGS="$PKGS python3 procps iproute2 openssl postfix swaks msmtp dnsmasq-base
python3-aiosmtpd python3-dnslib dovecot-core
dovecot-lmtpd"
# real milters for filter_milter's tests (test_milter_peers.py)
PKGS="$PKGS rspamd opendkim opendkim-tools python3-dkim clamav-daemon
clamav-milter"
# shared state of several nodes (test_redis.py, test_nodes.py): a real
# Redis server; test_redis_sentinel.py runs its sentinels as
# `redis-server --sentinel` from this same package (so no redis-sentinel
# package: it only adds the name redis-sentinel for the same binary, a
# service and a default sentinel.conf); test_nodes.py puts Redis and the
# nodes in network namespaces with iproute2's ip netns (above)
PKGS="$PKGS redis-server"
# a real PROXY protocol sender in front of the server (test_proxy.py)
PKGS="$PKGS haproxy"
# the DNSSEC tests sign a zone at run time (tests/integration/pstdns.py)
PKGS="$PKGS python3-cryptography"
# the TLS report test validates the JSON against RFC 8460's fields
PKGS="$PKGS python3-jsonschema"
# the metrics tests parse the endpoint with a real Prometheus parser
PKGS="$PKGS python3-prometheus-client"
# make abi-check: abidw/abidiff (libabigail)
PKGS="$PKGS abigail-tools"
# make apidoc: the API reference from the public headers' doc comments
# (test_docs.py fails when Doxygen warns)
PKGS="$PKGS doxygen"
# make deb / make deb-test (.ci/run): the package and a fresh Debian root
PKGS="$PKGS debhelper debootstrap"
# swaks --tls and --auth need Perl's TLS and SASL modules
PKGS="$PKGS libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done

if [ -z "$missing" ]; then
    echo "deps: everything is installed"
    exit 0
fi

# postfix for smtp-source/smtp-sink and the private instances the tests
# and benchmarks start with their own main.cf: no system configuration
echo "postfix postfix/main_mailer_type select No configuration" \
    | debconf-set-selections

apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
echo "deps: installed$missing"
