"""The manual pages: postern.conf(5) and postern-modules(7) are what
docs/man/mkman.py makes from docs/CONFIG.md, docs/POLICY.md and
docs/PLUGINS.md, postern.conf(5) names every directive of the C
sources' command tables, and postern(8), postern.conf(5) and
postern-modules(7) format without a warning from man/groff."""

import importlib.util
import os
import re
import subprocess
import unittest

from pstest import ROOT, have

MAN = os.path.join(ROOT, "docs", "man")


def mkman():
    spec = importlib.util.spec_from_file_location(
        "mkman", os.path.join(MAN, "mkman.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ManTest(unittest.TestCase):

    def test_generated_pages_are_current_and_complete(self):
        r = subprocess.run(["python3", os.path.join(MAN, "mkman.py"),
                            "--check"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_sees_an_undocumented_directive(self):
        mod = mkman()
        known = mod.directives()
        self.assertIn("spool_dir", known)
        self.assertIn("greylist_delay", known)        # a module's
        self.assertGreater(len(known), 100)
        mod.directives = lambda: known | {"no_such_directive"}
        self.assertEqual(mod.check(), 1)

    @unittest.skipUnless(have("man"), "man is not installed")
    def test_pages_format_without_warnings(self):
        for page in ("postern.8", "postern.conf.5", "postern-modules.7",
                     "postern-send.1", "postern-sendmail.8"):
            with self.subTest(page=page):
                r = subprocess.run(["man", "-l", "--warnings", "-Tutf8",
                                    os.path.join(MAN, page)],
                                   capture_output=True, text=True,
                                   timeout=60, env=dict(os.environ,
                                                        MANWIDTH="80"))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stderr, "")
                # overstrike bold (X BS X) taken out
                self.assertIn("NAME", re.sub(".\b", "", r.stdout))

    def test_exit_status_lists_every_code(self):
        """Every sysexits code the send programs can return (the EX_
        names in core/send/) has an entry in the EXIT STATUS section of
        postern-send(1) and of postern-sendmail(8), and no other."""
        src = os.path.join(ROOT, "core", "send")
        names = set()
        for f in os.listdir(src):
            with open(os.path.join(src, f)) as fh:
                names |= set(re.findall(r"\bEX_[A-Z]+\b", fh.read()))
        codes = {getattr(os, n) for n in names}
        self.assertTrue({0, 64, 65, 66, 68, 78} <= codes, codes)
        for page in ("postern-send.1", "postern-sendmail.8"):
            with open(os.path.join(MAN, page)) as fh:
                text = fh.read()
            section = text.split("\n.SH EXIT STATUS\n")[1]
            section = section.split("\n.SH ")[0]
            listed = {int(n) for n in re.findall(r"^\.B (\d+)$", section,
                                                 re.M)}
            self.assertEqual(listed, codes, page)


if __name__ == "__main__":
    unittest.main()
