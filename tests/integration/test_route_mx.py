"""MX routing (modules/relay_mx.c) against a DNS server the test starts.

objs/tests/route_probe loads a configuration with relay_mx, asks its
router for the route of each domain through the core's event loop and
resolver (as the queue process does) and prints the verdict and the
hops.  dnsmasq (--local=/test/: authoritative, so unknown names are
NXDOMAIN and known names without the type asked NODATA) serves the
records; pstdns.SignedDns serves a signed zone for the DNSSEC flag."""

import os
import socket
import subprocess

from pstest import PstTestCase, OBJS, MODULES, RUN, ROOT, free_ports
from pstdns import SignedDns

PROBE = os.path.join(OBJS, "tests", "route_probe")

RECORDS = [
    "--local=/test/",
    # preferences
    "--mx-host=dest.test,mx1.dest.test,10",
    "--mx-host=dest.test,mx2.dest.test,20",
    "--mx-host=dest.test,mx3.dest.test,30",
    "--host-record=mx1.dest.test,127.0.0.2",
    "--host-record=mx2.dest.test,127.0.0.3",
    "--host-record=mx3.dest.test,127.0.0.4",
    # equal preference, and a worse one that is always last
    "--mx-host=spread.test,a.spread.test,10",
    "--mx-host=spread.test,b.spread.test,10",
    "--mx-host=spread.test,c.spread.test,10",
    "--mx-host=spread.test,z.spread.test,20",
    "--host-record=a.spread.test,127.0.0.11",
    "--host-record=b.spread.test,127.0.0.12",
    "--host-record=c.spread.test,127.0.0.13",
    "--host-record=z.spread.test,127.0.0.14",
    # every address of an exchanger, IPv6 first
    "--mx-host=multi.test,mx.multi.test,5",
    "--host-record=mx.multi.test,127.0.0.21",
    "--host-record=mx.multi.test,127.0.0.22",
    "--host-record=mx.multi.test,::1",
    # no MX: the domain's own addresses
    "--host-record=plain.test,127.0.0.31,::1",
    # no MX and no address (the name exists: NODATA)
    "--txt-record=empty.test,nothing here",
    # null MX (RFC 7505)
    "--mx-host=null.test,.,0",
    # MX whose exchanger has no address
    "--mx-host=noaddr.test,nohost.test,10",
    # the best exchanger's lookups fail: the second one is used
    "--mx-host=halfbad.test,mx.fail.test,10",
    "--mx-host=halfbad.test,mx2.dest.test,20",
    # loops
    "--mx-host=loop.test,me.loop.test,10",
    "--host-record=me.loop.test,127.0.0.1",
    "--mx-host=backup.test,mx1.dest.test,10",
    "--mx-host=backup.test,me.loop.test,20",
    "--mx-host=backup.test,mx3.dest.test,30",
    "--mx-host=loopfail.test,mx.fail.test,10",
    "--mx-host=loopfail.test,me.loop.test,20",
    "--mx-host=byname.test,mx1.dest.test,20",
    "--mx-host=byname.test,mx.ourname.test,10",
    "--host-record=mx.ourname.test,127.0.0.41",
    "--mx-host=other.test,mx.other.test,10",
    "--host-record=mx.other.test,127.0.0.2",
]


def parse(out):
    """route_probe output -> list of (route fields, [hop fields])."""
    routes = []
    for line in out.splitlines():
        words = line.split(" ")
        if words[0] == "route":
            f = dict(w.split("=", 1) for w in words[2:7])
            f["domain"] = words[1]
            f["text"] = line.split(" text=", 1)[1]
            routes.append((f, []))
        elif words[0] == "hop":
            f = dict(w.split("=", 1) for w in words[2:])
            f["name"] = words[1]
            routes[-1][1].append(f)
    return routes


