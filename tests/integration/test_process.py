"""Processes: HUP reload with sessions open (old workers finish them,
new connections go to new workers, a bad configuration is refused), a
worker killed mid-session (respawned, nothing half-stored), graceful
QUIT, and kill -9 of everything during a load (every acknowledged
message is in the spool, and the restart recovers cleanly)."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

from pstest import PstTestCase, queue_path, wait_for

CONF = """
smtp {
    hostname %s;
    max_connections_per_ip 1000;
    server {
        listen {port};
        %s
        local_domains example.test;
    }
}
"""

QUEUED = re.compile(r"queued as ([0-9A-V]{18})")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def proc_title(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode().strip()
    except FileNotFoundError:
        return ""


def open_tx(srv, rcpt="user@example.test", port=None):
    c = srv.raw(port=port)
    assert c.cmd("EHLO client.test")[0] == 250
    assert c.cmd("MAIL FROM:<a@client.test>")[0] == 250
    assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
    return c


def finish_tx(c, body):
    assert c.cmd("DATA")[0] == 354
    c.send(body + b".\r\n")
    code, lines = c.reply()
    assert code == 250, (code, lines)
    return QUEUED.search(lines[0]).group(1)


class ReloadTest(PstTestCase):

    def test_reload_with_open_sessions(self):
        srv = self.server(CONF % ("old.example.test", ""))
        old_workers = set(srv.workers())
        self.assertEqual(len(old_workers), 2)
        sessions = [open_tx(srv) for _ in range(4)]
        old_pids = {srv.worker_for(c) for c in sessions}
        self.assertTrue(old_pids <= old_workers)

        srv.write_conf(CONF % ("new.example.test", "listen {port2};"))
        srv.reload()
        srv.wait_log(r"reconfigured: 2 worker\(s\)")

        # new connections: new configuration, new workers, new listener
        for port in (srv.ports[0], srv.ports[1]):
            with srv.raw(port=port) as c:
                self.assertEqual(c.greeting[1],
                                 ["new.example.test ESMTP Postern"])
                self.assertNotIn(srv.worker_for(c) if port == srv.port
                                 else None, old_workers)
        # a just-forked worker shows its title a moment after the fork
        new_workers = set(wait_for(
            lambda: len(set(srv.workers()) - old_workers) == 2
            and set(srv.workers()) - old_workers, 10,
            what="two new workers"))
        self.assertFalse(new_workers & old_workers)
        for pid in old_pids:
            self.assertTrue(alive(pid))
            self.assertIn("shutting down", proc_title(pid))

        # the open sessions finish on their old workers, old settings
        ids = []
        for i, c in enumerate(sessions):
            ids.append(finish_tx(c, b"Subject: %d\r\n\r\nafter reload\r\n"
                                 % i))
            self.assertEqual(c.cmd("QUIT")[0], 221)
            c.close()
        for qid in ids:
            self.assertIn(b"by old.example.test (Postern node ",
                          srv.message(qid))
        # and then the old workers go away
        wait_for(lambda: not any(alive(p) for p in old_workers), 15,
                 what="old workers to exit")
        self.assertEqual(set(srv.workers()), new_workers)
        self.assertEqual(srv.send(), {})
        qid = [q for q in srv.queue_ids() if q not in ids][0]
        self.assertIn(b"by new.example.test (Postern node ", srv.message(qid))

    def test_bad_config_refused(self):
        srv = self.server(CONF % ("old.example.test", ""))
        workers = set(srv.workers())
        c = open_tx(srv)
        with open(srv.conffile) as f:
            good = f.read()
        bad = [
            good.replace("smtp {", "smtp {\n    no_such_directive 1;"),
            good.replace("hostname old.example.test;", "hostname ;"),
            good + "\nsmtp {",
        ]
        for n, text in enumerate(bad, 1):
            with open(srv.conffile, "w") as f:
                f.write(text)
            srv.reload()
            srv.wait_log(r"reload failed", count=n)
            self.assertEqual(set(srv.workers()), workers)
            with srv.raw() as c2:
                self.assertEqual(c2.greeting[1],
                                 ["old.example.test ESMTP Postern"])
        # the open session never noticed
        finish_tx(c, b"Subject: x\r\n\r\nx\r\n")
        c.close()
        # a good configuration again is taken
        with open(srv.conffile, "w") as f:
            f.write(good.replace("old.example.test", "fixed.example.test"))
        srv.reload()
        srv.wait_log(r"reconfigured")
        wait_for(lambda: not (set(srv.workers()) & workers), 15,
                 what="new workers")
        with srv.raw() as c2:
            self.assertEqual(c2.greeting[1],
                             ["fixed.example.test ESMTP Postern"])

    def test_reload_with_unbindable_listener_refused(self):
        srv = self.server(CONF % ("old.example.test", ""))
        workers = set(srv.workers())
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", srv.ports[2]))
        blocker.listen(1)
        try:
            srv.write_conf(CONF % ("new.example.test", "listen {port3};"))
            srv.reload()
            srv.wait_log(r"reload failed")
            self.assertEqual(set(srv.workers()), workers)
            with srv.raw() as c:
                self.assertEqual(c.greeting[1],
                                 ["old.example.test ESMTP Postern"])
            self.assertEqual(srv.send(), {})
        finally:
            blocker.close()
        # the failed reload did not take the running listener away: a
        # respawned worker still accepts on it
        os.kill(sorted(workers)[0], signal.SIGKILL)
        wait_for(lambda: len(srv.workers()) == 2
                 and sorted(workers)[0] not in srv.workers(), 15,
                 what="respawned worker")
        for _ in range(6):
            self.assertEqual(srv.send(), {})
        # once the port is free, the same reload works, on both ports
        srv.reload()
        srv.wait_log(r"reconfigured")
        srv.wait_ready(port=srv.ports[2])
        for port in (srv.ports[0], srv.ports[2]):
            with srv.raw(port=port) as c:
                self.assertEqual(c.greeting[1],
                                 ["new.example.test ESMTP Postern"])
        self.assertNotIn("failed to initialise", srv.log())


def refused_at_once(port):
    """A client finds nobody (connection refused) or is told so (421)
    at once, instead of waiting for a greeting that never comes."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
    except ConnectionRefusedError:
        return True
    with s:
        s.settimeout(3)
        try:
            return s.recv(512)[:3] in (b"", b"421")
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True


