"""auth_dovecot against a real Dovecot (Debian dovecot-core) that the
test starts itself, with its own configuration, users and sockets in
the test's directory: PLAIN and LOGIN over the unix and the TCP socket,
SCRAM-SHA-256 passed through to Dovecot (msmtp and a Python client),
wrong passwords, a Dovecot that is down (454), and auth_file and
auth_dovecot chained.  Dovecot needs root: skipped otherwise."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from pstest import DEFAULT_MODULES, free_port, have, wait_for
from psttls import TlsRaw, TlsTestCase
from test_auth import msmtp, passwd_line, plain, scram

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

DOVECOT_CONF = """
base_dir = {run}
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login scram-sha-256
auth_failure_delay = 0
auth_verbose = yes
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
  inet_listener auth-inet {{
    address = 127.0.0.1
    port = {port}
  }}
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    """dovecot -F with only its auth service, in dir."""

    def __init__(self, dir, users):
        self.dir = dir
        shutil.rmtree(dir, ignore_errors=True)
        os.makedirs(os.path.join(dir, "state"))
        # unix socket paths are limited to 108 bytes: the sockets go to
        # a short private directory, the rest stays in dir
        self.run = tempfile.mkdtemp(prefix="pst-dovecot-")
        os.chmod(self.run, 0o755)
        os.chmod(dir, 0o755)
        self.port = free_port()
        with open(os.path.join(dir, "users"), "w") as f:
            for user, scheme, password in users:
                p = subprocess.run([DOVEADM, "pw", "-s", scheme, "-p",
                                    password], capture_output=True,
                                   text=True, timeout=30, check=True)
                f.write("%s:%s\n" % (user, p.stdout.strip()))
        self.conf = os.path.join(dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(dir=dir, run=self.run,
                                        port=self.port))
        self.socket = os.path.join(self.run, "auth-client")
        self.out = open(os.path.join(dir, "stdout.log"), "ab")
        # its own process group: stop() ends the auth child too, which
        # otherwise keeps serving open connections after the master left
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=self.out, stderr=self.out,
                                     start_new_session=True)
        wait_for(self.up, 15, what="dovecot auth socket")

    def up(self):
        if self.proc.poll() is not None:
            raise AssertionError("dovecot exited: %s" % self.log())
        return os.path.exists(self.socket)

    def log(self):
        try:
            return open(os.path.join(self.dir, "dovecot.log")).read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        if not self.out.closed:
            self.out.close()
        shutil.rmtree(self.run, ignore_errors=True)


@unittest.skipUnless(os.path.exists(DOVECOT) and os.geteuid() == 0,
                     "needs dovecot-core and root")
