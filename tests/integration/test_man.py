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
        for page in ("postern.8", "postern.conf.5", "postern-modules.7"):
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


if __name__ == "__main__":
    unittest.main()
