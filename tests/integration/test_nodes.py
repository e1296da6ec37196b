"""Three Postern nodes as one gateway (issue #14), each in a network
namespace of its own with its own address, one real redis-server, one
sink, and a client spreading its connections over the nodes.

The test makes the network itself (tests/integration/pstnet.py): a hub
namespace with a bridge at 10.201.0.1 (Redis on :6379, the aiosmtpd
sink every node relays to on :2525, the clients' addresses .101 and
up), and nodes mx-a, mx-b, mx-c at .11, .12, .13, each a namespace
whose eth0 is a port of the bridge.  The nodes share one MX hostname
and tell themselves apart by node_name; mx-c logs JSON.  The root
namespace gets nothing; namespaces, veths and processes go in every
outcome (a run killed before its cleanup is swept by the next one).
Skipped, with the reason, where `ip netns add` is not permitted.

What it proves:
- a message rate reached through the nodes together holds on all;
- greylisting passed on one node passes on the others;
- Redis stopped: sessions are served at once, each node falls back to
  its own buckets and lets greylisting pass, mail still flows; Redis
  restarted: the nodes reconnect and the shared state resumes;
- a node drained into another: every message reaches the sink exactly
  once per recipient (counted by Message-ID), whether its node
  delivered it or handed it over; XPOSTERN is offered to the nodes'
  addresses and not to a client's; each node's name is in the
  Received fields and on every line of its log, and each end of the
  drain names the other.
"""

import collections
import email
import itertools
import json
import os
import re
import time

from aiosmtpd.controller import Controller

from pstest import PstTestCase, RUN, RawClient, open_connection, wait_for
from pstnet import Network
from pstredis import RedisPeer
from test_relay import state_files
from test_send import Sink

HUB = Network.SUBNET + ".1"
NODES = {"a": Network.SUBNET + ".11", "b": Network.SUBNET + ".12",
         "c": Network.SUBNET + ".13"}
# the clients, one address each so that their counts never mix
LIMITED, GREY, MAILER, DOWN, BACK, GREY2 = (
    Network.SUBNET + ".%d" % i for i in range(101, 107))

MODULES = ("store_spool", "policy_limits", "policy_greylist",
           "policy_relay", "relay_smarthost")

CONF = """
node_name mx-%(node)s;
%(log)s
redis_server %(hub)s:6379;
redis_password_file %(pwfile)s;
redis_timeout 200ms;
relay_host [%(hub)s]:2525;
relay_host_tls none;
relay_min_backoff 1h;
relay_max_backoff 2h;

smtp {
    hostname mx.nodes.test;            # the one MX name of all nodes
    limit_msg_rate 4/h;
    limit_backend redis;
    limit_exempt %(nodes)s %(grey)s %(mailer)s;
    greylist on;
    greylist_delay 1s;
    greylist_backend redis;
    greylist_exempt %(nodes)s %(mailer)s;
    node_trusted %(nodes)s;            # the nodes' addresses, no other
    server {
        listen %(addr)s:25;
        relay_domains remote.test;
    }
}
"""

# a worker's Redis connection, in either log format
CONNECTED = r'(worker: \w+: |"role":"worker".*)redis [^ ]+: connected'


class NodeSink(Sink):
    """The sink in the hub: keeps (node address, recipients, message);
    defers "later" recipients coming from the node at defer_from."""

    def __init__(self):
        super().__init__()
        self.defer_from = None
        self.got = []

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        if address.startswith("later") and session.peer[0] == self.defer_from:
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.got.append((session.peer[0], list(envelope.rcpt_tos),
                             envelope.original_content))
        return "250 2.0.0 Ok"

    def pairs(self):
        """(Message-ID, recipient) of every delivery."""
        with self.lock:
            got = list(self.got)
        return [(email.message_from_bytes(m)["Message-ID"], r)
                for _, rcpts, m in got for r in rcpts]


