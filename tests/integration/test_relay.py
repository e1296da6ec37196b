"""The relay engine (core/queue/pst_queue*.c) in a running server: mail for
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
from psttls import build
from test_send import Sink

from aiosmtpd.controller import Controller
import asyncio


class SlowSink(Sink):
    """A sink that takes 0.2 s per message and counts the transactions
    it has at once."""

    def __init__(self):
        super().__init__()
        self.now = 0
        self.most = 0

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        self.now += 1
        self.most = max(self.most, self.now)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.2)
        try:
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.now -= 1


CONF = """
load_module {modules}/relay_mx.so;
relay_mx_port %d;
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
        if "relay_min_backoff" not in extra:
            extra += "\nrelay_min_backoff 1s;\nrelay_max_backoff 2s;"
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



class RelayDeliveryTest(RelayCase):
    """Needs the delivery layer (branch "deliver")."""

    def setUp(self):
        super().setUp()
        if not os.path.exists(os.path.join(ROOT, "core", "queue",
                                           "pst_deliver.c")):
            self.skipTest("no delivery layer in this tree"
                          " (core/queue/pst_deliver.c)")

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

    def test_hook_header_below_the_trace_block(self):
        """A field a hook added (pst_msg_add_header: the test module
        addr_facts) goes out below the trace block -- our Received: and
        the client's own, RFC 5321 4.4 -- and above the message's other
        fields (issue #11's friction list)."""
        module = build("objs/tests/modules/addr_facts.so")
        handler, port = self.sink()
        srv = self.relay(port, "load_module %s;" % module)
        body = (b"Received: from a.client.test by client.test;\r\n"
                b"\tThu, 3 Dec 2026 10:00:00 +0000\r\n"
                b"Subject: order\r\n\r\nbody\r\n")
        self.assertEqual(srv.send(rcpts=("a@ok.test",), body=body), {})
        head = self.received(handler, 1)[0][4].split(b"\r\n\r\n")[0]
        fields = [l for l in head.split(b"\r\n") if l[:1] not in b" \t"]
        self.assertEqual([f.split(b":")[0] for f in fields],
                         [b"Received", b"Received", b"X-Addr-Facts",
                          b"Subject"], head)
        self.assertIn(b"by mx.postern.test", head.split(b"\r\nReceived:")[0])

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


    def test_5xx_bounces_to_sender_mx(self):
        handler, port = self.sink()
        srv = self.relay(port)
        self.assertEqual(srv.send(sender="sender@client.test",
                                  rcpts=("a@ok.test", "refuse1@ok.test"),
                                  body=b"Subject: mixed\r\n\r\nbody\r\n"),
                         {})
        msgs = self.received(handler, 2)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        first = [m for m in msgs if m[0] not in ("", "<>")][0]
        self.assertEqual(first[1], ["a@ok.test"])
        dsn = [m for m in msgs if m[0] in ("", "<>")]
        self.assertEqual(len(dsn), 1, msgs)
        frm, rcpts, _, _, data = dsn[0]
        self.assertEqual(rcpts, ["sender@client.test"])
        text = data.decode()
        self.assertRegex(text, r"Content-Type: multipart/report;\s+"
                         r"report-type=delivery-status")
        self.assertIn("Content-Type: message/delivery-status", text)
        self.assertIn("Reporting-MTA: dns; mx.postern.test", text)
        self.assertIn("Final-Recipient: rfc822; refuse1@ok.test", text)
        self.assertIn("Action: failed", text)
        self.assertIn("Status: 5.1.1", text)
        self.assertRegex(text, r"Remote-MTA: dns; [^\r]*")
        self.assertIn("Diagnostic-Code: smtp; 550 5.1.1 No such user here",
                      text)
        self.assertNotIn("Final-Recipient: rfc822; a@ok.test", text)
        self.assertIn("Subject: mixed", text)
        log = srv.log()
        self.assertRegex(log, r"to=<refuse1@ok.test>, .* dsn=5\.1\.1, "
                         r"status=bounced \(550 5\.1\.1")
        self.assertRegex(log, r"sender non-delivery notification")

    def test_notify_success_relayed(self):
        """aiosmtpd has no DSN extension: NOTIFY=SUCCESS gets "relayed"
        from us; NOTIFY=NEVER never gets a report."""
        handler, port = self.sink()
        srv = self.relay(port)
        with srv.smtp() as c:
            c.ehlo("client.test")
            c.sendmail("sender@client.test", ["a@ok.test"],
                       b"Subject: s\r\n\r\nx\r\n",
                       rcpt_options=["NOTIFY=SUCCESS"])
            c.sendmail("sender@client.test", ["refuse1@ok.test"],
                       b"Subject: n\r\n\r\nx\r\n",
                       rcpt_options=["NOTIFY=NEVER"])
        msgs = self.received(handler, 2)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        time.sleep(0.5)
        dsn = [m for m in handler.messages if m[0] in ("", "<>")]
        self.assertEqual(len(dsn), 1, msgs)
        text = dsn[0][4].decode()
        self.assertIn("Action: relayed", text)
        self.assertIn("Final-Recipient: rfc822; a@ok.test", text)
        self.assertNotIn("refuse1", text)

    def test_4xx_retried_then_delivered_once(self):
        handler, port = self.sink()
        srv = self.relay(port)
        self.assertEqual(srv.send(rcpts=("a@ok.test", "later1@ok.test")), {})
        srv.wait_log(r"to=<later1@ok.test>.*status=deferred \(451",
                     timeout=20)
        handler.later_ok = True
        srv.wait_log(r"to=<later1@ok.test>.*status=sent", timeout=20)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        got = sorted(r for m in handler.messages for r in m[1])
        self.assertEqual(got, ["a@ok.test", "later1@ok.test"])

    def test_null_sender_not_bounced(self):
        handler, port = self.sink()
        srv = self.relay(port)
        self.assertEqual(srv.send(sender="", rcpts=("refuse1@ok.test",)), {})
        srv.wait_log(r"to=<refuse1@ok.test>.*status=bounced \(550",
                     timeout=20)
        srv.wait_log(r"no notification \(no bounce for a bounce\)",
                     timeout=20)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        time.sleep(0.5)
        self.assertEqual(handler.messages, [])
        self.assertNotIn("notification:", srv.log())

    def test_restart_keeps_delivered(self):
        handler, port = self.sink()
        srv = self.relay(port, "relay_min_backoff 1h;\nrelay_max_backoff 1h;")
        self.assertEqual(srv.send(rcpts=("a@ok.test", "later1@ok.test")), {})
        srv.wait_log(r"to=<later1@ok.test>.*status=deferred", timeout=20)
        self.received(handler, 1)
        qid = srv.queue_ids()[0]
        wait_for(lambda: "delivered" in state_files(srv.spool).get(qid, "")
                 or "state=delivered" in state_files(srv.spool).get(qid, ""),
                 10, what="state written")
        srv.stop()
        handler.later_ok = True
        srv.start()
        qp = wait_for(srv.queue_process, 10, what="the queue process")
        srv.wait_log(r"postern\[%d\] queue: info: queue: spool scanned" % qp,
                     timeout=20)                # the engine knows qid
        r = self.queue(srv, "flush", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.wait_log(r"to=<later1@ok.test>.*status=sent", timeout=20)
        wait_for(lambda: srv.queue_ids() == [], 15, what="empty queue")
        got = sorted(r for m in handler.messages for r in m[1])
        self.assertEqual(got, ["a@ok.test", "later1@ok.test"])

    def test_destination_concurrency_bounded(self):
        handler, port = self.sink(SlowSink())
        srv = self.relay(port, "relay_destination_concurrency 2;\n"
                         "relay_hold on;")
        for i in range(8):
            self.assertEqual(srv.send(rcpts=("a%d@ok.test" % i,)), {})
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == 8, 20, what="held")
        self.queue(srv, "release")
        self.received(handler, 8)
        self.assertLessEqual(handler.most, 2)
        self.assertGreaterEqual(handler.most, 1)

    def test_release_durable_at_stop(self):
        """A release of the whole queue writes each message's hold 0 in
        a bounded lane behind the attempts' opens; a graceful stop right
        after the release still writes every one (none comes back
        held)."""
        handler, port = self.sink(SlowSink())
        srv = self.relay(port, "relay_concurrency 1;\nrelay_hold on;")
        n = 40
        for i in range(n):
            self.assertEqual(srv.send(rcpts=("r%d@ok.test" % i,)), {})
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == n, 20, what="held")
        r = self.queue(srv, "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(str(n), r.stdout)
        srv.stop(sig=signal.SIGQUIT)        # graceful
        left = state_files(srv.spool)
        held = [i for i, s in left.items() if "hold 1" in s]
        self.assertEqual(held, [], "released, yet held after the stop")
        self.assertLess(len(handler.messages), n)   # the stop came early
        self.assertEqual(len(left) + len(handler.messages) >= n, True)

    def test_kill9_queue_process(self):
        """kill -9 of the queue process during a run: nothing lost, and
        a message is delivered twice only when it was in flight."""
        handler, port = self.sink(SlowSink())
        srv = self.relay(port, "relay_concurrency 2;\nrelay_hold on;")
        n = 20
        for i in range(n):
            body = ("Subject: m%d\r\nX-Num: %d\r\n\r\nx\r\n" % (i, i))
            self.assertEqual(srv.send(rcpts=("a%d@ok.test" % i,),
                                      body=body.encode()), {})
        wait_for(lambda: len([s for s in state_files(srv.spool).values()
                              if "hold 1" in s]) == n, 20, what="held")
        r = self.queue(srv, "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: len(handler.messages) >= 5, 30, what="5 delivered")
        os.kill(srv.queue_process(), signal.SIGKILL)
        wait_for(lambda: srv.queue_ids() == [], 60, what="empty queue")
        nums = [int(re.search(rb"X-Num: (\d+)", m[4]).group(1))
                for m in handler.messages]
        self.assertEqual(sorted(set(nums)), list(range(n)))
        dups = len(nums) - n
        # at most the attempts in flight (relay_concurrency) are repeated
        self.assertLessEqual(dups, 2, nums)
        print("kill -9: %d duplicate(s) of %d messages" % (dups, n))


def closed_port():
    """A loopback port nothing listens on (connections are refused)."""
    return free_port()


def envelope_fields(env):
    """{"sender": ..., "rcpts": [...]} from an envelope's text."""
    out = {"sender": None, "rcpts": []}
    for line in env.splitlines():
        if line.startswith("sender "):
            out["sender"] = line[7:]
        elif line == "sender":
            out["sender"] = ""
        elif line.startswith("rcpt "):
            out["rcpts"].append(line[5:].split(" ")[0])
    return out


class RelayRetryTest(RelayCase):
    """Deferrals, retries, expiry and bounces: the destination refuses
    connections (with or without the delivery layer every attempt
    defers)."""

    def test_release_written_by_the_attempt(self):
        """A released message whose attempt defers has its release
        written with the attempt's outcome: after a fast stop and a
        start it is not held again."""
        srv = self.relay(closed_port(), "relay_hold on;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        wait_for(lambda: any("hold 1" in s for s in
                             state_files(srv.spool).values()), 15,
                 what="held")
        qid = srv.queue_ids()[0]
        self.assertIn("1", self.queue(srv, "release").stdout)
        wait_for(lambda: "attempts=1" in state_files(srv.spool).get(qid, ""),
                 15, what="state with one attempt")
        self.assertNotIn("hold 1", state_files(srv.spool)[qid])
        srv.stop()
        srv.start()
        self.assertEqual(self.count(srv, "held"), 0)
        self.assertNotIn("hold 1", state_files(srv.spool)[qid])

    def test_retry_state_survives_restart(self):
        srv = self.relay(closed_port())
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        srv.wait_log(r"to=<a@ok.test>.*status=deferred", timeout=20)
        qid = srv.queue_ids()[0]
        wait_for(lambda: "attempts=1" in state_files(srv.spool).get(qid, ""),
                 15, what="state with one attempt")
        srv.stop()
        srv.start()
        # the count goes on from the state, not from zero
        wait_for(lambda: re.search(r"attempts[ =][2-9]",
                                   state_files(srv.spool).get(qid, "")),
                 20, what="a second attempt recorded")
        self.assertEqual(srv.queue_ids(), [qid])

    def test_reload_hands_over(self):
        srv = self.relay(closed_port())
        self.assertEqual(srv.send(rcpts=("a@ok.test", "b@other.test")), {})
        qid = srv.queue_ids()[0]
        srv.wait_log(r"%s: to=<b@other.test>.*status=deferred" % qid,
                     timeout=20)
        srv.reload()
        srv.wait_log(r"queue: engine started", timeout=20, count=2)
        srv.wait_log(r"queue: spool scanned: 1 message", timeout=20)
        # the new engine goes on with the count of the old one
        wait_for(lambda: re.search(r"attempts=[3-9]",
                                   state_files(srv.spool).get(qid, "")),
                 20, what="attempts go on after the reload")
        self.assertEqual(srv.queue_ids(), [qid])

    def test_expiry_bounces_once(self):
        srv = self.relay(closed_port(),
                         "max_queue_lifetime 3s;\nbounce_queue_lifetime 3s;")
        self.assertEqual(srv.send(sender="sender@client.test",
                                  rcpts=("a@ok.test",),
                                  body=b"Subject: will expire\r\n\r\nx\r\n"),
                         {})
        orig = srv.queue_ids()[0]
        srv.wait_log(r"%s: to=<a@ok.test>.*status=expired" % orig, timeout=30)
        srv.wait_log(r"%s: sender non-delivery notification: ([0-9A-V]{18})"
                     % orig, timeout=15)
        bounce = re.search(r"%s: sender non-delivery notification: "
                           r"([0-9A-V]{18})" % orig, srv.log()).group(1)
        srv.wait_log(r"%s: removed" % orig, timeout=15)
        self.assertNotIn(orig, srv.queue_ids())

        # the bounce: from <> to the sender, an RFC 3464 report
        msg, env = srv.queue_file(bounce)
        f = envelope_fields(env)
        self.assertEqual(f["rcpts"], ["sender@client.test"], env)
        text = msg.decode()
        self.assertIn("multipart/report", text)
        self.assertIn("report-type=delivery-status", text)
        self.assertIn("Content-Type: message/delivery-status", text)
        self.assertIn("Final-Recipient: rfc822; a@ok.test", text)
        self.assertIn("Action: failed", text)
        self.assertRegex(text, r"Status: [45]\.\d+\.\d+")
        self.assertIn("Subject: will expire", text)

        # the bounce expires too, and is dropped without a bounce of its own
        srv.wait_log(r"%s: to=<sender@client.test>.*status=expired" % bounce,
                     30)
        srv.wait_log(r"%s: removed" % bounce, timeout=15)
        time.sleep(1)
        self.assertEqual(srv.queue_ids(), [])
        self.assertNotRegex(srv.log(), r"%s: sender non-delivery" % bounce)

    def test_delay_warning(self):
        srv = self.relay(closed_port(), "delay_warning_time 1s;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        orig = srv.queue_ids()[0]
        srv.wait_log(r"%s: sender delay notification: ([0-9A-V]{18})" % orig,
                     30)
        dsn = re.search(r"%s: sender delay notification: ([0-9A-V]{18})"
                        % orig, srv.log()).group(1)
        text = srv.message(dsn).decode()
        self.assertIn("Action: delayed", text)
        self.assertIn("Final-Recipient: rfc822; a@ok.test", text)
        # once only
        time.sleep(3)
        self.assertEqual(len(re.findall(r"%s: sender delay notification"
                                        % orig, srv.log())), 1)
        self.assertIn(orig, srv.queue_ids())

    def test_flush_and_delete_all(self):
        srv = self.relay(closed_port(), "relay_min_backoff 1h;\n"
                         "relay_max_backoff 1h;")
        self.assertEqual(srv.send(rcpts=("a@ok.test",)), {})
        qid = srv.queue_ids()[0]
        srv.wait_log(r"%s: to=<a@ok.test>.*status=deferred" % qid, timeout=20)
        r = self.queue(srv, "flush")
        self.assertEqual((r.returncode, r.stdout.split()[0]), (0, "1"),
                         r.stderr)
        srv.wait_log(r"%s: to=<a@ok.test>.*status=deferred" % qid, timeout=20,
                     count=2)
        r = self.queue(srv, "flush", "ok.test")
        self.assertEqual((r.returncode, r.stdout.split()[0]), (0, "1"),
                         r.stderr)
        srv.wait_log(r"%s: to=<a@ok.test>.*status=deferred" % qid, timeout=20,
                     count=3)
        r = self.queue(srv, "flush", "nowhere.test")
        self.assertEqual((r.returncode, r.stdout.split()[0]), (0, "0"))
        r = self.queue(srv, "delete", "ALL")
        self.assertEqual((r.returncode, r.stdout.split()[0]), (0, "1"))
        wait_for(lambda: srv.queue_ids() == [], 10, what="empty queue")
        r = self.queue(srv, "delete")
        self.assertEqual(r.returncode, 64, r.stdout + r.stderr)


class RelayConfTest(PstTestCase):

    def check(self, text):
        srv = self.server("relay_mx_port 1;\n" + text + """
smtp { server { listen {port}; } }
""", start=False, modules=("store_spool", "policy_relay", "relay_mx"))
        return subprocess.run([POSTERN, "-t", "-p", ROOT + "/", "-c",
                               srv.conffile], capture_output=True, text=True,
                              timeout=30)

    def test_directives_checked(self):
        r = self.check("relay_concurrency 50;\nrelay_hold on;\n"
                       "relay_destination_concurrency 4;\n"
                       "relay_destination_rcpt_limit 10;\n"
                       "relay_min_backoff 30s;\nrelay_max_backoff 10m;\n"
                       "relay_dead_destination 0;\nmax_queue_lifetime 2d;\n"
                       "bounce_queue_lifetime 1d;\ndelay_warning_time 4h;\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        for bad, why in (("relay_concurrency 0;", "between 1 and"),
                         ("relay_destination_rcpt_limit x;", "invalid number"),
                         ("relay_min_backoff 500ms;", "whole number"),
                         ("max_queue_lifetime soon;", "invalid time"),
                         ("relay_hold maybe;", "on\" or \"off"),
                         ("relay_concurrency 5;\nrelay_concurrency 6;",
                          "duplicate")):
            r = self.check(bad)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertRegex(r.stderr, r"postern\.conf:\d+: .*" + re.escape(why),
                             bad)
        r = self.check("relay_min_backoff 2h;\nrelay_max_backoff 1h;")
        self.assertIn("longer than relay_max_backoff", r.stderr)
