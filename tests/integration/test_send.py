"""postern-send and postern-sendmail (issue 9) against real servers on
loopback: aiosmtpd (the received bytes parsed back with Python's email
package, attachments decoded and compared) and a Postern started by the
test.  Exit codes, TLS modes and verification, AUTH with a masked
trail, refused recipients, VRFY/EXPN, the queue with the server down
then up (and two runs at once), sendmail -t -i from a pipe and -bs, and
a 100 MB attachment with the peak RSS of the sender measured."""

import email
import email.policy
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import unittest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pstest import (DEFAULT_MODULES, OBJS, RUN, PstTestCase, free_port,
                    have, wait_for)
from psttls import Certs, TlsTestCase
# test cases without tests of their own: their helpers only
from test_auth import AuthCase
from test_auth_dovecot import DOVECOT, Dovecot

SEND = os.path.join(OBJS, "postern-send")
SENDMAIL = os.path.join(OBJS, "postern-sendmail")

EX_OK, EX_USAGE, EX_DATAERR, EX_NOINPUT = 0, 64, 65, 66
EX_NOUSER, EX_NOHOST, EX_UNAVAILABLE = 67, 68, 69
EX_IOERR, EX_TEMPFAIL, EX_PROTOCOL, EX_NOPERM = 74, 75, 76, 77


class Sink:
    """aiosmtpd handler: keeps every message; refuses recipients whose
    local part starts with "refuse" (550) or "later" (451)."""

    def __init__(self, eightbit=True):
        self.messages = []
        self.eightbit = eightbit
        self.later_ok = False
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        if not self.eightbit:
            responses = [r for r in responses if "8BITMIME" not in r]
        return responses

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        if address.startswith("refuse"):
            return "550 5.1.1 No such user here"
        if address.startswith("later") and not self.later_ok:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from,
                                  list(envelope.rcpt_tos),
                                  list(envelope.mail_options),
                                  list(envelope.rcpt_options),
                                  envelope.original_content))
        return "250 2.0.0 Ok: queued as SINK%d" % len(self.messages)


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == b"alice"
          and auth_data.password == b"s3cret-pw")
    return AuthResult(success=ok, handled=False)


