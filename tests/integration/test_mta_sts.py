"""MTA-STS (RFC 8461, issue #10) under relay_tls mta-sts: the policy
found through the "_mta-sts" TXT record (dnsmasq) and fetched over
HTTPS from a local server the test starts (its certificate signed by
the test CA, relay_tls_ca_file); enforce delivers only to MX hosts the
policy names, over a certificate that verifies, testing only logs, and
the policy cached in the spool outlives a restart with the HTTPS server
gone."""

import base64
import email
import email.policy
import http.server
import json
import os
import smtplib
import ssl
import threading

import jsonschema

from aiosmtpd.controller import Controller

from pstest import PstTestCase, ROOT, free_port, wait_for
from psttls import Certs
from test_send import Sink

POLICIES = {
    "sts.test": "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\n"
                "max_age: 86400\r\n",
    "bad.test": "version: STSv1\nmode: enforce\nmx: mx.bad.test\n"
                "max_age: 86400\n",
    "testing.test": "version: STSv1\nmode: testing\nmx: *.testing.test\n"
                    "max_age: 86400\n",
}

RECORDS = ["--local=/test/",
           "--mx-host=sts.test,mx.sts.test,10",
           "--mx-host=bad.test,mx.other.test,10",
           "--mx-host=testing.test,mx.other.test,10",
           "--mx-host=plain.test,mx.other.test,10",
           "--host-record=mx.sts.test,127.0.0.1",
           "--host-record=mx.other.test,127.0.0.1",
           "--host-record=mta-sts.sts.test,127.0.0.1",
           "--host-record=mta-sts.bad.test,127.0.0.1",
           "--host-record=mta-sts.testing.test,127.0.0.1",
           "--txt-record=_mta-sts.sts.test,v=STSv1; id=20261204a",
           "--txt-record=_mta-sts.bad.test,v=STSv1; id=7",
           "--txt-record=_mta-sts.testing.test,v=STSv1; id=t1",
           "--mx-host=reports.test,mx.other.test,10",
           # (dnsmasq splits a TXT at every comma: the https-then-mailto
           # case is in check_tlsrpt.c)
           "--txt-record=_smtp._tls.sts.test,v=TLSRPTv1;"
           "rua=mailto:tls@reports.test",
           "--txt-record=_smtp._tls.bad.test,v=TLSRPTv1; "
           "rua=mailto:tls@reports.test"]

# RFC 8460 4.4, the aggregate report's fields, as a JSON Schema
REPORT_SCHEMA = {
    "type": "object",
    "required": ["organization-name", "date-range", "contact-info",
                 "report-id", "policies"],
    "properties": {
        "organization-name": {"type": "string", "minLength": 1},
        "date-range": {
            "type": "object",
            "required": ["start-datetime", "end-datetime"],
            "properties": {
                "start-datetime": {"type": "string", "pattern":
                                   r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"},
                "end-datetime": {"type": "string", "pattern":
                                 r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}}},
        "contact-info": {"type": "string"},
        "report-id": {"type": "string", "minLength": 1},
        "policies": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["policy", "summary"],
                "properties": {
                    "policy": {
                        "type": "object",
                        "required": ["policy-type", "policy-domain"],
                        "properties": {
                            "policy-type": {"enum": ["tlsa", "sts",
                                                     "no-policy-found"]},
                            "policy-string": {"type": "array",
                                              "items": {"type": "string"}},
                            "policy-domain": {"type": "string"},
                            "mx-host": {"type": "array",
                                        "items": {"type": "string"}}}},
                    "summary": {
                        "type": "object",
                        "required": ["total-successful-session-count",
                                     "total-failure-session-count"],
                        "properties": {
                            "total-successful-session-count":
                                {"type": "integer", "minimum": 0},
                            "total-failure-session-count":
                                {"type": "integer", "minimum": 0}}},
                    "failure-details": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["result-type",
                                         "failed-session-count"],
                            "properties": {
                                "result-type": {"enum": [
                                    "starttls-not-supported",
                                    "certificate-host-mismatch",
                                    "certificate-expired",
                                    "certificate-not-trusted",
                                    "validation-failure", "tlsa-invalid",
                                    "dnssec-invalid", "dane-required",
                                    "sts-policy-fetch-error",
                                    "sts-policy-invalid",
                                    "sts-webpki-invalid"]},
                                "sending-mta-ip": {"type": "string"},
                                "receiving-mx-hostname": {"type": "string"},
                                "receiving-ip": {"type": "string"},
                                "failed-session-count":
                                    {"type": "integer", "minimum": 1}}}}}}}}}


