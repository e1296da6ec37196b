"""Delivery transports (issue #10): relay_smarthost (an upstream relay
with AUTH over verified TLS, fallback between hosts), deliver_lmtp (a
real Dovecot LMTP server started by the test: per-recipient replies
after the data, a unix socket and TCP), and the transport table
(exact, subdomain, PCRE2 and recipient keys; reject and hold)."""

import os
import shutil
import ssl
import subprocess
import tempfile
import time
import unittest

from aiosmtpd.controller import Controller

from pstest import PstTestCase, POSTERN, ROOT, free_port, wait_for
from psttls import Certs
from test_relay import state_files
from test_auth_dovecot import Dovecot
from test_send import Sink, authenticator

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
LMTP = "/usr/lib/dovecot/lmtp"

RECORDS = ["--local=/test/",
           "--mx-host=ok.test,mx.ok.test,10",
           "--mx-host=sub.ok.test,mx.ok.test,10",
           "--mx-host=re7.test,mx.ok.test,10",
           "--mx-host=slow.test,mx.ok.test,10",
           "--host-record=mx.ok.test,127.0.0.1",
           "--host-record=smtp.relay.test,127.0.0.1"]


class AuthSink(Sink):
    """Sink that also keeps who authenticated and whether TLS was up."""

    def __init__(self):
        super().__init__()
        self.sessions = []

    async def handle_DATA(self, server, session, envelope):
        self.sessions.append((session.authenticated,
                              getattr(session, "login_data", None),
                              server.transport.get_extra_info("sslcontext")
                              is not None))
        return await super().handle_DATA(server, session, envelope)


class TransportCase(PstTestCase):

    def setUp(self):
        super().setUp()
        self.dir = os.path.join(ROOT, "objs", "tests", "run",
                                "tr-" + self.id().split(".")[-1])
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)

    def sink(self, handler=None, **kw):
        handler = handler or Sink()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         decode_data=False, **kw)
        ctl.start()
        self.addCleanup(ctl.stop)
        handler.port = port
        return handler

    def relay(self, conf, domains="ok.test sub.ok.test a.sub.ok.test"
              " re7.test slow.test far.test reject.test example.test"):
        dns = self.dnsmasq(RECORDS)
        return self.server("""
relay_min_backoff 1s;
relay_max_backoff 2s;
%s
smtp {
    server {
        listen {port};
        hostname mx.postern.test;
        relay_domains %s;
    }
}
""" % (conf, domains), resolver=dns.address)

    def received(self, handler, n, timeout=30):
        wait_for(lambda: len(handler.messages) >= n, timeout,
                 what="%d message(s) at the sink" % n)
        return handler.messages

    def rcpts(self, handler):
        return sorted(r for m in handler.messages for r in m[1])


