"""ESMTP extensions: PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
(RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461) parameters in the stored
envelope, CHUNKING/BDAT (RFC 3030), and RSET in the middle of a
transaction."""

import re
import unittest

from pstest import BASIC, PstTestCase

QUEUED = re.compile(r"^2\.0\.0 Ok: queued as ([0-9A-V]{18})$")


def qid_of(reply):
    code, lines = reply
    assert code == 250, reply
    m = QUEUED.match(lines[0])
    assert m, reply
    return m.group(1)


SMALL = """
smtp {
    hostname mx.example.test;
    message_size_limit 10k;
    server {
        listen {port};
        local_domains example.test;
    }
}
"""


# a client that does not wait for the 354 is refused by default (see
# test_pipelining_sync.py); these tests check the lenient mode
LENIENT = BASIC.replace("listen {port};", "listen {port};"
                        " smtp_forbid_unauth_pipelining off;")


def env_lines(env, key):
    return [l[len(key) + 1:] for l in env.splitlines()
            if l.startswith(key + " ")]


class PipeliningTest(PstTestCase):

    def test_transaction_groups(self):
        """Each RFC 2920 group in one write; replies in order, complete."""
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.send(b"MAIL FROM:<s@client.test>\r\n"
                   b"RCPT TO:<u1@example.test>\r\n"
                   b"RCPT TO:<v@elsewhere.test>\r\n"
                   b"RCPT TO:<u2@example.test>\r\n"
                   b"DATA\r\n")
            r = c.replies(5)
            self.assertEqual([x[0] for x in r], [250, 250, 550, 250, 354])
            self.assertEqual(r[1][1], ["2.1.5 Ok"])
            # the message and the next transaction in one group
            c.send(b"Subject: one\r\n\r\nfirst\r\n.\r\n"
                   b"MAIL FROM:<s2@client.test>\r\n"
                   b"RCPT TO:<u3@example.test>\r\n"
                   b"DATA\r\n")
            r = c.replies(4)
            self.assertEqual([x[0] for x in r], [250, 250, 250, 354])
            first = qid_of(r[0])
            c.send(b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n")
            r = c.replies(2)
            second = qid_of(r[0])
            self.assertEqual(r[1][0], 221)
            self.assertTrue(c.closed())
            self.assertEqual(c.pending(), b"")
        self.assertEqual(srv.queue_ids(), sorted([first, second]))
        self.assertEqual(srv.body(first), b"Subject: one\r\n\r\nfirst\r\n")
        self.assertEqual(srv.body(second), b"Subject: two\r\n\r\nsecond\r\n")
        env = srv.envelope(first)
        self.assertEqual([l.split()[0] for l in env_lines(env, "rcpt")],
                         ["u1@example.test", "u2@example.test"])

    def test_everything_in_one_write(self):
        """A client that does not even wait for 354: with
        smtp_forbid_unauth_pipelining off, still every reply, in order,
        and both messages stored once."""
        srv = self.server(LENIENT)
        with srv.raw() as c:
            c.send(b"EHLO client.test\r\n"
                   b"MAIL FROM:<s@client.test>\r\n"
                   b"RCPT TO:<u1@example.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: one\r\n\r\nfirst\r\n.\r\n"
                   b"RSET\r\n"
                   b"MAIL FROM:<s@client.test> SIZE=100\r\n"
                   b"RCPT TO:<u2@example.test>\r\n"
                   b"NOOP\r\n"
                   b"DATA\r\n"
                   b"Subject: two\r\n\r\nsecond\r\n.\r\n"
                   b"QUIT\r\n")
            r = c.replies(11)
            self.assertEqual([x[0] for x in r],
                             [250, 250, 250, 354, 250, 250, 250, 250, 250,
                              354, 250])
            ids = [qid_of(r[4]), qid_of(r[10])]
            self.assertEqual(c.reply()[0], 221)
            self.assertTrue(c.closed())
        self.assertEqual(srv.queue_ids(), sorted(ids))
        self.assertEqual(srv.body(ids[1]), b"Subject: two\r\n\r\nsecond\r\n")

    def test_many_pipelined_transactions(self):
        """50 transactions written at once, read back afterwards (with
        smtp_forbid_unauth_pipelining off)."""
        srv = self.server(LENIENT)
        n = 50
        with srv.raw(timeout=30) as c:
            c.cmd("EHLO client.test")
            out = b""
            for i in range(n):
                out += (b"MAIL FROM:<s%d@client.test>\r\n"
                        b"RCPT TO:<user@example.test>\r\nDATA\r\n"
                        b"Subject: %d\r\n\r\nmessage %d\r\n.\r\n" % (i, i, i))
            out += b"QUIT\r\n"
            c.send(out)
            codes = [x[0] for x in c.replies(4 * n + 1)]
            self.assertEqual(codes, [250, 250, 354, 250] * n + [221])
        self.assertEqual(srv.queue_count(), n)


class SizeTest(PstTestCase):

    def test_size_parameter(self):
        srv = self.server(SMALL)
        with srv.raw() as c:
            code, lines = c.cmd("EHLO client.test")
            self.assertIn("SIZE 10240", lines)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=10241"),
                             552, "5.3.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=99999999999"),
                             552, "5.3.4")
            # RFC 1870 allows 20 digits, past what 64 bits hold: still
            # a size, and too big (it was a 501 syntax error)
            for big in ("9223372036854775808", "9" * 20):
                self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE="
                                       + big), 552, "5.3.4")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE="
                                   + "9" * 21), 501, "5.5.4")
            # refused MAIL left no transaction behind
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> SIZE=10240"),
                             250)
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: s\r\n\r\n" + b"x" * 100 + b"\r\n.\r\n")
            qid_of(c.reply())
        self.assertEqual(srv.queue_count(), 1)