class WorkerCrashTest(PstTestCase):

    def test_worker_killed_mid_session(self):
        srv = self.server(CONF % ("mx.example.test", ""))
        workers = set(srv.workers())
        c = open_tx(srv)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: doomed\r\n\r\nDOOMED-MARKER half a message")
        victim = srv.worker_for(c)
        os.kill(victim, signal.SIGKILL)
        self.assertTrue(c.closed(10))
        c.close()
        srv.wait_log(r"worker process %d exited on signal 9" % victim)
        wait_for(lambda: len(srv.workers()) == 2
                 and victim not in srv.workers(), 15,
                 what="a new worker")
        self.assertEqual(len(set(srv.workers()) - workers), 1)
        # the server keeps serving, on both workers
        for _ in range(10):
            self.assertEqual(srv.send(), {})
        self.assertEqual(srv.queue_count(), 10)
        srv.check_queue_consistent()
        for qid in srv.queue_ids():
            self.assertNotIn(b"DOOMED", srv.message(qid))
        # the dead worker's partial message is never queued, and the
        # master removed its tmp/PID directory
        srv.wait_tmp_empty()

    def test_dead_worker_leaves_no_tmp_file(self):
        srv = self.server(CONF % ("mx.example.test", ""))
        c = open_tx(srv)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: doomed\r\n\r\nhalf")
        victim = srv.worker_for(c)
        self.assertEqual(len(srv.tmp_files()), 1)
        os.kill(victim, signal.SIGKILL)
        c.close()
        srv.wait_log(r"worker process %d exited on signal 9" % victim)
        srv.wait_tmp_empty(timeout=3)

    def test_dead_worker_tmp_gone_at_respawn(self):
        """kill -9 of a worker in the middle of DATA: its temporary file
        is gone by the time its successor runs (within a second), and
        the messages acknowledged before are untouched."""
        srv = self.server(CONF % ("mx.example.test", ""))
        for _ in range(4):
            self.assertEqual(srv.send(), {})
        before = {q: srv.message(q) for q in srv.queue_ids()}
        c = open_tx(srv)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: doomed\r\n\r\nhalf a message")
        victim = srv.worker_for(c)
        wait_for(lambda: any("/%d/" % victim in f for f in srv.tmp_files()),
                 5, what="the victim's temporary file")
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(srv.workers()) == 2
                 and victim not in srv.workers(), 15, what="a new worker")
        wait_for(lambda: not srv.tmp_files(), 1.0,
                 what="tmp/ empty within a second of the respawn")
        self.assertFalse(os.path.exists(os.path.join(srv.spool, "tmp",
                                                     str(victim))))
        c.close()
        self.assertEqual({q: srv.message(q) for q in srv.queue_ids()},
                         before)
        srv.check_queue_consistent()

    def test_workers_killed_repeatedly(self):
        srv = self.server(CONF % ("mx.example.test", ""))
        for _ in range(3):
            for pid in srv.workers():
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: len(srv.workers()) == 2, 15,
                     what="respawned workers")
            srv.wait_ready()
            self.assertEqual(srv.send(), {})
        self.assertEqual(srv.queue_count(), 3)
        self.assertIsNone(srv.proc.poll())


    def test_crash_loop_pauses_then_refills(self):
        """Workers that keep dying: respawns pause for the window (10 s),
        then the master starts the full set again."""
        srv = self.server(CONF % ("mx.example.test", ""))
        deadline = time.monotonic() + 20
        while "pausing respawns" not in srv.log():
            self.assertLess(time.monotonic(), deadline, "no pause")
            for pid in srv.workers():
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)
        self.assertIsNone(srv.proc.poll())
        # none left during the pause: nobody listens, clients move on
        for pid in srv.workers():
            os.kill(pid, signal.SIGKILL)
        srv.wait_log(r"no worker process left: listeners closed until the"
                     r" respawn pause ends")
        self.assertTrue(refused_at_once(srv.port))
        srv.wait_log(r"listening again", timeout=20)
        wait_for(lambda: len(srv.workers()) == 2, 20, interval=0.2,
                 what="workers after the pause")
        srv.wait_ready()
        self.assertEqual(srv.send(), {})