class NodesCase(PstTestCase):

    def setUp(self):
        super().setUp()
        self.net = Network(self._testMethodName[5:15])
        self.addCleanup(self.close_network)
        spaces = {n: self.net.node(n, a) for n, a in NODES.items()}
        for addr in (LIMITED, GREY, MAILER, DOWN, BACK, GREY2):
            self.net.client_address(addr)
        # off loopback, Redis wants a password (protected mode)
        self.pwfile = os.path.join(RUN, "nodes-redis-pw-%d" % os.getpid())
        with open(self.pwfile, "w") as f:
            f.write("nodes-secret\n")
        self.addCleanup(os.unlink, self.pwfile)
        self.redis = RedisPeer(self.id().split(".")[-1],
                               ["--requirepass", "nodes-secret"], host=HUB,
                               port=6379, launcher=self.net.hub.launcher,
                               socket_factory=self.net.hub.socket)
        self._peers.append(self.redis)
        self.sink = NodeSink()
        ctl = Controller(self.sink, hostname=HUB, port=2525,
                         decode_data=False)
        self.net.hub.run(ctl.start)
        self.addCleanup(ctl.stop)
        self.spaces = spaces
        self.nodes = {n: self.node(n) for n in NODES}
        for srv in self.nodes.values():
            srv.wait_log(CONNECTED)
        self.rr = itertools.cycle("abc")

    def node(self, n):
        conf = CONF % {
            "node": n, "addr": NODES[n], "hub": HUB,
            "log": "log_format json;" if n == "c" else "",
            "nodes": " ".join(NODES.values()), "grey": GREY + " " + GREY2,
            "mailer": MAILER, "pwfile": self.pwfile}
        return self.server(conf, name=self.id().split(".")[-1] + "_" + n,
                           modules=MODULES, workers=1, host=NODES[n],
                           port=25, launcher=self.spaces[n].launcher,
                           socket_factory=self.net.hub.socket)

    def close_network(self):
        # tearDown stops them, unless setUp failed half-way
        for srv in self._servers:
            srv.reap_group()
        for p in self._peers:
            p.stop()
        self.net.close()

    # -- the client ---------------------------------------------------

    def next_node(self):
        return self.nodes[next(self.rr)]

    def mail(self, srv, source, sender="s@client.test"):
        with srv.raw(source=source) as c:
            c.cmd("EHLO client.test")
            return c.cmd("MAIL FROM:<%s>" % sender)[0]

    def rcpt(self, srv, source, sender="s@client.test",
             rcpt="user@remote.test"):
        with srv.raw(source=source) as c:
            c.cmd("EHLO client.test")
            self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender)[0], 250)
            return c.cmd("RCPT TO:<%s>" % rcpt)[0]

    def message(self, srv, source, mid, rcpts):
        body = (b"Message-ID: %s\r\nSubject: %s\r\n\r\nbody\r\n"
                % (mid.encode(), mid.encode()))
        with srv.raw(source=source) as c:
            code, lines = srv.transaction(c, body, rcpts=rcpts,
                                          helo="client.test")
        self.assertEqual(code, 250, lines)

    def spread_mail(self, source, n):
        """n MAIL commands, each on the next node in turn."""
        return [self.mail(self.next_node(), source) for _ in range(n)]


class SharedStateTest(NodesCase):

    def test_rate_limit_held_across_nodes(self):
        # 4/h over the three nodes together: no node saw four itself
        self.assertEqual(self.spread_mail(LIMITED, 7),
                         [250, 250, 250, 250, 451, 451, 451])
        self.assertEqual(self.redis.keys("postern:limit:*"),
                         ["postern:limit:msg:%s" % LIMITED])
        # another client has an allowance of its own
        self.assertEqual(self.mail(self.nodes["b"], DOWN), 250)

    def test_greylisting_passed_on_one_passes_on_all(self):
        a, b, c = (self.nodes[n] for n in "abc")
        self.assertEqual(self.rcpt(a, GREY), 451)
        # the retry lands on B: too early there as well
        self.assertEqual(self.rcpt(b, GREY), 451)
        b.wait_log(r"policy_greylist: tempfail postern:grey:10\.201\.0\.0/24:"
                   r"s@client\.test:user@remote\.test: early retry")
        time.sleep(1.1)
        # C never saw this client: Redis says it passed the delay
        self.assertEqual(self.rcpt(c, GREY), 250)
        self.assertEqual(self.rcpt(a, GREY), 250)
        self.assertEqual(self.rcpt(b, GREY), 250)
        key = "postern:grey:10.201.0.0/24:s@client.test:user@remote.test"
        self.assertTrue(self.redis.call("GET", key).startswith("p:"))

    def test_redis_stopped_then_restarted(self):
        a, b = self.nodes["a"], self.nodes["b"]
        self.redis.stop()

        # every session served at once: each node's own bucket (4/h per
        # node), greylisting passes, mail flows
        t0 = time.monotonic()
        self.message(a, DOWN, "<down@nodes.test>", ("down@remote.test",))
        self.assertEqual([self.rcpt(a, DOWN, rcpt="d%d@remote.test" % i)
                          for i in range(3)], [250, 250, 250])
        self.assertEqual(self.mail(a, DOWN), 451)    # A's own 4/h
        self.assertEqual(self.mail(b, DOWN), 250)    # B counts alone
        self.assertLess(time.monotonic() - t0, 5.0)
        a.wait_log(r"policy_greylist: Redis (unavailable|went down): pass")
        a.wait_log(r"redis [^ ]+: (connection lost|cannot connect)")
        wait_for(lambda: ("<down@nodes.test>", "down@remote.test")
                 in self.sink.pairs(), 20, what="the message of Redis down")

        self.redis.start()
        for srv in self.nodes.values():
            srv.wait_log(CONNECTED, timeout=20, count=2)
        # shared again: a fresh client's rate over all nodes
        self.assertEqual(self.spread_mail(BACK, 5),
                         [250, 250, 250, 250, 451])
        # and greylisting: passed on C, passed on A
        self.assertEqual(self.rcpt(self.nodes["c"], GREY2), 451)
        time.sleep(1.1)
        self.assertEqual(self.rcpt(a, GREY2), 250)
        self.assertEqual(sorted(self.redis.keys("postern:*")),
                         ["postern:grey:10.201.0.0/24:s@client.test:"
                          "user@remote.test",
                          "postern:limit:msg:%s" % BACK])