class SmarthostTest(TransportCase):

    def pki(self):
        certs = Certs(os.path.join(self.dir, "pki"))
        ca = certs.ca()
        crt, key = certs.issue("relay", "smtp.relay.test", ca=ca)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(crt, key)
        return ca, ctx

    def auth_file(self, text):
        path = os.path.join(self.dir, "relay.auth")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def test_auth_over_verified_tls(self):
        """Mail for a domain without any DNS record goes to the relay
        host (found by name through the test's DNS), over STARTTLS whose
        certificate is verified, with AUTH from the auth file."""
        ca, ctx = self.pki()
        s = self.sink(AuthSink(), tls_context=ctx, require_starttls=True,
                      authenticator=authenticator, auth_required=True)
        auth = self.auth_file("# the relay's account\nalice s3cret-pw\n")
        srv = self.relay("""
load_module {modules}/relay_smarthost.so;
relay_host smtp.relay.test:%d;
relay_host_auth_file %s;
relay_tls_ca_file %s;
""" % (s.port, auth, ca.cert))
        self.assertEqual(srv.send(rcpts=("a@far.test", "b@ok.test")), {})
        self.received(s, 1)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        self.assertEqual(self.rcpts(s), ["a@far.test", "b@ok.test"])
        authed, login, tls = s.sessions[0]
        self.assertTrue(authed)
        self.assertTrue(tls)
        self.assertRegex(srv.log(), r"to=<a@far.test>, relay=smtp.relay."
                         r"test\[127.0.0.1\]:%d, .*status=sent" % s.port)

    def test_unverified_relay_gets_nothing(self):
        """The default relay_host_tls verify: a certificate from an
        unknown CA defers the mail and no password is sent."""
        ca, ctx = self.pki()
        s = self.sink(AuthSink(), tls_context=ctx, require_starttls=True,
                      authenticator=authenticator, auth_required=True)
        auth = self.auth_file("alice s3cret-pw\n")
        srv = self.relay("""
load_module {modules}/relay_smarthost.so;
relay_host smtp.relay.test:%d;
relay_host_auth_file %s;
""" % (s.port, auth))
        self.assertEqual(srv.send(rcpts=("a@far.test",)), {})
        srv.wait_log(r"to=<a@far.test>.*status=deferred", timeout=20)
        self.assertEqual(s.messages, [])
        self.assertRegex(srv.log(), r"(?i)certificate|verif")

    def test_fallback_to_the_next_host(self):
        """A relay host that refuses connections: the next one in the
        list takes the mail."""
        s = self.sink()
        dead = free_port()
        srv = self.relay("""
load_module {modules}/relay_smarthost.so;
relay_host [127.0.0.1]:%d smtp.relay.test:%d;
relay_host_tls may;
""" % (dead, s.port))
        self.assertEqual(srv.send(rcpts=("a@far.test",)), {})
        self.received(s, 1)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        self.assertRegex(srv.log(), r"relay=smtp.relay.test\[127.0.0.1\]"
                         r":%d, .*status=sent" % s.port)

    def test_config_errors(self):
        for conf, msg in (
                ("load_module {modules}/relay_smarthost.so;\n",
                 "without relay_host"),
                ("load_module {modules}/relay_smarthost.so;\n"
                 "relay_host smtp.relay.test:99999;\n", "invalid host"),
                ("load_module {modules}/relay_smarthost.so;\n"
                 "relay_host h.test;\nrelay_host_auth_file /nonexistent;\n",
                 "/nonexistent"),
                ("transport x.test lmtp;\n", "no loaded module is the"
                 " transport \"lmtp\""),
                ("transport x.test reject 250 fine;\n", "4xx or 5xx"),
                ("transport x.test reject 550 4.1.1 no;\n",
                 "does not go with"),
                ("transport ~(x x.test mx;\n", "regular expression")):
            srv = self.server("load_module {modules}/relay_mx.so;\n" + conf
                              + "smtp { server { listen {port}; } }",
                              start=False, name="cfg")
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0, conf)
            self.assertIn(msg, r.stderr, conf)
            self.assertRegex(r.stderr, r"postern.conf:\d+", conf)


