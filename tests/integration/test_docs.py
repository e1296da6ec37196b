"""The documentation that plugin authors rely on agrees with the code:
the table of the built-in modules' hook priorities in docs/PLUGINS.md
lists, for each module, exactly the priorities and phases its hook
table declares (modules/*.c, macros resolved); and every function the public header
declares has its line in docs/PLUGINS.md's function reference.  The API reference that Doxygen
makes from the two public headers (make apidoc, docs/Doxyfile) builds
without a warning: every function, type, member and macro documented,
and the check does fail on an undocumented function; it opens on a
landing page with every section in its place."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from pstest import OBJS, ROOT

HOOK = re.compile(r"\{\s*PST_PHASE_([A-Z]+)\s*,\s*\w+\s*,\s*(-?\w+)\s*\}")
DEFINE = re.compile(r"#define\s+(\w+)\s+\(?\s*(-?\d+)\s*\)?")
ROW = re.compile(r"^\|\s*(-?\d+)\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|",
                 re.M)
# the table's words for the phases
PHASES = {"connect": "CONNECT", "helo": "HELO", "auth": "AUTH",
          "mail": "MAIL", "rcpt": "RCPT", "data": "DATA",
          "end of data": "MESSAGE", "queue": "QUEUE",
          "disconnect": "DISCONNECT", "committed": "COMMITTED",
          "unknown command": "UNKNOWN"}


def declared():
    """module name -> set of (priority, phase) of its hook table"""
    out = {}
    for path in glob.glob(os.path.join(ROOT, "modules", "*.c")):
        with open(path) as f:
            src = f.read()
        defs = dict(DEFINE.findall(src))
        hooks = {(int(defs.get(p, p)), phase)
                 for phase, p in HOOK.findall(src)}
        if hooks:
            out[os.path.basename(path)[:-2]] = hooks
    return out


def documented():
    """module name -> set of (priority, phase) in PLUGINS.md's table"""
    with open(os.path.join(ROOT, "docs", "PLUGINS.md")) as f:
        text = f.read()
    table = text[text.index("| priority | module | phases |"):]
    table = table[:table.index("\n\n")]
    out = {}
    for prio, names, phases in ROW.findall(table):
        phases = re.sub(r"\(.*?\)", "", phases)
        hooks = {(int(prio), PHASES.get(w.strip().lower(), w.strip()))
                 for w in phases.split(",")}
        for name in re.findall(r"\b[a-z]+_[a-z_]+", names):
            out.setdefault(name, set()).update(hooks)
    return out


DECL = re.compile(r"^(?!typedef|#|\s|\*|/)[^;{}()]*?\b(pst_[a-z0-9_]+)\s*\(",
                  re.M)


class DocsTest(unittest.TestCase):

    maxDiff = None

    def test_function_reference_is_complete(self):
        """Every function of postern_module.h has a row in PLUGINS.md's
        "Function reference" (what, memory, where, blocks: five filled
        cells), and every function the reference names is in the
        header."""
        with open(os.path.join(ROOT, "core", "postern_module.h")) as f:
            header = set(DECL.findall(f.read()))
        self.assertGreater(len(header), 100)
        with open(os.path.join(ROOT, "docs", "PLUGINS.md")) as f:
            doc = f.read()
        ref = doc[doc.index("\n## Function reference\n"):]
        ref = ref[:ref.index("\n## ", 1)]
        listed, bad = set(), []
        for row in re.findall(r"(?m)^\| `pst_.*$", ref):
            cells = [c.strip() for c in row.strip().strip("|").split(" | ")]
            if len(cells) != 5 or not all(cells):
                bad.append(row)
            listed |= set(re.findall(r"`(pst_[a-z0-9_]+)", cells[0]))
        self.assertEqual(bad, [], "rows without what/memory/where/blocks")
        self.assertEqual(sorted(header - listed), [], "not in the reference")
        self.assertEqual(sorted(listed - header), [], "not in the header")

    def test_harness_reference_is_complete(self):
        """Every function of postern/test.h (tests/harness/postern_test.h)
        is named in PLUGINS.md's "Testing a plugin" table, and nothing
        else is."""
        with open(os.path.join(ROOT, "tests", "harness",
                               "postern_test.h")) as f:
            header = set(re.findall(r"\b(pst_test_[a-z_]+)\(", f.read()))
        self.assertGreater(len(header), 20)
        with open(os.path.join(ROOT, "docs", "PLUGINS.md")) as f:
            doc = f.read()
        ref = doc[doc.index("\n## Testing a plugin (postern/test.h)\n"):]
        ref = ref[:ref.index("\n## ", 1)]
        listed = set()
        for row in re.findall(r"(?m)^\| `pst_test_.*$", ref):
            listed |= set(re.findall(r"`(pst_test_[a-z_]+)\(",
                                     row.split(" | ")[0]))
            listed |= set(re.findall(r", `(pst_test_[a-z_]+)\(",
                                     row.split(" | ")[0]))
        self.assertEqual(sorted(header - listed), [], "not in the table")
        self.assertEqual(sorted(listed - header), [], "not in the header")

    def test_hook_priorities_table(self):
        """Every module with hooks has its rows, each with the phases
        that its hook table gives that priority."""
        code, doc = declared(), documented()
        self.assertIn("policy_relay", code, "no hook tables in modules/")
        self.assertEqual(doc, code)



