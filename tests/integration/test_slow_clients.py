"""Slow clients (slowloris): a command must arrive whole within
smtp_command_deadline, and message data at smtp_min_data_rate or better
once smtp_data_timeout's credit is used up -- a client that trickles a
byte at a time is dropped, a slow but honest one is not.

The limits here are small so that the tests are short; nothing asserts
how fast anything happened, only whether the session survived.  Every
loop is bounded by a number of sends."""

import socket
import time

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


def start_tx(c):
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<user@example.test>")[0] == 250


def trickle(c, data, pause, limit):
    """Send data a few bytes at a time; stop after limit sends or when
    the server has answered (it closed).  Returns the sends made."""
    sent = 0
    for i in range(0, len(data), 2):
        if sent >= limit:
            break
        got = c.pending(0)
        if got:
            c.buf = got + c.buf      # the server spoke: keep it for reply()
            break
        try:
            c.send(data[i:i + 2])
        except OSError:
            break
        sent += 1
        time.sleep(pause)
    return sent


class CommandDeadlineTest(PstTestCase):

    def test_trickled_command_is_cut_off(self):
        """One byte pair every 0.2 s, each read well inside the 1 s
        idle limit: before the deadline existed every read restarted
        the timer and the session lived as long as the client liked."""
        srv = self.server(CONF % "smtp_command_timeout 1s;")
        with srv.raw(timeout=15) as c:
            line = b"EHLO " + b"x" * 200 + b".client.test\r\n"
            # 40 sends at 0.2 s is 8 s: far past the 1 s deadline
            n = trickle(c, line, 0.2, 40)
            self.assertLess(n, 40, "still served after 40 trickled sends")
            self.assertReply(c.reply(), 421, "4.4.2")
            self.assertTrue(c.closed())
        srv.wait_log(r"timeout in state COMMAND \(smtp_command_deadline\)")

    def test_deadline_apart_from_idle_limit(self):
        """smtp_command_deadline shorter than the idle limit; a command
        that comes whole, however late within the idle limit, is fine,
        and so is every pipelined command of a batch."""
        srv = self.server(CONF % "smtp_command_timeout 30s;"
                          " smtp_command_deadline 1s;")
        with srv.raw(timeout=15) as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            c.send(b"".join(b"NOOP %d\r\n" % i for i in range(50)))
            self.assertEqual([r[0] for r in c.replies(50)], [250] * 50)
            n = trickle(c, b"NOOP " + b"y" * 100 + b"\r\n", 0.2, 40)
            self.assertLess(n, 40)
            self.assertReply(c.reply(), 421, "4.4.2")


    def test_deadline_does_not_bound_the_hooks(self):
        """A MAIL that arrives whole just inside the deadline, then a
        sender check that waits 2 s for a DNS server that never answers:
        the reply is the check's 451, not a 421 for the time the hooks
        took."""
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        self.addCleanup(sink.close)
        srv = self.server("""
            smtp { smtp_command_timeout 30s; smtp_command_deadline 2s;
                   server { listen {port}; local_domains example.test;
                            sender_domain_check on;
                            sender_dns_timeout 2s;
                            smtp_reverse_lookup off; } }
        """, modules=("store_spool", "policy_recipients", "policy_relay"),
            resolver="127.0.0.1:%d" % sink.getsockname()[1])
        with srv.raw(timeout=15) as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            # about 1.6 s for the line, 0.4 s of its deadline left
            n = trickle(c, b"MAIL FROM:<a@slow.test>\r\n", 0.12, 40)
            self.assertEqual(n, 13)
            self.assertReply(c.reply(), 451, "4.1.8")
            self.assertEqual(c.cmd("NOOP")[0], 250)


