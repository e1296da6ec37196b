"""Trace and logs: the Received: header (RFC 5321 4.4), the per-message
log line, "smtp_debug on" logging every command and reply, and the
node's name (node_name) in both."""

import datetime
import email.utils
import re
import socket
import unittest

from pstest import BASIC, PstTestCase

DEBUG = BASIC.replace("hostname mx.example.test;",
                      "hostname mx.example.test; smtp_debug on;")


def received(msg):
    """The first header, unfolded, and its raw bytes."""
    end = msg.index(b"\r\n", 0)
    while msg[end + 2:end + 3] == b"\t":
        end = msg.index(b"\r\n", end + 2)
    raw = msg[:end + 2]
    return re.sub(rb"\r\n\t", b" ", raw[:-2]).decode(), raw


class ReceivedTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.server(BASIC)

    def send(self, verb, helo, rcpts, body=b"Subject: r\r\n\r\nx\r\n"):
        with self.srv.raw() as c:
            self.assertEqual(c.cmd("%s %s" % (verb, helo))[0], 250)
            c.cmd("MAIL FROM:<s@client.test>")
            for r in rcpts:
                self.assertEqual(c.cmd("RCPT TO:<%s>" % r)[0], 250)
            c.cmd("DATA")
            c.send(body + b".\r\n")
            code, lines = c.reply()
            self.assertEqual(code, 250)
            return re.search(r"queued as (\S+)", lines[0]).group(1)

    def check_date(self, text):
        date = text.rsplit(";", 1)[1].strip()
        when = email.utils.parsedate_to_datetime(date)
        self.assertIsNotNone(when.tzinfo, date)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLess(abs((now - when).total_seconds()), 300, date)

    def test_esmtp_one_recipient(self):
        qid = self.send("EHLO", "client.test", ["user@example.test"])
        msg = self.srv.message(qid)
        text, raw = received(msg)
        self.assertRegex(
            text, r"^Received: from client\.test \(unknown \[127\.0\.0\.1\]\)"
                  r" by mx\.example\.test \(Postern node [\w.-]+\) with ESMTP"
                  r" id %s for <user@example\.test>; .+$" % qid)
        self.check_date(text)
        # folded lines are <= 78 characters and the header is 7-bit
        for ln in raw.split(b"\r\n"):
            self.assertLessEqual(len(ln), 78, ln)
        raw.decode("ascii")
        # exactly one trace header of ours, then the message as sent
        self.assertEqual(msg.count(b"(Postern node "), 1)
        self.assertEqual(msg[len(raw):], b"Subject: r\r\n\r\nx\r\n")

    def test_smtp_and_several_recipients(self):
        qid = self.send("HELO", "old.client.test",
                        ["a@example.test", "b@example.test"])
        text, _ = received(self.srv.message(qid))
        self.assertRegex(
            text, r"^Received: from old\.client\.test \(unknown "
                  r"\[127\.0\.0\.1\]\) by mx\.example\.test \(Postern node "
                  r"[\w.-]+\) "
                  r"with SMTP id %s; .+$" % qid)
        # RFC 5321 4.4 / 7.2: no "for" with more than one recipient
        self.assertNotIn(" for ", text)
        self.check_date(text)

    def test_helo_cannot_inject_comments(self):
        qid = self.send("EHLO", "x)by.evil(", ["user@example.test"])
        text, _ = received(self.srv.message(qid))
        self.assertTrue(text.startswith(
            "Received: from x_by.evil_ (unknown [127.0.0.1])"), text)
        self.assertEqual(text.count("("), 2, text)

    def test_queue_id_everywhere(self):
        qid = self.send("EHLO", "client.test", ["user@example.test"])
        text, _ = received(self.srv.message(qid))
        self.assertIn(" id %s" % qid, text)
        self.assertEqual(self.srv.queue_ids(), [qid])
        self.assertIn("\nid %s\n" % qid, self.srv.envelope(qid))


class NodeNameTest(PstTestCase):
    """node_name (docs/SCALING.md): our Received: names the node in a
    comment -- RFC 5322's CFWS between the clauses, so the field keeps
    RFC 5321 4.4's syntax -- and so does every line of the log."""

    send = ReceivedTest.send

    def setUp(self):
        super().setUp()
        self.srv = self.server(BASIC.replace(
            "hostname mx.example.test;", "hostname %s;" % HOST),
            extra_top="node_name mx-a.node_1;")

    def test_received_and_log(self):
        qid = self.send("EHLO", "client.test", ["user@example.test"])
        text, raw = received(self.srv.message(qid))
        self.assertRegex(
            text, r"^Received: from client\.test \(unknown \[127\.0\.0\.1\]\)"
                  r" by %s \(Postern node mx-a\.node_1\) with ESMTP id %s"
                  r" for <user@example\.test>; .+$" % (re.escape(HOST), qid))
        # a long host name: "with" on a line of its own, none over 78
        self.assertIn(b"(Postern node mx-a.node_1)\r\n\twith ESMTP", raw)
        for ln in raw.split(b"\r\n"):
            self.assertLessEqual(len(ln), 78, ln)
        self.srv.wait_log(r"id=%s queued" % qid)
        lines = self.srv.log().splitlines()
        self.assertTrue(lines)
        for ln in lines:
            self.assertRegex(ln, r"^\S+Z mx-a\.node_1 postern\[\d+\] "
                                 r"\w+: \w+: ")

    def test_node_name_checked(self):
        for bad in ("-a", "a b", "a/b", "x" * 65, "caf\u00e9"):
            self.srv.write_conf(BASIC, extra_top="node_name \"%s\";" % bad)
            r = self.srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertRegex(r.stderr, r"postern\.conf:\d+: invalid"
                                       r" node_name \"")
        self.srv.write_conf(BASIC, extra_top="node_name %s;" % ("x" * 64))
        r = self.srv.run_tool("-T")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("node_name %s;" % ("x" * 64), r.stdout)
        # without it, the machine's host name, shown by -T
        self.srv.write_conf(BASIC)
        r = self.srv.run_tool("-T")
        self.assertIn('node_name "%s";' % socket.gethostname(), r.stdout)


