#!/usr/bin/python3
"""
How many Postfix log lines per second `mailtrail logwatch` processes. A
synthetic maillog of a busy server (smtpd, cleanup, qmgr and delivery lines;
half the messages tracked, each with two recipients) is read with --once
against a private Redis that holds the tracked records. Prints the table
rows; target >= 50,000 lines/s. Never pass/fail.

  MT_CLI=build/mailtrail /usr/bin/python3 tests/bench/logwatch_bench.py
  env: MT_BENCH_LOG_MSGS (20000)
"""

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness as h  # noqa: E402

MSGS = int(os.environ.get("MT_BENCH_LOG_MSGS", "20000"))
CLI = os.environ.get("MT_CLI") or os.path.join(ROOT, "build", "mailtrail")


def qid(i):
    return "4Bq%08X" % i


def fake_id(i):
    return "01bench%019d.%016x" % (i, i)


def write_log(path):
    lines = 0
    with open(path, "w") as f:
        for i in range(MSGS):
            q = qid(i)
            ts = "Nov 21 23:%02d:%02d" % ((i // 60) % 60, i % 60)
            pre = "%s mx1 postfix/" % ts
            out = [
                "%ssmtpd[100]: connect from ws%d.example.org[192.0.2.%d]" % (pre, i % 200, i % 250),
                "%ssmtpd[100]: %s: client=ws%d.example.org[192.0.2.%d]" % (pre, q, i % 200, i % 250),
                "%scleanup[101]: %s: message-id=<%d@ws.example.org>" % (pre, q, i),
                "%sqmgr[102]: %s: from=<alice%d@example.org>, size=4211, nrcpt=2 (queue active)" % (pre, q, i),
                "%ssmtp[103]: %s: to=<bob%d@example.net>, relay=mx.example.net[203.0.113.5]:25, "
                "delay=0.5, delays=0.1/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as X%d)"
                % (pre, q, i, i),
                "%ssmtp[103]: %s: to=<carol%d@example.com>, relay=none, delay=30, "
                "delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to mx.example.com[198.51.100.9]:25: "
                "Connection timed out)" % (pre, q, i),
                "%ssmtpd[100]: disconnect from ws%d.example.org[192.0.2.%d] ehlo=1 mail=1 rcpt=2 data=1 quit=1 commands=6"
                % (pre, i % 200, i % 250),
                "%sqmgr[102]: %s: removed" % (pre, q),
            ]
            f.write("\n".join(out) + "\n")
            lines += len(out)
    return lines


def load_records(rc):
    pipe = rc.pipeline(transaction=False)
    for i in range(0, MSGS, 2):                 # every other message tracked
        tid = fake_id(i)
        pipe.hset("mt:{%s}" % tid, mapping={
            "qid": qid(i), "r:bob%d@example.net" % i: "queued",
            "r:carol%d@example.com" % i: "queued"})
        pipe.set("mt:qid:" + qid(i), tid)
        if i % 2000 == 0:
            pipe.execute()
    pipe.execute()


def run(conf, path):
    t0 = time.monotonic()
    r = subprocess.run([CLI, "-c", conf, "--json", "logwatch", "--once",
                        "--no-state", path], capture_output=True, text=True)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("logwatch failed: %s" % r.stderr)
    return json.loads(r.stdout), dt


def main():
    redis = h.Redis().start()
    conf = h.Milter(redis.address, name="bench-logwatch").conf
    work = h.make_workdir("bench-logwatch")
    path = os.path.join(work, "maillog")
    lines = write_log(path)
    load_records(redis.client())
    first, dt1 = run(conf, path)
    again, dt2 = run(conf, path)
    print()
    print("logwatch: %d log lines, %d delivery results, %d of tracked mail"
          % (first["lines"], first["results"], first["tracked"]))
    print("%-44s %12s" % ("logwatch (target >= 50,000 lines/s)", "lines/s"))
    print("%-44s %12.0f" % ("first pass (events written)", lines / dt1))
    print("%-44s %12.0f" % ("second pass (all duplicates, no writes)", lines / dt2))
    print("%-44s %12s" % ("events written (1st) / duplicates (2nd)",
                          "%d / %d" % (first["written"], again["duplicate"])))
    redis.stop()


if __name__ == "__main__":
    main()
