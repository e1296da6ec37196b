"""SMTP AUTH (RFC 4954) with the auth_file backend in the server: PLAIN,
LOGIN and SCRAM-SHA-256 over TLS with real clients (smtplib, swaks,
msmtp), every reply code, submission listeners, brute-force limits per
address across workers, secrets kept out of logs, hashing off the event
loop, a reload of the users file and "postern passwd".  auth_file's hash
methods, identities and case, the failure delay and auth_max_failures,
and the users file's errors and permissions are tested in the plugin
harness (tests/modules/test_auth_file.c)."""

import base64
import concurrent.futures
import hashlib
import hmac
import os
import re
import stat
import subprocess
import threading
import time
import unittest

from pstest import (DEFAULT_MODULES, POSTERN, b64, have, passwd_line, plain,
                    wait_for)
from psttls import TlsRaw, TlsTestCase, build, client_context

MODULES = DEFAULT_MODULES + ("auth_file",)
MSG = b"Subject: auth\r\n\r\nsubmitted\r\n"



class AuthCase(TlsTestCase):
    """Users: alice/wonderland (sha512crypt, with SCRAM), bob/builder
    (bcrypt), Carol/sing (yescrypt)."""

    users = (("alice", "wonderland", ("-m", "sha512crypt", "-s")),
             ("bob", "builder", ("-m", "bcrypt", "-r", "5")),
             ("Carol", "sing", ()))

    def setUp(self):
        super().setUp()
        self.users_file = os.path.join(self.pki.dir, "users")
        with open(self.users_file, "w") as f:
            f.write("# test users\n")
            for u, p, opts in self.users:
                f.write(passwd_line(u, p, *opts) + "\n")
        os.chmod(self.users_file, 0o640)

    def auth_server(self, extra="", srv_extra="", workers=2, delay="0",
                    **kw):
        conf = """
smtp {
    hostname mx.example.test;
    tls_certificate     %s;
    tls_certificate_key %s;
    auth_users_file     %s;
    auth_failure_delay  %s;
    %s
    server {
        listen {port};
        listen {port2} submission;
        listen {port3} tls submission;
        local_domains example.test;
        %s
    }
}
""" % (self.crt, self.key, self.users_file, delay, extra, srv_extra)
        return self.server(conf, modules=MODULES, workers=workers, **kw)

    def tls_session(self, srv, port=None):
        c = TlsRaw(port or srv.port)
        c.ehlo()
        c.starttls(self.ctx, "mx.example.test")
        ext, lines = c.ehlo()
        return c, ext, lines