class PolicyServer:
    """HTTPS on 127.0.0.1 serving each domain's policy by Host."""

    def __init__(self, crt, key):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "").split(":")[0]
                outer.requests.append((host, self.path))
                dom = host[len("mta-sts."):]
                body = POLICIES.get(dom)
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                     Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class MtaStsTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.dir = os.path.join(ROOT, "objs", "tests", "run",
                                "sts-" + self.id().split(".")[-1])
        os.makedirs(self.dir, exist_ok=True)
        self.certs = Certs(os.path.join(self.dir, "pki"))
        self.ca = self.certs.ca()
        web = self.certs.issue("web", "mta-sts.sts.test", ca=self.ca, sans=[
            "DNS:mta-sts.sts.test", "DNS:mta-sts.bad.test",
            "DNS:mta-sts.testing.test"])
        self.web = PolicyServer(*web)
        self.addCleanup(self.web.stop)

    def sink(self, ca=None):
        ca = ca or self.ca
        crt, key = self.certs.issue("mx", "mx.sts.test", ca=ca, sans=[
            "DNS:mx.sts.test", "DNS:mx.other.test"])
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        handler = Sink()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         decode_data=False, tls_context=ctx)
        ctl.start()
        self.addCleanup(ctl.stop)
        handler.port = port
        return handler

    def relay(self, port, extra="", smtp_extra=""):
        dns = self.dnsmasq(RECORDS)
        return self.server("""
%s
load_module {modules}/relay_mx.so;
relay_mx_port %d;
relay_min_backoff 1s;
relay_max_backoff 2s;
relay_dead_destination 0;
relay_tls mta-sts;
relay_tls_ca_file %s;
mta_sts_port %d;
smtp {
    %s
    server {
        listen {port};
        hostname mx.postern.test;
        relay_domains sts.test bad.test testing.test plain.test;
    }
}
""" % (extra, port, self.ca.cert, self.web.port, smtp_extra),
            resolver=dns.address)

    def rcpts(self, sink):
        return sorted(r for m in sink.messages for r in m[1])

    def test_enforce_testing_and_the_cache(self):
        sink = self.sink()
        srv = self.relay(sink.port)
        for rcpt in ("a@sts.test", "b@bad.test", "c@testing.test"):
            self.assertEqual(srv.send(rcpts=(rcpt,)), {})
        srv.wait_log(r"to=<a@sts.test>, relay=mx.sts.test\[127.0.0.1\]:%d, "
                     r".*status=sent" % sink.port, timeout=30)
        srv.wait_log(r"to=<c@testing.test>, .*status=sent", timeout=30)
        srv.wait_log(r"to=<b@bad.test>, .*dsn=4\.7\.5, status=deferred "
                     r"\(451 4\.7\.5 no MX host of bad\.test matches",
                     timeout=30)
        self.assertEqual(self.rcpts(sink), ["a@sts.test", "c@testing.test"])
        log = srv.log()
        self.assertIn("mta-sts sts.test: policy 20261204a, mode enforce", log)
        self.assertRegex(log, r"MX mx.other.test is not in the MTA-STS "
                         r"policy t1 \(testing: used\)")
        cache = os.path.join(srv.spool, "mta-sts", "bad.test")
        wait_for(lambda: os.path.exists(cache), 10, what="the cache file")
        with open(cache) as f:
            self.assertIn("id 7\n", f.read())

        # the HTTPS server is gone; the restarted server still enforces
        # bad.test's policy from its cache (without it: no policy, and
        # the message would go to mx.other.test)
        fetched = len(self.web.requests)
        self.web.stop()
        srv.stop()
        srv.start()
        self.assertEqual(srv.send(rcpts=("d@bad.test",)), {})
        srv.wait_log(r"to=<d@bad.test>, .*dsn=4\.7\.5, status=deferred",
                     timeout=30)
        self.assertEqual(len(self.web.requests), fetched)
        self.assertEqual(self.rcpts(sink), ["a@sts.test", "c@testing.test"])

    def test_enforce_needs_a_verified_certificate(self):
        """The MX's certificate from a CA we do not trust: the enforced
        domain is deferred; a domain without a policy gets the message
        over unverified TLS."""
        sink = self.sink(ca=self.certs.ca("other", cn="Other CA"))
        srv = self.relay(sink.port)
        self.assertEqual(srv.send(rcpts=("a@sts.test",)), {})
        self.assertEqual(srv.send(rcpts=("p@plain.test",)), {})
        srv.wait_log(r"to=<p@plain.test>, .*status=sent", timeout=30)
        srv.wait_log(r"to=<a@sts.test>, .*status=deferred \(451 4\.4\.1 "
                     r"[^)]*did not verify", timeout=30)
        self.assertEqual(self.rcpts(sink), ["p@plain.test"])

    def test_tls_report(self):
        """tls_report: after the interval each policy domain with a
        mailto: rua gets its aggregate report (RFC 8460), whose JSON
        follows the RFC's fields and counts what happened."""
        sink = self.sink()
        srv = self.relay(sink.port, "tls_report on;\n"
                         "tls_report_interval 3s;\n"
                         "tls_report_contact postmaster@postern.test;")
        self.assertEqual(srv.send(rcpts=("a@sts.test",)), {})
        self.assertEqual(srv.send(rcpts=("b@bad.test",)), {})
        srv.wait_log(r"to=<a@sts.test>, .*status=sent", timeout=30)
        srv.wait_log(r"to=<b@bad.test>, .*status=deferred", timeout=30)
        wait_for(lambda: len([m for m in sink.messages
                              if "tls@reports.test" in m[1]]) >= 2,
                 30, what="two TLS reports at the sink")
        reports = {}
        for m in sink.messages:
            if "tls@reports.test" not in m[1]:
                continue
            self.assertIn(m[0], ("", "<>"))             # the null sender
            msg = email.message_from_bytes(m[4], policy=email.policy.default)
            self.assertEqual(msg.get_content_type(), "multipart/report")
            self.assertEqual(msg.get_param("report-type"), "tlsrpt")
            part, = [p for p in msg.iter_attachments()
                     if p.get_content_type() == "application/tlsrpt+json"]
            rep = json.loads(part.get_payload(decode=True))
            jsonschema.validate(rep, REPORT_SCHEMA)
            dom = msg["TLS-Report-Domain"]
            self.assertIn("Report Domain: %s" % dom, msg["Subject"])
            self.assertEqual(rep["contact-info"], "postmaster@postern.test")
            reports[dom] = rep["policies"][0]
        ok = reports["sts.test"]
        self.assertEqual(ok["policy"]["policy-type"], "sts")
        self.assertEqual(ok["policy"]["mx-host"], ["mx.sts.test"])
        self.assertIn("mode: enforce", ok["policy"]["policy-string"])
        self.assertGreaterEqual(
            ok["summary"]["total-successful-session-count"], 1)
        self.assertEqual(ok["summary"]["total-failure-session-count"], 0)
        bad = reports["bad.test"]
        self.assertEqual(bad["summary"]["total-successful-session-count"], 0)
        self.assertGreaterEqual(
            bad["summary"]["total-failure-session-count"], 1)
        self.assertEqual(bad["failure-details"][0]["result-type"],
                         "validation-failure")
        self.assertEqual(bad["failure-details"][0]["receiving-mx-hostname"],
                         "mx.other.test")

    def test_requiretls_over_an_enforced_policy(self):
        """REQUIRETLS without DNSSEC (dnsmasq signs nothing): an MX named
        by an enforced MTA-STS policy, over a verified certificate, to a
        next hop offering REQUIRETLS (another Postern) takes the message
        (RFC 8689 4.2.1); an MX without a policy does not."""
        crt, key = self.certs.issue("rcv", "mx.sts.test", ca=self.ca, sans=[
            "DNS:mx.sts.test", "DNS:mx.other.test"])
        rcv = self.server("""
smtp {
    hostname mx.sts.test;
    tls_certificate %s;
    tls_certificate_key %s;
    server { listen {port}; local_domains sts.test plain.test; }
}
""" % (crt, key), name="rtls_rcv")
        srv = self.relay(rcv.port, smtp_extra="tls_certificate %s;\n"
                         "    tls_certificate_key %s;" % (crt, key))
        ctx = ssl.create_default_context(cafile=self.ca.cert)
        ctx.check_hostname = False
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
            c.starttls(context=ctx)
            c.ehlo("client.test")
            for rcpt in ("a@sts.test", "p@plain.test"):
                c.sendmail("s@client.test", [rcpt], b"Subject: x\r\n\r\nx\r\n",
                           mail_options=["REQUIRETLS"])
        srv.wait_log(r"to=<a@sts.test>, relay=mx.sts.test\[127.0.0.1\]:%d, "
                     r".*status=sent" % rcv.port, timeout=30)
        srv.wait_log(r"to=<p@plain.test>, .*status=bounced \(550 5\.7\.30 ",
                     timeout=30)
        qid, = wait_for(rcv.queue_ids, 10, what="the message at the hop")
        env = rcv.envelope(qid)
        env = env if isinstance(env, bytes) else env.encode()
        self.assertIn(b"\nrequiretls 1\n", b"\n" + env)
