"""Limits a client controls: command and text line length, message size,
recipients, messages and errors per session, junk commands, per-phase
timeouts, and connection limits counted across worker processes."""

import os
import signal
import socket
import threading
import time
import unittest

from pstest import PstTestCase, have, wait_for

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


def start_tx(c, rcpt="user@example.test"):
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250


class LineLimitTest(PstTestCase):

    def test_command_line_limit(self):
        srv = self.server(CONF % "smtp_command_line_limit 512;")
        with srv.raw() as c:
            line = b"NOOP " + b"x" * (512 - 7) + b"\r\n"
            self.assertEqual(len(line), 512)
            c.send(line)
            self.assertEqual(c.reply()[0], 250)
            c.send(b"NOOP " + b"x" * (512 - 6) + b"\r\n")
            self.assertReply(c.reply(), 500, "5.5.2")
            self.assertEqual(c.cmd("NOOP")[0], 250)
            # far too long, in pieces, no newline for 100 KB: one reply
            for _ in range(100):
                c.send(b"MAIL FROM:<" + b"y" * 1013)
            c.send(b">\r\n")
            self.assertReply(c.reply(), 500, "5.5.2")
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            self.assertEqual(c.pending(0.2), b"")
            # an overlong RCPT did not become a recipient
            start_tx(c)
            self.assertReply(c.cmd("RCPT TO:<%s@example.test>" % ("z" * 600)),
                             500, "5.5.2")
            c.cmd("DATA")
            c.send(b"x\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        env = srv.envelope(srv.queue_ids()[0])
        self.assertNotIn("zzz", env)

    def test_text_line_limit(self):
        srv = self.server(CONF % "smtp_text_line_limit 1000;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            # RFC 5321 4.5.3.1.6: 998 characters and CRLF must pass
            ok = b"Subject: t\r\n\r\n" + b"a" * 998 + b"\r\n"
            r = srv.transaction(c, ok)
            self.assertEqual(r[0], 250, r)
            r = srv.transaction(c, b"Subject: t\r\n\r\n" + b"b" * 1003
                                + b"\r\nmore\r\n")
            self.assertReply(r, 554, "5.6.0")
            # in step: the next transaction works
            r = srv.transaction(c, ok)
            self.assertEqual(r[0], 250, r)
        self.assertEqual(srv.queue_count(), 2)
        for qid in srv.queue_ids():
            self.assertNotIn(b"bbbb", srv.message(qid))
        srv.wait_tmp_empty()


class SizeLimitTest(PstTestCase):

    def test_message_size_limit(self):
        srv = self.server(CONF % "message_size_limit 10k;")
        head = b"Subject: size\r\n\r\n"
        with srv.raw(timeout=30) as c:
            c.cmd("EHLO client.test")
            exact = head + b"x" * (10240 - len(head) - 2) + b"\r\n"
            self.assertEqual(len(exact), 10240)
            r = srv.transaction(c, exact)
            self.assertEqual(r[0], 250, r)
            r = srv.transaction(c, exact + b"y\r\n")
            self.assertReply(r, 552, "5.3.4")
            # a lot more than the limit: read to the end, then refused
            start_tx(c)
            self.assertEqual(c.cmd("DATA")[0], 354)
            for _ in range(100):
                c.send((b"z" * 998 + b"\r\n") * 10)
            self.assertEqual(c.pending(0.2), b"", "answered before the dot")
            c.send(b".\r\n")
            self.assertReply(c.reply(), 552, "5.3.4")
            self.assertEqual(c.cmd("NOOP")[0], 250)
            r = srv.transaction(c, head + b"small\r\n")
            self.assertEqual(r[0], 250, r)
        self.assertEqual(srv.queue_count(), 2)
        for qid in srv.queue_ids():
            self.assertNotIn(b"zzz", srv.message(qid))
        srv.wait_tmp_empty()
        srv.wait_log(r"rejected: message size \d+ over the limit 10240")


class CountLimitTest(PstTestCase):

    def test_max_recipients(self):
        srv = self.server(CONF % "max_recipients 100;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.send(b"".join(b"RCPT TO:<u%d@example.test>\r\n" % i
                            for i in range(105)))
            r = c.replies(105)
            self.assertEqual([x[0] for x in r[:100]], [250] * 100)
            for x in r[100:]:
                self.assertReply(x, 452, "4.5.3")
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        env = srv.envelope(srv.queue_ids()[0])
        rcpts = [l.split()[1] for l in env.splitlines()
                 if l.startswith("rcpt ")]
        self.assertEqual(rcpts, ["u%d@example.test" % i for i in range(100)])

    def pipelined_rcpts(self, c, n):
        """n RCPTs in one write from a thread, the replies read here as
        they come (a pipelining client must not wait to send it all)."""
        batch = b"".join(b"RCPT TO:<u%d@example.test>\r\n" % i
                         for i in range(n))
        t = threading.Thread(target=c.send, args=(batch,), daemon=True)
        t.start()
        r = c.replies(n)
        t.join(30)
        return r

    def test_recipient_flood_keeps_the_transaction(self):
        """10,000 pipelined RCPTs with max_recipients 1000: 9,000 452s
        that do not count as errors (max_errors 20 would have closed
        the session with 421 after twenty of them), then DATA delivers
        to the 1,000 accepted (RFC 5321 4.5.3.1.10)."""
        srv = self.server(CONF % "")
        with srv.raw(timeout=60) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            r = self.pipelined_rcpts(c, 10000)
            self.assertEqual([x[0] for x in r[:1000]], [250] * 1000)
            self.assertEqual({x[0] for x in r[1000:]}, {452})
            self.assertReply(r[-1], 452, "4.5.3")
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: flood\r\n\r\nx\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
            # and the session goes on
            self.assertEqual(c.cmd("NOOP")[0], 250)
        env = srv.envelope(srv.queue_ids()[0])
        rcpts = [l.split()[1] for l in env.splitlines()
                 if l.startswith("rcpt ")]
        self.assertEqual(rcpts, ["u%d@example.test" % i for i in range(1000)])

    def test_recipient_overflow_cap(self):
        """Past max_recipient_overflows the 452s count as errors again:
        with 100 allowed and max_errors 5, the 106th excess recipient
        brings 421."""
        srv = self.server(CONF % "max_recipients 100;"
                          " max_recipient_overflows 100; max_errors 5;")
        with srv.raw(timeout=30) as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            r = self.pipelined_rcpts(c, 205)
            self.assertEqual([x[0] for x in r[:100]], [250] * 100)
            self.assertEqual([x[0] for x in r[100:205]], [452] * 105)
            self.assertReply(c.reply(), 421, "4.7.0")
            self.assertTrue(c.closed())
        srv.wait_log(r"too many errors")

    def test_max_messages_per_session(self):
        srv = self.server(CONF % "max_messages_per_session 2;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            for _ in range(2):
                self.assertEqual(srv.transaction(c, b"x\r\n")[0], 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 452, "4.5.3")
            self.assertEqual(c.cmd("RSET")[0], 250)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 452, "4.5.3")
            self.assertEqual(c.cmd("QUIT")[0], 221)
        # a new session may send again
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertEqual(srv.transaction(c, b"x\r\n")[0], 250)
        self.assertEqual(srv.queue_count(), 3)

    def test_max_errors(self):
        srv = self.server(CONF % "max_errors 5;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            for cmd in ("FOO", "MAIL FROM:broken", "RCPT TO:<x@example.test>",
                        "BAR"):
                self.assertGreaterEqual(c.cmd(cmd)[0], 500)
            self.assertEqual(c.cmd("NOOP")[0], 250)
            c.send(b"BAZ\r\n")
            self.assertReply(c.reply(), 500, "5.5.2")
            # the fifth error: 421 at once, then the connection closes
            self.assertReply(c.reply(), 421, "4.7.0")
            self.assertTrue(c.closed())
        srv.wait_log(r"too many errors")

    def test_max_junk_commands(self):
        srv = self.server(CONF % "max_junk_commands 5;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            for cmd in ("NOOP", "RSET", "VRFY x", "HELP", "NOOP"):
                self.assertLess(c.cmd(cmd)[0], 300, cmd)
            # MAIL starts real work: the count starts again
            c.cmd("MAIL FROM:<a@client.test>")
            for _ in range(5):
                self.assertEqual(c.cmd("NOOP")[0], 250)
            self.assertReply(c.cmd("NOOP"), 421, "4.7.0")
            self.assertTrue(c.closed())


class TimeoutTest(PstTestCase):

    CONF = CONF % "smtp_command_timeout 1s; smtp_data_timeout 1s;"

    def expect_timeout(self, c, started):
        c.sock.settimeout(15)
        self.assertReply(c.reply(), 421, "4.4.2")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)
        self.assertTrue(c.closed())

    def test_command_timeout(self):
        srv = self.server(self.CONF)
        with srv.raw() as c:
            self.expect_timeout(c, time.monotonic())
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            start_tx(c)
            t = time.monotonic()
            self.expect_timeout(c, t)
        srv.wait_log(r"timeout in state COMMAND", count=2)
        self.assertEqual(srv.queue_count(), 0)

    def test_data_timeout_is_not_the_command_timeout(self):
        srv = self.server(CONF % "smtp_command_timeout 1s;"
                          " smtp_data_timeout 30s;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            start_tx(c)
            self.assertEqual(c.cmd("DATA")[0], 354)
            time.sleep(2.5)
            c.send(b"late but in time\r\n.\r\n")
            self.assertEqual(c.reply()[0], 250)
        self.assertEqual(srv.queue_count(), 1)

    def test_data_timeout_leaves_nothing(self):
        srv = self.server(CONF % "smtp_command_timeout 30s;"
                          " smtp_data_timeout 1s;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            start_tx(c)
            self.assertEqual(c.cmd("DATA")[0], 354)
            # the message file exists while the data comes in
            self.assertEqual(len(srv.tmp_files()), 1)
            t = time.monotonic()
            c.send(b"Subject: never finished\r\n\r\npartial line")
            self.expect_timeout(c, t)
        srv.wait_tmp_empty()
        self.assertEqual(srv.queue_files(), [])
        srv.wait_log(r"timeout in state DATA")

    def test_bdat_timeout_leaves_nothing(self):
        srv = self.server(self.CONF)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            start_tx(c)
            c.send(b"BDAT 100 LAST\r\n0123456789")
            wait_for(lambda: srv.tmp_files(), 5, what="tmp file")
            self.expect_timeout(c, time.monotonic())
        srv.wait_tmp_empty()
        self.assertEqual(srv.queue_files(), [])

    @unittest.skipUnless(have("ss"), "needs ss")
    def test_client_that_never_reads_is_dropped(self):
        """Commands pour in, replies are never read: once a timeout
        passes with the reply still unsent, the session is closed
        instead of being kept (with its slot) for ever."""
        srv = self.server(CONF % "smtp_command_timeout 1s;"
                          " max_junk_commands 0;")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        s.settimeout(2)

        def writer():
            try:
                s.sendall(b"NOOP\r\n" * 2000000)
            except OSError:
                pass
        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            wait_for(lambda: srv.connection_pids(), 5, what="session")
            wait_for(lambda: not srv.connection_pids(), 15, interval=0.2,
                     what="the server to drop the session")
        finally:
            s.close()
            t.join(5)
        srv.wait_log(r"timeout in state")

    def test_slow_but_steady_client(self):
        """Without a minimum data rate the data timeout is per read,
        not for the whole message (test_slow_clients has the rate)."""
        srv = self.server(CONF % "smtp_command_timeout 3s;"
                          " smtp_data_timeout 3s; smtp_min_data_rate 0;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            start_tx(c)
            c.cmd("DATA")
            t = time.monotonic()
            while time.monotonic() - t < 4.5:
                c.send(b"line\r\n")
                time.sleep(0.25)
            c.send(b".\r\n")
            self.assertEqual(c.reply()[0], 250)
        self.assertEqual(srv.queue_count(), 1)


class ConnectionLimitTest(PstTestCase):
    """A worker takes worker_connections + 64 connections at most, so
    with worker_connections 16 (the minimum) and 2 workers the sessions
    over ~78 must land on the second worker: the limits hold only if they
    are counted across processes."""

    def open_many(self, srv, n, source=None):
        ok, refused = [], []
        for _ in range(n):
            c = srv.raw(timeout=15, source=source)
            (ok if c.greeting[0] == 220 else refused).append(c)
        return ok, refused

    def test_max_connections_across_workers(self):
        srv = self.server(CONF % "max_connections 100;"
                          " max_connections_per_ip 1000;",
                          extra_top="worker_connections 16;")
        ok, refused = self.open_many(srv, 110)
        try:
            self.assertEqual(len(ok), 100)
            self.assertEqual(len(refused), 10)
            for c in refused:
                self.assertReply(c.greeting, 421, "4.3.2")
                self.assertTrue(c.closed())
            if have("ss"):
                per = srv.connection_pids()
                self.assertEqual(len(per), 2, per)
                self.assertEqual(sum(per.values()), 100, per)
            # a slot frees up when a session ends
            for c in ok[:5]:
                c.cmd("QUIT")
                c.close()

            def accepted():
                c = srv.raw(timeout=15)
                ok.append(c)
                return c.greeting[0] == 220
            wait_for(accepted, 10, interval=0.2, what="a free slot")
            self.assertEqual(ok[-1].cmd("EHLO client.test")[0], 250)
        finally:
            for c in ok + refused:
                c.close()
        srv.wait_log(r"refused connection from 127.0.0.1: max_connections "
                     r"reached", count=10)

    def test_max_connections_per_ip_across_workers(self):
        srv = self.server(CONF % "max_connections_per_ip 90;",
                          extra_top="worker_connections 16;")
        ok, refused = self.open_many(srv, 95)
        others = []
        try:
            self.assertEqual(len(ok), 90)
            self.assertEqual(len(refused), 5)
            for c in refused:
                self.assertReply(c.greeting, 421, "4.7.0")
            if have("ss"):
                self.assertEqual(len(srv.connection_pids()), 2)
            # another address is not affected
            others, more = self.open_many(srv, 3, source="127.0.0.2")
            self.assertEqual((len(others), len(more)), (3, 0))
            self.assertEqual(others[0].cmd("EHLO client.test")[0], 250)
        finally:
            for c in ok + refused + others:
                c.close()
        srv.wait_log(r"max_connections_per_ip reached", count=5)

    def test_counts_survive_reload_and_worker_death(self):
        srv = self.server(CONF % "max_connections 3;")
        held = [srv.raw() for _ in range(3)]
        try:
            self.assertEqual([c.greeting[0] for c in held], [220] * 3)
            with srv.raw() as c:
                self.assertReply(c.greeting, 421, "4.3.2")
            # sessions of old workers still count after a reload
            srv.reload()
            srv.wait_log(r"reconfigured")
            wait_for(lambda: len(srv.workers()) == 2, 15, what="workers")
            with srv.raw() as c:
                self.assertReply(c.greeting, 421, "4.3.2")
            for c in held:
                self.assertEqual(c.cmd("QUIT")[0], 221)
                c.close()

            def three_free():
                cs = [srv.raw() for _ in range(3)]
                ok = all(c.greeting[0] == 220 for c in cs)
                if not ok:
                    for c in cs:
                        c.close()
                    return None
                return cs
            held = wait_for(three_free, 10, interval=0.2,
                            what="slots freed by QUIT")
            # a worker killed with its sessions frees their slots
            for pid in {srv.worker_for(c) for c in held}:
                os.kill(pid, signal.SIGKILL)
            for c in held:
                self.assertTrue(c.closed())
                c.close()
            held = wait_for(three_free, 15, interval=0.2,
                            what="slots freed by the dead worker")
        finally:
            for c in held:
                c.close()


if __name__ == "__main__":
    unittest.main()
