#!/usr/bin/python3
"""
What mailtrail costs Redis, through the real store and events code
(build/store_bench) against real redis-server processes. Figures only,
never pass/fail:

1. Memory and CPU per message, one redis-server, for 1, 5 and 50
   recipients (distinct recipients, senders from a pool of 20), and per
   event (events applied afterwards to the same messages through the
   events code). Memory is used_memory growth over the measured
   messages, with the mt:events stream deleted at both ends (it is
   capped, so it is not a per-message cost), against a baseline taken in
   the same server just before. Warm-up messages come first, so that the
   senders' sorted sets are past their compact encoding, and so that the
   measured messages fit between two doublings of Redis' key tables
   (a doubling would show as a jump of 16 bytes times the number of keys);
   the tables' share, amortised, is shown separately. A last row measures
   one-recipient messages on a one-node Redis Cluster (RedisCluster mode).
   CPU is used_cpu_user + used_cpu_sys of redis-server.
2. Records per second the store writes into a three-master cluster (with a
   replica each) from THREADS writer threads, against one redis-server in
   the same run; target 20000 records/s.

  /usr/bin/python3 tests/bench/redis_bench.py build/store_bench

env: MT_BENCH_MSGS         measured messages per row (1000; at least 500)
     MT_BENCH_EVENTS       events per recipient for the event figures (1)
     MT_BENCH_RECORDS      records per throughput run (20000)
     MT_BENCH_THREADS      writer threads, a list (4 32)
     MT_BENCH_ONLY         memory | throughput (both)
"""

import json
import math
import os
import re
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness as h  # noqa: E402
import cluster_support as cs  # noqa: E402

DRIVER = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                         os.path.join(ROOT, "build", "store_bench"))
MSGS = max(500, int(os.environ.get("MT_BENCH_MSGS", "1000")))
EVENTS = max(1, int(os.environ.get("MT_BENCH_EVENTS", "1")))
RECORDS = int(os.environ.get("MT_BENCH_RECORDS", "20000"))
THREADS = [int(t) for t in os.environ.get("MT_BENCH_THREADS", "4 32").split()]
ONLY = os.environ.get("MT_BENCH_ONLY", "")
TARGET_RPS = 20000
GOAL_BYTES = 1024
SENDER_POOL = 20            # as in store_bench.c
ZSET_COMPACT = 128          # zset-max-listpack-entries
TABLE_BYTES_PER_KEY = 2 * 8 * 2 * math.log(2)   # key + expiry tables, amortised
STREAM = "mt:events"


def write_conf(redis_line):
    work = h.make_workdir("rbench")
    spool = os.path.join(work, "spool")
    os.mkdir(spool, 0o700)
    path = os.path.join(work, "mailtrail.conf")
    with open(path, "w") as f:
        f.write("# written by tests/bench/redis_bench.py\n%s\nSpoolDir %s\n"
                "RedisTimeout 5000\n" % (redis_line, spool))
    return path


