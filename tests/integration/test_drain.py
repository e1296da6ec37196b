"""Handing a node's queue to another node (issue #14): `postern queue
drain --to ADDR:PORT` and `drain_on_quit`, over SMTP with the XPOSTERN
node facts (core/queue/pst_queue_drain.c, core/smtp/pst_smtp_node.c).

Node A relays through relay_mx to an aiosmtpd sink that takes the
"ok" recipients and defers the "later" ones, so A's queue holds
messages with a delivered recipient and deferred ones; node B is a
Postern without a router, whose spool is where the moved mail ends.

These are two instances on 127.0.0.1 with distinct ports and spools:
what the drain sees is the same (an address and a port), and loopback
needs no privileges.  Nodes in network namespaces, each with its own
address -- a node_trusted list that tells two node addresses apart, a
drain whose mail then reaches a sink exactly once -- are
tests/integration/test_nodes.py."""

import json
import re
import signal
import socket
import time

from pstest import wait_for
from test_relay import RelayCase, closed_port, state_files

NODE_B = """
smtp {
    server {
        listen {port};
        hostname nodeb.postern.test;
        relay_networks 127.0.0.0/8;     # policy_relay: the nodes relay
        %s
    }
}
"""

TRUSTED = "node_trusted 127.0.0.0/8;"
UNTRUSTED = "node_trusted 192.0.2.0/24;"


def envelope_facts(env):
    """sender, arrival and the rcpt lines of an envelope, as a dict."""
    out = {"rcpts": {}}
    for line in env.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("sender", "arrival", "hold", "requiretls"):
            out[key] = rest
        elif key == "rcpt":
            addr, _, attrs = rest.partition(" ")
            out["rcpts"][addr] = dict(a.split("=", 1)
                                      for a in attrs.split())
    return out


