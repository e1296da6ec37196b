"""DNSSEC through the public module API: with `resolver_trust_anchor`,
libunbound validates, and a module's pst_dns_resolve() answer says
secure, bogus or neither.

The DNS server (pstdns.SignedDns) serves example.test signed with a key
made for the test, and other.test unsigned.  The test module dns_facts
looks a name up at connect and writes the answer's facts into a header
(X-DNS-Facts, carried in the envelope as "prepend"), which the tests
read from the queue."""

import os
import re
import unittest

from pstest import PstTestCase
from psttls import build
from pstdns import SignedDns, ZoneKey


CONF = """
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test;
        smtp_reverse_lookup off;
        dns_facts_lookup %s;
    }
}
"""


class DnssecTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.module = build("objs/tests/modules/dns_facts.so")
        dns = SignedDns()
        dns.zone("example.test")
        dns.zone("other.test", signed=False)
        dns.add("www.example.test", "A", "127.0.0.5")
        dns.add("bad.example.test", "A", "127.0.0.6", corrupt=True)
        dns.add("host.other.test", "A", "127.0.0.7")
        dns.start()
        self._peers.append(dns)
        self.dns = dns

    def facts(self, name, anchor="DNSKEY", tag="", mode=None):
        """Start a server that looks name up (with the zone's key as
        trust anchor in the given form, or none, or the anchor line
        given), send one message and return the X-DNS-Facts fields as a
        dict."""
        top = "load_module %s;\n" % self.module
        if anchor:
            top += "resolver_trust_anchor {dir}/anchor.key;\n"
        srv = self.server(CONF % name, start=False, resolver=self.dns.address,
                          extra_top=top, name=self.id().split(".")[-1] + tag)
        if anchor:
            with open(os.path.join(srv.dir, "anchor.key"), "w") as f:
                f.write(anchor if " IN " in anchor else
                        self.dns.trust_anchor("example.test", anchor))
            if mode is not None:
                os.chmod(os.path.join(srv.dir, "anchor.key"), mode)
        srv.start()
        srv.send()
        env = re.sub(r"\+([0-9A-F]{2})",
                     lambda m: chr(int(m.group(1), 16)),
                     srv.envelope(srv.queue_ids()[0]))
        m = re.search(r"^prepend X-DNS-Facts: (.*)$", env, re.M)
        self.assertIsNotNone(m, "no X-DNS-Facts header in:\n" + env)
        facts = dict(kv.split("=", 1) for kv in m.group(1).split())
        self.assertEqual(facts["name"], name)
        self.assertEqual(self.dns.errors, [])
        return facts

    def asked(self, name, qtype):
        return [q for q in self.dns.queries if q[:2] == (name, qtype)]

    def test_secure(self):
        f = self.facts("www.example.test")
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("ok", "1", "0", "127.0.0.5"), f)
        # validated: unbound fetched the zone's key, with DO
        self.assertTrue(self.asked("example.test", "DNSKEY"))
        self.assertTrue(all(do for _, _, do in self.dns.queries))

    def test_secure_with_ds_anchor(self):
        f = self.facts("www.example.test", anchor="DS")
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("ok", "1", "0", "127.0.0.5"), f)

    def test_bogus(self):
        # the server answered with the address, but its RRSIG is wrong:
        # the module must see no address, bogus=1 and SERVFAIL
        f = self.facts("bad.example.test")
        self.assertTrue(self.asked("bad.example.test", "A"))
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["count"],
                          f["addr"]), ("servfail", "0", "1", "0", "-"), f)

    def test_wrong_anchor_is_bogus(self):
        # correctly signed, but not by the key the anchor names
        f = self.facts("www.example.test",
                       anchor=ZoneKey("example.test").anchor())
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("servfail", "0", "1", "-"), f)

    def test_insecure_zone(self):
        # no trust anchor covers other.test: an answer, not validated
        f = self.facts("host.other.test")
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("ok", "0", "0", "127.0.0.7"), f)

    def test_no_trust_anchor(self):
        # the same signed name without resolver_trust_anchor: not secure
        f = self.facts("www.example.test", anchor=None)
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("ok", "0", "0", "127.0.0.5"), f)
        # and without an anchor a bad signature goes unnoticed
        f = self.facts("bad.example.test", anchor=None, tag="_bad")
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("ok", "0", "0", "127.0.0.6"), f)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (workers as nobody)")
    def test_root_only_anchor(self):
        # a key file only root can read, as the master checked it: the
        # workers load it before they drop privileges, so it still counts
        f = self.facts("www.example.test", mode=0o600)
        self.assertEqual((f["status"], f["secure"], f["bogus"], f["addr"]),
                         ("ok", "1", "0", "127.0.0.5"), f)

    def test_unusable_anchor_refuses_configuration(self):
        # libunbound reads the anchors only at its first lookup: the core
        # must load them while it reads the configuration, or every
        # lookup of every worker fails ("initialization failure")
        top = "load_module %s;\nresolver_trust_anchor {dir}/anchor.key;\n" \
            % self.module
        for content in (None, "this is not a zone file\n"):
            srv = self.server(CONF % "www.example.test", start=False,
                              resolver=self.dns.address, extra_top=top)
            anchor = os.path.join(srv.dir, "anchor.key")
            if content is not None:
                with open(anchor, "w") as f:
                    f.write(content)
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn('cannot load DNSSEC trust anchors from "%s"'
                          % anchor, r.stderr)
            self.assertEqual(srv.start(expect_fail=True), 1)
            self.assertIn("cannot load DNSSEC trust anchors", srv.stderr())


if __name__ == "__main__":
    unittest.main()