@unittest.skipUnless(os.geteuid() == 0, "needs root (workers as nobody)")
class NoWorkerTest(PstTestCase):
    """Workers that cannot use the spool: -t says so, the server does
    not start, and a master left without workers closes its listeners
    (clients fail over to the next MX instead of hanging)."""

    def locked_server(self):
        srv = self.server(CONF % ("mx.example.test", ""), start=False)
        locked = os.path.join(srv.dir, "locked")
        os.makedirs(locked, exist_ok=True)
        os.chmod(locked, 0o700)          # root only: nobody cannot enter
        srv.spool = os.path.join(locked, "spool")
        srv.write_conf(*srv._conf_args)
        return srv

    def test_t_checks_the_worker_can_use_the_spool(self):
        srv = self.locked_server()
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('worker account "nobody" cannot use', r.stderr)
        self.assertIn(os.path.join(srv.dir, "locked"), r.stderr)
        self.assertIn("configuration test failed", r.stderr)

    def test_t_warns_of_an_unreachable_log_directory(self):
        """The workers reopen the log by name on USR1: -t says when they
        cannot reach it (a warning; the spool is fine here)."""
        srv = self.server(CONF % ("mx.example.test", ""), start=False)
        locked = os.path.join(srv.dir, "locked")
        os.makedirs(locked, exist_ok=True)
        os.chmod(locked, 0o700)
        srv.logfile = os.path.join(locked, "error.log")
        srv.write_conf(*srv._conf_args)
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the workers cannot reach the error log's directory"
                      ' "%s"' % locked, r.stderr)

    def test_unusable_spool_client_refused_at_once(self):
        srv = self.locked_server()
        srv.start(wait=False)
        wait_for(lambda: srv.proc.poll() is not None
                 or "not respawning" in srv.log(), 15,
                 what="the server to give up")
        self.assertTrue(refused_at_once(srv.port))
        self.assertIn('worker account "nobody" cannot use',
                      srv.log() + srv.stderr())

    def test_master_without_workers_closes_listeners(self):
        """The spool breaks while the server runs, the workers die and
        cannot start again: the master closes its listeners and says
        so; a reload (which prepares the spool again) brings it back."""
        srv = self.server(CONF % ("mx.example.test", ""))
        self.assertEqual(srv.send(), {})
        tmp = os.path.join(srv.spool, "tmp")
        os.chown(tmp, 0, 0)
        os.chmod(tmp, 0o700)
        for pid in srv.workers():
            os.kill(pid, signal.SIGKILL)
        srv.wait_log(r"no worker process left: listeners closed")
        self.assertIsNone(srv.proc.poll())
        self.assertTrue(refused_at_once(srv.port))
        srv.reload()
        srv.wait_log(r"reconfigured")
        srv.wait_ready()
        self.assertEqual(srv.send(), {})


