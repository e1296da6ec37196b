"""policy_greylist in the server: triplets in shared memory (any worker
sees a retry), persistence across restarts (periodic save, save at exit,
kill -9) and reloads, postern -t on the file's access.  The delay, the
retry window, what makes a triplet, exemptions, the order with the
recipient checks and configuration errors are tested on the fake clock
of the plugin harness (tests/modules/test_policy_greylist.c)."""

import os
import socket
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
""" % (extra_top, grey)


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


# A delay that no test waits out: a retry that finds its triplet is
# refused as an "early retry", one that does not as a "new triplet".
# The harness test waits the delays out on its fake clock.
LONG = "greylist_delay 5m; greylist_retry_window 1h;"


def known(srv, rcpt="alice@example.test"):
    """How many retries to rcpt found their triplet."""
    return srv.log().count("-> <%s>: early retry of a triplet" % rcpt)


class GreylistTest(PstTestCase):

    def srv(self, grey=LONG, workers=2, extra_top=""):
        return self.server(conf(grey, extra_top), modules=MODULES,
                           workers=workers)

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
            return [int(l.split("[")[1].split("]")[0]) for l in
                    srv.log().splitlines() if what in l]
        self.assertEqual(run_on(a, b), [451] * len(pairs))
        self.assertEqual(run_on(b, a), [451] * len(pairs))
        self.assertEqual(set(pids("new triplet")), {a})
        self.assertEqual(pids("early retry"), [b] * len(pairs))

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
        self.assertEqual(attempt(srv.port)[0], 451)
        self.assertEqual(known(srv), 1)
        # a clean stop saves as well
        self.assertEqual(attempt(srv.port, rcpt="carol@example.test")[0],
                         451)
        self.assertEqual(srv.stop(), 0)
        srv.start()
        self.assertEqual(attempt(srv.port, rcpt="carol@example.test")[0],
                         451)
        self.assertEqual(known(srv, "carol@example.test"), 1)
        self.assertEqual(attempt(srv.port)[0], 451)
        self.assertEqual(known(srv), 2)

    def test_reload_keeps_table(self):
        srv = self.srv()
        self.assertEqual(attempt(srv.port)[0], 451)
        old = set(srv.workers())
        srv.reload()
        wait_for(lambda: srv.workers() and not (set(srv.workers()) & old),
                 15, what="new workers")
        self.assertEqual(attempt(srv.port)[0], 451)
        self.assertEqual(known(srv), 1)


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
