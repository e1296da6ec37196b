"""policy_dnsbl in the server, against dnsmasq on loopback through the
core's resolver (libunbound): a blocklist and an allowlist end to end
with real clients, reverse DNS including a zone dnsmasq refuses, the
core's own reverse lookup reused, and slow lists that do not hold the
worker.  Clients connect from different loopback addresses (127.0.0.0/8
is all ours) to play listed and unlisted hosts.  Weights, thresholds,
actions, failed lookups, exemptions, each rdns_check case and the
configuration errors are tested on scripted DNS in the plugin harness
(tests/modules/test_policy_dnsbl.c)."""

import os
import shutil
import smtplib
import socket
import time
import unittest

from pstest import RUN, PstTestCase, RawClient, wait_for

MODULES = ("store_spool", "policy_dnsbl", "policy_relay")


class SourceClient(RawClient):
    """RawClient from a chosen loopback source address."""

    def __init__(self, port, source, greet=True, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.greeting = self.reply() if greet else None


RECORDS = [
    "--local=/test/",
    "--local=/0.0.127.in-addr.arpa/",
    # blocklist bl.test: 127.0.0.2 -> .2, 127.0.0.3 -> .10, .4 -> .2,
    # .6 -> .11; other.test lists .3; allowlist wl.test lists .4
    "--host-record=2.0.0.127.bl.test,127.0.0.2",
    "--host-record=3.0.0.127.bl.test,127.0.0.10",
    "--host-record=4.0.0.127.bl.test,127.0.0.2",
    "--host-record=6.0.0.127.bl.test,127.0.0.11",
    "--host-record=3.0.0.127.other.test,127.0.0.1",
    "--host-record=4.0.0.127.wl.test,127.0.0.3",
    # reverse DNS: .5 good, .6 PTR to a name pointing elsewhere, .7 none
    "--host-record=good5.test,127.0.0.5",
    "--ptr-record=6.0.0.127.in-addr.arpa,liar6.test",
    "--host-record=liar6.test,127.0.0.99",
]


class DnsblTest(PstTestCase):

    def setUp(self):
        super().setUp()
        name = "dnsbl_" + self.id().split(".")[-1] + "_dns"
        # a fresh query log for every run
        shutil.rmtree(os.path.join(RUN, name), ignore_errors=True)
        self.dns = self.dnsmasq(RECORDS, name=name)

    def srv(self, body, **kw):
        return self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            %s } }
        """ % body, modules=MODULES, resolver=self.dns.address, **kw)

    def greeting(self, srv, source):
        with SourceClient(srv.port, source, greet=False) as c:
            return c.reply()

    def test_weights_threshold_and_allowlist(self):
        srv = self.srv("""
            smtp_reverse_lookup off;
            dnsbl bl.test=127.0.0.2*2 "bl.test=127.0.0.[10;11]*1"
                  other.test fail.example*5;
            dnswl wl.test*5;
            dnsbl_threshold 2;
        """)
        code, lines = self.greeting(srv, "127.0.0.2")
        self.assertEqual(code, 554)
        self.assertIn("5.7.1 Service unavailable; client [127.0.0.2]"
                      " blocked using bl.test", lines[0])
        self.assertEqual(self.greeting(srv, "127.0.0.3")[0], 554)
        self.assertEqual(self.greeting(srv, "127.0.0.4")[0], 220)
        self.assertEqual(self.greeting(srv, "127.0.0.5")[0], 220)
        self.assertEqual(self.greeting(srv, "127.0.0.6")[0], 220)
        # a refused client may only QUIT (RFC 5321 3.1)
        with SourceClient(srv.port, "127.0.0.2") as c:
            self.assertEqual(c.cmd("EHLO x.test")[0], 503)
            self.assertEqual(c.cmd("QUIT")[0], 221)
        # smtplib as a real client sees the refusal
        with self.assertRaises(smtplib.SMTPConnectError) as e:
            smtplib.SMTP("127.0.0.1", srv.port, timeout=10,
                         source_address=("127.0.0.3", 0))
        self.assertEqual(e.exception.smtp_code, 554)
        log = srv.log()
        self.assertIn("policy_dnsbl: reject client 127.0.0.3: score 2 >="
                      " dnsbl_threshold 2 (bl.test=127.0.0.[10;11]*1"
                      " other.test)", log)
        self.assertIn("policy_dnsbl: pass client 127.0.0.4: score -3 <"
                      " dnsbl_threshold 2 (bl.test=127.0.0.2*2"
                      " wl.test*5(allow))", log)
        self.assertIn("lookup of 5.0.0.127.fail.example failed", log)
        q = self.dns.queries()
        self.assertIn("2.0.0.127.bl.test", q)
        self.assertEqual(q.count("query[A] 5.0.0.127.bl.test"), 1)

    def test_fcrdns(self):
        srv = self.srv("smtp_reverse_lookup off; rdns_check fcrdns;")
        self.assertEqual(self.greeting(srv, "127.0.0.5")[0], 220)
        code, lines = self.greeting(srv, "127.0.0.6")
        self.assertEqual(code, 554)
        self.assertIn("5.7.25", lines[0])
        self.assertIn("does not match", lines[0])
        code, lines = self.greeting(srv, "127.0.0.7")
        self.assertEqual(code, 554)
        self.assertIn("5.7.25 Client host rejected: cannot find your"
                      " reverse hostname", lines[0])
        # dnsmasq refuses this reverse zone: a failed lookup, 421
        code, lines = self.greeting(srv, "127.0.1.8")
        self.assertEqual(code, 421)
        self.assertIn("4.7.25", lines[0])
        log = srv.log()
        self.assertIn("rdns_check passed: good5.test", log)
        self.assertIn("rdns_check fcrdns: no PTR name resolves back", log)

    def test_core_lookup(self):
        # with the core's own FCrDNS the module reuses its result
        srv2 = self.srv("rdns_check fcrdns;", name="dnsbl_core_rdns")
        self.assertEqual(self.greeting(srv2, "127.0.0.5")[0], 220)
        self.assertEqual(self.greeting(srv2, "127.0.0.6")[0], 554)

    def test_slow_lists_do_not_block_the_worker(self):
        # a resolver that never answers: one client waits for its lookups
        # to time out while another (exempt) one is served at once by the
        # same, single worker
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        self.addCleanup(sink.close)
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            smtp_reverse_lookup off;
                            dnsbl slow.test; dnsbl_timeout 3s;
                            dnsbl_exempt 127.0.0.9; } }
        """, modules=MODULES, workers=1, start=False,
            resolver="127.0.0.1:%d" % sink.getsockname()[1])
        srv.start(wait=False)
        wait_for(lambda: self._greets(srv, "127.0.0.9"), 15,
                 what="postern")
        t0 = time.monotonic()
        slow = SourceClient(srv.port, "127.0.0.2", greet=False)
        self.addCleanup(slow.close)
        fast = SourceClient(srv.port, "127.0.0.9")
        self.assertEqual(fast.greeting[0], 220)
        self.assertLess(time.monotonic() - t0, 2.0)
        fast.close()
        # the slow one gets its greeting after the timeout: not listed
        self.assertEqual(slow.reply()[0], 220)
        self.assertGreater(time.monotonic() - t0, 2.5)

    def _greets(self, srv, source):
        try:
            with SourceClient(srv.port, source, greet=False,
                              timeout=2) as c:
                return c.reply()[0] == 220
        except OSError:
            return False



if __name__ == "__main__":
    unittest.main()