class AuthReplies(AuthCase):

    def test_smtplib_plain_and_login(self):
        srv = self.auth_server()
        for mech in ("PLAIN", "LOGIN"):
            with srv.smtp() as c:
                c.ehlo("client.test")
                c.starttls(context=self.ctx)
                c.ehlo("client.test")
                self.assertIn("PLAIN", c.esmtp_features["auth"])
                c.user, c.password = "alice", "wonderland"
                code, text = c.auth(mech, getattr(c, "auth_" + mech.lower()),
                                    initial_response_ok=mech == "PLAIN")
                self.assertEqual(code, 235, text)
                self.assertIn(b"2.7.0", text)
                c.sendmail("alice@example.test", ["u@example.test"], MSG)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 2)
        self.assertIn(b"with ESMTPSA id", srv.message(ids[0]))
        self.assertIn("\nauth alice\n", srv.envelope(ids[0]))
        wait_for(lambda: "proto=ESMTPSA" in srv.log()
                 and " sasl_username=alice" in srv.log(), 5, what="queued log")
        self.assertIn('authenticated as "alice" mechanism=PLAIN', srv.log())
        self.assertIn('authenticated as "alice" mechanism=LOGIN', srv.log())

    def test_every_reply(self):
        srv = self.auth_server()
        with TlsRaw(srv.port) as c:
            ext, _ = c.ehlo()
            self.assertNotIn("AUTH", ext)          # not before TLS
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice",
                                                          "wonderland")),
                             538, "5.7.11")
            c.starttls(self.ctx, "mx.example.test")
            self.assertReply(c.cmd("AUTH PLAIN"), 503, "5.5.1")  # no EHLO
            ext, lines = c.ehlo()
            self.assertIn("AUTH PLAIN LOGIN", " ".join(lines))
            self.assertReply(c.cmd("AUTH"), 501, "5.5.4")
            self.assertReply(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4")
            self.assertReply(c.cmd("AUTH PLAIN !!!!"), 501, "5.5.2")
            self.assertReply(c.cmd("AUTH PLAIN " + b64("no-nul")), 501,
                             "5.5.2")
            # an empty initial response: no data at all (make fuzz
            # found pointer arithmetic on NULL here)
            self.assertReply(c.cmd("AUTH PLAIN ="), 501, "5.5.2")
            self.assertReply(c.cmd("AUTH PLAIN"), 334)
            self.assertReply(c.cmd("*"), 501, "5.0.0")
            self.assertReply(c.cmd("AUTH LOGIN"), 334, "VXNlcm5hbWU6")
            self.assertReply(c.cmd(b64("alice")), 334, "UGFzc3dvcmQ6")
            self.assertReply(c.cmd("not base64!"), 501, "5.5.2")
            self.assertReply(c.cmd("AUTH LOGIN " + b64("alice")), 334,
                             "UGFzc3dvcmQ6")
            self.assertReply(c.cmd(b64("wrong")), 535, "5.7.8")
            self.assertReply(c.cmd("AUTH PLAIN " + plain("nobody", "x")),
                             535, "5.7.8")
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice",
                                                          "wonderland")),
                             503, "5.5.1")         # inside a transaction
            self.assertReply(c.cmd("RSET"), 250)
            self.assertReply(c.cmd("AUTH PLAIN"), 334, "")
            self.assertReply(c.cmd(plain("alice", "wonderland")), 235,
                             "2.7.0")
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice",
                                                          "wonderland")),
                             503, "5.5.1")         # twice
            self.assertReply(c.cmd("MAIL FROM:<alice@example.test>"
                                   " AUTH=<alice@example.test>"), 250)

    def test_facts_for_modules(self):
        # a module reads TLS and AUTH facts through the public API
        module = build("objs/tests/modules/tls_facts.so")
        ccrt, ckey = self.pki.issue("client", "client.test", self.ca,
                                    client=True)
        srv = self.auth_server(extra="tls_client_certificate %s;\n"
                               "    tls_verify_client optional;"
                               % self.ca.cert,
                               extra_top="load_module %s;" % module)
        ctx = client_context(self.ca, ccrt, ckey)
        with TlsRaw(srv.port) as c:
            c.ehlo()
            c.starttls(ctx, "mx.example.test")
            c.ehlo()
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice",
                                                          "wonderland")),
                             235)
            for cmd, code in (("MAIL FROM:<alice@example.test>", 250),
                              ("RCPT TO:<u@example.test>", 250),
                              ("DATA", 354)):
                self.assertReply(c.cmd(cmd), code)
            c.send(MSG + b".\r\n")
            self.assertReply(c.reply(), 250)
        fp = subprocess.run(["openssl", "x509", "-noout", "-fingerprint",
                             "-sha256", "-in", ccrt], capture_output=True,
                            text=True, check=True).stdout
        fp = fp.strip().split("=", 1)[1].replace(":", "").lower()
        # added headers travel in the envelope ("prepend", xtext)
        env = re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)),
                     srv.envelope(srv.queue_ids()[0]))
        self.assertRegex(env, r"prepend X-Tls-Facts: tls=1 version=TLSv1\.3"
                         r" cipher=TLS_\S+ sni=mx\.example\.test"
                         r" subject=CN=client\.test verified=1 fp=%s"
                         r" user=alice mech=PLAIN" % fp)

    def test_submission_needs_auth(self):
        srv = self.auth_server()
        c, _, _ = self.tls_session(srv, srv.ports[1])
        with c:
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 530,
                             "5.7.0")
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)
            self.assertReply(c.cmd("MAIL FROM:<bob@example.test>"), 250)
            # relaying is allowed once authenticated (policy_relay)
            self.assertReply(c.cmd("RCPT TO:<far@elsewhere.test>"), 250)
        # implicit TLS submission (465)
        with TlsRaw(srv.ports[2], tls=self.ctx,
                    server_hostname="mx.example.test") as c:
            ext, lines = c.ehlo()
            self.assertIn("AUTH", ext)
            self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 530)
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)
            self.assertReply(c.cmd("MAIL FROM:<bob@example.test>"), 250)

    def test_plaintext_allowed(self):
        srv = self.auth_server(extra="auth_allow_plaintext on;")
        with TlsRaw(srv.port) as c:
            ext, _ = c.ehlo()
            self.assertIn("AUTH", ext)
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)
            self.assertReply(c.cmd("MAIL FROM:<bob@example.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<u@example.test>"), 250)
            self.assertReply(c.cmd("DATA"), 354)
            c.send(MSG + b".\r\n")
            self.assertReply(c.reply(), 250)
        self.assertIn(b"with ESMTPA id", srv.message(srv.queue_ids()[0]))

    def test_starttls_forgets_plaintext_auth(self):
        srv = self.auth_server(extra="auth_allow_plaintext on;")
        with TlsRaw(srv.port) as c:
            c.ehlo()
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)
            c.starttls(self.ctx, "mx.example.test")
            c.ehlo()
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)

    def test_tempfail_when_backend_is_late(self):
        # yescrypt takes about 100 ms: a 1 ms module timeout expires first
        srv = self.auth_server(extra_top="module_timeout auth_file 1ms;")
        c, _, _ = self.tls_session(srv)
        with c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("Carol", "sing")),
                             454, "4.7.0")
            self.assertReply(c.cmd("NOOP"), 250)

    def test_no_backend(self):
        srv = self.tls_server()
        c, _, _ = self.tls_session(srv)
        with c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("a", "b")), 502)


