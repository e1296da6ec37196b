"""pstnet -- network namespaces a test makes for itself, so that each
Postern node has an address of its own (issue #14).

    net = Network("t1")          # raises unittest.SkipTest without rights
    try:
        a = net.node("a", "10.201.0.11")
        net.client_address("10.201.0.101")
        ... Server(..., launcher=a.launcher, host="10.201.0.11",
                   socket_factory=net.hub.socket) ...
    finally:
        net.close()

The layout: one hub namespace holding a bridge (br0, 10.201.0.1/24,
plus any client addresses), and one namespace per node with a veth pair
whose other end is a port of the bridge.  Everything is made inside the
test's own namespaces (`ip -n NS link add ... peer ... netns OTHER`):
the root namespace gets no interface, address or route, so the subnet
cannot clash with the machine's or with another test's.  Peers run in
the hub (`ip netns exec HUB ...`); the test's own clients open their
sockets there (Netns.socket(): a thread that setns()'s into it, since a
socket belongs to the namespace it was made in).

Names are pstn<pid>-<tag>-<role>, so parallel runs never meet; close()
deletes them (and with them their interfaces), and a new Network first
deletes those of test processes that no longer run, ending what still
runs in them (a run killed before its cleanup).  Every command is
bounded in time.
"""

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import unittest

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
PREFIX = "pstn"


def ip(*args, check=True):
    """Run ip(8); its CompletedProcess.  check: fail with its stderr."""
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True,
                       timeout=20)
    if check and r.returncode != 0:
        raise AssertionError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def in_netns(name, fn, *args):
    """fn(*args) run in a thread that entered network namespace name;
    its result (or its exception).  The process itself never moves."""
    out = {}

    def run():
        try:
            fd = os.open("/run/netns/" + name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, "setns %s: %s" % (name, os.strerror(e)))
            finally:
                os.close(fd)
            out["value"] = fn(*args)
        except BaseException as e:      # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(30)
    if t.is_alive():
        raise AssertionError("in_netns(%s): no return within 30 s" % name)
    if "error" in out:
        raise out["error"]
    return out["value"]


class Netns:
    """One named network namespace, its loopback up."""

    def __init__(self, name):
        self.name = name
        ip("netns", "add", name)
        try:
            self.ip("link", "set", "lo", "up")
        except AssertionError:
            self.delete()
            raise

    def ip(self, *args):
        return ip("-n", self.name, *args)

    @property
    def launcher(self):
        """The argv prefix that runs a program in it."""
        return ["ip", "netns", "exec", self.name]

    def socket(self):
        """An unconnected TCP socket of this namespace."""
        return in_netns(self.name, socket.socket, socket.AF_INET,
                        socket.SOCK_STREAM)

    def run(self, fn, *args):
        """fn(*args) in this namespace (a thread of it): start a peer
        whose sockets must live here (aiosmtpd's Controller.start)."""
        return in_netns(self.name, fn, *args)

    def delete(self):
        ip("netns", "del", self.name, check=False)


def _sweep():
    """Delete the namespaces of test runs whose process is gone, and end
    what that run left running in them (its nodes, its Redis)."""
    for line in ip("netns", "list", check=False).stdout.splitlines():
        m = re.match(r"(%s(\d+)-\S+)" % PREFIX, line)
        if not m or os.path.exists("/proc/" + m.group(2)):
            continue
        for pid in ip("netns", "pids", m.group(1), check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        ip("netns", "del", m.group(1), check=False)


class Network:
    """A hub with a bridge and the node namespaces plugged into it."""

    SUBNET = "10.201.0"

    def __init__(self, tag):
        if shutil.which("ip") is None:
            raise unittest.SkipTest("no ip(8) (iproute2)")
        _sweep()
        self.prefix = "%s%d-%s" % (PREFIX, os.getpid(), tag)
        self.spaces = []
        try:
            self.hub = self._netns("hub")
        except AssertionError as e:
            self.close()
            raise unittest.SkipTest("cannot make a network namespace (%s):"
                                    " needs root or CAP_SYS_ADMIN" % e)
        try:
            self.hub.ip("link", "add", "br0", "type", "bridge")
            self.hub.ip("addr", "add", self.SUBNET + ".1/24", "dev", "br0")
            self.hub.ip("link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise

    @property
    def hub_address(self):
        return self.SUBNET + ".1"

    def _netns(self, role):
        ns = Netns("%s-%s" % (self.prefix, role))
        self.spaces.append(ns)
        return ns

    def node(self, role, address):
        """A namespace whose eth0 has address/24, a port of the hub's
        bridge; returns its Netns."""
        ns = self._netns(role)
        port = "v" + role
        self.hub.ip("link", "add", port, "type", "veth", "peer", "name",
                    "eth0", "netns", ns.name)
        self.hub.ip("link", "set", port, "master", "br0")
        self.hub.ip("link", "set", port, "up")
        ns.ip("addr", "add", address + "/24", "dev", "eth0")
        ns.ip("link", "set", "eth0", "up")
        return ns

    def client_address(self, address):
        """One more address of the hub: a client of its own."""
        self.hub.ip("addr", "add", address + "/24", "dev", "br0")

    def close(self):
        """Delete every namespace (the veths and the bridge go with
        them).  Processes must be gone first, or a namespace outlives
        its name until they are."""
        for ns in reversed(self.spaces):
            ns.delete()
        self.spaces = []
