"""Message data: dot-stuffing undone byte for byte (RFC 5321 4.5.2), big
messages, 8-bit and NUL bytes preserved, empty messages."""

import random
import re
import unittest

from pstest import BASIC, PstTestCase

QUEUED = re.compile(r"queued as ([0-9A-V]{18})")


def stuff(body):
    """What a client sends for body: a '.' doubled at every line start."""
    out = []
    for line in body.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


class DataTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.server(BASIC)

    def send_raw(self, body, stuffed=None):
        with self.srv.raw(timeout=30) as c:
            c.cmd("EHLO client.test")
            r = self.srv.transaction(c, stuffed if stuffed is not None
                                     else stuff(body))
            self.assertEqual(r[0], 250, r)
            qid = QUEUED.search(r[1][0]).group(1)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        return qid

    def test_dot_lines_smtplib(self):
        """smtplib stuffs; what is stored is what the client meant."""
        body = (b".starts with a dot\r\nSubject: dots\r\n\r\n"
                b".\r\n..\r\n...\r\n.x\r\n..x\r\n. \r\n"
                b"middle . dot\r\n.\r\n"
                b"last line\r\n")
        refused = self.srv.send(body=body)
        self.assertEqual(refused, {})
        ids = self.srv.queue_ids()
        self.assertEqual(len(ids), 1)
        self.assertEqual(self.srv.body(ids[0]), body)
        env = self.srv.envelope(ids[0])
        self.assertIn("\nsize %d\n" % len(body), env)

    def test_dot_lines_raw(self):
        stuffed = (b"Subject: raw\r\n\r\n"
                   b"..\r\n"          # a line of just "."
                   b"...\r\n"         # ".."
                   b"..leading\r\n"   # ".leading"
                   b".unstuffed\r\n"  # sloppy client: dot removed too
                   b"x.\r\n"
                   b"..\r\n")
        qid = self.send_raw(None, stuffed)
        self.assertEqual(self.srv.body(qid),
                         b"Subject: raw\r\n\r\n.\r\n..\r\n.leading\r\n"
                         b"unstuffed\r\nx.\r\n.\r\n")

    def test_empty_message(self):
        qid = self.send_raw(None, b"")
        self.assertEqual(self.srv.body(qid), b"")
        self.assertIn("\nsize 0\n", self.srv.envelope(qid))
        # only our trace header is there, and it ends with CRLF
        self.assertTrue(self.srv.message(qid).startswith(b"Received: "))
        self.assertTrue(self.srv.message(qid).endswith(b"\r\n"))

    def test_one_megabyte_random_lines(self):
        rnd = random.Random(5321)
        printable = bytes(range(32, 127))
        lines, size = [b"Subject: big", b""], 0
        while size < 1024 * 1024:
            n = rnd.choice((0, 1, 2, 10, 50, 76, 200, 998))
            line = bytes(rnd.choice(printable) for _ in range(n))
            if rnd.random() < 0.2:
                line = b"." * rnd.randint(1, 3) + line
            lines.append(line)
            size += len(line) + 2
        body = b"\r\n".join(lines) + b"\r\n"
        with self.srv.smtp(timeout=60) as c:
            c.ehlo("client.test")
            self.assertEqual(c.sendmail("a@client.test", ["user@example.test"],
                                        body), {})
        ids = self.srv.queue_ids()
        self.assertEqual(len(ids), 1)
        stored = self.srv.body(ids[0])
        self.assertEqual(len(stored), len(body))
        self.assertTrue(stored == body, "1 MB body differs")
        self.assertIn("\nsize %d\n" % len(body), self.srv.envelope(ids[0]))

    def test_one_megabyte_in_random_chunks(self):
        """BDAT: the same kind of body cut at random places (CRLFs split
        across chunks included), chunks pipelined in groups."""
        rnd = random.Random(3030)
        lines, size = [b"Subject: chunks", b""], 0
        while size < 1024 * 1024:
            line = bytes(rnd.randrange(32, 256) for _ in range(
                rnd.choice((0, 1, 77, 500))))
            if rnd.random() < 0.2:
                line = b"." + line
            lines.append(line)
            size += len(line) + 2
        body = b"\r\n".join(lines) + b"\r\n"
        with self.srv.raw(timeout=60) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test> BODY=8BITMIME")
            c.cmd("RCPT TO:<user@example.test>")
            pos, n = 0, 0
            while pos < len(body):
                k = rnd.choice((1, 2, 3, 1000, 65536, 100000))
                chunk = body[pos:pos + k]
                pos += len(chunk)
                last = b" LAST" if pos >= len(body) else b""
                c.send(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
                n += 1
                if n % 50 == 0 or last:
                    for r in c.replies(n):
                        self.assertEqual(r[0], 250, r)
                    n = 0
            qid = QUEUED.search(c.last_raw.decode()).group(1)
        stored = self.srv.body(qid)
        self.assertEqual(len(stored), len(body))
        self.assertTrue(stored == body, "chunked body differs")

    def test_eight_bit_and_nul(self):
        """Every byte value but CR and LF, NULs included, in the text."""
        allbytes = bytes(b for b in range(256) if b not in (10, 13))
        body = (b"Subject: bytes\r\n\r\n" + allbytes + b"\r\n"
                + b"\x00\r\n" + b"\x00.\x00\r\n" + b".\x00\r\n"
                + b"\xff" * 3000 + b"\r\n")
        qid = self.send_raw(body)
        self.assertEqual(self.srv.body(qid), body)

    def test_long_line_under_limit(self):
        body = b"Subject: long\r\n\r\n" + b"a" * 60000 + b"\r\nend\r\n"
        qid = self.send_raw(body)
        self.assertEqual(self.srv.body(qid), body)

    def test_data_in_tiny_writes(self):
        """The parser keeps its state across reads: the body arrives one
        byte at a time, including the final CRLF.CRLF."""
        body = b"Subject: slow\r\n\r\n.x\r\n..\r\nend\r\n"
        stuffed = stuff(body) + b".\r\n"
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            self.assertEqual(c.cmd("DATA")[0], 354)
            for i in range(len(stuffed)):
                c.send(stuffed[i:i + 1])
            r = c.reply()
            self.assertEqual(r[0], 250, r)
        self.assertEqual(self.srv.body(self.srv.queue_ids()[0]), body)


if __name__ == "__main__":
    unittest.main()
