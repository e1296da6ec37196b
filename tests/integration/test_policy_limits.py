"""policy_limits in the server: rate limits shared by all workers (shared
memory token buckets) and kept over a reload, the core's own limits seen
from a client, and early talkers on real sockets.  Each rate's refusal,
burst and refill, IPv6 prefixes, exemptions, the greeting delay and the
configuration errors are tested on the fake clock of the plugin harness
(tests/modules/test_policy_limits.c)."""

import concurrent.futures
import re
import socket
import threading
import unittest

from pstest import PstTestCase, continue_workers, stop_workers, wait_for

MODULES = ("store_spool", "policy_limits", "policy_relay")



def conf(limits, extra=""):
    return """
%s
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test;
        %s
    }
}
""" % (extra, limits)


class LimitsTest(PstTestCase):

    def srv(self, limits, workers=2, extra="", start=True):
        return self.server(conf(limits, extra), modules=MODULES,
                           workers=workers, start=start)

    def greetings(self, srv, n, hold):
        """Open n connections at once, return the greeting codes.  Every
        connection stays open until all have their greeting, so that
        they are spread over the workers rather than served one by
        one."""
        barrier = threading.Barrier(n, timeout=20)

        def one(_):
            s = socket.create_connection(("127.0.0.1", srv.port),
                                         timeout=10)
            try:
                barrier.wait()
                data = b""
                while b"\r\n" not in data:
                    chunk = s.recv(512)
                    if not chunk:
                        break
                    data += chunk
                if hold:
                    try:
                        barrier.wait()
                    except threading.BrokenBarrierError:
                        pass
                return int(data[:3]) if data[:3].isdigit() else 0
            finally:
                s.close()
        with concurrent.futures.ThreadPoolExecutor(n) as ex:
            return list(ex.map(one, range(n)))

    def over_pids(self, srv, what):
        return set(re.findall(r"postern\[(\d+)\] worker: notice: "
                              r"session=\w+ client=\[[^]]+\] policy_limits:"
                              r" %s" % what, srv.log()))

    # -- shared rates -----------------------------------------------------

    def test_conn_rate_holds_across_workers(self):
        # An idle worker takes every connection (EPOLLEXCLUSIVE wakes the
        # first waiter), so each round runs with the other worker
        # stopped: the second worker must find the bucket the first one
        # left in shared memory.
        srv = self.srv("limit_conn_rate 10/h;", workers=2)
        a, b = srv.workers()
        try:
            stop_workers([b])
            # the start-up probe took one token; 5 more now
            for _ in range(5):
                with srv.raw() as c:
                    self.assertEqual(c.greeting[0], 220)
        finally:
            continue_workers([b])
        try:
            stop_workers([a])
            codes = self.greetings(srv, 10, hold=True)
        finally:
            continue_workers([a])
        self.assertEqual(codes.count(220), 4, codes)
        self.assertEqual(codes.count(421), 6, codes)
        self.assertEqual(self.over_pids(srv, "limit_conn_rate"), {str(b)})
        self.assertIn("limit_conn_rate 10/h (burst 10) exceeded by"
                      " 127.0.0.1", srv.log())

    def test_msg_rate_across_workers(self):
        srv = self.srv("limit_msg_rate 3/h;", workers=3)
        barrier = threading.Barrier(8, timeout=20)

        def one(_):
            with srv.raw() as c:
                c.cmd("EHLO client.test")
                barrier.wait()
                code, lines = c.cmd("MAIL FROM:<a@client.test>")
                barrier.wait()
                return code, lines[0]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(one, range(8)))
        codes = [r[0] for r in res]
        self.assertEqual(codes.count(250), 3, res)
        self.assertEqual(codes.count(451), 5, res)
        for code, text in res:
            if code == 451:
                self.assertTrue(text.startswith("4.7.1 Message rate"), text)

    def test_zone_survives_reload(self):
        srv = self.srv("limit_msg_rate 2/h;")

        def mail():
            with srv.raw() as c:
                c.cmd("EHLO client.test")
                return c.cmd("MAIL FROM:<a@client.test>")[0]
        self.assertEqual([mail(), mail()], [250, 250])
        old = set(srv.workers())
        srv.reload()
        wait_for(lambda: srv.workers() and not (set(srv.workers()) & old),
                 15, what="new workers after HUP")
        self.assertEqual(mail(), 451)

    # -- the core's limits, from a client ------------------------------------

    def test_core_limits(self):
        srv = self.srv("max_recipients 100; max_messages_per_session 2;"
                       " max_connections_per_ip 2;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            for i in range(100):
                self.assertEqual(c.cmd("RCPT TO:<u%d@example.test>" % i)[0],
                                 250)
            code, lines = c.cmd("RCPT TO:<one-more@example.test>")
            self.assertEqual((code, lines[0][:5]), (452, "4.5.3"))
            c.cmd("RSET")
            self.assertEqual(c.cmd("MAIL FROM:<a@client.test>")[0], 250)
            c.cmd("RSET")
            code, lines = c.cmd("MAIL FROM:<a@client.test>")
            self.assertEqual((code, lines[0][:5]), (452, "4.5.3"))
            with srv.raw():  # the second session: the cap is 2
                c3 = srv.raw(greet=False)
                self.addCleanup(c3.close)
                code, lines = c3.reply()
                self.assertEqual((code, lines[0][:5]), (421, "4.7.0"))

    # -- early talkers ---------------------------------------------------------

    def test_greet_delay_catches_early_talker(self):
        srv = self.srv("greet_delay 1s; early_talker reject;")
        c = srv.raw(greet=False)
        self.addCleanup(c.close)
        c.send("EHLO bot.test\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 554)
        self.assertIn("5.5.1 Protocol error: talked before the greeting",
                      lines[0])
        self.assertEqual(c.reply()[0], 503)           # its EHLO
        self.assertIn("policy_limits: early_talker reject: the client"
                      " talked before the greeting", srv.log())

    def test_bad_pipelining(self):
        srv = self.srv("early_talker reject;")
        with srv.raw() as c:
            c.send("EHLO bot.test\r\nMAIL FROM:<a@client.test>\r\n")
            code, lines = c.reply()
            self.assertEqual((code, lines[0][:5]), (550, "5.5.1"))
            self.assertIn("pipelining", lines[0])
            self.assertEqual(c.reply()[0], 503)
        # pipelining as RFC 2920 allows it is fine
        with srv.raw() as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            c.send("MAIL FROM:<a@client.test>\r\nRCPT TO:<a@example.test>\r\n"
                   "RCPT TO:<b@example.test>\r\n")
            self.assertEqual([c.reply()[0] for _ in range(3)],
                             [250, 250, 250])
        # off: served, but noted
        srv2 = self.server(conf("early_talker off;"), modules=MODULES,
                           name="limits_pipelining_off")
        with srv2.raw() as c:
            c.send("EHLO bot.test\r\nMAIL FROM:<a@client.test>\r\n")
            self.assertEqual(c.reply()[0], 250)
            self.assertEqual(c.reply()[0], 250)
        self.assertIn("early_talker (off): improper command pipelining",
                      srv2.log())


if __name__ == "__main__":
    unittest.main()
