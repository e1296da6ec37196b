"""The postern command: -t on good and bad configurations (exit status,
"file:line: message" on stderr), -T (effective configuration, hook chain
of every listener), -V, -s reload|quit|stop|reopen through the pid file,
and postern queue count|list|show ID."""

import os
import re
import subprocess
import unittest

from pstest import BASIC, MODULES, POSTERN, ROOT, PstTestCase, wait_for

# with preamble=False the harness writes TOP, an empty line, then the
# body: the body starts on line 6
TOP = """load_module {modules}/store_spool.so;
load_module {modules}/policy_relay.so;
pid {dir}/postern.pid;
spool_dir {spool};
"""


class ConfigTestTest(PstTestCase):
    """postern -t: every error names the file and line."""

    def check(self, body, rc=1, message=None, line=None, file=None):
        srv = self.server(TOP + body, start=False, preamble=False)
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, rc, r.stderr)
        if rc == 0:
            self.assertIn("configuration file %s test is successful"
                          % srv.conffile, r.stderr)
            return r
        self.assertIn("configuration test failed", r.stderr)
        first = r.stderr.splitlines()[0]
        m = re.match(r"^(/[^:]+):(\d+): (.+)$", first)
        self.assertIsNotNone(m, r.stderr)
        self.assertEqual(m.group(1), file or srv.conffile)
        if line is not None:
            self.assertEqual(int(m.group(2)), line, r.stderr)
        if message is not None:
            self.assertIn(message, m.group(3))
        return r

    def test_good(self):
        r = self.check("""
smtp {
    hostname mx.example.test;
    server {
        listen 127.0.0.1:1;
        local_domains example.test;
    }
}
""", rc=0)
        self.assertEqual(r.stdout, "")

    def test_unknown_directive(self):
        self.check("smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    bogus_directive on;\n  }\n}\n", line=9,
                   message='unknown directive "bogus_directive"')

    def test_missing_semicolon(self):
        self.check("smtp {\n  server {\n    listen 127.0.0.1:1\n  }\n}\n",
                   line=8, message='unexpected "}"')
        # (reported at the directive that lacks its ";", line 8)

    def test_unclosed_block(self):
        self.check("smtp {\n  server {\n    listen 127.0.0.1:1;\n  }\n",
                   line=10, message="unexpected end of file")

    def test_bad_values(self):
        self.check("smtp {\n  message_size_limit 10q;\n"
                   "  server { listen 127.0.0.1:1; }\n}\n", line=7,
                   message='invalid size "10q"')
        self.check("smtp {\n  smtp_bare_newline maybe;\n"
                   "  server { listen 127.0.0.1:1; }\n}\n", line=7,
                   message='invalid value "maybe"')
        self.check("smtp {\n  smtp_command_line_limit 100;\n"
                   "  server { listen 127.0.0.1:1; }\n}\n",
                   message="smtp_command_line_limit must be between 512")
        self.check("smtp {\n  max_recipients 10;\n"
                   "  server { listen 127.0.0.1:1; }\n}\n",
                   message="max_recipients must be at least 100")
        self.check("smtp {\n  server {\n    listen 127.0.0.1:99999;\n"
                   "  }\n}\n", line=8, message="invalid listen address")

    def test_wrong_context_and_duplicates(self):
        self.check("listen 127.0.0.1:1;\n", line=6,
                   message='"listen" directive is not allowed')
        self.check("smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    listen 127.0.0.1:1;\n  }\n}\n", line=9,
                   message="is duplicate")
        self.check("smtp {\n  server {\n    hostname a.test;\n  }\n}\n",
                   line=7, message='without a "listen"')
        self.check("", message="nothing to serve")

    def test_wire_text_limits(self):
        """Text that reaches the wire is checked at -t (issue #17): a
        100 KB banner, CR/LF in the banner, the host name or a reply
        text of a module's directive; the 64-argument limit named."""
        self.check("smtp {\n  smtp_banner \"%s\";\n"
                   "  server { listen 127.0.0.1:1; }\n}\n" % ("x" * 102400),
                   line=7, message='"smtp_banner": the text is 102400 bytes'
                   ' long, the limit is 250')
        self.check("smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    smtp_banner \"hi\\r\\n250 fake\";\n  }\n}\n",
                   line=9, message='"smtp_banner": invalid character "\\r"'
                   ' at byte 3')
        self.check("smtp {\n  hostname \"mx.test\\r\\n\";\n"
                   "  server { listen 127.0.0.1:1; }\n}\n", line=7,
                   message='invalid hostname "mx.test\\r\\n"')
        self.check("smtp {\n  hostname %s.test;\n"
                   "  server { listen 127.0.0.1:1; }\n}\n" % ("a." * 130),
                   line=7, message="at most 255 bytes")
        access = "load_module {modules}/policy_access.so;\n"
        self.check(access + "smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    access_rule mail ~ x reject 550 5.7.1"
                   " \"no\\r\\n250 ok\";\n  }\n}\n", line=10,
                   message='"access_rule": invalid character "\\r" at'
                   ' byte 3')
        self.check(access + "smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    access_rule helo ~ x disconnect \"%s\";\n  }\n}\n"
                   % ("y" * 251), line=10,
                   message='"access_rule": the text is 251 bytes long')
        self.check(access + "smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    access_rule helo ~ x header X-A"
                   " \"v\\r\\nBcc: x@y.test\";\n  }\n}\n", line=10,
                   message='header "X-A": control character (byte 2)')
        self.check("smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                   "    tls_server_names%s;\n  }\n}\n"
                   % "".join(" n%d.test" % i for i in range(65)), line=9,
                   message='"tls_server_names" directive has more than 64'
                   ' arguments, the limit per directive')
        # the limits themselves are fine
        self.check(access + "smtp {\n  smtp_banner \"%s\";\n"
                   "  server {\n    listen 127.0.0.1:1;\n"
                   "    local_domains example.test;\n"
                   "    access_rule helo ~ x reject 550 5.7.1 \"%s\";\n"
                   "    access_rule helo ~ y header X-A \"a\tb\";\n"
                   "  }\n}\n" % ("z" * 250, "w" * 250), rc=0)

    def test_bad_module(self):
        self.check("load_module /nonexistent/mod.so;\n", line=6,
                   message='cannot load module "/nonexistent/mod.so"')

    def test_error_in_included_file(self):
        srv = self.server("", start=False, preamble=False,
                          name="ConfigTestTest_include_probe")
        inc = os.path.join(srv.dir, "conf.d")
        os.makedirs(inc, exist_ok=True)
        with open(os.path.join(inc, "a.conf"), "w") as f:
            f.write("smtp {\n  server {\n    listen 127.0.0.1:1;\n"
                    "    wrong here;\n  }\n}\n")
        self.check("include %s/*.conf;\n" % inc, line=4,
                   file=os.path.join(inc, "a.conf"),
                   message='unknown directive "wrong"')

    def test_t_does_not_need_the_port(self):
        """-t of the running server's own configuration: no bind, ok."""
        srv = self.server(BASIC)
        r = srv.run_tool("-t")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(srv.send(), {})


