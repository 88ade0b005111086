#!/usr/bin/python3
"""
Socketmap lookups per second and latency of mailtrail-routed on loopback:
a private Redis, three routes (one in warm-up, so Redis is on the path for
part of the lookups), and client processes each with one connection
sending one request at a time, as Postfix's trivial-rewrite does.

  /usr/bin/python3 tests/bench/route_bench.py [build/mailtrail-routed]
"""

import multiprocessing
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness  # noqa: E402
import route_support as rs  # noqa: E402

SECONDS = float(os.environ.get("MT_BENCH_SECONDS", "5"))
CLIENTS = int(os.environ.get("MT_BENCH_CLIENTS", "2"))


def client(path, seconds, q):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    lat = []
    reqs = [rs.netstring("route user%d@dom%d.example" % (i, i % 97))
            for i in range(1000)]
    end = time.monotonic() + seconds
    n = 0
    clock = time.perf_counter_ns
    while True:
        t0 = clock()
        s.sendall(reqs[n % 1000])
        buf = s.recv(256)
        # Replies are small; a short read would be a bug worth failing on.
        if not buf.endswith(b","):
            raise RuntimeError("short reply %r" % buf)
        lat.append(clock() - t0)
        n += 1
        if n % 256 == 0 and time.monotonic() > end:
            break
    s.close()
    q.put(lat)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/mailtrail-routed")
    os.environ["MT_ROUTED"] = os.path.abspath(binary)
    redis = harness.Redis().start()
    routed = rs.Routed(redis.address, [
        "r1 bind=127.0.0.11 helo=r1.test weight=1",
        "r2 bind=127.0.0.12 helo=r2.test weight=2",
        "r3 bind=127.0.0.13 helo=r3.test weight=3",
        "w4 bind=127.0.0.14 helo=w4.test weight=1 warmup=%s:100000000:1"
        % time.strftime("%Y-%m-%d", time.gmtime()),
    ], name="routed-bench")
    routed.start()
    time.sleep(1.5)		# first health read
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=client, args=(routed.sock_path, SECONDS, q))
             for _ in range(CLIENTS)]
    start = time.monotonic()
    for p in procs:
        p.start()
    lats = []
    for _ in procs:
        lats.extend(q.get())
    for p in procs:
        p.join()
    elapsed = time.monotonic() - start
    routed.stop()
    redis.stop()
    lats.sort()
    n = len(lats)
    rate = n / elapsed
    p50 = lats[n // 2] / 1e6
    p99 = lats[int(n * 0.99)] / 1e6
    print()
    print("socketmap route lookups (mailtrail-routed, %d clients, %.0fs, "
          "1 of 7 lookups counted in Redis)" % (CLIENTS, SECONDS))
    print("  %-28s %12s" % ("metric", "value"))
    print("  %-28s %12d" % ("lookups", n))
    print("  %-28s %12.0f   (target >= 20000)" % ("lookups per second", rate))
    print("  %-28s %12.3f" % ("p50 latency, ms", p50))
    print("  %-28s %12.3f   (target < 1)" % ("p99 latency, ms", p99))
    ok = rate >= 20000 and p99 < 1.0
    print("  %-28s %12s" % ("result", "ok" if ok else "BELOW TARGET"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