class DrainTest(NodesCase):

    def test_drain_delivers_every_message_once(self):
        a, b = self.nodes["a"], self.nodes["b"]
        self.sink.defer_from = NODES["a"]
        want = collections.Counter()
        for i in range(12):
            mid = "<m%d@nodes.test>" % i
            rcpts = ("ok%d@remote.test" % i, "later%d@remote.test" % i)
            self.message(self.next_node(), MAILER, mid, rcpts)
            want.update((mid, r) for r in rcpts)
        # B and C deliver everything, A all but its 4 "later" recipients
        wait_for(lambda: len(self.sink.pairs()) == 20, 30,
                 what="20 deliveries")
        wait_for(lambda: sum("state=deferred" in s for s in
                             state_files(a.spool).values()) == 4, 30,
                 what="A's 4 deferred recipients")

        r = a.run_tool("queue", "drain", "--to", NODES["b"] + ":25",
                       "--json")
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
        self.assertEqual(json.loads(r.stdout)["count"], 4)
        wait_for(lambda: a.queue_count() == 0, 30, what="A's spool empty")
        # B kept their back-off (XP-NEXT-TRY): deliver them now
        self.assertEqual(b.run_tool("queue", "flush").returncode, 0)
        wait_for(lambda: len(self.sink.pairs()) >= 24, 30,
                 what="24 deliveries")
        time.sleep(1)                  # and nothing more
        self.assertEqual(collections.Counter(self.sink.pairs()), want)

        moved = [(peer, m) for peer, rcpts, m in self.sink.got
                 if rcpts[0].startswith("later") and peer == NODES["b"]
                 and b"(Postern node mx-a)" in m]
        self.assertEqual(len(moved), 4)
        for _, m in moved:
            # B's trace on top of A's, each naming its node
            trace = re.findall(rb"by mx\.nodes\.test \(Postern node (mx-\w)\)",
                               m)
            self.assertEqual(trace, [b"mx-b", b"mx-a"], m)
        self.assertEqual(b.log().count(" from_node=mx-a"), 4)
        self.assertEqual(len(re.findall(r"status=moved \(250 [^)]* on node"
                                        r" mx-b\)", a.log())), 4)
        self.check_node_logs()

    def test_xpostern_offered_to_nodes_only(self):
        b = self.nodes["b"]
        with b.raw(source=MAILER) as c:
            self.assertNotIn("XPOSTERN", " ".join(c.cmd("EHLO c.test")[1]))
        # from node A's own address
        sock = open_connection(NODES["b"], 25,
                               socket_factory=self.spaces["a"].socket)
        with RawClient(25, sock=sock) as c:
            self.assertIn("XPOSTERN", " ".join(c.cmd("EHLO a.test")[1]))

    def check_node_logs(self):
        """Every line names its node: text lines after the time, JSON
        records in "node"."""
        for n in "ab":
            lines = self.nodes[n].log().splitlines()
            self.assertTrue(lines)
            for ln in lines:
                self.assertRegex(ln, r"^\S+Z mx-%s postern\[\d+\] " % n)
        records = [json.loads(ln) for ln in
                   self.nodes["c"].log().splitlines()]
        self.assertTrue(records)
        self.assertEqual({r["node"] for r in records}, {"mx-c"})
