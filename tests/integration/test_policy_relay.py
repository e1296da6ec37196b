"""policy_relay: never an open relay.

The address tricks of issue #4 as a table run against the running server
(one connection per case, so error counters never interfere), then the
ways a client earns the right to relay, the default configuration, and
protect_local_senders.  Expected codes: 250 accepted, 550 relay denied,
501 refused by the core's address parser, 553 non-ASCII without
SMTPUTF8.
"""

import unittest

from pstest import PstTestCase

CONF = """
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test "bücher.test" xn--caf-dma.test
                      "[192.0.2.1]" "[IPv6:2001:db8::1]";
        relay_domains partner.test;
    }
    server {
        listen {port2};
        local_domains example.test;
        relay_networks 192.0.2.0/24 127.0.0.0/8;
    }
}
"""

# (recipient as sent inside RCPT TO:, needs SMTPUTF8, expected code)
TRICKS = [
    ("<user@example.test>", False, 250),
    ("<USER@EXAMPLE.TEST>", False, 250),                  # mixed case
    ("<user@Example.Test>", False, 250),
    ("<user@partner.test>", False, 250),                  # relay_domains
    ("<Postmaster>", False, 250),                         # RFC 5321 4.5.1
    ("<user@other.test>", False, 550),
    ("<user%other.test@example.test>", False, 550),       # percent hack
    ("<user%other.test@partner.test>", False, 550),
    ("<other.test!user@example.test>", False, 550),       # bang path
    ("<@example.test:user@other.test>", False, 550),      # source route
    ("<@example.test,@mx.test:user@other.test>", False, 550),
    ("<@other.test:user@example.test>", False, 250),      # route ignored
    ('<"user@other.test"@example.test>', False, 550),     # quoted @
    ('<"user%other.test"@example.test>', False, 550),
    ('<"user\\@other.test"@example.test>', False, 550),
    ('<"john doe"@example.test>', False, 250),            # quoted, harmless
    ("<user@other.test@example.test>", False, 501),       # two @
    ("<user@example.test.>", False, 501),                 # trailing dot
    ("<user@example..test>", False, 501),
    ("<user@.example.test>", False, 501),
    ("<user@-example.test>", False, 501),
    ("<user@example.test.other.test>", False, 550),       # suffix trick
    ("<user@sub.example.test>", False, 550),              # no subdomains
    ("<user@notexample.test>", False, 550),
    ("<user@example.tes>", False, 550),
    ("<user@[127.0.0.1]>", False, 550),                   # IP literal
    ("<user@[IPv6:::1]>", False, 550),
    ("<user@[192.0.2.1]>", False, 250),                   # listed literal
    ("<user@[IPv6:2001:DB8:0::1]>", False, 250),          # canonical form
    ("<user@[192.0.2.01]>", False, 501),
    ("<user@[300.0.2.1]>", False, 501),
    ("user@example.test", False, 501),                    # no brackets
    ("<user@xn--bcher-kva.test>", False, 250),            # A-label
    ("<user@XN--BCHER-KVA.TEST>", False, 250),
    ("<user@bücher.test>", True, 250),                    # U-label
    ("<user@BÜCHER.TEST>", True, 250),                    # folded
    ("<user@café.test>", True, 250),                      # listed as A-label
    ("<user@bücher.test>", False, 553),                   # no SMTPUTF8
    ("<user@exаmple.test>", True, 550),                   # Cyrillic a
    ("<user@example．test>", True, 250),                  # full-width dot
    ("<user@example.test．>", True, 550),                 # ... trailing
    ("<user@xn--zz.test>", False, 550),                   # bad punycode
    ("<user@bücher.test.other.test>", True, 550),
]