class GracefulQuitTest(PstTestCase):

    def test_quit_finishes_open_sessions(self):
        srv = self.server(CONF % ("mx.example.test", ""))
        c = open_tx(srv)
        srv.send_signal(signal.SIGQUIT)
        wait_for(lambda: all("shutting down" in proc_title(p)
                             for p in srv.children()), 10,
                 what="workers shutting down")
        # the open session may finish its transaction
        qid = finish_tx(c, b"Subject: last\r\n\r\nlast one\r\n")
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()
        srv.proc.wait(timeout=15)
        self.assertEqual(srv.proc.returncode, 0)
        self.assertEqual(srv.queue_ids(), [qid])
        self.assertFalse(os.path.exists(srv.pidfile))
        srv.wait_log(r"master: notice: exiting")

    def test_shutdown_timeout_closes_lingering_sessions(self):
        srv = self.server(CONF % ("mx.example.test", ""),
                          extra_top="worker_shutdown_timeout 1s;")
        c = open_tx(srv)
        srv.send_signal(signal.SIGQUIT)
        c.sock.settimeout(15)
        self.assertReply(c.reply(), 421, "4.3.2")
        self.assertTrue(c.closed())
        c.close()
        srv.proc.wait(timeout=15)
        srv.wait_log(r"shutdown timeout: closing 1 session")
        self.assertEqual(srv.queue_count(), 0)
        srv.wait_tmp_empty()

    def test_new_connections_during_graceful_quit(self):
        """While old sessions finish, new clients are not left hanging
        without a greeting: they are refused (or greeted)."""
        srv = self.server(CONF % ("mx.example.test", ""))
        c = open_tx(srv)
        srv.send_signal(signal.SIGQUIT)
        wait_for(lambda: all("shutting down" in proc_title(p)
                             for p in srv.children()), 10,
                 what="workers shutting down")
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        except ConnectionRefusedError:
            pass
        else:
            with s:
                s.settimeout(5)
                try:
                    data = s.recv(512)
                except socket.timeout:
                    self.fail("connection accepted during shutdown but "
                              "never greeted")
                except ConnectionResetError:
                    data = b""
                self.assertTrue(data == b"" or data.startswith((b"220",
                                                                b"421")),
                                data)
        finish_tx(c, b"x\r\n")
        c.close()
        srv.proc.wait(timeout=15)


class MasterDeathTest(PstTestCase):

    def test_master_killed_workers_finish_and_restart(self):
        """kill -9 of the master alone: its workers stop gracefully (they
        finish open sessions), and a new master can start meanwhile."""
        srv = self.server(CONF % ("mx.example.test", ""))
        old_workers = srv.workers()
        c = open_tx(srv)
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
        wait_for(lambda: all("shutting down" in proc_title(p)
                             for p in old_workers if alive(p)), 10,
                 what="orphaned workers shutting down")
        srv.start()
        self.assertFalse(set(srv.workers()) & set(old_workers))
        self.assertEqual(srv.send(), {})
        # the orphan's session is still served, and stored
        qid = finish_tx(c, b"Subject: orphan\r\n\r\nstill here\r\n")
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()
        wait_for(lambda: not any(alive(p) for p in old_workers), 15,
                 what="orphaned workers to exit")
        self.assertEqual(srv.queue_count(), 2)
        self.assertEqual(srv.body(qid), b"Subject: orphan\r\n\r\n"
                                        b"still here\r\n")
        srv.check_queue_consistent()


