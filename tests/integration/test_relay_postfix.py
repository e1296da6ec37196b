"""A real Postfix as the relay's destination: a private Postfix instance
started by the test on a loopback port (its own configuration, queue
and mail directories), which delivers what Postern relays into a
Maildir through its virtual(8) agent.  It listens twice: with CHUNKING
(Postern sends BDAT) and, on 127.0.0.2, without it (DATA, dot-stuffed).
The test reads the delivered files and checks the envelope
(Return-Path, X-Original-To, Delivered-To), both Received lines, the
header and the 8-bit body byte for byte, and that Postfix acted on the
DSN parameters Postern passed on.  A second instance offers STARTTLS
with a certificate for one of its two MX names: under relay_tls verify
the named one gets the message, the other is deferred.  Postfix needs
root to start (its
master drops to mail_owner; in a user namespace made by `unshare -r`
only the caller's uid is mapped, and postfix(1) fails to chown the
queue to mail_owner): skipped otherwise, and when Postfix is not
installed, the reason printed by run.py."""

import glob
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
import unittest

from pstest import RUN, free_port, wait_for
from test_relay import RelayCase
from psttls import Certs

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin")

MAIN_CF = """
compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = postfix-test
maillog_file_prefixes = {d}
maillog_file = {d}/maillog
myhostname = pf.postfix.test
mydomain = postfix.test
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = $myhostname ESMTP
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
smtpd_tls_security_level = {tls_level}
{tls}smtp_tls_security_level = none
smtputf8_enable = yes
# nothing leaves this instance: no DNS, no outbound SMTP (its DSNs fail)
default_transport = error:outbound mail is off in this test
relay_transport = error:outbound mail is off in this test
smtp_dns_support_level = disabled
virtual_mailbox_domains = pf.test pf-data.test
virtual_mailbox_base = {d}/mail
virtual_mailbox_maps = static:inbox/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = 1
"""