class BruteForce(AuthCase):

    def test_client_address_blocked_across_workers(self):
        # half of the failures before a reload, half after it: the
        # second half is counted by other processes (the new workers),
        # so the limit holds across processes and over a reload
        srv = self.auth_server(extra="auth_client_failures 6;\n"
                               "    auth_client_block_time 1m;\n"
                               "    auth_max_failures 100;", workers=2)

        def fail(n):
            for i in range(n):
                c, _, _ = self.tls_session(srv)
                with c:
                    self.assertReply(c.cmd("AUTH PLAIN " + plain(
                        "bob", "wrong%d" % i)), 535, "5.7.8")

        fail(3)
        before = set(srv.workers())
        srv.reload()
        wait_for(lambda: set(srv.workers()) and
                 not set(srv.workers()) & before, 15, what="new workers")
        fail(2)
        c, _, _ = self.tls_session(srv)
        with c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "x")), 535)
            # even the right password: the address is blocked
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             454, "4.7.0")
        log = srv.log()
        self.assertIn("6 authentication failures from this address: AUTH"
                      " blocked for 60 s", log)
        pids = set(re.findall(r"postern\[(\d+)\] worker: notice: session="
                              r"\S+ client=\[127.0.0.1\] authentication"
                              r" failed", log))
        self.assertGreaterEqual(len(pids), 2, log)


class Secrets(AuthCase):

    def test_protocol_log_masks_credentials(self):
        srv = self.auth_server(extra="smtp_debug on;")
        c, _, _ = self.tls_session(srv)
        secret_plain = plain("alice", "wonderland")
        with c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice", "wrongpw1")),
                             535)
            self.assertReply(c.cmd("AUTH LOGIN"), 334)
            self.assertReply(c.cmd(b64("alice")), 334)
            self.assertReply(c.cmd(b64("wrongpw2")), 535)
            # a TAB instead of the space: an unknown command, which can
            # still carry a secret, so it is masked as well
            self.assertReply(c.cmd("AUTH\tPLAIN " + plain("alice", "tabbed9")),
                             500)
            self.assertReply(c.cmd("AUTH PLAIN"), 334)
            self.assertReply(c.cmd(secret_plain), 235)
            c.cmd("QUIT")
        time.sleep(0.3)
        log = srv.log() + srv.stderr()
        self.assertIn("< AUTH PLAIN ***", log)
        self.assertIn("< AUTH LOGIN", log)
        self.assertIn("< AUTH?PLAIN ***", log)
        for secret in ("wonderland", "wrongpw1", "wrongpw2", secret_plain,
                       plain("alice", "wrongpw1"), b64("wrongpw2"),
                       plain("alice", "tabbed9")):
            self.assertNotIn(secret, log)