class EightBitTest(PstTestCase):

    def test_8bitmime(self):
        srv = self.server(BASIC)
        body = (b"Subject: =?utf-8?q?x?=\r\nContent-Transfer-Encoding: 8bit"
                b"\r\n\r\n" + bytes(range(0x80, 0x100)) + b"\r\n"
                b"caf\xc3\xa9 \xff\xfe\r\n")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test> BODY=8BITMIME"),
                             250)
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            c.send(body + b".\r\n")
            qid = qid_of(c.reply())
            c.cmd("MAIL FROM:<a@client.test> BODY=7BIT")
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            c.send(b"plain\r\n.\r\n")
            qid7 = qid_of(c.reply())
        self.assertEqual(srv.body(qid), body)
        self.assertEqual(env_lines(srv.envelope(qid), "body"), ["8BITMIME"])
        self.assertEqual(env_lines(srv.envelope(qid7), "body"), ["7BIT"])


class SmtpUtf8Test(PstTestCase):

    def test_utf8_address_needs_parameter(self):
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<j\u00f6s\u00e9@client.test>"),
                             553, "5.6.7")
            self.assertReply(c.cmd("MAIL FROM:<a@b\u00fccher.test>"), 553,
                             "5.6.7")
            self.assertReply(c.cmd("MAIL FROM:<ascii@client.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<\u00fc@example.test>"), 553,
                             "5.6.7")
            self.assertReply(c.cmd("RSET"), 250)
            # invalid UTF-8 is a syntax error even with SMTPUTF8
            c.send(b"MAIL FROM:<j\xc3@client.test> SMTPUTF8\r\n")
            self.assertReply(c.reply(), 501)
        self.assertEqual(srv.queue_count(), 0)

    def test_utf8_transaction_stored(self):
        srv = self.server(BASIC)
        body = "Subject: gr\u00fc\u00dfe\r\n\r\n\u65e5\u672c\u8a9e\r\n".encode()
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<j\u00f6s\u00e9@client.test>"
                                   " SMTPUTF8 BODY=8BITMIME"), 250)
            self.assertReply(c.cmd("RCPT TO:<\u00fcser@example.test>"), 250)
            c.cmd("DATA")
            c.send(body + b".\r\n")
            qid = qid_of(c.reply())
        self.assertEqual(srv.body(qid), body)
        env = srv.envelope(qid)
        self.assertEqual(env_lines(env, "smtputf8"), ["1"])
        # xtext: every non-ASCII byte as +XX
        self.assertEqual(env_lines(env, "sender"),
                         ["j+C3+B6s+C3+A9@client.test"])
        self.assertEqual(env_lines(env, "rcpt")[0].split()[0],
                         "+C3+BCser@example.test")
        self.assertEqual(env_lines(env, "protocol"), ["UTF8SMTP"])
        self.assertIn(b" with UTF8SMTP id " + qid.encode(), srv.message(qid))
        r = srv.run_tool("queue", "show", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("<j\u00f6s\u00e9@client.test>", r.stdout)


class DsnTest(PstTestCase):

    def test_dsn_parameters_in_envelope(self):
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test> RET=HDRS "
                                   "ENVID=abc+2Bdef+3Dx"), 250)
            self.assertReply(c.cmd(
                "RCPT TO:<u1@example.test> NOTIFY=SUCCESS,FAILURE "
                "ORCPT=rfc822;U1@Example.test"), 250)
            self.assertReply(c.cmd("RCPT TO:<u2@example.test> NOTIFY=NEVER"),
                             250)
            self.assertReply(c.cmd(
                "RCPT TO:<u3@example.test> NOTIFY=delay "
                "ORCPT=RFC822;first+2Blast+20x@example.test"), 250)
            self.assertReply(c.cmd("RCPT TO:<u4@example.test>"), 250)
            c.cmd("DATA")
            c.send(b"Subject: dsn\r\n\r\nx\r\n.\r\n")
            qid = qid_of(c.reply())
        env = srv.envelope(qid)
        self.assertEqual(env_lines(env, "ret"), ["HDRS"])
        self.assertEqual(env_lines(env, "envid"), ["abc+2Bdef+3Dx"])
        self.assertEqual(env_lines(env, "rcpt"), [
            "u1@example.test notify=6 orcpt=rfc822;U1@Example.test "
            "state=pending",
            "u2@example.test notify=1 state=pending",
            "u3@example.test notify=8 orcpt=rfc822;first+2Blast+20x"
            "@example.test state=pending",
            "u4@example.test notify=0 state=pending"])
        self.assertTrue(env.endswith("\nend\n"))

    def test_duplicate_recipients_stored_once(self):
        """The same mailbox (domain in any case) with the same DSN request
        is stored once; a different local part case or DSN request is
        another recipient."""
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test>"), 250)
            for rcpt in ("u1@example.test", "u1@EXAMPLE.test",
                         "u1@example.test", "U1@example.test",
                         "u1@example.test> NOTIFY=NEVER",
                         "u1@Example.Test> NOTIFY=NEVER"):
                self.assertReply(c.cmd("RCPT TO:<%s" % (
                    rcpt if ">" in rcpt else rcpt + ">")), 250)
            c.cmd("DATA")
            c.send(b"Subject: dup\r\n\r\nx\r\n.\r\n")
            qid = qid_of(c.reply())
        self.assertEqual(env_lines(srv.envelope(qid), "rcpt"), [
            "u1@example.test notify=0 state=pending",
            "U1@example.test notify=0 state=pending",
            "u1@example.test notify=1 state=pending"])

    def test_duplicates_count_against_max_recipients(self):
        srv = self.server(BASIC.replace("server {",
                                        "max_recipients 100;\n    server {"))
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test>"), 250)
            for _ in range(100):
                self.assertReply(c.cmd("RCPT TO:<u1@example.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<u1@example.test>"), 452,
                             "4.5.3")

    def test_dsn_parameter_errors(self):
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test> RET=BOGUS"), 501,
                             "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test> RET=FULL "
                                   "RET=HDRS"), 501, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test> ENVID=" +
                                   "x" * 101), 501, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test> ENVID=a+ZZ"),
                             501, "5.5.4")
            self.assertReply(c.cmd("MAIL FROM:<s@client.test> RET=FULL"), 250)
            for bad in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=", "NOTIFY=SUCCESS,",
                        "NOTIFY=SOMETIMES", "ORCPT=rfc822",
                        "ORCPT=;x@example.test", "NOTIFY=DELAY NOTIFY=DELAY"):
                self.assertReply(c.cmd("RCPT TO:<u@example.test> " + bad), 501,
                                 "5.5.4")
            self.assertReply(c.cmd("RCPT TO:<u@example.test> NOTIFY=DELAY"),
                             250)
            c.cmd("DATA")
            c.send(b"x\r\n.\r\n")
            qid = qid_of(c.reply())
        env = srv.envelope(qid)
        self.assertEqual(env_lines(env, "ret"), ["FULL"])
        self.assertEqual(env_lines(env, "rcpt"),
                         ["u@example.test notify=8 state=pending"])


