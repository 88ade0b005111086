#!/usr/bin/python3
"""
Runs every tests/integration/test_*.py against a real Postfix and Redis and
ends with `integration: N passed, N failed`. Skips count as failures: the
suite is meant to run in full on every machine. Exit 1 on any failure.

  MT_MILTER=build/san/mailtrail-milter MT_CLI=build/san/mailtrail \
      /usr/bin/python3 tests/integration/run.py [-k PATTERN] [test_module...]
"""

import argparse
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose name contains this substring")
    ap.add_argument("modules", nargs="*", help="test modules (default: all)")
    args = ap.parse_args()

    os.environ.setdefault("MT_MILTER", os.path.join(ROOT, "build/san/mailtrail-milter"))
    os.environ.setdefault("MT_CLI", os.path.join(ROOT, "build/san/mailtrail"))
    if os.geteuid() != 0:
        print("integration: the tests need root (Postfix in a private mount namespace)")
    sys.path.insert(0, HERE)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    if args.modules:
        suite = unittest.TestSuite(
            loader.loadTestsFromName(os.path.splitext(os.path.basename(m))[0])
            for m in args.modules)
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    start = time.monotonic()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                     buffer=False).run(suite)
    failed = (len(result.failures) + len(result.errors) + len(result.skipped)
              + len(result.unexpectedSuccesses))
    passed = result.testsRun - len(result.failures) - len(result.errors) \
        - len(result.skipped) - len(result.expectedFailures) \
        - len(result.unexpectedSuccesses)
    passed = max(passed, 0)
    for test, reason in result.skipped:
        print("SKIPPED (counted as failed): %s: %s" % (test, reason))
    print("integration time: %.1fs" % (time.monotonic() - start))
    print("integration: %d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
