"""conf/gateway.conf.example: it passes "postern -t", its hook chains are
in the documented order, and, moved to loopback with dnsmasq as its
resolver, every policy module works together on real traffic: a
legitimate message gets through after greylisting, and each kind of
abuse is refused by the module meant for it."""

import os
import re
import shutil
import socket
import subprocess
import time
import unittest

from pstest import POSTERN, ROOT, RUN, PstTestCase, RawClient, wait_for

EXAMPLE = os.path.join(ROOT, "conf", "gateway.conf.example")
ALL = ("store_spool", "policy_limits", "policy_access", "policy_dnsbl",
       "policy_recipients", "policy_greylist", "policy_relay")


def client(port, source, greet=True):
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(source, 0))
    c = RawClient.__new__(RawClient)
    c.sock, c.buf = s, b""
    c.greeting = c.reply() if greet else None
    return c


class GatewayConfTest(PstTestCase):

    def test_example_passes_t_and_orders_hooks(self):
        p = subprocess.run([POSTERN, "-p", ROOT + "/", "-c", EXAMPLE, "-T"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        rcpt = re.search(r"#\s+rcpt\s*:(.*)", p.stdout).group(1).split()
        names = [x.split("(")[0] for x in rcpt]
        self.assertEqual(names, ["policy_limits", "policy_access",
                                 "policy_relay", "policy_recipients",
                                 "policy_greylist", "policy_relay"],
                         p.stdout)
        connect = re.search(r"#\s+connect\s*:(.*)", p.stdout).group(1)
        self.assertEqual([x.split("(")[0] for x in connect.split()],
                         ["policy_limits", "policy_access", "policy_dnsbl"])

    def test_all_modules_on_loopback(self):
        name = "gateway_dns"
        shutil.rmtree(os.path.join(RUN, name), ignore_errors=True)
        dns = self.dnsmasq([
            "--local=/test/", "--local=/example/",
            "--local=/0.0.127.in-addr.arpa/",
            # our own domain has its MX, as it would
            "--mx-host=example.test,mx.example.test,10",
            # the good client: 127.0.0.5, mail.client.test, FCrDNS ok
            "--host-record=mail.client.test,127.0.0.5",
            "--mx-host=client.test,mail.client.test,10",
            # a listed client: 127.0.0.6 (PTR ok, but on zen)
            "--host-record=listed.client.test,127.0.0.6",
            "--host-record=6.0.0.127.zen.spamhaus.example,127.0.0.2",
            # no reverse DNS: 127.0.0.7
        ], name=name)
        with open(EXAMPLE) as f:
            text = f.read()
        subst = [
            ("listen 0.0.0.0:25;", "listen {port};"),
            ("resolver 127.0.0.1:53;", "resolver %s;" % dns.address),
            ("daemon on;", "daemon off;"),
            ("error_log logs/postern.log notice;",
             "error_log {dir}/error.log info;"),
            ("pid logs/postern.pid;", "pid {dir}/postern.pid;"),
            ("spool_dir spool;", "spool_dir {spool};"),
            ("include policy/access.rules;",
             "include {root}/conf/policy/access.rules;"),
            ("greet_delay 3s;", "greet_delay 500ms;"),
            ("greylist_delay 5m;", "greylist_delay 2s;"),
            # loopback stands for the internet here: trust 127.0.0.200
            # only, not the whole of 127.0.0.0/8
            ("127.0.0.0/8", "127.0.0.200/32"),
        ]
        for a, b in subst:
            self.assertIn(a, text)
            text = text.replace(a, b)
        srv = self.server(text, preamble=False, modules=ALL, start=False)
        port = srv.port
        srv.start(wait=False)

        def answers():
            if srv.proc.poll() is not None:
                raise AssertionError(srv.stderr())
            try:
                c = client(port, "127.0.0.200", greet=False)
            except OSError:
                return False
            try:
                return c.reply()[0] == 220
            finally:
                c.close()
        wait_for(answers, 15, what="the gateway")

        # the legitimate path: greylisted once, then through
        def send_once():
            c = client(port, "127.0.0.5")
            try:
                self.assertEqual(c.greeting[0], 220)
                self.assertEqual(c.cmd("EHLO mail.client.test")[0], 250)
                self.assertEqual(c.cmd("MAIL FROM:<sam@client.test>")[0],
                                 250)
                r = c.cmd("RCPT TO:<Alice+news@example.test>")
                if r[0] != 250:
                    return r
                self.assertEqual(c.cmd("DATA")[0], 354)
                c.send("Subject: hi\r\nMessage-ID: <1@client.test>\r\n"
                       "Precedence: bulk\r\n\r\nhello\r\n.\r\n")
                return c.reply()
            finally:
                c.close()
        code, lines = send_once()
        self.assertEqual((code, lines[0][:5]), (451, "4.7.1"))
        time.sleep(2.3)
        code, lines = send_once()
        self.assertEqual(code, 250, lines)
        qid = srv.queue_ids()[0]
        self.assertIn("prepend X-Bulk:+20yes", srv.envelope(qid))

        c = client(port, "127.0.0.5")
        self.addCleanup(c.close)
        c.cmd("EHLO mail.client.test")
        c.cmd("MAIL FROM:<sam@client.test>")
        # relay attempt: refused at once, not greylisted
        code, lines = c.cmd("RCPT TO:<victim@elsewhere.example>")
        self.assertEqual((code, lines[0][:5]), (550, "5.7.1"))
        # unknown user
        code, lines = c.cmd("RCPT TO:<nobody@example.test>")
        self.assertEqual((code, lines[0][:5]), (550, "5.1.1"))
        # a spamtrap (access rule)
        code, lines = c.cmd("RCPT TO:<spamtrap7@example.test>")
        self.assertEqual((code, lines[0][:5]), (550, "5.1.1"))
        c.cmd("RSET")
        # our own domain as sender from outside
        code, lines = c.cmd("MAIL FROM:<ceo@example.test>")
        self.assertEqual((code, lines[0][:5]), (553, "5.7.1"))
        # a sender domain that does not exist
        code, lines = c.cmd("MAIL FROM:<x@nowhere.test>")
        self.assertEqual((code, lines[0][:5]), (550, "5.1.8"))

        # a listed client
        c2 = client(port, "127.0.0.6", greet=False)
        self.addCleanup(c2.close)
        code, lines = c2.reply()
        self.assertEqual((code, lines[0][:5]), (554, "5.7.1"))
        # a client without reverse DNS
        c3 = client(port, "127.0.0.7", greet=False)
        self.addCleanup(c3.close)
        code, lines = c3.reply()
        self.assertEqual((code, lines[0][:6]), (554, "5.7.25"))
        # an early talker
        c4 = socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=("127.0.0.5", 0))
        self.addCleanup(c4.close)
        c4.sendall(b"EHLO bot\r\n")
        self.assertTrue(c4.recv(512).startswith(b"554 5.5.1"))
        # the trusted network relays
        c5 = client(port, "127.0.0.200")
        self.addCleanup(c5.close)
        c5.cmd("EHLO relay.example.test")
        self.assertEqual(c5.cmd("MAIL FROM:<ceo@example.test>")[0], 250)
        self.assertEqual(c5.cmd("RCPT TO:<partner@elsewhere.example>")[0],
                         250)

        log = srv.log()
        for what in ("policy_greylist: tempfail", "policy_greylist: pass",
                     "policy_relay: reject <victim@elsewhere.example>",
                     "policy_recipients: reject <nobody@example.test>",
                     "policy_access: rule", "policy_dnsbl: reject client"
                     " 127.0.0.6", "rdns_check fcrdns",
                     "policy_limits: early_talker reject",
                     "protect_local_senders", "sender_domain_check"):
            self.assertIn(what, log)
        # the relay attempt never reached greylisting
        self.assertNotIn("<victim@elsewhere.example>: new triplet", log)


if __name__ == "__main__":
    unittest.main()
