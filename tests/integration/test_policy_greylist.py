"""policy_greylist: triplets in shared memory (any worker sees a retry),
delay and retry window, exemptions, order with the recipient checks, and
persistence across restarts (periodic save, save at exit, kill -9)."""

import os
import socket
import time
import unittest

from pstest import (PstTestCase, RawClient, continue_workers,
                    stop_workers, wait_for)

MODULES = ("store_spool", "policy_recipients", "policy_greylist",
           "policy_relay")



def conf(grey="", extra_top=""):
    return """
%s
smtp {
    hostname mx.example.test;
    server {
        listen {port};
        local_domains example.test;
        recipients example.test list alice bob carol dave;
        %s
    }
}
""" % (extra_top, grey if "greylist_delay" in grey
       else grey + " greylist_delay 2s; greylist_retry_window 30s;")


def attempt(port, sender="a@client.test", rcpt="alice@example.test",
            source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(source, 0))
    c = RawClient.__new__(RawClient)
    c.sock, c.buf = s, b""
    try:
        c.reply()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<%s>" % sender)
        return c.cmd("RCPT TO:<%s>" % rcpt)
    finally:
        c.close()


class GreylistTest(PstTestCase):

    def srv(self, grey="", workers=2, extra_top=""):
        return self.server(conf(grey, extra_top), modules=MODULES,
                           workers=workers)

    def test_delay_then_pass(self):
        srv = self.srv()
        code, lines = attempt(srv.port)
        self.assertEqual(code, 451)
        self.assertRegex(lines[0], r"^4\.7\.1 Greylisted, please try again"
                         r" in [12] seconds")
        self.assertEqual(attempt(srv.port)[0], 451)          # too early
        time.sleep(2.3)
        self.assertEqual(attempt(srv.port)[0], 250)
        self.assertEqual(attempt(srv.port)[0], 250)          # known now
        # case does not make a new triplet
        self.assertEqual(attempt(srv.port, sender="A@Client.Test",
                                 rcpt="ALICE@example.test")[0], 250)
        # another recipient, sender or network is a new triplet
        self.assertEqual(attempt(srv.port, rcpt="bob@example.test")[0], 451)
        self.assertEqual(attempt(srv.port, sender="b@client.test")[0], 451)
        # same /24: the same triplet
        self.assertEqual(attempt(srv.port, source="127.0.0.77")[0], 250)
        log = srv.log()
        self.assertIn("policy_greylist: tempfail <a@client.test> ->"
                      " <alice@example.test>: new triplet", log)
        self.assertIn("early retry", log)
        self.assertIn("policy_greylist: pass <a@client.test>", log)

    def test_prefix_exempt_and_order(self):
        srv = self.srv("greylist_ipv4_prefix 32;"
                       " greylist_exempt 127.0.0.9;")
        self.assertEqual(attempt(srv.port)[0], 451)
        time.sleep(2.3)
        self.assertEqual(attempt(srv.port)[0], 250)
        # /32: a neighbour is a new triplet
        self.assertEqual(attempt(srv.port, source="127.0.0.2")[0], 451)
        # exempt network
        self.assertEqual(attempt(srv.port, source="127.0.0.9")[0], 250)
        # an unknown user is refused for good, not greylisted
        code, lines = attempt(srv.port, rcpt="mallory@example.test")
        self.assertEqual((code, lines[0][:5]), (550, "5.1.1"))

    def test_shared_by_workers(self):
        # The first attempts go to one worker, the retries to the other
        # (each round with the other worker stopped): the second must
        # find the triplets in the shared table.
        srv = self.srv(workers=2)
        a, b = srv.workers()
        pairs = [("s%d@client.test" % i, r + "@example.test")
                 for i in range(3) for r in ("alice", "bob", "carol")]

        def run_on(worker, other):
            try:
                stop_workers([other])
                return [attempt(srv.port, p[0], p[1])[0] for p in pairs]
            finally:
                continue_workers([other])

        def pids(what):
            return set(int(l.split("[")[1].split("]")[0]) for l in
                       srv.log().splitlines() if what in l)
        self.assertEqual(run_on(a, b), [451] * len(pairs))
        time.sleep(2.3)
        self.assertEqual(run_on(b, a), [250] * len(pairs))
        self.assertEqual(pids("new triplet"), {a})
        self.assertEqual(pids("policy_greylist: pass"), {b})

    def test_retry_window(self):
        srv = self.srv("greylist_delay 1s; greylist_retry_window 3s;")
        self.assertEqual(attempt(srv.port)[0], 451)
        # times are whole seconds: well past the window
        time.sleep(4.6)
        # too late: it starts over
        self.assertEqual(attempt(srv.port)[0], 451)
        self.assertEqual(srv.log().count("new triplet"), 2)

    def test_persistence_across_restart(self):
        srv = self.srv(extra_top="greylist_save_interval 1s;")
        db = os.path.join(srv.spool, "greylist.db")
        self.assertEqual(attempt(srv.port)[0], 451)
        self.assertEqual(attempt(srv.port, rcpt="bob@example.test")[0], 451)
        # the periodic save writes the table without a stop
        wait_for(lambda: os.path.exists(db)
                 and os.path.getsize(db) >= 24 + 2 * 24, 10,
                 what="greylist.db with two triplets")
        # a crash loses nothing that was saved
        srv.kill_all()
        srv.start()
        wait_for(lambda: "2 triplet(s) loaded" in srv.log(), 10,
                 what="the table loaded at start")
        time.sleep(2.3)
        self.assertEqual(attempt(srv.port)[0], 250)
        # a clean stop saves as well
        self.assertEqual(attempt(srv.port, rcpt="carol@example.test")[0],
                         451)
        self.assertEqual(srv.stop(), 0)
        srv.start()
        time.sleep(2.3)
        self.assertEqual(attempt(srv.port, rcpt="carol@example.test")[0],
                         250)
        self.assertEqual(attempt(srv.port)[0], 250)

    def test_reload_keeps_table(self):
        srv = self.srv()
        self.assertEqual(attempt(srv.port)[0], 451)
        old = set(srv.workers())
        srv.reload()
        wait_for(lambda: srv.workers() and not (set(srv.workers()) & old),
                 15, what="new workers")
        time.sleep(2.3)
        self.assertEqual(attempt(srv.port)[0], 250)

    def test_bad_config(self):
        srv = self.server(conf("greylist_delay 5m; greylist_retry_window 1m;")
                          , modules=MODULES, start=False, name="grey_bad")
        self.assertNotEqual(srv.start(expect_fail=True), 0)
        self.assertIn("greylist_delay must be at least 1s and shorter than"
                      " greylist_retry_window", srv.stderr())