class Throughput(AuthCase):

    users = tuple(("user%d" % i, "pw%d" % i, ()) for i in range(5))

    def test_fifty_logins_do_not_stall_other_sessions(self):
        # yescrypt: ~100 ms of CPU per login, 50 of them on 2 workers
        srv = self.auth_server(extra="max_connections_per_ip 100;")
        done = []
        lat = []
        stop = threading.Event()

        def login(i):
            c, _, _ = self.tls_session(srv)
            with c:
                r = c.cmd("AUTH PLAIN " + plain("user%d" % (i % 5),
                                                "pw%d" % (i % 5)))
                done.append(time.monotonic())
                return r[0]

        def prober():
            c, _, _ = self.tls_session(srv)
            with c:
                while not stop.is_set():
                    t0 = time.monotonic()
                    self.assertEqual(c.cmd("NOOP")[0], 250)
                    lat.append((t0, time.monotonic() - t0))
                    time.sleep(0.01)

        probe = threading.Thread(target=prober)
        probe.start()
        time.sleep(0.3)
        t_start = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(50) as ex:
            codes = list(ex.map(login, range(50)))
        stop.set()
        probe.join(10)
        self.assertEqual(codes, [235] * 50)
        during = [d for t, d in lat if t_start <= t <= max(done)]
        # the probe was answered several times while the logins ran (how
        # long they took depends on the machine: no wall-clock assertion)
        self.assertGreater(len(during), 3, lat)
        # hashing on the event loop would hold a probe for seconds
        # (25 yescrypt hashes in a row per worker); margin for a busy CI
        self.assertLess(max(during), 1.5, during)


