"""The outbound SMTP client (core/smtp/pst_smtp_client*.c), driven through
objs/tests/smtp_client_probe, against a real Postern started by each
test and against aiosmtpd: PIPELINING groups, BDAT chunks, DATA with
dot-stuffing, SIZE, STARTTLS (verified, unverified, wrong name),
implicit TLS, AUTH PLAIN / LOGIN / SCRAM-SHA-256 on a submission
listener, LMTP, HELO-less lock-step servers; every message is compared
byte for byte with what arrived."""

import os
import ssl
import threading

from pstest import DEFAULT_MODULES, OBJS, free_port, passwd_line
from psttls import TlsTestCase, build

import subprocess

PROBE = os.path.join(OBJS, "tests", "smtp_client_probe")
MODULES = DEFAULT_MODULES + ("auth_file",)


def message(size=150000):
    """CRLF text with the shapes dot-stuffing must get right: lines
    that are ".", "..", ".x", a dot at a 64 KiB read boundary."""
    head = b"From: a@client.test\r\nSubject: probe\r\n\r\n"
    lines = [b".", b"..", b".leading dot", b"", b"plain line ."]
    body = bytearray(head)
    i = 0
    while len(body) < size:
        body += lines[i % len(lines)] + b"\r\n"
        body += b"line %06d abcdefghijklmnopqrstuvwxyz\r\n" % i
        i += 1
    # a line starting with '.' right where the first 64 KiB read ends
    cut = 65536 - len(b"X-Prepended: yes\r\n")
    nl = body.rfind(b"\r\n", 0, cut - 1)
    body[nl + 2:cut] = b"x" * (cut - nl - 4) + b"\r\n"
    body[cut:cut + 1] = b"."
    return bytes(body)


class Probe:
    """One run of the probe: exit code, the lines it printed, and the
    protocol trail it saw (with -v)."""

    def __init__(self, port, *args, host="127.0.0.1", timeout=60):
        p = subprocess.run([PROBE, "-v"] + list(args) + [host, str(port)],
                           capture_output=True, timeout=timeout)
        self.rc = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")
        self.lines = self.out.splitlines()
        self.trail = [l for l in self.lines if l[:2] in ("> ", "< ")]
        for kw in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert kw not in self.err, "sanitizer report:\n" + self.err

    def line(self, prefix):
        for l in self.lines:
            if l.startswith(prefix):
                return l
        raise AssertionError("no %r in:\n%s" % (prefix, self.out))

    def sent(self):
        return [l[2:] for l in self.trail if l.startswith("> ")]

    def __repr__(self):
        return "rc=%d\n%s%s" % (self.rc, self.out, self.err)


class ClientCase(TlsTestCase):

    @classmethod
    def setUpClass(cls):
        build("objs/tests/smtp_client_probe")

    def setUp(self):
        super().setUp()
        self.msg = message()
        self.msg_file = os.path.join(self.pki.dir, "message")
        with open(self.msg_file, "wb") as f:
            f.write(self.msg)

    def postern(self, extra="", srv_extra="", **kw):
        return self.server("""
smtp {
    hostname mx.example.test;
    tls_certificate     %s;
    tls_certificate_key %s;
    %s
    server {
        listen {port};
        listen {port2} tls;
        local_domains example.test;
        %s
    }
}
""" % (self.crt, self.key, extra, srv_extra), **kw)

    def probe(self, port, *args, **kw):
        return Probe(port, "-m", self.msg_file, *args, **kw)

    def stored(self, srv, n=1):
        ids = srv.queue_ids()
        self.assertEqual(len(ids), n)
        return [srv.body(q) for q in ids]

    def assertPipelined(self, p, group):
        """The commands of group went out before the first reply to
        any of them came back."""
        i = p.trail.index("> " + group[0])
        self.assertEqual([l[2:] for l in p.trail[i:i + len(group)]], group,
                         p.trail)


