"""Plugins built out of tree against the installed API: `make install`
into a scratch root, build plugins/ with pkg-config postern from there,
load them, and check what they do -- including that an asynchronous hook
(tarpit: PENDING + timer) does not stall the worker's other sessions."""

import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest

from aiosmtpd.controller import Controller

from pstest import BASIC, OBJS, ROOT, PstTestCase, free_port, wait_for
from test_send import Sink


def build_plugins(dest):
    """Install into dest, then build plugins/ as an outsider would."""
    inst = os.path.join(dest, "inst")
    out = os.path.join(dest, "plugins")
    shutil.rmtree(dest, ignore_errors=True)
    subprocess.run(["make", "-s", "install", "DESTDIR=" + inst,
                    "prefix=/opt/postern", "NO_CERT=1"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300)
    env = dict(os.environ,
               PKG_CONFIG_PATH=inst + "/opt/postern/lib/pkgconfig",
               PKG_CONFIG_SYSROOT_DIR=inst)
    # nothing from the source tree: only what was installed
    r = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "plugins"),
                        "OUT=" + out], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError("plugin build failed:\n" + r.stdout + r.stderr)
    return inst, out


class PluginTest(PstTestCase):

    @classmethod
    def setUpClass(cls):
        cls.dest = os.path.join(OBJS, "run", "plugin_build")
        cls.inst, cls.out = build_plugins(cls.dest)

    def test_installed_layout(self):
        base = self.inst + "/opt/postern"
        for f in ("sbin/postern", "lib/postern/modules/store_spool.so",
                  "include/postern/module.h", "lib/pkgconfig/postern.pc",
                  "etc/postern/postern.conf"):
            self.assertTrue(os.path.exists(os.path.join(base, f)), f)
        with open(base + "/etc/postern/postern.conf") as f:
            conf = f.read()
        self.assertNotIn("objs/", conf)

    def test_hello_adds_header(self):
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            hello_header X-Hello "from $server"; hostname mx.example.test; } }
        """, extra_top="load_module %s/hello.so;\n" % self.out)
        srv.send()
        qid = srv.queue_ids()[0]
        self.assertIn("prepend X-Hello:+20from+20mx.example.test\n",
                      srv.envelope(qid))
        # written out below the trace block, not above our Received:
        # (RFC 5321 4.4), as a delivery sends it
        cat = srv.run_tool("queue", "cat", qid).stdout.replace("\r\n", "\n")
        head = cat.split("\n\n")[0].split("\n")
        self.assertTrue(head[0].startswith("Received: "), head)
        at = head.index("X-Hello: from mx.example.test")
        self.assertTrue(all(not l.startswith("Received:")
                            for l in head[at:]), head)
        self.assertTrue(all(l.startswith(("Received:", " ", "\t"))
                            for l in head[:at]), head)
        chain = srv.run_tool("-T").stdout
        self.assertIn("message   : hello(0)", chain)

    def test_tarpit_does_not_block_other_sessions(self):
        srv = self.server("""
            smtp {
                server { listen {port}; local_domains example.test;
                         tarpit_delay 3s; }
                server { listen {port2}; local_domains example.test;
                         tarpit off; }
            }
        """, extra_top="load_module %s/tarpit.so;\n" % self.out, workers=1)
        slow = srv.raw()
        slow.cmd("EHLO slow.test")
        slow.cmd("MAIL FROM:<a@slow.test>")
        t0 = time.monotonic()
        slow.send("RCPT TO:<user@example.test>\r\n")

        # meanwhile, on the same (only) worker, a whole transaction
        t1 = time.monotonic()
        with srv.smtp(port=srv.ports[1]) as c:
            c.ehlo("fast.test")
            c.sendmail("b@fast.test", ["user@example.test"], b"x\r\n")
        fast = time.monotonic() - t1

        self.assertReply(slow.reply(), 250)
        waited = time.monotonic() - t0
        slow.close()

        self.assertGreaterEqual(waited, 2.9)
        self.assertLess(fast, 2.5, "the worker stalled behind the tarpit")
        self.assertEqual(srv.queue_count(), 1)

    def test_subject_filter(self):
        """subject_filter: a PCRE2 pattern from the configuration, the
        Subject read at end of data, a 550 with the configured text."""
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            subject_reject "(?i)\\bviagra\\b"
                                           "Message refused: spam subject"; } }
        """, extra_top="load_module %s/subject_filter.so;\n" % self.out)
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            for subject, want in (("Cheap VIAGRA now", 550),
                                  ("viagraX is a word", 250),
                                  ("hello", 250)):
                self.assertEqual(c.cmd("MAIL FROM:<a@client.test>")[0], 250)
                self.assertEqual(c.cmd("RCPT TO:<user@example.test>")[0],
                                 250)
                self.assertEqual(c.cmd("DATA")[0], 354)
                c.send("Subject: %s\r\n\r\nbody\r\n.\r\n" % subject)
                r = c.reply()
                self.assertEqual(r[0], want, (subject, r))
                if want == 550:
                    self.assertEqual(r[1], ["5.7.1 Message refused: spam"
                                            " subject"])
        self.assertEqual(srv.queue_count(), 2)
        # a pattern that does not compile is a configuration error
        bad = self.server("""
            smtp { server { listen {port}; subject_reject "(unclosed"; } }
        """, extra_top="load_module %s/subject_filter.so;\n" % self.out,
                          start=False, name="subject_bad")
        r = subprocess.run([os.path.join(OBJS, "postern"), "-t", "-p",
                            ROOT + "/", "-c", bad.conffile],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does not compile", r.stderr)

    def test_dnsbl_async(self):
        """dnsbl_async: a lookup in the tests' DNS while the session is
        pending; a listed client gets 554 instead of the greeting, the
        others the greeting."""
        dns = self.dnsmasq(["--local=/test/",
                            "--host-record=1.0.0.127.bl.test,127.0.0.2"])
        listed = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            dnsbl_async_zone bl.test; } }
        """, extra_top="load_module %s/dnsbl_async.so;\n" % self.out,
                             resolver=dns.address, name="dnsbl_listed",
                             start=False)
        listed.start(wait=False)         # it never greets 127.0.0.1

        def accepts():
            try:
                socket.create_connection(("127.0.0.1", listed.port), 1).close()
                return True
            except OSError:
                return False
        wait_for(accepts, 15, what="the listed server to listen")
        with listed.raw(greet=False) as c:
            r = c.reply()
            self.assertEqual((r[0], r[1]),
                             (554, ["5.7.1 Client address listed in"
                                    " bl.test"]), r)
        clean = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            dnsbl_async_zone other.test; } }
        """, extra_top="load_module %s/dnsbl_async.so;\n" % self.out,
                            resolver=dns.address, name="dnsbl_clean")
        self.assertEqual(clean.send(), {})
        self.assertEqual(clean.queue_count(), 1)
        self.assertNotIn("stale or repeated", listed.log() + clean.log())

    REBUILT = r"""
#include <postern/module.h>
static pst_verdict_e
build_message(pst_call_t *call, void *data)
{
    (void) data;
    pst_msg_add_header(pst_call_session(call), "X-Build", "%s", BUILD);
    return PST_HOOK_CONTINUE;
}
static const pst_hook_t  build_hooks[] = {
    { PST_PHASE_MESSAGE, build_message, 0 },
    pst_null_hook
};
PST_EXPORT const pst_module_t  postern_module = {
    PST_MODULE_HEADER,
    .name = "rebuilt", .version = "1.0", .description = "test",
    .hooks = build_hooks,
};
"""

    def build(self, so, build):
        """Compile the module with BUILD = build into a new file, then
        rename it over so (what make and make install do)."""
        src = os.path.join(self.out, "rebuilt.c")
        with open(src, "w") as f:
            f.write(self.REBUILT)
        r = subprocess.run(["cc", "-shared", "-fPIC", "-I",
                            os.path.join(OBJS, "include"),
                            "-DBUILD=\"%s\"" % build, "-o", so + ".new", src],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        os.rename(so + ".new", so)

    def x_build(self, srv):
        ids = srv.queue_ids()
        return sorted(re.findall(r"prepend X-Build:\+20(\w+)",
                                 "".join(srv.envelope(q) for q in ids)))

    def test_reload_loads_a_rebuilt_plugin(self):
        """A plugin rebuilt at the same path runs its new code after a
        reload (dlopen would return the old handle); one changed in
        place is refused, and the running code stays."""
        so = os.path.join(self.out, "rebuilt.so")
        self.build(so, "one")
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test; } }
        """, extra_top="load_module %s;\n" % so)
        srv.send()
        self.assertEqual(self.x_build(srv), ["one"])

        self.build(so, "two")
        srv.reload()
        srv.wait_log(r"reconfigured")
        wait_for(lambda: srv.send() == {} and "two" in self.x_build(srv),
                 15, what="the rebuilt plugin's header")

        # a reload with the file unchanged keeps it (the handle loaded
        # through /proc/self/fd is found again)
        srv.reload()
        srv.wait_log(r"reconfigured", count=2)
        n = len(self.x_build(srv))
        wait_for(lambda: srv.send() == {} and len(self.x_build(srv)) > n,
                 15, what="a message after the second reload")
        self.assertEqual(self.x_build(srv)[n:], ["two"])
        self.assertNotIn("cannot load module", srv.log())

        # changed in place (same inode): refused, the running code stays
        with open(so, "r+b") as f:
            f.seek(0, 2)
            f.write(b"\0")
        srv.reload()
        srv.wait_log(r"rebuilt\.so\": it was changed in place while"
                     r" loaded")
        srv.wait_log(r"reload failed")
        self.assertEqual(srv.send(), {})
        self.assertEqual(self.x_build(srv)[-1:], ["two"])

    def tarpit(self, top=""):
        """A one-worker server with the tarpit on RCPT (500 ms) that logs
        at debug."""
        srv = self.server("""
            smtp { server { listen {port}; local_domains example.test;
                            tarpit_delay 500ms; } }
        """, extra_top="load_module %s/tarpit.so;\n%s\n" % (self.out, top),
            workers=1, start=False)
        with open(srv.conffile) as f:
            conf = f.read()
        with open(srv.conffile, "w") as f:
            f.write(re.sub(r"(?m)^(error_log \S+) info;", r"\1 debug;", conf))
        srv.start()
        return srv

    def hook_warnings(self, srv):
        return [l for l in srv.log().splitlines()
                if "hook completion" in l and "[debug]" not in l
                and ": debug:" not in l]

    def test_tarpit_client_gone_before_resume(self):
        """A client that hangs up while a hook waits is ordinary: the
        late completion is logged at debug, not as a stale or repeated
        one (a warning that looked like a plugin bug)."""
        srv = self.tarpit()
        c = srv.raw()
        c.cmd("EHLO x.test")
        c.cmd("MAIL FROM:<a@x.test>")
        c.send("RCPT TO:<user@example.test>\r\n")
        c.close()
        srv.wait_log(r"debug: hook completion after session \d+ ended:"
                     r" ignored")
        # the worker lives on
        srv.send()
        self.assertEqual(srv.queue_count(), 1)
        self.assertNotIn("stale or repeated hook completion", srv.log())
        self.assertEqual(self.hook_warnings(srv), [])

    def test_tarpit_completion_after_module_timeout(self):
        """A completion after the module's timeout gave the call up is
        not a repeated one either: the timeout has warned; the late
        completion is an info line."""
        srv = self.tarpit("module_timeout tarpit 100ms;")
        with srv.raw() as c:
            c.cmd("EHLO x.test")
            c.cmd("MAIL FROM:<a@x.test>")
            self.assertReply(c.cmd("RCPT TO:<user@example.test>"), 451)
            srv.wait_log(r"info: hook completion after the module's timeout"
                         r" \(session \d+\) ignored")
            self.assertReply(c.cmd("QUIT"), 221)
        self.assertNotIn("stale or repeated hook completion", srv.log())


class Hooks(http.server.BaseHTTPRequestHandler):
    """The webhook's receiver: keeps each POST's JSON body; answers with
    the next status of the server's list (then 200)."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.posts.append((self.path, json.loads(body)))
            code = (self.server.statuses.pop(0) if self.server.statuses
                    else 200)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class QueuePluginTest(PstTestCase):
    """The queue-side examples, built out of tree with the others:
    webhook (HTTP POSTs from the queue process's event loop) and
    route_by_header (a ROUTE hook reading the message's header)."""

    @classmethod
    def setUpClass(cls):
        cls.dest = os.path.join(OBJS, "run", "plugin_build_queue")
        cls.inst, cls.out = build_plugins(cls.dest)

    def sink(self):
        handler = Sink()
        handler.port = free_port()
        ctl = Controller(handler, hostname="127.0.0.1", port=handler.port,
                         decode_data=False)
        ctl.start()
        self.addCleanup(ctl.stop)
        return handler

    def receiver(self, statuses=()):
        hs = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
        hs.posts, hs.statuses, hs.lock = [], list(statuses), threading.Lock()
        threading.Thread(target=hs.serve_forever, daemon=True).start()
        self.addCleanup(hs.server_close)
        self.addCleanup(hs.shutdown)
        return hs

    def relay(self, sink, top):
        return self.server("""
            smtp { server { listen {port}; relay_domains example.net; } }
        """, extra_top="""
            load_module {modules}/relay_smarthost.so;
            relay_host [127.0.0.1]:%d;
            relay_host_tls none;
            relay_min_backoff 1s;
            %s
        """ % (sink.port, top))

    def test_webhook_posts_delivered_and_failed(self):
        """One POST per delivered or failed recipient, with the JSON
        summary (the Subject read at ENQUEUED); a 503 is retried."""
        sink = self.sink()
        hs = self.receiver(statuses=[503])
        srv = self.relay(sink, """
            load_module %s/webhook.so;
            webhook_url http://127.0.0.1:%d/hook;
            webhook_timeout 2s;
        """ % (self.out, hs.server_address[1]))
        self.assertEqual(srv.send(rcpts=("ok@example.net",
                                         "refuse@example.net")), {})
        # delivered, failed, the bounce to the sender delivered, and the
        # first one again after its 503
        wait_for(lambda: len(hs.posts) >= 4, 20, what="four POSTs")
        posts = [(p[1]["event"], p[1]["rcpt"], p[1]["code"])
                 for p in hs.posts]
        self.assertIn(("delivered", "ok@example.net", 250), posts)
        self.assertIn(("failed", "refuse@example.net", 550), posts)
        self.assertIn(("delivered", "sender@client.test", 250), posts)
        self.assertEqual(len(hs.posts), 4, hs.posts)
        first = hs.posts[0][1]
        self.assertEqual([p[1] for p in hs.posts].count(first), 2, hs.posts)
        self.assertEqual(hs.posts[0][0], "/hook")
        self.assertEqual(first["sender"], "sender@client.test")
        self.assertRegex(first["id"], r"^[0-9A-V]{18}$")
        self.assertEqual(first["attempts"], 1)
        # kept with the message from its ENQUEUED (pst_qevent_set_ctx())
        self.assertEqual(first["subject"], "test")
        self.assertIsNone(first["message_id"])
        srv.wait_log(r"webhook: not a 2xx answer; again in 1 s")

    def test_webhook_never_delays_delivery(self):
        """A web service that takes the connection and never answers:
        the mail is delivered at once, the webhook times out, retries
        once and gives up, and the queue process serves on."""
        sink = self.sink()
        dead = socket.socket()
        dead.bind(("127.0.0.1", 0))
        dead.listen(16)                  # connects, never answers
        self.addCleanup(dead.close)
        srv = self.relay(sink, """
            load_module %s/webhook.so;
            webhook_url http://127.0.0.1:%d/;
            webhook_timeout 700ms;
            webhook_retries 1;
        """ % (self.out, dead.getsockname()[1]))
        t0 = time.monotonic()
        self.assertEqual(srv.send(rcpts=("a@example.net",)), {})
        wait_for(lambda: len(sink.messages) == 1, 10, what="delivery")
        self.assertLess(time.monotonic() - t0, 3)
        srv.wait_log(r"webhook: timed out; again in 1 s")
        srv.wait_log(r"webhook: timed out; given up after 2 attempts",
                     timeout=15)
        self.assertEqual(srv.send(rcpts=("b@example.net",)), {})
        wait_for(lambda: len(sink.messages) == 2, 10, what="2nd delivery")

    def test_route_by_header(self):
        """X-Route: bulk goes to the second sink through the smarthost
        transport with a next hop; other mail to relay_host (the first
        sink); the field may come from the client or from a receive-side
        hook (hello's header)."""
        main, bulk = self.sink(), self.sink()
        srv = self.relay(main, """
            load_module %s/route_by_header.so;
            route_by_header X-Route bulk smarthost:[127.0.0.1]:%d;
            load_module %s/hello.so;
        """ % (self.out, bulk.port, self.out))
        self.assertEqual(srv.send(rcpts=("a@example.net",), body=(
            b"Subject: one\r\nX-Route:  BULK \r\n\r\nbulk\r\n")), {})
        self.assertEqual(srv.send(rcpts=("b@example.net",), body=(
            b"Subject: two\r\nX-Route: other\r\n\r\nnot bulk\r\n")), {})
        wait_for(lambda: len(main.messages) + len(bulk.messages) == 2, 20,
                 what="two deliveries")
        self.assertEqual([m[1] for m in bulk.messages], [["a@example.net"]])
        self.assertEqual([m[1] for m in main.messages], [["b@example.net"]])
        srv.wait_log(r"route_by_header: \w+: X-Route: smarthost:"
                     r"\[127.0.0.1\]:%d" % bulk.port)

        # a header added by a receive-side hook counts too
        main2, bulk2 = self.sink(), self.sink()
        srv = self.server("""
            smtp { server { listen {port}; relay_domains example.net;
                            hello_header X-Route bulk; } }
        """, name="rbh_hook", extra_top="""
            load_module {modules}/relay_smarthost.so;
            relay_host [127.0.0.1]:%d;
            relay_host_tls none;
            load_module %s/route_by_header.so;
            route_by_header x-route bulk smarthost:[127.0.0.1]:%d;
            load_module %s/hello.so;
        """ % (main2.port, self.out, bulk2.port, self.out))
        self.assertEqual(srv.send(rcpts=("c@example.net",)), {})
        wait_for(lambda: len(bulk2.messages) == 1, 20, what="hook's header")
        self.assertEqual(main2.messages, [])

    def test_route_by_header_config_errors(self):
        for line, msg in (("route_by_header X-Route bulk;", "number of"),
                          ("route_by_header X:R bulk smarthost:;",
                           "without spaces or ':'"),
                          ("route_by_header X-R bulk %s;" % ("d" * 258),
                           "1 to 257 bytes")):
            srv = self.server(BASIC, start=False, name="rbh_bad",
                              extra_top="load_module %s/route_by_header.so;"
                                        "\n%s\n" % (self.out, line))
            r = srv.run_tool("-t")
            self.assertNotEqual(r.returncode, 0, line)
            self.assertIn(msg, r.stderr, line)