class RecoveryTest(PstTestCase):

    def test_recovery_sorts_out_debris(self):
        """Start-up recovery: what dead workers were receiving and every
        stray file in tmp/ (no writer puts one there) are removed.  The
        master does not read the queue (the queue process does): damaged
        queue files stay where they are, and the readers report them."""
        srv = self.server(CONF % ("mx.example.test", ""))
        self.assertEqual(srv.send(), {})
        good = srv.queue_ids()[0]
        srv.stop()
        tmp = os.path.join(srv.spool, "tmp")
        with open(queue_path(srv.spool, good), "rb") as f:
            whole = f.read()

        def put(path, data, age=0):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data if isinstance(data, bytes) else data.encode())
            if age:
                t = time.time() - age
                os.utime(path, (t, t))
        truncated, garbage, foreign = "A" * 18, "B" * 18, "C" * 18
        put(queue_path(srv.spool, truncated), whole[:-10])
        put(queue_path(srv.spool, garbage), "not a queue file at all\n")
        put(queue_path(srv.spool, foreign), whole)  # the envelope says good
        os.mkdir(os.path.join(tmp, "999999"))      # no such process
        put(os.path.join(tmp, "999999", "G" * 18), "dead worker's")
        put(os.path.join(tmp, "E" * 18), "old", age=7200)
        put(os.path.join(tmp, "F" * 18), "young")
        srv.start()
        line = srv.wait_log(r"stale file\(s\) removed", count=2)[-1]
        self.assertIn("3 stale file(s) removed", line)
        self.assertFalse(os.path.exists(os.path.join(tmp, "999999")))
        self.assertEqual(os.listdir(os.path.join(srv.spool, "corrupt")), [])
        self.assertEqual(srv.queue_ids(),
                         sorted([good, truncated, garbage, foreign]))
        # (the new workers' own tmp/PID directories are there too)
        self.assertEqual([f for f in os.listdir(tmp)
                          if not os.path.isdir(os.path.join(tmp, f))], [])
        for qid, why in ((truncated, "size does not match"),
                         (garbage, "no format 2 or 3 header"),
                         (foreign, "envelope of another message")):
            r = srv.run_tool("queue", "show", qid)
            self.assertEqual(r.returncode, 1)
            self.assertIn(why, r.stderr)
        r = srv.run_tool("queue", "show", good)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.send(), {})


class DeadWriterTest(PstTestCase):

    def test_restart_after_kill_9_mid_data(self):
        """kill -9 of master and workers while messages arrive: their
        workers are dead (zombies nobody reaps count as dead), so the
        restart removes every temporary file; committed mail stays."""
        srv = self.server(CONF % ("mx.example.test", ""))
        self.assertEqual(srv.send(), {})
        acked = srv.queue_ids()
        clients = []
        for _ in range(4):
            c = open_tx(srv)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(b"Subject: doomed\r\n\r\nhalf")
            clients.append(c)
        wait_for(lambda: len(srv.tmp_files()) == 4, 5, what="4 tmp files")
        srv.kill_all()
        for c in clients:
            c.close()
        srv.start()
        srv.wait_log(r"spool .*: 4 stale file\(s\) removed", count=1)
        self.assertEqual(srv.tmp_files(), [])
        self.assertEqual(srv.queue_ids(), acked)
        self.assertEqual(srv.send(), {})

    def test_tmp_of_non_workers_removed_at_start(self):
        """A tmp/PID whose PID now belongs to another program, or to a
        zombie, and stray files in tmp/ are garbage at start-up."""
        srv = self.server(CONF % ("mx.example.test", ""))
        srv.stop()
        tmp = os.path.join(srv.spool, "tmp")
        other = subprocess.Popen(["sleep", "60"])
        zombie = subprocess.Popen(["true"])
        try:
            wait_for(lambda: proc_state(zombie.pid) == "Z", 5,
                     what="a zombie")
            for pid in (other.pid, zombie.pid):
                os.mkdir(os.path.join(tmp, str(pid)))
                with open(os.path.join(tmp, str(pid), "G" * 18), "wb") as f:
                    f.write(b"partial")
            with open(os.path.join(tmp, "F" * 18), "wb") as f:
                f.write(b"young stray")
            srv.start()
            srv.wait_log(r"spool .*: 3 stale file\(s\) removed", count=1)
            self.assertEqual(srv.tmp_files(), [])
            self.assertFalse(os.path.exists(os.path.join(tmp,
                                                         str(other.pid))))
        finally:
            other.kill()
            other.wait()
            zombie.wait()


    def test_reap_sweeps_other_dead_writers(self):
        """A tmp/PID left by a process this master never reaps (a worker
        of a killed master that died later) goes at the next reap."""
        srv = self.server(CONF % ("mx.example.test", ""))
        tmp = os.path.join(srv.spool, "tmp")
        zombie = subprocess.Popen(["true"])
        try:
            wait_for(lambda: proc_state(zombie.pid) == "Z", 5,
                     what="a zombie")
            os.mkdir(os.path.join(tmp, str(zombie.pid)))
            with open(os.path.join(tmp, str(zombie.pid), "G" * 18),
                      "wb") as f:
                f.write(b"partial")
            victim = srv.workers()[0]
            os.kill(victim, signal.SIGKILL)
            srv.wait_log(r"removed 0 unacknowledged file\(s\) of process"
                         r" %d, 1 of other dead writers" % victim)
            self.assertEqual(srv.tmp_files(), [])
        finally:
            zombie.wait()


