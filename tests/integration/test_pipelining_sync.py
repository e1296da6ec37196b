"""Text sent before the 354 (RFC 2920 3.1: DATA ends a pipelined group).

smtpsmug's "pipelining" probe sends, right after a message's final dot,
MAIL, RCPT, DATA and a second message without waiting for the 354: the
shape of a smuggled transaction.  Unauthenticated sessions get
"554 5.5.0 Error: SMTP protocol synchronization" and are closed (as
Postfix's smtpd_forbid_unauth_pipelining); clients that pipeline as the
RFC allows (smtplib, swaks --pipeline, msmtp) are not affected;
authenticated sessions and `smtp_forbid_unauth_pipelining off` keep the
lenient behaviour."""

import os
import subprocess
import unittest

from pstest import (DEFAULT_MODULES, PstTestCase, have, passwd_line, plain)
from psttls import TlsRaw, TlsTestCase

CONF = """
smtp {
    hostname mx.example.test;
    %s
    server {
        listen {port};
        local_domains example.org example.test;
        %s
    }
}
"""

DATE = "Thu, 03 Dec 2026 08:00:00 +0000"

# smtpsmug (github.com/hannob/smtpsmug) test_pipelining() with its
# defaults: mail 1 is sent after the 354; then, in one go, its final dot
# and the whole second transaction (the probe's own bytes, fixed date
# and Message-ID)
PROBE_HEADER = ("From: alice@example.org\r\n"
                "To: bob@example.org\r\n"
                "Subject: Hello World\r\n"
                "Date: " + DATE + "\r\n"
                "Message-ID: <1.1@example.org>\r\n"
                "\r\n").encode()
PROBE = (b"This is mail 1/2 to test pipelining\r\n"
         b"\r\n.\r\n"
         b"MAIL FROM:<alice@example.org>\r\n"
         b"RCPT TO:<bob@example.org>\r\n"
         b"DATA\r\n"
         b"From: alice@example.org\r\n"
         b"To: bob@example.org\r\n"
         b"Subject: Hello World 2\r\n"
         b"Date: " + DATE.encode() + b"\r\n"
         b"Message-ID: <1.2@example.org>\r\n"
         b"\r\n"
         b"This is mail 2/2 to test pipelining\r\n"
         b"\r\n.\r\n")


def probe(c):
    """Run the probe on a RawClient after EHLO; the replies to what the
    last write pipelined, up to the server closing."""
    c.cmd("EHLO example.org")
    assert c.cmd("MAIL FROM:<alice@example.org>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.org>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(PROBE_HEADER)
    c.send(PROBE)
    out = []
    while len(out) < 5:
        try:
            out.append(c.reply())
        except (ConnectionError, OSError):
            break
    return out


class ProbeTest(PstTestCase):

    def test_smtpsmug_probe_refused(self):
        srv = self.server(CONF % ("", ""))
        with srv.raw() as c:
            r = probe(c)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 554], r)
            self.assertEqual(r[3][1],
                             ["5.5.0 Error: SMTP protocol synchronization"])
            self.assertTrue(c.closed())
        # mail 1 is stored, the pipelined second one is not
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 1)
        self.assertIn(b"This is mail 1/2", srv.body(ids[0]))
        line = srv.wait_log(r"SMTP protocol synchronization")[0]
        self.assertIn("client=[127.0.0.1]", line)
        self.assertIn("helo=example.org", line)
        # the first pending bytes, escaped
        self.assertIn(r'"From: alice@example.org\r\nTo: bob@example.org\r\n',
                      line)
        srv.wait_tmp_empty()

    def test_text_still_in_the_socket(self):
        """The DATA line ends exactly where the server's read ends (its
        1 KiB input buffer, after the 18 bytes of EHLO): the text is not
        read yet, but it is waiting all the same."""
        srv = self.server(CONF % ("", ""))
        group = b"MAIL FROM:<a@client.test>\r\n"
        fixed = len(b"RCPT TO:<@example.test>\r\n")
        ehlo = b"EHLO client.test\r\n"
        pad = 1024 - len(ehlo) - len(group) - len(b"DATA\r\n")
        while pad > 0:
            # local parts of 1 to 64 characters; the last line takes the
            # rest exactly
            n = pad - fixed if pad <= fixed + 64 else min(64,
                                                          pad - 2 * fixed - 1)
            group += b"RCPT TO:<%s@example.test>\r\n" % (b"r" * n)
            pad -= fixed + n
        self.assertEqual(pad, 0)
        group += b"DATA\r\n"
        self.assertEqual(len(ehlo + group), 1024)
        with srv.raw() as c:
            c.cmd(ehlo.strip())
            c.send(group + b"Subject: early\r\n\r\ntoo early\r\n.\r\n")
            nrcpt = group.count(b"RCPT")
            r = c.replies(1 + nrcpt + 1)
            self.assertEqual(r[-1][0], 554, r)
            self.assertTrue(c.closed())
        self.assertEqual(srv.queue_count(), 0)
        srv.wait_log(r'before the 354, .*: "Subject: early\\r\\n')

    def test_directive_off(self):
        srv = self.server(CONF % ("", "smtp_forbid_unauth_pipelining off;"))
        with srv.raw() as c:
            r = probe(c)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250],
                             r)
        self.assertEqual(srv.queue_count(), 2)
        self.assertNotIn("synchronization", srv.log())

    def test_off_in_smtp_block_inherited(self):
        srv = self.server(CONF % ("smtp_forbid_unauth_pipelining off;", ""))
        with srv.raw() as c:
            self.assertEqual(probe(c)[3][0], 354)
        r = srv.run_tool("-T")
        self.assertIn("smtp_forbid_unauth_pipelining off;", r.stdout)

    def test_authenticated_session_exempt(self):
        srv = self.server(CONF % ("auth_users_file {dir}/users;"
                                  " auth_allow_plaintext on;"
                                  " auth_failure_delay 0;", ""), start=False,
                          modules=DEFAULT_MODULES + ("auth_file",))
        users = os.path.join(srv.dir, "users")
        with open(users, "w") as f:
            f.write(passwd_line("bob", "builder") + "\n")
        os.chmod(users, 0o640)
        srv.start()
        with srv.raw() as c:
            c.cmd("EHLO example.org")
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)
            assert c.cmd("MAIL FROM:<alice@example.org>")[0] == 250
            assert c.cmd("RCPT TO:<bob@example.org>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send(PROBE_HEADER + PROBE)
            r = c.replies(5)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 354, 250])
        self.assertEqual(srv.queue_count(), 2)