class ChunkingTest(PstTestCase):

    def test_several_chunks(self):
        srv = self.server(BASIC)
        # no dot-stuffing in BDAT: ".\r\n" inside a chunk is content; a
        # CRLF split across two chunks stays one line ending
        parts = [b"Subject: chunks\r\n\r\n.\r\n..two dots\r\n",
                 b"line split\r", b"\nlast line\r\n"]
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test> BODY=8BITMIME")
            c.cmd("RCPT TO:<user@example.test>")
            total = 0
            for p in parts:
                total += len(p)
                c.send(b"BDAT %d\r\n" % len(p) + p)
                # (the octet count in the text is informational: a CR
                # at the end of a chunk is held until the next one)
                self.assertReply(c.reply(), 250, "2.0.0 Ok: ")
            # RCPT and DATA do not belong in a BDAT transfer
            self.assertReply(c.cmd("RCPT TO:<u2@example.test>"), 503, "5.5.1")
            self.assertReply(c.cmd("DATA"), 503, "5.5.1")
            qid = qid_of(c.cmd("BDAT 0 LAST"))
            self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(srv.body(qid), b"".join(parts))
        self.assertEqual(env_lines(srv.envelope(qid), "size"),
                         [str(total)])

    def test_single_last_chunk_binary(self):
        srv = self.server(BASIC)
        body = (b"Subject: bin\r\n\r\n" + bytes(range(1, 10)) + b"\x00\x00"
                + bytes(range(14, 256)) + b"\r\n")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.send(b"BDAT %d LAST\r\n" % len(body) + body)
            qid = qid_of(c.reply())
        self.assertEqual(srv.body(qid), body)

    def test_bdat_pipelined(self):
        srv = self.server(BASIC)
        a, b = b"Subject: p\r\n\r\nQUIT\r\n", b"RSET\r\nend\r\n"
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.send(b"MAIL FROM:<a@client.test>\r\nRCPT TO:<user@example.test>"
                   b"\r\nBDAT %d\r\n%sBDAT %d LAST\r\n%s"
                   b"MAIL FROM:<b@client.test>\r\n"
                   b"RCPT TO:<user@example.test>\r\n"
                   b"BDAT 3 LAST\r\nxyzQUIT\r\n" % (len(a), a, len(b), b))
            r = c.replies(8)
            self.assertEqual([x[0] for x in r],
                             [250, 250, 250, 250, 250, 250, 250, 221])
            q1, q2 = qid_of(r[3]), qid_of(r[6])
        self.assertEqual(srv.body(q1), a + b)
        self.assertEqual(srv.body(q2), b"xyz\r\n")

    def test_bdat_without_mail_skips_chunk(self):
        srv = self.server(BASIC)
        chunk = b"MAIL FROM:<x@y.test>\r\nQUIT\r\n"
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            self.assertReply(c.reply(), 503, "5.5.1")
            c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
            self.assertReply(c.reply(), 503, "5.5.1")
            # the chunk bytes were not taken as commands
            self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
            c.cmd("MAIL FROM:<a@client.test>")
            # no recipient yet: refused, chunk skipped as well
            c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
            code, lines = c.reply()
            self.assertIn(code, (503, 554), lines)
            self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
            self.assertEqual(c.pending(), b"")
            # and a real transaction still works
            c.cmd("RSET")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            qid_of(c.cmd("BDAT 0 LAST"))
        self.assertEqual(srv.queue_count(), 1)

    def test_bdat_over_size_limit(self):
        srv = self.server(SMALL)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            big = b"y" * 78 + b"\r\n"
            c.send(b"BDAT %d LAST\r\n" % (len(big) * 200) + big * 200)
            self.assertReply(c.reply(), 552, "5.3.4")
            self.assertEqual(c.cmd("NOOP")[0], 250)
            # over the limit in the second chunk; the next chunk finds no
            # transaction
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.send(b"BDAT 6000\r\n" + b"z" * 6000)
            self.assertEqual(c.reply()[0], 250)
            c.send(b"BDAT 6000\r\n" + b"z" * 6000)
            self.assertReply(c.reply(), 552, "5.3.4")
            c.send(b"BDAT 10 LAST\r\n" + b"0123456789")
            self.assertReply(c.reply(), 503, "5.5.1")
            self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(srv.queue_count(), 0)
        srv.wait_tmp_empty()

    def test_bdat_bad_syntax_closes(self):
        """The chunk length is unknown, so the stream cannot be followed:
        the server closes, and says so with 421 (RFC 5321 3.8)."""
        srv = self.server(BASIC)
        for arg in ("BDAT", "BDAT abc", "BDAT -1", "BDAT 10 FIRST",
                    "BDAT " + "9" * 30):
            with srv.raw() as c:
                c.cmd("EHLO client.test")
                c.cmd("MAIL FROM:<a@client.test>")
                c.cmd("RCPT TO:<user@example.test>")
                self.assertReply(c.cmd(arg), 421, "4.5.4")
                self.assertIn("closing", c.last_raw.decode())
                self.assertTrue(c.closed(), arg)
        self.assertEqual(srv.queue_count(), 0)
        srv.wait_tmp_empty()