HOST = "a-long-host-name-for-this-node.mx.example.test"


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(have_ipv6_loopback(), "no IPv6 loopback")
class ReceivedIPv6Test(PstTestCase):

    def test_ipv6_address_literal(self):
        srv = self.server(BASIC.replace("listen {port};",
                                        "listen {port}; listen [::1]:{portnum};"))
        with socket.create_connection(("::1", srv.port), timeout=10) as s:
            f = s.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 "))
            s.sendall(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
                      b"RCPT TO:<user@example.test>\r\nDATA\r\n")
            while not f.readline().startswith(b"354"):
                pass
            s.sendall(b"Subject: v6\r\n\r\nx\r\n.\r\n")
            self.assertTrue(f.readline().startswith(b"250 2.0.0"))
        qid = srv.queue_ids()[0]
        text, _ = received(srv.message(qid))
        # RFC 5321 4.1.3 / 4.4: "[IPv6:" IPv6-addr "]"
        self.assertTrue(text.startswith(
            "Received: from client.test (unknown [IPv6:::1])"), text)
        self.assertIn("\nclient-addr ::1\n", srv.envelope(qid))
        srv.wait_log(r"client=unknown\[::1\] id=%s queued" % qid)


class LogTest(PstTestCase):

    def test_per_message_log_line(self):
        srv = self.server(BASIC)
        body = b"Subject: logged\r\n\r\n" + b"y" * 1000 + b"\r\n"
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<s@client.test>")
            c.cmd("RCPT TO:<one@example.test>")
            c.cmd("RCPT TO:<two@example.test>")
            c.cmd("DATA")
            c.send(body + b".\r\n")
            qid = re.search(r"queued as (\S+)", c.reply()[1][0]).group(1)
        line = srv.wait_log(r"id=%s queued" % qid)[0]
        self.assertRegex(line, r"worker: notice: session=[0-9a-f]{12} "
                               r"client=unknown\[127\.0\.0\.1\] ")
        self.assertIn("from=<s@client.test>", line)
        self.assertIn("to=<one@example.test>,<two@example.test>", line)
        self.assertIn("nrcpt=2", line)
        # the size as stored (our Received: first), as queue list says
        stored = len(srv.message(qid))
        self.assertGreater(stored, len(body))
        self.assertIn("size=%d " % stored, line)
        self.assertIn("helo=<client.test>", line)
        self.assertIn("proto=ESMTP", line)
        self.assertIn("\nsize %d\n" % len(body), srv.envelope(qid))
        # without smtp_debug, no protocol trace
        self.assertNotIn("< MAIL FROM", srv.log())

    def test_smtp_debug(self):
        srv = self.server(DEBUG)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<s@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            c.send(b"Subject: private\r\n\r\nsecret body text\r\n.\r\n")
            c.reply()
            c.cmd("FOO bar")
            c.cmd("QUIT")
            self.assertTrue(c.closed())
        srv.wait_log(r"disconnect \(1 message\(s\)\)")
        log = srv.log()
        rx = r"session=([0-9a-f]{12}) client=\[127\.0\.0\.1\] %s$"
        expected = [
            "connect from 127.0.0.1 to 127.0.0.1:%d" % srv.port,
            "> 220 mx.example.test ESMTP Postern",
            "< EHLO client.test",
            "> 250-mx.example.test??250-PIPELINING",
            "< MAIL FROM:<s@client.test>",
            "> 250 2.1.0 Ok",
            "< RCPT TO:<user@example.test>",
            "> 250 2.1.5 Ok",
            "< DATA",
            "> 354 End data with <CR><LF>.<CR><LF>",
            "> 250 2.0.0 Ok: queued as ",
            "< FOO bar",
            "> 500 5.5.2 Error: command not recognized",
            "< QUIT",
            "> 221 2.0.0 Bye",
            "disconnect (1 message(s))",
        ]
        # in this order, all from the same session
        pos, session = 0, None
        lines = log.splitlines()
        for want in expected:
            for i in range(pos, len(lines)):
                m = re.search(rx % re.escape(want) if not want.endswith(
                    ("as ", "PIPELINING")) else
                    r"session=([0-9a-f]{12}) client=\[127\.0\.0\.1\] "
                    + re.escape(want), lines[i])
                if m and (session is None or m.group(1) == session):
                    if want.startswith("< EHLO"):
                        session = m.group(1)
                    pos = i + 1
                    break
            else:
                self.fail("no debug line %r after line %d in:\n%s"
                          % (want, pos, log))
        # the message itself is never logged
        self.assertNotIn("secret body text", log)


if __name__ == "__main__":
    unittest.main()