class RouteMxTest(PstTestCase):

    def setUp(self):
        super().setUp()
        name = self.id().split(".")[-1]
        self.dir = os.path.join(RUN, "route_" + name)
        os.makedirs(self.dir, exist_ok=True)
        self.listen_port = free_ports(1)[0]

    def dns(self, extra=()):
        # a forward zone to a port nobody answers: SERVFAIL for fail.test
        dead = free_ports(1)[0]
        self.server_dns = self.dnsmasq(
            RECORDS + ["--server=/fail.test/127.0.0.1#%d" % dead]
            + list(extra))
        return self.server_dns.address

    def probe(self, resolver, *domains, port=None, listen=None,
              hostname="me.test", extra="", n=1, cancel=False,
              timeout="5s"):
        """Write a configuration, run route_probe, return the routes."""
        conf = os.path.join(self.dir, "probe.conf")
        listen = listen or "127.0.0.1:%d" % self.listen_port
        with open(conf, "w") as f:
            f.write("load_module %s/relay_mx.so;\n"
                    "daemon off;\nerror_log %s/error.log info;\n"
                    "spool_dir %s/spool;\nresolver %s;\n"
                    "relay_mx_port %d;\n"
                    "relay_mx_dns_timeout %s;\n%s\n"
                    "smtp { hostname %s; server { listen %s; } }\n"
                    % (MODULES, self.dir, self.dir, resolver,
                       port or self.listen_port, timeout, extra, hostname,
                       listen))
        args = [PROBE, "-p", ROOT + "/", "-c", conf, "-n", str(n)]
        if cancel:
            args.append("-x")
        r = subprocess.run(args + list(domains), capture_output=True,
                           text=True, timeout=90)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return parse(r.stdout)

    def one(self, resolver, domain, **kw):
        routes = self.probe(resolver, domain, **kw)
        self.assertEqual(len(routes), 1, routes)
        return routes[0]

    def assertRejected(self, route, code, ecode, text):
        f, hops = route
        self.assertEqual((f["verdict"], f["code"], f["ecode"], hops),
                         ("reject", str(code), ecode, []), route)
        self.assertIn(text, f["text"])

    # -- preferences and addresses ---------------------------------------

    def test_preference_order(self):
        f, hops = self.one(self.dns(), "dest.test")
        self.assertEqual((f["verdict"], f["port"], f["hops"]),
                         ("accept", str(self.listen_port), "3"), f)
        self.assertEqual([(h["name"], h["pref"], h["addr"]) for h in hops],
                         [("mx1.dest.test", "10", "127.0.0.2"),
                          ("mx2.dest.test", "20", "127.0.0.3"),
                          ("mx3.dest.test", "30", "127.0.0.4")])
        self.assertEqual({h["secure"] for h in hops}, {"0"})

    def test_port_directive(self):
        f, hops = self.one(self.dns(), "dest.test", port=2626)
        self.assertEqual(f["port"], "2626")
        self.assertEqual(len(hops), 3)

    def test_equal_preference_spread(self):
        routes = self.probe(self.dns(), "spread.test", n=40)
        self.assertEqual(len(routes), 40)
        first = {}
        for f, hops in routes:
            names = [h["name"] for h in hops]
            # the three of preference 10 in some order, then z
            self.assertEqual(sorted(names[:3]), ["a.spread.test",
                                                 "b.spread.test",
                                                 "c.spread.test"], names)
            self.assertEqual(names[3], "z.spread.test")
            first[names[0]] = first.get(names[0], 0) + 1
        # each first at least once in 40 tries (a miss: p < 3e-7)
        self.assertEqual(len(first), 3, first)

    def test_every_address(self):
        f, hops = self.one(self.dns(), "multi.test")
        addrs = [h["addr"] for h in hops]
        self.assertEqual(addrs[0], "::1")
        self.assertEqual(sorted(addrs[1:]), ["127.0.0.21", "127.0.0.22"])
        self.assertEqual({h["name"] for h in hops}, {"mx.multi.test"})

    def test_address_family(self):
        f, hops = self.one(self.dns(), "multi.test",
                           extra="relay_mx_address_family ipv4;")
        self.assertEqual(sorted(h["addr"] for h in hops),
                         ["127.0.0.21", "127.0.0.22"])
        f, hops = self.one(self.dns(), "multi.test",
                           extra="relay_mx_address_family ipv6;")
        self.assertEqual([h["addr"] for h in hops], ["::1"])

    def test_no_mx_uses_the_domain(self):
        f, hops = self.one(self.dns(), "plain.test")
        self.assertEqual(f["verdict"], "accept")
        self.assertEqual([(h["name"], h["pref"], h["addr"]) for h in hops],
                         [("plain.test", "0", "::1"),
                          ("plain.test", "0", "127.0.0.31")])

    def test_address_literal(self):
        f, hops = self.one(self.dns(), "[127.0.0.5]")
        self.assertEqual([h["addr"] for h in hops], ["127.0.0.5"])
        self.assertNotIn("[127.0.0.5]", self.server_dns.queries())

    # -- failures ----------------------------------------------------------

    def test_null_mx(self):
        self.assertRejected(self.one(self.dns(), "null.test"), 556,
                            "5.1.10", "null MX")

    def test_nxdomain(self):
        self.assertRejected(self.one(self.dns(), "nosuch.test"), 550,
                            "5.1.2", "not found")

    def test_no_mx_no_address(self):
        self.assertRejected(self.one(self.dns(), "empty.test"), 550,
                            "5.1.2", "no MX and no address")

    def test_exchanger_without_address(self):
        self.assertRejected(self.one(self.dns(), "noaddr.test"), 550,
                            "5.4.4", "no address")

    def test_servfail_defers(self):
        f, hops = self.one(self.dns(), "x.fail.test")
        self.assertEqual((f["verdict"], f["code"], f["ecode"], hops),
                         ("tempfail", "451", "4.4.3", []), f)

    def test_exchanger_servfail_falls_through(self):
        f, hops = self.one(self.dns(), "halfbad.test")
        self.assertEqual(f["verdict"], "accept")
        self.assertEqual([h["addr"] for h in hops], ["127.0.0.3"])

    def test_timeout_defers(self):
        # a resolver that reads the queries and never answers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            f, hops = self.one("127.0.0.1:%d" % s.getsockname()[1],
                               "dest.test", timeout="300ms")
        self.assertEqual((f["verdict"], f["code"], f["ecode"]),
                         ("tempfail", "451", "4.4.3"), f)
        self.assertIn("timed out", f["text"])

    def test_invalid_domain(self):
        self.assertRejected(self.one(self.dns(), "bad..test"), 550,
                            "5.1.2", "invalid")

    def test_cancel(self):
        # no route printed, and done never runs after cancel
        self.assertEqual(self.probe(self.dns(), "dest.test", cancel=True),
                         [])

    # -- loops -------------------------------------------------------------

    def test_loop_to_our_address(self):
        self.assertRejected(self.one(self.dns(), "loop.test"), 550,
                            "5.4.6", "loops back to myself")
        self.assertRejected(self.one(self.dns(), "[127.0.0.1]"), 550,
                            "5.4.6", "loops back to myself")

    def test_other_port_is_not_us(self):
        f, hops = self.one(self.dns(), "loop.test",
                           port=self.listen_port + 1)
        self.assertEqual([h["addr"] for h in hops], ["127.0.0.1"])

    def test_other_loopback_address_is_not_us(self):
        f, hops = self.one(self.dns(), "other.test")
        self.assertEqual([h["addr"] for h in hops], ["127.0.0.2"])

    def test_wildcard_listener_covers_loopback(self):
        self.assertRejected(
            self.one(self.dns(), "other.test",
                     listen="0.0.0.0:%d" % self.listen_port),
            550, "5.4.6", "loops back")

    def test_worse_exchangers_than_us_dropped(self):
        f, hops = self.one(self.dns(), "backup.test")
        self.assertEqual([h["name"] for h in hops], ["mx1.dest.test"])

    def test_loop_behind_a_failing_lookup_defers(self):
        # the better exchanger's address is unknown for now: not a loop
        # (yet), try again later
        f, hops = self.one(self.dns(), "loopfail.test")
        self.assertEqual((f["verdict"], f["code"], f["ecode"], hops),
                         ("tempfail", "451", "4.4.3", []), f)

    def test_our_host_name(self):
        f, hops = self.one(self.dns(), "byname.test",
                           hostname="mx.ourname.test")
        self.assertRejected((f, hops), 550, "5.4.6", "loops back")
        f, hops = self.one(self.dns(), "byname.test")
        self.assertEqual([h["name"] for h in hops],
                         ["mx.ourname.test", "mx1.dest.test"])