class RsetTest(PstTestCase):

    def test_rset_mid_transaction(self):
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            self.assertEqual(c.cmd("RSET"), (250, ["2.0.0 Ok"]))
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 503)
            self.assertReply(c.cmd("DATA"), 503)
            # a new transaction with another sender
            c.cmd("MAIL FROM:<b@client.test>")
            c.cmd("RCPT TO:<other@example.test>")
            c.cmd("DATA")
            c.send(b"x\r\n.\r\n")
            qid = qid_of(c.reply())
        env = srv.envelope(qid)
        self.assertEqual(env_lines(env, "sender"), ["b@client.test"])
        self.assertEqual([l.split()[0] for l in env_lines(env, "rcpt")],
                         ["other@example.test"])

    def test_rset_between_chunks(self):
        srv = self.server(BASIC)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.send(b"BDAT 5\r\nhello")
            self.assertEqual(c.reply()[0], 250)
            self.assertEqual(c.cmd("RSET"), (250, ["2.0.0 Ok"]))
            c.send(b"BDAT 5 LAST\r\nworld")
            self.assertReply(c.reply(), 503, "5.5.1")
            self.assertEqual(c.cmd("NOOP")[0], 250)
            # the aborted message left nothing behind
            srv.wait_tmp_empty()
        self.assertEqual(srv.queue_count(), 0)


if __name__ == "__main__":
    unittest.main()
