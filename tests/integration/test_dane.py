"""DANE for outbound SMTP (RFC 7672, issue #10): TLSA records served from
the tests' DNSSEC-signed zone (pstdns.SignedDns) authenticate a relay
destination (aiosmtpd with STARTTLS and a self-signed certificate) in
place of the CAs.  relay_tls dane: a matching DANE-EE record delivers, a
record that does not match defers (nothing is sent), an unsigned domain
falls back to unauthenticated TLS; tls_policy dane-only for that
unsigned domain defers it instead."""

import os
import ssl

from aiosmtpd.controller import Controller

from pstdns import SignedDns
from pstest import PstTestCase, ROOT, free_port, wait_for
from psttls import Certs, spki_sha256
from test_send import Sink


class TlsSink(Sink):
    """Keeps, per message, whether the session was under TLS."""

    def __init__(self):
        super().__init__()
        self.tls = []

    async def handle_DATA(self, server, session, envelope):
        self.tls.append(server.transport.get_extra_info("sslcontext")
                        is not None)
        return await super().handle_DATA(server, session, envelope)


class DaneTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.dir = os.path.join(ROOT, "objs", "tests", "run",
                                "dane-" + self.id().split(".")[-1])
        os.makedirs(self.dir, exist_ok=True)
        certs = Certs(os.path.join(self.dir, "pki"))
        crt, key = certs.self_signed("mx", "mx.signed.test")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        self.sink = TlsSink()
        self.port = free_port()
        ctl = Controller(self.sink, hostname="127.0.0.1", port=self.port,
                         decode_data=False, tls_context=ctx,
                         require_starttls=True)
        ctl.start()
        self.addCleanup(ctl.stop)

        good = spki_sha256(crt)
        dns = SignedDns()
        dns.zone("signed.test")
        dns.zone("plain.test", signed=False)
        dns.add("signed.test", "MX", "10 mx.signed.test")
        dns.add("mx.signed.test", "A", "127.0.0.1")
        dns.add("_%d._tcp.mx.signed.test" % self.port, "TLSA",
                "3 1 1 " + good)
        dns.add("wrong.signed.test", "MX", "10 mx2.signed.test")
        dns.add("mx2.signed.test", "A", "127.0.0.1")
        dns.add("_%d._tcp.mx2.signed.test" % self.port, "TLSA",
                "3 1 1 " + "00" * 32)
        # a TLSA answer whose signature does not verify: bogus
        dns.add("bogus.signed.test", "MX", "10 mx3.signed.test")
        dns.add("mx3.signed.test", "A", "127.0.0.1")
        dns.add("_%d._tcp.mx3.signed.test" % self.port, "TLSA",
                "3 1 1 " + good, corrupt=True)
        dns.add("plain.test", "MX", "10 mx.plain.test")
        dns.add("mx.plain.test", "A", "127.0.0.1")
        dns.start()
        self._peers.append(dns)
        self.dns = dns
        self.anchor = os.path.join(self.dir, "anchor.key")
        with open(self.anchor, "w") as f:
            f.write(dns.trust_anchor("signed.test"))

    def relay(self, extra=""):
        return self.server("""
load_module {modules}/relay_mx.so;
relay_mx_port %d;
relay_min_backoff 1s;
relay_max_backoff 2s;
resolver_trust_anchor %s;
relay_tls dane;
%s
smtp {
    server {
        listen {port};
        hostname mx.postern.test;
        relay_domains signed.test wrong.signed.test bogus.signed.test plain.test;
    }
}
""" % (self.port, self.anchor, extra), resolver=self.dns.address)

    def test_dane_ee_match_mismatch_and_insecure(self):
        srv = self.relay()
        self.assertEqual(srv.send(rcpts=("a@signed.test",)), {})
        self.assertEqual(srv.send(rcpts=("b@wrong.signed.test",)), {})
        self.assertEqual(srv.send(rcpts=("c@plain.test",)), {})
        srv.wait_log(r"to=<a@signed.test>, relay=mx.signed.test\[127.0.0.1"
                     r"\]:%d, .*status=sent" % self.port, timeout=30)
        srv.wait_log(r"to=<c@plain.test>, .*status=sent", timeout=30)
        srv.wait_log(r"to=<b@wrong.signed.test>, .*status=deferred",
                     timeout=30)
        got = sorted(r for m in self.sink.messages for r in m[1])
        self.assertEqual(got, ["a@signed.test", "c@plain.test"])
        self.assertEqual(self.sink.tls, [True, True])
        self.assertRegex(srv.log(), r"to=<b@wrong.signed.test>.*did not "
                         r"verify")
        self.assertEqual(self.dns.errors, [])

    def test_bogus_tlsa_defers(self):
        """A DNSSEC-bogus TLSA answer (a record whose signature fails)
        is not "no TLSA": the hop is skipped, nothing is sent, even
        though the record itself would match (RFC 7672 2.2)."""
        srv = self.relay()
        self.assertEqual(srv.send(rcpts=("c@bogus.signed.test",)), {})
        srv.wait_log(r"to=<c@bogus.signed.test>, .*status=deferred \(451 "
                     r"4\.4\.1 [^)]*TLSA lookup of _\d+\._tcp\.mx3\.signed"
                     r"\.test is DNSSEC-bogus", timeout=30)
        self.assertEqual(self.sink.messages, [])

    def test_dane_only_refuses_an_unsigned_domain(self):
        srv = self.relay("tls_policy plain.test dane-only;\n"
                         "tls_policy signed.test dane-only;")
        self.assertEqual(srv.send(rcpts=("c@plain.test",)), {})
        self.assertEqual(srv.send(rcpts=("a@signed.test",)), {})
        srv.wait_log(r"to=<a@signed.test>, .*status=sent", timeout=30)
        srv.wait_log(r"to=<c@plain.test>, .*status=deferred \(451 4\.4\.1 "
                     r"[^)]*no DNSSEC-secure MX", timeout=30)
        got = sorted(r for m in self.sink.messages for r in m[1])
        self.assertEqual(got, ["a@signed.test"])
