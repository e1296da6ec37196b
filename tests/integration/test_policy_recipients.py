"""policy_recipients: recipient tables per local domain (550 5.1.1 at RCPT
time) and the sender checks, the DNS one against dnsmasq on loopback."""

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

    def test_tables(self):
        srv = self.server("""
            smtp {
                hostname mx.example.test;
                server {
                    listen {port};
                    local_domains example.test list.test re.test any.test
                                  other.test "bücher.test";
                    recipients example.test file {dir}/users.txt;
                    recipients example.test list extra;
                    recipients list.test list alice bob@list.test;
                    recipients re.test ~* "^[a-z]+\\.[a-z]+$";
                    recipients re.test list postmaster;
                    recipients any.test catch-all;
                    recipients bücher.test list müller;
                    recipients_delimiter "+-";
                }
                server {
                    listen {port2};
                    local_domains example.test;
                    recipients example.test file {dir}/users.txt;
                    recipients_case_insensitive off;
                }
            }
        """, modules=MODULES, start=False)
        self.users_file(srv, "users.txt", [
            "# our users", "alice", "  Bob  ", "carol@EXAMPLE.test",
            "", "dave # the boss", "\tEve\r"])
        srv.start()
        cases = [
            ("<alice@example.test>", 250), ("<ALICE@example.test>", 250),
            ("<bob@example.test>", 250), ("<carol@example.test>", 250),
            ("<dave@example.test>", 250), ("<eve@example.test>", 250),
            ("<extra@example.test>", 250), ('<"alice"@example.test>', 250),
            ("<alice+news@example.test>", 250),
            ("<alice-x-y@example.test>", 250),
            ("<mallory@example.test>", 550), ("<alice.x@example.test>", 550),
            ("<+alice@example.test>", 550),
            ("<bob@list.test>", 250), ("<alice@list.test>", 250),
            ("<carol@list.test>", 550),
            ("<john.smith@re.test>", 250), ("<John.Smith@re.test>", 250),
            ("<john@re.test>", 550), ("<postmaster@re.test>", 250),
            ("<anything@any.test>", 250),
            ("<whoever@other.test>", 250),           # no table: not checked
            ("<Postmaster>", 250),
        ]
        for rcpt, want in cases:
            code, lines = self.rcpt(srv, rcpt)
            self.assertEqual(code, want, (rcpt, lines))
            if want == 550:
                self.assertIn("5.1.1", lines[0])
                self.assertIn("User unknown", lines[0])
        # UTF-8 local parts and an internationalised domain
        self.assertEqual(self.rcpt(srv, "<müller@BÜCHER.test>", utf8=True)
                         [0], 250)
        self.assertEqual(self.rcpt(srv, "<müller@xn--bcher-kva.test>",
                                   utf8=True)[0], 250)
        self.assertEqual(self.rcpt(srv, "<muller@bücher.test>", utf8=True)
                         [0], 550)
        # the case-sensitive server
        p2 = srv.ports[1]
        self.assertEqual(self.rcpt(srv, "<alice@example.test>", p2)[0], 250)
        self.assertEqual(self.rcpt(srv, "<ALICE@example.test>", p2)[0], 550)
        self.assertEqual(self.rcpt(srv, "<Bob@example.test>", p2)[0], 250)
        self.assertEqual(self.rcpt(srv, "<bob@example.test>", p2)[0], 550)
        log = srv.log()
        self.assertIn("policy_recipients: reject <mallory@example.test>:"
                      " unknown user in the table of example.test", log)

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

    def test_table_errors(self):
        def bad(conf, files, *expect):
            srv = self.server(conf, modules=MODULES, start=False,
                              name="rcpt_bad")
            for name, lines in files.items():
                self.users_file(srv, name, lines)
            self.assertNotEqual(srv.start(expect_fail=True), 0)
            for e in expect:
                self.assertRegex(srv.stderr(), e)
        tpl = ("smtp { server { listen {port}; local_domains example.test;"
               "\n%s\n} }")
        bad(tpl % "recipients example.test file missing.txt;", {},
            r"postern\.conf:\d+: cannot open recipient table \S+missing\.txt")
        bad(tpl % "recipients example.test file {dir}/u.txt;",
            {"u.txt": ["alice", "bad user"]},
            r"postern\.conf:\d+: \S+u\.txt:2: invalid user \"bad user\"")
        bad(tpl % "recipients example.test file {dir}/u.txt;",
            {"u.txt": ["alice@other.test"]},
            r"u\.txt:1: \"alice@other\.test\" is not in domain example\.test")
        bad(tpl % 'recipients example.test ~ "(";', {},
            r"invalid regular expression \"\(\" in \"recipients\": missing"
            r" closing parenthesis at offset 1")
        bad(tpl % "recipients example.test files u.txt;", {},
            r"invalid \"recipients\"")

    # -- sender checks ------------------------------------------------------

    def mail(self, srv, sender, port=None):
        with srv.raw(port=port) as c:
            c.cmd("EHLO client.test")
            return c.cmd(("MAIL FROM:<%s>%s" % (
                sender, " SMTPUTF8" if any(ord(x) > 127 for x in sender)
                else "")).encode())

    def test_sender_syntax_null_fqdn(self):
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test; }
                   server { listen {port2}; local_domains example.test;
                            sender_allow_null off;
                            sender_require_fqdn on; } }
        """, modules=MODULES)
        p2 = srv.ports[1]
        self.assertEqual(self.mail(srv, "")[0], 250)
        self.assertEqual(self.mail(srv, "a@localhost")[0], 250)
        code, lines = self.mail(srv, "", p2)
        self.assertEqual((code, lines[0][:5]), (550, "5.7.1"))
        code, lines = self.mail(srv, "a@localhost", p2)
        self.assertEqual((code, lines[0][:5]), (504, "5.5.2"))
        self.assertEqual(self.mail(srv, "a@[127.0.0.1]", p2)[0], 250)
        self.assertEqual(self.mail(srv, "a@mail.client.test", p2)[0], 250)
        # syntax is the core parser's
        for bad in ("a@b@client.test", "a@client..test", "a b@client.test",
                    "@client.test", "a@"):
            code, lines = self.mail(srv, bad)
            self.assertEqual((code, lines[0][:5]), (501, "5.1.7"), bad)

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
        cases = [
            ("a@a-only.test", 250, None),
            ("a@v6-only.test", 250, None),
            ("a@MX.test", 250, None),
            ("a@bücher.test", 250, None),
            ("", 250, None),
            ("a@[127.0.0.1]", 250, None),
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

    def test_sender_domain_check_timeout(self):
        # a resolver that never answers: the lookups time out, 451
        import socket
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        self.addCleanup(sink.close)
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            sender_domain_check on;
                            sender_dns_timeout 1s;
                            smtp_reverse_lookup off; } }
        """, modules=MODULES,
            resolver="127.0.0.1:%d" % sink.getsockname()[1])
        t0 = time.monotonic()
        code, lines = self.mail(srv, "a@slow.test")
        self.assertEqual((code, lines[0][:5]), (451, "4.1.8"))
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    unittest.main()