class RouteMxDnssecTest(PstTestCase):
    """The secure bit of each hop: the MX answer and the address answer
    both validated."""

    def setUp(self):
        super().setUp()
        dns = SignedDns()
        dns.zone("signed.test")
        dns.zone("plain.test", signed=False)
        dns.add("signed.test", "MX", "10 mx.signed.test")
        dns.add("signed.test", "MX", "20 mx.plain.test")
        dns.add("mx.signed.test", "A", "127.0.0.51")
        dns.add("mx.signed.test", "AAAA", "::1")
        dns.add("mx.plain.test", "A", "127.0.0.52")
        dns.add("plain.test", "MX", "10 mx.signed.test")
        dns.start()
        self._peers.append(dns)
        self.dnssrv = dns
        self.dir = os.path.join(RUN, "route_" + self.id().split(".")[-1])
        os.makedirs(self.dir, exist_ok=True)

    def probe(self, domain, anchor=True):
        conf = os.path.join(self.dir, "probe.conf")
        with open(os.path.join(self.dir, "anchor.key"), "w") as f:
            f.write(self.dnssrv.trust_anchor("signed.test"))
        with open(conf, "w") as f:
            f.write("load_module %s/relay_mx.so;\n"
                    "daemon off;\nerror_log %s/error.log info;\n"
                    "spool_dir %s/spool;\nresolver %s;\n%s"
                    "smtp { server { listen 127.0.0.1:%d; } }\n"
                    % (MODULES, self.dir, self.dir, self.dnssrv.address,
                       "resolver_trust_anchor %s/anchor.key;\n" % self.dir
                       if anchor else "", free_ports(1)[0]))
        r = subprocess.run([PROBE, "-p", ROOT + "/", "-c", conf, domain],
                           capture_output=True, text=True, timeout=90)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.dnssrv.errors, [])
        (f, hops), = parse(r.stdout)
        self.assertEqual(f["verdict"], "accept", f)
        return [(h["name"], h["addr"], h["secure"]) for h in hops]

    def test_secure_hops(self):
        self.assertEqual(self.probe("signed.test"),
                         [("mx.signed.test", "::1", "1"),
                          ("mx.signed.test", "127.0.0.51", "1"),
                          ("mx.plain.test", "127.0.0.52", "0")])

    def test_insecure_mx(self):
        # the exchanger's addresses are secure, the MX answer is not
        self.assertEqual(self.probe("plain.test"),
                         [("mx.signed.test", "::1", "0"),
                          ("mx.signed.test", "127.0.0.51", "0")])

    def test_no_anchor_nothing_secure(self):
        self.assertEqual({s for _, _, s in self.probe("signed.test",
                                                     anchor=False)}, {"0"})
