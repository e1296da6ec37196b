"""TLS: STARTTLS (RFC 3207) and implicit TLS (RFC 8314) with real
clients (smtplib, swaks, openssl s_client), the STARTTLS command
injection (CVE-2011-0411), state reset, tls_required, client
certificates, SNI, RSA+ECDSA pairs, protocols, handshake timeouts and
certificate reloads."""

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from pstest import have, wait_for
from psttls import TlsRaw, TlsTestCase, client_context, der, tls_conf

MSG = b"Subject: tls\r\n\r\nover TLS\r\n"


class StartTlsTest(TlsTestCase):

    def test_smtplib_starttls_and_trace(self):
        srv = self.tls_server()
        with srv.smtp() as c:
            code, text = c.ehlo("client.test")
            self.assertIn(b"STARTTLS", text)
            self.assertEqual(c.starttls(context=self.ctx)[0], 220)
            c.ehlo("client.test")
            self.assertNotIn("starttls", c.esmtp_features)
            c.sendmail("a@client.test", ["u@example.test"], MSG)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 1)
        data = srv.message(ids[0]).decode()
        self.assertIn("with ESMTPS id", data)
        m = re.search(r"\(using (TLSv1\.[23]) with cipher (\S+)\)", data)
        self.assertIsNotNone(m, data[:400])
        # envelope values are xtext: the space is "+20"
        self.assertIn("tls %s+20%s" % (m.group(1), m.group(2)),
                      srv.envelope(ids[0]))
        wait_for(lambda: "tls=%s/%s" % (m.group(1), m.group(2))
                 in srv.log(), 5, what="queued log line with TLS")
        self.assertIn("proto=ESMTPS", srv.log())

    def test_starttls_errors(self):
        srv = self.tls_server()
        with TlsRaw(srv.port) as c:
            c.ehlo()
            self.assertReply(c.cmd("STARTTLS now"), 501, "5.5.4")
            c.starttls(self.ctx, "mx.example.test")
            ext, _ = c.ehlo()
            self.assertNotIn("STARTTLS", ext)
            # TLS inside TLS
            self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")
            self.assertReply(c.cmd("QUIT"), 221)

    def test_not_offered_without_certificate(self):
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test; } }
        """)
        with TlsRaw(srv.port) as c:
            ext, _ = c.ehlo()
            self.assertNotIn("STARTTLS", ext)
            self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1")

    def test_injection_after_starttls_is_discarded(self):
        # CVE-2011-0411: commands pipelined in cleartext after STARTTLS
        # must not run inside the TLS session
        srv = self.tls_server()
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@attacker.test>\r\n")
            self.assertReply(c.reply(), 220)
            c.starttls(self.ctx, "mx.example.test", command=False)
            # the first answer inside TLS must be the one to our EHLO
            ext, lines = c.ehlo()
            self.assertIn("mx.example.test", lines[0])
            # and no transaction was started by the injected MAIL
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 503,
                             "5.5.1")
        wait_for(lambda: "after STARTTLS before the TLS handshake"
                 in srv.log(), 5, what="discard notice")

    def test_starttls_reply_waits_for_a_slow_reader(self):
        # ~200 KB of replies to pipelined EHLOs before the 220, for a
        # client with a tiny receive window that reads late: reading
        # pauses and resumes around STARTTLS, the 220 comes last and the
        # handshake follows it.  (On loopback the kernel takes the 220
        # at once, so pst_ssl's "cleartext first" path is not reached.)
        srv = self.tls_server()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.settimeout(20)
        sock.connect(("127.0.0.1", srv.port))
        c = TlsRaw.__new__(TlsRaw)
        c.sock, c.buf = sock, b""
        self.assertReply(c.reply(), 220)
        c.send(b"EHLO client.test\r\n" * 1200 + b"STARTTLS\r\n")
        time.sleep(1.0)
        for _ in range(1200):
            self.assertReply(c.reply(), 250)
        self.assertReply(c.reply(), 220, "Ready to start TLS")
        c.starttls(self.ctx, "mx.example.test", command=False)
        ext, _ = c.ehlo()
        self.assertNotIn("STARTTLS", ext)
        c.close()

    def test_state_is_reset(self):
        srv = self.tls_server()
        with TlsRaw(srv.port) as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            c.starttls(self.ctx, "mx.example.test")
            # EHLO is forgotten, so is the transaction
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503,
                             "send HELO/EHLO first")
            c.ehlo()
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 503,
                             "need MAIL")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)

    def test_pipelining_and_large_message_over_tls(self):
        # many commands in one TLS record, and a message bigger than any
        # buffer: decrypted bytes held by OpenSSL must not stall a session
        srv = self.tls_server()
        body = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 5000
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.starttls(self.ctx, "mx.example.test")
            c.ehlo()
            c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<u@example.test>"
                   b"\r\nRCPT TO:<v@example.test>\r\nDATA\r\n")
            for code in (250, 250, 250, 354):
                self.assertReply(c.reply(), code)
            c.send(body + b".\r\n")
            self.assertReply(c.reply(), 250, "queued")
            # pipelined small transactions back to back
            c.send(b"".join(b"MAIL FROM:<a@client.test>\r\n"
                            b"RCPT TO:<u@example.test>\r\nDATA\r\n"
                            for _ in range(1)))
            for code in (250, 250, 354):
                self.assertReply(c.reply(), code)
            c.send(b"hello\r\n.\r\nNOOP\r\nNOOP\r\nQUIT\r\n")
            for code in (250, 250, 250, 221):
                self.assertReply(c.reply(), code)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 2)
        sizes = sorted(len(srv.body(i)) for i in ids)
        self.assertEqual(sizes[1], len(body))

    def test_tls_required(self):
        srv = self.tls_server(srv_extra="tls_required on;")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 530,
                             "5.7.0")
            self.assertReply(c.cmd("AUTH PLAIN"), 502)  # no backend here
            c.starttls(self.ctx, "mx.example.test")
            c.ehlo()
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)

    def test_tls_required_needs_certificate(self):
        srv = self.server("""
            smtp { server { listen {port}; tls_required on;
                            local_domains example.test; } }
        """, start=False)
        r = srv.run_tool("-t")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("tls_required needs tls_certificate", r.stderr)

    def test_session_resumption_across_connections(self):
        srv = self.tls_server()
        ctx = client_context(self.ca, maximum=ssl.TLSVersion.TLSv1_2)
        session = None
        reused = []
        for i in range(6):
            with TlsRaw(srv.port) as c:
                c.ehlo()
                c.cmd("STARTTLS")
                c.sock = ctx.wrap_socket(c.sock,
                                         server_hostname="mx.example.test",
                                         session=session)
                c.ehlo()
                reused.append(c.sock.session_reused)
                session = c.sock.session
                c.cmd("QUIT")
        # tickets are shared by the workers: every later session resumes
        self.assertEqual(reused, [False] + [True] * 5)


class SessionCacheTest(TlsTestCase):

    def resume(self, srv, ctx, session):
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.cmd("STARTTLS")
            c.sock = ctx.wrap_socket(c.sock,
                                     server_hostname="mx.example.test",
                                     session=session)
            c.ehlo()             # TLS 1.3: the ticket comes after
            c.cmd("QUIT")
            return c.sock.session_reused, c.sock.session

    def reload_and_wait(self, srv):
        before = set(srv.workers())
        srv.reload()
        wait_for(lambda: set(srv.workers())
                 and not set(srv.workers()) & before, 15,
                 what="new workers")

    def test_shared_cache_across_workers_and_reloads(self):
        # no tickets: resumption needs the cache; "shared" lets the new
        # workers after a reload resume what the old ones cached
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            srv = self.tls_server(extra="tls_session_cache shared:1m;\n"
                                  "    tls_session_tickets off;",
                                  name="shared_%s" % version.name)
            ctx = client_context(self.ca, minimum=version, maximum=version)
            reused, session = self.resume(srv, ctx, None)
            self.assertFalse(reused)
            reused, _ = self.resume(srv, ctx, session)
            self.assertTrue(reused, version)
            self.reload_and_wait(srv)
            reused, _ = self.resume(srv, ctx, session)
            self.assertTrue(reused, "%s after a reload" % version)
            srv.stop()

    def test_builtin_cache_is_per_worker(self):
        srv = self.tls_server(extra="tls_session_cache builtin;\n"
                              "    tls_session_tickets off;")
        ctx = client_context(self.ca, maximum=ssl.TLSVersion.TLSv1_2)
        _, session = self.resume(srv, ctx, None)
        self.reload_and_wait(srv)
        reused, _ = self.resume(srv, ctx, session)
        self.assertFalse(reused)

    def test_invalid_cache_sizes(self):
        for arg in ("shared:1k", "shared:x", "builtin:0", "sometimes"):
            srv = self.server(tls_conf(self.crt, self.key,
                                       "tls_session_cache %s;" % arg),
                              start=False, name="cache_" + arg[:7]
                              .replace(":", "_"))
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0, arg)
            self.assertIn("tls_session_cache", r.stderr)


class ImplicitTlsTest(TlsTestCase):

    def conf(self, extra=""):
        return tls_conf(self.crt, self.key, extra, srv_extra="""
            listen {port2} tls;""")

    def test_smtp_ssl(self):
        srv = self.server(self.conf())
        # smtplib sends no SNI to an address: no host name check here
        ctx = client_context(self.ca)
        ctx.check_hostname = False
        with smtplib.SMTP_SSL("127.0.0.1", srv.ports[1], timeout=10,
                              context=ctx) as c:
            c.ehlo("client.test")
            c.sendmail("a@client.test", ["u@example.test"], MSG)
        with TlsRaw(srv.ports[1], tls=self.ctx,
                    server_hostname="mx.example.test") as c:
            self.assertIn("mx.example.test", c.greeting[1][0])
            ext, _ = c.ehlo()
            self.assertNotIn("STARTTLS", ext)
            self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(MSG + b".\r\n")
            self.assertReply(c.reply(), 250)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 2)
        self.assertIn(b"with ESMTPS", srv.message(ids[0]))

    def test_listen_tls_needs_certificate(self):
        srv = self.server("""
            smtp { server { listen {port} tls; } }
        """, start=False)
        r = srv.run_tool("-t")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("needs a certificate", r.stderr)

    def test_handshake_timeout_and_no_blocking(self):
        # one worker: a client that never finishes its handshake must
        # neither hold it up nor stay forever
        srv = self.server(self.conf("tls_handshake_timeout 1s;"),
                          workers=1)
        silent = socket.create_connection(("127.0.0.1", srv.ports[1]))
        half = socket.create_connection(("127.0.0.1", srv.ports[1]))
        half.sendall(b"\x16\x03\x01\x02\x00\x01")   # a torn ClientHello
        t0 = time.monotonic()
        srv.send()                                  # served meanwhile
        self.assertLess(time.monotonic() - t0, 5)
        for s in (silent, half):
            s.settimeout(10)
            t0 = time.monotonic()
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
            self.assertLess(time.monotonic() - t0, 9)
            s.close()
        wait_for(lambda: "handshake timed out" in srv.log(), 5,
                 what="timeout logged")

    def test_plaintext_client_on_tls_port(self):
        srv = self.server(self.conf())
        with socket.create_connection(("127.0.0.1", srv.ports[1]),
                                      timeout=10) as s:
            s.sendall(b"EHLO client.test\r\n")
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            self.assertFalse(data.startswith(b"220"))
        wait_for(lambda: "TLS handshake failed" in srv.log(), 5,
                 what="handshake failure logged")


class ClientCertificateTest(TlsTestCase):

    def setUp(self):
        super().setUp()
        self.ccrt, self.ckey = self.pki.issue("client", "client.test",
                                              self.ca, client=True)
        other = self.pki.ca("other", "Other CA")
        self.xcrt, self.xkey = self.pki.issue("stranger", "stranger.test",
                                              other, client=True)

    def srv(self, mode):
        return self.tls_server(extra="tls_client_certificate %s;\n"
                               "    tls_verify_client %s;"
                               % (self.ca.cert, mode))

    def test_required_missing_certificate(self):
        srv = self.srv("on")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                c.starttls(self.ctx, "mx.example.test")
                c.ehlo()        # TLS 1.3 reports the alert on first read
        wait_for(lambda: "TLS handshake failed" in srv.log(), 5,
                 what="handshake failure logged")

    def test_required_with_certificate(self):
        srv = self.srv("required")
        ctx = client_context(self.ca, self.ccrt, self.ckey)
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.starttls(ctx, "mx.example.test")
            c.ehlo()
            self.assertReply(c.cmd("NOOP"), 250)
        wait_for(lambda: 'client="CN=client.test" verified' in srv.log(),
                 5, what="client certificate logged")

    def test_required_wrong_ca(self):
        srv = self.srv("on")
        ctx = client_context(self.ca, self.xcrt, self.xkey)
        with TlsRaw(srv.port) as c:
            c.ehlo()
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError)):
                c.starttls(ctx, "mx.example.test")
                c.ehlo()

    def test_optional(self):
        srv = self.srv("optional")
        for cert, key, word in ((None, None, None),
                                (self.ccrt, self.ckey, "verified"),
                                (self.xcrt, self.xkey, "unverified")):
            ctx = client_context(self.ca, cert, key)
            with TlsRaw(srv.port) as c:
                c.ehlo()
                c.starttls(ctx, "mx.example.test")
                c.ehlo()
                self.assertReply(c.cmd("NOOP"), 250)
            if word:
                wait_for(lambda: (" %s" % word) in srv.log(), 5,
                         what="client certificate " + word)

    def test_on_needs_ca(self):
        srv = self.server(tls_conf(self.crt, self.key,
                                   "tls_verify_client on;"), start=False)
        r = srv.run_tool("-t")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("needs tls_client_certificate", r.stderr)


class SniTest(TlsTestCase):

    def test_sni_picks_server_block(self):
        bcrt, bkey = self.pki.issue("b", "mail.other.test", self.ca)
        srv = self.server("""
            smtp {
                server {
                    listen {port};
                    listen {port2} tls;
                    hostname mx.example.test;
                    tls_certificate %s; tls_certificate_key %s;
                    local_domains example.test;
                }
                server {
                    listen {port};
                    listen {port2} tls;
                    hostname mail.other.test;
                    tls_server_names mail.other.test *.other.test;
                    tls_certificate %s; tls_certificate_key %s;
                    local_domains other.test;
                }
            }
        """ % (self.crt, self.key, bcrt, bkey))
        # STARTTLS: the certificate and then the hostname follow SNI
        for name, crt in (("mx.example.test", self.crt),
                          ("mail.other.test", bcrt),
                          ("smtp.other.test", bcrt)):
            ctx = client_context(self.ca)
            ctx.check_hostname = name != "smtp.other.test"
            with TlsRaw(srv.port) as c:
                c.ehlo()
                c.starttls(ctx, name)
                self.assertEqual(c.peer_der(), der(crt))
                _, lines = c.ehlo()
                self.assertIn(name if name != "smtp.other.test"
                              else "mail.other.test", lines[0])
        # implicit TLS: the greeting already comes from the named block
        with TlsRaw(srv.ports[1], tls=client_context(self.ca),
                    server_hostname="mail.other.test") as c:
            self.assertIn("mail.other.test", c.greeting[1][0])
            self.assertEqual(c.peer_der(), der(bcrt))
        # a wrong name gets the default block's certificate, which the
        # client then refuses
        with TlsRaw(srv.port) as c:
            c.ehlo()
            with self.assertRaises(ssl.SSLCertVerificationError):
                c.starttls(client_context(self.ca), "unknown.test")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.starttls(client_context(verify=False), "unknown.test")
            self.assertEqual(c.peer_der(), der(self.crt))


class CertificateTest(TlsTestCase):

    def test_rsa_and_ecdsa_pairs(self):
        rcrt, rkey = self.pki.issue("rsa", "mx.example.test", self.ca,
                                    kind="rsa")
        srv = self.server("""
            smtp { server {
                listen {port};
                hostname mx.example.test;
                tls_certificate %s; tls_certificate_key %s;
                tls_certificate %s; tls_certificate_key %s;
                local_domains example.test;
            } }
        """ % (rcrt, rkey, self.crt, self.key))
        for ciphers, crt in (("ECDHE-ECDSA-AES128-GCM-SHA256", self.crt),
                             ("ECDHE-RSA-AES128-GCM-SHA256", rcrt)):
            ctx = client_context(self.ca, maximum=ssl.TLSVersion.TLSv1_2)
            ctx.set_ciphers(ciphers)
            with TlsRaw(srv.port) as c:
                c.ehlo()
                c.starttls(ctx, "mx.example.test")
                self.assertEqual(c.peer_der(), der(crt))

    def test_protocols(self):
        srv = self.tls_server()
        old = client_context(self.ca, maximum=ssl.TLSVersion.TLSv1_1,
                             minimum=ssl.TLSVersion.TLSv1)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            with self.assertRaises((ssl.SSLError, OSError)):
                c.starttls(old, "mx.example.test")
        srv.stop()
        srv = self.tls_server(extra="tls_protocols TLSv1.3;",
                              name="test_protocols13")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            with self.assertRaises((ssl.SSLError, OSError)):
                c.starttls(client_context(
                    self.ca, maximum=ssl.TLSVersion.TLSv1_2),
                    "mx.example.test")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.starttls(self.ctx, "mx.example.test")
            self.assertEqual(c.sock.version(), "TLSv1.3")

    def test_broken_certificates_refused(self):
        garbage = os.path.join(self.pki.dir, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n")
        other_crt, other_key = self.pki.issue("other", "x.test", self.ca)
        for crt, key, why in ((garbage, self.key, "cannot load certificate"),
                              (self.crt, "/nonexistent.key",
                               "cannot load certificate key"),
                              (self.crt, other_key, "does not match")):
            srv = self.server(tls_conf(crt, key), start=False,
                              name="broken_%d" % len(why))
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(why, r.stderr)

    def test_expired_certificate_warns(self):
        crt, key = self.pki.issue("old", "mx.example.test", self.ca,
                                  start="-400d", end="-30d")
        srv = self.server(tls_conf(crt, key), start=False)
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("has expired", r.stderr)

    def test_reload_rereads_and_keeps_old_on_error(self):
        crt = os.path.join(self.pki.dir, "live.crt")
        key = os.path.join(self.pki.dir, "live.key")
        shutil.copy(self.crt, crt)
        shutil.copy(self.key, key)
        srv = self.server(tls_conf(crt, key))

        def served():
            with TlsRaw(srv.port) as c:
                c.ehlo()
                c.starttls(self.ctx, "mx.example.test")
                d = c.peer_der()
                c.cmd("QUIT")
                return d

        self.assertEqual(served(), der(self.crt))
        # a broken certificate: the reload fails, the old one stays
        with open(crt, "w") as f:
            f.write("garbage\n")
        srv.reload()
        wait_for(lambda: "reload failed" in srv.log(), 10,
                 what="reload refused")
        self.assertIn("cannot load certificate", srv.log())
        self.assertEqual(served(), der(self.crt))
        # a new certificate: served after the next reload
        ncrt, nkey = self.pki.issue("new", "mx.example.test", self.ca)
        shutil.copy(ncrt, crt)
        shutil.copy(nkey, key)
        srv.reload()
        wait_for(lambda: served() == der(ncrt), 15,
                 what="new certificate served")


class ClientToolsTest(TlsTestCase):

    @unittest.skipUnless(have("swaks"), "swaks not installed")
    def test_swaks_tls_and_tlsc(self):
        srv = self.tls_server(srv_extra="listen {port2} tls;")
        for args in (["--server", "127.0.0.1:%d" % srv.port, "--tls"],
                     ["--server", "127.0.0.1:%d" % srv.ports[1], "--tlsc"]):
            p = subprocess.run(["swaks", "--to", "u@example.test",
                                "--from", "a@client.test", "--helo",
                                "client.test", "--tls-verify",
                                "--tls-ca-path", self.ca.cert,
                                "--tls-sni", "mx.example.test"] + args,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("250 2.0.0 Ok: queued", p.stdout)
        self.assertEqual(srv.queue_count(), 2)

    def test_openssl_s_client_starttls(self):
        # s_client sends its whole stdin at once, the message text before
        # the 354: only accepted with smtp_forbid_unauth_pipelining off
        srv = self.tls_server(srv_extra="smtp_forbid_unauth_pipelining"
                                        " off;")
        p = subprocess.run(
            ["openssl", "s_client", "-starttls", "smtp", "-connect",
             "127.0.0.1:%d" % srv.port, "-servername", "mx.example.test",
             "-CAfile", self.ca.cert, "-verify_return_error",
             "-verify_hostname", "mx.example.test", "-quiet"],
            input="EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
                  "RCPT TO:<u@example.test>\r\nDATA\r\nSubject: s\r\n\r\n"
                  "hi\r\n.\r\nQUIT\r\n",
            capture_output=True, text=True, timeout=30)
        self.assertIn("250 2.0.0 Ok: queued", p.stdout, p.stderr)
        self.assertIn("221 2.0.0", p.stdout)


if __name__ == "__main__":
    unittest.main()