class UsersFile(AuthCase):

    def test_reload_rereads_the_file(self):
        srv = self.auth_server()
        subprocess.run([POSTERN, "passwd", "-m", "sha512crypt", "-f",
                        self.users_file, "dave"], input="dig\n", text=True,
                       check=True, capture_output=True)
        self.assertEqual(stat.S_IMODE(os.stat(self.users_file).st_mode),
                         0o640)
        c, _, _ = self.tls_session(srv)
        with c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("dave", "dig")), 535)
        srv.reload()

        def dave_ok():
            c, _, _ = self.tls_session(srv)
            with c:
                return c.cmd("AUTH PLAIN " + plain("dave", "dig"))[0] == 235
        wait_for(dave_ok, 15, interval=0.3, what="dave after reload")
        # a broken file: the reload fails and the users stay
        with open(self.users_file, "a") as f:
            f.write("broken line without colon\n")
        srv.reload()
        wait_for(lambda: "reload failed" in srv.log(), 10, what="refusal")
        self.assertTrue(dave_ok())

    def test_passwd_tool(self):
        p = subprocess.run([POSTERN, "passwd", "bad:name"], input="x\n",
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        p = subprocess.run([POSTERN, "passwd", "eve"], input="",
                           capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        line = passwd_line("eve", "pw", "-s", "-i", "5000")
        self.assertRegex(line, r"^eve:\$y\$[^:]+:SCRAM-SHA-256\$5000:")
        self.assertNotIn("pw", line.split(":", 1)[0] + "x")


def scram(case, c, user, password, tamper=False, initial=True):
    """A SCRAM-SHA-256 client (RFC 5802) on a RawClient; returns the
    last reply."""
    nonce = b64(os.urandom(18))
    first_bare = "n=%s,r=%s" % (user, nonce)
    if initial:
        code, lines = c.cmd("AUTH SCRAM-SHA-256 "
                            + b64("n,," + first_bare))
    else:
        case.assertReply(c.cmd("AUTH SCRAM-SHA-256"), 334)
        code, lines = c.cmd(b64("n,," + first_bare))
    if code != 334:
        return code, lines
    server_first = base64.b64decode(lines[0]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    case.assertTrue(attrs["r"].startswith(nonce))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(),
                                 base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    ckey = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(ckey).digest()
    final_wo = "c=biws,r=" + attrs["r"]
    auth_msg = ",".join((first_bare, server_first, final_wo)).encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    if tamper:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    code, lines = c.cmd(b64(final_wo + ",p=" + b64(proof)))
    if code != 334:
        return code, lines
    skey = hmac.new(salted, b"Server Key", "sha256").digest()
    ssig = hmac.new(skey, auth_msg, "sha256").digest()
    case.assertEqual(base64.b64decode(lines[0]).decode(),
                     "v=" + b64(ssig))
    return c.cmd("")


class Scram(AuthCase):

    def test_scram_sha256(self):
        srv = self.auth_server(extra="auth_mechanisms PLAIN SCRAM-SHA-256;")
        c, ext, lines = self.tls_session(srv)
        with c:
            self.assertIn("AUTH PLAIN SCRAM-SHA-256", " ".join(lines))
            self.assertReply(scram(self, c, "alice", "wonderland", True), 535,
                             "5.7.8")
            # bob has no SCRAM secret: nobody takes him
            self.assertReply(scram(self, c, "bob", "builder"), 535)
            self.assertReply(scram(self, c, "alice", "wonderland"), 235,
                             "2.7.0")
        # without an initial response: an empty 334 asks for it
        c, _, _ = self.tls_session(srv)
        with c:
            self.assertReply(scram(self, c, "alice", "wonderland",
                                        initial=False), 235)
        wait_for(lambda: 'authenticated as "alice" mechanism=SCRAM-SHA-256'
                 in srv.log(), 5, what="SCRAM success logged")

    @unittest.skipUnless(have("msmtp"), "msmtp not installed")
    def test_msmtp_scram(self):
        srv = self.auth_server(extra="auth_mechanisms SCRAM-SHA-256 PLAIN;")
        self.assertEqual(msmtp(self, srv, srv.ports[1], "alice",
                               "wonderland", "scram-sha-256"), 0)
        self.assertEqual(srv.queue_count(), 1)


def msmtp(case, srv, port, user, password, method="plain", tls="starttls"):
    rc = os.path.join(srv.dir, "msmtprc")
    with open(rc, "w") as f:
        f.write("account test\nhost 127.0.0.1\nport %d\nfrom %s@example.test"
                "\nauth %s\nuser %s\npassword %s\ntls on\n"
                "tls_starttls %s\ntls_trust_file %s\ntls_host_override"
                " mx.example.test\ndomain client.test\n"
                "logfile %s\naccount default : test\n"
                % (port, user, method, user, password,
                   "on" if tls == "starttls" else "off", case.ca.cert,
                   os.path.join(srv.dir, "msmtp.log")))
    os.chmod(rc, 0o600)
    p = subprocess.run(["msmtp", "-C", rc, "u@example.test"],
                       input=b"Subject: msmtp\r\n\r\nvia msmtp\r\n",
                       capture_output=True, timeout=30)
    return p.returncode


class Clients(AuthCase):

    @unittest.skipUnless(have("msmtp"), "msmtp not installed")
    def test_msmtp_submission(self):
        srv = self.auth_server()
        self.assertEqual(msmtp(self, srv, srv.ports[1], "bob", "builder"), 0)
        self.assertEqual(msmtp(self, srv, srv.ports[2], "bob", "builder",
                               tls="implicit"), 0)
        self.assertNotEqual(msmtp(self, srv, srv.ports[1], "bob", "nope"), 0)
        self.assertEqual(srv.queue_count(), 2)

    @unittest.skipUnless(have("swaks"), "swaks not installed")
    def test_swaks_auth(self):
        srv = self.auth_server()
        for mech in ("PLAIN", "LOGIN"):
            p = subprocess.run(
                ["swaks", "--server", "127.0.0.1:%d" % srv.ports[1], "--tls",
                 "--tls-verify", "--tls-ca-path", self.ca.cert,
                 "--tls-sni", "mx.example.test", "--auth", mech,
                 "--auth-user", "alice", "--auth-password", "wonderland",
                 "--from", "alice@example.test", "--to", "u@example.test",
                 "--helo", "client.test"],
                capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("235 2.7.0", p.stdout)
        self.assertEqual(srv.queue_count(), 2)


if __name__ == "__main__":
    unittest.main()
