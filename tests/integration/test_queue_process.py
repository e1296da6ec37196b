"""The queue process, the workers' COMMITTED notifications and the
control socket: the queue process runs with its title and is respawned
after kill -9; a committed message reaches it, also across a restart of
the queue process (the master keeps the inbox); the control socket has
the run user and mode 0660 and answers `postern queue` and `postern
status` while Postern runs, and the tool reads the spool directly when
it does not -- with a configuration whose modules, TLS key and users
file cannot be read."""

import fcntl
import json
import os
import pwd
import re
import signal
import stat
import subprocess
import time
import unittest

from pstest import PstTestCase, ROOT, MODULES, wait_for

CONF = """
smtp {
    server {
        listen {port};
        local_domains example.test;
    }
}
"""

# the engine runs only with a router; held, so that nothing is routed
# (no DNS query) and nothing is delivered
ENGINE = """
load_module {modules}/relay_mx.so;
relay_hold on;
"""

QUEUED = re.compile(r"queued as ([0-9A-V]{18})")


def proc_title(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


def debug_top(srv):
    """The preamble, but with the log at debug level."""
    return ("".join("load_module %s/%s.so;\n" % (MODULES, m)
                    for m in ("store_spool", "policy_relay", "relay_mx"))
            + "relay_hold on;\n"
            + "daemon off;\nworker_processes 2;\nerror_log %s debug;\n"
              "pid %s;\nspool_dir %s;\n"
            % (srv.logfile, srv.pidfile, srv.spool))


class QueueProcessTest(PstTestCase):

    def test_title_and_respawn_after_kill_9(self):
        srv = self.server(CONF)
        qp = wait_for(srv.queue_process, 10, what="the queue process")
        self.assertEqual(proc_title(qp), "postern: queue process")
        workers = set(srv.workers())
        self.assertNotIn(qp, workers)
        # the queue process is no SMTP worker: it holds no listener
        out = subprocess.run(["ss", "-ltnpH", "sport", "= :%d" % srv.ports[0]],
                             capture_output=True, text=True).stdout
        self.assertIn("pid=%d," % workers.copy().pop(), out)
        self.assertNotIn("pid=%d," % qp, out)

        os.kill(qp, signal.SIGKILL)
        srv.wait_log(r"queue process %d exited on signal 9" % qp)
        new = wait_for(lambda: srv.queue_process() not in (None, qp), 10,
                       what="a new queue process") and srv.queue_process()
        self.assertEqual(proc_title(new), "postern: queue process")
        srv.wait_log(r"started queue process %d" % new)
        # the workers were not touched, and still serve
        self.assertEqual(set(srv.workers()), workers)
        self.assertEqual(srv.send(), {})

    def test_crash_loop_pauses_the_queue_role_only(self):
        """A queue process that keeps dying pauses its own respawns (the
        back-off); the workers are not affected and keep serving."""
        srv = self.server(CONF)
        workers = set(srv.workers())
        deadline = time.monotonic() + 20
        while "queue processes keep dying" not in srv.log():
            self.assertLess(time.monotonic(), deadline, "no pause")
            qp = srv.queue_process()
            if qp:
                os.kill(qp, signal.SIGKILL)
            time.sleep(0.05)
        srv.wait_log(r"queue processes keep dying: pausing respawns for "
                     r"10 s")
        self.assertNotIn("worker processes keep dying", srv.log())
        self.assertEqual(set(srv.workers()), workers)
        self.assertEqual(srv.send(), {})
        # and back after the pause
        wait_for(srv.queue_process, 20, interval=0.2,
                 what="the queue process after the pause")

    def test_committed_notification(self):
        srv = self.server(CONF, start=False)
        srv.write_conf(debug_top(srv) + srv.subst(CONF), preamble=False)
        srv.start()
        qp = wait_for(srv.queue_process, 10, what="the queue process")
        srv.wait_log(r"queue process ready")
        self.assertEqual(srv.send(), {})
        qid = srv.queue_ids()[0]
        srv.wait_log(r"postern\[%d\] queue: debug: queue: notified: %s "
                     r"committed" % (qp, qid))

    def test_notification_waits_for_a_new_queue_process(self):
        """The master keeps the inbox: what a worker sends while the
        queue process is down reaches its successor."""
        srv = self.server(CONF, start=False)
        srv.write_conf(debug_top(srv) + srv.subst(CONF), preamble=False)
        srv.start()
        qp = wait_for(srv.queue_process, 10, what="the queue process")
        srv.wait_log(r"queue process ready")
        os.kill(qp, signal.SIGSTOP)
        try:
            self.assertEqual(srv.send(), {})
        finally:
            os.kill(qp, signal.SIGKILL)
        qid = srv.queue_ids()[0]
        new = wait_for(lambda: srv.queue_process() not in (None, qp), 10,
                       what="a new queue process") and srv.queue_process()
        srv.wait_log(r"postern\[%d\] queue: debug: queue: notified: %s "
                     r"committed" % (new, qid))
        self.assertNotIn("notified: %s" % qid, "\n".join(
            l for l in srv.log().splitlines() if "[%d]" % qp in l))

    def test_reload_replaces_queue_process_gracefully(self):
        srv = self.server(CONF)
        qp = wait_for(srv.queue_process, 10, what="the queue process")
        srv.reload()
        new = wait_for(lambda: srv.queue_process() not in (None, qp), 15,
                       what="the new queue process") and srv.queue_process()
        # the old one finished by itself, before the new one started
        log = srv.log()
        self.assertRegex(log, r"info: queue process %d exited\n" % qp)
        self.assertLess(log.index("queue process %d exited" % qp),
                        log.index("started queue process %d" % new))
        self.assertEqual(srv.send(), {})


    def test_one_engine_per_spool(self):
        """A queue process whose master was killed may still be
        delivering: a new one waits for SPOOL/queue.lock."""
        srv = self.server(ENGINE + CONF, start=False)
        os.makedirs(srv.spool, exist_ok=True)
        lock = open(os.path.join(srv.spool, "queue.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            srv.start()
            srv.wait_log(r"queue: notice: queue: another queue process "
                         r"still works on this spool \(queue.lock\): "
                         r"waiting")
            self.assertNotIn("queue process ready", srv.log())
            # status is answered; queue requests say why they cannot be
            r = srv.run_tool("status")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = srv.run_tool("queue", "flush")
            self.assertEqual(r.returncode, 1)
            self.assertIn("waits for another one", r.stderr)
            # mail is still received meanwhile
            self.assertEqual(srv.send(), {})
        finally:
            lock.close()
        srv.wait_log(r"queue process ready")
        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout), (0, "1\n"))


    def test_no_router_no_engine(self):
        """Without a router module nothing can be delivered: the queue
        process runs no engine, so a message received costs no attempt
        and no state write, and queue requests say why they fail."""
        srv = self.server(CONF)
        srv.wait_log(r"queue: notice: queue: no router module is loaded")
        self.assertEqual(srv.send(), {})
        qid = srv.queue_ids()[0]
        time.sleep(0.5)
        self.assertNotIn("status=", srv.log())
        states = [f for _, _, fs in os.walk(os.path.join(srv.spool, "queue"))
                  for f in fs if f.endswith(".state")]
        self.assertEqual(states, [])
        r = srv.run_tool("queue", "flush")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no router module is loaded", r.stderr)
        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout), (0, "1\n"))
        self.assertIn(qid, srv.run_tool("queue", "list").stdout)


