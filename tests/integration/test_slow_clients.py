"""Slow clients (slowloris): a command must arrive whole within
smtp_command_deadline, and message data at smtp_min_data_rate or better
once smtp_data_timeout's credit is used up -- a client that trickles a
byte at a time is dropped, a slow but honest one is not.

The limits here are small so that the tests are short; nothing asserts
how fast anything happened, only whether the session survived.  Every
loop is bounded by a number of sends."""

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