@unittest.skipUnless(os.geteuid() == 0, "needs root (workers as nobody)")
class GreylistFileAccessTest(PstTestCase):
    """The workers (as nobody) load and save greylist_file: postern -t
    checks that they can, as it does for the spool.  Before, -t passed
    and every worker logged "cannot save" once a save interval, the
    table lost at each restart."""

    def srv_with_file(self, path):
        srv = self.server(conf(), start=False, modules=MODULES,
                          extra_top="greylist_file %s;" % path)
        return srv

    def test_t_refuses_a_file_the_workers_cannot_use(self):
        srv = self.srv_with_file("{dir}/locked/grey.db")
        locked = os.path.join(srv.dir, "locked")
        os.makedirs(locked, exist_ok=True)
        os.chmod(locked, 0o700)          # root only
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('worker account "nobody" cannot use', r.stderr)
        self.assertIn(locked, r.stderr)

    def test_t_accepts_a_directory_the_workers_own(self):
        srv = self.srv_with_file("{dir}/grey/grey.db")
        grey = os.path.join(srv.dir, "grey")
        os.makedirs(grey, exist_ok=True)
        os.chown(grey, 65534, 65534)
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.start()
        srv.stop()
        self.assertTrue(os.path.exists(os.path.join(grey, "grey.db")))


if __name__ == "__main__":
    unittest.main()