if __name__ == "__main__":
    unittest.main()


class ModuleLifecycleTest(PstTestCase):
    """When the master calls init_module(), and what module_priority
    does to a module's hooks."""

    MOD = os.path.join(OBJS, "tests", "modules", "test_init_module.so")

    def test_init_module_runs_in_master_at_start_and_reload(self):
        srv = self.server(BASIC, start=False,
                          extra_top="load_module %s;\n"
                                    "test_init_marker {dir}/marker;\n"
                                    % self.MOD)
        marker = os.path.join(srv.dir, "marker")
        srv.start()
        with open(marker) as f:
            self.assertEqual(int(f.read()), srv.master_pid())
        os.unlink(marker)
        srv.reload()
        wait_for(lambda: os.path.exists(marker), 10, what="init_module on"
                 " reload")
        # postern -t reads the configuration but serves nothing
        os.unlink(marker)
        self.assertEqual(srv.run_tool("-t").returncode, 0)
        self.assertFalse(os.path.exists(marker))

    def test_failing_init_module_refuses_start_and_reload(self):
        srv = self.server(BASIC, start=False,
                          extra_top="load_module %s;\ntest_init_fail on;\n"
                                    % self.MOD)
        self.assertNotEqual(srv.start(expect_fail=True), 0)
        self.assertIn('module "test_init_module" failed to start',
                      srv.log() + srv.stderr())

        # a running server keeps its configuration when a reload fails so
        srv2 = self.server(BASIC, name="init_fail_reload")
        srv2.write_conf(BASIC, extra_top="load_module %s;\n"
                                         "test_init_fail on;\n" % self.MOD)
        srv2.reload()
        srv2.wait_log(r"reload failed")
        self.assertEqual(srv2.send(), {})

    def test_module_priority_shifts_every_hook(self):
        srv = self.server(BASIC, start=False, extra_top=(
            "load_module %s/tarpit.so;\n" % os.path.join(OBJS, "plugins")))
        chain = srv.run_tool("-T").stdout
        # equal priorities keep load_module order
        self.assertIn("rcpt      : policy_relay(-10) tarpit(-10)"
                      " policy_relay(100)", chain)
        srv.write_conf(BASIC, extra_top=(
            "load_module %s/tarpit.so;\nmodule_priority policy_relay 5;\n"
            % os.path.join(OBJS, "plugins")))
        chain = srv.run_tool("-T").stdout
        self.assertIn("rcpt      : tarpit(-10) policy_relay(-5)"
                      " policy_relay(105)", chain)
