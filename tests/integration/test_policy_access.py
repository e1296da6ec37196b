"""policy_access: ordered PCRE2 and CIDR rules.

One test per target and action, the reply codes they produce, the order
of rules, file:line errors for bad rules, rule files in includes that a
HUP re-reads, and a cross-check of many rules against Python's re (the
literal index must never skip a rule that matches).
"""

import os
import random
import re
import smtplib
import unittest

from pstest import PstTestCase, wait_for

MODULES = ("store_spool", "policy_access", "policy_relay")


def prepended(srv, qid):
    """Header lines a module added: "prepend" lines of the envelope,
    xtext-decoded."""
    out = []
    for line in srv.envelope(qid).splitlines():
        if line.startswith("prepend "):
            out.append(re.sub(r"\+([0-9A-F]{2})",
                              lambda m: chr(int(m.group(1), 16)), line[8:]))
    return out


def conf(rules, server_rules="", extra=""):
    return """
smtp {
    hostname mx.example.test;
    %s
    server {
        listen {port};
        local_domains example.test;
        %s
        %s
    }
}
""" % (rules, server_rules, extra)


class AccessTest(PstTestCase):

    def srv(self, rules, greets=True, **kw):
        srv = self.server(conf(rules, **kw), modules=MODULES,
                          start=greets)
        if not greets:
            # the greeting is a refusal: wait for any reply at all
            srv.start(wait=False)

            def answers():
                try:
                    with srv.raw(greet=False, timeout=2) as c:
                        return c.reply()[0] > 0
                except (OSError, ConnectionError):
                    return False
            wait_for(answers, 15, what="postern on port %d" % srv.port)
        return srv

    def mail_rcpt(self, srv, sender="a@client.test",
                  rcpt="user@example.test", helo="client.test"):
        c = srv.raw()
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("EHLO " + helo)[0], 250)
        m = c.cmd("MAIL FROM:<%s>" % sender)
        if m[0] != 250:
            return m, None
        return m, c.cmd("RCPT TO:<%s>" % rcpt)

    # -- client ---------------------------------------------------------

    def test_client_cidr_reject(self):
        srv = self.srv('access_rule client 10.0.0.0/8 accept;\n'
                       'access_rule client 127.0.0.0/8 reject 554 5.7.1'
                       ' "Your network is blocked";', greets=False)
        c = srv.raw(greet=False)
        self.addCleanup(c.close)
        code, lines = c.reply()
        self.assertEqual(code, 554)
        self.assertIn("5.7.1 Your network is blocked", lines[0])
        # RFC 5321 3.1: after a 554 greeting only QUIT works
        self.assertEqual(c.cmd("EHLO client.test")[0], 503)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.assertRegex(srv.log(), r"policy_access: rule \S+postern\.conf:"
                         r"\d+ \(client 127\.0\.0\.0/8\) reject client"
                         r" <127\.0\.0\.1>")

    def test_client_negated_and_ipv6_range(self):
        srv = self.srv('access_rule client 2001:db8::/32 reject;\n'
                       'access_rule client !127.0.0.0/8 reject;\n'
                       'access_rule client ~ "^127\\.0\\.0\\.1$" header'
                       ' X-Loopback yes;')
        self.assertEqual(srv.send(), {})
        self.assertEqual(prepended(srv, srv.queue_ids()[0]),
                         ["X-Loopback: yes"])

    def test_client_name_tempfail_at_connect(self):
        # no resolver: the client has no verified name, "unknown"
        srv = self.srv('access_rule client_name = unknown tempfail'
                       ' "No reverse DNS";', greets=False)
        c = srv.raw(greet=False)
        self.addCleanup(c.close)
        code, lines = c.reply()
        self.assertEqual(code, 421)
        self.assertIn("4.7.1 No reverse DNS", lines[0])
        self.assertTrue(c.closed())

    # -- helo, mail, rcpt -----------------------------------------------

    def test_helo_reject(self):
        srv = self.srv('access_rule helo ~* "^(localhost|\\[?127\\.)"'
                       ' reject 550 5.7.1 "Liar";')
        with srv.raw() as c:
            code, lines = c.cmd("HELO LocalHost")
            self.assertEqual(code, 550)
            self.assertIn("5.7.1 Liar", lines[0])
            self.assertEqual(c.cmd("HELO mail.client.test")[0], 250)

    def test_mail_reject_tempfail_accept(self):
        srv = self.srv(
            'access_rule mail ~* "@vip\\.test$" accept;\n'
            'access_rule mail ~* "@spam\\.test$" reject 553 5.7.2'
            ' "Spammer";\n'
            'access_rule mail = "slow@client.test" tempfail 451 4.7.9'
            ' "Later";\n'
            'access_rule mail = "" reject 550 5.7.1 "No bounces here";')
        (code, lines), _ = self.mail_rcpt(srv, sender="x@SPAM.test")
        self.assertEqual((code, lines[0]), (553, "5.7.2 Spammer"))
        (code, lines), _ = self.mail_rcpt(srv, sender="Slow@Client.Test")
        self.assertEqual((code, lines[0]), (451, "4.7.9 Later"))
        (code, lines), _ = self.mail_rcpt(srv, sender="")
        self.assertEqual((code, lines[0]), (550, "5.7.1 No bounces here"))
        m, r = self.mail_rcpt(srv, sender="boss@vip.test")
        self.assertEqual(m[0], 250)
        self.assertEqual(r[0], 250)
        log = srv.log()
        self.assertIn("(mail ~* @spam\\.test$) reject sender <x@spam.test>",
                      log.replace("SPAM", "spam"))
        self.assertIn("(mail = slow@client.test) tempfail", log)

    def test_rcpt_accept_pass_reject(self):
        srv = self.srv(
            'access_rule rcpt = "relay-me@other.test" accept;\n'
            'access_rule rcpt ~ "^pass@" pass;\n'
            'access_rule rcpt ~ "^pass@" reject;\n'
            'access_rule rcpt ~* "^(root|admin)@" reject 550 5.1.1'
            ' "No such user";\n'
            'access_rule rcpt ~ "^full@" tempfail 452 4.2.2'
            ' "Mailbox full";')
        # accept is final, relay control included
        self.assertEqual(self.mail_rcpt(srv, rcpt="relay-me@other.test")
                         [1][0], 250)
        # pass stops the access rules; relay control still decides
        self.assertEqual(self.mail_rcpt(srv, rcpt="pass@other.test")[1][0],
                         550)
        self.assertEqual(self.mail_rcpt(srv, rcpt="pass@example.test")
                         [1][0], 250)
        code, lines = self.mail_rcpt(srv, rcpt="ADMIN@example.test")[1]
        self.assertEqual((code, lines[0]), (550, "5.1.1 No such user"))
        code, lines = self.mail_rcpt(srv, rcpt="full@example.test")[1]
        self.assertEqual((code, lines[0]), (452, "4.2.2 Mailbox full"))
        self.assertEqual(self.mail_rcpt(srv)[1][0], 250)

    def test_disconnect(self):
        srv = self.srv('access_rule mail ~ "^killer@" disconnect'
                       ' "Bye now";')
        (code, lines), _ = self.mail_rcpt(srv, sender="killer@client.test")
        self.assertEqual((code, lines[0]), (421, "4.7.0 Bye now"))

    def test_first_match_wins_and_smtp_rules_first(self):
        srv = self.srv('access_rule rcpt ~ "^a@" reject 550 5.7.1 "smtp";',
                       server_rules='access_rule rcpt ~ "^a@" accept;\n'
                       'access_rule rcpt ~ "^b@" reject 550 5.7.1 "one";\n'
                       'access_rule rcpt ~ "^b@" reject 550 5.7.1 "two";')
        self.assertEqual(self.mail_rcpt(srv, rcpt="a@example.test")[1][1],
                         ["5.7.1 smtp"])
        self.assertEqual(self.mail_rcpt(srv, rcpt="b@example.test")[1][1],
                         ["5.7.1 one"])

    # -- headers ----------------------------------------------------------

    def test_header_rules(self):
        srv = self.srv(
            'access_rule header ~* "^Subject:.*\\bviagra\\b" reject'
            ' 554 5.7.1 "Spam content";\n'
            'access_rule header !~* "^Message-ID:" reject 554 5.6.0'
            ' "Message-ID missing";\n'
            'access_rule header ~* "^X-Mailer: Bulk" header X-Bulk yes;\n'
            'access_rule rcpt ~ "^tagged@" header X-Tag "from rcpt";\n'
            'access_rule helo ~ "^tagme$" header X-Helo-Tag "from helo";')
        good = (b"Subject: hello\r\nMessage-ID: <1@client.test>\r\n"
                b"X-Mailer: BULK mailer\r\n\r\nbody\r\n")
        with srv.smtp() as c:
            c.ehlo("tagme")
            self.assertEqual(c.sendmail("a@client.test",
                                        ["tagged@example.test"], good), {})
            # folded Subject: the rule sees the unfolded line
            spam = (b"Subject: cheap\r\n Viagra now\r\n"
                    b"Message-ID: <2@client.test>\r\n\r\nbody\r\n")
            with self.assertRaises(smtplib.SMTPDataError) as e:
                c.sendmail("a@client.test", ["user@example.test"], spam)
            self.assertEqual(e.exception.smtp_code, 554)
            self.assertIn(b"Spam content", e.exception.smtp_error)
            with self.assertRaises(smtplib.SMTPDataError) as e:
                c.sendmail("a@client.test", ["user@example.test"],
                           b"Subject: hi\r\n\r\nbody\r\n")
            self.assertIn(b"5.6.0 Message-ID missing", e.exception.smtp_error)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 1)
        self.assertEqual(sorted(prepended(srv, ids[0])),
                         ["X-Bulk: yes", "X-Helo-Tag: from helo",
                          "X-Tag: from rcpt"])
        self.assertIn("(header ~* ^X-Mailer: Bulk) header message", srv.log())

    # -- configuration errors and reload ------------------------------------

    def bad(self, rules, *expect):
        srv = self.server(conf(rules), modules=MODULES, start=False,
                          name="access_bad")
        self.assertNotEqual(srv.start(expect_fail=True), 0)
        err = srv.stderr()
        for e in expect:
            self.assertRegex(err, e)
        return err

    def test_bad_rules_are_file_line_errors(self):
        self.bad('access_rule mail ~ "a(b" reject;',
                 r"postern\.conf:\d+: invalid regular expression \"a\(b\" in"
                 r" \"access_rule\": missing closing parenthesis at offset 3")
        self.bad('access_rule mail ~ "[z-a]" reject;',
                 r"range out of order in character class at offset 3")
        self.bad('access_rule mail ~ x reject 450;',
                 r"needs a 5xx reply code, not 450")
        self.bad('access_rule mail ~ x tempfail 451 5.7.1;',
                 r"invalid enhanced status code \"5\.7\.1\"")
        self.bad('access_rule mail ~ x reject 550 5.7.1 two words;',
                 r"reply text must be one \(quoted\) argument")
        self.bad('access_rule sender ~ x reject;', r"unknown target")
        self.bad('access_rule client 10.0.0.0/33 reject;',
                 r"invalid address range")
        self.bad('access_rule mail ~ x drop;', r"unknown action \"drop\"")
        self.bad('access_rule mail ~ x header "Bad:Name" v;',
                 r"invalid header name")

    def test_rules_in_include_reload_on_hup(self):
        srv = self.server(conf("include rules/*.rules;"), modules=MODULES,
                          start=False)
        rdir = os.path.join(srv.dir, "rules")
        os.makedirs(rdir)
        rfile = os.path.join(rdir, "main.rules")
        with open(rfile, "w") as f:
            f.write('# blocked senders\n'
                    'access_rule mail ~* "@one\\.test$" reject 550 5.7.1'
                    ' "one";\n')
        srv.start()

        def code(sender):
            (c, _), _ = self.mail_rcpt(srv, sender=sender)
            return c

        self.assertEqual(code("a@one.test"), 550)
        self.assertEqual(code("a@two.test"), 250)
        self.assertRegex(srv.log(), r"rule \S+rules/main\.rules:2 \(mail")

        with open(rfile, "w") as f:
            f.write('access_rule mail ~* "@two\\.test$" reject 550 5.7.1'
                    ' "two";\n')
        srv.reload()
        wait_for(lambda: code("a@two.test") == 550, 15,
                 what="the new rule after HUP")
        self.assertEqual(code("a@one.test"), 250)

        # a broken rule file: refused, the running rules stay
        with open(rfile, "w") as f:
            f.write('\n\naccess_rule mail ~ "(" reject;\n')
        srv.reload()
        wait_for(lambda: "the running configuration stays" in srv.log(), 15,
                 what="the refused reload")
        self.assertRegex(srv.log() + srv.stderr(),
                         r"rules/main\.rules:3: invalid regular expression")
        self.assertEqual(code("a@two.test"), 550)

    # -- many rules: the index never hides a match ----------------------------

    def test_many_rules_match_like_python_re(self):
        rnd = random.Random(4)
        pieces = ["spam", "bulk", "news", "info", "mail", "test", "x-y",
                  "abc", "promo", "deal"]
        pats = []
        for i in range(600):
            w = rnd.choice(pieces) + str(i)
            kind = i % 10
            if kind == 0:
                p = "^%s@" % w
            elif kind == 1:
                p = "@%s\\.test$" % w
            elif kind == 2:
                p = "%s[0-9]*z" % w
            elif kind == 3:
                p = "(?:%s|other%d)@" % (w, i)
            elif kind == 4:
                p = "%s+q" % w
            elif kind == 5:
                p = "a%s?b" % w
            elif kind == 6:
                p = "%s.{2}end" % w
            elif kind == 7:
                p = "^[a-z]+%s" % w
            elif kind == 8:
                p = "%s(ab)*cd" % w
            else:
                p = "%s|never%d" % (w, i)
            pats.append(p)
        rules = "\n".join('access_rule rcpt ~* "%s" reject 550 5.7.1'
                          ' "rule %d";' % (p.replace("\\", "\\\\"), i)
                          for i, p in enumerate(pats))
        srv = self.srv(rules, extra="max_errors 0;")
        subjects = []
        for i in rnd.sample(range(600), 60):
            w = re.sub(r"[^a-z0-9-]", "", pats[i].split("|")[0])
            subjects += [w + "@example.test", "x" + w + "12z@example.test",
                         w + "qq@example.test", w + "abend@example.test"]
        subjects += ["clean@example.test", "user@example.test"]
        compiled = [re.compile(p, re.I) for p in pats]
        mism = []
        hits = 0
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            for s in subjects:
                want = next((i for i, r in enumerate(compiled)
                             if r.search(s)), None)
                code, lines = c.cmd("RCPT TO:<%s>" % s)
                got = (int(lines[0].split()[-1]) if code == 550 else None)
                if got != want:
                    mism.append((s, want, got, code))
                hits += want is not None
                if code == 550:
                    c.cmd("RSET")
                    c.cmd("MAIL FROM:<a@client.test>")
        self.assertEqual(mism, [])
        self.assertGreater(hits, 100)


if __name__ == "__main__":
    unittest.main()