class ProbeOverTlsTest(TlsTestCase):

    def test_probe_after_starttls_refused(self):
        """Over TLS the pending text may sit decrypted in OpenSSL, beyond
        the session's buffer: refused all the same."""
        srv = self.server(CONF % ("tls_certificate %s; tls_certificate_key"
                                  " %s;" % (self.crt, self.key), ""))
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.starttls(self.ctx, "mx.example.test")
            r = probe(c)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 554], r)
        self.assertEqual(srv.queue_count(), 1)
        srv.wait_log(r"SMTP protocol synchronization: .*"
                     r'"From: alice@example.org\\r\\n')


class CorrectClientsTest(PstTestCase):
    """RFC 2920 pipelining: the text follows the 354, never before."""

    def test_smtplib(self):
        srv = self.server(CONF % ("", ""))
        with srv.smtp() as c:
            c.ehlo("client.test")
            for i in range(3):
                self.assertEqual(c.sendmail(
                    "a@client.test", ["u%d@example.test" % i, "v@example.test"],
                    b"Subject: %d\r\n\r\nsmtplib\r\n" % i), {})
        self.assertEqual(srv.queue_count(), 3)
        self.assertNotIn("synchronization", srv.log())

    @unittest.skipUnless(have("swaks"), "swaks not installed")
    def test_swaks_pipeline(self):
        srv = self.server(CONF % ("", "smtp_debug on;"))
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port,
                            "--helo", "client.test", "--from", "a@client.test",
                            "--to", "a@example.test,b@example.test",
                            "--pipeline", "--timeout", "20"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("250 2.0.0 Ok: queued", p.stdout)
        # swaks did pipeline MAIL, RCPT, RCPT and DATA
        self.assertRegex(p.stdout, r"(?s)MAIL FROM.*RCPT TO.*RCPT TO.*DATA"
                                   r".*250 2.1.0.*250 2.1.5.*250 2.1.5.*354")
        self.assertEqual(srv.queue_count(), 1)
        self.assertNotIn("synchronization", srv.log())

    @unittest.skipUnless(have("msmtp"), "msmtp not installed")
    def test_msmtp(self):
        srv = self.server(CONF % ("", ""))
        rc = os.path.join(srv.dir, "msmtprc")
        with open(rc, "w") as f:
            f.write("account test\nhost 127.0.0.1\nport %d\n"
                    "from a@client.test\nauth off\ntls off\n"
                    "domain client.test\naccount default : test\n"
                    % srv.port)
        os.chmod(rc, 0o600)
        for _ in range(2):
            p = subprocess.run(["msmtp", "-C", rc, "u@example.test",
                                "v@example.test"],
                               input=b"Subject: msmtp\r\n\r\nvia msmtp\r\n",
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(srv.queue_count(), 2)
        self.assertNotIn("synchronization", srv.log())


if __name__ == "__main__":
    unittest.main()