def doxygen(*overrides):
    """docs/Doxyfile with overrides ("NAME = value"), run from the top of
    the tree; its exit status and what it printed"""
    with open(os.path.join(ROOT, "docs", "Doxyfile")) as f:
        conf = f.read() + "\n" + "\n".join(overrides) + "\n"
    r = subprocess.run(["doxygen", "-"], input=conf, cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


class ApiDocTest(unittest.TestCase):
    """The generated reference cannot rot: Doxygen is a required tool
    (.ci/deps.sh), as abidiff is for make abi-check."""

    def setUp(self):
        self.assertIsNotNone(shutil.which("doxygen"),
                             "doxygen not found (apt-get install doxygen)")

    def test_make_apidoc(self):
        """make apidoc writes the HTML reference with no warning, a page
        per section of the headers, and every function of both headers
        documented in it."""
        r = subprocess.run(["make", "-s", "apidoc"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertNotIn("warning", out)
        self.assertNotIn("error", out)
        html = os.path.join(OBJS, "apidoc", "html")
        self.assertTrue(os.path.exists(os.path.join(html, "index.html")))
        pages = ""
        for page in glob.glob(os.path.join(html, "group__*.html")):
            with open(page) as f:
                pages += f.read()
        for name in ("hooks", "session", "abi12_redis", "harness"):
            self.assertTrue(os.path.exists(os.path.join(
                html, "group__%s.html" % name.replace("_", "__"))), name)
        for hdr in (("core", "postern_module.h"),
                    ("tests", "harness", "postern_test.h")):
            with open(os.path.join(ROOT, *hdr)) as f:
                funcs = set(DECL.findall(f.read()))
            self.assertGreater(len(funcs), 20, hdr)
            # each function's own entry: <td class="memname">TYPE NAME </td>
            missing = [fn for fn in sorted(funcs)
                       if not re.search(r'memname">[^\n]*\b%s </td>' % fn,
                                        pages)]
            self.assertEqual(missing, [], "not in the reference")

    def test_landing_page(self):
        """The reference opens on a page for a plugin author (docs/
        apidoc.dox): it links the tutorial (PLUGINS.md, a page of the
        reference), the descriptor, the verdicts and the harness; every
        section of the headers has its place in apidoc.dox, and the list
        of sections follows that order."""
        r = subprocess.run(["make", "-s", "apidoc"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        html = os.path.join(OBJS, "apidoc", "html")
        with open(os.path.join(html, "index.html")) as f:
            index = f.read()
        for page in ("md_docs_PLUGINS", "group__descriptor", "group__hooks",
                     "group__harness"):
            self.assertIn('href="%s.html' % page, index)
        self.assertIn(">pst_verdict_e</a>", index)
        self.assertTrue(os.path.exists(os.path.join(html,
                                                    "md_docs_PLUGINS.html")))
        groups = set()
        for hdr in (("core", "postern_module.h"),
                    ("tests", "harness", "postern_test.h")):
            with open(os.path.join(ROOT, *hdr)) as f:
                groups |= set(re.findall(r"@defgroup (\w+)", f.read()))
        with open(os.path.join(ROOT, "docs", "apidoc.dox")) as f:
            order = re.findall(r"@defgroup (\w+)", f.read())
        self.assertEqual(sorted(groups - set(order)), [],
                         "sections without a place in docs/apidoc.dox")
        with open(os.path.join(html, "modules.html")) as f:
            modules = f.read()
        where = [modules.find('href="group__%s.html"'
                             % g.replace("_", "__")) for g in order]
        self.assertNotIn(-1, where, order)
        self.assertEqual(where, sorted(where))

    def test_undocumented_function_fails(self):
        """A function added to the header without a doc comment makes
        the generation fail, naming it."""
        with open(os.path.join(ROOT, "core", "postern_module.h")) as f:
            text = f.read()
        end = text.rindex("/** @} */")
        with tempfile.TemporaryDirectory(dir=OBJS) as tmp:
            hdr = os.path.join(tmp, "postern_module.h")
            with open(hdr, "w") as f:
                f.write(text[:end] + "int pst_probe_undocumented(void);\n"
                        + text[end:])
            rc, out = doxygen("INPUT = " + hdr, "OUTPUT_DIRECTORY = " + tmp)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("pst_probe_undocumented", out)
        self.assertIn("is not documented", out)


if __name__ == "__main__":
    unittest.main()