class DumpTest(PstTestCase):

    def test_T_effective_config_and_hook_chains(self):
        srv = self.server("""
smtp {
    hostname mx.example.test;
    message_size_limit 1m;
    server {
        listen {port};
        local_domains example.test;
    }
    server {
        listen {port2};
        smtp_debug on;
        policy_relay off;
        store_spool off;
    }
}
""", start=False)
        r = srv.run_tool("-T")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("test is successful", r.stderr)
        # the file itself, then the effective values, defaults included
        self.assertIn("# configuration file %s:" % srv.conffile, out)
        self.assertIn("# effective configuration (defaults included)", out)
        # as written (1m, inherited from smtp { }), defaults in the
        # largest exact unit, list directives included
        for line in ("message_size_limit 1m;    # from smtp { }",
                     "smtp_command_line_limit 2k;",
                     "smtp_text_line_limit 64k;", "max_recipients 1000;",
                     "smtp_command_timeout 5m;",
                     "local_domains example.test;",
                     "hostname mx.example.test;    # from smtp { }",
                     "smtp_bare_newline normalize;", "spool_fsync on;",
                     "daemon off;"):
            self.assertIn(line, out)
        # no resolver: reverse lookups are not on
        self.assertNotIn("smtp_reverse_lookup on;", out)
        # one block per listener with its store and hook chain
        l1 = out[out.index("# listener 127.0.0.1:%d " % srv.ports[0]):]
        l2 = out[out.index("# listener 127.0.0.1:%d " % srv.ports[1]):]
        l1 = l1[:l1.index("# listener 127.0.0.1:%d " % srv.ports[1])] \
            if l2 in l1 else l1
        self.assertRegex(l1, r"#   store: store_spool\n")
        # relay control refuses early and accepts last (two hooks)
        self.assertRegex(l1, r"#   rcpt      : policy_relay\(-\d+\) "
                             r"policy_relay\(\d+\)\n")
        self.assertRegex(l2, r"#   store: \(none: DATA is refused\)\n")
        self.assertRegex(l2, r"#   rcpt      : \(core default\)\n")
        self.assertIn("smtp_debug on;", out)
        # the dump is itself a valid configuration
        eff = out[out.index("# effective configuration"):]
        for l in eff.splitlines():
            l = l.split("#", 1)[0].strip()
            self.assertTrue(l == "" or l.endswith((";", "{", "}")), l)

    def test_V(self):
        srv = self.server(BASIC, start=False)
        r = srv.run_tool("-V")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^postern version \d+\.\d+\.\d+ "
                                   r"\(module ABI \d+\.\d+\)\n")
        self.assertIn("built with ", r.stdout)
        self.assertRegex(r.stdout, r"store_spool +\S+ +ABI \d+\.\d+ +%s"
                         % re.escape(os.path.join(MODULES, "store_spool.so")))
        self.assertRegex(r.stdout, r"policy_relay +\S+ +ABI")

    def test_bad_option(self):
        r = subprocess.run([POSTERN, "-Q"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 64)      # EX_USAGE
        self.assertIn('invalid option "-Q"', r.stderr)
        self.assertIn("usage:", r.stderr)
        r = subprocess.run([POSTERN, "-h"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage:", r.stdout)

    def test_bad_option_values(self):
        """An unknown signal name, or an option without its value, is a
        usage error (64) found before any configuration is read: before,
        "-s bogus" read the configuration and exited 1 (or failed on a
        missing file first), and "-c" alone was an "invalid option"."""
        for args, msg in ((["-s", "bogus"], 'invalid signal "bogus"'),
                          (["-c", "/nonexistent", "-s", "relaod"],
                           'invalid signal "relaod"'),
                          (["-c"], 'option "-c" needs a value'),
                          (["-p"], 'option "-p" needs a value'),
                          (["-t", "-s"], 'option "-s" needs a value')):
            r = subprocess.run([POSTERN] + args, capture_output=True,
                               text=True, timeout=10)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertIn(msg, r.stderr)
            self.assertIn("usage:", r.stderr)


class SignalTest(PstTestCase):

    def test_s_reload_reopen_quit(self):
        srv = self.server(BASIC)
        with open(srv.pidfile) as f:
            self.assertEqual(int(f.read()), srv.proc.pid)
        workers = set(srv.workers())
        r = srv.run_tool("-s", "reload")
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.wait_log(r"master: notice: reconfigured")
        wait_for(lambda: len(srv.workers()) == 2
                 and not set(srv.workers()) & workers, 15,
                 what="new workers")

        # reopen: the log moved away, a new one is created and used
        os.rename(srv.logfile, srv.logfile + ".1")
        r = srv.run_tool("-s", "reopen")
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_for(lambda: os.path.exists(srv.logfile), 10, what="new log")
        with open(srv.logfile + ".1") as f:
            self.assertIn("reopening logs", f.read())
        # the workers reopen theirs too (give them a moment)
        def logged():
            srv.send()
            return re.search(r"worker: notice: .* queued", srv.log())
        wait_for(logged, 10, interval=0.3, what="worker logging to new file")

        r = srv.run_tool("-s", "quit")
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.proc.wait(timeout=20)
        self.assertEqual(srv.proc.returncode, 0)
        self.assertFalse(os.path.exists(srv.pidfile))
        # no master any more
        r = srv.run_tool("-s", "reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open pid file", r.stderr)

    def test_s_stop(self):
        srv = self.server(BASIC)
        c = srv.raw()
        c.cmd("EHLO client.test")
        r = srv.run_tool("-s", "stop")
        self.assertEqual(r.returncode, 0, r.stderr)
        srv.proc.wait(timeout=20)
        # a fast stop tells open sessions
        self.assertReply(c.reply(), 421, "4.3.2")
        self.assertTrue(c.closed())
        c.close()
        self.assertFalse(os.path.exists(srv.pidfile))

    def test_s_errors(self):
        srv = self.server(BASIC)
        r = srv.run_tool("-s", "bogus")
        self.assertEqual(r.returncode, 64)      # a usage error (EX_USAGE)
        self.assertIn('invalid signal "bogus"', r.stderr)
        # a stale pid file after kill -9
        srv.kill_all()
        self.assertTrue(os.path.exists(srv.pidfile))
        r = srv.run_tool("-s", "reload")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot signal process", r.stderr)


class QueueToolTest(PstTestCase):

    def test_queue_count_list_show(self):
        # held, so that the relay engine leaves the recipients pending
        srv = self.server(BASIC, extra_top="relay_hold on;")
        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout), (0, "0\n"))
        with srv.raw() as c:
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<one@client.test>")
            c.cmd("RCPT TO:<a@example.test>")
            c.cmd("RCPT TO:<b@example.test>")
            c.cmd("DATA")
            c.send(b"Subject: 1\r\n\r\nx\r\n.\r\n")
            q1 = re.search(r"as (\S+)", c.reply()[1][0]).group(1)
        with srv.raw() as c:
            c.cmd("HELO other.test")
            c.cmd("MAIL FROM:<>")
            c.cmd("RCPT TO:<c@example.test>")
            c.cmd("DATA")
            c.send(b"Subject: 2\r\n\r\ny\r\n.\r\n")
            q2 = re.search(r"as (\S+)", c.reply()[1][0]).group(1)
        srv.stop()       # the tool reads the spool without a server

        r = srv.run_tool("queue", "count")
        self.assertEqual((r.returncode, r.stdout), (0, "2\n"))

        r = srv.run_tool("queue", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        size1 = len(srv.message(q1))
        self.assertRegex(r.stdout, r"(?m)^%s +%d +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +"
                                   r"<one@client\.test>(  held)?\n"
                                   r"    <a@example\.test> pending\n"
                                   r"    <b@example\.test> pending$"
                         % (q1, size1))
        self.assertRegex(r.stdout, r"(?m)^%s +\d+ +[-\d]+ [:\d]+ +<>"
                                   r"(  held)?\n"
                                   r"    <c@example\.test> pending$" % q2)

        r = srv.run_tool("queue", "show", q2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("<c@example.test> pending", r.stdout)
        self.assertIn("client unknown [127.0.0.1] helo other.test "
                      "protocol SMTP", r.stdout)

        # cat: the message as a delivery reads it
        r = subprocess.run([POSTERN, "-p", ROOT + "/", "-c", srv.conffile,
                            "queue", "cat", q1], capture_output=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, srv.message(q1))
        self.assertTrue(r.stdout.endswith(b"Subject: 1\r\n\r\nx\r\n"))

        for bad, msg in (("ABC", "is not a queue ID"),
                         ("0" * 18, "No such file or directory")):
            for cmd in ("show", "cat"):
                r = srv.run_tool("queue", cmd, bad)
                self.assertEqual(r.returncode, 1)
                self.assertIn(msg, r.stderr)
        r = srv.run_tool("queue", "frobnicate")
        self.assertEqual(r.returncode, 64)
        self.assertIn("usage: postern", r.stderr)
        r = srv.run_tool("queue", "show")
        self.assertEqual(r.returncode, 64)


def run(*args, **kw):
    return subprocess.run([POSTERN] + list(args), capture_output=True,
                          text=True, timeout=30, **kw)


class UsageTest(PstTestCase):
    """Every subcommand is in "postern -h", has --help, and refuses an
    option it does not know with its usage and exit status 64."""

    def subcommands(self):
        r = run("-h")
        self.assertEqual(r.returncode, 0, r.stderr)
        subs = set()
        for line in r.stdout.splitlines():
            m = re.match(r"^\s*(?:usage:)?\s*postern (?:\[[^]]*\] )*"
                         r"([a-z]+) ", line)
            if m:
                subs.add(m.group(1))
        return r.stdout, subs

    def test_h_lists_every_subcommand_and_queue_verb(self):
        text, subs = self.subcommands()
        self.assertEqual(subs, {"queue", "status", "passwd"})
        # each queue verb that "queue --help" knows is in -h too
        r = run("queue", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        usage = r.stdout.split("\n\n")[0]
        verbs = re.findall(r"(?:queue|\|) ([a-z]+)", usage)
        for v in ("count", "list", "show", "cat", "flush", "hold",
                  "release", "delete"):
            self.assertIn(v, verbs)
        usage_h = text[text.index("queue count"):]
        for v in verbs:
            self.assertRegex(usage_h, r"\b%s\b" % v)

    def test_help_and_unknown_options(self):
        _, subs = self.subcommands()
        for sub in sorted(subs) + ["queue list", "queue show"]:
            argv = sub.split()
            for h in ("--help", "-h"):
                r = run(*(argv + [h]), input="")
                self.assertEqual(r.returncode, 0, (sub, h, r.stderr))
                self.assertIn("usage: postern", r.stdout, sub)
            r = run(*(argv + ["--no-such-option"]), input="")
            self.assertEqual(r.returncode, 64, (sub, r.stderr))
            self.assertIn("usage: postern", r.stderr, sub)
            self.assertIn("--no-such-option", r.stderr, sub)
        r = run("no-such-command")
        self.assertEqual(r.returncode, 64)
        self.assertIn("usage: postern", r.stderr)

    def test_passwd_help_is_not_a_user(self):
        """"passwd --help" used to make a line for the user "--help"
        (and add it to the users file with -f)."""
        users = os.path.join(ROOT, "objs", "run", "usage_users")
        if os.path.exists(users):
            os.unlink(users)
        for argv in (["--help"], ["-f", users, "--help"],
                     ["-f", users, "-x", "eve"], ["-f", users, "--", "-eve"],
                     ["-m"], ["-f", users, "eve", "extra"]):
            r = run("passwd", *argv, input="secret\n")
            self.assertEqual(r.returncode, 0 if "--help" in argv else 64,
                             (argv, r.stderr))
            self.assertNotIn(":$", r.stdout, argv)
            self.assertFalse(os.path.exists(users), argv)
        r = run("passwd", "-f", users, "--", "eve", input="secret\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(users) as f:
            self.assertRegex(f.read(), r"^eve:\$y\$")
        os.unlink(users)


if __name__ == "__main__":
    unittest.main()