class TableTest(TransportCase):

    def test_keys_and_reject(self):
        """Exact, subdomain, regex and recipient keys pick the smarthost;
        the rest goes by MX; a reject rule bounces its recipient with the
        rule's reply; the first matching rule wins."""
        mx = self.sink()
        relay = self.sink()
        srv = self.relay("""
load_module {modules}/relay_mx.so;
relay_mx_port %d;
load_module {modules}/relay_smarthost.so;
relay_host [127.0.0.1]:%d;
relay_host_tls none;
transport vip@ok.test smarthost;
transport reject.test reject 550 5.7.1 no mail for reject.test here;
transport .sub.ok.test smarthost;
transport ~^re[0-9]+\\.test$ smarthost;
transport re7.test mx;
""" % (mx.port, relay.port))
        self.assertEqual(srv.send(
            sender="s@ok.test",
            rcpts=("a@ok.test", "vip@ok.test", "b@sub.ok.test",
                   "c@a.sub.ok.test", "d@re7.test", "e@reject.test")), {})
        wait_for(lambda: len(self.rcpts(mx)) + len(self.rcpts(relay)) >= 6,
                 30, what="5 recipients and a bounce")
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        self.assertEqual(self.rcpts(relay),
                         ["c@a.sub.ok.test", "d@re7.test", "vip@ok.test"])
        # a@ok.test, b@sub.ok.test (the subdomain key is not the domain
        # itself) and the bounce to s@ok.test
        self.assertEqual(self.rcpts(mx),
                         ["a@ok.test", "b@sub.ok.test", "s@ok.test"])
        self.assertRegex(srv.log(), r"to=<e@reject.test>, .*dsn=5\.7\.1, "
                         r"status=bounced \(550 5\.7\.1 no mail for "
                         r"reject\.test here\)")

    def test_reload_applies_a_new_table(self):
        """postern -s reload (HUP): the new table decides, for the mail
        already queued as for new mail."""
        first = self.sink()
        second = self.sink()
        conf = """
load_module {modules}/relay_mx.so;
load_module {modules}/relay_smarthost.so;
relay_host [127.0.0.1]:%d;
relay_host_tls none;
transport slow.test hold;
transport * smarthost;
"""
        srv = self.relay(conf % first.port)
        self.assertEqual(srv.send(rcpts=("a@slow.test",)), {})
        srv.wait_log(r"held by the transport table")
        srv._conf_args = (srv._conf_args[0].replace(
            "[127.0.0.1]:%d" % first.port, "[127.0.0.1]:%d" % second.port),
            ) + srv._conf_args[1:]
        srv.write_conf(*srv._conf_args)
        srv.reload()
        srv.wait_log(r"queue process ready", count=2, timeout=20)
        r = srv.run_tool("queue", "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.send(rcpts=("b@ok.test",)), {})
        self.received(second, 2)
        self.assertEqual(self.rcpts(second), ["a@slow.test", "b@ok.test"])
        self.assertEqual(first.messages, [])

    def test_hold_rule(self):
        """A hold rule holds a new message (durably); released, it goes
        where the next rules say."""
        relay = self.sink()
        srv = self.relay("""
load_module {modules}/relay_mx.so;
load_module {modules}/relay_smarthost.so;
relay_host [127.0.0.1]:%d;
relay_host_tls none;
transport slow.test hold;
transport * smarthost;
""" % relay.port)
        self.assertEqual(srv.send(rcpts=("a@slow.test",)), {})
        wait_for(lambda: [s for s in state_files(srv.spool).values()
                          if "hold 1" in s], 15, what="held")
        srv.wait_log(r"held by the transport table")
        time.sleep(0.5)
        self.assertEqual(relay.messages, [])
        r = srv.run_tool("queue", "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.received(relay, 1)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        self.assertEqual(self.rcpts(relay), ["a@slow.test"])


DOVECOT_CONF = """
base_dir = {run}
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
first_valid_uid = 0
auth_username_format = %Ln
mail_location = maildir:{dir}/mail/%n
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = passwd-file
  args = {dir}/users
  default_fields = uid=nobody gid=nogroup home={dir}/mail/%n
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
"""


class DovecotLmtp(Dovecot):
    """dovecot -F serving LMTP only, users alice and bob; break_box("bob")
    makes bob's mailbox a plain file: his deliveries fail (4xx, after
    the data) until mend_box("bob").  Starting, stopping and the log are
    test_auth_dovecot's."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(os.path.join(dir, "state"))
        os.makedirs(os.path.join(dir, "mail"))
        os.chmod(dir, 0o755)
        os.chmod(os.path.join(dir, "mail"), 0o1777)
        self.run = tempfile.mkdtemp(prefix="pst-lmtp-")
        os.chmod(self.run, 0o755)
        self.port = free_port()
        with open(os.path.join(dir, "users"), "w") as f:
            f.write("alice:::::::\n")
            f.write("bob:::::::\n")
        self.conf = os.path.join(dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=dir, run=self.run,
                                        port=self.port))
        self.socket = os.path.join(self.run, "lmtp")
        self.out = open(os.path.join(dir, "stdout.log"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self.out, stderr=self.out,
                                     start_new_session=True)
        wait_for(self.up, 15, what="dovecot lmtp socket")

    def break_box(self, user):
        with open(os.path.join(self.dir, "mail", user), "w") as f:
            f.write("not a maildir\n")

    def mend_box(self, user):
        os.unlink(os.path.join(self.dir, "mail", user))

    def mails(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.dir, "mail", user, sub)
            if os.path.isdir(d):
                for f in sorted(os.listdir(d)):
                    with open(os.path.join(d, f), "rb") as fh:
                        out.append(fh.read())
        return out


@unittest.skipUnless(os.path.exists(LMTP) and os.geteuid() == 0,
                     "needs dovecot-lmtpd and root")
class LmtpTest(TransportCase):

    def dovecot(self):
        d = DovecotLmtp(os.path.join(self.dir, "dovecot"))
        self._peers.append(d)
        return d

    def test_unix_socket_per_recipient_replies(self):
        """Over the unix socket, one transaction: alice gets the message,
        an unknown user fails at RCPT, bob (a broken mailbox) is
        deferred on his own reply after the data while alice's stays
        delivered; the sender gets a bounce for the unknown user only;
        bob's retry, once his mailbox works, does not deliver to alice a
        second time."""
        d = self.dovecot()
        d.break_box("bob")
        mx = self.sink()
        srv = self.relay("""
load_module {modules}/relay_mx.so;
relay_mx_port %d;
load_module {modules}/deliver_lmtp.so;
lmtp_host unix:%s;
transport example.test lmtp;
""" % (mx.port, d.socket))
        body = b"Subject: lmtp\r\n\r\nper recipient\r\n"
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",
                                         "bob@example.test",
                                         "nobody@example.test"),
                                  body=body), {})
        srv.wait_log(r"to=<bob@example.test>, .*status=deferred \(4\d\d",
                     timeout=20)
        self.assertEqual(len(d.mails("alice")), 1)
        log = srv.log()
        self.assertRegex(log, r"to=<alice@example.test>, relay=localhost"
                         r"\[/[^]]*lmtp\], .*status=sent")
        self.assertRegex(log, r"to=<nobody@example.test>, .*status=bounced"
                         r" \(550 5\.1\.1")
        dsn = self.received(mx, 1)[0][4].decode()
        self.assertIn("Final-Recipient: rfc822; nobody@example.test", dsn)
        self.assertNotIn("Final-Recipient: rfc822; bob@", dsn)
        self.assertNotIn("Final-Recipient: rfc822; alice@", dsn)

        d.mend_box("bob")
        srv.wait_log(r"to=<bob@example.test>, .*status=sent", timeout=20)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        self.assertEqual(len(d.mails("bob")), 1)
        self.assertIn(b"per recipient", d.mails("bob")[0])
        self.assertEqual(len(d.mails("alice")), 1)

    def test_notify_success_is_delivered(self):
        """NOTIFY=SUCCESS to a mailbox behind LMTP (Dovecot offers no
        DSN): the sender gets "Action: delivered" from us, not
        "relayed" (RFC 3464 2.3.3)."""
        d = self.dovecot()
        mx = self.sink()
        srv = self.relay("""
load_module {modules}/relay_mx.so;
relay_mx_port %d;
load_module {modules}/deliver_lmtp.so;
lmtp_host unix:%s;
transport example.test lmtp;
""" % (mx.port, d.socket))
        with srv.smtp() as c:
            c.ehlo("client.test")
            c.sendmail("s@ok.test", ["alice@example.test"],
                       b"Subject: dsn\r\n\r\nx\r\n",
                       rcpt_options=["NOTIFY=SUCCESS"])
        wait_for(lambda: d.mails("alice"), 20, what="alice's mail")
        dsn = self.received(mx, 1)[0][4].decode()
        self.assertIn("Final-Recipient: rfc822; alice@example.test", dsn)
        self.assertIn("Action: delivered", dsn)
        self.assertNotIn("Action: relayed", dsn)

    def test_tcp_next_hop_from_the_table(self):
        """The table's next hop (host:port) replaces lmtp_host."""
        d = self.dovecot()
        srv = self.relay("""
load_module {modules}/deliver_lmtp.so;
lmtp_host unix:/nonexistent/lmtp;
transport example.test lmtp [127.0.0.1]:%d;
""" % d.port)
        self.assertEqual(srv.send(rcpts=("alice@example.test",)), {})
        wait_for(lambda: d.mails("alice"), 20, what="alice's mail")
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        self.assertRegex(srv.log(), r"to=<alice@example.test>, relay="
                         r"\[127.0.0.1\]\[127.0.0.1\]:%d, .*status=sent"
                         % d.port)


if __name__ == "__main__":
    unittest.main()
