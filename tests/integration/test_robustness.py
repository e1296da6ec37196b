"""Hostile input: NUL bytes, bare CR, pipelined junk, megabytes of
garbage, clients that vanish in the middle of DATA or of a BDAT chunk,
clients that do not read.  Every case gets a correct reply or a clean
close, never a crash or a hang, and nothing half-stored."""

import os
import random
import socket
import struct
import threading
import time
import unittest

from pstest import BASIC, PstTestCase

ENDS = BASIC.replace("hostname mx.example.test;",
                     "hostname mx.example.test; max_junk_commands 0;")


class RobustnessTest(PstTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.server(BASIC)

    def tearDown(self):
        # whatever happened, the server still works and holds no debris
        try:
            if self.srv.proc.poll() is None:
                self.assertEqual(len(self.srv.workers()), 2)
                self.assertEqual(self.srv.send(), {})
                self.srv.wait_tmp_empty()
                self.srv.check_queue_consistent()
        finally:
            super().tearDown()

    def test_nul_and_bare_cr_in_commands(self):
        with self.srv.raw() as c:
            for bad in (b"NO\x00OP\r\n", b"\x00\r\n", b"NOOP\rQUIT\r\n",
                        b"EHLO a\rb\r\n", b"\rNOOP\r\n"):
                c.send(bad)
                self.assertReply(c.reply(), 500, "5.5.2")
                # one reply per line, nothing for the parts after CR
                self.assertEqual(c.pending(0.1), b"", bad)
            c.cmd("EHLO client.test")
            c.send(b"MAIL FROM:<a\x00b@client.test>\r\n")
            self.assertReply(c.reply(), 500, "5.5.2")
            self.assertEqual(c.cmd("NOOP")[0], 250)

    def test_early_talker(self):
        with self.srv.raw(greet=False) as c:
            c.send(b"EHLO client.test\r\nNOOP\r\nQUIT\r\n")
            codes = [r[0] for r in c.replies(4)]
            self.assertEqual(codes, [220, 250, 250, 221])
            self.assertTrue(c.closed())

    def test_pipelined_junk(self):
        rnd = random.Random(1)
        junk = b"".join(bytes(rnd.randrange(256) for _ in range(
            rnd.randrange(1, 300))).replace(b"\n", b"").replace(b"\r", b"")
            + b"\r\n" for _ in range(2000))
        with self.srv.raw(timeout=20) as c:
            try:
                c.send(junk)
            except (BrokenPipeError, ConnectionResetError):
                pass
            replies = []
            while True:
                try:
                    replies.append(c.reply())
                except ConnectionError:
                    break
            # every reply well formed (checked by reply()); after
            # max_errors (20) errors, 421 and the connection closes
            self.assertEqual(replies[-1][0], 421, replies[-3:])
            self.assertLessEqual(len(replies), 21)
            self.assertTrue(c.closed())

    def test_ten_megabytes_without_newline(self):
        garbage = os.urandom(10 * 1024 * 1024).replace(b"\n", b"x")
        with self.srv.raw(timeout=60) as c:
            c.send(garbage)
            c.send(b"\r\n")
            self.assertReply(c.reply(), 500, "5.5.2")
            self.assertEqual(c.pending(0.2), b"")
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)

    def test_ten_megabytes_in_data_without_newline(self):
        with self.srv.raw(timeout=60) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            for _ in range(10):
                c.send(os.urandom(1024 * 1024).replace(b"\n", b"x")
                       .replace(b"\r", b"x"))
            c.send(b"\r\n.\r\n")
            # over smtp_text_line_limit (64k): refused, nothing stored
            self.assertReply(c.reply(), 554, "5.6.0")
            self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(self.srv.queue_count(), 0)

    def test_random_binary_flood(self):
        """10 MB of random bytes, newlines included: errors, 421, close."""
        data = os.urandom(10 * 1024 * 1024)
        with self.srv.raw(timeout=30) as c:
            try:
                c.send(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.assertTrue(c.closed(20))

    def vanish(self, c, rst):
        if rst:
            # RST instead of FIN
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                              struct.pack("ii", 1, 0))
        c.close()

    def test_disconnect_during_data(self):
        tails = [b"", b"Subject: half\r\n\r\npart", b"line\r\n",
                 b"line\r\n.", b"line\r\n.\r", b"x" * 200000]
        for rst in (False, True):
            for tail in tails:
                c = self.srv.raw()
                c.cmd("EHLO client.test")
                c.cmd("MAIL FROM:<a@client.test>")
                c.cmd("RCPT TO:<user@example.test>")
                self.assertEqual(c.cmd("DATA")[0], 354)
                if tail:
                    c.send(tail)
                self.vanish(c, rst)
        self.srv.wait_log(r"(client closed during message data|session "
                          r"ended during message transfer): nothing stored",
                          count=len(tails) * 2)
        self.srv.wait_tmp_empty()
        self.assertEqual(self.srv.queue_files(), [])

    def test_disconnect_during_bdat_chunk(self):
        for rst in (False, True):
            for sent in (0, 1, 500, 999):
                c = self.srv.raw()
                c.cmd("EHLO client.test")
                c.cmd("MAIL FROM:<a@client.test>")
                c.cmd("RCPT TO:<user@example.test>")
                c.send(b"BDAT 100\r\n" + b"a" * 100)
                self.assertEqual(c.reply()[0], 250)
                c.send(b"BDAT 1000 LAST\r\n" + b"b" * sent)
                self.vanish(c, rst)
        self.srv.wait_log(r"nothing stored", count=8)
        self.srv.wait_tmp_empty()
        self.assertEqual(self.srv.queue_files(), [])

    def test_half_close(self):
        """shutdown(SHUT_WR) after QUIT still gets 221; in DATA it is the
        end of the session, not of the message."""
        with self.srv.raw() as c:
            c.send(b"QUIT\r\n")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertEqual(c.reply()[0], 221)
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            c.send(b"Subject: eof\r\n\r\nno end")
            c.sock.shutdown(socket.SHUT_WR)
            self.assertTrue(c.closed(10))
        self.srv.wait_tmp_empty()
        self.assertEqual(self.srv.queue_count(), 0)

    def test_disconnect_right_after_dot(self):
        """The client leaves before reading 250: stored completely or not
        at all, never half."""
        for i in range(10):
            c = self.srv.raw()
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            c.cmd("DATA")
            body = b"Subject: %d\r\n\r\n" % i + b"z" * 5000 + b"\r\n"
            c.send(body + b".\r\n")
            self.vanish(c, i % 2)
        self.srv.wait_tmp_empty()
        self.srv.check_queue_consistent()
        for qid in self.srv.queue_ids():
            self.assertTrue(self.srv.body(qid).endswith(b"z" * 5000
                                                        + b"\r\n"))