class PosternPeer(ClientCase):

    def test_pipelined_data(self):
        srv = self.postern(extra="smtp_chunking off;")
        p = self.probe(srv.port, "-r", "a@example.test",
                       "-r", "b@example.test", "-P", "X-Prepended: yes")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("PIPELINING", p.line("caps"))
        self.assertNotIn("CHUNKING", p.line("caps"))
        self.assertPipelined(p, ["MAIL FROM:<sender@client.test> SIZE=%d"
                                 % (len(self.msg) + 18),
                                 "RCPT TO:<a@example.test>",
                                 "RCPT TO:<b@example.test>", "DATA"])
        self.assertIn("data 250 2.0.0", p.out)
        body, = self.stored(srv)
        self.assertEqual(body, b"X-Prepended: yes\r\n" + self.msg)

    def test_many_recipients(self):
        # 250 recipients: PIPELINING windows of 100 commands slide
        srv = self.postern(extra="smtp_chunking off; max_recipients 1000;")
        args = []
        for i in range(250):
            args += ["-r", "u%03d@example.test" % i]
        p = self.probe(srv.port, *args)
        self.assertEqual(p.rc, 0, p)
        self.assertEqual(len([l for l in p.lines
                              if l.startswith("rcpt ") and " 250 " in l]),
                         250)
        # the 101st command went out before the first reply came back?
        # no: the window holds 100 in flight
        i = p.trail.index("> MAIL FROM:<sender@client.test> SIZE=%d"
                          % len(self.msg))
        self.assertTrue(all(l.startswith("> ") for l in p.trail[i:i + 100]))
        self.assertTrue(p.trail[i + 100].startswith("< "), p.trail[i + 100])
        env = srv.envelope(srv.queue_ids()[0])
        self.assertIn("u249@example.test", env)
        self.assertEqual(self.stored(srv), [self.msg])

    def test_bdat_chunks(self):
        srv = self.postern()
        p = self.probe(srv.port, "-r", "a@example.test", "-c", "2",
                       "-P", "X-Prepended: yes")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("CHUNKING", p.line("caps"))
        bdat = [l for l in p.sent() if l.startswith("BDAT ")]
        # two messages of three chunks each, the last one LAST
        self.assertEqual(len(bdat), 6, bdat)
        self.assertEqual(bdat[0], "BDAT 65536")
        self.assertTrue(bdat[2].endswith(" LAST"), bdat)
        self.assertNotIn("DATA", p.sent())
        for body in self.stored(srv, 2):
            self.assertEqual(body, b"X-Prepended: yes\r\n" + self.msg)

    def test_refused_recipient_and_lmtp_style_map(self):
        srv = self.postern(extra="smtp_chunking off;")
        p = self.probe(srv.port, "-r", "a@example.test",
                       "-r", "b@elsewhere.test")
        self.assertEqual(p.rc, 1, p)
        self.assertRegex(p.line("rcpt b@elsewhere.test"),
                         r"^rcpt b@elsewhere.test 55\d 5\.7\.1 accepted=0")
        self.assertRegex(p.line("rcpt a@example.test"),
                         r"^rcpt a@example.test 250 2\.0\.0 accepted=1")
        self.assertEqual(self.stored(srv), [self.msg])

    def test_size(self):
        srv = self.postern(extra="message_size_limit 100k;")
        p = self.probe(srv.port, "-r", "a@example.test")
        self.assertEqual(p.rc, 1, p)
        self.assertEqual(p.line("size"), "size %d" % 102400)
        self.assertRegex(p.line("rcpt"), r" 552 5\.3\.4 accepted=0 ")
        self.assertFalse([l for l in p.sent() if l.startswith("MAIL")])
        self.assertEqual(srv.queue_count(), 0)

    def test_starttls(self):
        srv = self.postern()
        ca = self.ca.cert
        # verified: chain and name
        p = self.probe(srv.port, "-t", "verify", "-a", ca,
                       "-n", "mx.example.test", "-r", "a@example.test")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("tls=1 verified=1", p.out)
        self.assertIn("STARTTLS", p.sent())
        # EHLO again after TLS (RFC 3207 4.2)
        self.assertEqual(p.sent().count("EHLO probe.test"), 2)
        # encrypt only: no CA, not verified, still sent
        p = self.probe(srv.port, "-t", "encrypt", "-r", "a@example.test")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("tls=1 verified=0", p.out)
        # the wrong name: refused before any MAIL
        p = self.probe(srv.port, "-t", "verify", "-a", ca,
                       "-n", "other.example.test", "-r", "a@example.test")
        self.assertEqual(p.rc, 1, p)
        self.assertRegex(p.line("ready"), r"^ready rc=-1 code=0 .*(TLS|"
                         "certificate)")
        self.assertFalse([l for l in p.sent() if l.startswith("MAIL")])
        self.assertEqual([b for b in self.stored(srv, 2)],
                         [self.msg, self.msg])

    def test_implicit_tls(self):
        srv = self.postern()
        ca = self.ca.cert
        p = self.probe(srv.ports[1], "-t",
                       "implicit", "-a", ca, "-n", "mx.example.test",
                       "-r", "a@example.test")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("tls=1 verified=1", p.out)
        self.assertNotIn("STARTTLS", p.sent())
        self.assertEqual(self.stored(srv), [self.msg])

    def test_tls_required_not_offered(self):
        srv = self.server("""
smtp { hostname mx.example.test;
       server { listen {port}; local_domains example.test; } }
""")
        p = self.probe(srv.port, "-t", "encrypt", "-r", "a@example.test")
        self.assertEqual(p.rc, 1, p)
        self.assertIn("does not offer STARTTLS", p.line("ready"))
        self.assertEqual(p.sent()[-1], "QUIT")
        # may: goes on in clear text
        p = self.probe(srv.port, "-t", "may", "-r", "a@example.test")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("tls=0", p.out)

    def test_ipv6_and_local_address(self):
        srv = self.server("""
smtp { hostname mx.example.test;
       server { listen {port}; listen [::1]:{portnum};
                local_domains example.test; } }
""")
        p = self.probe(srv.port, "-b", "::1", "-r", "a@example.test",
                       host="::1")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("peer=[::1]:%d" % srv.port, p.out)
        self.assertEqual(self.stored(srv), [self.msg])


