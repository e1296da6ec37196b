"""Observability (issue #13): the metrics endpoint scraped with a real
Prometheus parser (python3-prometheus-client) in both exposition
formats, counters that survive a worker killed with -9, the HTTP
responder's limits; the per-message log line (size as stored, the
Message-ID), one line per refusal naming the module, log_format json
with its documented keys, and error_log syslog: syntax."""

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request

from pstest import PstTestCase, POSTERN, wait_for

try:
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as om_families)
except ImportError:          # .ci/deps.sh installs python3-prometheus-client
    text_string_to_metric_families = None

CONF = """
metrics_listen {port2};
smtp {
    server {
        listen {port};
        local_domains example.test;
    }
}
"""

BODY = (b"Message-ID: <obs.1@client.test>\r\nSubject: metrics\r\n\r\n"
        + b"z" * 500 + b"\r\n")


def scrape(srv, accept=None, path="/metrics"):
    req = urllib.request.Request("http://%s%s" % (srv.subst("{port2}"), path))
    if accept:
        req.add_header("Accept", accept)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def samples(text, om=False):
    """{(sample name, frozenset(labels)): value} through the real parser."""
    parse = om_families if om else text_string_to_metric_families
    out = {}
    for fam in parse(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(smp, name, **labels):
    return smp.get((name, frozenset(labels.items())))


class MetricsTest(PstTestCase):

    def setUp(self):
        super().setUp()
        if text_string_to_metric_families is None:
            self.skipTest("python3-prometheus-client is not installed")

    def send_one_and_a_refusal(self, srv):
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<s@client.test>")
            self.assertEqual(c.cmd("RCPT TO:<u@example.test>")[0], 250)
            self.assertEqual(c.cmd("RCPT TO:<u@elsewhere.test>")[0] // 100,
                             5)
            c.cmd("DATA")
            c.send(BODY + b".\r\n")
            return c.reply()

    def test_scrape_both_formats(self):
        srv = self.server(CONF)
        wait_for(srv.queue_process, 10, what="the queue process")
        r = self.send_one_and_a_refusal(srv)
        self.assertEqual(r[0], 250)
        qid = srv.queue_ids()[0]
        stored = len(srv.message(qid))

        ctype, text = wait_for(lambda: scrape(srv), 10, what="a scrape")
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        smp = samples(text)
        self.assertEqual(value(smp, "postern_messages_accepted_total"), 1)
        self.assertEqual(value(smp, "postern_message_bytes_total"), stored)
        self.assertGreaterEqual(value(smp, "postern_connections_total"), 1)
        self.assertEqual(value(smp, "postern_messages_rejected_total",
                               phase="rcpt"), 1)
        self.assertEqual(value(smp, "postern_rejections_total",
                               reason="policy_relay"), 1)
        # start() greets every worker: those sessions count too
        self.assertEqual(value(smp, "postern_sessions_total",
                               listener=srv.subst("{port}")),
                         value(smp, "postern_connections_total"))
        self.assertEqual(value(smp, "postern_store_commit_duration_seconds"
                                    "_count"), 1)
        # store_spool's fsync batch: one message
        self.assertEqual(value(smp, "postern_group_commit_messages_sum"), 1)
        self.assertGreater(value(smp, "postern_hook_duration_seconds_count",
                                 module="policy_relay"), 0)
        # the session is over: nothing open
        wait_for(lambda: value(samples(scrape(srv)[1]),
                               "postern_connections_current") == 0,
                 10, what="no connection open")
        for name in ("postern_deliveries_total", "postern_queue_messages",
                     "postern_dns_queries_total",
                     "postern_tls_handshakes_total", "postern_auth_total",
                     "postern_process_restarts_total",
                     "postern_group_commit_messages_count",
                     "postern_delivery_duration_seconds_count"):
            self.assertTrue(any(k[0] == name for k in smp), name)

        ctype, text = scrape(srv, accept="application/openmetrics-text;"
                                         " version=1.0.0,text/plain;q=0.5")
        self.assertTrue(ctype.startswith("application/openmetrics-text"))
        self.assertTrue(text.endswith("# EOF\n"))
        smp = samples(text, om=True)
        self.assertEqual(value(smp, "postern_messages_accepted_total"), 1)

    def test_counters_survive_a_worker_killed(self):
        srv = self.server(CONF)
        wait_for(srv.queue_process, 10, what="the queue process")
        self.assertEqual(self.send_one_and_a_refusal(srv)[0], 250)
        victim = srv.workers()[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in srv.workers()
                 and len(srv.workers()) == 2, 10, what="the respawn")
        smp = wait_for(lambda: samples(scrape(srv)[1]), 10, what="a scrape")
        self.assertEqual(value(smp, "postern_messages_accepted_total"), 1)
        self.assertEqual(value(smp, "postern_process_restarts_total"), 1)

    def test_reload_keeps_counts_and_moves_the_port(self):
        srv = self.server(CONF)
        wait_for(srv.queue_process, 10, what="the queue process")
        self.assertEqual(self.send_one_and_a_refusal(srv)[0], 250)
        srv.write_conf(CONF.replace("{port2}", "{port3}"))
        srv.reload()
        new = srv.subst("{port3}")

        def scrape_new():
            with urllib.request.urlopen("http://%s/metrics" % new,
                                        timeout=10) as r:
                return r.read().decode()
        text = wait_for(lambda: self._try(scrape_new), 15,
                        what="the endpoint on the new port")
        smp = samples(text)
        self.assertEqual(value(smp, "postern_messages_accepted_total"), 1)
        with self.assertRaises(OSError):
            scrape(srv)                 # the old port is closed

    @staticmethod
    def _try(fn):
        try:
            return fn()
        except OSError:
            return None

    def test_http_limits(self):
        srv = self.server(CONF)
        wait_for(srv.queue_process, 10, what="the queue process")
        wait_for(lambda: scrape(srv), 10, what="a scrape")
        with self.assertRaises(urllib.error.HTTPError) as e:
            scrape(srv, path="/other")
        self.assertEqual(e.exception.code, 404)
        host, port = srv.subst("{port2}").split(":")
        # a request head that never ends within the limit (8 KiB, sent
        # whole so nothing is left unread): 431, closed
        head = b"GET /metrics HTTP/1.1\r\nX: "
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(head + b"a" * (8192 - len(head)))
            answer = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 431 "), answer[:40])
        # the endpoint still answers
        self.assertIn("postern_connections_total", scrape(srv)[1])


class LogTest(PstTestCase):

    def test_message_line_and_one_refusal_line(self):
        srv = self.server(CONF.replace("metrics_listen {port2};", ""))
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<s@client.test>")
            c.cmd("RCPT TO:<u@example.test>")
            self.assertEqual(c.cmd("RCPT TO:<u@elsewhere.test>")[0] // 100,
                             5)
            c.cmd("DATA")
            c.send(BODY + b".\r\n")
            self.assertEqual(c.reply()[0], 250)
        qid = srv.queue_ids()[0]
        line = srv.wait_log(r"id=%s queued" % qid)[0]
        self.assertIn(" client=unknown[127.0.0.1] ", line)
        self.assertIn(" message-id=<obs.1@client.test> ", line)
        self.assertIn(" size=%d " % len(srv.message(qid)), line)
        self.assertIn(" nrcpt=1 ", line)
        self.assertIn(" helo=<client.test> ", line)
        out = subprocess.run([POSTERN, "-c", srv.conffile, "queue", "list"],
                             capture_output=True, text=True, timeout=30)
        self.assertIn(" %d " % len(srv.message(qid)), out.stdout)
        rejects = [l for l in srv.log().splitlines() if " reject: " in l]
        self.assertEqual(len(rejects), 1, rejects)
        self.assertRegex(rejects[0], r": reject: RCPT from unknown"
                         r"\[127\.0\.0\.1\]: 55\d 5\.7\.1 .*; "
                         r"from=<s@client\.test> to=<u@elsewhere\.test> "
                         r"proto=ESMTP helo=<client\.test> "
                         r"module=policy_relay$")

    def test_json_lines(self):
        srv = self.server(CONF.replace("metrics_listen {port2};",
                                       "log_format json;"),
                          extra_top="node_name obs-1;")
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<s@client.test>")
            c.cmd("RCPT TO:<u@example.test>")
            c.cmd("RCPT TO:<u\"q@elsewhere.test>")
            c.cmd("DATA")
            c.send(BODY + b".\r\n")
            self.assertEqual(c.reply()[0], 250)
        qid = srv.queue_ids()[0]
        wait_for(lambda: qid in srv.log(), 10, what="the queued record")
        records = [json.loads(l) for l in srv.log().splitlines() if l]
        for r in records:
            for k in ("time", "level", "pid", "role", "node"):
                self.assertIn(k, r)
            self.assertEqual(r["node"], "obs-1")
            self.assertTrue("msg" in r or "event" in r, r)
        q = [r for r in records if r.get("event") == "queued"]
        self.assertEqual(len(q), 1)
        q = q[0]
        self.assertEqual(q["queue_id"], qid)
        self.assertEqual(q["client_addr"], "127.0.0.1")
        self.assertEqual(q["client_name"], "unknown")
        self.assertEqual(q["from"], "s@client.test")
        self.assertEqual(q["size"], len(srv.message(qid)))
        self.assertEqual(q["nrcpt"], 1)
        self.assertEqual(q["message_id"], "<obs.1@client.test>")
        self.assertEqual(q["helo"], "client.test")
        self.assertEqual(q["proto"], "ESMTP")
        self.assertEqual(q["listener"], srv.subst("{port}"))

    def test_syslog_spec(self):
        def check(spec):
            top = ("load_module {modules}/store_spool.so;\n"
                   "load_module {modules}/policy_relay.so;\n"
                   "spool_dir {spool};\nerror_log %s;\n" % spec)
            srv = self.server(top + CONF, start=False,
                              preamble=False,
                              name="syslog%d" % len(self._servers))
            return subprocess.run([POSTERN, "-t", "-c", srv.conffile],
                                  capture_output=True, text=True,
                                  timeout=30)
        ok = check("syslog:facility=local3,tag=pst-obs")
        self.assertEqual(ok.returncode, 0, ok.stderr)
        for bad in ("syslog:facility=nope", "syslog:server=10.0.0.1",
                    "syslog:tag=a/b"):
            r = check(bad)
            self.assertNotEqual(r.returncode, 0, bad)
            self.assertIn("syslog:facility=NAME", r.stderr)
