"""conf/submission.conf.example, run as the README says (with its ports,
users file, spool and pid file moved into the test's directory): a
user made with "postern passwd -f", swaks and msmtp on the STARTTLS and
the implicit TLS port, tls_required and AUTH required."""

import os
import subprocess
import unittest

from pstest import POSTERN, ROOT, PstTestCase, have
from psttls import TlsRaw, client_context
from test_auth import plain

EXAMPLE = os.path.join(ROOT, "conf", "submission.conf.example")


class SubmissionExampleTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.server("", start=False, preamble=False)
        d = self.srv.dir
        self.users = os.path.join(d, "users")
        p = subprocess.run([POSTERN, "passwd", "-f", self.users, "alice"],
                           input="wonder land\n", capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(EXAMPLE) as f:
            conf = f.read()
        for old, new in (("127.0.0.1:2587", "127.0.0.1:%d"
                          % self.srv.ports[0]),
                         ("127.0.0.1:2465", "127.0.0.1:%d"
                          % self.srv.ports[1]),
                         ("objs/users", self.users),
                         ("objs/spool", self.srv.spool),
                         ("objs/submission.pid", self.srv.pidfile),
                         ("error_log stderr notice",
                          "error_log %s info" % self.srv.logfile),
                         ("worker_processes auto", "worker_processes 2")):
            self.assertIn(old, conf)
            conf = conf.replace(old, new)
        with open(self.srv.conffile, "w") as f:
            f.write(conf)
        self.srv.start()
        # the example trusts the certificate "make" generated
        self.ctx = client_context(os.path.join(ROOT, "objs", "tls",
                                               "cert.pem"))

    def test_session_rules(self):
        with TlsRaw(self.srv.port) as c:
            ext, _ = c.ehlo()
            self.assertIn("STARTTLS", ext)
            self.assertNotIn("AUTH", ext)
            self.assertReply(c.cmd("MAIL FROM:<alice@localhost>"), 530,
                             "STARTTLS")
            c.starttls(self.ctx, "localhost")
            ext, lines = c.ehlo()
            self.assertIn("AUTH PLAIN LOGIN SCRAM-SHA-256", " ".join(lines))
            self.assertReply(c.cmd("MAIL FROM:<alice@localhost>"), 530,
                             "Authentication required")
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice",
                                                          "wonder land")),
                             235)
            self.assertReply(c.cmd("MAIL FROM:<alice@localhost>"), 250)
            self.assertReply(c.cmd("RCPT TO:<bob@far.example>"), 250)

    @unittest.skipUnless(have("swaks"), "swaks not installed")
    def test_swaks_as_in_the_readme(self):
        for args in (["--server", "127.0.0.1:%d" % self.srv.ports[0],
                      "--tls", "--auth", "PLAIN"],
                     ["--server", "127.0.0.1:%d" % self.srv.ports[1],
                      "--tlsc", "--auth", "LOGIN"]):
            p = subprocess.run(["swaks"] + args + [
                "--auth-user", "alice", "--auth-password", "wonder land",
                "--to", "bob@example.test"], capture_output=True, text=True,
                timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(self.srv.queue_count(), 2)

    @unittest.skipUnless(have("msmtp"), "msmtp not installed")
    def test_msmtp(self):
        rc = os.path.join(self.srv.dir, "msmtprc")
        with open(rc, "w") as f:
            f.write("account default\nhost 127.0.0.1\nport %d\n"
                    "from alice@localhost\nauth on\nuser alice\n"
                    "password wonder land\ntls on\ntls_starttls on\n"
                    "tls_trust_file %s\ntls_host_override localhost\n"
                    % (self.srv.port, os.path.join(ROOT, "objs", "tls",
                                                   "cert.pem")))
        os.chmod(rc, 0o600)
        p = subprocess.run(["msmtp", "-C", rc, "bob@example.test"],
                           input=b"Subject: hi\r\n\r\nfrom msmtp\r\n",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.srv.queue_count(), 1)


if __name__ == "__main__":
    unittest.main()