class MinDataRateTest(PstTestCase):

    # the default smtp_min_data_rate (500 bytes/s) applies
    CONF = CONF % "smtp_command_timeout 30s; smtp_data_timeout 2s;"

    def test_trickled_data_is_cut_off(self):
        """Two bytes every 0.2 s (10 bytes/s) while the default minimum
        is 500 bytes/s: the 2 s of credit runs out and the session ends with
        421, nothing stored.  Before, each read restarted the 2 s."""
        srv = self.server(self.CONF)
        with srv.raw(timeout=15) as c:
            start_tx(c)
            self.assertEqual(c.cmd("DATA")[0], 354)
            n = trickle(c, b"Subject: slow\r\n\r\n" + b"z" * 200, 0.2, 60)
            self.assertLess(n, 60, "still served after 60 trickled sends")
            self.assertReply(c.reply(), 421, "4.4.2")
            self.assertTrue(c.closed())
        srv.wait_log(r"timeout in state DATA \(smtp_min_data_rate\)")
        srv.wait_tmp_empty()
        self.assertEqual(srv.queue_count(), 0)

    def test_trickled_bdat_is_cut_off(self):
        srv = self.server(self.CONF)
        with srv.raw(timeout=15) as c:
            start_tx(c)
            c.send(b"BDAT 400 LAST\r\n")
            n = trickle(c, b"w" * 400, 0.2, 60)
            self.assertLess(n, 60)
            self.assertReply(c.reply(), 421, "4.4.2")
        srv.wait_log(r"timeout in state BDAT \(smtp_min_data_rate\)")
        self.assertEqual(srv.queue_count(), 0)

    def test_trickled_bdat_chunks_are_cut_off(self):
        """One-byte chunks, each sent whole with its BDAT command, every
        0.2 s (5 bytes/s): every wait is for a command, which comes
        whole and in time, so before the rate was also checked when a
        chunk begins, the session lived as long as the client liked."""
        srv = self.server(self.CONF)
        with srv.raw(timeout=15) as c:
            start_tx(c)
            for i in range(60):
                c.send(b"BDAT 1\r\nq")
                r = c.reply()
                if r[0] != 250:
                    break
                time.sleep(0.2)
            self.assertLess(i, 59, "still served after 60 trickled chunks")
            self.assertReply(r, 421, "4.4.2")
            self.assertTrue(c.closed())
        srv.wait_log(r"timeout in state BDAT \(smtp_min_data_rate\)")
        srv.wait_tmp_empty()
        self.assertEqual(srv.queue_count(), 0)

    def test_small_bdat_chunks_earn_credit(self):
        """An honest client whose chunks come whole with their commands
        (RFC 3030 pipelining): 3 MB in 1 KiB chunks, at about 300 KB/s,
        six times the 2 s data credit in all.  Those bytes are message
        data too and earn credit, whichever read brought them in."""
        srv = self.server(self.CONF.replace("2s;", "2s; smtp_min_data_rate"
                                            " 64k;"))
        with srv.raw(timeout=30) as c:
            start_tx(c)
            chunk = b"BDAT 1024\r\n" + b"b" * 1022 + b"\r\n"
            for _ in range(48):
                c.send(chunk * 64)                    # 64 KiB of data
                self.assertEqual({r[0] for r in c.replies(64)}, {250})
                time.sleep(0.2)
            self.assertEqual(c.cmd("BDAT 0 LAST")[0], 250)
        self.assertEqual(srv.queue_count(), 1)

    def test_slow_but_honest_client_is_served(self):
        """4 MB at about 512 KiB/s: eight times the 2 s data timeout
        in all, at 256 times the minimum rate; never cut off."""
        srv = self.server(self.CONF.replace("2s;", "2s; smtp_min_data_rate"
                                            " 64k;"))
        with srv.raw(timeout=30) as c:
            start_tx(c)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: big and slow\r\n\r\n")
            piece = (b"a" * 1022 + b"\r\n") * 64        # 64 KiB
            for _ in range(64):
                c.send(piece)
                time.sleep(0.125)
            c.send(b".\r\n")
            self.assertEqual(c.reply()[0], 250)
        self.assertEqual(srv.queue_count(), 1)