class ControlSocketTest(PstTestCase):

    def test_socket_owner_and_mode(self):
        srv = self.server(CONF)
        wait_for(lambda: os.path.exists(srv.control), 10,
                 what="the control socket")
        st = os.stat(srv.control)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.assertEqual((st.st_uid, st.st_gid),
                             (nobody.pw_uid, nobody.pw_gid))
        else:
            self.assertEqual(st.st_uid, os.geteuid())
        # gone when Postern stops
        srv.stop(signal.SIGQUIT)
        self.assertFalse(os.path.exists(srv.control))

    def test_queue_count_running_and_stopped(self):
        srv = self.server(CONF)
        self.assertEqual(srv.send(), {})
        self.assertEqual(srv.send(), {})
        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "2\n", ""))
        # read from the spool, never through the socket: a busy engine
        # does not slow it (the relay bench polls it)
        time.sleep(0.3)
        self.assertNotIn("control: count request", srv.log())
        r = srv.run_tool("queue", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(r"(?m)^[0-9A-V]{18} ", r.stdout)), 2)

        srv.stop()
        self.assertFalse(os.path.exists(srv.control))
        n = srv.log().count("control: count request")
        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout), (0, "2\n"))
        self.assertEqual(srv.log().count("control: count request"), n)

    def test_status(self):
        srv = self.server(CONF)
        qp = wait_for(srv.queue_process, 10, what="the queue process")
        r = srv.run_tool("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"(?m)^master  pid %d " % srv.master_pid())
        self.assertRegex(r.stdout, r"(?m)^queue   pid %d " % qp)
        for w in srv.workers():
            self.assertRegex(r.stdout, r"(?m)^worker  pid %d " % w)

        r = srv.run_tool("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)
        self.assertEqual(st["master"]["pid"], srv.master_pid())
        self.assertEqual(st["master"]["reloads"], 0)
        self.assertGreaterEqual(st["master"]["uptime"], 0)
        procs = {p["pid"]: p for p in st["processes"]}
        self.assertEqual(set(procs), set(srv.workers()) | {qp})
        self.assertEqual(procs[qp]["role"], "queue")
        self.assertEqual(procs[qp]["state"], "running")

        srv.reload()
        wait_for(lambda: srv.queue_process() not in (None, qp), 15,
                 what="the new queue process")

        def reloaded():
            r = srv.run_tool("status", "--json")
            if r.returncode != 0:
                return None
            st = json.loads(r.stdout)
            return st if (st["master"]["reloads"] == 1
                          and len(st["processes"]) == 3) else None
        st = wait_for(reloaded, 15, what="status after the reload")
        self.assertGreater(st["master"]["last_reload"], 0)
        self.assertEqual({p["generation"] for p in st["processes"]}, {1})

        r = srv.run_tool("status", "--bogus")
        self.assertEqual(r.returncode, 64)
        self.assertIn("unknown option \"--bogus\"", r.stderr)
        self.assertIn("status [--json]", r.stderr)

        srv.stop()
        r = srv.run_tool("status")
        self.assertEqual(r.returncode, 3)
        self.assertIn("not running", r.stderr)

    def test_reload_moves_the_socket(self):
        srv = self.server(CONF)
        wait_for(lambda: os.path.exists(srv.control), 10,
                 what="the control socket")
        # a directory longer than a unix socket address allows
        deep = os.path.join(srv.dir, *["d" * 40] * 3)
        os.makedirs(deep)
        other = os.path.join(deep, "ctl")
        self.assertGreater(len(other), 108)
        srv.write_conf(CONF, extra_top="control_socket %s;" % other)
        srv.reload()
        srv.wait_log(r"reconfigured")
        wait_for(lambda: os.path.exists(other), 10, what="the new socket")
        self.assertFalse(os.path.exists(srv.control))
        self.assertEqual(stat.S_IMODE(os.stat(other).st_mode), 0o660)
        r = wait_for(lambda: srv.run_tool("status").returncode == 0, 15,
                     what="status on the new socket")
        self.assertTrue(r)

    def test_tool_reads_no_module_key_or_users_file(self):
        """postern queue needs spool_dir and control_socket only."""
        srv = self.server(CONF)
        self.assertEqual(srv.send(), {})
        srv.stop()
        missing = os.path.join(srv.dir, "missing")
        os.makedirs(os.path.join(srv.dir, "keydir"))
        srv.write_conf("""
            load_module %s/nonexistent.so;
            smtp {
                tls_certificate %s/cert.pem;
                tls_key %s/keydir;
                server {
                    listen {port};
                    local_domains example.test;
                    auth_users_file %s/users;
                }
            }
        """ % (missing, missing, srv.dir, missing))
        r = srv.run_tool("-t")
        self.assertNotEqual(r.returncode, 0)      # it is a broken file
        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "1\n", ""))
        r = srv.run_tool("queue", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        # pending, or deferred when the engine tried it before the stop
        self.assertRegex(r.stdout, r"<user@example\.test> (pending|deferred)")
        r = srv.run_tool("status")
        self.assertEqual(r.returncode, 3, r.stderr)


if __name__ == "__main__":
    unittest.main()
