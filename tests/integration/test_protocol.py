"""SMTP protocol (RFC 5321): greeting, EHLO/HELO, every command, replies
to commands out of sequence, unknown and malformed commands, the exact
reply syntax and enhanced status codes (RFC 2034, RFC 3463)."""

import re
import unittest

from pstest import BASIC, PstTestCase

# RFC 3463 status-code: class "." subject "." detail
ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)")


class ProtocolTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.server(BASIC)

    def assertEnhanced(self, reply):
        """Every line of a reply starts with an enhanced code whose class
        is the reply's class."""
        code, lines = reply
        for ln in lines:
            m = ENHANCED.match(ln)
            self.assertIsNotNone(m, "no enhanced status code in %r" % (reply,))
            self.assertEqual(m.group(1), str(code)[0],
                             "class mismatch in %r" % (reply,))

    # -- greeting, EHLO, HELO ----------------------------------------------

    def test_greeting(self):
        with self.srv.raw() as c:
            code, lines = c.greeting
            self.assertEqual(code, 220)
            self.assertEqual(lines, ["mx.example.test ESMTP Postern"])
            self.assertEqual(c.last_raw,
                             b"220 mx.example.test ESMTP Postern\r\n")

    def test_ehlo_extensions(self):
        with self.srv.raw() as c:
            code, lines = c.cmd("EHLO client.test")
            self.assertEqual(code, 250)
            self.assertEqual(lines[0], "mx.example.test")
            self.assertEqual(lines[1:], [
                "PIPELINING", "SIZE 52428800", "8BITMIME",
                "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING",
                "HELP"])
            # exact multi-line syntax: 250-... lines, one final "250 "
            raw = c.last_raw.split(b"\r\n")
            self.assertEqual(raw[-1], b"")
            for ln in raw[:-2]:
                self.assertTrue(ln.startswith(b"250-"), raw)
            self.assertTrue(raw[-2].startswith(b"250 "), raw)
            # EHLO again is allowed and gives the same answer
            self.assertEqual(c.cmd("EHLO client.test"), (code, lines))

    def test_ehlo_extensions_switched_off(self):
        srv = self.server("""
            smtp { hostname mx.example.test;
                   smtp_pipelining off; smtp_chunking off;
                   smtp_smtputf8 off; smtp_dsn off;
                   message_size_limit 1m;
                   server { listen {port}; local_domains example.test; } }
        """, name="ProtocolTest_ext_off")
        with srv.raw() as c:
            code, lines = c.cmd("EHLO client.test")
            self.assertEqual(code, 250)
            self.assertEqual(lines[1:], ["SIZE 1048576", "8BITMIME",
                                         "ENHANCEDSTATUSCODES", "HELP"])
            c.cmd("MAIL FROM:<a@client.test>")
            # a parameter of an extension that is not offered
            self.assertReply(c.cmd("RCPT TO:<u@example.test> NOTIFY=NEVER"),
                             555, "5.5.4")
            self.assertReply(c.cmd("RSET"), 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SMTPUTF8"),
                             555, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> RET=FULL"),
                             555, "5.5.4")
            # BDAT without CHUNKING: the length cannot be trusted, close
            # with 421 (RFC 5321 3.8)
            self.assertReply(c.cmd("BDAT 10 LAST"), 421, "4.5.1")
            self.assertTrue(c.closed())

    def test_helo(self):
        with self.srv.raw() as c:
            self.assertEqual(c.cmd("HELO client.test"),
                             (250, ["mx.example.test"]))
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            # ESMTP parameters need EHLO
            self.assertReply(c.cmd("RSET"), 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=10"),
                             555, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> "
                                   "BODY=8BITMIME"), 555, "5.5.4")

    def test_helo_ehlo_syntax(self):
        with self.srv.raw() as c:
            self.assertReply(c.cmd("EHLO"), 501, "5.5.4")
            self.assertReply(c.cmd("HELO"), 501, "5.5.4")
            self.assertReply(c.cmd("EHLO " + "a" * 300), 501, "5.5.4")
            self.assertReply(c.cmd("EHLO bad\x01name"), 501, "5.5.4")
            # nothing above counts as a greeting
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503,
                             "5.5.1")
            # trailing words after the name are tolerated
            self.assertReply(c.cmd("EHLO client.test extra words"), 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)

    def test_ehlo_resets_transaction(self):
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)
            self.assertReply(c.cmd("EHLO client.test"), 250)
            # RFC 5321 4.1.4: EHLO clears the transaction
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 503, "5.5.1")
            self.assertReply(c.cmd("DATA"), 503)
        self.assertEqual(self.srv.queue_count(), 0)

    # -- a transaction, command by command ---------------------------------

    def test_transaction_commands(self):
        srv = self.srv
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            r = c.cmd("MAIL FROM:<sender@client.test>")
            self.assertEqual(r, (250, ["2.1.0 Ok"]))
            r = c.cmd("RCPT TO:<user@example.test>")
            self.assertEqual(r, (250, ["2.1.5 Ok"]))
            r = c.cmd("RCPT TO:<Postmaster>")
            self.assertEqual(r, (250, ["2.1.5 Ok"]))
            r = c.cmd("DATA")
            self.assertEqual(r[0], 354)
            self.assertEqual(c.last_raw,
                             b"354 End data with <CR><LF>.<CR><LF>\r\n")
            c.send(b"Subject: t\r\n\r\nbody\r\n.\r\n")
            code, lines = c.reply()
            self.assertEqual(code, 250)
            m = re.match(r"2\.0\.0 Ok: queued as ([0-9A-V]{18})$", lines[0])
            self.assertIsNotNone(m, lines)
            qid = m.group(1)
            r = c.cmd("QUIT")
            self.assertEqual(r, (221, ["2.0.0 Bye"]))
            self.assertTrue(c.closed())
        self.assertEqual(srv.queue_ids(), [qid])
        self.assertEqual(srv.body(qid), b"Subject: t\r\n\r\nbody\r\n")
        env = srv.envelope(qid)
        self.assertIn("\nrcpt user@example.test ", env)
        self.assertIn("\nrcpt Postmaster ", env)

    def test_null_sender(self):
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<>"), 250)
            self.assertReply(c.cmd("RCPT TO:<>"), 501, "5.1.3")
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: bounce\r\n\r\nx\r\n.\r\n")
            self.assertReply(c.reply(), 250)
        ids = self.srv.queue_ids()
        self.assertEqual(len(ids), 1)
        self.assertIn("\nsender \n", self.srv.envelope(ids[0]))

    def test_rset_noop_quit(self):
        with self.srv.raw() as c:
            self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
            # RFC 5321 4.1.1.9: NOOP may have an argument
            self.assertEqual(c.cmd("NOOP anything"), (250, ["2.0.0 Ok"]))
            self.assertEqual(c.cmd("RSET"), (250, ["2.0.0 Ok"]))
            self.assertReply(c.cmd("RSET now"), 501, "5.5.4")
            self.assertReply(c.cmd("QUIT now"), 501, "5.5.4")
            # commands are case-insensitive
            self.assertEqual(c.cmd("noop"), (250, ["2.0.0 Ok"]))
            self.assertEqual(c.cmd("qUiT"), (221, ["2.0.0 Bye"]))
            self.assertTrue(c.closed())

    def test_help(self):
        with self.srv.raw() as c:
            code, lines = c.cmd("HELP")
            self.assertEqual(code, 214)
            self.assertGreaterEqual(len(lines), 2)
            self.assertIn("MAIL", lines[0])
            self.assertEnhanced((code, lines))
            raw = c.last_raw
            self.assertTrue(raw.startswith(b"214-"), raw)
            self.assertEqual(raw.count(b"214 "), 1, raw)
            self.assertTrue(raw.endswith(b"\r\n"), raw)
            # and the session goes on in step
            self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))

    def test_vrfy_expn(self):
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            for who in ("root", "user@example.test", "nosuchuser",
                        "<user@example.test>"):
                code, lines = c.cmd("VRFY " + who)
                # RFC 5321 3.5.3 / 7.3: 252, and never a user list
                self.assertEqual(code, 252, lines)
                self.assertEqual(len(lines), 1)
                self.assertTrue(lines[0].startswith("2.5.2 "), lines)
                self.assertNotIn(who.strip("<>"), lines[0])
            self.assertReply(c.cmd("VRFY"), 501, "5.5.4")
            code, lines = c.cmd("EXPN staff")
            self.assertEqual(code, 502)
            self.assertEqual(len(lines), 1)
            self.assertEnhanced((code, lines))

    # -- out of sequence, unknown, syntax ----------------------------------

    def test_out_of_sequence(self):
        with self.srv.raw() as c:
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 503,
                             "5.5.1")
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                             "5.5.1")
            self.assertReply(c.cmd("DATA"), 503, "5.5.1")
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503,
                             "5.5.1")
            self.assertReply(c.cmd("DATA"), 503, "5.5.1")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            self.assertReply(c.cmd("MAIL FROM:<b@client.test>"), 503,
                             "5.5.1")
            # DATA with no accepted recipient: RFC 5321 3.3 allows 503
            # or 554 "no valid recipients"
            code, lines = c.cmd("DATA")
            self.assertIn(code, (503, 554), lines)
            self.assertTrue(lines[0].startswith("5.5.1 "), lines)
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
            # the nested MAIL did not replace the sender
            c.cmd("DATA")
            c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
            self.assertReply(c.reply(), 250)
        env = self.srv.envelope(self.srv.queue_ids()[0])
        self.assertIn("\nsender a@client.test\n", env)

    def test_unknown_and_syntax(self):
        with self.srv.raw() as c:
            self.assertEqual(c.cmd("FOO"),
                             (500, ["5.5.2 Error: command not recognized"]))
            self.assertReply(c.cmd("MAILFROM:<a@b.test>"), 500, "5.5.2")
            self.assertReply(c.cmd(""), 500, "5.5.2")
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:a@client.test"), 501, "5.1.7")
            self.assertReply(c.cmd("MAIL TO:<a@client.test>"), 501, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@@client.test>"), 501,
                             "5.1.7")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>x"), 501)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=abc"),
                             501, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=1 SIZE=2"),
                             501, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> FOO=bar"),
                             555, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> "
                                   "BODY=BINARYMIME"), 555, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:user@example.test"), 501,
                             "5.1.3")
            self.assertReply(c.cmd("RCPT TO:<a b@example.test>"), 501,
                             "5.1.3")
            self.assertReply(c.cmd("RCPT TO:<u@example..test>"), 501,
                             "5.1.3")
            self.assertReply(c.cmd("RCPT TO:<u@example.test> NOTIFY=BOGUS"),
                             501, "5.5.4")
            self.assertReply(c.cmd("RCPT FROM:<u@example.test>"), 501,
                             "5.5.4")
            self.assertReply(c.cmd("DATA now"), 501, "5.5.4")
            # none of it broke the transaction
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"x\r\n.\r\n")
            self.assertReply(c.reply(), 250)

    def test_relay_denied_keeps_transaction(self):
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            self.assertReply(c.cmd("RCPT TO:<v@elsewhere.test>"), 550,
                             "5.7.1")
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"x\r\n.\r\n")
            self.assertReply(c.reply(), 250)
        env = self.srv.envelope(self.srv.queue_ids()[0])
        self.assertNotIn("elsewhere", env)

    def test_addresses(self):
        """Path syntax (RFC 5321 4.1.2) and the relay check's view of it."""
        cases = [
            ("<@a.test,@b.test:route@example.test>", 250),  # route ignored
            ("<user@EXAMPLE.TEST>", 250),                   # case of domain
            ('<"quoted user"@example.test>', 250),
            ("<" + "l" * 64 + "@example.test>", 250),
            ("<" + "l" * 65 + "@example.test>", 501),       # 4.5.3.1.1
            ("<u@" + "d" * 64 + ".test>", 501),             # label > 63
            ("<u@example.test.>", 501),
            ("<u@-example.test>", 501),
            ("<u@[300.1.1.1]>", 501),
            ("<user%other.test@example.test>", 550),         # percent hack
            ('<"a@b"@example.test>', 550),
            ("<user@[127.0.0.1]>", 550),                     # literal
            ("<user@example.test.evil.test>", 550),
        ]
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            for addr, code in cases:
                r = c.cmd("RCPT TO:" + addr)
                self.assertEqual(r[0], code, (addr, r))
                self.assertEnhanced(r)
            c.cmd("DATA")
            c.send(b"x\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        env = self.srv.envelope(self.srv.queue_ids()[0])
        rcpts = [l.split()[1] for l in env.splitlines()
                 if l.startswith("rcpt ")]
        self.assertEqual(rcpts, ["route@example.test", "user@example.test",
                                 '"quoted+20user"@example.test',
                                 "l" * 64 + "@example.test"])

    def test_nothing_after_quit(self):
        with self.srv.raw() as c:
            c.send(b"QUIT\r\nNOOP\r\nEHLO client.test\r\n")
            self.assertEqual(c.reply(), (221, ["2.0.0 Bye"]))
            self.assertTrue(c.closed())
            self.assertEqual(c.buf, b"")

    def test_enhanced_status_codes_everywhere(self):
        """Every reply but the greeting, the EHLO/HELO answer and 354
        carries an RFC 3463 code of its own class."""
        cmds = ["NOOP", "RSET", "HELP", "VRFY x", "EXPN x", "FOO",
                "MAIL FROM:<a@client.test>", "HELO client.test",
                "EHLO client.test", "RCPT TO:<u@example.test>", "DATA",
                "MAIL FROM:<a@client.test>", "MAIL FROM:<a@client.test>",
                "RCPT TO:<u@example.test> FOO=1",
                "RCPT TO:<v@elsewhere.test>", "RCPT TO:<u@example.test>",
                "RSET", "MAIL FROM:<a@client.test> SIZE=999999999999",
                "QUIT"]
        with self.srv.raw() as c:
            for cmd in cmds:
                r = c.cmd(cmd)
                if cmd.startswith(("HELO", "EHLO")):
                    self.assertEqual(r[0], 250)
                    continue
                self.assertEnhanced(r)


if __name__ == "__main__":
    unittest.main()
