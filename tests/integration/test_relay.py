"""The relay engine (core/pst_queue*.c) in a running server: mail for
another domain reaches its MX (aiosmtpd on loopback, found through the
tests' DNS server), per-recipient state survives restarts, relay_hold
and the control verbs act on the live engine."""

import json
import os
import re
import signal
import subprocess
import time

from pstest import PstTestCase, POSTERN, ROOT, wait_for, free_port
from test_send import Sink

from aiosmtpd.controller import Controller


CONF = """
load_module {modules}/relay_mx.so;
relay_mx_port %d;
relay_min_backoff 1s;
relay_max_backoff 2s;
relay_dead_destination 1s;
%s
smtp {
    server {
        listen {port};
        hostname mx.postern.test;
        relay_domains ok.test other.test;
    }
}
"""

RECORDS = ["--local=/test/",
           "--mx-host=ok.test,mx.ok.test,10",
           "--mx-host=other.test,mx.ok.test,10",
           "--mx-host=client.test,mx.ok.test,10",
           "--host-record=mx.ok.test,127.0.0.1"]


def state_files(spool):
    out = {}
    for root, _, files in os.walk(os.path.join(spool, "queue")):
        for f in files:
            if f.endswith(".state"):
                with open(os.path.join(root, f)) as fh:
                    out[f[:-6]] = fh.read()
    return out


class RelayCase(PstTestCase):

    def sink(self, handler=None):
        handler = handler or Sink()
        port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=port,
                         decode_data=False)
        ctl.start()
        self.addCleanup(ctl.stop)
        return handler, port

    def relay(self, port, extra="", start=True, name=None):
        dns = self.dnsmasq(RECORDS, name=name)
        return self.server(CONF % (port, extra), resolver=dns.address,
                           start=start, name=name)

    def queue(self, srv, *args):
        r = srv.run_tool("queue", *args)
        return r

    def count(self, srv, *what):
        r = self.queue(srv, "count", *what)
        self.assertEqual(r.returncode, 0, r.stderr)
        return int(r.stdout.split()[0])

    def received(self, handler, n, timeout=30):
        wait_for(lambda: len(handler.messages) >= n, timeout,
                 what="%d message(s) at the sink" % n)
        return handler.messages


class RelayHoldTest(RelayCase):
    """relay_hold, the control verbs: these need no delivery."""

    def test_hold_release_delete(self):
        handler, port = self.sink()
        srv = self.relay(port, "relay_hold on;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        self.assertEqual(srv.send(rcpts=("b@ok.test",)), {})
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == 2, 15,
                 what="2 held messages")
        time.sleep(0.5)
        self.assertEqual(handler.messages, [])
        self.assertEqual(self.count(srv), 2)

        ids = sorted(srv.queue_ids())
        r = self.queue(srv, "delete", ids[0])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1", r.stdout)
        wait_for(lambda: ids[0] not in srv.queue_ids(), 10,
                 what="deleted message gone")

        # still held after a restart: the hold is durable
        srv.stop()
        srv.start()
        time.sleep(1)
        self.assertEqual(handler.messages, [])
        r = self.queue(srv, "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1", r.stdout)
        return srv, handler, ids


class RelayDeliveryTest(RelayCase):
    """Needs the delivery layer (branch "deliver")."""

    def setUp(self):
        super().setUp()
        if not os.path.exists(os.path.join(ROOT, "core", "pst_deliver.c")):
            self.skipTest("no delivery layer in this tree (core/pst_deliver.c)")

    def test_delivers_and_removes(self):
        handler, port = self.sink()
        srv = self.relay(port)
        body = b"Subject: relay\r\n\r\nhello relay\r\n"
        self.assertEqual(srv.send(rcpts=("a@ok.test", "b@other.test"),
                                  body=body), {})
        msgs = self.received(handler, 1)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        rcpts = sorted(r for m in handler.messages for r in m[1])
        self.assertEqual(rcpts, ["a@ok.test", "b@other.test"])
        self.assertIn(b"hello relay", msgs[0][4])
        log = srv.log()
        self.assertRegex(log, r"to=<a@ok.test>, relay=[^,]*\[127.0.0.1\]:%d,"
                         r" delay=[0-9.]+, dsn=2\.\d\.\d, status=sent \(250"
                         % port)

    def test_released_after_hold(self):
        handler, port = self.sink()
        srv = self.relay(port, "relay_hold on;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        wait_for(lambda: [s for s in state_files(srv.spool).values()
                          if "hold 1" in s], 15, what="held")
        time.sleep(0.5)
        self.assertEqual(handler.messages, [])
        r = self.queue(srv, "release")
        self.assertEqual((r.returncode, r.stdout.split()[0]), (0, "1"),
                         r.stderr)
        self.received(handler, 1)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