class KillEverythingTest(PstTestCase):

    def test_kill_9_during_load(self):
        srv = self.server(CONF % ("mx.example.test", ""))
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()

        def client(n):
            i = 0
            while not stop.is_set():
                c = None
                try:
                    c = srv.raw(timeout=10)
                    c.cmd("EHLO client.test")
                    for _ in range(5):
                        i += 1
                        body = (b"Subject: %d/%d\r\n\r\n" % (n, i)
                                + b"payload %d/%d\r\n" % (n, i) * 50)
                        c.cmd("MAIL FROM:<s%d@client.test>" % n)
                        c.cmd("RCPT TO:<user@example.test>")
                        c.cmd("DATA")
                        c.send(body + b".\r\n")
                        code, lines = c.reply()
                        if code == 250:
                            with lock:
                                acked[QUEUED.search(lines[0]).group(1)] = body
                    c.cmd("QUIT")
                    c.close()
                except (OSError, AssertionError, ConnectionError):
                    if stop.is_set():
                        return
                    time.sleep(0.05)
                finally:
                    if c is not None:
                        c.close()

        threads = [threading.Thread(target=client, args=(n,), daemon=True)
                   for n in range(16)]
        for t in threads:
            t.start()
        try:
            wait_for(lambda: len(acked) >= 200, 60, what="200 messages")
        finally:
            srv.kill_all()
            stop.set()
            for t in threads:
                t.join(15)
        with lock:
            acked = dict(acked)

        envs = srv.queue_ids()
        self.assertGreaterEqual(len(envs), len(acked))
        for qid, body in acked.items():
            # durable before 250: both files there, complete
            self.assertIn(qid, envs)
            self.assertEqual(srv.body(qid), body)
            self.assertTrue(srv.envelope(qid).endswith("\nend\n"))
        # whatever else is queued (committed, 250 not seen) is whole too
        files = set(srv.queue_files())
        for qid in envs:
            self.assertIn(qid, files)
            self.assertTrue(srv.envelope(qid).endswith("\nend\n"))

        # a restart recovers cleanly
        srv.start()
        srv.wait_log(r"spool .*: \d+ stale file\(s\) removed", count=2)
        self.assertEqual(os.listdir(os.path.join(srv.spool, "corrupt")), [])
        srv.check_queue_consistent()
        self.assertEqual(srv.send(), {})
        self.assertEqual(srv.queue_count(), len(envs) + 1)
        r = srv.run_tool("queue", "count")
        self.assertEqual(r.stdout.strip(), str(len(envs) + 1))


if __name__ == "__main__":
    unittest.main()
