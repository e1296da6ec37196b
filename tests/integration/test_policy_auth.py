"""Policy and AUTH together: rules on the authenticated identity
(policy_access `auth`), relaying for authenticated clients
(policy_relay `relay_authenticated`) and greylisting's exemption of
authenticated senders -- with a real login through auth_file.

AUTH is allowed without TLS here (auth_allow_plaintext on) so that the
tests exercise the policy side; test_auth.py covers AUTH over TLS.
"""

import os
import unittest

from pstest import PstTestCase, passwd_line, plain

MODULES = ("store_spool", "auth_file", "policy_access", "policy_greylist",
           "policy_relay")



class PolicyAuthTest(PstTestCase):

    def server_with(self, rules, relay_auth="on", greylist="off"):
        srv = self.server("""
smtp {
    hostname mx.example.test;
    auth_allow_plaintext on;
    auth_failure_delay 0;
    auth_users_file {dir}/users;
    relay_authenticated %s;
    greylist %s;
    greylist_delay 1h;
    server {
        listen {port};
        local_domains example.test;
        %s
    }
}
""" % (relay_auth, greylist, rules), modules=MODULES, start=False)
        users = os.path.join(srv.dir, "users")
        with open(users, "w") as f:
            for user, pw in (("alice", "wonderland"), ("mallory", "evil")):
                f.write(passwd_line(user, pw, "-m", "sha512crypt") + "\n")
        os.chmod(users, 0o640)
        srv.start()
        return srv

    def login(self, srv, user, pw):
        c = srv.raw()
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("AUTH PLAIN " + plain(user, pw)), 235)
        return c

    def test_relay_for_authenticated_clients_only(self):
        srv = self.server_with("")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            self.assertReply(c.cmd("RCPT TO:<x@elsewhere.test>"), 550,
                             "5.7.1")
        with self.login(srv, "alice", "wonderland") as c:
            self.assertReply(c.cmd("MAIL FROM:<alice@example.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<x@elsewhere.test>"), 250)

    def test_relay_authenticated_off(self):
        srv = self.server_with("", relay_auth="off")
        with self.login(srv, "alice", "wonderland") as c:
            c.cmd("MAIL FROM:<alice@example.test>")
            self.assertReply(c.cmd("RCPT TO:<x@elsewhere.test>"), 550,
                             "5.7.1")
            # our own domains stay open to her
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)

    def test_access_rule_on_auth_identity(self):
        srv = self.server_with(
            'access_rule auth = mallory reject 550 5.7.1 "Not you";\n'
            '        access_rule auth ~ "^ali" header X-Auth-Rule "%s";'
            % "matched")
        with self.login(srv, "mallory", "evil") as c:
            self.assertReply(c.cmd("MAIL FROM:<m@example.test>"), 550,
                             "Not you")
        with self.login(srv, "alice", "wonderland") as c:
            self.assertReply(c.cmd("MAIL FROM:<alice@example.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(b"Subject: x\r\n\r\nx\r\n.\r\n")
            self.assertReply(c.reply(), 250)
        qid = srv.queue_ids()[0]
        self.assertIn("prepend X-Auth-Rule:+20matched", srv.envelope(qid))
        # an unauthenticated session has no identity: the rule is skipped
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertReply(c.cmd("MAIL FROM:<mallory@client.test>"), 250)

    def send_with_auth_param(self, c, sender):
        self.assertReply(c.cmd("MAIL FROM:<%s> AUTH=alice+40example.test"
                               % sender), 250)
        self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"x\r\n.\r\n")
        self.assertReply(c.reply(), 250)

    def test_mail_auth_parameter_in_envelope(self):
        """RFC 4954 5: AUTH= of an authenticated client is kept for the
        relay; from anyone else it becomes <>."""
        srv = self.server_with("")
        with self.login(srv, "alice", "wonderland") as c:
            self.send_with_auth_param(c, "alice@example.test")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.send_with_auth_param(c, "stranger@client.test")
        envs = {}
        for q in srv.queue_ids():
            env = srv.envelope(q)
            envs["alice" if "sender alice" in env else "stranger"] = env
        self.assertIn("\nauth-param alice@example.test\n", envs["alice"])
        self.assertIn("\nauth-param <>\n", envs["stranger"])

    def test_greylist_spares_authenticated_senders(self):
        srv = self.server_with("", greylist="on")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 451)
        with self.login(srv, "alice", "wonderland") as c:
            c.cmd("MAIL FROM:<alice@example.test>")
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)


if __name__ == "__main__":
    unittest.main()