class DrainCase(RelayCase):

    def node_b(self, trust=TRUSTED, name="b"):
        return self.server(NODE_B % trust, name=self.id().split(".")[-1]
                           + "_" + name, extra_top="node_name node-b;")

    def node_a(self, extra="", name=None):
        handler, port = self.sink()
        srv = self.relay(port, "node_name node-a;\nrelay_min_backoff 1h;\n"
                         "relay_max_backoff 2h;\n" + extra, name=name)
        return handler, srv

    def load(self, srv, handler, n):
        """n messages, each with a recipient the sink takes and two it
        defers (one with NOTIFY and ORCPT); wait until A tried them."""
        for i in range(n):
            with srv.raw() as c:
                c.cmd("EHLO client.test")
                self.assertEqual(c.cmd("MAIL FROM:<s%d@client.test>"
                                       " ENVID=env%d RET=HDRS" % (i, i))[0],
                                 250)
                for rcpt in ("RCPT TO:<ok%d@ok.test>" % i,
                             "RCPT TO:<later%d@ok.test> NOTIFY=FAILURE,DELAY"
                             " ORCPT=rfc822;orig%d@x.test" % (i, i),
                             "RCPT TO:<later-b%d@other.test>" % i):
                    self.assertEqual(c.cmd(rcpt)[0], 250)
                self.assertEqual(c.cmd("DATA")[0], 354)
                c.send(b"Subject: m%d\r\n\r\nbody %d\r\n.\r\n" % (i, i))
                self.assertEqual(c.reply()[0], 250)
        wait_for(lambda: sum("state=delivered" in s and "state=deferred"
                             in s for s in state_files(srv.spool).values())
                 == n, 60, what="%d messages tried" % n)
        self.assertEqual(len(handler.messages), n)

    def drain(self, a, b_port, rc=0):
        r = self.queue(a, "drain", "--to", "127.0.0.1:%d" % b_port,
                       "--json")
        self.assertEqual(r.returncode, rc, (r.stdout, r.stderr))
        return r

    def drain_state(self, a):
        r = self.queue(a, "drain", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def wait_drained(self, a):
        wait_for(lambda: self.drain_state(a)["state"] != "running", 60,
                 what="the drain's end")
        return self.drain_state(a)

    def spool_snapshot(self, srv):
        return {i: (srv.envelope(i), state_files(srv.spool).get(i))
                for i in srv.queue_ids()}


class DrainTest(DrainCase):

    def test_drain_moves_every_message_once(self):
        handler, a = self.node_a()
        b = self.node_b()
        self.load(a, handler, 30)
        before = {}
        for qid in a.queue_ids():
            m = re.search(rb"Subject: m(\d+)", a.message(qid))
            facts = envelope_facts(a.envelope(qid))
            facts["state"] = state_files(a.spool)[qid]
            before[int(m.group(1))] = facts
        held = sorted(a.queue_ids())[:5]
        for qid in held:
            self.assertEqual(self.queue(a, "hold", qid).returncode, 0)
        wait_for(lambda: sum("hold 1" in s for s in
                             state_files(a.spool).values()) == 5, 10,
                 what="5 held")

        r = self.drain(a, b.port)
        self.assertEqual(json.loads(r.stdout)["count"], 30)
        st = self.wait_drained(a)
        self.assertEqual((st["state"], st["moved"], st["messages"]),
                         ("done", 30, 30), st)
        wait_for(lambda: a.queue_count() == 0, 20, what="A's spool empty")
        self.assertEqual(b.queue_count(), 30)
        self.assertIn("status=moved", a.log())
        # each end's log names the other node (node_name, XP-NODE)
        self.assertEqual(len(re.findall(r"status=moved \(250 2\.0\.0 Ok:"
                                        r" queued as \w+ on node node-b\)",
                                        a.log())), 60)
        self.assertEqual(b.log().count(" from_node=node-a"), 30)

        nheld = 0
        for qid in b.queue_ids():
            i = int(re.search(rb"Subject: m(\d+)", b.message(qid)).group(1))
            got = envelope_facts(b.envelope(qid))
            want = before.pop(i)
            self.assertEqual(got["sender"], "s%d@client.test" % i)
            self.assertEqual(got["arrival"], want["arrival"])
            self.assertIn("envid env%d" % i, b.envelope(qid))
            self.assertIn("ret HDRS", b.envelope(qid))
            # the delivered recipient stayed behind; the others came
            # with their DSN parameters, attempts and retry time
            self.assertEqual(sorted(got["rcpts"]),
                             sorted(["later%d@ok.test" % i,
                                     "later-b%d@other.test" % i]))
            later = got["rcpts"]["later%d@ok.test" % i]
            self.assertEqual(later["notify"], "12")
            self.assertEqual(later["orcpt"], "rfc822;orig%d@x.test" % i)
            self.assertEqual(later["state"], "deferred")
            self.assertEqual(later["attempts"], "1")
            m = re.search(r"rcpt later%d@ok.test .*next-try=(\d+)" % i,
                          want["state"])
            self.assertEqual(later["next-try"], m.group(1))
            nheld += got.get("hold") == "1"
        self.assertEqual(before, {})
        self.assertEqual(nheld, 5)
        # no second copy, no DSN from A: the responsibility moved
        time.sleep(1)
        self.assertEqual(len(handler.messages), 30)
        # a second drain has nothing to move
        self.drain(a, b.port)
        self.assertEqual(self.wait_drained(a)["messages"], 0)

    def test_drain_refused_by_untrusted_node(self):
        handler, a = self.node_a()
        b = self.node_b(UNTRUSTED)
        self.load(a, handler, 4)
        before = self.spool_snapshot(a)
        self.drain(a, b.port)
        st = self.wait_drained(a)
        self.assertEqual(st["state"], "stopped", st)
        self.assertEqual(st["moved"], 0)
        self.assertIn("does not offer XPOSTERN", st["why"])
        time.sleep(0.5)
        self.assertEqual(self.spool_snapshot(a), before)
        self.assertEqual(b.queue_count(), 0)

    def test_untrusted_client_gets_no_node_facts(self):
        b = self.node_b(UNTRUSTED)
        with b.raw() as c:
            r = c.cmd("EHLO a.test")
            self.assertNotIn("XPOSTERN", " ".join(r[1]))
            r = c.cmd("MAIL FROM:<s@x.test> XP-ARRIVAL=1700000000.000000")
            self.assertEqual(r[0], 555, r)
            self.assertEqual(c.cmd("MAIL FROM:<s@x.test>")[0], 250)
            r = c.cmd("RCPT TO:<r@ok.test> XP-ATTEMPTS=2")
            self.assertEqual(r[0], 555, r)
        t = self.node_b(TRUSTED, name="node_t")
        with t.raw() as c:
            r = c.cmd("EHLO a.test")
            self.assertIn("XPOSTERN", " ".join(r[1]))
            # facts on RCPT only inside a node transfer
            self.assertEqual(c.cmd("MAIL FROM:<s@x.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<r@ok.test> XP-ATTEMPTS=2")[0],
                             555)

    def test_drain_to_a_node_that_is_down(self):
        handler, a = self.node_a()
        self.load(a, handler, 3)
        before = self.spool_snapshot(a)
        r = self.queue(a, "drain", "--to", "127.0.0.1:%d" % closed_port())
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.wait_drained(a)
        self.assertEqual((st["state"], st["moved"]), ("stopped", 0), st)
        time.sleep(0.5)
        self.assertEqual(self.spool_snapshot(a), before)
        # the engine goes on afterwards: a flush tries the deferred again
        self.assertEqual(self.queue(a, "flush").returncode, 0)
        wait_for(lambda: "attempts=2" in "".join(
            state_files(a.spool).values()), 20, what="a second attempt")

    def test_drain_usage(self):
        handler, a = self.node_a()
        self.assertEqual(self.drain_state(a)["state"], "none")
        r = self.queue(a, "drain", "--to", "node-b.test:25")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not ADDR:PORT", r.stderr)
        r = self.queue(a, "drain", "127.0.0.1:25")
        self.assertEqual(r.returncode, 64, r.stderr)
        r = self.queue(a, "drain", "--to", "127.0.0.1:%d" % a.port)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is this node", r.stderr)
        a.stop()
        r = self.queue(a, "drain", "--to", "127.0.0.1:25")
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs the running server", r.stderr)


class DrainPartialTest(DrainCase):

    def test_refused_recipient_stays_and_goes_later(self):
        """B refuses one recipient of each message: the others move,
        the refused one stays on A as it was, and a later drain (B's
        rule gone) moves it."""
        handler, a = self.node_a()
        mods = ("store_spool", "policy_relay", "policy_access")
        rule = 'access_rule rcpt ~ "^later-b" tempfail;'
        b = self.server(NODE_B % (TRUSTED + "\n" + rule), modules=mods,
                        name="partial_b")
        self.load(a, handler, 4)
        self.drain(a, b.port)
        st = self.wait_drained(a)
        self.assertEqual((st["state"], st["moved"], st["partial"],
                          st["recipients"]), ("done", 0, 4, 4), st)
        wait_for(lambda: all("moved+20to+20node" in s for s in
                             state_files(a.spool).values()), 10,
                 what="the moved recipients written")
        self.assertEqual(a.queue_count(), 4)
        for s in state_files(a.spool).values():
            self.assertRegex(s, r"rcpt later-b\d+@other.test state=deferred"
                                r" attempts=1 ")
        self.assertEqual(b.queue_count(), 4)
        self.assertIn("status=kept", a.log())

        b.write_conf(NODE_B % TRUSTED, modules=mods)
        b.reload()
        b.wait_log("reconfigured", count=1)
        time.sleep(1)
        self.drain(a, b.port)
        st = self.wait_drained(a)
        self.assertEqual((st["state"], st["moved"]), ("done", 4), st)
        wait_for(lambda: a.queue_count() == 0, 20, what="A's spool empty")
        self.assertEqual(b.queue_count(), 8)


class DrainOnQuitTest(DrainCase):

    def held_a(self, b_port, n, limit="10s"):
        handler, a = self.node_a("relay_hold on;\ndrain_on_quit"
                                 " 127.0.0.1:%d;\nworker_shutdown_timeout"
                                 " %s;" % (b_port, limit))
        for i in range(n):
            self.assertEqual(a.send(rcpts=("q%d@ok.test" % i,)), {})
        wait_for(lambda: sum("hold 1" in s for s in
                             state_files(a.spool).values()) == n, 20,
                 what="%d held" % n)
        return handler, a

    def test_drain_on_quit(self):
        b = self.node_b()
        handler, a = self.held_a(b.port, 6)
        a.stop(signal.SIGQUIT, timeout=30)
        self.assertEqual(a.queue_count(), 0)
        self.assertEqual(b.queue_count(), 6)
        self.assertIn("(drain_on_quit)", a.log())
        for qid in b.queue_ids():
            self.assertIn("\nhold 1\n", b.envelope(qid))
        self.assertEqual(handler.messages, [])

    def test_drain_on_quit_during_the_spool_scan(self):
        """A QUIT that comes while the engine still reads the spool
        after its start: the scan goes on and the drain takes every
        message it found (it used to refuse and strand them)."""
        b = self.node_b()
        handler, a = self.held_a(b.port, 30)
        a.stop(signal.SIGTERM, timeout=30)       # TERM: no drain
        self.assertEqual(a.queue_count(), 30)
        a.start(wait=False)
        wait_for(lambda: a.log().count("engine started") == 2, 20,
                 interval=0.002, what="the queue engine")
        a.stop(signal.SIGQUIT, timeout=30)
        self.assertEqual((a.queue_count(), b.queue_count()), (0, 30),
                         a.log()[-2000:])
        self.assertIn("(drain_on_quit)", a.log())

    def test_no_drain_at_reload(self):
        b = self.node_b()
        handler, a = self.held_a(b.port, 2)
        old = a.queue_process()
        a.reload()
        wait_for(lambda: a.queue_process() not in (None, old), 20,
                 what="a new queue process")
        a.wait_log("a reload: no drain_on_quit")
        time.sleep(0.5)
        self.assertEqual(a.queue_count(), 2)
        self.assertEqual(b.queue_count(), 0)

    def test_drain_on_quit_node_down(self):
        handler, a = self.held_a(closed_port(), 3)
        ids = a.queue_ids()
        t = time.time()
        a.stop(signal.SIGQUIT, timeout=30)
        self.assertLess(time.time() - t, 15)
        self.assertEqual(a.queue_ids(), ids)
        self.assertIn("stopped:", a.log())

    def test_drain_on_quit_time_limit(self):
        """A node that takes the connection and never greets: the stop
        ends at worker_shutdown_timeout, the spool as it was."""
        mute = socket.socket()
        mute.bind(("127.0.0.1", 0))
        mute.listen(16)
        self.addCleanup(mute.close)
        handler, a = self.held_a(mute.getsockname()[1], 3, limit="2s")
        ids = a.queue_ids()
        t = time.time()
        a.stop(signal.SIGQUIT, timeout=30)
        self.assertLess(time.time() - t, 10)
        self.assertEqual(a.queue_ids(), ids)
        self.assertIn("shutdown timeout", a.log())
