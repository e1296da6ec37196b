"""The documentation that plugin authors rely on agrees with the code:
the table of the built-in modules' hook priorities in docs/PLUGINS.md
lists, for each module, exactly the priorities its hook table declares
(modules/*.c, macros resolved)."""

import glob
import os
import re
import unittest

from pstest import ROOT

HOOK = re.compile(r"\{\s*PST_PHASE_[A-Z]+\s*,\s*\w+\s*,\s*(-?\w+)\s*\}")
DEFINE = re.compile(r"#define\s+(\w+)\s+\(?\s*(-?\d+)\s*\)?")
ROW = re.compile(r"^\|\s*(-?\d+)\s*\|\s*([^|]+?)\s*\|", re.M)


def declared():
    """module name -> set of hook priorities in its source"""
    out = {}
    for path in glob.glob(os.path.join(ROOT, "modules", "*.c")):
        with open(path) as f:
            src = f.read()
        defs = dict(DEFINE.findall(src))
        prios = set()
        for p in HOOK.findall(src):
            prios.add(int(defs.get(p, p)))
        if prios:
            out[os.path.basename(path)[:-2]] = prios
    return out


def documented():
    """module name -> set of priorities in PLUGINS.md's table"""
    with open(os.path.join(ROOT, "docs", "PLUGINS.md")) as f:
        text = f.read()
    table = text[text.index("| priority | module | phases |"):]
    table = table[:table.index("\n\n")]
    out = {}
    for prio, names in ROW.findall(table):
        for name in re.findall(r"\b(?:policy|auth|filter)_\w+", names):
            out.setdefault(name, set()).add(int(prio))
    return out


class DocsTest(unittest.TestCase):

    def test_hook_priorities_table(self):
        code, doc = declared(), documented()
        hooked = {m: p for m, p in code.items()
                  if m.startswith(("policy_", "auth_", "filter_"))}
        self.assertTrue(hooked, "no hook tables found in modules/")
        self.assertEqual(doc, hooked)


if __name__ == "__main__":
    unittest.main()