def drive(conf, n, rcpts=1, threads=4, events=0, seed=None, events_only=False):
    argv = [DRIVER, "-c", conf, "-n", str(n), "-r", str(rcpts), "-t", str(threads),
            "-e", str(events)]
    if seed is not None:
        argv += ["-s", str(seed)]
    if events_only:
        argv.append("-x")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode == 2 or not r.stdout.strip():
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), r.returncode,
                                                  r.stderr[-2000:]))
    res = json.loads(r.stdout)
    res["stderr"] = r.stderr
    res["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return res


# --------------------------------------------------------------------------
# 1. memory and CPU

def used_memory(rc):
    rc.delete(STREAM)
    return rc.info("memory")["used_memory"]


def cpu_seconds(rc):
    i = rc.info("cpu")
    return i["used_cpu_user"] + i["used_cpu_sys"]


def table_sizes(rc):
    """(key table, expiry table) sizes, and whether either is rehashing."""
    text = rc.execute_command("DEBUG", "HTSTATS", "0")
    text = text.decode() if isinstance(text, bytes) else text
    sizes = [int(x) for x in re.findall(r"table size: (\d+)", text)]
    return tuple(sizes), "rehashing" in text


def settle(rc):
    h.wait_for(lambda: not table_sizes(rc)[1], 10, "Redis to finish rehashing")


def warm_up(rc, conf, rcpts, n):
    """Enough messages that every sender's sorted set is past its compact
    encoding, then enough that n more fit before the key tables double."""
    first = SENDER_POOL * ZSET_COMPACT * 5 // 4
    drive(conf, first, rcpts)
    per_msg = (rc.dbsize() - SENDER_POOL) / first       # new keys a message adds
    need = int(n * per_msg * 1.05) + 100
    while True:
        keys = rc.dbsize()
        table = 1 << max(2, (keys - 1).bit_length())     # holds `keys` without doubling
        if table - keys >= need:
            break
        drive(conf, int((table - keys + 64) / per_msg) + 1, rcpts)
    settle(rc)


def measure(rc, conf, rcpts, n):
    """Messages, then events on them; returns a dict of figures."""
    warm_up(rc, conf, rcpts, n)
    seed = int(time.time() * 1000) & 0xffffffffffff
    f0 = senders_usage(rc)
    t0, m0, c0, k0 = table_sizes(rc)[0], used_memory(rc), cpu_seconds(rc), rc.dbsize()
    msg = drive(conf, n, rcpts, seed=seed)
    c1 = cpu_seconds(rc)
    m1, k1 = used_memory(rc), rc.dbsize()
    parts = None
    if rcpts == 1:
        parts = breakdown(rc, seed, n)
        parts["from zset share"] = (senders_usage(rc) - f0) / n
    ev = drive(conf, n, rcpts, threads=1, events=EVENTS, seed=seed, events_only=True)
    c2 = cpu_seconds(rc)
    m2, k2 = used_memory(rc), rc.dbsize()
    t2 = table_sizes(rc)[0]
    keys_per_msg = (k1 - k0) / n
    return {
        "n": n, "bytes": (m1 - m0) / n, "keys": keys_per_msg,
        "tables": keys_per_msg * TABLE_BYTES_PER_KEY,
        "cpu_us": (c1 - c0) * 1e6 / n,
        "events": ev["events"], "changed": ev["events_changed"],
        "ev_bytes": (m2 - m1) / max(1, ev["events"]),
        "ev_cpu_us": (c2 - c1) * 1e6 / max(1, ev["events"]),
        "ev_keys": k2 - k1, "doubled": t0 != t2,
        "trouble": msg["failed"] + msg["spooled"] + ev["events_failed"],
        "rate": msg["records_per_s"], "parts": parts,
    }


KINDS = (("record hash", "mt:{%s}"), ("events list", "mt:{%s}:ev"),
         ("qid string", "mt:qid:%s"), ("msgid zset", "mt:msgid:%s"),
         ("to zset", "mt:to:%s"))


def senders_usage(rc):
    return sum(rc.memory_usage("mt:from:user%d@client.bench.example" % i, samples=0)
               or 0 for i in range(SENDER_POOL))


def breakdown(rc, seed, n, sample=50):
    """Mean MEMORY USAGE (value, key, main table entry) per key kind, over
    sampled messages of the measured batch (names as store_bench.c makes
    them)."""
    total = dict.fromkeys((k for k, _f in KINDS), 0)
    got = 0
    for i in range(0, n, max(1, n // sample)):
        qid = "B%06X%X" % (seed & 0xffffff, i)
        tid = rc.get("mt:qid:" + qid)
        if tid is None:
            continue
        args = {"mt:{%s}": tid, "mt:{%s}:ev": tid, "mt:qid:%s": qid,
                "mt:msgid:%s": "%d.%x.bench@ws17.client.bench.example" % (
                    i, seed & 0xffff),
                "mt:to:%s": "r%d.0.%x@dest0.example" % (i, seed & 0xffff)}
        for kind, fmt in KINDS:
            total[kind] += rc.memory_usage(fmt % args[fmt], samples=0) or 0
        got += 1
    return {k: v / max(1, got) for k, v in total.items()}


def memory_rows():
    print("Redis memory and CPU per message (store_bench, 4 writer threads, %d "
          "measured messages per row; senders from a pool of %d, distinct "
          "recipients, the %s stream deleted before each reading)"
          % (MSGS, SENDER_POOL, STREAM))
    print("  %-14s %7s %9s %9s %8s %9s %9s %8s %9s" % (
        "", "keys", "bytes", "+tables", "bytes", "CPU us", "bytes", "CPU us", "events"))
    print("  %-14s %7s %9s %9s %8s %9s %9s %8s %9s" % (
        "rcpts", "/msg", "/msg", "amort.", "/rcpt", "/msg", "/event", "/event",
        "changed"))
    rows = {}
    cases = [(r, "%d" % r, False) for r in (1, 5, 50)] + [(1, "1, cluster", True)]
    for rcpts, label, cluster in cases:
        if cluster:
            server = cs.Cluster(masters=1, replicas_each=0, extra_args=[
                "--enable-debug-command", "local"]).start()
            rc = server.nodes[0].client()
            conf = write_conf("RedisCluster %s" % server.seeds)
        else:
            server = h.Redis(extra_args=["--enable-debug-command", "local"]).start()
            rc = server.client()
            conf = write_conf("RedisServer %s" % server.address)
        f = measure(rc, conf, rcpts, MSGS)
        server.stop()
        rows[label] = f
        print("  %-14s %7.2f %9.0f %9.0f %8.0f %9.1f %9.0f %8.1f %5d/%d%s%s" % (
            label, f["keys"], f["bytes"], f["bytes"] + f["tables"],
            f["bytes"] / rcpts, f["cpu_us"], f["ev_bytes"], f["ev_cpu_us"],
            f["changed"], f["events"],
            "  (key tables doubled inside the window)" if f["doubled"] else "",
            "  (%d writes failed or spooled)" % f["trouble"] if f["trouble"] else ""))
    one = rows["1"]
    if one["parts"]:
        parts = one["parts"]
        known = sum(parts.values())
        print("  where a one-recipient message's bytes go (MEMORY USAGE: value, key "
              "name, key table entry; mean of sampled messages):")
        print("    " + ", ".join("%s %.0f" % kv for kv in parts.items()) +
              "; sum %.0f of %.0f, the rest %.0f (expiry table entries %.0f, "
              "allocator rounding)" % (
                  known, one["bytes"], one["bytes"] - known, 24 * one["keys"]))
    print("  bytes/msg: used_memory growth; +tables amort.: with the key and expiry "
          "tables' buckets (8 bytes each, %.1f bytes a key on average)"
          % TABLE_BYTES_PER_KEY)
    print("  events: %d per recipient (DEFER..., then SEND), by queue ID as logwatch "
          "does; 'changed' = status moved forward" % EVENTS)
    clus = rows["1, cluster"]
    print("  one-recipient message: %.0f bytes (%.0f with tables) = %.2f of the "
          "1 KiB goal; on a Cluster node %.0f bytes (%.0f more a key: Redis 7.0 "
          "links each key into its slot's list)" % (
              one["bytes"], one["bytes"] + one["tables"],
              (one["bytes"] + one["tables"]) / GOAL_BYTES, clus["bytes"],
              (clus["bytes"] - one["bytes"]) / max(0.01, clus["keys"])))
    return rows


# --------------------------------------------------------------------------
# 2. throughput

def records_in(cluster):
    """Record hashes per master (the :ev lists and index keys left out)."""
    owners = cluster.key_owners("mt:{*}")
    recs = [k for k in owners if not k.endswith(":ev")]
    return len(recs), sum(len(owners[k]) - 1 for k in recs)


def throughput():
    print("Store write throughput (store_bench, %d one-recipient records per run, "
          "%d CPUs; target %d records/s into the cluster)" % (
              RECORDS, os.cpu_count(), TARGET_RPS))
    single = h.Redis().start()
    single_conf = write_conf("RedisServer %s" % single.address)
    cluster = cs.Cluster().start()
    cluster_conf = write_conf("RedisCluster %s" % cluster.seeds)
    print("  cluster of 3 masters + 3 replicas up in %.1f s (redis-cli --cluster "
          "create %.1f s, then %.1f s until state ok and replicas synced)" % (
              cluster.timings["total"], cluster.timings["create"],
              cluster.timings["healthy"]))
    masters = cluster.masters()
    nodes = [n.client() for n in cluster.nodes]
    print("  %-8s %13s %12s %7s %7s   %-27s %s" % (
        "", "one server", "cluster", "", "of", "CPU us/record: Redis, driver",
        ""))
    print("  %-8s %13s %12s %7s %7s   %-13s %-13s %s" % (
        "threads", "records/s", "records/s", "ratio", "target", "one server",
        "cluster", "trouble"))
    written = 0
    for threads in THREADS:
        c0 = cpu_seconds(single.client())
        a = drive(single_conf, RECORDS, threads=threads)
        c1 = cpu_seconds(single.client())
        d0 = sum(cpu_seconds(n) for n in nodes)
        b = drive(cluster_conf, RECORDS, threads=threads)
        d1 = sum(cpu_seconds(n) for n in nodes)
        written += RECORDS
        trouble = a["failed"] + a["spooled"] + b["failed"] + b["spooled"]
        per = 1e6 / RECORDS
        print("  %-8d %13.0f %12.0f %7.2f %7.2f   %4.0f, %-7.0f %4.0f, %-7.0f %s" % (
            threads, a["records_per_s"], b["records_per_s"],
            b["records_per_s"] / max(1, a["records_per_s"]),
            b["records_per_s"] / TARGET_RPS, (c1 - c0) * per, a["cpu_s"] * per,
            (d1 - d0) * per, b["cpu_s"] * per,
            "%d failed or spooled" % trouble if trouble else "-"))
    found, dups = records_in(cluster)
    print("  cluster: every write also waits for a replica (WAIT); the one server "
          "has none. Records found on the masters: %d of %d written, %d on two "
          "masters; keys per master %s" % (found, written, dups, cluster.dbsizes()))
    if cluster.masters() != masters:
        print("  (the masters changed during the runs: %s -> %s; a node missed its "
              "cluster-node-timeout)" % (masters, cluster.masters()))
    cluster.stop()
    single.stop()


if __name__ == "__main__":
    t0 = time.monotonic()
    if ONLY in ("", "memory"):
        memory_rows()
    if ONLY in ("", "throughput"):
        throughput()
    print("redis_bench: %.0f s" % (time.monotonic() - t0))
