"""modules/queue_events.c in a running server with the relay engine:
mail for ok.test reaches aiosmtpd through the MX of the tests' DNS
(dnsmasq) and the JSON event log shows enqueued, route, resolved,
connected, before_send and delivered; queue_reroute sends moved.test's
mail to the same sink; a 451 recipient is deferred with the next try
queue_retry asked for.

Needs the relay engine and the delivery layer: without them the test is
skipped, with the reason checked at run time.  The next try is read from
the message's state file (what the engine wrote after the hook)."""

import json
import os
import re
import subprocess
import time

from pstest import PstTestCase, POSTERN, ROOT, wait_for, free_port
from test_send import Sink

from aiosmtpd.controller import Controller


def engine_present(dirname):
    """None when the relay engine and the delivery layer are built in,
    else why not."""
    if not os.path.exists(
            os.path.join(ROOT, "core", "queue", "pst_deliver.c")):
        return ("no delivery layer in this tree (core/queue/pst_deliver.c, "
                "branch \"deliver\")")
    conf = os.path.join(dirname, "probe.conf")
    os.makedirs(dirname, exist_ok=True)
    with open(conf, "w") as f:
        f.write("daemon off;\nspool_dir %s/spool;\nrelay_concurrency 10;\n"
                "smtp { server { listen 127.0.0.1:%d; } }\n"
                % (dirname, free_port()))
    r = subprocess.run([POSTERN, "-t", "-p", ROOT + "/", "-c", conf],
                       capture_output=True, text=True, timeout=30)
    if r.returncode == 0:
        return None
    return ("the relay engine is not in this build (branch \"queue\" not "
            "merged): postern -t: " + (r.stderr or r.stdout).strip()[-200:])


CONF = """
load_module {modules}/relay_mx.so;
load_module {modules}/queue_events.so;
relay_mx_port %d;
queue_events_log {dir}/events.log;
queue_retry later.test 7m;
queue_reroute moved.test ok.test;
smtp {
    server {
        listen {port};
        relay_domains ok.test moved.test later.test;
    }
}
"""


class QueueEventsTest(PstTestCase):

    def setUp(self):
        super().setUp()
        why = engine_present(os.path.join(
            os.path.dirname(POSTERN), "tests", "qev_probe"))
        if why is not None:
            self.skipTest(why)
        self.handler = Sink()
        self.sink_port = free_port()
        self.ctl = Controller(self.handler, hostname="127.0.0.1",
                              port=self.sink_port, decode_data=False)
        self.ctl.start()
        self.addCleanup(self.ctl.stop)

    def events(self, srv):
        path = os.path.join(srv.dir, "events.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]

    def test_events_reroute_retry(self):
        dns = self.dnsmasq(["--local=/test/",
                            "--mx-host=ok.test,mx.ok.test,10",
                            "--mx-host=later.test,mx.ok.test,10",
                            "--host-record=mx.ok.test,127.0.0.1"])
        srv = self.server(CONF % self.sink_port, resolver=dns.address,
                          modules=("store_spool", "policy_relay"),
                          start=False)
        # the queue process runs as the run user (nobody under root)
        open(os.path.join(srv.dir, "events.log"), "w").close()
        os.chmod(os.path.join(srv.dir, "events.log"), 0o666)
        srv.start()
        self.assertEqual(srv.send(rcpts=("a@ok.test", "b@moved.test",
                                         "later1@later.test")), {})
        start = time.time()

        def done():
            ev = self.events(srv)
            return ([e for e in ev if e["event"] == "delivered"]
                    if len([e for e in ev if e["event"] in
                            ("delivered", "deferred")]) >= 3 else None)
        delivered = wait_for(done, 30, what="3 recipient outcomes")
        ev = self.events(srv)
        names = [e["event"] for e in ev]
        for n in ("enqueued", "route", "resolved", "connected",
                  "before_send", "delivered", "deferred"):
            self.assertIn(n, names, ev)
        self.assertEqual(sorted(e["rcpt"] for e in delivered),
                         ["a@ok.test", "b@moved.test"], ev)
        for e in delivered:
            self.assertEqual(e["code"], 250, e)
            self.assertEqual(e["remote"].split(":")[-1],
                             str(self.sink_port), e)
            self.assertTrue(e["id"], e)
        d = [e for e in ev if e["event"] == "deferred"][0]
        self.assertEqual((d["rcpt"], d["dest"], d["code"]),
                         ("later1@later.test", "later.test", 451), d)
        # the state file of the message says the next try queue_retry set
        # (read directly: the engine writes it after the event)
        def next_try():
            path = os.path.join(srv.spool, "queue", d["id"][-2:],
                                d["id"] + ".state")
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            m = re.search(r"^rcpt later1@later\.test .*next-try=(\d+)",
                          text, re.M)
            return int(m.group(1)) if m else None
        nt = wait_for(next_try, 10, what="the deferred state written")
        info = nt
        self.assertGreaterEqual(nt, int(start) + 7 * 60 - 5, info)
        self.assertLessEqual(nt, int(time.time()) + 7 * 60 + 5, info)
        # moved.test's recipient rerouted to ok.test shares a@ok.test's
        # transaction (one message, one destination: one transaction)
        self.assertEqual(sorted(r for m in self.handler.messages
                                for r in m[1]),
                         ["a@ok.test", "b@moved.test"])
