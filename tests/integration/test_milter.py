"""filter_milter against a milter the test writes (pstmilter.py): every
stage in order with its macros, headers with their exact white space,
body chunks, the replies, the modifications at end of message as stored,
and broken milters (hang, close mid-body, garbage, unreachable) with
each default_action."""

import ctypes
import os
import re
import socket
import struct
import subprocess
import time
import unittest

from pstest import PstTestCase, free_port, passwd_line, plain, wait_for
from pstmilter import Milter, frame

MODULES = ("store_spool", "filter_milter", "policy_relay")

MSG = (b"From: a@client.test\r\n"
       b"Subject:   spaced  value \r\n"
       b"X-Fold: first\r\n\tsecond\r\n"
       b"X-Remove: me\r\n"
       b"\r\n"
       b"body line 1\r\n"
       b"body line 2\r\n")


def conf(milters):
    return """
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test;
        %s
    }
}
""" % "\n        ".join("milter %s;" % m for m in milters)


class MilterTest(PstTestCase):

    def srv(self, *milters):
        self.nsrv = getattr(self, "nsrv", 0) + 1
        name = "%s_%d" % (self.id().split(".")[-1], self.nsrv)
        return self.server(conf(milters), modules=MODULES, name=name)

    def srv_nogreet(self, *milters):
        """A server whose sessions get no 220 (a milter refuses them):
        ready once it accepts connections."""
        self.nsrv = getattr(self, "nsrv", 0) + 1
        name = "%s_%d" % (self.id().split(".")[-1], self.nsrv)
        srv = self.server(conf(milters), modules=MODULES, name=name,
                          start=False)
        srv.start(wait=False)

        def accepts():
            try:
                socket.create_connection(("127.0.0.1", srv.port), 1).close()
                return True
            except OSError:
                return False
        wait_for(accepts, 15, what="the server to listen")
        return srv

    def workdir(self):
        d = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), "objs", "run",
            "milter_" + self.id().split(".")[-1])
        os.makedirs(d, exist_ok=True)
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        return d

    def milter(self, **kw):
        m = Milter(**kw)
        self.addCleanup(m.stop)
        return m

    def send(self, srv, body=MSG, rcpts=("user@example.test",)):
        with srv.raw() as c:
            r = c.cmd("EHLO client.test")
            if r[0] != 250:
                return r
            r = c.cmd("MAIL FROM:<sender@client.test>")
            if r[0] != 250:
                return r
            for rc in rcpts:
                r = c.cmd("RCPT TO:<%s>" % rc)
                if r[0] != 250:
                    return r
            r = c.cmd("DATA")
            if r[0] != 354:
                return r
            c.send(body + b".\r\n")
            r = c.reply()
            c.cmd("QUIT")
            return r

    # -- stages, macros, headers, body --------------------------------

    def test_stages_in_order_with_macros(self):
        m = self.milter()
        srv = self.srv(m.address)
        r = self.send(srv)
        self.assertEqual(r[0], 250, r)
        self.assertEqual(srv.queue_count(), 1)
        st = m.stages()
        # the server's start-up probe was a session of its own
        st = st[len(st) - 1 - st[::-1].index("connect"):]
        st = [s for s in st if s != "header"]
        self.assertEqual(st[:7], ["connect", "helo", "mail", "rcpt",
                                  "data", "eoh", "body"], m.stages())
        self.assertEqual(st[7], "eom")
        self.assertEqual(m.data_of("mail")[0], b"<sender@client.test>\0")
        self.assertEqual(m.data_of("rcpt")[0], b"<user@example.test>\0")
        self.assertEqual(m.data_of("helo")[0], b"client.test\0")
        conn = m.data_of("connect")[0]
        self.assertEqual(conn[:12], b"[127.0.0.1]\0")
        self.assertEqual(conn[12:13], b"4")
        self.assertEqual(conn[15:], b"127.0.0.1\0")
        mv = m.macro_values
        self.assertEqual(mv["C"][b"j"], b"mx.example.test")
        self.assertEqual(mv["C"][b"{daemon_name}"], b"mx.example.test")
        self.assertEqual(mv["C"][b"{client_addr}"], b"127.0.0.1")
        self.assertEqual(mv["M"][b"{mail_addr}"], b"sender@client.test")
        self.assertEqual(mv["R"][b"{rcpt_addr}"], b"user@example.test")
        qid = srv.queue_ids()[0]
        self.assertEqual(mv["M"][b"i"], qid.encode())
        self.assertEqual(mv["E"][b"i"], qid.encode())

    def test_headers_exact_whitespace(self):
        # with HDR_LEADSPC the value is what follows the colon, as sent
        m = self.milter(protocol=0x100000)
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        hdrs = m.data_of("header")
        self.assertTrue(hdrs[0].startswith(b"Received\0 from client.test"),
                        hdrs[0])
        self.assertIn(b"Subject\0   spaced  value \0", hdrs)
        self.assertIn(b"X-Fold\0 first\n\tsecond\0", hdrs)
        # without it, the leading white space goes (as Sendmail does)
        m2 = self.milter()
        srv2 = self.srv(m2.address)
        self.assertEqual(self.send(srv2)[0], 250)
        self.assertIn(b"Subject\0spaced  value \0", m2.data_of("header"))

    def test_auth_macros(self):
        m = self.milter()
        srv = self.server(conf([m.address]).replace(
            "hostname mx.example.test;",
            "hostname mx.example.test; auth_allow_plaintext on;"
            " auth_failure_delay 0; auth_users_file {dir}/users;"),
            modules=("store_spool", "auth_file", "filter_milter",
                     "policy_relay"), start=False)
        with open(os.path.join(srv.dir, "users"), "w") as f:
            f.write(passwd_line("alice", "wonderland", "-m", "sha512crypt")
                    + "\n")
        os.chmod(os.path.join(srv.dir, "users"), 0o640)
        srv.start()
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            self.assertEqual(c.cmd("AUTH PLAIN "
                                   + plain("alice", "wonderland"))[0], 235)
            self.assertEqual(c.cmd("MAIL FROM:<a@client.test>")[0], 250)
        self.assertEqual(m.macro_values["M"][b"{auth_authen}"], b"alice")
        self.assertEqual(m.macro_values["M"].get(b"{auth_type}"), b"PLAIN")

    def test_abort_after_rset_and_at_quit(self):
        m = self.milter()
        srv = self.srv(m.address)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<a@client.test>")
            c.cmd("RCPT TO:<user@example.test>")
            self.assertEqual(c.cmd("RSET")[0], 250)
            c.cmd("MAIL FROM:<b@client.test>")
            c.cmd("QUIT")
        # the start-up probe ended with a QUIT of its own
        wait_for(lambda: m.stages().count("quit") == 2, 10, what="QUIT")
        st = m.stages()
        st = st[len(st) - 1 - st[::-1].index("connect"):]
        self.assertEqual(st, ["connect", "helo", "mail", "rcpt", "abort",
                              "mail", "abort", "quit"])
        self.assertEqual(m.data_of("mail")[-1], b"<b@client.test>\0")

    def test_body_chunks_at_most_64k(self):
        m = self.milter()
        srv = self.srv(m.address)
        body = b"".join(b"line %06d %s\r\n" % (i, b"x" * 60)
                        for i in range(3000))
        msg = b"Subject: big\r\n\r\n" + body
        self.assertEqual(self.send(srv, msg)[0], 250)
        chunks = m.data_of("body")
        self.assertGreater(len(chunks), 2)
        self.assertTrue(all(len(c) <= 65535 for c in chunks))
        self.assertEqual(b"".join(chunks), body)

    def test_no_reply_steps_and_skip(self):
        # NR_HDR + NR_BODY: nothing answered until eom; all body sent
        m = self.milter(protocol=0x80 | 0x80000)
        srv = self.srv(m.address)
        msg = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 200
        self.assertEqual(self.send(srv, msg)[0], 250)
        self.assertEqual(len(b"".join(m.data_of("body"))), 200000)
        # SKIP: the first body reply says skip, no more chunks
        m2 = self.milter(protocol=0x400,
                         actions={"body": lambda m, d: ("s", b"")})
        srv2 = self.srv(m2.address)
        self.assertEqual(self.send(srv2, msg)[0], 250)
        self.assertEqual(len(m2.data_of("body")), 1)
        self.assertIn("eom", m2.stages())

    def test_unix_socket_and_old_version(self):
        # a version 2 filter over a unix socket: no DATA command (it came
        # with version 4), the macro list it asks for, everything else
        path = os.path.join(self.workdir(), "milter.sock")
        m = self.milter(unix=path, version=2,
                        macros={2: "{mail_addr}"},
                        actions={"eom": [("h", b"X-Old\0two\0")]})
        os.chmod(path, 0o666)       # the workers run as another user
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        self.assertNotIn("data", m.stages())
        self.assertIn("eom", m.stages())
        self.assertEqual(m.macro_values["M"], {b"{mail_addr}":
                                               b"sender@client.test"})
        self.assertIn(b"\r\nX-Old: two\r\n",
                      srv.message(srv.queue_ids()[0]))

    def test_two_milters_in_order(self):
        a = self.milter()
        b = self.milter(actions={"rcpt": lambda m, d: (
            "y", b"550 5.7.1 second says no\0")})
        srv = self.srv(a.address, b.address)
        r = self.send(srv)
        self.assertEqual(r[0], 550)
        self.assertEqual(r[1][0], "5.7.1 second says no")
        self.assertIn("rcpt", a.stages())
        self.assertEqual(srv.queue_count(), 0)

    def test_idle_session_keeps_its_milter(self):
        # no milter timer runs while the session waits for the client
        m = self.milter()
        srv = self.srv(m.address + " timeout=1s")
        with srv.raw() as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            time.sleep(1.5)
            self.assertEqual(c.cmd("MAIL FROM:<a@client.test>")[0], 250)
        self.assertNotIn("timed out", srv.log())

    def test_connection_reused_across_sessions(self):
        m = self.milter()
        srv = self.server(conf([m.address]), modules=MODULES, workers=1)
        for i in range(3):
            self.assertEqual(self.send(srv)[0], 250)
        self.assertEqual(srv.queue_count(), 3)
        # the start-up probe had no message: QUIT; then one connection
        # for three sessions, each ended by QUIT_NC
        wait_for(lambda: m.stages().count("quit_nc") == 3, 10,
                 what="three QUIT_NC")
        self.assertEqual(m.connections, 2)
        self.assertEqual(m.stages().count("connect"), 4)
        srv.wait_log("a kept connection taken", count=2)
        # a filter that dropped the kept socket: a fresh one, no failure
        for c in list(m.conns):
            c.close()
        self.assertEqual(self.send(srv)[0], 250)
        self.assertEqual(srv.queue_count(), 4)

    def test_inet_socket_no_nagle(self):
        # issue #12: the worker's end of a TCP milter socket has
        # TCP_NODELAY.  Without it the frames a filter does not answer
        # (NR_HDR here) waited for the filter's delayed ACK, ~40 ms a
        # message.  No timing: the option is read from the worker's own
        # socket (the connection it keeps after the session), taken with
        # pidfd_getfd(2).
        m = self.milter(protocol=0x80)
        srv = self.server(conf([m.address]), modules=MODULES, workers=1)
        self.assertEqual(self.send(srv)[0], 250)
        wait_for(lambda: "quit_nc" in m.stages(), 10, what="QUIT_NC")
        wport = m.conns[-1].getpeername()[1]
        out = subprocess.run(
            ["ss", "-tnpH", "state", "established",
             "( sport = :%d and dport = :%d )" % (wport, m.port)],
            capture_output=True, text=True).stdout
        found = re.search(r"pid=(\d+),fd=(\d+)", out)
        self.assertIsNotNone(found, "the worker's milter socket: %r" % out)
        pid, fd = int(found.group(1)), int(found.group(2))
        self.assertIn(pid, srv.workers())
        libc = ctypes.CDLL(None, use_errno=True)
        pidfd = os.pidfd_open(pid)
        try:
            dup = libc.syscall(438, pidfd, fd, 0)      # pidfd_getfd
            err = ctypes.get_errno()
        finally:
            os.close(pidfd)
        if dup == -1:
            self.skipTest("pidfd_getfd: %s" % os.strerror(err))
        with socket.socket(fileno=dup) as dsock:
            self.assertEqual(dsock.getsockname()[1], wport)
            self.assertNotEqual(dsock.getsockopt(socket.IPPROTO_TCP,
                                                 socket.TCP_NODELAY), 0)

    # -- replies ------------------------------------------------------

    def test_reject_tempfail_discard(self):
        for stage in ("connect", "helo", "mail", "rcpt", "eom"):
            m = self.milter(actions={stage: lambda m, d: ("r", b"")})
            if stage == "connect":
                srv = self.srv_nogreet(m.address)
                with srv.raw(greet=False) as c:
                    self.assertEqual(c.reply()[0], 554)
                continue
            srv = self.srv(m.address)
            r = self.send(srv)
            self.assertEqual(r[0] // 100, 5, (stage, r))
            self.assertEqual(srv.queue_count(), 0)
        m = self.milter(actions={"eom": lambda m, d: ("t", b"")})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0] // 100, 4)
        self.assertEqual(srv.queue_count(), 0)
        m = self.milter(actions={"eom": lambda m, d: ("d", b"")})
        srv = self.srv(m.address)
        r = self.send(srv)
        self.assertEqual(r[0], 250, r)
        self.assertEqual(srv.queue_count(), 0)
        srv.wait_tmp_empty()

    def test_esmtp_arguments(self):
        """M and R carry the ESMTP arguments, each NUL-terminated, as
        the client gave them."""
        m = self.milter()
        srv = self.srv(m.address)
        with srv.raw() as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            self.assertEqual(c.cmd("MAIL FROM:<sender@client.test> SIZE=100"
                                   "  BODY=8BITMIME ENVID=e+2B1")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<user@example.test> NOTIFY=NEVER"
                                   )[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<user2@example.test>")[0], 250)
            c.cmd("RSET")
        self.assertEqual(m.data_of("mail")[-1], b"<sender@client.test>\0"
                         b"SIZE=100\0BODY=8BITMIME\0ENVID=e+2B1\0")
        self.assertEqual(m.data_of("rcpt")[-2:],
                         [b"<user@example.test>\0NOTIFY=NEVER\0",
                          b"<user2@example.test>\0"])

    def test_unknown_command(self):
        """SMFIC_UNKNOWN: the line as sent; continue keeps the 500, a
        reply code replaces it; a filter that asked for no unknown
        commands (SMFIP_NOUNKNOWN) gets none."""
        def answer(m, d):
            if d.startswith(b"XBLOCK"):
                return ("y", b"554 5.7.1 not here\0")
            return ("c", b"")
        m = self.milter(actions={"unknowncmd": answer})
        srv = self.srv(m.address)
        with srv.raw() as c:
            self.assertEqual(c.cmd("EHLO client.test")[0], 250)
            r = c.cmd("XFOO bar  baz")
            self.assertEqual((r[0], r[1]), (500, ["5.5.2 Error: command not"
                                                  " recognized"]), r)
            r = c.cmd("XBLOCK now")
            self.assertEqual((r[0], r[1]), (554, ["5.7.1 not here"]), r)
            self.assertEqual(c.cmd("NOOP")[0], 250)
        self.assertEqual(m.data_of("unknowncmd"),
                         [b"XFOO bar  baz\0", b"XBLOCK now\0"])
        # a filter without unknown commands: none sent, 500 as always
        quiet = self.milter(protocol=0x100)
        srv = self.srv(quiet.address)
        with srv.raw() as c:
            self.assertEqual(c.cmd("XBLOCK now")[0], 500)
            c.cmd("QUIT")
        self.assertEqual(quiet.data_of("unknowncmd"), [])

    def test_custom_reply_checked(self):
        m = self.milter(actions={"eom": lambda m, d: (
            "y", b"554 5.7.1 Spam\r\n250 injected\0")})
        srv = self.srv(m.address)
        r = self.send(srv)
        self.assertEqual(r[0], 554, r)
        self.assertEqual(len(r[1]), 1, r)
        self.assertTrue(r[1][0].startswith("5.7.1 Spam"), r)
        # a class that does not fit (2xx) is garbage: default_action
        m = self.milter(actions={"mail": lambda m, d: ("y", b"250 ok\0")})
        srv = self.srv(m.address + " default_action=reject")
        r = self.send(srv)
        self.assertEqual(r[0], 550, r)
        srv.wait_log("malformed reply code")

    def test_accept_skips_the_rest(self):
        m = self.milter(actions={"mail": lambda m, d: ("a", b"")})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        self.assertNotIn("rcpt", m.stages())
        self.assertNotIn("eom", m.stages())

    def test_quarantine_holds(self):
        m = self.milter(actions={"eom": [("q", b"suspicious\0")]})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        env = srv.envelope(srv.queue_ids()[0])
        self.assertIn("\nhold 1\n", env)

    # -- modifications ------------------------------------------------

    def test_header_edits_stored(self):
        m = self.milter(actions={"eom": [
            ("h", b"X-Added\0added value\0"),
            ("m", struct.pack("!I", 1) + b"Subject\0new subject\0"),
            ("m", struct.pack("!I", 1) + b"X-Remove\0\0"),
            ("i", struct.pack("!I", 0) + b"X-First\0top\nfolded\0"),
        ]})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        msg = srv.message(srv.queue_ids()[0])
        head, body = msg.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"X-First: top\r\n\tfolded\r\n"
                                        b"Received: "), head)
        self.assertIn(b"\r\nSubject: new subject\r\n", head)
        self.assertNotIn(b"spaced", head)
        self.assertNotIn(b"X-Remove", head)
        self.assertTrue(head.endswith(b"\r\nX-Added: added value"), head)
        self.assertIn(b"X-Fold: first\r\n\tsecond", head)
        self.assertEqual(body, b"body line 1\r\nbody line 2\r\n")

    def test_header_injection_refused(self):
        m = self.milter(actions={"eom": [
            ("h", b"X-Evil\0a\n\nBcc: x@evil.test\0")]})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        msg = srv.message(srv.queue_ids()[0])
        self.assertIn(b"X-Evil: a\r\n\tBcc: x@evil.test\r\n", msg)

    def test_envelope_edits_stored(self):
        m = self.milter(actions={"eom": [
            ("e", b"<new@client.test>\0"),
            ("+", b"<added@example.test>\0"),
            ("2", b"<dsn@example.test>\0NOTIFY=NEVER\0"),
            ("-", b"<user@example.test>\0"),
        ]})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        env = srv.envelope(srv.queue_ids()[0])
        self.assertIn("\nsender new@client.test\n", env)
        self.assertIn("\nrcpt added@example.test ", env)
        self.assertIn("\nrcpt dsn@example.test notify=1", env)
        self.assertNotIn("user@example.test", env)

    def test_replace_body(self):
        m = self.milter(actions={"eom": [
            ("b", b"new body\r\n"), ("b", b"second part\r\n")]})
        srv = self.srv(m.address)
        self.assertEqual(self.send(srv)[0], 250)
        msg = srv.message(srv.queue_ids()[0])
        self.assertTrue(msg.endswith(b"X-Remove: me\r\n\r\n"
                                     b"new body\r\nsecond part\r\n"), msg)
        self.assertNotIn(b"body line", msg)

    def test_edit_not_negotiated_is_broken(self):
        m = self.milter(action_flags=0x01,
                        actions={"eom": [("e", b"<x@client.test>\0")]})
        srv = self.srv(m.address + " default_action=tempfail")
        self.assertEqual(self.send(srv)[0], 451)
        self.assertEqual(srv.queue_count(), 0)
        srv.wait_tmp_empty()

    # -- broken milters and default_action ----------------------------

    def broken(self, behaviour, stage):
        if behaviour == "garbage":
            act = b"\xff\xff\xff\xffgarbage"
        else:
            act = behaviour
        return self.milter(actions={stage: lambda m, d: act})

    def test_broken_milters_default_actions(self):
        body = MSG + (b"z" * 998 + b"\r\n") * 150
        cases = [("hang", "body"), ("close", "body"), ("garbage", "mail"),
                 ("garbage", "eom"), ("hang", "eom")]
        for behaviour, stage in cases:
            for action, code in (("tempfail", 451), ("reject", 550),
                                 ("accept", 250)):
                m = self.broken(behaviour, stage)
                srv = self.srv("%s default_action=%s timeout=1s"
                               % (m.address, action))
                r = self.send(srv, body)
                self.assertEqual(r[0], code, (behaviour, stage, action, r))
                self.assertEqual(srv.queue_count(),
                                 1 if action == "accept" else 0)
                srv.check_queue_consistent()
                srv.wait_tmp_empty()
                srv.wait_log("milter inet:127.0.0.1:%d: .*default_action %s"
                             % (m.port, action))
                srv.stop()

    def test_unreachable_milter(self):
        port = free_port()
        srv = self.srv_nogreet("inet:127.0.0.1:%d default_action=tempfail"
                               % port)
        with srv.raw(greet=False) as c:
            r = c.reply()
            self.assertEqual(r[0], 421, r)
        srv.wait_log("cannot connect")
        srv.stop()
        srv = self.srv("inet:127.0.0.1:%d default_action=accept" % port)
        self.assertEqual(self.send(srv)[0], 250)
        self.assertEqual(srv.queue_count(), 1)

    def test_queue_id_logged(self):
        m = self.broken("close", "body")
        srv = self.srv(m.address + " default_action=tempfail")
        self.assertEqual(self.send(srv)[0], 451)
        srv.wait_log(r"milter .* id=[0-9A-V]{18} closed the connection")

    def test_bad_directive(self):
        for bad, why in (("inet:127.0.0.1:1 timeout=x",
                          "invalid milter parameter"),
                         ("inet:nowhere:25", "invalid milter address"),
                         ("inet:127.0.0.1:1 default_action=maybe",
                          "invalid milter parameter")):
            s = self.server(conf([bad]), start=False, modules=MODULES,
                            name="bad_%d" % len(self._servers))
            self.assertNotEqual(s.start(expect_fail=True), 0)
            self.assertIn(why, s.stderr() + s.log())


if __name__ == "__main__":
    unittest.main()