class PosternAuth(ClientCase):
    """AUTH on a submission listener (auth_file): alice has a SCRAM
    secret too."""

    def auth_server(self):
        users = os.path.join(self.pki.dir, "users")
        with open(users, "w") as f:
            f.write(passwd_line("alice", "wonder land", "-s") + "\n")
        os.chmod(users, 0o640)
        return self.server("""
smtp {
    hostname mx.example.test;
    tls_certificate     %s;
    tls_certificate_key %s;
    auth_users_file     %s;
    auth_failure_delay  0;
    auth_mechanisms     PLAIN LOGIN SCRAM-SHA-256;
    server {
        listen {port} submission;
        local_domains example.test;
    }
}
""" % (self.crt, self.key, users), modules=MODULES)

    def test_mechanisms(self):
        srv = self.auth_server()
        for mech in ("PLAIN", "LOGIN", "SCRAM-SHA-256", "auto"):
            p = self.probe(srv.port, "-t", "encrypt", "-A", mech,
                           "-u", "alice", "-p", "wonder land",
                           "-r", "u@elsewhere.test")
            self.assertEqual(p.rc, 0, "%s: %r" % (mech, p))
            self.assertIn("ready rc=0 code=235", p.out)
            # the trail never shows the secret, even encoded
            for s in ("wonder", "d29uZGVy", "YWxpY2U", "alice"):
                self.assertNotIn(s, "\n".join(p.sent()), mech)
        self.assertIn("AUTH SCRAM-SHA-256 ********", p.sent())
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 4)
        for q in ids:
            self.assertIn("\nauth alice\n", srv.envelope(q))
        self.assertIn("mechanism=SCRAM-SHA-256", srv.log())

    def test_wrong_password(self):
        srv = self.auth_server()
        for mech in ("PLAIN", "SCRAM-SHA-256"):
            p = self.probe(srv.port, "-t", "encrypt", "-A", mech,
                           "-u", "alice", "-p", "wrong",
                           "-r", "u@elsewhere.test")
            self.assertEqual(p.rc, 1, p)
            self.assertRegex(p.line("ready"), r"^ready rc=-1 code=535")
        self.assertEqual(srv.queue_count(), 0)


class AiosmtpdPeer(ClientCase):
    """aiosmtpd: no PIPELINING, no CHUNKING: the lock-step path; its
    STARTTLS with Postern's test certificate; its LMTP."""

    def aio(self, lmtp=False, **kw):
        from aiosmtpd.controller import Controller
        from aiosmtpd.lmtp import LMTP

        got = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                got.append((envelope.mail_from, list(envelope.rcpt_tos),
                            envelope.original_content))
                return "250 2.0.0 stored"

        class Ctl(Controller):
            def factory(self):
                if lmtp:
                    return LMTP(self.handler, **self.SMTP_kwargs)
                return super().factory()

        ctl = Ctl(Handler(), hostname="127.0.0.1", port=free_port(), **kw)
        ctl.start()
        self.addCleanup(ctl.stop)
        return ctl, got

    def test_lockstep_and_bytes(self):
        ctl, got = self.aio()
        p = self.probe(ctl.port, "-r", "a@example.test",
                       "-r", "b@example.test", "-o", " BODY=8BITMIME")
        self.assertEqual(p.rc, 0, p)
        self.assertNotIn("PIPELINING", p.line("caps"))
        # one command, one reply
        i = p.trail.index("> MAIL FROM:<sender@client.test> SIZE=%d "
                          "BODY=8BITMIME" % len(self.msg))
        self.assertEqual(p.trail[i + 1][:2], "< ")
        self.assertEqual(p.trail[i + 2], "> RCPT TO:<a@example.test>")
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0][:2], ("sender@client.test",
                                      ["a@example.test", "b@example.test"]))
        self.assertEqual(got[0][2], self.msg)

    def test_starttls(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.crt, self.key)
        ctl, got = self.aio(tls_context=ctx, require_starttls=True)
        ca = self.ca.cert
        p = self.probe(ctl.port, "-t", "verify", "-a", ca,
                       "-n", "mx.example.test", "-r", "a@example.test")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("tls=1 verified=1", p.out)
        self.assertEqual(got[0][2], self.msg)

    def test_lmtp(self):
        ctl, got = self.aio(lmtp=True)
        p = self.probe(ctl.port, "-l", "-r", "a@example.test")
        self.assertEqual(p.rc, 0, p)
        self.assertIn("LHLO probe.test", p.sent())
        self.assertEqual(got[0][2], self.msg)
