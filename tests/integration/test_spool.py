"""The spool as a core service (docs/SPOOL.md, format 3): a crash in the
middle of a delivery-state update, the upgrade of format 2 spools in
place, and what `postern queue` shows of the delivery state.  Driven
through objs/tests/spool_state (tests/tools/spool_state.c)."""

import os
import random
import re
import select
import shutil
import subprocess
import tempfile
import time
import unittest

from pstest import (BASIC, OBJS, POSTERN, ROOT, PstTestCase, QUEUE_ID,
                    queue_path, read_queue_file)
from psttls import build

TOOL = os.path.join(OBJS, "tests", "spool_state")


def tool(spool, *args):
    r = subprocess.run([TOOL, spool] + list(args), capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout.strip()


def new_spool(parent):
    spool = tempfile.mkdtemp(prefix="spool-", dir=parent)
    for d in ("queue", "tmp", "corrupt"):
        os.mkdir(os.path.join(spool, d))
    return spool


# What the previous release (spool format 2, envelope 1) wrote: flat in
# queue/, the header says 2.
OLD_ID = "1LG6N7GTJFR01F6BA0"
OLD_MSG = (b"Received: from client.test\r\n\tby mx.example.test\r\n"
           b"Subject: old\r\n\r\nwritten by the previous release\r\n")
OLD_ENV = ("POSTERN-ENVELOPE 1\n"
           "id %s\n"
           "arrival 1795382512.000000\n"
           "client-addr 127.0.0.1\n"
           "helo client.test\n"
           "protocol ESMTP\n"
           "server mx.example.test\n"
           "sender old@client.test\n"
           "auth-param <>\n"
           "size %d\n"
           "rcpt a@example.test notify=6 orcpt=rfc822;a@example.test"
           " state=pending\n"
           "rcpt b@example.test notify=0 state=pending\n"
           "prepend X-Old:+20yes\n"
           "end\n" % (OLD_ID, len(OLD_MSG))).encode()


def put_old(spool, qid=OLD_ID):
    data = (b"POSTERN-SPOOL 2 %020d %020d\n" % (len(OLD_MSG), len(OLD_ENV))
            + OLD_MSG + OLD_ENV)
    with open(os.path.join(spool, "queue", qid), "wb") as f:
        f.write(data)


class StateCrashTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        build("objs/tests/spool_state")

    def setUp(self):
        os.makedirs(os.path.join(OBJS, "run"), exist_ok=True)
        self.spool = new_spool(os.path.join(OBJS, "run"))

    def tearDown(self):
        shutil.rmtree(self.spool, ignore_errors=True)

    def test_kill_9_during_state_writes(self):
        """kill -9 at random points of a loop of state writes: what is
        read afterwards is the last write that returned or the one after
        it, whole, and nothing goes to corrupt/ or stays behind."""
        rc, qid = tool(self.spool, "inject")
        self.assertEqual(rc, 0, qid)
        self.assertTrue(QUEUE_ID.match(qid), qid)
        rng = random.Random(7)
        seen_mid = 0
        for _ in range(25):
            p = subprocess.Popen([TOOL, self.spool, "loop", qid, "1000000"],
                                 stdout=subprocess.PIPE)
            try:
                # at least one write done, then a random moment
                ready, _, _ = select.select([p.stdout], [], [], 30)
                self.assertTrue(ready, "the loop wrote nothing")
                first = p.stdout.readline()
                self.assertEqual(first, b"1\n")
                time.sleep(rng.uniform(0, 0.03))
            finally:
                p.kill()
                rest = p.stdout.read()
                p.wait(30)
                p.stdout.close()
            lines = (first + rest).split()
            last = int(lines[-1])
            rc, out = tool(self.spool, "check", qid)
            self.assertEqual(rc, 0, out)
            k = int(out.split()[1])
            self.assertIn(k, (last, last + 1), "acknowledged %d" % last)
            seen_mid += k == last + 1
            self.assertEqual(os.listdir(os.path.join(self.spool, "corrupt")),
                             [])
            # the walk in check removed a dead writer's new state file
            files = os.listdir(os.path.join(self.spool, "queue", qid[-2:]))
            self.assertEqual(sorted(files), [qid, qid + ".state"])
        # (how often a kill fell between the rename and the print is
        # chance; it is not asserted)
        self.assertGreaterEqual(seen_mid, 0)

    def test_upgrade_in_place(self):
        """A flat format 2 file is read, then moved into queue/XY/ by the
        walk, once, with its envelope 1 read whole."""
        put_old(self.spool)
        rc, out = tool(self.spool, "walk")
        self.assertEqual((rc, out), (0, OLD_ID))
        self.assertFalse(os.path.exists(os.path.join(self.spool, "queue",
                                                     OLD_ID)))
        msg, env = read_queue_file(queue_path(self.spool, OLD_ID))
        self.assertEqual(msg, OLD_MSG)
        rc, out = tool(self.spool, "walk")
        self.assertEqual((rc, out), (0, OLD_ID))
        # and its state can be updated like any other
        p = subprocess.run([TOOL, self.spool, "loop", OLD_ID, "2"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(tool(self.spool, "check", OLD_ID),
                         (0, "attempts 2"))


class QueueToolStateTest(PstTestCase):

    @classmethod
    def setUpClass(cls):
        build("objs/tests/spool_state")

    def test_show_state_and_upgrade(self):
        """postern queue on a spool that holds a message of the previous
        release and a message with a delivery state."""
        srv = self.server(BASIC)
        self.assertEqual(srv.send(), {})
        qid = srv.queue_ids()[0]
        srv.stop()
        put_old(srv.spool)
        p = subprocess.run([TOOL, srv.spool, "loop", qid, "3"],
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout)

        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout), (0, "2\n"))
        # moved into place by the walk
        self.assertEqual(srv.queue_ids(), sorted([qid, OLD_ID]))
        self.assertFalse(os.path.exists(os.path.join(srv.spool, "queue",
                                                     OLD_ID)))

        r = srv.run_tool("queue", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^%s +%d +%s +"
                                   r"<old@client\.test>\n"
                                   r"    <a@example\.test> pending\n"
                                   r"    <b@example\.test> pending$"
                         % (OLD_ID, len(OLD_MSG),
                            # readable, local time, sorted by arrival
                            time.strftime("%Y-%m-%d %H:%M:%S",
                                          time.localtime(1795382512))))
        self.assertLess(r.stdout.index(OLD_ID), r.stdout.index(qid))
        self.assertRegex(r.stdout, r"(?m)^%s .*  held\n    <[^>]+> deferred "
                                   r"attempts 3 next [-\d]+ [:\d]+ reply \"451 4\.3\.0 "
                                   r"attemptx+\"$" % qid)

        r = srv.run_tool("queue", "show", OLD_ID)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("client unknown [127.0.0.1] helo client.test "
                      "protocol ESMTP", r.stdout)
        self.assertIn("arrival 1795382512.000000 size %d" % len(OLD_MSG),
                      r.stdout)
        r = subprocess.run([POSTERN, "-p", ROOT + "/", "-c", srv.conffile,
                            "queue", "cat", OLD_ID], capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # the added line below the trace block, as a delivery sends it
        trace = b"Received: from client.test\r\n\tby mx.example.test\r\n"
        self.assertEqual(r.stdout, trace + b"X-Old: yes\r\n"
                         + OLD_MSG[len(trace):])

        # the server takes new mail on the upgraded spool
        srv.start()
        self.assertEqual(srv.send(), {})
        self.assertEqual(srv.queue_count(), 3)
        srv.check_queue_consistent()

    def test_arrival_has_microseconds(self):
        """The envelope's arrival is the ID's time, microseconds and
        all (the previous release wrote .000000)."""
        srv = self.server(BASIC)
        arrivals = []
        for _ in range(3):
            self.assertEqual(srv.send(), {})
        for qid in srv.queue_ids():
            env = srv.envelope(qid)
            m = re.search(r"\narrival (\d+)\.(\d{6})\n", env)
            self.assertTrue(m, env)
            arrivals.append(m.group(2))
            self.assertIn("\nserver mx.example.test\n", env)
        self.assertNotEqual(arrivals, ["000000"] * 3)


if __name__ == "__main__":
    unittest.main()