MASTER_CF = """
127.0.0.1:{port} inet n - n - - smtpd
127.0.0.2:{port} inet n - n - - smtpd
  -o smtpd_discard_ehlo_keywords=chunking
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""

CONF = """
load_module {modules}/relay_mx.so;
relay_mx_port %d;
relay_tls none;
relay_connection_idle 0;
smtp {
    server {
        listen {port};
        hostname mx.postern.test;
        relay_domains pf.test pf-data.test;
    }
}
"""

# pf-data.test: the same Postfix on 127.0.0.2 without CHUNKING, so
# Postern sends DATA (dot-stuffed) there and BDAT to pf.test
RECORDS = ["--local=/test/",
           "--mx-host=pf.test,mx.pf.test,10",
           "--host-record=mx.pf.test,127.0.0.1",
           "--mx-host=pf-data.test,mx.pf-data.test,10",
           "--host-record=mx.pf-data.test,127.0.0.2"]


class Postfix:
    """A private Postfix instance on 127.0.0.1:port."""

    def __init__(self, d, port, cert=None):
        """cert: (certificate, key) for STARTTLS, or None: no TLS."""
        self.d, self.port = d, port
        shutil.rmtree(d, ignore_errors=True)
        for sub in ("conf", "queue", "data", "mail"):
            os.makedirs(os.path.join(d, sub))
        pw = pwd.getpwnam("postfix")
        for sub in ("data", "mail"):
            os.chown(os.path.join(d, sub), pw.pw_uid, pw.pw_gid)
        with open(os.path.join(d, "conf", "main.cf"), "w") as f:
            f.write(MAIN_CF.format(
                d=d, uid=pw.pw_uid, gid=pw.pw_gid,
                tls_level="may" if cert else "none",
                tls="smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                    % cert if cert else ""))
        with open(os.path.join(d, "conf", "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=port))

    def run(self, *args):
        return subprocess.run([POSTFIX, "-c", os.path.join(self.d, "conf")]
                              + list(args), capture_output=True, text=True,
                              timeout=60)

    def start(self):
        for step in ("check", "start"):
            r = self.run(step)
            if r.returncode != 0:
                raise AssertionError("postfix %s: %s%s" % (step, r.stdout,
                                                           r.stderr))
        wait_for(self.greets, 20, what="Postfix's greeting")

    def greets(self):
        try:
            for host in ("127.0.0.1", "127.0.0.2"):
                with socket.create_connection((host, self.port), 1) as s:
                    if not s.recv(100).startswith(b"220 "):
                        return False
            return True
        except OSError:
            return False

    def stop(self):
        self.run("stop")

    def delivered(self):
        return sorted(glob.glob(os.path.join(self.d, "mail", "inbox", "new",
                                             "*")))

    def log(self):
        try:
            with open(os.path.join(self.d, "maillog"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""


@unittest.skipIf(POSTFIX is None, "Postfix is not installed (apt-get install"
                 " postfix)")
@unittest.skipIf(os.geteuid() != 0, "not root: a Postfix instance starts as"
                 " root (and unshare -r cannot map its mail_owner's uid)")
class RelayToPostfixTest(RelayCase):

    def setUp(self):
        super().setUp()
        try:
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
        except KeyError:
            self.skipTest("no postfix user or postdrop group")
        self.pf = Postfix(os.path.join(RUN, self.id().split(".")[-1] + "-pf"),
                          free_port())
        self.addCleanup(self.pf.stop)
        self.pf.start()

    def test_delivered_by_postfix(self):
        """pf.test's listener offers CHUNKING (Postern sends BDAT),
        pf-data.test's does not (DATA, the '.' line dot-stuffed): both
        copies arrive byte for byte."""
        dns = self.dnsmasq(RECORDS)
        srv = self.server(CONF % self.pf.port, resolver=dns.address)
        body = ("Subject: to postfix\r\nMessage-ID: <pf-1@client.test>\r\n"
                "\r\nd\u00e9j\u00e0 vu\r\n.leading dot\r\n.\r\nend\r\n"
                ).encode()
        with srv.smtp() as c:
            c.ehlo("client.test")
            for rcpt in ("user@pf.test", "user@pf-data.test"):
                c.sendmail("sender@client.test", [rcpt], body,
                           mail_options=["BODY=8BITMIME", "RET=HDRS",
                                         "ENVID=env-pf-1"],
                           rcpt_options=["NOTIFY=SUCCESS,FAILURE",
                                         "ORCPT=rfc822;" + rcpt])
        files = wait_for(lambda: len(self.pf.delivered()) == 2
                         and self.pf.delivered(), 20,
                         what="two files in the Maildir")
        got = {}
        for name in files:
            with open(name, "rb") as f:
                head, _, rest = f.read().partition(b"\n\n")
            lines = head.split(b"\n")
            got[lines[1]] = lines, head, rest
        self.assertEqual(sorted(got), [b"X-Original-To: user@pf-data.test",
                                       b"X-Original-To: user@pf.test"])

        for rcpt in (b"user@pf.test", b"user@pf-data.test"):
            lines, head, rest = got[b"X-Original-To: " + rcpt]
            # virtual(8) adds the envelope; LF line endings in the Maildir
            self.assertEqual(lines[:3], [b"Return-Path: <sender@client.test>",
                                         b"X-Original-To: " + rcpt,
                                         b"Delivered-To: " + rcpt])
            self.assertTrue(lines[3].startswith(b"Received: from "
                                                b"mx.postern.test"), lines[3])
            received = [l for l in lines if l.startswith(b"Received:")]
            self.assertEqual(len(received), 2, head)
            self.assertIn(b"by mx.postern.test", head)
            self.assertIn(b"Subject: to postfix", head)
            self.assertEqual(rest, "d\u00e9j\u00e0 vu\n.leading dot\n.\nend\n"
                             .encode(), rcpt)
        # NOTIFY=SUCCESS reached Postfix: it made the success notification
        # it was asked for (and could not send it: outbound mail is off)
        wait_for(lambda: self.pf.log().count("status=sent") == 2
                 and self.pf.log().count("sender delivery status "
                                         "notification") == 2,
                 10, what="Postfix's deliveries and its success DSNs")
        # one transaction each way: smtpd's per-session command counts,
        # logged when Postern closes (relay_connection_idle 0)
        wait_for(lambda: sorted(re.findall(r" (bdat|data)=1 ",
                                           self.pf.log()))
                 == ["bdat", "data"], 10, what="one BDAT and one DATA session")
        for dom, addr in (("pf", "1"), ("pf-data", "2")):
            srv.wait_log(r"to=<user@%s\.test>, relay=mx\.%s\.test"
                         r"\[127\.0\.0\.%s\]:%d,.*status=sent"
                         % (dom, dom, addr, self.pf.port), timeout=10)
        wait_for(lambda: srv.queue_ids() == [], 10, what="an empty queue")


@unittest.skipIf(POSTFIX is None, "Postfix is not installed (apt-get install"
                 " postfix)")
@unittest.skipIf(os.geteuid() != 0, "not root: a Postfix instance starts as"
                 " root (and unshare -r cannot map its mail_owner's uid)")
class RelayToPostfixTlsTest(RelayCase):
    """Postfix with STARTTLS and a certificate for mx.pf.test only,
    under relay_tls verify: the MX of that name gets the message over a
    verified connection; the other MX name (the same Postfix) fails the
    name check and its mail is deferred, nothing sent in clear."""

    def setUp(self):
        super().setUp()
        try:
            pwd.getpwnam("postfix")
            grp.getgrnam("postdrop")
        except KeyError:
            self.skipTest("no postfix user or postdrop group")
        pki = os.path.join(RUN, self.id().split(".")[-1] + "-pki")
        self.certs = Certs(pki)
        self.ca = self.certs.ca()
        cert = self.certs.issue("pf", "mx.pf.test", ca=self.ca)
        self.pf = Postfix(os.path.join(RUN, self.id().split(".")[-1] + "-pf"),
                          free_port(), cert=cert)
        self.addCleanup(self.pf.stop)
        self.pf.start()

    def test_verified_and_refused(self):
        dns = self.dnsmasq(RECORDS)
        conf = CONF.replace("relay_tls none;", "relay_tls verify;\n"
                            "relay_tls_ca_file %s;" % self.ca.cert)
        srv = self.server(conf % self.pf.port, resolver=dns.address)
        with srv.smtp() as c:
            c.ehlo("client.test")
            for rcpt in ("user@pf.test", "user@pf-data.test"):
                c.sendmail("sender@client.test", [rcpt],
                           b"Subject: tls\r\n\r\nover tls\r\n")
        srv.wait_log(r"to=<user@pf\.test>, relay=mx\.pf\.test"
                     r"\[127\.0\.0\.1\]:%d,.*status=sent" % self.pf.port,
                     timeout=20)
        srv.wait_log(r"to=<user@pf-data\.test>, .*status=deferred \(451 "
                     r"4\.4\.1 [^)]*did not verify: hostname mismatch",
                     timeout=20)
        files = wait_for(self.pf.delivered, 20, what="the verified message")
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            self.assertIn(b"X-Original-To: user@pf.test", f.read())
        # the session that delivered ran STARTTLS (smtpd's command
        # counts); the refused one stopped right after it
        wait_for(lambda: re.search(r"ehlo=2 starttls=1 mail=1 rcpt=1 "
                                   r"(bdat|data)=1", self.pf.log()), 10,
                 what="Postfix's STARTTLS session with the message")
        self.assertIn("lost connection after STARTTLS", self.pf.log())