class StoreFailureTest(PstTestCase):
    """The spool refuses: never 250, a 451 to every kind of transfer, in
    step, and nothing left behind."""

    def setUp(self):
        super().setUp()
        self.srv = self.server(BASIC)
        self.tmp = os.path.join(self.srv.spool, "tmp")
        self.queue = os.path.join(self.srv.spool, "queue")

    def worker_tmp_dirs(self):
        """Each worker receives into its own spool/tmp/PID (the queue
        process has one too, for what it creates)."""
        workers = {str(p) for p in self.srv.workers()}
        return [os.path.join(self.tmp, d) for d in os.listdir(self.tmp)
                if os.path.isdir(os.path.join(self.tmp, d)) and d in workers]

    def set_tmp_mode(self, mode):
        for d in self.worker_tmp_dirs():
            os.chmod(d, mode)

    def tearDown(self):
        self.set_tmp_mode(0o750)
        os.chmod(self.queue, 0o750)
        super().tearDown()

    def attempts(self, c):
        """A DATA and a BDAT transaction; their final replies."""
        out = []
        c.cmd("MAIL FROM:<a@client.test>")
        c.cmd("RCPT TO:<user@example.test>")
        r = c.cmd("DATA")
        if r[0] == 354:
            c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
            r = c.reply()
        out.append(r)
        c.cmd("RSET")
        c.cmd("MAIL FROM:<a@client.test>")
        c.cmd("RCPT TO:<user@example.test>")
        c.send(b"BDAT 7\r\nSubject")
        r = c.reply()
        if r[0] == 250:
            c.send(b"BDAT 5 LAST\r\n: x\r\n")
            r = c.reply()
        out.append(r)
        return out

    def check(self):
        with self.srv.raw() as c:
            c.cmd("EHLO client.test")
            for r in self.attempts(c):
                self.assertReply(r, 451, "4.3.0")
            # in step: exactly one reply per command
            self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
            self.assertEqual(c.pending(0.2), b"")
            self.set_tmp_mode(0o750)
            os.chmod(self.queue, 0o750)
            for r in self.attempts(c):
                self.assertEqual(r[0], 250, r)
        self.assertEqual(self.srv.queue_count(), 2)
        self.srv.check_queue_consistent()
        self.srv.wait_tmp_empty()

    def test_cannot_create_message(self):
        self.assertEqual(len(self.worker_tmp_dirs()), 2)
        self.set_tmp_mode(0o500)
        self.check()
        self.srv.wait_log(r"spool: cannot create tmp/")

    def test_cannot_commit(self):
        os.chmod(self.queue, 0o500)
        self.check()
        self.srv.wait_log(r"spool: committing \S+ failed")


class FlowControlTest(PstTestCase):

    def test_client_that_does_not_read(self):
        """A million pipelined NOOPs from a client that reads nothing
        for a while: the server stops reading rather than buffering 14 MB
        of replies, and every NOOP still gets exactly one reply."""
        srv = self.server(ENDS)
        n = 1000000
        with srv.raw(timeout=60) as c:
            c.cmd("EHLO client.test")
            pid = srv.worker_for(c)
            before = srv.rss_kb(pid)
            done = []

            def writer():
                c.sock.sendall(b"NOOP\r\n" * n + b"QUIT\r\n")
                done.append(True)
            t = threading.Thread(target=writer, daemon=True)
            t.start()
            time.sleep(2)
            grown = srv.rss_kb(pid) - before
            self.assertLess(grown, 8 * 1024, "worker grew by %d kB" % grown)
            buf = bytearray()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                chunk = c.sock.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
            t.join(10)
            self.assertTrue(done)
            lines = bytes(buf).split(b"\r\n")
            self.assertEqual(lines[-1], b"")
            self.assertEqual(lines[-2], b"221 2.0.0 Bye")
            self.assertEqual(lines.count(b"250 2.0.0 Ok"), n)
            self.assertEqual(len(lines), n + 2)


if __name__ == "__main__":
    unittest.main()
