"""MTA-STS (RFC 8461, issue #10) under relay_tls mta-sts: the policy
found through the "_mta-sts" TXT record (dnsmasq) and fetched over
HTTPS from a local server the test starts (its certificate signed by
the test CA, relay_tls_ca_file); enforce delivers only to MX hosts the
policy names, over a certificate that verifies, testing only logs, and
the policy cached in the spool outlives a restart with the HTTPS server
gone."""

import http.server
import os
import ssl
import threading

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
           "--txt-record=_mta-sts.testing.test,v=STSv1; id=t1"]


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

    def relay(self, port):
        dns = self.dnsmasq(RECORDS)
        return self.server("""
load_module {modules}/relay_mx.so;
relay_mx_port %d;
relay_min_backoff 1s;
relay_max_backoff 2s;
relay_dead_destination 0;
relay_tls mta-sts;
relay_tls_ca_file %s;
mta_sts_port %d;
smtp {
    server {
        listen {port};
        hostname mx.postern.test;
        relay_domains sts.test bad.test testing.test plain.test;
    }
}
""" % (port, self.ca.cert, self.web.port), resolver=dns.address)

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
