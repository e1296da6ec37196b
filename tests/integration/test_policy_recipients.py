"""policy_recipients in the server: an unknown user refused at RCPT time
(never a bounce) to real clients, a 100,000-user table and its reload,
and the sender domain check through dnsmasq.  Each kind of table, the
table errors, the sender checks and every DNS outcome of the domain
check are tested in the plugin harness
(tests/modules/test_policy_recipients.c)."""

import os
import random
import shutil
import string
import subprocess
import time
import unittest

from pstest import RUN, PstTestCase, wait_for

MODULES = ("store_spool", "policy_recipients", "policy_relay")


class RecipientsTest(PstTestCase):

    def rcpt(self, srv, rcpt, port=None, sender="a@client.test", utf8=False):
        with srv.raw(port=port) as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            m = "MAIL FROM:<%s>%s" % (sender, " SMTPUTF8" if utf8 else "")
            code = c.cmd(m.encode())
            self.assertEqual(code[0], 250, code)
            return c.cmd(("RCPT TO:%s" % rcpt).encode())

    def users_file(self, srv, name, lines):
        path = os.path.join(srv.dir, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_unknown_user_with_real_client(self):
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            recipients example.test list alice; } }
        """, modules=MODULES)
        with srv.smtp() as c:
            c.ehlo("client.test")
            refused = c.sendmail("a@client.test", ["alice@example.test",
                                                   "nobody@example.test"],
                                 b"Subject: x\r\n\r\nhi\r\n")
        self.assertEqual(refused["nobody@example.test"][0], 550)
        env = srv.envelope(srv.queue_ids()[0])
        self.assertIn("rcpt alice@example.test", env)
        self.assertNotIn("nobody", env)
        # swaks sees the refusal at RCPT time, not as a bounce
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port",
                            str(srv.port), "--from", "a@client.test",
                            "--to", "ghost@example.test", "--timeout", "10"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("550 5.1.1", p.stdout)

    def test_big_table_and_reload(self):
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            recipients example.test file {dir}/big.txt; } }
        """, modules=MODULES, start=False)
        rnd = random.Random(7)
        def word():
            return "".join(rnd.choice(string.ascii_lowercase)
                           for _ in range(rnd.randint(2, 8)))
        users = ["%s%s%s%d" % (word(), rnd.choice("._-"), word(), i)
                 for i in range(100000)]
        path = self.users_file(srv, "big.txt", users)
        t0 = time.monotonic()
        srv.start()
        self.assertLess(time.monotonic() - t0, 10)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            for u in rnd.sample(users, 30):
                self.assertEqual(c.cmd("RCPT TO:<%s@example.test>" % u)[0],
                                 250, u)
        self.assertEqual(self.rcpt(srv, "<newcomer@example.test>")[0], 550)
        with open(path, "a") as f:
            f.write("newcomer\n")
        srv.reload()
        wait_for(lambda: self.rcpt(srv, "<newcomer@example.test>")[0]
                 == 250, 20, what="the reloaded table")

    # -- sender checks ------------------------------------------------------

    def mail(self, srv, sender, port=None):
        with srv.raw(port=port) as c:
            c.cmd("EHLO client.test")
            return c.cmd(("MAIL FROM:<%s>%s" % (
                sender, " SMTPUTF8" if any(ord(x) > 127 for x in sender)
                else "")).encode())

    def test_sender_domain_check_with_dns(self):
        shutil.rmtree(os.path.join(RUN, "recipients_dns"), ignore_errors=True)
        dns = self.dnsmasq([
            "--local=/test/",
            "--host-record=a-only.test,127.0.0.9",
            "--host-record=v6-only.test,::9",
            "--mx-host=mx.test,mail.mx.test,10",
            "--mx-host=nullmx.test,.,0",
            "--host-record=xn--bcher-kva.test,127.0.0.10",
        ], name="recipients_dns")
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            sender_domain_check on;
                            sender_dns_timeout 3s; } }
        """, modules=MODULES, resolver=dns.address)
        # the answers of a real resolver, one of each kind
        cases = [
            ("a@a-only.test", 250, None),
            ("a@v6-only.test", 250, None),
            ("a@MX.test", 250, None),
            ("a@bücher.test", 250, None),
            ("a@missing.test", 550, "5.1.8"),
            ("a@nullmx.test", 550, "5.7.27"),
            ("a@mail.mx.test", 550, "5.1.8"),        # exists, no record
            ("a@not-ours.example", 451, "4.1.8"),    # dnsmasq refuses
        ]
        for sender, want, ecode in cases:
            code, lines = self.mail(srv, sender)
            self.assertEqual(code, want, (sender, lines))
            if ecode:
                self.assertTrue(lines[0].startswith(ecode), lines)
        q = dns.queries()
        self.assertIn("a-only.test", q)
        self.assertIn("xn--bcher-kva.test", q)
        log = srv.log()
        self.assertIn("sender domain missing.test: sender_domain_check:"
                      " NXDOMAIN", log)
        self.assertIn("null MX (RFC 7505)", log)



if __name__ == "__main__":
    unittest.main()
