"""SMTP smuggling: only <CRLF>.<CRLF> ends the data.  Bare CR or LF
around a dot never ends a message early nor splits one into two, with
"smtp_bare_newline normalize" (the default: stored with CRLF) and with
"smtp_bare_newline reject" (554 5.6.0, nothing stored, session usable).
"""

import re
import unittest

from pstest import PstTestCase

CONF = """
smtp {
    hostname mx.example.test;
    %s
    server {
        listen {port};
        local_domains example.test;
    }
}
"""

# the would-be end of data, then what an attacker wants taken as commands
SEQUENCES = [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r",
    b"\r\n.\r", b"\r\n.\r\r\n", b"\r\n.\n\r\n", b"\n\n.\n\n", b"\r\r.\r\r",
    b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\r\n \r\n.\n",
]
SMUGGLED = (b"MAIL FROM:<evil@attacker.test>\r\n"
            b"RCPT TO:<victim@example.test>\r\n"
            b"DATA\r\n"
            b"From: ceo@example.test\r\n\r\nsmuggled\r\n")


def well_formed(data):
    """Every CR is followed by LF and every LF preceded by CR."""
    return (re.search(rb"\r(?!\n)", data) is None
            and re.search(rb"(?<!\r)\n", data) is None)


class SmugglingTest(PstTestCase):

    def attempt(self, c, seq):
        c.cmd("MAIL FROM:<a@client.test>")
        c.cmd("RCPT TO:<user@example.test>")
        self.assertEqual(c.cmd("DATA")[0], 354)
        data = b"Subject: innocent\r\n\r\nbefore" + seq + SMUGGLED
        self.assertNotIn(b"\r\n.\r\n", data)
        c.send(data + b"after\r\n.\r\n")
        return c.reply()

    def test_normalize(self):
        srv = self.server(CONF % "")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            for seq in SEQUENCES:
                code, lines = self.attempt(c, seq)
                self.assertEqual(code, 250, "%r: %r" % (seq, lines))
                # nothing more came back: the smuggled commands were
                # message text, not commands
                self.assertEqual(c.pending(0.2), b"", seq)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), len(SEQUENCES))
        for qid in ids:
            msg = srv.message(qid)
            self.assertTrue(well_formed(msg), msg)
            body = srv.body(qid)
            self.assertTrue(body.startswith(b"Subject: innocent\r\n\r\n"
                                            b"before"), body)
            self.assertIn(b"MAIL FROM:<evil@attacker.test>\r\n", body)
            self.assertTrue(body.endswith(b"smuggled\r\nafter\r\n"), body)
            env = srv.envelope(qid)
            self.assertNotIn("evil", env)
            self.assertNotIn("victim", env)
        srv.wait_log(r"bare <(LF|CR)> normalised to <CR><LF>")

    def test_normalize_exact_bytes(self):
        """What a few sequences become once normalised."""
        srv = self.server(CONF % "smtp_bare_newline normalize;")
        cases = [
            (b"a\nb\rc\r\n", b"a\r\nb\r\nc\r\n"),
            # a dot at the start of a bare-LF line is still unstuffed,
            # and never ends the data
            (b"a\n.\nb\r\n", b"a\r\n\r\nb\r\n"),
            (b"a\r\n.\nb\r\n", b"a\r\n\r\nb\r\n"),
            (b"a\n.\r\nb\r\n", b"a\r\n\r\nb\r\n"),
            (b"a\r\n..\nb\r\n", b"a\r\n.\r\nb\r\n"),
        ]
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            ids = []
            for sent, _ in cases:
                c.cmd("MAIL FROM:<a@client.test>")
                c.cmd("RCPT TO:<user@example.test>")
                c.cmd("DATA")
                c.send(sent + b".\r\n")
                code, lines = c.reply()
                self.assertEqual(code, 250, (sent, lines))
                ids.append(re.search(r"queued as (\S+)", lines[0]).group(1))
        for qid, (sent, want) in zip(ids, cases):
            self.assertEqual(srv.body(qid), want, sent)

    def test_reject(self):
        srv = self.server(CONF % "smtp_bare_newline reject;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            for seq in SEQUENCES:
                code, lines = self.attempt(c, seq)
                if b"\r" not in seq.replace(b"\r\n", b"") and \
                        b"\n" not in seq.replace(b"\r\n", b""):
                    # NUL tricks are not bare line ends: stored
                    self.assertEqual(code, 250, (seq, lines))
                    continue
                self.assertEqual(code, 554, "%r: %r" % (seq, lines))
                self.assertTrue(lines[0].startswith("5.6.0 "), lines)
                self.assertEqual(c.pending(0.2), b"", seq)
            # the session is still in step and usable
            self.assertEqual(c.cmd("NOOP")[0], 250)
            code, lines = self.attempt(c, b"\r\n")
            self.assertEqual(code, 250, lines)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        nul_cases = sum(1 for s in SEQUENCES
                        if b"\r" not in s.replace(b"\r\n", b"")
                        and b"\n" not in s.replace(b"\r\n", b""))
        self.assertEqual(srv.queue_count(), nul_cases + 1)
        for qid in srv.queue_ids():
            self.assertNotIn("evil", srv.envelope(qid))
        srv.wait_tmp_empty()
        srv.wait_log(r"rejected: bare <(LF|CR)> in message")

    def test_reject_bare_lf_in_commands(self):
        srv = self.server(CONF % "smtp_bare_newline reject;")
        with srv.raw() as c:
            c.send(b"EHLO client.test\n")
            self.assertReply(c.reply(), 500, "5.5.2")
            self.assertReply(c.cmd("EHLO client.test"), 250)
        # normalize mode takes a bare LF command line
        srv2 = self.server(CONF % "", name="SmugglingTest_lf_normalize")
        with srv2.raw() as c:
            c.send(b"EHLO client.test\n")
            self.assertReply(c.reply(), 250)
            c.send(b"NOOP\n")
            self.assertReply(c.reply(), 250)

    def test_smuggled_end_split_across_writes(self):
        """The sequences arrive byte by byte: parser state across reads
        must give the same result."""
        srv = self.server(CONF % "")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            data = b"x" + b"x".join(SEQUENCES) + b"x" + SMUGGLED
            self.assertNotIn(b"\r\n.\r\n", data)
            data += b"end\r\n.\r\n"
            for i in range(len(data)):
                c.send(data[i:i + 1])
            self.assertEqual(c.reply()[0], 250)
            self.assertEqual(c.pending(0.2), b"")
        self.assertEqual(srv.queue_count(), 1)


if __name__ == "__main__":
    unittest.main()
