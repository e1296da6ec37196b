"""The delivery layer (core/queue/pst_deliver*.c) through the relay engine:
next hops tried in order (a refused connection, a 421 greeting), idle
connections reused (relay_connection_reuse), what a next hop cannot
take (SMTPUTF8, 8-bit text without 8BITMIME), the Received: limit
(max_received_headers) and relay_tls encrypt against a server without
STARTTLS.  Destinations are aiosmtpd and raw sockets on loopback, found
through the tests' DNS server."""

import email
import glob
import os
import shutil
import socket
import ssl
import tempfile
import threading
import time

from pstest import ROOT, free_port, wait_for
from psttls import Certs
from test_relay import RelayCase, CONF, state_files
from test_send import Sink

from aiosmtpd.controller import Controller


class CountingSink(Sink):
    """Counts EHLOs (one per connection); utf8=False hides SMTPUTF8."""

    def __init__(self, eightbit=True, utf8=True):
        super().__init__(eightbit)
        self.ehlos = 0
        self.utf8 = utf8

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        self.ehlos += 1
        if not self.utf8:
            responses = [r for r in responses if "SMTPUTF8" not in r]
        return await super().handle_EHLO(server, session, envelope,
                                         hostname, responses)


class Greeter:
    """Accepts on addr:port, says `greeting` and closes: a busy MX."""

    def __init__(self, addr, port, greeting=b"421 4.3.2 busy\r\n"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.greeting = greeting
        self.count = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        deadline = time.time() + 120
        while not self.stopping and time.time() < deadline:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.count += 1
            try:
                c.sendall(self.greeting)
            finally:
                c.close()

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def two_mx(first, second="127.0.0.1"):
    return ["--local=/test/",
            "--mx-host=ok.test,mx1.ok.test,10",
            "--mx-host=ok.test,mx2.ok.test,20",
            "--mx-host=client.test,mx2.ok.test,10",
            "--host-record=mx1.ok.test,%s" % first,
            "--host-record=mx2.ok.test,%s" % second]


class DeliverCase(RelayCase):

    def sink(self, handler=None, **kw):
        handler = handler or CountingSink()
        port = kw.pop("port", None)
        if port is None:
            return super().sink(handler)
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         decode_data=False, **kw)
        ctl.start()
        self.addCleanup(ctl.stop)
        return handler, port

    def relay_with(self, records, port, extra=""):
        dns = self.dnsmasq(records)
        extra += "\nrelay_min_backoff 1s;\nrelay_max_backoff 2s;"
        return self.server(CONF % (port, extra), resolver=dns.address)

    def held(self, srv, n):
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == n, 20, what="held")

    def dsns(self, handler):
        return [m for m in handler.messages if m[0] in ("", "<>")]


