"""`make install` into a scratch root (DESTDIR), laid out as the Debian
package does it (prefix /usr, /etc, /var, /run), and the installed tree
used as installed: every installed configuration passes `postern -t`
with the installed binary, the installed server starts, takes mail,
reloads and stops while telling a test-owned NOTIFY_SOCKET what systemd
would hear (sd_notify without systemd), a plugin builds against the
installed header with pkg-config and loads, and the systemd unit passes
`systemd-analyze verify` when that tool exists.

The installed configurations name absolute paths (/etc/postern,
/usr/lib/postern/modules, ...): the test rewrites them into DESTDIR, and
`user postern` to an account that exists when the package's account
does not (the package creates it, make install does not)."""

import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import unittest

from pstest import OBJS, ROOT, free_port, have, stop_process, wait_for

DIRS = ("prefix=/usr", "sysconfdir=/etc", "localstatedir=/var",
        "runstatedir=/run")
# installed path -> where it is under DESTDIR (longest first)
REWRITE = ("/usr/lib/postern", "/etc/postern", "/var/spool/postern",
           "/var/log/postern", "/run/postern")


def make_install(dest, *extra):
    shutil.rmtree(dest, ignore_errors=True)
    r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest]
                       + list(DIRS) + list(extra), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError("make install failed:\n" + r.stdout + r.stderr)
    return r


def run_account():
    try:
        pwd.getpwnam("postern")
        return "postern"
    except KeyError:
        return "nobody"


class InstallTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dest = os.path.join(OBJS, "run", "install", "root")
        make_install(cls.dest)
        cls.sbin = cls.dest + "/usr/sbin/postern"
        cls.conf = cls.dest + "/etc/postern"

    def path(self, p):
        return os.path.join(self.dest, p.lstrip("/"))

    def rewrite(self, text):
        """Installed paths in text moved into DESTDIR."""
        for d in REWRITE:
            text = re.sub(r"(?<![\w/])" + re.escape(d), self.dest + d, text)
        return text

    def localize(self, name, text=None):
        """The installed configuration name, its paths moved into
        DESTDIR, written into a copy of the configuration directory
        (includes are relative to the file); the installed one stays."""
        if text is None:
            with open(os.path.join(self.conf, name)) as fh:
                text = fh.read()
        local = self.dest + "/etc/postern-local"
        if not os.path.isdir(local):
            shutil.copytree(self.conf, local)
        f = os.path.join(local, name)
        text = self.rewrite(text)
        text = text.replace("\nuser postern;", "\nuser %s;" % run_account())
        with open(f, "w") as fh:
            fh.write(text)
        return f

    def installed_configs(self):
        return sorted(n for n in os.listdir(self.conf)
                      if n.endswith(".conf") or n.endswith(".conf.example"))

    def test_fhs_layout(self):
        mods = sorted(f for f in os.listdir(os.path.join(OBJS, "modules"))
                      if f.endswith(".so"))
        self.assertIn("store_spool.so", mods)
        want = ["usr/sbin/postern", "usr/sbin/postern-sendmail",
                "usr/bin/postern-send",
                "etc/postern/postern.conf", "etc/postern/policy/access.rules",
                "etc/postern/policy/example.test.users",
                "etc/postern/gateway.conf.example",
                "etc/postern/submission.conf.example",
                "etc/postern/tls/cert.pem", "etc/postern/tls/key.pem",
                "usr/include/postern/module.h", "usr/lib/pkgconfig/postern.pc",
                "usr/share/man/man8/postern.8",
                "usr/share/man/man5/postern.conf.5",
                "usr/share/man/man7/postern-modules.7",
                "usr/share/man/man1/postern-send.1",
                "usr/share/man/man8/postern-sendmail.8",
                "usr/lib/systemd/system/postern.service",
                "usr/lib/tmpfiles.d/postern.conf", "etc/logrotate.d/postern",
                "var/spool/postern", "run/postern"]
        want += ["usr/lib/postern/modules/" + m for m in mods]
        for f in want:
            self.assertTrue(os.path.exists(self.path(f)), f)
        # the key is the master's alone; a plugin file must not be
        # writable by others (the loader refuses it)
        self.assertEqual(os.stat(self.path("etc/postern/tls/key.pem"))
                         .st_mode & 0o077, 0)
        self.assertEqual(os.stat(self.path("usr/lib/postern/modules/"
                                           "store_spool.so")).st_mode
                         & 0o022, 0)

    def test_nothing_points_into_the_build_tree(self):
        texts = ["usr/lib/pkgconfig/postern.pc", "etc/logrotate.d/postern",
                 "usr/lib/systemd/system/postern.service",
                 "usr/lib/tmpfiles.d/postern.conf"]
        texts += ["etc/postern/" + n for n in self.installed_configs()]
        for f in texts:
            with open(self.path(f)) as fh:
                text = fh.read()
            self.assertNotRegex(text, r"@[a-z_]+@", f)
            self.assertNotRegex(text, r"(?m)^[^#]*\bobjs/", f)
            self.assertNotIn(ROOT, text, f)

    def test_every_installed_config_passes_t(self):
        names = self.installed_configs()
        self.assertGreaterEqual(len(names), 3, names)
        for name in names:
            with self.subTest(conf=name):
                f = self.localize(name)
                r = subprocess.run([self.sbin, "-t", "-c", f],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, name + ": " + r.stderr)
                self.assertIn("test is successful", r.stderr)

    def test_installed_binary_defaults_to_installed_paths(self):
        r = subprocess.run([self.sbin, "-V"], capture_output=True, text=True,
                           timeout=30)
        self.assertIn("configuration ", r.stdout)
        h = subprocess.run([self.sbin, "-h"], capture_output=True, text=True,
                           timeout=30)
        self.assertIn("PREFIX/conf/postern.conf", h.stdout + h.stderr)

    def test_installed_injector_reads_the_servers_configuration(self):
        """postern-sendmail as installed, without -C or $POSTERN_CONF,
        looks for the configuration the installed server reads by
        default (postern -V), not one under the build tree's layout."""
        v = subprocess.run([self.sbin, "-V"], capture_output=True,
                           text=True, timeout=30)
        path = re.search(r"paths: configuration (\S+),",
                         v.stdout + v.stderr).group(1)
        if os.path.exists(path):
            self.skipTest("%s exists on this machine" % path)
        env = {k: x for k, x in os.environ.items()
               if k not in ("POSTERN_CONF", "POSTERN_SERVER")}
        r = subprocess.run([self.path("usr/sbin/postern-sendmail"),
                            "b@example.test"], input="Subject: x\n\nx\n",
                           env=env, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 78, r.stderr)
        self.assertIn(path + ": No such file", r.stderr)

    def test_pkg_config_plugin_builds_and_loads(self):
        env = dict(os.environ,
                   PKG_CONFIG_PATH=self.path("usr/lib/pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.dest)
        cflags = subprocess.run(["pkg-config", "--cflags", "postern"],
                                env=env, capture_output=True, text=True,
                                check=True, timeout=30).stdout.split()
        self.assertEqual(cflags, ["-I" + self.path("usr/include")])
        moddir = subprocess.run(["pkg-config", "--variable=moduledir",
                                 "postern"], env=env, capture_output=True,
                                text=True, check=True, timeout=30)
        # pkgconf puts the sysroot in front of variables too
        self.assertIn(moddir.stdout.strip(), ("/usr/lib/postern/modules",
                      self.path("usr/lib/postern/modules")))

        # an outside plugin: a copy of plugins/hello.c, nothing else from
        # the source tree
        work = os.path.join(OBJS, "run", "install", "plugin")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        shutil.copy(os.path.join(ROOT, "plugins", "hello.c"), work)
        so = os.path.join(work, "hello.so")
        subprocess.run(["cc", "-O2", "-Wall", "-fPIC", "-shared",
                        "-fvisibility=hidden"] + cflags
                       + ["-o", so, os.path.join(work, "hello.c")],
                       check=True, capture_output=True, timeout=120)
        with open(os.path.join(self.conf, "postern.conf")) as fh:
            text = fh.read()
        text = text.replace("load_module ", "load_module %s;\nload_module "
                            % so, 1)
        text = text.replace("local_domains localhost;",
                            "local_domains localhost;\n"
                            "        hello_header X-Hello installed;")
        f = self.localize("plugin.conf", text)
        r = subprocess.run([self.sbin, "-T", "-c", f], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("hello(0)", r.stdout)

    def test_plugins_build_from_the_staged_root(self):
        """plugins/README's way for a make install DESTDIR=... tree:
        make -C plugins with PKG_CONFIG_SYSROOT_DIR (postern.pc names the
        final paths) and PKG_CONFIG_PATH into the root.  Every example
        builds against the staged header; where pkg-config finds no
        postern.pc the Makefile stops and says what to set, instead of a
        compiler error about a missing header."""
        for doc in ("plugins/README", "plugins/Makefile"):
            with open(os.path.join(ROOT, doc)) as fh:
                text = fh.read()
            self.assertIn("PKG_CONFIG_SYSROOT_DIR=/tmp/root", text, doc)
            self.assertIn("DESTDIR=/tmp/root", text, doc)
        out = os.path.join(OBJS, "run", "install", "plugins")
        shutil.rmtree(out, ignore_errors=True)
        env = dict(os.environ,
                   PKG_CONFIG_PATH=self.path("usr/lib/pkgconfig"),
                   PKG_CONFIG_SYSROOT_DIR=self.dest)
        env.pop("POSTERN_CFLAGS", None)
        r = subprocess.run(["make", "-C", os.path.join(ROOT, "plugins"),
                            "OUT=" + out], env=env, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("-I" + self.path("usr/include") + " ", r.stdout)
        for p in ("hello", "tarpit", "subject_filter", "dnsbl_async",
                  "webhook", "route_by_header"):
            self.assertTrue(os.path.exists(os.path.join(out, p + ".so")), p)

        empty = os.path.join(OBJS, "run", "install", "no-pc")
        os.makedirs(empty, exist_ok=True)
        env = dict(env, PKG_CONFIG_PATH="", PKG_CONFIG_LIBDIR=empty)
        r = subprocess.run(["make", "-C", os.path.join(ROOT, "plugins"),
                            "OUT=" + out + "-none"], env=env,
                           capture_output=True, text=True, timeout=300)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("does not find postern.pc", r.stderr)
        self.assertIn("PKG_CONFIG_SYSROOT_DIR", r.stderr)
        self.assertFalse(os.path.exists(out + "-none"))

    EXAMPLES = ("hello", "tarpit", "subject_filter", "dnsbl_async",
                "webhook", "route_by_header")

    def newcomer_env(self):
        return dict(os.environ,
                    PKG_CONFIG_PATH=self.path("usr/lib/pkgconfig"),
                    PKG_CONFIG_SYSROOT_DIR=self.dest)

    def pkg(self, *args):
        return subprocess.run(["pkg-config"] + list(args),
                              env=self.newcomer_env(), capture_output=True,
                              text=True, check=True, timeout=30).stdout.split()

    def test_newcomer_builds_tests_and_loads_every_example(self):
        """Issue #11's "done when": with only what make install DESTDIR
        wrote (and the example sources, as a newcomer copies them), each
        example builds with cc $(pkg-config --cflags --libs postern), the
        ones with a test_NAME.c pass it against the installed harness
        (pkg-config postern-test), and the installed server loads them
        all and takes mail through them."""
        for f in ("usr/include/postern/test.h", "usr/lib/libpostern-test.a",
                  "usr/lib/pkgconfig/postern-test.pc"):
            self.assertTrue(os.path.exists(self.path(f)), f)
        work = os.path.join(OBJS, "run", "install", "newcomer")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        flags = self.pkg("--cflags", "--libs", "postern")
        tflags = self.pkg("--cflags", "--libs", "postern-test", "check")
        self.assertIn("-L" + self.path("usr/lib"), tflags)
        for name in self.EXAMPLES:
            shutil.copy(os.path.join(ROOT, "plugins", name + ".c"), work)
            extra = (self.pkg("--cflags", "--libs", "libpcre2-8")
                     if name == "subject_filter" else [])
            so = os.path.join(work, name + ".so")
            r = subprocess.run(["cc", "-Wall", "-Werror", "-fPIC", "-shared",
                                "-fvisibility=hidden", "-o", so,
                                os.path.join(work, name + ".c")]
                               + flags + extra, capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 0, name + ": " + r.stderr)
            test = os.path.join(ROOT, "plugins", "test_%s.c" % name)
            if not os.path.exists(test):
                continue
            shutil.copy(test, work)
            exe = os.path.join(work, "test_" + name)
            r = subprocess.run(["cc", "-Wall", "-Werror",
                                '-DPLUGIN_SO="%s"' % so, "-o", exe,
                                os.path.join(work, "test_%s.c" % name)]
                               + tflags, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, name + ": " + r.stderr)
            r = subprocess.run([exe], cwd=work, capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 0, name + ": " + r.stdout
                             + r.stderr)
            self.assertIn("100%: Checks: ", r.stdout + r.stderr)

        # the tutorial of docs/PLUGINS.md, as written there
        with open(os.path.join(ROOT, "docs", "PLUGINS.md")) as fh:
            doc = fh.read()
        for name in ("noreply.c", "test_noreply.c"):
            code = re.search(r"```c\n   /\* %s \*/\n(.*?)\n   ```"
                             % re.escape(name), doc, re.S).group(1)
            with open(os.path.join(work, name), "w") as fh:
                fh.write("\n".join(l[3:] for l in code.split("\n")) + "\n")
        for cmd in (["cc", "-Wall", "-Werror", "-fPIC", "-shared",
                     "-fvisibility=hidden", "-o", "noreply.so", "noreply.c"]
                    + flags,
                    ["cc", "-Wall", "-Werror", "-o", "test_noreply",
                     "test_noreply.c"] + tflags, ["./test_noreply"]):
            r = subprocess.run(cmd, cwd=work, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(r.returncode, 0, "tutorial: %s: %s" % (
                cmd[-1], r.stdout + r.stderr))

        loads = "".join("load_module %s/%s.so;\n" % (work, n)
                        for n in self.EXAMPLES)
        p, port, ns = self.start_notified(
            "newcomer", os.path.join(OBJS, "run", "install", "nc.sock"),
            "\nuser ", "\n" + loads + "webhook_url http://127.0.0.1:9/;\n"
            "route_by_header X-Route bulk example.invalid;\nuser ",
            "local_domains localhost example.test;",
            "local_domains localhost example.test;\n"
            "        hello_header X-Hello newcomer;\n"
            "        tarpit_delay 50ms;\n"
            "        subject_reject \"(?i)spam\";")
        self.assertEqual(ns.recv(4096), b"READY=1")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("a@client.test", ["user@example.test"],
                       b"Subject: hello\r\n\r\nhi\r\n")
            with self.assertRaises(smtplib.SMTPDataError) as e:
                c.sendmail("a@client.test", ["user@example.test"],
                           b"Subject: SPAM\r\n\r\nhi\r\n")
            self.assertEqual(e.exception.smtp_code, 550)
        queue = self.path("var/spool/postern/queue")

        def hello_queued():
            for d, _, files in os.walk(queue):
                for f in files:
                    with open(os.path.join(d, f), "rb") as fh:
                        if b"X-Hello:+20newcomer" in fh.read():
                            return True
            return False
        wait_for(hello_queued, 10, what="the message with hello's header")
        p.send_signal(signal.SIGQUIT)
        self.assertEqual(p.wait(timeout=30), 0)

    @unittest.skipUnless(have("logrotate"), "logrotate is not installed")
    def test_logrotate_file_rotates_and_server_reopens(self):
        """The installed logrotate file, its paths in DESTDIR, forced on
        a server that logs to a file: the log is rotated and the
        postrotate "postern -s reopen" makes the server write a new one."""
        logdir = self.path("var/log/postern")
        for f in os.listdir(logdir):
            os.unlink(os.path.join(logdir, f))
        p, port, ns = self.start_notified(
            "logrotate", os.path.join(OBJS, "run", "install", "lr.sock"),
            "error_log stderr notice;",
            "error_log /var/log/postern/postern.log notice;")
        self.assertEqual(ns.recv(4096), b"READY=1")
        log = os.path.join(logdir, "postern.log")
        wait_for(lambda: os.path.getsize(log) > 0, 10, what="log written")

        with open(self.path("etc/logrotate.d/postern")) as fh:
            text = self.rewrite(fh.read())
        conf = self.dest + "/etc/postern-local/logrotate.rules"
        text = text.replace("/usr/sbin/postern -s reopen", "%s -c %s -s reopen"
                            % (self.sbin, self.localized("logrotate.conf")))
        with open(conf, "w") as fh:
            fh.write(text)
        r = subprocess.run(["logrotate", "-f", "--state",
                            os.path.join(logdir, "..", "lr.state"), conf],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(log + ".1"))
        wait_for(lambda: os.path.exists(log), 10,
                 what="a new log file made by the reopen")
        with open(log + ".1") as fh:
            self.assertIn("reopening logs", fh.read())
        # a worker's line (queued) lands in the new file: it reopened too
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("a@client.test", ["user@example.test"],
                       b"Subject: rotated\r\n\r\nhi\r\n")
        wait_for(lambda: " queued " in open(log).read(), 10,
                 what="the worker's queued line in the new log")
        p.send_signal(signal.SIGQUIT)
        self.assertEqual(p.wait(timeout=30), 0)

    @unittest.skipUnless(have("systemd-tmpfiles"), "no systemd-tmpfiles")
    def test_tmpfiles_makes_the_run_directory(self):
        root = os.path.join(OBJS, "run", "install", "tmpfiles-root")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        r = subprocess.run(["systemd-tmpfiles", "--root=" + root, "--create",
                            self.path("usr/lib/tmpfiles.d/postern.conf")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertTrue(os.path.isdir(os.path.join(root, "run", "postern")))

    def localized(self, name):
        return os.path.join(self.dest, "etc", "postern-local", name)

    def start_notified(self, name, notify_addr, *replace):
        """The installed server on a free port, as systemd starts it
        (postern -f), NOTIFY_SOCKET naming a datagram socket of ours.
        Returns the process, the port and the socket."""
        port = free_port()
        with open(os.path.join(self.conf, "postern.conf")) as fh:
            text = fh.read()
        text = text.replace("listen 25;", "listen 127.0.0.1:%d;" % port)
        text = text.replace("local_domains localhost;",
                            "local_domains localhost example.test;")
        text = text.replace("worker_processes auto;", "worker_processes 1;")
        for a, b in zip(replace[0::2], replace[1::2]):
            self.assertIn(a, text)
            text = text.replace(a, b)
        f = self.localize(name + ".conf", text)

        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if notify_addr.startswith("@"):
            ns.bind("\0" + notify_addr[1:])
        else:
            if os.path.exists(notify_addr):
                os.unlink(notify_addr)
            ns.bind(notify_addr)
        ns.settimeout(20)
        self.addCleanup(ns.close)

        env = dict(os.environ, NOTIFY_SOCKET=notify_addr)
        log = open(os.path.join(OBJS, "run", "install", name + ".log"), "w")
        self.addCleanup(log.close)
        p = subprocess.Popen([self.sbin, "-f", "-c", f], env=env,
                             stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(stop_process, p)
        return p, port, ns

    def test_installed_server_notifies_systemd(self):
        """READY=1 once it serves, RELOADING=1 then READY=1 around a
        HUP, STOPPING=1 at QUIT: what Type=notify waits for."""
        p, port, ns = self.start_notified(
            "notify", os.path.join(OBJS, "run", "install", "notify.sock"))

        def next_state():
            return ns.recv(4096).decode()

        self.assertEqual(next_state(), "READY=1")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.sendmail("a@client.test", ["user@example.test"],
                       b"Subject: installed\r\n\r\nhi\r\n")
        queue = self.path("var/spool/postern/queue")
        wait_for(lambda: any(files for _, _, files in os.walk(queue)), 10,
                 what="message in the installed spool")

        p.send_signal(signal.SIGHUP)
        msg = next_state()
        self.assertRegex(msg, r"^RELOADING=1\nMONOTONIC_USEC=\d+$")
        self.assertEqual(next_state(), "READY=1")

        p.send_signal(signal.SIGQUIT)
        self.assertEqual(next_state(), "STOPPING=1")
        self.assertEqual(p.wait(timeout=30), 0)

    def test_notify_abstract_socket_and_fast_stop(self):
        """An abstract NOTIFY_SOCKET (@name, as systemd may pass) and
        STOPPING=1 on TERM too."""
        p, port, ns = self.start_notified(
            "notify_abstract", "@postern-test-notify-%d" % os.getpid())
        self.assertEqual(ns.recv(4096), b"READY=1")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(ns.recv(4096), b"STOPPING=1")
        p.wait(timeout=30)

    @unittest.skipUnless(have("systemd-analyze"), "no systemd-analyze")
    def test_systemd_unit_verifies(self):
        """The unit as installed, its ExecStart pointing into DESTDIR
        (verify checks that the binary exists)."""
        unit = self.path("usr/lib/systemd/system/postern.service")
        work = os.path.join(OBJS, "run", "install", "unit")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work)
        with open(unit) as fh:
            text = fh.read()
        self.assertIn("Type=notify", text)
        self.assertIn("KillSignal=SIGQUIT", text)
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", text)
        text = text.replace("/usr/sbin/postern", self.sbin)
        copy = os.path.join(work, "postern.service")
        with open(copy, "w") as fh:
            fh.write(text)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", copy],
                           capture_output=True, text=True, timeout=60)
        out = "\n".join(line for line in (r.stdout + r.stderr).splitlines()
                        if "postern.service" in line)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(out, "", out)


class ReinstallTest(unittest.TestCase):
    """Installing again never overwrites the administrator's files; a
    package build (NO_CERT=1) carries no private key."""

    def test_reinstall_keeps_edited_config_and_key(self):
        dest = os.path.join(OBJS, "run", "install", "again")
        make_install(dest)
        conf = dest + "/etc/postern/postern.conf"
        with open(conf, "a") as fh:
            fh.write("# edited by the administrator\n")
        with open(dest + "/etc/postern/tls/key.pem", "rb") as fh:
            key = fh.read()
        r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest]
                           + list(DIRS), cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(conf) as fh:
            self.assertIn("edited by the administrator", fh.read())
        self.assertTrue(os.path.exists(conf + ".new"))
        with open(dest + "/etc/postern/tls/key.pem", "rb") as fh:
            self.assertEqual(fh.read(), key)

    def test_no_cert_for_packages(self):
        dest = os.path.join(OBJS, "run", "install", "nocert")
        make_install(dest, "NO_CERT=1")
        self.assertFalse(os.path.exists(dest + "/etc/postern/tls/key.pem"))
        self.assertTrue(os.path.exists(dest + "/etc/postern/postern.conf"))

    def test_maildrop_group_in_config_and_mode(self):
        # the default install names no group (only root and the run
        # account reach the maildrop); MAILDROP_GROUP names it in
        # postern.conf and makes postern-sendmail setgid to it, unless
        # NO_SETGID (a package's postinst sets the mode)
        dest = os.path.join(OBJS, "run", "install", "maildrop")
        make_install(dest)
        with open(dest + "/etc/postern/postern.conf") as fh:
            self.assertIn("\n# maildrop_group GROUP;\n", fh.read())
        group = grp.getgrgid(os.getegid()).gr_name
        for extra, mode in ((("NO_SETGID=1",), 0o755), ((), 0o2755)):
            if mode & 0o2000 and os.geteuid() != 0:
                continue                # chgrp to a group of one's own
            make_install(dest, "MAILDROP_GROUP=" + group, *extra)
            with open(dest + "/etc/postern/postern.conf") as fh:
                self.assertIn("\nmaildrop_group %s;\n" % group, fh.read())
            st = os.stat(dest + "/usr/sbin/postern-sendmail")
            self.assertEqual(stat.S_IMODE(st.st_mode), mode, extra)
            self.assertEqual(st.st_gid, os.getegid())


if __name__ == "__main__":
    unittest.main()