class SendCase(PstTestCase):

    def setUp(self):
        super().setUp()
        self.dir = os.path.join(RUN, "send-" + self.id().split(".")[-1])
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.controllers = []

    def tearDown(self):
        for c in self.controllers:
            try:
                c.stop()
            except Exception:
                pass
        super().tearDown()

    def sink(self, host="127.0.0.1", port=None, eightbit=True, **kw):
        handler = Sink(eightbit)
        port = port or free_port()
        c = Controller(handler, hostname=host, port=port,
                       decode_data=False, **kw)
        c.start()
        self.controllers.append(c)
        handler.port = port
        handler.controller = c
        return handler

    def file(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def send(self, *args, stdin=None, env=None, prog=SEND, timeout=60):
        e = dict(os.environ)
        e.pop("POSTERN_PASSWORD", None)
        e.update(env or {})
        p = subprocess.run([prog] + list(args), input=stdin,
                           capture_output=True, timeout=timeout, env=e)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def parse(self, raw):
        return email.message_from_bytes(raw, policy=email.policy.default)

    @staticmethod
    def text(part):
        """A text part's content with the wire's CRLF as LF."""
        return part.get_content().replace("\r\n", "\n")


class Compose(SendCase):

    def test_mime_message_parsed_back(self):
        s = self.sink()
        pdf = os.urandom(150000)
        a1 = self.file("report.pdf", pdf)
        a2 = self.file("notes.txt", b"line one\nline two\n")
        html = self.file("body.html", b"<p>Hello <b>world</b></p>\n")
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--from", "J\u00f6rg M\u00fcller <jm@example.test>",
            "--to", "a@example.test, \"Doe, John\" <j@example.test>",
            "--cc", "c@example.test", "--bcc", "hidden@example.test",
            "--subject", "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 " + "x" * 90,
            "--reply-to", "replies@example.test",
            "--importance", "high", "--priority", "urgent",
            "--sensitivity", "private",
            "--read-receipt-to", "rr@example.test",
            "--header", "X-Mailer-Test: yes",
            "--body", "H\u00e9llo w\u00f6rld\nsecond line\n",
            "--html-file", html,
            "--attach", a1,
            "--attach", a2 + ";type=text/x-notes;name=r\u00e9sum\u00e9.txt")
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(len(s.messages), 1)
        sender, rcpts, mopts, ropts, raw = s.messages[0]
        self.assertEqual(sender, "jm@example.test")
        self.assertEqual(sorted(rcpts), sorted([
            "a@example.test", "j@example.test", "c@example.test",
            "hidden@example.test"]))
        self.assertIn("BODY=8BITMIME", mopts)
        header = raw.split(b"\r\n\r\n")[0]
        self.assertNotIn(b"hidden@", raw)
        # a Bcc field, not the letters: a random Message-ID can hold "bcc"
        self.assertIsNone(re.search(rb"(?im)^bcc:", header), header)
        for line in raw.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)
        m = self.parse(raw)
        self.assertEqual(m["Subject"],
                         "Gr\u00fc\u00dfe aus K\u00f6ln \u2014 " + "x" * 90)
        self.assertEqual(m["From"].addresses[0].display_name,
                         "J\u00f6rg M\u00fcller")
        self.assertEqual([a.addr_spec for a in m["To"].addresses],
                         ["a@example.test", "j@example.test"])
        self.assertEqual(m["To"].addresses[1].display_name, "Doe, John")
        self.assertEqual(m["Cc"], "c@example.test")
        self.assertEqual(m["Reply-To"], "replies@example.test")
        self.assertEqual(m["Importance"], "high")
        self.assertEqual(m["Priority"], "urgent")
        self.assertEqual(m["Sensitivity"], "private")
        self.assertEqual(m["Disposition-Notification-To"], "rr@example.test")
        self.assertEqual(m["X-Mailer-Test"], "yes")
        self.assertRegex(m["Message-ID"], r"^<[^<>@]+@example\.test>$")
        self.assertIsNotNone(m["Date"].datetime)
        self.assertEqual(m.get_content_type(), "multipart/mixed")
        parts = list(m.iter_parts())
        self.assertEqual(parts[0].get_content_type(), "multipart/alternative")
        alt = list(parts[0].iter_parts())
        self.assertEqual(self.text(alt[0]),
                         "H\u00e9llo w\u00f6rld\nsecond line\n")
        self.assertEqual(alt[1].get_content_type(), "text/html")
        self.assertIn("<b>world</b>", alt[1].get_content())
        self.assertEqual(parts[1].get_content_type(), "application/pdf")
        self.assertEqual(parts[1].get_filename(), "report.pdf")
        self.assertEqual(parts[1].get_payload(decode=True), pdf)
        self.assertEqual(parts[2].get_content_type(), "text/x-notes")
        self.assertEqual(parts[2].get_filename(), "r\u00e9sum\u00e9.txt")
        self.assertEqual(parts[2].get_payload(decode=True),
                         b"line one\nline two\n")
        self.assertIn("delivered", out)

    def test_print_is_what_would_be_sent(self):
        rc, out, err = self.send("--from", "a@example.test",
                                 "--to", "b@example.test", "--print",
                                 "--subject", "plain", "--body", "hi")
        self.assertEqual(rc, EX_OK, err)
        m = self.parse(out.encode())
        self.assertEqual(m.get_content_type(), "text/plain")
        self.assertEqual(m["Content-Transfer-Encoding"], "7bit")
        self.assertEqual(self.text(m), "hi\n")

    def test_no_8bitmime_means_quoted_printable(self):
        s = self.sink(eightbit=False)
        text = "Gr\u00fc\u00dfe\nshort lines only\nend\n"
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--from", "a@example.test", "--to", "b@example.test",
            "--body-file", "-", stdin=text.encode())
        self.assertEqual(rc, EX_OK, err)
        raw = s.messages[0][4]
        self.assertNotIn("BODY=8BITMIME", s.messages[0][2])
        self.assertTrue(all(b < 0x80 for b in raw), "8-bit bytes sent")
        m = self.parse(raw)
        self.assertEqual(m["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(self.text(m), text)

    def test_raw_no_8bitmime_means_quoted_printable(self):
        """--raw to a server without 8BITMIME: an 8-bit body goes
        quoted-printable when its MIME fields allow it; otherwise as it
        is, with a warning that says why."""
        s = self.sink(eightbit=False)
        text = "Gr\u00fc\u00dfe\nshort lines only\n"
        base = ["--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--raw", "-", "-t"]
        head = b"From: a@example.test\nTo: b@example.test\n"
        rc, out, err = self.send(*base, stdin=head + b"Subject: 8\n"
                                 b"Content-Type: text/plain; charset=utf-8\n"
                                 b"Content-Transfer-Encoding: 8bit\n\n"
                                 + text.encode())
        self.assertEqual(rc, EX_OK, err)
        self.assertNotIn("warning", err)
        _, _, mail_options, _, raw = s.messages[0]
        self.assertNotIn("BODY=8BITMIME", mail_options)
        self.assertTrue(all(b < 0x80 for b in raw), "8-bit bytes sent")
        m = self.parse(raw)
        self.assertEqual(m["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(m.get_content_charset(), "utf-8")
        self.assertEqual(self.text(m), text)
        # a multipart message cannot be: unchanged, and why
        multi = (head + b"Content-Type: multipart/mixed; boundary=b\n\n"
                 b"--b\n\n" + text.encode() + b"--b--\n")
        rc, out, err = self.send(*base, stdin=multi)
        self.assertEqual(rc, EX_OK, err)
        self.assertIn("8BITMIME", err)
        self.assertIn("multipart/mixed", err)
        self.assertEqual(s.messages[1][4], multi.replace(b"\n", b"\r\n"))

    def test_raw_8bit_header_without_smtputf8(self):
        """A ready message whose header has raw UTF-8, to a server
        without SMTPUTF8 (RFC 6532: only with it may a header be 8-bit):
        the unstructured fields (Subject, Comments, X-...) become RFC
        2047 words; any other field with 8-bit octets, or one that is
        not UTF-8, is refused with 65 and nothing is sent.  With
        SMTPUTF8 the header goes as it is, with the parameter."""
        subject = "Gr\u00fc\u00dfe aus K\u00f6ln " + "\u00e9t\u00e9 " * 30
        head = ("From: a@example.test\nTo: b@example.test\n"
                "Subject: %s\nX-Note: caf\u00e9\n"
                "\tsecond line\nContent-Type: text/plain; charset=utf-8\n"
                % subject).encode()
        body = "Gr\u00fc\u00dfe\n".encode()
        for eightbit in (False, True):
            s = self.sink(eightbit=eightbit, enable_SMTPUTF8=False)
            rc, out, err = self.send(
                "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--raw", "-", "-t", stdin=head + b"\n" + body)
            self.assertEqual(rc, EX_OK, err)
            self.assertNotIn("warning", err)
            _, _, mail_options, _, raw = s.messages[0]
            self.assertNotIn("SMTPUTF8", mail_options)
            hdr = raw.split(b"\r\n\r\n")[0]
            self.assertTrue(all(b < 0x80 for b in hdr), hdr)
            self.assertTrue(all(len(l) <= 78 for l in hdr.split(b"\r\n")))
            m = self.parse(raw)
            self.assertEqual(m["Subject"], subject.strip())
            self.assertEqual(m["X-Note"], "caf\u00e9\tsecond line")
            self.assertEqual(self.text(m), body.decode())
            # the body: 8bit with 8BITMIME, quoted-printable without
            self.assertEqual("BODY=8BITMIME" in mail_options, eightbit)
        # what cannot be encoded: 65, nothing sent
        s = self.sink(enable_SMTPUTF8=False)
        for bad, field in ((b"From: J\xc3\xbcrgen <a@example.test>\n"
                            b"To: b@example.test\n", b"From"),
                           (b"From: a@example.test\nTo: b@example.test\n"
                            b"Subject: K\xf6ln\n", b"Subject")):
            rc, out, err = self.send(
                "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--raw", "-", "-t", stdin=bad + b"\nx\n")
            self.assertEqual(rc, EX_DATAERR, err)
            self.assertIn(b"the " + field + b" field has 8-bit octets",
                          err.encode())
            self.assertIn("SMTPUTF8", err)
        self.assertEqual(s.messages, [])
        # and postern-sendmail the same (not kept for a later try)
        drop = os.path.join(self.dir, "drop")
        rc, out, err = self.send(
            "-t", "-i", prog=SENDMAIL, stdin=bad + b"\nx\n",
            env={"POSTERN_SERVER": "127.0.0.1:%d" % s.port,
                 "POSTERN_MAILDROP": drop})
        self.assertEqual(rc, EX_DATAERR, err)
        self.assertIn("the Subject field has 8-bit octets", err)
        self.assertFalse(os.path.exists(drop))
        self.assertEqual(s.messages, [])
        # a server with SMTPUTF8 takes it as it is
        s = self.sink(enable_SMTPUTF8=True)
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--raw", "-", "-t", stdin=head + b"\n" + body)
        self.assertEqual(rc, EX_OK, err)
        _, _, mail_options, _, raw = s.messages[0]
        self.assertIn("SMTPUTF8", mail_options)
        self.assertIn(subject.encode(), raw)

    def test_long_line_never_raw(self):
        s = self.sink()
        text = "a" * 3000 + "\nshort\n"
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--from", "a@example.test", "--to", "b@example.test",
            "--body", text)
        self.assertEqual(rc, EX_OK, err)
        raw = s.messages[0][4]
        self.assertLessEqual(max(len(x) for x in raw.split(b"\r\n")), 998)
        self.assertEqual(self.text(self.parse(raw)), text)

    def test_long_header_input_folded(self):
        """Header fields from long user input (a subject without a
        space, 300 recipients, a long field name and value, a long file
        name) never make a line over 998 octets and parse back the same;
        an address that cannot fit is a clear usage error."""
        s = self.sink()
        subject = "s" * 2000
        to = ["user%03d@example.test" % i for i in range(300)]
        name = "\u00e9" * 300 + ".txt"
        att = self.file("a.txt", b"attached\n")
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--from", "a@example.test", "--to", ",".join(to),
            "--subject", subject, "--header", "X-" + "n" * 120 + ": "
            + "v" * 898, "--attach", "%s;name=%s" % (att, name),
            "--body", "x")
        self.assertEqual(rc, EX_OK, err)
        raw = s.messages[0][4]
        self.assertLessEqual(max(len(x) for x in raw.split(b"\r\n")), 998)
        m = self.parse(raw)
        self.assertEqual(m["Subject"], subject)
        self.assertEqual(len(m["To"].addresses), 300)
        self.assertEqual(m["X-" + "n" * 120], "v" * 898)
        self.assertEqual([p.get_filename() for p in m.iter_attachments()],
                         [name])
        for bad in ("x" * 1000 + "@example.test",
                    "Name <%s@example.test>" % ("y" * 1000)):
            rc, out, err = self.send("--from", "a@example.test", "--to",
                                     bad, "--body", "x", "--print")
            self.assertEqual(rc, EX_USAGE, err)
            self.assertIn("cannot be folded", err)
            self.assertEqual(out, "")

    def test_smtputf8_address(self):
        s = self.sink(enable_SMTPUTF8=True)
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--from", "j\u00f6rg@example.test", "--to",
            "M\u00fcller <m\u00fcller@example.test>", "--body", "x")
        self.assertEqual(rc, EX_OK, err)
        sender, rcpts, mopts, _, raw = s.messages[0]
        self.assertIn("SMTPUTF8", mopts)
        self.assertEqual(rcpts, ["m\u00fcller@example.test"])
        # UTF-8 in the header as it is (RFC 6532): parsed as text
        m = email.message_from_string(raw.decode("utf-8"),
                                      policy=email.policy.default)
        self.assertEqual(m["To"].addresses[0].addr_spec,
                         "m\u00fcller@example.test")
        self.assertEqual(m["To"].addresses[0].display_name, "M\u00fcller")

    def test_raw_with_t(self):
        s = self.sink()
        msg = (b"From: Author <author@example.test>\n"
               b"To: one@example.test,\n two@example.test\n"
               b"Bcc: secret@example.test\n"
               b"Subject: ready\n\nbody\n.leading dot\n")
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--raw", "-", "-t", stdin=msg)
        self.assertEqual(rc, EX_OK, err)
        sender, rcpts, _, _, raw = s.messages[0]
        self.assertEqual(sender, "author@example.test")
        self.assertEqual(sorted(rcpts), ["one@example.test",
                                         "secret@example.test",
                                         "two@example.test"])
        self.assertNotIn(b"secret", raw)
        self.assertEqual(raw, msg.replace(b"Bcc: secret@example.test\n", b"")
                         .replace(b"\n", b"\r\n"))

    def test_raw_long_line_quoted_printable(self):
        """A body line over 998 octets (RFC 5322 2.1.1): the body goes
        quoted-printable, which gives the same text back."""
        s = self.sink()
        body = ("x" * 1200 + " caf\u00e9 = end \nshort\n").encode()
        msg = (b"From: a@example.test\nTo: b@example.test\n"
               b"Subject: long\n\n" + body)
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
            "--raw", "-", "-t", stdin=msg)
        self.assertEqual(rc, EX_OK, err)
        _, rcpts, mail_options, _, raw = s.messages[0]
        self.assertEqual(rcpts, ["b@example.test"])
        self.assertLessEqual(max(len(x) for x in raw.split(b"\r\n")), 76)
        self.assertNotIn("BODY=8BITMIME", mail_options)
        m = self.parse(raw)
        self.assertEqual(m["MIME-Version"], "1.0")
        self.assertEqual(m["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(m.get_content_type(), "text/plain")
        self.assertEqual(m.get_content_charset(), "utf-8")
        self.assertEqual(self.text(m), body.decode())

    def test_raw_line_too_long(self):
        """A MIME structure that the body's encoding cannot change, or a
        header line: 65, and why."""
        for head, why in (
                (b"Content-Type: multipart/mixed; boundary=b\n\n",
                 "multipart/mixed"),
                (b"Content-Transfer-Encoding: base64\n\n", "base64"),
                (b"X-Long: " + b"h" * 1000 + b"\n\n", "header line")):
            path = self.file("m.eml", b"Subject: x\n" + head + b"y" * 1200
                             + b"\n")
            rc, out, err = self.send("--raw", path, "--to", "b@example.test",
                                     "--from", "a@example.test", "--print")
            self.assertEqual(rc, EX_DATAERR, err)
            self.assertIn("998", err)
            self.assertIn(why, err)
            self.assertEqual(out, "")


class Progress(SendCase):

    def test_progress_on_a_terminal_only(self):
        import pty
        s = self.sink()
        att = self.file("a.bin", os.urandom(3 << 20))
        args = [SEND, "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--from", "a@example.test", "--to", "b@example.test",
                "--attach", att, "--progress"]
        master, slave = pty.openpty()
        try:
            p = subprocess.run(args, stderr=slave, stdout=subprocess.PIPE,
                               timeout=60)
            os.close(slave)
            slave = None
            got = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                got += chunk
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        self.assertEqual(p.returncode, EX_OK)
        self.assertRegex(got, rb"\rpostern-send: 4\.\d MiB of 4\.\d MiB "
                              rb"sent \(100%\)")
        # not a terminal: no progress line
        rc, out, err = self.send(*args[1:])
        self.assertEqual(rc, EX_OK, err)
        self.assertNotIn("MiB", err)


class Transport(SendCase):

    def test_greeting_timeout(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)         # connects, never greets
        try:
            rc, out, err = self.send(
                "--server", "127.0.0.1:%d" % lsock.getsockname()[1],
                "--timeout", "300ms", "--from", "a@example.test",
                "--to", "b@example.test", "--body", "x")
        finally:
            lsock.close()
        self.assertEqual(rc, EX_PROTOCOL, err)
        self.assertIn("greeting", err)

    def test_local_address_and_helo(self):
        peers = []

        class Peer(Sink):
            async def handle_EHLO(self, server, session, envelope, hostname,
                                  responses):
                peers.append((session.peer[0], hostname))
                session.host_name = hostname
                return responses

        handler = Peer()
        port = free_port()
        c = Controller(handler, hostname="127.0.0.1", port=port,
                       decode_data=False)
        c.start()
        self.controllers.append(c)
        rc, out, err = self.send("--server", "127.0.0.1:%d" % port,
                                 "--tls", "none", "--local-address",
                                 "127.0.0.2", "--helo", "me.example.test",
                                 "--from", "a@example.test",
                                 "--to", "b@example.test", "--body", "x")
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(peers, [("127.0.0.2", "me.example.test")])


class Usage(SendCase):

    def test_usage_errors(self):
        for args in ([], ["--to", "a@example.test"],
                     ["--from", "a@b", "--to", "x@y", "--tls", "sometimes"],
                     ["--from", "a@b", "--to", "x@y", "--importance", "max"],
                     ["--from", "a@b", "--to", "x@y", "--bogus"],
                     ["--from", "a@b", "--to", "x@y", "--timeout", "soon"],
                     ["--from", "a@b", "--to", "x@y", "--cert", "c.pem"],
                     ["--from", "a@b", "--to", "x@y", "--header", "NoColon"],
                     ["--from", "a@b", "--to", "bad address@x", "--print"],
                     ["--from", "a@b", "--to", "x@y", "--password", "pw"]):
            rc, out, err = self.send(*args)
            self.assertEqual(rc, EX_USAGE, (args, err))
            self.assertIn("postern-send:", err)

    def test_help(self):
        rc, out, err = self.send("--help")
        self.assertEqual(rc, EX_OK)
        self.assertIn("Exit codes", out)
        self.assertIn("--attach", out)

    def test_local_io_error(self):
        rc, out, err = self.send("--queue", "/proc/no/such/dir",
                                 "--from", "a@b.test", "--to", "c@d.test",
                                 "--body", "x")
        self.assertEqual(rc, EX_IOERR, err)
        self.assertIn("/proc/no/such/dir", err)

    def test_missing_attachment(self):
        rc, out, err = self.send("--from", "a@b.test", "--to", "c@d.test",
                                 "--attach", "/nonexistent/file.pdf",
                                 "--print")
        self.assertEqual(rc, EX_NOINPUT)
        self.assertIn("/nonexistent/file.pdf", err)
        self.assertEqual(out, "")

    def test_connection_refused_and_unknown_host(self):
        rc, out, err = self.send("--server", "127.0.0.1:%d" % free_port(),
                                 "--from", "a@b.test", "--to", "c@d.test",
                                 "--body", "x")
        self.assertEqual(rc, EX_PROTOCOL, err)
        rc, out, err = self.send("--server", "no-such-host.invalid",
                                 "--from", "a@b.test", "--to", "c@d.test",
                                 "--body", "x")
        self.assertEqual(rc, EX_NOHOST, err)


class Recipients(SendCase):

    def base(self, s, *extra):
        return ["--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--from", "a@example.test", "--body", "x"] + list(extra)

    def test_some_refused(self):
        s = self.sink()
        rc, out, err = self.send(*self.base(
            s, "--to", "ok@example.test, refuse@example.test", "--json"))
        self.assertEqual(rc, EX_UNAVAILABLE, err)
        self.assertEqual(s.messages[0][1], ["ok@example.test"])
        res = json.loads(out)
        self.assertEqual(res["exit"], EX_UNAVAILABLE)
        self.assertEqual(res["queue_id"], "SINK1")
        r = {x["address"]: x for x in res["recipients"]}
        self.assertTrue(r["ok@example.test"]["accepted"])
        self.assertEqual(r["refuse@example.test"]["code"], 550)
        self.assertEqual(r["refuse@example.test"]["enhanced_code"], "5.1.1")
        self.assertIn("No such user", r["refuse@example.test"]["text"])
        self.assertFalse(r["refuse@example.test"]["accepted"])

    def test_all_refused(self):
        s = self.sink()
        rc, out, err = self.send(*self.base(s, "--to", "refuse@example.test"))
        self.assertEqual(rc, EX_NOUSER, err)
        self.assertIn("refuse@example.test>: refused: 550 5.1.1", out)
        self.assertEqual(s.messages, [])

    def test_temporary(self):
        s = self.sink()
        rc, out, err = self.send(*self.base(s, "--to", "later@example.test"))
        self.assertEqual(rc, EX_TEMPFAIL, err)
        self.assertIn("deferred: 451", out)

    def test_stop_on_rcpt_error(self):
        s = self.sink()
        rc, out, err = self.send(*self.base(
            s, "--to", "ok@example.test,refuse@example.test",
            "--stop-on-rcpt-error", "-v"))
        self.assertEqual(rc, EX_NOUSER, err)
        self.assertEqual(s.messages, [])
        self.assertIn("C: RSET", err)
        self.assertNotIn("C: DATA", err)
        self.assertIn("not sent", out)
        # and with every recipient good, it is sent once
        rc, out, err = self.send(*self.base(
            s, "--to", "ok@example.test", "--stop-on-rcpt-error"))
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(len(s.messages), 1)

    def test_dsn_parameters(self):
        srv = self.server("""
smtp { server { listen {port}; local_domains example.test; } }
""")
        rc, out, err = self.send(
            "--server", "127.0.0.1:%d" % srv.port, "--tls", "none", "-v",
            "--from", "a@client.test", "--to", "u@example.test",
            "--notify", "SUCCESS,FAILURE", "--ret", "HDRS",
            "--envid", "id+1", "--body", "dsn")
        self.assertEqual(rc, EX_OK, err)
        self.assertRegex(err, r"C: MAIL FROM:<a@client.test>.* RET=HDRS "
                              r"ENVID=id\+2B1")
        self.assertIn("C: RCPT TO:<u@example.test> NOTIFY=SUCCESS,FAILURE "
                      "ORCPT=rfc822;u@example.test", err)

    def test_verify_expand(self):
        s = self.sink()
        rc, out, err = self.send("--server", "127.0.0.1:%d" % s.port,
                                 "--tls", "none", "--verify",
                                 "someone@example.test", "--expand", "list",
                                 "--json")
        res = json.loads(out)
        self.assertEqual(res["verify"][0]["argument"], "someone@example.test")
        self.assertEqual(res["verify"][0]["code"], 252)
        self.assertEqual(res["expand"][0]["code"], 502)
        self.assertEqual(rc, EX_NOUSER)


class Auth(SendCase):

    def test_trail_masks_secrets(self):
        s = self.sink(authenticator=authenticator, auth_require_tls=False)
        for mech in ("PLAIN", "LOGIN"):
            rc, out, err = self.send(
                "--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--auth", mech, "--user", "alice", "-v",
                "--from", "a@example.test", "--to", "b@example.test",
                "--body", "authenticated",
                env={"POSTERN_PASSWORD": "s3cret-pw"})
            self.assertEqual(rc, EX_OK, err)
            self.assertIn("C: AUTH %s" % mech, err)
            self.assertIn("********", err)
            self.assertNotIn("s3cret-pw", err)
            for secret in (b"\0alice\0s3cret-pw", b"s3cret-pw"):
                import base64
                self.assertNotIn(base64.b64encode(secret).decode(), err)
            self.assertIn("S: 235", err)
            for line in err.splitlines():
                if line.startswith(("C:", "S:")):
                    continue
                self.assertTrue(line.startswith("postern-send:"), line)

    def test_xoauth2(self):
        import base64

        class XOAuth(Sink):
            async def auth_XOAUTH2(self, server, args):
                if (len(args) == 2 and base64.b64decode(args[1])
                        == b"user=alice\x01auth=Bearer tok-123\x01\x01"):
                    return AuthResult(success=True)
                await server.challenge_auth(b'{"status":"401"}')
                return AuthResult(success=False, handled=True)

        handler = XOAuth()
        port = free_port()
        c = Controller(handler, hostname="127.0.0.1", port=port,
                       decode_data=False, auth_require_tls=False)
        c.start()
        self.controllers.append(c)
        base = ["--server", "127.0.0.1:%d" % port, "--tls", "none", "-v",
                "--auth", "XOAUTH2", "--user", "alice", "--from",
                "a@example.test", "--to", "b@example.test", "--body", "x"]
        rc, out, err = self.send(*base, "--password-command", "echo tok-123")
        self.assertEqual(rc, EX_OK, err)
        self.assertIn("C: AUTH XOAUTH2 ********", err)
        self.assertNotIn("tok-123", err)
        self.assertNotIn(base64.b64encode(
            b"user=alice\x01auth=Bearer tok-123\x01\x01").decode(), err)
        rc, out, err = self.send(*base, "--password-command", "echo expired")
        self.assertEqual(rc, EX_NOPERM, err)
        self.assertIn('XOAUTH2 refused: {"status":"401"}', err)
        self.assertIn("C: *", err)
        self.assertEqual(len(handler.messages), 1)
        # never a token in clear unless --tls none says so
        rc, out, err = self.send(*[a for a in base if a not in ("--tls",
                                                                "none")],
                                 "--password-command", "echo tok-123")
        self.assertEqual(rc, EX_NOPERM, err)
        self.assertIn("not encrypted", err)
        self.assertEqual(len(handler.messages), 1)

    def test_password_sources_and_failure(self):
        s = self.sink(authenticator=authenticator, auth_require_tls=False)
        pw = self.file("pw", b"s3cret-pw\n")
        base = ["--server", "127.0.0.1:%d" % s.port, "--tls", "none",
                "--auth", "PLAIN", "--user", "alice",
                "--from", "a@example.test", "--to", "b@example.test",
                "--body", "x"]
        rc, out, err = self.send(*base, "--password-file", pw)
        self.assertEqual(rc, EX_OK, err)
        rc, out, err = self.send(*base, "--password-command", "echo s3cret-pw")
        self.assertEqual(rc, EX_OK, err)
        rc, out, err = self.send(*base, "--password", "s3cret-pw")
        self.assertEqual(rc, EX_OK, err)
        self.assertIn("warning", err)
        rc, out, err = self.send(*base, "--password", "wrong")
        self.assertEqual(rc, EX_NOPERM, err)
        rc, out, err = self.send(*base)
        self.assertEqual(rc, 78, err)
        self.assertIn("POSTERN_PASSWORD", err)
        self.assertEqual(len(s.messages), 3)


class PosternAuth(AuthCase):
    """Each mechanism against Postern's submission listener (auth_file,
    STARTTLS, the certificate verified against the test's CA)."""

    def run_send(self, srv, *args, password="wonderland"):
        pw = os.path.join(srv.dir, "pw")
        with open(pw, "w") as f:
            f.write(password + "\n")
        p = subprocess.run([SEND, "--server", "127.0.0.1:%d" % srv.ports[1],
                            "--tls", "starttls", "--ca-file", self.ca.cert,
                            "--tls-name", "mx.example.test",
                            "--user", "alice", "--password-file", pw,
                            "--from", "alice@example.test",
                            "--to", "u@example.test", "--body", "hi", "-v"]
                           + list(args), capture_output=True, timeout=60)
        return p.returncode, p.stderr.decode()

    def test_each_mechanism(self):
        srv = self.auth_server(
            extra="auth_mechanisms PLAIN LOGIN SCRAM-SHA-256;")
        for i, mech in enumerate(("PLAIN", "LOGIN", "SCRAM-SHA-256",
                                  "auto")):
            rc, err = self.run_send(srv, "--auth", mech)
            self.assertEqual(rc, EX_OK, err)
            self.assertIn("S: 235", err)
            self.assertNotIn("wonderland", err)
            self.assertEqual(srv.queue_count(), i + 1)
        # auto prefers SCRAM
        self.assertIn("C: AUTH SCRAM-SHA-256", err)
        rc, err = self.run_send(srv, "--auth", "PLAIN", password="wrong")
        self.assertEqual(rc, EX_NOPERM, err)
        self.assertIn("535", err)
        self.assertEqual(srv.queue_count(), 4)


@unittest.skipUnless(os.path.exists(DOVECOT) and os.geteuid() == 0,
                     "dovecot-core missing or not root")
class DovecotAuth(TlsTestCase):
    """Postern's submission listener with auth_dovecot: each mechanism
    from postern-send, checked by a real Dovecot."""

    def test_each_mechanism_through_dovecot(self):
        name = self.id().split(".", 1)[-1].replace(".", "_")
        dovecot = Dovecot(os.path.join(self.pki.dir, "..",
                                       name + "-dovecot"),
                          [("alice", "SCRAM-SHA-256", "wonderland"),
                           ("bob", "SHA512-CRYPT", "builder")])
        self._peers.append(dovecot)
        srv = self.server("""
smtp {
    hostname mx.example.test;
    tls_certificate %s; tls_certificate_key %s;
    auth_dovecot_socket unix:%s;
    auth_failure_delay 0;
    auth_mechanisms PLAIN LOGIN SCRAM-SHA-256;
    server { listen {port}; listen {port2} submission;
             local_domains example.test; }
}
""" % (self.crt, self.key, dovecot.socket),
            modules=DEFAULT_MODULES + ("auth_dovecot",))
        n = 0
        for user, password, mech, want in (
                ("bob", "builder", "PLAIN", EX_OK),
                ("bob", "builder", "LOGIN", EX_OK),
                ("alice", "wonderland", "SCRAM-SHA-256", EX_OK),
                ("alice", "wonderland", "auto", EX_OK),
                ("bob", "wrong", "PLAIN", EX_NOPERM)):
            p = subprocess.run(
                [SEND, "--server", "127.0.0.1:%d" % srv.ports[1],
                 "--tls", "starttls", "--ca-file", self.ca.cert,
                 "--tls-name", "mx.example.test", "--auth", mech,
                 "--user", user, "--from", user + "@example.test",
                 "--to", "u@example.test", "--body", mech],
                env=dict(os.environ, POSTERN_PASSWORD=password),
                capture_output=True, timeout=60)
            self.assertEqual(p.returncode, want, (mech, p.stderr))
            n += want == EX_OK
        self.assertEqual(srv.queue_count(), n)


class SmtpSink(SendCase):

    @unittest.skipUnless(have("smtp-sink"), "postfix's smtp-sink missing")
    def test_postfix_smtp_sink(self):
        port = free_port()
        sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c",
                                 "127.0.0.1:%d" % port, "10"],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        try:
            def up():
                try:
                    socket.create_connection(("127.0.0.1", port), 1).close()
                    return True
                except OSError:
                    return False
            wait_for(up, what="smtp-sink")
            rc, out, err = self.send(
                "--server", "127.0.0.1:%d" % port, "--tls", "none",
                "--from", "a@example.test", "--to", "b@example.test,"
                "c@example.test", "--attach", SEND, "--json")
            self.assertEqual(rc, EX_OK, err)
            res = json.loads(out)
            self.assertEqual([r["code"] for r in res["recipients"]],
                             [250, 250])
        finally:
            sink.terminate()
            sink.communicate(timeout=10)


class Tls(SendCase):

    def setUp(self):
        super().setUp()
        self.certs = Certs(os.path.join(self.dir, "pki"))
        self.ca = self.certs.ca()
        self.crt, self.key = self.certs.issue("mx", "localhost", ca=self.ca,
                                              sans=["DNS:localhost"])

    def context(self):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.crt, self.key)
        return ctx

    def test_starttls_verified_and_refused(self):
        s = self.sink(tls_context=self.context())
        base = ["--server", "localhost:%d" % s.port, "--from",
                "a@example.test", "--to", "b@example.test", "--body", "x",
                "--json"]
        # default: STARTTLS when offered, verified -- unknown CA fails
        rc, out, err = self.send(*base)
        self.assertEqual(rc, EX_PROTOCOL, err + out)
        self.assertEqual(s.messages, [])
        rc, out, err = self.send(*base, "--ca-file", self.ca.cert)
        self.assertEqual(rc, EX_OK, err)
        res = json.loads(out)
        self.assertTrue(res["tls"])
        self.assertTrue(res["tls_verified"])
        rc, out, err = self.send(*base, "--insecure", "--tls", "starttls")
        self.assertEqual(rc, EX_OK, err)
        self.assertFalse(json.loads(out)["tls_verified"])
        self.assertEqual(len(s.messages), 2)

    def test_ip_literal_no_sni_and_ip_san(self):
        """--server with an IP address: no SNI (RFC 6066 3), and the
        address checked against the certificate's iPAddress names,
        never its DNS names; the relay's "[addr]" and "[IPv6:addr]"
        names the same."""
        seen = []

        def sink(sans, host="127.0.0.1"):
            crt, key = self.certs.issue("s%d" % len(self.controllers),
                                        "localhost", ca=self.ca, sans=sans)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(crt, key)
            ctx.sni_callback = lambda sock, name, c: seen.append(name)
            return self.sink(host=host, tls_context=ctx)

        def send(server, *more):
            del seen[:]
            rc, out, err = self.send(
                "--server", server, "--tls", "starttls", "--ca-file",
                self.ca.cert, "--from", "a@example.test", "--to",
                "b@example.test", "--body", "x", "--json", *more)
            if rc == EX_OK:
                self.assertTrue(json.loads(out)["tls_verified"])
            return rc, err

        ip = sink(["DNS:localhost", "IP:127.0.0.1"])
        rc, err = send("127.0.0.1:%d" % ip.port)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(seen, [None])
        for name in ("[127.0.0.1]",):
            rc, err = send("localhost:%d" % ip.port, "--tls-name", name)
            self.assertEqual((rc, seen), (EX_OK, [None]), err)
        # a host name: SNI, and the DNS names ("[name]": the brackets go)
        for name in ("localhost", "[localhost]"):
            rc, err = send("127.0.0.1:%d" % ip.port, "--tls-name", name)
            self.assertEqual((rc, seen), (EX_OK, ["localhost"]), err)
        self.assertEqual(len(ip.messages), 4)

        # the address in a DNS name, or not at all: not verified
        for sans in (["DNS:localhost"], ["DNS:127.0.0.1"],
                     ["DNS:localhost", "IP:127.0.0.2"]):
            other = sink(sans)
            rc, err = send("127.0.0.1:%d" % other.port)
            self.assertEqual(rc, EX_PROTOCOL, err)
            self.assertEqual(other.messages, [])

        v6 = sink(["DNS:localhost", "IP:::1"], host="::1")
        for server, name in (("[::1]:%d", None), ("[::1]:%d", "[IPv6:::1]"),
                             ("[::1]:%d", "[::1]")):
            rc, err = send(server % v6.port,
                           *(["--tls-name", name] if name else []))
            self.assertEqual((rc, seen), (EX_OK, [None]), err)
        rc, err = send("[::1]:%d" % v6.port, "--tls-name", "[127.0.0.1]")
        self.assertEqual(rc, EX_PROTOCOL, err)

    def test_client_certificate(self):
        ccrt, ckey = self.certs.issue("client", "client.example.test",
                                      ca=self.ca, client=True)
        ctx = self.context()
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(self.ca.cert)
        s = self.sink(tls_context=ctx, require_starttls=True)
        base = ["--server", "localhost:%d" % s.port, "--tls", "starttls",
                "--ca-file", self.ca.cert, "--from", "a@example.test",
                "--to", "b@example.test", "--body", "x"]
        rc, out, err = self.send(*base)
        self.assertEqual(rc, EX_PROTOCOL, err)
        rc, out, err = self.send(*base, "--cert", ccrt, "--key", ckey)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(len(s.messages), 1)
        rc, out, err = self.send(*base, "--cert", ccrt, "--key", "/nonexistent")
        self.assertEqual(rc, EX_USAGE, err)
        self.assertIn("TLS", err)

    def test_tls_required_without_starttls(self):
        s = self.sink()
        rc, out, err = self.send("--server", "127.0.0.1:%d" % s.port,
                                 "--tls", "starttls", "--from", "a@e.test",
                                 "--to", "b@e.test", "--body", "x")
        self.assertEqual(rc, EX_PROTOCOL, err)
        self.assertIn("STARTTLS", err)
        self.assertEqual(s.messages, [])

    def test_implicit_tls_with_postern(self):
        srv = self.server("""
smtp {
    tls_certificate %s; tls_certificate_key %s;
    server { listen {port}; listen {port2} tls; local_domains example.test; }
}
""" % (self.crt, self.key))
        srv.wait_ready()
        rc, out, err = self.send(
            "--server", "localhost:%d" % srv.ports[1], "--tls", "implicit",
            "--ca-file", self.ca.cert, "--from", "a@client.test",
            "--to", "u@example.test", "--body", "over tls", "--json")
        self.assertEqual(rc, EX_OK, err)
        res = json.loads(out)
        self.assertTrue(res["tls_verified"])
        self.assertEqual(srv.queue_count(), 1)


