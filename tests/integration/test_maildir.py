"""deliver_maildir (issue #10): local delivery into Maildir through the
local-delivery route of ABI 1.2.  Mail to two users lands in their
Maildirs with Return-Path and Delivered-To, LF line ends and the body
byte for byte (a hook's prepended header below our Received:); a
mailbox that cannot be written defers its owner alone, who gets the
message once it is mended, without a second copy to the other; a quota
defers or bounces; an unsafe local part never escapes its directory;
kill -9 of the queue process never leaves a partial file in new/."""

import os
import pwd
import re
import shutil
import signal
import threading
import time

from pstest import PstTestCase, ROOT, wait_for
from test_relay import state_files

PLUGINS = os.path.join(ROOT, "objs", "plugins")

CONF = """
load_module {modules}/deliver_maildir.so;
load_module %s/hello.so;
relay_min_backoff 1s;
relay_max_backoff 2s;
maildir_path {dir}/mail/%%d/%%u/Maildir;
%s
smtp {
    server {
        listen {port};
        hostname mx.postern.test;
        local_domains example.test;
        hello_header X-Hello "world";
    }
}
"""


def maildir_files(box, sub="new"):
    """{name: bytes} of the files in box/sub."""
    d = os.path.join(box, sub)
    out = {}
    if os.path.isdir(d):
        for name in sorted(os.listdir(d)):
            with open(os.path.join(d, name), "rb") as f:
                out[name] = f.read()
    return out


def whole(name, data):
    """A file of new/ is whole: ,S= says its size, and it ends where the
    message ends."""
    m = re.search(r",S=(\d+)", name)
    return m is not None and int(m.group(1)) == len(data) \
        and data.endswith(b"--end--\n")


