#!/usr/bin/python3
"""Run Postern's integration tests (tests/integration/test_*.py).

    run.py [-k PATTERN] [-j N] [-v]

Each test file runs in its own process, up to N at a time (default 2),
so a slow file does not hold up the others and one crash does not end
the run.  Exit status 0 when every test passed.
"""

import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PER_FILE_TIMEOUT = 600

# a file's process: unittest's own command line, whose result also
# writes one line per skipped test with its reason, so that a run says
# which tests did not run and why (a peer not installed, not root ...)
CHILD = """
import unittest
class Result(unittest.TextTestResult):
    def printErrors(self):
        super().printErrors()
        for test, why in self.skipped:
            self.stream.writeln("SKIPPED %s: %s" % (test.id(), why))
class Runner(unittest.TextTestRunner):
    resultclass = Result
unittest.main(module=None, testRunner=Runner)
"""


def skipped(out):
    """The reasons of the skipped tests in a file's output, each with
    how many tests it skipped, in order of appearance."""
    reasons = {}
    for line in out.splitlines():
        if line.startswith("SKIPPED "):
            why = line.split(": ", 1)[-1]
            reasons[why] = reasons.get(why, 0) + 1
    return reasons


def run_file(path, pattern, verbose):
    cmd = [sys.executable, "-c", CHILD, "-v" if verbose else "-q"]
    if pattern:
        cmd += ["-k", pattern]
    cmd.append(os.path.splitext(os.path.basename(path))[0])
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True,
                           timeout=PER_FILE_TIMEOUT)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = 124, "TIMEOUT after %ds\n%s" % (PER_FILE_TIMEOUT,
                                                  (e.stderr or b"").decode()
                                                  if isinstance(e.stderr, bytes)
                                                  else (e.stderr or ""))
    return path, rc, out, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern")
    ap.add_argument("-j", dest="jobs", type=int, default=2)
    ap.add_argument("-v", dest="verbose", action="store_true")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()

    files = a.files or sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    failed = []
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        futs = [ex.submit(run_file, f, a.pattern, a.verbose) for f in files]
        for fut in concurrent.futures.as_completed(futs):
            path, rc, out, secs = fut.result()
            name = os.path.basename(path)
            tail = [l for l in out.splitlines() if l.startswith("Ran ")]
            summary = tail[-1] if tail else ""
            if rc == 0 or (rc == 5 and a.pattern):
                print("PASS %-32s %6.1fs  %s" % (name, secs, summary),
                      flush=True)
                for why, n in skipped(out).items():
                    print("     skipped %d: %s" % (n, why), flush=True)
                if a.verbose:
                    print(out)
            else:
                print("FAIL %-32s %6.1fs  %s" % (name, secs, summary),
                      flush=True)
                print(out, flush=True)
                failed.append(name)

    if failed:
        print("\nintegration: %d file(s) failed: %s"
              % (len(failed), " ".join(failed)))
        return 1
    print("\nintegration: all %d file(s) passed" % len(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