class Postern(SendCase):

    def test_to_postern_ipv4_and_ipv6(self):
        v6 = free_port()
        srv = self.server("""
smtp { server { listen {port}; listen [::1]:%d;
                local_domains example.test; } }
""" % v6)
        data = os.urandom(70000)
        att = self.file("data.bin", data)
        for server in ("127.0.0.1:%d" % srv.port, "[::1]:%d" % v6):
            rc, out, err = self.send(
                "--server", server, "--tls", "none",
                "--from", "a@client.test", "--to", "u@example.test",
                "--subject", "to postern", "--body", "see attached",
                "--attach", att, "--json", "--helo", "client.example.test")
            self.assertEqual(rc, EX_OK, err)
            res = json.loads(out)
            self.assertTrue(res["server"].endswith(server.split(":")[-1]),
                            res["server"])
            qid = res["queue_id"]
            self.assertIn(qid, srv.queue_ids())
            m = self.parse(srv.message(qid))
            self.assertEqual(m["Subject"], "to postern")
            self.assertIn("client.example.test", m["Received"])
            att_part = list(m.iter_attachments())[0]
            self.assertEqual(att_part.get_payload(decode=True), data)
        self.assertEqual(srv.queue_count(), 2)

    def test_sendmail_default_configuration(self):
        """Without -C or $POSTERN_CONF the injector reads the server's
        own default configuration (postern -V), not a path under the
        build tree's layout."""
        v = subprocess.run([os.path.join(OBJS, "postern"), "-V"],
                           capture_output=True, text=True, timeout=30)
        path = re.search(r"paths: configuration (\S+),",
                         v.stdout + v.stderr).group(1)
        env = {k: x for k, x in os.environ.items()
               if k not in ("POSTERN_CONF", "POSTERN_SERVER")}
        p = subprocess.run([SENDMAIL, "-f", "a@example.test",
                            "b@example.test"], input=b"Subject: x\n\nx\n",
                           capture_output=True, timeout=30, env=env)
        if os.path.exists(path):
            self.skipTest("%s exists on this machine" % path)
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn(("%s: No such file" % path).encode(), p.stderr)

    def test_sendmail_bp_and_dsn_flags(self):
        srv = self.server("""
smtp { server { listen {port}; local_domains example.test; } }
""")
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-v", "-N",
                            "FAILURE,DELAY", "-R", "HDRS", "-V", "env-1",
                            "-f", "sender@client.test", "u@example.test"],
                           input=b"Subject: dsn\n\nx\n", capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"NOTIFY=FAILURE,DELAY ORCPT=rfc822;u@example.test",
                      p.stderr)
        self.assertIn(b"RET=HDRS ENVID=env-1", p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="a queued message")[0]
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-bp"],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(qid.encode(), p.stdout)
        self.assertIn(b"u@example.test", p.stdout)
        # mailq's format, for the scripts written for it
        self.assertTrue(p.stdout.startswith(b"----Queue ID----- --Size-- "),
                        p.stdout)
        self.assertTrue(p.stdout.endswith(b" Kbytes in 1 Request.\n"),
                        p.stdout)
        # installed as mailq, the configuration from $POSTERN_CONF only:
        # the same listing, of the spool the injector feeds
        mailq = os.path.join(self.dir, "mailq")
        os.symlink(SENDMAIL, mailq)
        env = {k: x for k, x in os.environ.items()
               if k not in ("POSTERN_CONF", "POSTERN_SERVER")}
        q = subprocess.run([mailq], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL,
                           env=dict(env, POSTERN_CONF=srv.conffile))
        self.assertEqual((q.returncode, q.stdout), (0, p.stdout), q.stderr)


