"""Load with real clients: 200 concurrent sessions, swaks in several
modes, smtp-source; every acknowledged message is in the spool, whole."""

import re
import smtplib
import subprocess
import threading
import time
import unittest

from pstest import PstTestCase, have

CONF = """
smtp {
    hostname mx.example.test;
    max_connections_per_ip 1000;
    server {
        listen {port};
        local_domains example.test;
    }
}
"""

QUEUED = re.compile(r"queued as ([0-9A-V]{18})")
SMTP_SOURCE = "/usr/sbin/smtp-source"


class ConcurrencyTest(PstTestCase):

    def test_200_concurrent_sessions(self):
        srv = self.server(CONF)
        n = 200
        barrier = threading.Barrier(n, timeout=60)
        results, errors = {}, []

        def client(i):
            try:
                c = smtplib.SMTP("127.0.0.1", srv.port, timeout=60)
                try:
                    barrier.wait()      # all 200 sessions open at once
                    c.ehlo("client%d.test" % i)
                    c.mail("s%d@client.test" % i)
                    c.rcpt("user@example.test")
                    body = (b"Subject: load %d\r\n\r\n" % i
                            + (b"line %d\r\n" % i) * (i + 1))
                    code, resp = c.data(body)
                    if code != 250:
                        raise AssertionError("%d: %r" % (code, resp))
                    results[i] = (QUEUED.search(resp.decode()).group(1),
                                  body)
                    c.quit()
                finally:
                    c.close()
            except Exception as e:        # noqa: B902 -- reported below
                errors.append("%d: %r" % (i, e))
                barrier.abort()

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), n)
        ids = srv.queue_ids()
        self.assertEqual(len(ids), n)
        self.assertEqual(sorted(q for q, _ in results.values()), ids)
        for qid, body in results.values():
            self.assertEqual(srv.body(qid), body)
        srv.check_queue_consistent()
        self.assertEqual(srv.tmp_files(), [])
        # both workers took part
        pids = set(re.findall(r"postern\[(\d+)\] worker: notice: .* queued",
                              srv.log()))
        self.assertEqual(len(pids), 2, pids)


@unittest.skipUnless(have("swaks"), "swaks not installed")
class SwaksTest(PstTestCase):

    def swaks(self, srv, *args):
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port,
                            "--from", "s@client.test", "--helo",
                            "client.test", "--timeout", "20"] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        m = QUEUED.search(p.stdout)
        self.assertIsNotNone(m, p.stdout)
        return m.group(1), p.stdout

    def test_swaks_modes(self):
        srv = self.server(CONF)
        ids = []
        qid, out = self.swaks(srv, "--to", "user@example.test")
        ids.append(qid)
        self.assertIn("250-PIPELINING", out)
        qid, out = self.swaks(srv, "--to", "a@example.test,b@example.test",
                              "--pipeline")
        ids.append(qid)
        env = srv.envelope(qid)
        self.assertIn("\nrcpt a@example.test ", env)
        self.assertIn("\nrcpt b@example.test ", env)
        qid, out = self.swaks(srv, "--to", "user@example.test",
                              "--protocol", "SMTP")
        ids.append(qid)
        self.assertIn(b" with SMTP id ", srv.message(qid))
        body = "Subject: dots\n\n.\n..\n.x\nend"
        qid, out = self.swaks(srv, "--to", "user@example.test",
                              "--data", body)
        ids.append(qid)
        self.assertEqual(srv.body(qid),
                         b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\nend\r\n")
        qid, out = self.swaks(srv, "--to", "user@example.test",
                              "--attach", "-", "--attach-type",
                              "application/octet-stream", "--pipeline")
        ids.append(qid)
        self.assertIn(b"Content-Type: application/octet-stream",
                      srv.message(qid))
        # a relay attempt is refused and swaks says so
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port,
                            "--to", "v@elsewhere.test", "--timeout", "20"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("550 5.7.1", p.stdout)
        self.assertEqual(srv.queue_ids(), sorted(ids))


@unittest.skipUnless(have(SMTP_SOURCE), "smtp-source not installed")
class SmtpSourceTest(PstTestCase):

    def run_source(self, srv, *args):
        p = subprocess.run([SMTP_SOURCE] + list(args) +
                           ["-f", "s@client.test", "-t", "user@example.test",
                            "127.0.0.1:%d" % srv.port],
                           capture_output=True, text=True, timeout=180)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("fatal", p.stderr)
        self.assertNotIn("warning", p.stderr)

    def test_smtp_source(self):
        srv = self.server(CONF)
        t = time.monotonic()
        self.run_source(srv, "-s", "20", "-m", "500", "-l", "4096")
        elapsed = time.monotonic() - t
        self.assertEqual(srv.queue_count(), 500)
        srv.check_queue_consistent()
        self.assertEqual(srv.tmp_files(), [])
        for qid in srv.queue_ids()[:20]:
            self.assertGreaterEqual(len(srv.body(qid)), 4096)
        queued = re.findall(r"id=(\S+) queued", srv.log())
        self.assertEqual(sorted(queued), srv.queue_ids())
        print("\nsmtp-source 500 x 4 KB in %.1fs" % elapsed)

    def test_smtp_source_sessions_with_many_messages(self):
        """-d: several messages per session, -r 5 recipients each."""
        srv = self.server(CONF)
        self.run_source(srv, "-d", "-s", "5", "-m", "100", "-r", "5",
                        "-l", "1000")
        ids = srv.queue_ids()
        self.assertEqual(len(ids), 100)
        for qid in ids[:10]:
            env = srv.envelope(qid)
            self.assertEqual(env.count("\nrcpt "), 5, env)


if __name__ == "__main__":
    unittest.main()