class DovecotTest(TlsTestCase):

    def setUp(self):
        super().setUp()
        name = self.id().split(".", 1)[-1].replace(".", "_")
        self.dovecot = Dovecot(os.path.join(self.pki.dir, "..",
                                            name + "-dovecot"),
                               [("alice", "SCRAM-SHA-256", "wonderland"),
                                ("bob", "SHA512-CRYPT", "builder")])
        self._peers.append(self.dovecot)

    def srv(self, socket, extra="", modules=("auth_dovecot",)):
        return self.server("""
smtp {
    hostname mx.example.test;
    tls_certificate     %s;
    tls_certificate_key %s;
    auth_dovecot_socket %s;
    auth_failure_delay  0;
    auth_mechanisms PLAIN LOGIN SCRAM-SHA-256;
    %s
    server {
        listen {port};
        listen {port2} submission;
        local_domains example.test;
    }
}
""" % (self.crt, self.key, socket, extra),
            modules=DEFAULT_MODULES + tuple(modules))

    def session(self, srv, port=None):
        c = TlsRaw(port or srv.port)
        c.ehlo()
        c.starttls(self.ctx, "mx.example.test")
        c.ehlo()
        return c

    def test_plain_and_login_over_unix_socket(self):
        srv = self.srv("unix:" + self.dovecot.socket)
        with self.session(srv) as c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "nope")),
                             535, "5.7.8")
            self.assertReply(c.cmd("AUTH LOGIN"), 334)
            self.assertReply(c.cmd("Ym9i"), 334)          # "bob"
            self.assertReply(c.cmd("YnVpbGRlcg=="), 235, "2.7.0")  # "builder"
        with self.session(srv) as c:
            # alice's password is stored as a SCRAM secret in Dovecot
            self.assertReply(c.cmd("AUTH PLAIN " + plain("alice",
                                                          "wonderland")),
                             235)
        self.assertIn("passwd-file(bob", self.dovecot.log())
        wait_for(lambda: 'authenticated as "bob" mechanism=LOGIN'
                 in srv.log(), 5, what="bob logged")

    def test_tcp_socket_and_submission(self):
        srv = self.srv("127.0.0.1:%d" % self.dovecot.port)
        self.assertEqual(msmtp(self, srv, srv.ports[1], "bob", "builder"), 0)
        self.assertNotEqual(msmtp(self, srv, srv.ports[1], "bob", "x"), 0)
        self.assertEqual(srv.queue_count(), 1)

    def test_scram_passed_through(self):
        srv = self.srv("unix:" + self.dovecot.socket)
        with self.session(srv) as c:
            self.assertReply(scram(self, c, "alice", "wonderland",
                                   tamper=True), 535)
            self.assertReply(scram(self, c, "alice", "wonderland"), 235)
        with self.session(srv) as c:
            self.assertReply(scram(self, c, "alice", "wonderland",
                                   initial=False), 235)
        if have("msmtp"):
            self.assertEqual(msmtp(self, srv, srv.ports[1], "alice",
                                   "wonderland", "scram-sha-256"), 0)

    def test_dovecot_down_is_temporary(self):
        srv = self.srv("unix:" + self.dovecot.socket)
        with self.session(srv) as c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             235)
        self.dovecot.stop()
        with self.session(srv) as c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("bob", "builder")),
                             454, "4.7.0")
            self.assertReply(c.cmd("NOOP"), 250)
        wait_for(lambda: "auth_dovecot" in srv.log(), 5,
                 what="connection loss logged")

    def test_chained_with_auth_file(self):
        users = os.path.join(self.pki.dir, "users")
        with open(users, "w") as f:
            f.write(passwd_line("carol", "sing", "-m", "sha512crypt") + "\n")
        os.chmod(users, 0o640)
        srv = self.srv("unix:" + self.dovecot.socket,
                       extra="auth_users_file %s;" % users,
                       modules=("auth_file", "auth_dovecot"))
        for user, password in (("carol", "sing"), ("bob", "builder")):
            with self.session(srv) as c:
                self.assertReply(c.cmd("AUTH PLAIN " + plain(user, password)),
                                 235)
        with self.session(srv) as c:
            self.assertReply(c.cmd("AUTH PLAIN " + plain("nobody", "x")),
                             535)


@unittest.skipUnless(os.geteuid() == 0, "needs root (workers as nobody)")
class DovecotSocketAccessTest(TlsTestCase):
    """The workers (as nobody) connect to auth_dovecot_socket: postern -t
    checks that they can.  Before, -t passed and every AUTH got 454."""

    def srv(self, path):
        return self.server("""
smtp {
    hostname mx.example.test;
    tls_certificate     %s;
    tls_certificate_key %s;
    auth_dovecot_socket unix:%s;
    server { listen {port}; local_domains example.test; }
}
""" % (self.crt, self.key, path), start=False,
            modules=DEFAULT_MODULES + ("auth_dovecot",))

    def bound_socket(self, dir, mode):
        path = os.path.join(dir, "auth-client")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        self.addCleanup(s.close)
        os.chmod(path, mode)
        return path

    def test_t_refuses_a_socket_the_workers_cannot_reach(self):
        locked = tempfile.mkdtemp(prefix="pst-dovecot-")
        self.addCleanup(shutil.rmtree, locked, True)
        os.chmod(locked, 0o700)                  # root only
        srv = self.srv(self.bound_socket(locked, 0o666))
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('cannot use auth_dovecot_socket', r.stderr)

    def test_t_refuses_a_socket_only_root_may_write(self):
        open_dir = tempfile.mkdtemp(prefix="pst-dovecot-")
        self.addCleanup(shutil.rmtree, open_dir, True)
        os.chmod(open_dir, 0o755)
        srv = self.srv(self.bound_socket(open_dir, 0o600))
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('cannot use auth_dovecot_socket', r.stderr)

    def test_t_accepts_a_socket_dovecot_has_not_made_yet(self):
        open_dir = tempfile.mkdtemp(prefix="pst-dovecot-")
        self.addCleanup(shutil.rmtree, open_dir, True)
        os.chmod(open_dir, 0o755)                # root's, not writable
        srv = self.srv(os.path.join(open_dir, "auth-client"))
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