class Queue(SendCase):

    def test_queue_down_then_up(self):
        q = os.path.join(self.dir, "q")
        port = free_port()
        for i in range(3):
            rc, out, err = self.send("--queue", q, "--from", "a@example.test",
                                     "--to", "b%d@example.test" % i,
                                     "--subject", "queued %d" % i,
                                     "--body", "queued")
            self.assertEqual(rc, EX_OK, err)
            self.assertIn("queued as", out)
        self.assertEqual(len([f for f in os.listdir(q)
                              if f.endswith(".env")]), 3)
        # the server is down: nothing lost, the reason kept
        rc, out, err = self.send("--process-queue", q, "--server",
                                 "127.0.0.1:%d" % port, "--tls", "none")
        self.assertEqual(rc, EX_PROTOCOL, err)
        self.assertEqual(len([f for f in os.listdir(q)
                              if f.endswith(".err")]), 3)
        s = self.sink(port=port)
        rc, out, err = self.send("--process-queue", q, "--server",
                                 "127.0.0.1:%d" % port, "--tls", "none")
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(sorted(m[1][0] for m in s.messages),
                         ["b0@example.test", "b1@example.test",
                          "b2@example.test"])
        self.assertEqual(os.listdir(q), [])

    def test_process_queue_raw_no_8bitmime(self):
        """A queued --raw message with an 8-bit body, sent later to a
        server without 8BITMIME, goes quoted-printable as a direct send
        does; ID.eml itself is not changed."""
        q = os.path.join(self.dir, "q")
        text = "Gr\u00fc\u00dfe\nshort lines only\n"
        raw = (b"From: a@example.test\nTo: b@example.test\nSubject: 8\n"
               b"Content-Type: text/plain; charset=utf-8\n"
               b"Content-Transfer-Encoding: 8bit\n\n" + text.encode())
        rc, out, err = self.send("--queue", q, "--raw", "-", "-t",
                                 stdin=raw)
        self.assertEqual(rc, EX_OK, err)
        eml = [f for f in os.listdir(q) if f.endswith(".eml")][0]
        with open(os.path.join(q, eml), "rb") as f:
            queued = f.read()
        s = self.sink(eightbit=False)
        rc, out, err = self.send("--process-queue", q, "--keep", "--server",
                                 "127.0.0.1:%d" % s.port, "--tls", "none")
        self.assertEqual(rc, EX_OK, err)
        self.assertNotIn("warning", err)
        _, _, mail_options, _, sent = s.messages[0]
        self.assertNotIn("BODY=8BITMIME", mail_options)
        self.assertTrue(all(b < 0x80 for b in sent), "8-bit bytes sent")
        m = self.parse(sent)
        self.assertEqual(m["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(m.get_content_charset(), "utf-8")
        self.assertEqual(self.text(m), text)
        with open(os.path.join(q, eml), "rb") as f:
            self.assertEqual(f.read(), queued)

    def test_queue_json_is_escaped(self):
        """--queue --json: the directory (a quote, a backslash, a
        control character, a byte that is not UTF-8) comes out as a
        JSON string that parses back to the same path."""
        q = os.path.join(self.dir, 'q"\\\tx\udcff')
        rc, out, err = self.send("--queue", q, "--json",
                                 "--from", "a@example.test",
                                 "--to", '"o\\"q"@example.test',
                                 "--body", "queued")
        self.assertEqual(rc, EX_OK, err)
        res = json.loads(out)
        self.assertEqual(res["directory"], q.replace("\udcff", "\ufffd"))
        self.assertTrue(os.path.exists(
            os.path.join(q, res["queued"] + ".env")))

    def test_failure_before_connecting_keeps_the_message(self):
        """A run that fails before it connects (here a CA file that does
        not exist) keeps the queued message and says why; it used to be
        deleted as if sent."""
        q = os.path.join(self.dir, "q")
        rc, out, err = self.send("--queue", q, "--from", "a@example.test",
                                 "--to", "b@example.test", "--body", "x")
        self.assertEqual(rc, EX_OK, err)
        rc, out, err = self.send("--process-queue", q, "--server",
                                 "127.0.0.1:%d" % free_port(),
                                 "--ca-file", os.path.join(self.dir, "nope"))
        self.assertNotEqual(rc, EX_OK, err)
        names = os.listdir(q)
        self.assertEqual(len([f for f in names if f.endswith(".env")]), 1,
                         names)
        self.assertEqual(len([f for f in names if f.endswith(".eml")]), 1,
                         names)
        self.assertEqual(len([f for f in names if f.endswith(".err")]), 1,
                         names)

    def test_partial_retry_then_failed(self):
        q = os.path.join(self.dir, "q")
        s = self.sink()
        rc, out, err = self.send("--queue", q, "--from", "a@example.test",
                                 "--to", "ok@example.test,later@example.test,"
                                 "refuse@example.test", "--body", "x")
        self.assertEqual(rc, EX_OK, err)
        qid = out.split()[2]
        argv = ["--process-queue", q, "--server", "127.0.0.1:%d" % s.port,
                "--tls", "none"]
        rc, out, err = self.send(*argv)
        self.assertEqual(rc, EX_UNAVAILABLE, err)

        def envelope(ext):
            with open(os.path.join(q, qid + ext)) as f:
                return f.read()
        self.assertEqual([l for l in envelope(".env").splitlines()
                          if l.startswith("rcpt ")], ["rcpt later@example.test"])
        self.assertIn("refused refuse@example.test 550 5.1.1 No such user",
                      envelope(".env"))
        self.assertIn("451", envelope(".err"))
        rc, out, err = self.send(*argv)
        self.assertEqual(rc, EX_TEMPFAIL, err)
        # accepted at last: finished, and kept as failed for the human
        s.later_ok = True
        rc, out, err = self.send(*argv)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(sorted(os.listdir(q)),
                         sorted([qid + ".eml", qid + ".failed",
                                 qid + ".err"]))
        self.assertIn("refused refuse@example.test 550", envelope(".failed"))
        self.assertEqual([m[1] for m in s.messages],
                         [["ok@example.test"], ["later@example.test"]])
        # a finished queue sends nothing more
        rc, out, err = self.send(*argv)
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(len(s.messages), 2)

    def test_keep(self):
        q = os.path.join(self.dir, "q")
        s = self.sink()
        rc, out, err = self.send("--queue", q, "--from", "a@example.test",
                                 "--to", "ok@example.test", "--body", "x")
        qid = out.split()[2]
        rc, out, err = self.send("--process-queue", q, "--keep", "--server",
                                 "127.0.0.1:%d" % s.port, "--tls", "none")
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(sorted(os.listdir(q)), [qid + ".eml", qid + ".sent"])
        rc, out, err = self.send("--process-queue", q, "--server",
                                 "127.0.0.1:%d" % s.port, "--tls", "none")
        self.assertEqual(len(s.messages), 1)

    def test_two_runs_never_send_twice(self):
        q = os.path.join(self.dir, "q")
        s = self.sink()
        n = 12
        for i in range(n):
            rc, out, err = self.send("--queue", q, "--from", "a@example.test",
                                     "--to", "r%d@example.test" % i,
                                     "--body", "m%d" % i)
            self.assertEqual(rc, EX_OK, err)
        argv = [SEND, "--process-queue", q, "--server",
                "127.0.0.1:%d" % s.port, "--tls", "none"]
        procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(3)]
        for p in procs:
            _, errs = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, errs)
        got = sorted(m[1][0] for m in s.messages)
        self.assertEqual(got, sorted("r%d@example.test" % i
                                     for i in range(n)))
        self.assertEqual(os.listdir(q), [])