class MaildirTest(PstTestCase):

    def start(self, extra=""):
        srv = self.server(CONF % (PLUGINS, extra), start=False)
        self.mail = os.path.join(srv.dir, "mail")
        os.makedirs(self.mail)
        os.chmod(self.mail, 0o777)      # the queue process runs as nobody
        srv.start()
        return srv

    def box(self, user, domain="example.test"):
        return os.path.join(self.mail, domain, user, "Maildir")

    def wait_empty(self, srv, timeout=20):
        wait_for(lambda: srv.queue_ids() == [], timeout, what="empty queue")

    def test_two_users(self):
        """alice and bob each get one file in new/: Return-Path and
        Delivered-To first, then our Received:, the hook's X-Hello below
        it, the message with LF line ends, byte for byte; ,S= is the
        file's size; tmp/ is left empty; the log says relay=maildir."""
        srv = self.start()
        body = (b"Subject: local\r\nX-Test: 1\r\n\r\nline one\r\n"
                b"\r\n  indented\ttab\r\n.dot first\r\n"
                b"last\r\n")
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",
                                         "Bob@Example.test"),
                                  body=body), {})
        self.wait_empty(srv)
        for user, rcpt in (("alice", "alice@example.test"),
                           ("bob", "Bob@example.test")):
            files = maildir_files(self.box(user))
            self.assertEqual(len(files), 1, files)
            name, data = list(files.items())[0]
            self.assertRegex(name, r"^\d+\.M\d+P\d+Q\d+\.[^/]+,S=%d$"
                             % len(data))
            head = ("Return-Path: <s@ok.test>\nDelivered-To: %s\n"
                    "Received: " % rcpt).encode()
            self.assertTrue(data.startswith(head), data[:200])
            self.assertNotIn(b"\r\n", data)
            hdr, rest = data.split(b"\n\n", 1)
            self.assertRegex(hdr.decode(), r"(?s)Received: .*\nX-Hello:"
                             r" world\nSubject: local\nX-Test: 1$")
            self.assertEqual(rest, body.split(b"\r\n\r\n", 1)[1]
                             .replace(b"\r\n", b"\n"))
            self.assertEqual(os.listdir(os.path.join(self.box(user),
                                                     "tmp")), [])
            self.assertEqual(os.listdir(os.path.join(self.box(user),
                                                     "cur")), [])
            st = os.stat(self.box(user))
            self.assertEqual(st.st_mode & 0o777, 0o700)
        self.assertRegex(srv.log(), r"to=<alice@example.test>, "
                         r"relay=maildir, .*dsn=2\.0\.0, status=sent "
                         r"\(250 2\.0\.0 delivered to maildir\)")

    def test_broken_mailbox_deferred_alone(self):
        """bob's Maildir is a file: he is deferred (4xx), alice is
        delivered; once the file is gone bob gets the message on the
        retry and alice still has one copy."""
        srv = self.start()
        os.makedirs(os.path.dirname(self.box("bob")))
        for d in ("example.test", "example.test/bob"):
            os.chmod(os.path.join(self.mail, d), 0o777)
        with open(self.box("bob"), "w") as f:
            f.write("not a maildir\n")
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",
                                         "bob@example.test"),
                                  body=b"Subject: b\r\n\r\nonce\r\n"), {})
        srv.wait_log(r"to=<bob@example.test>, relay=maildir, .*"
                     r"status=deferred \(451 4\.3\.0 maildir delivery "
                     r"failed: mkdir .*Not a directory", timeout=20)
        self.assertEqual(len(maildir_files(self.box("alice"))), 1)
        self.assertEqual(len(srv.queue_ids()), 1)
        os.unlink(self.box("bob"))
        srv.wait_log(r"to=<bob@example.test>, .*status=sent", timeout=20)
        self.wait_empty(srv)
        self.assertEqual(len(maildir_files(self.box("bob"))), 1)
        self.assertIn(b"once\n", list(maildir_files(self.box("bob"))
                                      .values())[0])
        self.assertEqual(len(maildir_files(self.box("alice"))), 1)

    def quota(self, mode):
        srv = self.start("maildir_quota 3k;\nmaildir_quota_exceeded %s;"
                         % mode)
        small = b"Subject: small\r\n\r\n" + b"x" * 500 + b"\r\n"
        # under 3k with our Received: (whose node_name, by default the
        # machine's host name, may be up to 64 bytes), over it together
        # with the small one
        big = b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 38
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",),
                                  body=small), {})
        srv.wait_log(r"to=<alice@example.test>, .*status=sent", timeout=20)
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",
                                         "bob@example.test"),
                                  body=big), {})
        srv.wait_log(r"to=<bob@example.test>, .*status=sent", timeout=20)
        return srv

    def test_quota_defer(self):
        """Over maildir_quota (the ,S= sizes in new/ and cur/ plus the
        message) alice is deferred 452 4.2.2, her mailbox keeps only the
        first message, bob (empty) gets the big one."""
        srv = self.quota("defer")
        srv.wait_log(r"to=<alice@example.test>, .*status=deferred \(452 "
                     r"4\.2\.2 mailbox full", timeout=20)
        self.assertEqual(len(maildir_files(self.box("alice"))), 1)
        self.assertEqual(len(maildir_files(self.box("bob"))), 1)
        self.assertEqual(os.listdir(os.path.join(self.box("alice"),
                                                 "tmp")), [])
        self.assertEqual(len(srv.queue_ids()), 1)

    def test_quota_bounce(self):
        """maildir_quota_exceeded bounce: 552 5.2.2 at once, and the
        sender is told."""
        srv = self.quota("bounce")
        srv.wait_log(r"to=<alice@example.test>, .*status=bounced \(552 "
                     r"5\.2\.2 mailbox full", timeout=20)
        srv.wait_log(r"sender non-delivery notification", timeout=20)
        self.assertEqual(len(maildir_files(self.box("alice"))), 1)

    def test_unsafe_local_part(self):
        """A local part with '/' or one that starts with '.' (once
        unquoted) has no mailbox (550 5.1.3): nothing is created outside
        the template."""
        srv = self.start()
        self.assertEqual(srv.send(sender="",
                                  rcpts=('"x/../../evil"@example.test',
                                         '".hidden"@example.test',
                                         "ok@example.test")), {})
        self.wait_empty(srv)
        log = srv.log()
        self.assertRegex(log, r'to=<"x/\.\./\.\./evil"@example.test>, .*'
                         r"status=bounced \(550 5\.1\.3 no maildir")
        self.assertRegex(log, r'to=<"\.hidden"@example.test>, .*'
                         r"status=bounced \(550 5\.1\.3 no maildir")
        self.assertEqual(sorted(os.listdir(self.mail)), ["example.test"])
        self.assertEqual(sorted(os.listdir(os.path.join(self.mail,
                                                        "example.test"))),
                         ["ok"])

    def test_kill9_never_partial(self):
        """Big messages, watched while they are written, and kill -9 of
        the queue process in the middle: every file ever seen in new/
        is whole (its ,S= size, its last line); every message arrives,
        a repeat only for one in flight."""
        srv = self.start("relay_hold on;")
        n = 12
        for i in range(n):
            body = ("Subject: m%d\r\nX-Num: %d\r\n\r\n" % (i, i)).encode() \
                + (b"z" * 98 + b"\r\n") * 20000 + b"--end--\r\n"
            self.assertEqual(srv.send(sender="s@ok.test",
                                      rcpts=("alice@example.test",),
                                      body=body), {})
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == n, 20, what="held")
        box = self.box("alice")
        bad, stop = [], threading.Event()

        def watch():
            seen = set()
            while not stop.is_set():
                d = os.path.join(box, "new")
                for name in (os.listdir(d) if os.path.isdir(d) else []):
                    if name in seen:
                        continue
                    with open(os.path.join(d, name), "rb") as f:
                        if not whole(name, f.read()):
                            bad.append(name)
                    seen.add(name)
                time.sleep(0.001)

        t = threading.Thread(target=watch)
        t.start()
        try:
            r = srv.run_tool("queue", "release")
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: len(maildir_files(box)) >= 3, 60,
                     what="3 delivered")
            pid = srv.queue_process()
            os.kill(pid, signal.SIGKILL)
            # a release not yet written is lost with the process
            wait_for(lambda: srv.queue_process() not in (None, pid), 20,
                     what="a new queue process")
            time.sleep(0.5)
            r = srv.run_tool("queue", "release")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.wait_empty(srv, 120)
        finally:
            stop.set()
            t.join()
        self.assertEqual(bad, [])
        files = maildir_files(box)
        for name, data in files.items():
            self.assertTrue(whole(name, data), name)
        nums = [int(re.search(rb"X-Num: (\d+)", d).group(1))
                for d in files.values()]
        self.assertEqual(sorted(set(nums)), list(range(n)))
        self.assertLessEqual(len(nums) - n, 5, nums)

    def test_maildir_user_needs_privilege(self):
        """maildir_user is the queue process's account: files as usual;
        another account the unprivileged queue process cannot give files
        to: the start says so, and deliveries are deferred (not written
        with the wrong owner)."""
        srv = self.start("maildir_user nobody;")
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",)), {})
        self.wait_empty(srv)
        name = list(maildir_files(self.box("alice")))[0]
        st = os.stat(os.path.join(self.box("alice"), "new", name))
        self.assertEqual(st.st_uid, pwd.getpwnam("nobody").pw_uid)
        srv.stop()

        srv = self.server(CONF % (PLUGINS, "maildir_user root;"),
                          name="user_root", start=False)
        self.mail = os.path.join(srv.dir, "mail")
        os.makedirs(self.mail)
        os.chmod(self.mail, 0o777)
        srv.start()
        srv.wait_log(r"deliver_maildir: the queue process runs as uid \d+"
                     r" and cannot give files to maildir_user root")
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("bob@example.test",)), {})
        srv.wait_log(r"to=<bob@example.test>, .*status=deferred \(451 "
                     r"4\.3\.0 maildir delivery failed: .*Operation not "
                     r"permitted", timeout=20)
        self.assertEqual(maildir_files(self.box("bob")), {})

    def test_next_hop_refused(self):
        """A transport rule with a next hop for maildir is deferred with
        the reason, not delivered somewhere the rule did not mean."""
        srv = self.start("transport example.test maildir /elsewhere;")
        self.assertEqual(srv.send(sender="s@ok.test",
                                  rcpts=("alice@example.test",)), {})
        srv.wait_log(r"to=<alice@example.test>, .*status=deferred \(451 "
                     r"4\.3\.5 deliver_maildir takes no next hop",
                     timeout=20)
        self.assertEqual(os.listdir(self.mail), [])

    def test_config_errors(self):
        """A template that could escape, or a bad '%', fails the
        configuration with the reason."""
        for path, why in (("mail/%u", "must be an absolute path"),
                          ("/var/mail/../%u", r'"\.\." component'),
                          ("/var/mail/%x", "is not %u, %d or %%")):
            conf = (CONF % (PLUGINS, "")).replace(
                "{dir}/mail/%d/%u/Maildir", path)
            srv = self.server(conf, start=False, name="cfg")
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0)
            self.assertRegex(r.stderr, why)
            shutil.rmtree(srv.dir, ignore_errors=True)
