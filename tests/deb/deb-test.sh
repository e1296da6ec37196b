#!/bin/sh
#
# deb-test.sh DEB -- the Debian package in a fresh Debian 12 root (make
# deb-test, after make deb; never part of make check).  Needs root,
# debootstrap (or a root tarball in $PST_DEB_ROOT_TAR) and unshare.
#
# The root is a debootstrap --variant=minbase of bookworm with the
# package's dependencies, made once and kept as objs/deb-root/bookworm.tar
# (make deb empties objs/deb/);
# every run starts from a fresh copy of it.  Exit 77 (skipped, said on
# stderr) when the machine cannot run it: no mirror for debootstrap, or
# namespaces refused; any other failure is the package's.  In a mount, PID and
# network namespace of its own (only loopback, so port 25 is ours) the
# test installs the package with dpkg, checks what postinst made (the
# postern account, a certificate, postern -t), starts the server by the
# unit's ExecStartPre/ExecStart lines (no systemd in a chroot), sends a
# message to port 25, scrapes the metrics, reads the JSON log, asks
# postern status, reloads, stops gracefully (QUIT, the unit's
# KillSignal), purges the package and checks that nothing is left.
#
set -eu

deb=${1:?usage: deb-test.sh postern_VERSION_ARCH.deb}
[ -f "$deb" ] || { echo "deb-test: no package $deb (make deb first)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "deb-test: needs root (chroot, namespaces)" >&2; exit 2; }

top=$(cd "$(dirname "$0")/../.." && pwd)
work=$top/objs/deb-root
mkdir -p "$work"
# the libraries the package links besides a minimal root's (the root
# is made again when this list changes: its name is in the file name)
libs=openssl,adduser,libunbound8,libcurl4,libhiredis0.14
tar=${PST_DEB_ROOT_TAR:-$work/bookworm-$(echo "$libs" | cksum | cut -d' ' -f1).tar}
root=$work/root
mirror=${PST_DEB_MIRROR:-http://deb.debian.org/debian}

if [ ! -f "$tar" ]; then
    echo "deb-test: making a Debian 12 root with debootstrap (once)"
    rm -rf "$work/bootstrap"
    debootstrap --variant=minbase --include="$libs" \
        bookworm "$work/bootstrap" "$mirror" > "$work/debootstrap.log" 2>&1 \
        || { echo "deb-test: SKIPPED: debootstrap could not make a root here"\
                  "(no mirror reachable?), see $work/debootstrap.log" >&2
             exit 77; }
    tar -C "$work/bootstrap" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
    rm -rf "$work/bootstrap"
fi

# namespaces refused (an unprivileged container): nothing to test here
if ! unshare --mount --net --pid --fork true 2>/dev/null; then
    echo "deb-test: SKIPPED: this machine refuses mount/net/pid namespaces" >&2
    exit 77
fi

rm -rf "$root" && mkdir -p "$root"
tar -C "$root" -xf "$tar"
cp "$deb" "$root/tmp/postern.deb"
cp "$top/tests/deb/in-root.sh" "$root/tmp/in-root.sh"

# lo only: port 25 is free, nothing leaves the namespace
rc=0
unshare --mount --net --pid --fork sh -c '
    set -e
    ip link set lo up
    mount -t proc proc "$1/proc"
    mount --rbind /dev "$1/dev"
    mount -t tmpfs tmpfs "$1/run"
    exec chroot "$1" /bin/bash /tmp/in-root.sh
' deb-test "$root" || rc=$?
rm -rf "$root"
exit $rc