class Sendmail(SendCase):

    def postern(self):
        # the injector picks the listener without AUTH or TLS
        return self.server("""
smtp { server { listen {port2} submission; listen {port};
                local_domains example.test; } }
""")

    def test_t_i_from_a_pipe(self):
        srv = self.postern()
        msg = (b"To: u@example.test\nCc: Other <o@example.test>\n"
               b"Bcc: b@example.test\nSubject: from cron\n\n"
               b"line\n.\nafter the dot\n")
        p = subprocess.run("cat | %s -C %s -t -i -f root@client.test"
                           % (SENDMAIL, srv.conffile), shell=True,
                           input=msg, capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="a queued message")[0]
        env = srv.envelope(qid)
        for a in ("u@example.test", "o@example.test", "b@example.test"):
            self.assertIn(a, env)
        self.assertIn("root@client.test", env)
        raw = srv.message(qid)
        self.assertNotIn(b"Bcc", raw)
        m = self.parse(raw)
        self.assertEqual(m["Subject"], "from cron")
        self.assertEqual(m["From"], "root@client.test")
        self.assertIsNotNone(m["Message-ID"])
        self.assertIsNotNone(m["Date"])
        self.assertIn("after the dot", self.text(m))

    def test_dot_ends_without_i_and_exit_codes(self):
        srv = self.postern()
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-F", "Cron Daemon",
                            "u@example.test"], capture_output=True,
                           input=b"Subject: dot\n\nbefore\n.\nafter\n",
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="a queued message")[0]
        m = self.parse(srv.message(qid))
        self.assertNotIn("after", self.text(m))
        self.assertIn("Cron Daemon", str(m["From"]))
        # a refused recipient (not a local domain): 67, the reason shown
        p = subprocess.run([SENDMAIL, "-C", srv.conffile,
                            "x@elsewhere.test"], capture_output=True,
                           input=b"Subject: no\n\nx\n", timeout=30)
        self.assertEqual(p.returncode, EX_NOUSER, p.stderr)
        self.assertIn(b"550", p.stderr)
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-t"],
                           capture_output=True, input=b"Subject: none\n\nx\n",
                           timeout=30)
        self.assertEqual(p.returncode, EX_USAGE, p.stderr)

    def test_long_line_and_the_dot_left_over(self):
        """Without -i, a line "." ends the message; the "." left over
        at the end of a long line read in pieces does not."""
        srv = self.postern()
        body = b"x" * 2000 + b".\nafter\n"
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "u@example.test"],
                           input=b"Subject: long\n\n" + body
                           + b".\nignored\n", capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="a queued message")[0]
        raw = srv.message(qid)
        self.assertNotIn(b"ignored", raw)
        m = self.parse(raw)
        self.assertEqual(m["Content-Transfer-Encoding"], "quoted-printable")
        self.assertEqual(m.get_content_charset(), "us-ascii")
        self.assertEqual(self.text(m), body.decode())
        # a multipart message cannot be changed: 65, nothing sent
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-i",
                            "u@example.test"], capture_output=True,
                           input=b"Content-Type: multipart/mixed; "
                           b"boundary=b\n\n" + body, timeout=30)
        self.assertEqual(p.returncode, EX_DATAERR, p.stderr)
        self.assertIn(b"multipart/mixed", p.stderr)
        self.assertEqual(len(srv.queue_ids()), 1)

    def test_clustered_flags(self):
        """-ti and -it are -t -i (as getopt(3) reads them); a letter
        that takes a value ends the cluster (-itf ADDR)."""
        srv = self.postern()
        runs = (["-ti"], ["-it"], ["-itf", "root@client.test"])
        for n, flags in enumerate(runs):
            p = subprocess.run(
                [SENDMAIL, "-C", srv.conffile] + flags, capture_output=True,
                input=b"To: u@example.test\nSubject: %d\n\nline\n.\n"
                      b"after the dot\n" % n, timeout=30)
            self.assertEqual(p.returncode, 0, (flags, p.stderr))
            wait_for(lambda: len(srv.queue_ids()) == n + 1,
                     what="message %d queued" % n)
        for qid in srv.queue_ids():
            m = self.parse(srv.message(qid))
            self.assertIn("after the dot", self.text(m), m["Subject"])
            self.assertIn("u@example.test", srv.envelope(qid))
            if m["Subject"] == "2":
                self.assertIn("root@client.test", srv.envelope(qid))

    def test_bad_sender_and_dsn_options(self):
        """-f that is no address is refused (not sent as <>), and so are
        -N and -R values a server would refuse; nothing is sent."""
        srv = self.postern()
        for args, what in ((["-f", "a b@client.test"], "-f"),
                           (["-f", "<a@client.test"], "-f"),
                           (["-f", "a@client.test>"], "-f"),
                           (["-r", "x y"], "-f"),
                           (["-N", "never,success"], "-N"),
                           (["-N", "sometimes"], "-N"),
                           (["-N", "success,,delay"], "-N"),
                           (["-N", ""], "-N"),
                           (["-R", "all"], "-R")):
            p = subprocess.run([SENDMAIL, "-C", srv.conffile] + args
                               + ["u@example.test"], capture_output=True,
                               input=b"Subject: x\n\nx\n", timeout=30)
            self.assertEqual(p.returncode, EX_USAGE, (args, p.stderr))
            self.assertIn(b"postern-sendmail: " + what.encode(), p.stderr)
        self.assertEqual(srv.queue_ids(), [])
        # the null sender, spelled both ways, and good DSN values
        for n, args in enumerate((["-f", "<>"], ["-f", ""],
                                  ["-N", "success,DELAY", "-R", "hdrs"])):
            p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-t"] + args,
                               capture_output=True,
                               input=b"From: a@client.test\n"
                                     b"To: u@example.test\n\nx\n",
                               timeout=30)
            self.assertEqual(p.returncode, 0, (args, p.stderr))
            wait_for(lambda: len(srv.queue_ids()) == n + 1,
                     what="message %d queued" % n)
        envs = [srv.envelope(q) for q in srv.queue_ids()]
        self.assertEqual(sum("\nsender \n" in e for e in envs), 2, envs)
        self.assertTrue(any("\nret HDRS\n" in e for e in envs), envs)

    def test_linked_as_sendmail_and_mailq(self):
        """As the README and postern-sendmail(8) say to install it:
        symbolic links named sendmail and mailq, in another directory;
        sendmail injects (-bm), mailq lists the queue (-bp)."""
        srv = self.postern()
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        for name in ("sendmail", "mailq"):
            os.symlink(SENDMAIL, os.path.join(bindir, name))
        env = {k: x for k, x in os.environ.items()
               if k not in ("POSTERN_CONF", "POSTERN_SERVER")}
        env.update(POSTERN_CONF=srv.conffile,
                   PATH=bindir + ":" + env.get("PATH", ""))
        p = subprocess.run(["sendmail", "-t", "-i"], env=env,
                           input=b"To: u@example.test\nSubject: linked\n\n"
                                 b"via the link\n", capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="a queued message")[0]
        p = subprocess.run(["mailq"], env=env, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"----Queue ID----- "), p.stdout)
        self.assertIn(qid.encode(), p.stdout)
        self.assertIn(b"u@example.test", p.stdout)

    def test_spool_while_postern_is_down(self):
        srv = self.postern()
        srv.stop()
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-t", "-i"],
                           input=b"To: u@example.test\nSubject: down\n\n"
                                 b"into the spool\n", capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"in its spool", p.stderr)
        qid = p.stderr.split(b"queued as ")[1].split()[0].decode()
        self.assertEqual(srv.queue_ids(), [qid])
        srv.start()
        self.assertEqual(srv.queue_ids(), [qid])
        m = self.parse(srv.message(qid))
        self.assertEqual(m["Subject"], "down")
        env = srv.envelope(qid)
        self.assertIn("u@example.test", env)
        self.assertIn("postern-sendmail,+20uid+20%d+20" % os.getuid(), env)
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-bp"],
                           capture_output=True, timeout=30)
        self.assertIn(qid.encode(), p.stdout)
        self.assertEqual(os.listdir(os.path.join(srv.spool, "maildrop")), [])

    def maildrop_postern(self, extra=""):
        """A Postern whose workers are "daemon" and whose maildrop group
        is "mail", started once (it makes SPOOL/maildrop) and stopped;
        and two copies of postern-sendmail that "nobody" may run: one
        plain, one setgid mail (as make install MAILDROP_GROUP=mail
        installs it)."""
        if os.geteuid() != 0 or shutil.which("runuser") is None:
            self.skipTest("needs root and runuser(1)")
        for name, get in (("daemon", pwd.getpwnam), ("nobody", pwd.getpwnam),
                          ("mail", grp.getgrnam)):
            try:
                get(name)
            except KeyError:
                self.skipTest("no %s account on this host" % name)
        srv = self.server("""
smtp { server { listen {port}; local_domains example.test; %s } }
""" % extra, extra_top="user daemon;\nmaildrop_group mail;\n")
        srv.stop()
        bindir = os.path.join(self.dir, "bin")
        os.makedirs(bindir)
        plain = os.path.join(bindir, "sendmail-plain")
        setgid = os.path.join(bindir, "sendmail-setgid")
        for path in (plain, setgid):
            shutil.copy(SENDMAIL, path)
            os.chmod(path, 0o755)
        os.chown(setgid, 0, grp.getgrnam("mail").gr_gid)
        os.chmod(setgid, 0o2755)
        return srv, plain, setgid

    def as_nobody(self, prog, args, data, env=None):
        e = {k: x for k, x in os.environ.items()
             if k not in ("POSTERN_CONF", "POSTERN_SERVER",
                          "POSTERN_MAILDROP")}
        e.update(env or {})
        return subprocess.run(["runuser", "-u", "nobody", "--", prog] + args,
                              input=data, capture_output=True, timeout=30,
                              env=e)

    def test_maildrop_non_root_while_postern_is_down(self):
        """Postern down, postern-sendmail run by a user who may not
        write the spool: through the maildrop (1730, group
        maildrop_group, postern-sendmail setgid to it), taken into the
        spool when Postern starts; without the group, a clear refusal."""
        srv, plain, setgid = self.maildrop_postern()
        drop = os.path.join(srv.spool, "maildrop")
        st = os.stat(drop)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o1730)
        self.assertEqual((st.st_uid, st.st_gid),
                         (pwd.getpwnam("daemon").pw_uid,
                          grp.getgrnam("mail").gr_gid))
        msg = b"To: u@example.test\nSubject: from nobody\n\nkept\n"
        args = ["-C", srv.conffile, "-t", "-i"]
        # not setgid: nowhere to keep it, and it says why
        p = self.as_nobody(plain, args, msg)
        self.assertEqual(p.returncode, EX_PROTOCOL, p.stderr)
        self.assertIn(b"cannot be kept", p.stderr)
        self.assertIn(b"setgid", p.stderr)
        self.assertEqual(os.listdir(drop), [])
        # setgid mail: accepted, as sendmail does
        p = self.as_nobody(setgid, args, msg)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"kept in the maildrop", p.stderr)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(len(os.listdir(drop)), 1)
        self.assertEqual(srv.queue_ids(), [])
        # Postern starts: the queue process takes it in
        srv.start()
        qid = wait_for(lambda: srv.queue_ids(), what="the maildrop taken")[0]
        wait_for(lambda: os.listdir(drop) == [], what="the maildrop empty")
        m = self.parse(srv.message(qid))
        self.assertEqual(m["Subject"], "from nobody")
        env = srv.envelope(qid)
        self.assertIn("u@example.test", env)
        self.assertIn("nobody@", env)
        # the trace names the file's owner, not what the file says
        self.assertIn("uid+20%d+20nobody" % pwd.getpwnam("nobody").pw_uid,
                      env)

    def test_maildrop_taken_while_postern_runs(self):
        """A message left in the maildrop while Postern runs (here the
        injector could not reach its listener) is taken in at once;
        what is not a message is removed with a warning."""
        srv, plain, setgid = self.maildrop_postern()
        srv.start()
        drop = os.path.join(srv.spool, "maildrop")
        # junk: a symbolic link, a hard link, a file that is no message
        os.symlink("/etc/passwd", os.path.join(drop, "aaaa"))
        with open(os.path.join(self.dir, "secret"), "w") as f:
            f.write("secret")
        os.link(os.path.join(self.dir, "secret"), os.path.join(drop, "bbbb"))
        with open(os.path.join(drop, "cccc"), "w") as f:
            f.write("not a message")
        p = self.as_nobody(setgid, ["-C", srv.conffile, "-t", "-i"],
                           b"To: u@example.test\nSubject: running\n\nx\n",
                           env={"POSTERN_SERVER":
                                "127.0.0.1:%d" % free_port()})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"kept in the maildrop", p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="the maildrop taken")[0]
        self.assertEqual(self.parse(srv.message(qid))["Subject"], "running")
        wait_for(lambda: os.listdir(drop) == [], what="the junk removed")
        self.assertEqual(len(srv.queue_ids()), 1)
        with open(srv.logfile) as f:
            log = f.read()
        for name, why in (("aaaa", "a symbolic link"),
                          ("bbbb", "a file with another link"),
                          ("cccc", "no format 2 or 3 header")):
            self.assertIn("maildrop file %s: %s" % (name, why), log)

    def test_maildrop_size_limit(self):
        """A maildrop file larger than message_size_limit (plus room for
        its envelope) is removed with a warning, not queued: a local
        user may not fill the spool's disk through it."""
        srv, plain, setgid = self.maildrop_postern("message_size_limit 20k;")
        srv.start()
        drop = os.path.join(srv.spool, "maildrop")
        away = {"POSTERN_SERVER": "127.0.0.1:%d" % free_port()}
        big = b"To: u@example.test\nSubject: big\n\n" + b"x" * 200000 + b"\n"
        p = self.as_nobody(setgid, ["-C", srv.conffile, "-t", "-i"], big,
                           env=away)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.as_nobody(setgid, ["-C", srv.conffile, "-t", "-i"],
                           b"To: u@example.test\nSubject: small\n\nx\n",
                           env=away)
        self.assertEqual(p.returncode, 0, p.stderr)
        qid = wait_for(lambda: srv.queue_ids(), what="the small one taken")[0]
        wait_for(lambda: os.listdir(drop) == [], what="the maildrop empty")
        self.assertEqual(srv.queue_ids(), [qid])
        self.assertEqual(self.parse(srv.message(qid))["Subject"], "small")
        srv.wait_log(r"maildrop file \S+: larger than message_size_limit")

    def test_bs_while_postern_is_down(self):
        """-bs has no session to relay when Postern is down: the client
        gets a 421 greeting, the caller 75, and nothing is taken."""
        srv = self.postern()
        srv.stop()
        p = subprocess.run([SENDMAIL, "-C", srv.conffile, "-bs"],
                           input=b"EHLO client.test\r\nQUIT\r\n",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, EX_TEMPFAIL, p.stderr)
        self.assertTrue(p.stdout.startswith(b"421 4.3.2 "), p.stdout)
        self.assertIn(b"-bs: Postern is not answering", p.stderr)
        self.assertEqual(os.listdir(os.path.join(srv.spool, "maildrop")), [])

    def test_bs(self):
        srv = self.postern()
        p = subprocess.Popen([SENDMAIL, "-C", srv.conffile, "-bs"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            def reply():
                lines = []
                while True:
                    line = p.stdout.readline()
                    self.assertTrue(line, "EOF from sendmail -bs")
                    lines.append(line)
                    if line[3:4] == b" ":
                        return b"".join(lines)

            self.assertTrue(reply().startswith(b"220"))
            for cmd, code in ((b"EHLO client.test", b"250"),
                              (b"MAIL FROM:<a@client.test>", b"250"),
                              (b"RCPT TO:<u@example.test>", b"250"),
                              (b"DATA", b"354"),
                              (b"Subject: bs\r\n\r\nvia -bs\r\n.", b"250"),
                              (b"QUIT", b"221")):
                p.stdin.write(cmd + b"\r\n")
                p.stdin.flush()
                self.assertTrue(reply().startswith(code), cmd)
            p.stdin.close()
            self.assertEqual(p.wait(timeout=30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        self.assertEqual(srv.queue_count(), 1)


class Big(SendCase):

    MB = int(os.environ.get("PST_SEND_BIG_MB", "100"))

    def test_big_attachment_streamed(self):
        path = os.path.join(self.dir, "big.bin")
        h = hashlib.sha256()
        chunk = os.urandom(1 << 20)
        with open(path, "wb") as f:
            for i in range(self.MB):
                f.write(chunk)
                h.update(chunk)
        # a sink that hashes what it decodes, never keeping the message
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        result = {}

        def serve():
            c, _ = srv.accept()
            f = c.makefile("rb")
            w = c.makefile("wb", buffering=0)
            w.write(b"220 sink\r\n")
            body, inb64, b64 = hashlib.sha256(), False, []
            while True:
                line = f.readline()
                if not line:
                    break
                u = line.upper()
                if u.startswith(b"EHLO"):
                    w.write(b"250-sink\r\n250 8BITMIME\r\n")
                elif u.startswith((b"MAIL", b"RCPT")):
                    w.write(b"250 ok\r\n")
                elif u.startswith(b"DATA"):
                    w.write(b"354 go\r\n")
                    import base64
                    while True:
                        line = f.readline()
                        if line == b".\r\n" or not line:
                            break
                        s = line.rstrip(b"\r\n")
                        if inb64 is True:
                            if s == b"" or s.startswith(b"--"):
                                inb64 = False
                            else:
                                body.update(base64.b64decode(s))
                        elif inb64 == "pending":
                            inb64 = s == b"" or "pending"
                        elif s.lower() == (b"content-transfer-encoding: "
                                           b"base64"):
                            inb64 = "pending"
                    result["sha"] = body.hexdigest()
                    w.write(b"250 stored\r\n")
                elif u.startswith(b"QUIT"):
                    w.write(b"221 bye\r\n")
                    break
            c.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        # measured in a process of its own whose only child is
        # postern-send: its ru_maxrss is postern-send's peak
        meter = ("import resource, subprocess, sys\n"
                 "rc = subprocess.run(sys.argv[1:]).returncode\n"
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN)"
                 ".ru_maxrss, rc)\n")
        rc, out, err = self.send(
            "-c", meter, SEND,
            "--server", "127.0.0.1:%d" % srv.getsockname()[1], "--tls",
            "none", "--from", "a@example.test", "--to", "b@example.test",
            "--body", "big", "--attach", path, prog="/usr/bin/python3",
            timeout=300)
        t.join(60)
        srv.close()
        peak, rc = (int(x) for x in out.split()[-2:])
        self.assertEqual(rc, EX_OK, err)
        self.assertEqual(result.get("sha"), h.hexdigest())
        # KiB: the process never holds the attachment (100 MiB)
        self.assertLess(peak, 32 * 1024, "postern-send peak RSS %d KiB"
                        % peak)
        print("\npostern-send %d MiB attachment: peak RSS %d KiB"
              % (self.MB, peak))


    def test_long_line_streamed(self):
        """A message of one line of MB MiB: re-encoded as
        quoted-printable in pieces, never held in memory."""
        path = os.path.join(self.dir, "line.eml")
        piece = b"0123456789abcdef=" * 61681      # about 1 MiB, no LF
        with open(path, "wb") as f:
            f.write(b"Subject: one line\n\n")
            for i in range(self.MB):
                f.write(piece)
            f.write(b"\n")
        meter = ("import resource, subprocess, sys\n"
                 "p = subprocess.Popen(sys.argv[1:], "
                 "stdout=subprocess.PIPE)\n"
                 "size = longest = 0\n"
                 "for line in p.stdout:\n"
                 "    size += len(line)\n"
                 "    longest = max(longest, len(line.rstrip(b'\\r\\n')))\n"
                 "rc = p.wait()\n"
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN)"
                 ".ru_maxrss, rc, size, longest)\n")
        rc, out, err = self.send(
            "-c", meter, SEND, "--raw", path, "--from", "a@example.test",
            "--to", "b@example.test", "--print", prog="/usr/bin/python3",
            timeout=300)
        peak, rc, size, longest = (int(x) for x in out.split()[-4:])
        self.assertEqual(rc, EX_OK, err)
        self.assertLessEqual(longest, 76)
        self.assertGreater(size, self.MB * len(piece))
        self.assertLess(peak, 32 * 1024, "postern-send peak RSS %d KiB"
                        % peak)
        print("\npostern-send a line of %d MiB: peak RSS %d KiB"
              % (self.MB, peak))


if __name__ == "__main__":
    unittest.main()
