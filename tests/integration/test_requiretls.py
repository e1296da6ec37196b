"""REQUIRETLS (RFC 8689, issue #10).  Receive side: the keyword is
offered only under TLS and MAIL REQUIRETLS is refused without it; the
flag is kept in the envelope.  Relay side: a REQUIRETLS message goes
only over an authenticated connection (DANE through the tests' signed
zone, or PKIX to a fixed host) to a next hop that offers REQUIRETLS --
another Postern, which keeps the flag -- and is returned with 5.7.30
when the next hop lacks REQUIRETLS or its MX answer is not
DNSSEC-validated.  "TLS-Required: No" lets a message through a verify
policy that would otherwise defer it."""

import os
import smtplib
import ssl

from aiosmtpd.controller import Controller

from pstdns import SignedDns
from pstest import PstTestCase, ROOT, free_port, wait_for
from psttls import Certs, spki_sha256
from test_send import Sink


class RequireTlsTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.dir = os.path.join(ROOT, "objs", "tests", "run",
                                "rtls-" + self.id().split(".")[-1])
        os.makedirs(self.dir, exist_ok=True)
        certs = Certs(os.path.join(self.dir, "pki"))
        self.ca = certs.ca()
        self.crt, self.key = certs.issue("mx", "mx.signed.test", ca=self.ca)

    def client_ctx(self):
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        ctx.check_hostname = False      # 127.0.0.1, a certificate for a name
        return ctx

    def receiver(self):
        """A Postern that takes mail for signed.test, with TLS."""
        return self.server("""
smtp {
    hostname mx.signed.test;
    tls_certificate %s;
    tls_certificate_key %s;
    server { listen {port}; local_domains signed.test plain.test; }
}
""" % (self.crt, self.key), name=self.id().split(".")[-1] + "_rcv")

    def dns(self, port, tlsa=True):
        dns = SignedDns()
        dns.zone("signed.test")
        dns.zone("plain.test", signed=False)
        dns.add("signed.test", "MX", "10 mx.signed.test")
        dns.add("mx.signed.test", "A", "127.0.0.1")
        if tlsa:
            dns.add("_%d._tcp.mx.signed.test" % port, "TLSA",
                    "3 1 1 " + spki_sha256(self.crt))
        dns.add("plain.test", "MX", "10 mx.plain.test")
        dns.add("mx.plain.test", "A", "127.0.0.1")
        dns.start()
        self._peers.append(dns)
        anchor = os.path.join(self.dir, "anchor.key")
        with open(anchor, "w") as f:
            f.write(dns.trust_anchor("signed.test"))
        return dns, anchor

    def relay(self, port, dns, anchor, extra=""):
        return self.server("""
load_module {modules}/relay_mx.so;
relay_mx_port %d;
relay_min_backoff 1s;
relay_max_backoff 2s;
resolver_trust_anchor %s;
relay_tls_ca_file %s;
%s
smtp {
    hostname mx.postern.test;
    tls_certificate %s;
    tls_certificate_key %s;
    server {
        listen {port};
        relay_domains signed.test plain.test;
    }
}
""" % (port, anchor, self.ca.cert, extra, self.crt, self.key),
            resolver=dns.address)

    def send_rtls(self, srv, rcpt, body=b"Subject: secret\r\n\r\nsecret\r\n"):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
            c.ehlo("client.test")
            self.assertFalse(c.has_extn("requiretls"))
            code, _ = c.docmd("MAIL FROM:<s@client.test> REQUIRETLS")
            self.assertEqual(code, 555)
            c.rset()
            c.starttls(context=self.client_ctx())
            c.ehlo("client.test")
            self.assertTrue(c.has_extn("requiretls"))
            c.sendmail("s@client.test", [rcpt], body,
                       mail_options=["REQUIRETLS"])

    def test_relayed_under_dane_and_kept_by_the_next_hop(self):
        rcv = self.receiver()
        dns, anchor = self.dns(rcv.port)
        srv = self.relay(rcv.port, dns, anchor)
        self.send_rtls(srv, "a@signed.test")
        qid, = wait_for(lambda: srv.queue_ids() == [] and rcv.queue_ids(),
                        30, what="the message at the next hop")
        env = rcv.envelope(qid)
        env = env if isinstance(env, bytes) else env.encode()
        self.assertIn(b"\nrequiretls 1\n", b"\n" + env)
        self.assertRegex(srv.log(), r"to=<a@signed.test>, relay=mx.signed."
                         r"test\[127.0.0.1\]:%d, .*status=sent" % rcv.port)

    def test_next_hop_without_requiretls_returns_it(self):
        sink = Sink()
        port = free_port()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.crt, self.key)
        ctl = Controller(sink, hostname="127.0.0.1", port=port,
                         decode_data=False, tls_context=ctx)
        ctl.start()
        self.addCleanup(ctl.stop)
        dns, anchor = self.dns(port)
        srv = self.relay(port, dns, anchor)
        self.send_rtls(srv, "a@signed.test")
        srv.wait_log(r"to=<a@signed.test>, .*dsn=5\.7\.30, status=bounced "
                     r"\(550 5\.7\.30 REQUIRETLS support required: [^)]*"
                     r"does not offer REQUIRETLS", timeout=30)
        self.assertEqual(sink.messages, [])

    def test_insecure_mx_returns_it(self):
        rcv = self.receiver()
        dns, anchor = self.dns(rcv.port)
        srv = self.relay(rcv.port, dns, anchor)
        self.send_rtls(srv, "b@plain.test")
        srv.wait_log(r"to=<b@plain.test>, .*status=bounced \(550 5\.7\.30 "
                     r"[^)]*neither DNSSEC-validated", timeout=30)
        self.assertEqual(rcv.queue_ids(), [])

    def test_tls_required_no_overrides_verify(self):
        """An untrusted certificate under relay_tls verify defers; the
        same message with "TLS-Required: No" goes (over TLS all the
        same)."""
        rcv = self.receiver()
        dns, anchor = self.dns(rcv.port, tlsa=False)
        srv = self.relay(rcv.port, dns, anchor,
                         "tls_policy plain.test verify;\n"
                         "relay_dead_destination 0;")
        self.assertEqual(srv.send(rcpts=("x@plain.test",),
                                  body=b"Subject: a\r\n\r\nx\r\n"), {})
        srv.wait_log(r"to=<x@plain.test>, .*status=deferred", timeout=30)
        self.assertEqual(srv.send(rcpts=("y@plain.test",),
                                  body=b"TLS-Required: No\r\n"
                                       b"Subject: b\r\n\r\ny\r\n"), {})
        srv.wait_log(r"to=<y@plain.test>, .*status=sent", timeout=30)
        self.assertNotRegex(srv.log(), r"to=<x@plain.test>, .*status=sent")