class RelayTricksTest(PstTestCase):

    def rcpt(self, srv, rcpt, utf8, port=None):
        with srv.raw(port=port) as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            mail = "MAIL FROM:<sender@client.test>"
            if utf8:
                mail += " SMTPUTF8"
            self.assertEqual(c.cmd(mail)[0], 250)
            return c.cmd(("RCPT TO:" + rcpt).encode("utf-8"))

    def test_address_tricks(self):
        srv = self.server(CONF)
        failures = []
        for rcpt, utf8, want in TRICKS:
            code, lines = self.rcpt(srv, rcpt, utf8)
            if code != want:
                failures.append("%s: got %d %s, want %d"
                                % (rcpt, code, " ".join(lines), want))
            if want == 550 and code == 550:
                self.assertIn("5.7.1", lines[0])
        self.assertEqual(failures, [], "\n".join(failures))
        # every rejection is logged with its reason
        log = srv.log()
        self.assertIn("policy_relay: reject <user@other.test>: relay access"
                      " denied", log)
        self.assertIn("routing characters in the local part", log)
        self.assertIn("policy_relay: accept <user@example.test>:"
                      " local_domains example.test", log)

    def test_relay_networks_may_relay(self):
        srv = self.server(CONF)
        port2 = srv.ports[1]
        for rcpt in ("<user@other.test>", "<user%other.test@example.test>",
                     "<user@[127.0.0.1]>"):
            code, lines = self.rcpt(srv, rcpt, False, port=port2)
            self.assertEqual(code, 250, (rcpt, lines))
        self.assertIn("relaying for relay_networks 127.0.0.0/8", srv.log())

    def test_relay_with_real_client(self):
        srv = self.server(CONF)
        # swaks as a second, independent client
        import subprocess
        p = subprocess.run(["swaks", "--server", "127.0.0.1",
                            "--port", str(srv.port), "--from",
                            "a@client.test", "--to", "victim@other.test",
                            "--helo", "client.test", "--timeout", "10"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("550 5.7.1", p.stdout)
        self.assertEqual(srv.queue_count(), 0)

    def test_default_relays_nothing(self):
        # the module loaded without any list: nothing is accepted
        srv = self.server("""
            smtp { server { listen {port}; } }
        """, name="relay_default_module")
        for rcpt in ("<user@example.test>", "<user@localhost>",
                     "<user@[127.0.0.1]>"):
            self.assertEqual(self.rcpt(srv, rcpt, False)[0], 550, rcpt)
        # and no policy module at all: the core refuses as well
        srv2 = self.server("""
            smtp { server { listen {port}; } }
        """, modules=("store_spool",), name="relay_default_core")
        code, lines = self.rcpt(srv2, "<user@example.test>", False)
        self.assertEqual(code, 550)
        self.assertIn("5.7.1", lines[0])

    def test_protect_local_senders(self):
        srv = self.server("""
            smtp { server {
                listen {port};
                local_domains example.test;
                protect_local_senders on;
            }
            server {
                listen {port2};
                local_domains example.test;
                protect_local_senders on;
                relay_networks 127.0.0.1;
            } }
        """)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            code, lines = c.cmd("MAIL FROM:<ceo@EXAMPLE.test>")
            self.assertEqual(code, 553)
            self.assertIn("5.7.1", lines[0])
            self.assertReply(c.cmd("MAIL FROM:<>"), 250)
            c.cmd("RSET")
            self.assertReply(c.cmd("MAIL FROM:<a@other.test>"), 250)
        with srv.raw(port=srv.ports[1]) as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<ceo@example.test>"), 250)
        self.assertIn("protect_local_senders", srv.log())

    def test_bad_domain_in_config(self):
        for bad in ("example.test.", ".example.test", "xn--zz.test",
                    "[1.2.3]"):
            srv = self.server("""
                smtp { server { listen {port};
                    local_domains good.test "%s"; } }
            """ % bad, start=False, name="relay_bad_conf")
            self.assertNotEqual(srv.start(expect_fail=True), 0)
            self.assertIn('invalid domain "%s" in "local_domains"' % bad,
                          srv.stderr())
            self.assertRegex(srv.stderr(), r"postern\.conf:\d+:")


if __name__ == "__main__":
    unittest.main()