class DeliverTest(DeliverCase):

    def test_refused_first_hop_falls_through(self):
        handler, port = self.sink()
        # nothing listens on 127.0.0.2:port: refused, then mx2
        srv = self.relay_with(two_mx("127.0.0.2"), port)
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        self.received(handler, 1)
        wait_for(lambda: "relay=mx2.ok.test[127.0.0.1]" in srv.log(), 10,
                 what="delivered through mx2")

    def test_busy_greeting_falls_through(self):
        handler, port = self.sink()
        busy = Greeter("127.0.0.3", port)
        self.addCleanup(busy.stop)
        srv = self.relay_with(two_mx("127.0.0.3"), port)
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        self.received(handler, 1)
        self.assertGreaterEqual(busy.count, 1)
        self.assertIn("421 4.3.2 busy", srv.log())

    def test_all_hops_busy_defers(self):
        handler, port = self.sink()
        busy = Greeter("127.0.0.3", port)
        self.addCleanup(busy.stop)
        busy2 = Greeter("127.0.0.4", port)
        self.addCleanup(busy2.stop)
        srv = self.relay_with(two_mx("127.0.0.3", "127.0.0.4"), port)
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        wait_for(lambda: "status=deferred" in srv.log(), 15,
                 what="deferred")
        self.assertEqual(handler.messages, [])
        self.assertEqual(len(srv.queue_ids()), 1)

    def test_connection_reused(self):
        handler, port = self.sink()
        srv = self.relay(port, "relay_hold on;\nrelay_concurrency 1;\n"
                         "relay_connection_idle 10s;")
        for i in range(5):
            self.assertEqual(srv.send(rcpts=("a%d@ok.test" % i,)), {})
        self.held(srv, 5)
        self.assertEqual(self.queue(srv, "release").returncode, 0)
        self.received(handler, 5)
        self.assertEqual(handler.ehlos, 1)

    def test_reuse_limit_one_connection_per_message(self):
        handler, port = self.sink()
        srv = self.relay(port, "relay_hold on;\nrelay_concurrency 1;\n"
                         "relay_connection_reuse 1;")
        for i in range(3):
            self.assertEqual(srv.send(rcpts=("a%d@ok.test" % i,)), {})
        self.held(srv, 3)
        self.assertEqual(self.queue(srv, "release").returncode, 0)
        self.received(handler, 3)
        self.assertEqual(handler.ehlos, 3)

    def test_smtputf8_to_a_server_without_it_bounces(self):
        # ok.test's MX hides SMTPUTF8; the sender's MX (client.test, on
        # 127.0.0.5) has it and takes the report, itself SMTPUTF8
        handler, port = self.sink(CountingSink(utf8=False))
        back = CountingSink()
        ctl = Controller(back, hostname="127.0.0.5", port=port,
                         decode_data=False)
        ctl.start()
        self.addCleanup(ctl.stop)
        srv = self.relay_with(["--local=/test/",
                               "--mx-host=ok.test,mx.ok.test,10",
                               "--mx-host=client.test,mx.client.test,10",
                               "--host-record=mx.ok.test,127.0.0.1",
                               "--host-record=mx.client.test,127.0.0.5"],
                              port)
        with srv.smtp() as c:
            c.ehlo("client.test")
            if not c.has_extn("smtputf8"):
                self.skipTest("the receive side has no SMTPUTF8")
            c.sendmail("sender@client.test", ["a@ok.test"],
                       "Subject: \u00e9\r\n\r\nx\r\n".encode(),
                       mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        wait_for(lambda: len(self.dsns(back)) == 1, 15, what="a DSN")
        self.assertIn("5.6.7", self.dsns(back)[0][4].decode())
        self.assertEqual(handler.messages, [])

    def test_smtputf8_not_needed_is_not_sent(self):
        # RFC 6531 3.2: ASCII addresses and header, UTF-8 only in the
        # body: the next hop without SMTPUTF8 gets it without SMTPUTF8
        handler, port = self.sink(CountingSink(utf8=False))
        srv = self.relay(port, "")
        with srv.smtp() as c:
            c.ehlo("client.test")
            if not c.has_extn("smtputf8"):
                self.skipTest("the receive side has no SMTPUTF8")
            c.sendmail("sender@client.test", ["a@ok.test"],
                       "Subject: plain\r\n\r\ncaf\u00e9\r\n".encode(),
                       mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.received(handler, 1)
        got = handler.messages[0]
        self.assertEqual(got[0], "sender@client.test")
        self.assertNotIn("SMTPUTF8", " ".join(got[2]))
        self.assertIn("caf\u00e9".encode(), got[4])

    def test_too_many_received_headers_fail_5_4_6(self):
        handler, port = self.sink()
        srv = self.relay(port, "max_received_headers 3;")
        hops = b"".join(b"Received: from h%d by h%d; Thu, 1 Jan 2026"
                        b" 00:00:00 +0000\r\n" % (i, i) for i in range(3))
        self.assertEqual(srv.send(rcpts=("a@ok.test",),
                                  body=hops + b"Subject: loop\r\n\r\nx\r\n"),
                         {})
        wait_for(lambda: len(self.dsns(handler)) == 1, 15, what="a DSN")
        text = self.dsns(handler)[0][4].decode()
        self.assertIn("Status: 5.4.6", text)
        self.assertEqual([m for m in handler.messages
                          if m[0] not in ("", "<>")], [])

    def test_tls_encrypt_without_starttls_defers(self):
        handler, port = self.sink()
        srv = self.relay(port, "relay_tls encrypt;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        wait_for(lambda: "status=deferred" in srv.log(), 15,
                 what="deferred")
        self.assertEqual(handler.messages, [])
        self.assertIn("STARTTLS", srv.log())

    def test_directives_checked(self):
        handler, port = self.sink()
        for bad, why in (("relay_tls sometimes;", "relay_tls"),
                         ("relay_timeout ehlo 5s;", "relay_timeout stage"),
                         ("relay_timeout mail 0s;", "relay_timeout"),
                         ("relay_connection_reuse 0;",
                          "relay_connection_reuse"),
                         ("relay_source_address nowhere;",
                          "relay_source_address"),
                         ("relay_helo_name 'a b';", "relay_helo_name")):
            srv = self.relay(port, bad, start=False)
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn(why, r.stderr, bad)
            self.assertIn("postern.conf:", r.stderr, bad)


class TlsSink(CountingSink):
    """Records whether each message came over TLS."""

    def __init__(self):
        super().__init__()
        self.tls = []

    async def handle_DATA(self, server, session, envelope):
        self.tls.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


class DeliverPeersTest(DeliverCase):
    """Next hops with STARTTLS, a SIZE limit, DSN (another Postern) and
    without 8BITMIME."""

    def tls_sink(self, cn="mx.ok.test"):
        certs = Certs(os.path.join(self.run_dir(), "pki"))
        ca = certs.ca()
        crt, key = certs.issue("mx", cn, ca=ca)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        handler = TlsSink()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         decode_data=False, tls_context=ctx)
        ctl.start()
        self.addCleanup(ctl.stop)
        return handler, port, ca

    def run_dir(self):
        d = os.path.join(tempfile.gettempdir(), "pst-deliver-" +
                         self.id().split(".")[-1])
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_starttls_when_offered(self):
        handler, port, _ = self.tls_sink()
        srv = self.relay(port, "")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        self.received(handler, 1)
        self.assertEqual(handler.tls, [True])

    def test_tls_verify(self):
        # the next hop's certificate is for mx.ok.test, signed by ca:
        # without that CA verify fails (deferred); with it, delivered
        handler, port, ca = self.tls_sink()
        srv = self.relay(port, "relay_tls verify;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        wait_for(lambda: "status=deferred" in srv.log(), 15,
                 what="deferred")
        self.assertEqual(handler.messages, [])
        srv.stop()
        handler2, port2, ca2 = self.tls_sink()
        srv2 = self.relay(port2, "relay_tls verify;\nrelay_tls_ca_file %s;"
                          % ca2.cert, name="verify_ok")
        self.assertEqual(srv2.send(rcpts=("a@ok.test",)), {})
        self.received(handler2, 1)
        self.assertEqual(handler2.tls, [True])

    def test_size_too_small_bounces_5_3_4(self):
        handler = CountingSink()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         decode_data=False, data_size_limit=4000)
        ctl.start()
        self.addCleanup(ctl.stop)
        srv = self.relay(port, "")
        with srv.smtp() as c:
            # RET=HDRS: the report itself fits under the limit
            c.ehlo("client.test")
            c.sendmail("sender@client.test", ["a@ok.test"],
                       b"Subject: big\r\n\r\n" + b"x" * 5000 + b"\r\n",
                       mail_options=["RET=HDRS"])
        wait_for(lambda: len(self.dsns(handler)) == 1, 15, what="a DSN")
        self.assertIn("Status: 5.3.4", self.dsns(handler)[0][4].decode())
        self.assertEqual([m for m in handler.messages
                          if m[0] not in ("", "<>")], [])

    def test_eight_bit_to_a_server_without_8bitmime(self):
        """RFC 6152 3: converted to 7 bits, never sent raw -- a plain
        8-bit message becomes quoted-printable, a multipart's 8-bit
        parts are encoded (the attachment decodes to the same bytes),
        and 8-bit in a header bounces 5.6.3.  No BODY=8BITMIME on the
        wire, and the log says sent for the two converted ones."""
        handler = CountingSink(eightbit=False)
        handler, port = self.sink(handler)
        srv = self.relay(port, "")
        # no bare CR or LF: without BINARYMIME a message is lines
        attach = bytes(b for b in range(256) if b not in (10, 13)) * 4
        mixed = (b"MIME-Version: 1.0\r\nSubject: m\r\n"
                 b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
                 b"--b0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 b"Content-Transfer-Encoding: 8bit\r\n\r\n"
                 b"d\xc3\xa9j\xc3\xa0 vu\r\n"
                 b"--b0\r\nContent-Type: application/octet-stream\r\n"
                 b"Content-Transfer-Encoding: binary\r\n\r\n"
                 + attach + b"\r\n--b0--\r\n")
        for rcpt, body in (("a@ok.test", "Subject: t\r\n\r\ncaf\u00e9\r\n"
                                          .encode()),
                           ("b@ok.test", mixed),
                           ("c@ok.test", "Subject: caf\u00e9\r\n\r\nx\r\n"
                                          .encode())):
            with srv.smtp() as c:
                c.ehlo("client.test")
                c.sendmail("sender@client.test", [rcpt], body,
                           mail_options=["BODY=8BITMIME"])
        wait_for(lambda: len(handler.messages) >= 3, 15, what="3 messages")
        time.sleep(0.3)
        for m in handler.messages:
            self.assertTrue(all(b < 128 for b in m[4]), m[4][:200])
            self.assertNotIn("BODY=8BITMIME", [o.upper() for o in m[2]])
        by = {m[1][0]: m for m in handler.messages if m[0] not in ("", "<>")}
        self.assertEqual(sorted(by), ["a@ok.test", "b@ok.test"])
        # the log says both were delivered, and why c@ bounced
        for rcpt in ("a@ok.test", "b@ok.test"):
            srv.wait_log(r"to=<%s>, relay=[^,]*\[127\.0\.0\.1\]:%d,.*"
                         r"status=sent \(250" % (rcpt, port))
        srv.wait_log(r"to=<c@ok.test>,.*status=bounced \(554 5\.6\.3 .*"
                     r"lacks 8BITMIME .* a header")
        # header fields as they were, the new ones for the non-MIME body
        data = by["a@ok.test"][4]
        self.assertIn(b"\r\nSubject: t\r\nMIME-Version: 1.0\r\n"
                      b"Content-Type: text/plain; charset=unknown-8bit\r\n"
                      b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                      b"caf=C3=A9\r\n", data)
        msg = email.message_from_bytes(data)
        self.assertEqual(msg.get_payload(decode=True), b"caf\xc3\xa9\r\n")
        parts = list(email.message_from_bytes(by["b@ok.test"][4]).walk())
        self.assertEqual([p.get_content_type() for p in parts],
                         ["multipart/mixed", "text/plain",
                          "application/octet-stream"])
        self.assertEqual(parts[1].get_payload(decode=True),
                         b"d\xc3\xa9j\xc3\xa0 vu")
        self.assertEqual(parts[2].get_payload(decode=True), attach)
        dsn = [m for m in handler.messages if m[0] in ("", "<>")]
        self.assertEqual(len(dsn), 1)
        self.assertIn("Status: 5.6.3", dsn[0][4].decode())
        self.assertIn("c@ok.test", dsn[0][4].decode())

    def test_undeclared_eight_bit_converted_too(self):
        """8-bit text a client sent without BODY=8BITMIME is converted
        for a hop without 8BITMIME like declared 8-bit text; a 7-bit
        message goes out as it is."""
        handler = CountingSink(eightbit=False)
        handler, port = self.sink(handler)
        srv = self.relay(port, "")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<sender@client.test>")
            c.cmd("RCPT TO:<u@ok.test>")
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: u\r\n\r\nna\xc3\xafve\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        with srv.smtp() as c:
            c.sendmail("sender@client.test", ["s@ok.test"],
                       b"Subject: s\r\n\r\nplain\r\n")
        wait_for(lambda: len(handler.messages) >= 2, 15, what="2 messages")
        by = {m[1][0]: m[4] for m in handler.messages}
        self.assertTrue(all(b < 128 for b in by["u@ok.test"]),
                        by["u@ok.test"])
        self.assertIn(b"na=C3=AFve", by["u@ok.test"])
        self.assertNotIn(b"MIME-Version", by["s@ok.test"])
        self.assertTrue(by["s@ok.test"].endswith(b"\r\n\r\nplain\r\n"),
                        by["s@ok.test"])

    def test_dsn_passed_to_a_next_hop_with_dsn(self):
        # the next hop is another Postern (it has DSN): NOTIFY, ORCPT,
        # RET and ENVID reach its spool as they were given
        hop = self.server("""
smtp {
    server {
        listen {port};
        hostname mx.ok.test;
        local_domains ok.test;
    }
}
""", name="hop")
        srv = self.relay(hop.port, "")
        with srv.smtp() as c:
            c.ehlo("client.test")
            c.sendmail("sender@client.test", ["a@ok.test"],
                       b"Subject: d\r\n\r\nx\r\n",
                       mail_options=["RET=HDRS", "ENVID=env+2B1"],
                       rcpt_options=["NOTIFY=SUCCESS,DELAY",
                                     "ORCPT=rfc822;orig@ok.test"])
        wait_for(lambda: len(hop.queue_ids()) == 1, 15, what="at the hop")
        qid = hop.queue_ids()[0]
        path = glob.glob(os.path.join(hop.spool, "queue", "*", qid))[0]
        with open(path, "rb") as f:
            env = f.read().split(b"POSTERN-ENVELOPE", 1)[1].decode()
        self.assertIn("\nret HDRS\n", env)
        self.assertIn("\nenvid env+2B1\n", env)
        # NOTIFY=SUCCESS,DELAY: the bits 0x02 | 0x08
        self.assertIn("rcpt a@ok.test notify=10 orcpt=rfc822;orig@ok.test",
                      env)
