"""postern queue: the read verbs (count STATE, list --json, show --json)
read the spool directly, also while the server runs; the mutating verbs
(hold, release, delete, flush) work on the spool when the server is
stopped, and what they write the engine reads at its next start."""

import glob
import json
import os
import re

from pstest import wait_for
from test_relay import RelayCase, closed_port, state_files


class QueueCtlTest(RelayCase):

    def q(self, srv, *args, rc=0):
        r = self.queue(srv, *args)
        self.assertEqual(r.returncode, rc, (args, r.stdout, r.stderr))
        return r.stdout

    def held_server(self, n):
        handler, port = self.sink()
        srv = self.relay(port, "relay_hold on;")
        for i in range(n):
            self.assertEqual(srv.send(rcpts=("a%d@ok.test" % i,)), {})
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == n, 20, what="held")
        return handler, srv

    def test_read_verbs_while_running(self):
        _, srv = self.held_server(3)
        self.assertEqual(self.q(srv, "count", "held").strip(), "3")
        self.assertEqual(self.q(srv, "count", "deferred").strip(), "0")
        self.assertEqual(self.q(srv, "count", "all").strip(), "3")
        msgs = json.loads(self.q(srv, "list", "--json"))
        self.assertEqual(len(msgs), 3)
        self.assertEqual({m["state"] for m in msgs}, {"held"})
        self.assertEqual(sorted(m["recipients"][0]["address"]
                                for m in msgs),
                         ["a0@ok.test", "a1@ok.test", "a2@ok.test"])
        one = json.loads(self.q(srv, "show", msgs[0]["id"], "--json"))
        self.assertEqual(one["id"], msgs[0]["id"])
        self.assertEqual(one["sender"], "sender@client.test")
        self.assertTrue(one["held"])
        self.assertEqual(one["recipients"][0]["state"], "pending")
        self.q(srv, "count", "bogus", rc=64)
        self.q(srv, "list", "--xml", rc=64)
        # the changing verbs, live, with --json
        self.assertEqual(json.loads(self.q(srv, "release", msgs[0]["id"],
                                           "--json")),
                         {"verb": "release", "target": msgs[0]["id"],
                          "count": 1})
        flushed = json.loads(self.q(srv, "flush", "--json"))
        self.assertEqual(sorted(flushed), ["count", "target", "verb"])
        self.assertEqual((flushed["verb"], flushed["target"]),
                         ("flush", "ALL"))
        self.assertIsInstance(flushed["count"], int)

    def test_list_mailq(self):
        """list --mailq: Postfix's mailq format -- held marked '!', the
        null sender as MAILER-DAEMON, a deferred recipient under its
        last reply, the totals line; and the empty queue."""
        srv = self.relay(closed_port())
        self.assertEqual(self.q(srv, "list", "--mailq"),
                         "Mail queue is empty\n")
        self.assertEqual(srv.send(rcpts=("d@ok.test",)), {})
        self.assertEqual(srv.send(sender="", rcpts=("n@ok.test",)), {})
        wait_for(lambda: sum("state=deferred" in s for s in
                             state_files(srv.spool).values()) == 2, 20,
                 what="two deferred")
        ids = sorted(srv.queue_ids())
        self.q(srv, "hold", ids[1])
        wait_for(lambda: "hold 1" in state_files(srv.spool)[ids[1]], 10,
                 what="held")
        out = self.q(srv, "list", "--mailq")
        lines = out.split("\n")
        self.assertEqual(lines[0], "----Queue ID----- --Size-- "
                         "---Arrival Time---- --Sender/Recipient------")
        msg = re.compile(r"^([0-9A-V]{18})(!?) +(\d+) "
                         r"(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+)$")
        m1, m2 = msg.match(lines[1]), msg.match(lines[5])
        self.assertTrue(m1 and m2, out)
        self.assertEqual((m1.group(1), m1.group(2), m1.group(5)),
                         (ids[0], "", "sender@client.test"))
        self.assertEqual((m2.group(1), m2.group(2), m2.group(5)),
                         (ids[1], "!", "MAILER-DAEMON"))
        self.assertRegex(lines[2], r"^ +\(451 4\.4\.1 .*\)$")
        self.assertEqual(len(lines[2]), 78)     # right-aligned, Postfix's
        self.assertEqual(lines[3], " " * 47 + "d@ok.test")
        self.assertEqual(lines[4], "")
        self.assertEqual(lines[7], " " * 47 + "n@ok.test")
        self.assertRegex(out, r"\n\n-- \d+ Kbytes in 2 Requests\.\n$")

    def test_list_mailq_unreadable_message_left_out(self):
        """A message listed but unreadable when its turn comes (as one
        delivered meanwhile) leaves no trace: no second blank line before
        the totals, and no heading above 'Mail queue is empty'."""
        _, srv = self.held_server(1)
        srv.stop()
        qid = srv.queue_ids()[0]
        bad = os.path.join(srv.spool, "queue", "VV", "V" * 18)
        os.makedirs(os.path.dirname(bad), exist_ok=True)
        with open(bad, "w") as f:
            f.write("not a queue file\n")
        out = self.q(srv, "list", "--mailq")
        self.assertRegex(out, r"^----Queue ID-----.*\n%s! .*\n +a0@ok\.test\n"
                         r"\n-- 0 Kbytes in 1 Request\.\n$" % qid)
        os.unlink(glob.glob(os.path.join(srv.spool, "queue", "*", qid))[0])
        self.assertEqual(self.q(srv, "list", "--mailq"),
                         "Mail queue is empty\n")

    def test_offline_hold_release_delete(self):
        handler, srv = self.held_server(3)
        ids = sorted(srv.queue_ids())
        srv.stop()
        self.q(srv, "hold", rc=64)
        self.assertEqual(self.q(srv, "release", ids[0]).strip(), "1")
        self.assertEqual(self.q(srv, "count", "held").strip(), "2")
        self.assertEqual(self.q(srv, "hold", "ALL").strip(), "1")
        self.assertEqual(self.q(srv, "delete", ids[1]).strip(), "1")
        self.assertEqual(self.q(srv, "count").strip(), "2")
        self.q(srv, "delete", ids[1], rc=1)              # gone already
        self.assertEqual(json.loads(self.q(srv, "release", "--json")),
                         {"verb": "release", "target": "ALL", "count": 2})
        self.assertEqual(self.q(srv, "count", "held").strip(), "0")
        # the state files keep the queue files' owner (the queue
        # process is not root)
        for st in glob.glob(os.path.join(srv.spool, "queue", "*",
                                         "*.state")):
            self.assertEqual(os.stat(st).st_uid,
                             os.stat(st[:-len(".state")]).st_uid, st)
        # released offline: the engine delivers them at its start
        srv.start()
        self.received(handler, 2)
        got = sorted(m[1][0] for m in handler.messages)
        self.assertEqual(got, ["a0@ok.test", "a2@ok.test"])
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")

    def test_offline_flush(self):
        # no MX listens: deferred, with a next try far away
        dead = self.relay(1, "relay_min_backoff 1h;\nrelay_max_backoff 2h;",
                          name="flush_dead")
        self.assertEqual(dead.send(rcpts=("a@ok.test",)), {})
        wait_for(lambda: self.q(dead, "count", "deferred").strip() == "1",
                 15, what="deferred")
        dead.stop()
        self.assertEqual(self.q(dead, "flush", "other.test").strip(), "0")
        self.assertEqual(self.q(dead, "flush", "ok.test").strip(), "1")
        state = list(state_files(dead.spool).values())[0]
        self.assertIn("state=deferred", state)
        self.assertNotIn("next-try=", state)
