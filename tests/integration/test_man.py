"""The manual pages: postern.conf(5) is what docs/man/mkconf5.py makes
from docs/CONFIG.md and docs/POLICY.md and names every directive of the
C sources' command tables; postern(8) and postern.conf(5) format
without a warning from man/groff."""

import importlib.util
import os
import re
import subprocess
import unittest

from pstest import ROOT, have

MAN = os.path.join(ROOT, "docs", "man")


def mkconf5():
    spec = importlib.util.spec_from_file_location(
        "mkconf5", os.path.join(MAN, "mkconf5.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class ManTest(unittest.TestCase):

    def test_conf5_is_current_and_complete(self):
        r = subprocess.run(["python3", os.path.join(MAN, "mkconf5.py"),
                            "--check"], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_check_sees_an_undocumented_directive(self):
        mod = mkconf5()
        known = mod.directives()
        self.assertIn("spool_dir", known)
        self.assertIn("greylist_delay", known)        # a module's
        self.assertGreater(len(known), 100)
        mod.directives = lambda: known | {"no_such_directive"}
        self.assertEqual(mod.check(), 1)

    @unittest.skipUnless(have("man"), "man is not installed")
    def test_pages_format_without_warnings(self):
        for page in ("postern.8", "postern.conf.5"):
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
