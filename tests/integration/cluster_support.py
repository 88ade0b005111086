"""
A Redis Cluster of three masters with a replica each on loopback, made with
redis-server --cluster-enabled and redis-cli --cluster create, for the
tests of RedisCluster mode and the store benchmark: failover, resharding
(in the background), and reading every node's keys for "each record
exactly once" checks. Registered with the harness and torn down at exit.
"""

import collections
import logging
import os
import random
import re
import signal
import socket
import subprocess
import time

import redis
import redis.cluster
from redis.crc import key_slot

import harness as h

# redis-py's cluster client logs every MOVED and ASK it follows (with a
# traceback) through logging's last-resort handler: hundreds of lines on
# stderr during a reshard, though the command then succeeds.
logging.getLogger("redis.cluster").addHandler(logging.NullHandler())
logging.getLogger("redis.cluster").propagate = False

SLOTS = 16384
ANSI = re.compile(r"\x1b\[[0-9;]*m")
OPEN_SLOT = re.compile(r"\[\d+-[<>]-[0-9a-f]+\]")    # CLUSTER NODES: importing, migrating
BUS_OFFSET = 10000      # a node's cluster bus listens on port + 10000


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_ports(n, taken=()):
    """n free ports whose bus ports are free too. Both stay below the
    kernel's ephemeral range (32768 up), so no outgoing connection of
    this or another test can take one between now and the node's start."""
    ports, taken = [], set(taken)
    for _ in range(1000):
        p = random.randrange(11000, 22700)
        if p in taken or p + BUS_OFFSET in taken:
            continue
        if _bindable(p) and _bindable(p + BUS_OFFSET):
            ports.append(p)
            taken.update((p, p + BUS_OFFSET))
            if len(ports) == n:
                return ports
    raise RuntimeError("no %d free port pairs for cluster nodes" % n)


class Node:
    """One redis-server with --cluster-enabled; its own dir and nodes.conf,
    kept across stop()/start() so a stopped node rejoins as it was."""

    def __init__(self, dirname, port, node_timeout_ms, extra_args=()):
        self.port = port
        self.dir = os.path.join(dirname, str(port))
        os.makedirs(self.dir)
        self.node_timeout_ms = node_timeout_ms
        self.extra_args = list(extra_args)
        self.proc = None

    def spawn(self):
        self.proc = h.spawn([
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes",
            "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
            "--cluster-node-timeout", str(self.node_timeout_ms),
            # A replica may always take over, however long it was cut off.
            "--cluster-replica-validity-factor", "0",
            # No 5 s delay before a replica's first sync (Redis 7's default).
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--logfile", os.path.join(self.dir, "redis.log")] + self.extra_args,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def start(self):
        self.spawn()
        h.wait_for(self.ping, 10, "cluster node %d" % self.port)
        return self

    def client(self, timeout=5):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=timeout)

    def ping(self):
        try:
            return self.client(0.5).ping()
        except redis.RedisError:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: see %s/redis.log" % self.dir)
            return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.running():
            self.proc.terminate()
            self.proc.wait(10)
            h.forget(self.proc._mt_kill)

    def kill(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            h.forget(self.proc._mt_kill)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port


class Cluster:
    """
    masters x (1 + replicas_each) nodes. After start(): every node says
    cluster_state:ok, all agree on who serves which slot, every replica's
    link is up. Ports are given by masters() and replicas(), which ask the
    nodes, so they follow failovers.
    """

    def __init__(self, masters=3, replicas_each=1, node_timeout_ms=1000,
                 extra_args=()):
        self.dir = h.make_workdir("cluster")
        self.n_masters = masters
        self.replicas_each = replicas_each
        self.nodes = [Node(self.dir, p, node_timeout_ms, extra_args)
                      for p in cluster_ports(masters * (1 + replicas_each))]
        self.timings = {}

    @property
    def seeds(self):
        """The RedisCluster value, "127.0.0.1:P, 127.0.0.1:P, ...": three
        nodes are enough to find the rest."""
        return ", ".join(n.address for n in self.nodes[:3])

    # -- life cycle

    def start(self, timeout=30):
        t0 = time.monotonic()
        h.on_exit(self.stop)
        for n in self.nodes:            # all at once: a node takes ~50 ms
            n.spawn()
        for n in self.nodes:
            h.wait_for(n.ping, 10, "cluster node %d" % n.port)
        t1 = time.monotonic()
        if self.n_masters >= 3:
            argv = (["redis-cli", "--cluster", "create"] + [n.address for n in self.nodes]
                    + ["--cluster-replicas", str(self.replicas_each), "--cluster-yes"])
            r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if r.returncode != 0 or "[ERR]" in r.stdout:
                raise RuntimeError("redis-cli --cluster create: %s"
                                   % (r.stdout + r.stderr))
        else:
            self._create_by_hand()
        t2 = time.monotonic()
        self.wait_healthy(timeout, "cluster state ok, replicas synced")
        t3 = time.monotonic()
        self.timings = {"nodes": t1 - t0, "create": t2 - t1, "healthy": t3 - t2,
                        "total": t3 - t0}
        return self

    def _create_by_hand(self):
        """What redis-cli --cluster create does, for the one or two masters
        it refuses: slots split evenly, MEET, then REPLICATE."""
        masters, replicas = self.nodes[:self.n_masters], self.nodes[self.n_masters:]
        for i, n in enumerate(masters):
            first = SLOTS * i // self.n_masters
            last = SLOTS * (i + 1) // self.n_masters - 1
            n.client().execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        for n in self.nodes[1:]:
            n.client().execute_command("CLUSTER", "MEET", "127.0.0.1", self.nodes[0].port)
        ids = [m.client().cluster("MYID") for m in masters]
        for i, n in enumerate(replicas):
            master_id = ids[i % self.n_masters]
            h.wait_for(lambda: master_id in n.client().execute_command(
                "CLUSTER", "NODES"), 10, "node %d to learn the masters" % n.port)
            n.client().execute_command("CLUSTER", "REPLICATE", master_id)

    def stop(self):
        for n in self.nodes:
            n.stop()

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def kill(self, port):
        """SIGKILL one node (no goodbye: the others find out by timeout)."""
        self.node(port).kill()

    def restart(self, port):
        """Starts a stopped or killed node again with its nodes.conf; it
        rejoins (a former master as a replica of whoever took over)."""
        self.node(port).start()

    def client(self, **kw):
        """A redis.cluster.RedisCluster on the live nodes (str replies)."""
        seeds = [redis.cluster.ClusterNode("127.0.0.1", n.port)
                 for n in self.nodes if n.running()]
        kw.setdefault("socket_timeout", 5)
        return redis.cluster.RedisCluster(startup_nodes=seeds, decode_responses=True,
                                          **kw)

    # -- topology, as the nodes say it now

    def _live(self):
        return [n for n in self.nodes if n.running()]

    def roles(self):
        """port -> ("master", None) or ("slave", master port), from ROLE."""
        out = {}
        for n in self._live():
            role = n.client().execute_command("ROLE")
            out[n.port] = ("master", None) if role[0] == "master" else \
                ("slave", int(role[2]))
        return out

    def masters(self):
        return sorted(p for p, (r, _m) in self.roles().items() if r == "master")

    def replicas(self, of=None):
        """Replica ports (of one master port, when given)."""
        return sorted(p for p, (r, m) in self.roles().items()
                      if r != "master" and (of is None or m == of))

    def node_id(self, port):
        return self.node(port).client().cluster("MYID")

    def slot_map(self, port=None):
        """{(first, last): master port} as one node (default: the first
        live one) sees it, from CLUSTER SLOTS."""
        n = self.node(port) if port else self._live()[0]
        return {(r[0], r[1]): int(r[2][1])
                for r in n.client().execute_command("CLUSTER", "SLOTS")}

    def slot_counts(self):
        """{master port: number of slots it serves}."""
        out = collections.Counter()
        for (a, b), p in self.slot_map().items():
            out[p] += b - a + 1
        return dict(out)

    def owner(self, key):
        """The master port that serves key's slot now."""
        s = key_slot(key.encode() if isinstance(key, str) else key)
        for (a, b), p in self.slot_map().items():
            if a <= s <= b:
                return p
        return None

    def healthy(self):
        """Every live node: cluster_state ok, knows every node, and the same
        slot map covering all 16384 slots; the right number of masters;
        every replica's link to its master up."""
        try:
            live = self._live()
            maps = set()
            for n in live:
                info = n.client().cluster("INFO")
                if info.get("cluster_state") != "ok" or \
                        int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                    return False
                maps.add(frozenset(self.slot_map(n.port).items()))
            if len(maps) != 1 or \
                    sum(b - a + 1 for (a, b), _p in next(iter(maps))) != SLOTS:
                return False
            if self.open_slots():
                return False
            roles = self.roles()
            if sum(1 for r, _m in roles.values() if r == "master") != self.n_masters:
                return False
            for p, (r, _m) in roles.items():
                if r != "master" and self.node(p).client().info(
                        "replication").get("master_link_status") != "up":
                    return False
            return True
        except redis.RedisError:
            return False

    def open_slots(self):
        """{port: ["[slot->-id]" or "[slot-<-id]", ...]} for the masters with a
        slot in migration (a reshard under way, or one killed half-way,
        which redis-cli refuses to reshard on until fix())."""
        out = {}
        for n in self._live():
            for line in n.client().execute_command("CLUSTER", "NODES").splitlines():
                if "myself" in line.split()[2] and OPEN_SLOT.search(line):
                    out[n.port] = OPEN_SLOT.findall(line)
        return out

    def fix(self, timeout=120):
        """redis-cli --cluster fix: closes slots a killed reshard left open."""
        r = subprocess.run(["redis-cli", "--cluster", "fix", self._live()[0].address,
                            "--cluster-yes"], capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("redis-cli --cluster fix: %s" % ANSI.sub("", r.stdout))
        self.wait_healthy(30, "cluster ok after the fix")

    def wait_healthy(self, timeout=30, what="cluster ok"):
        h.wait_for(self.healthy, timeout, what, interval=0.05)

    def replicas_synced(self):
        """Every replica has applied everything its master sent so far."""
        try:
            for p, (r, m) in self.roles().items():
                if r == "master":
                    continue
                mi = self.node(m).client().info("replication")
                ri = self.node(p).client().info("replication")
                if ri.get("master_link_status") != "up" or \
                        ri.get("slave_repl_offset") != mi.get("master_repl_offset"):
                    return False
            return True
        except redis.RedisError:
            return False

    def wait_synced(self, timeout=30):
        h.wait_for(self.replicas_synced, timeout, "replicas to catch up", interval=0.05)

    # -- disturbances

    def failover_one(self, master_port=None, timeout=30, how=None):
        """CLUSTER FAILOVER on a replica of master_port (default: the first
        master): the master pauses its clients until the replica has
        everything, so no write is lost. Returns (old master port, new
        master port) once the replica is master and the cluster is healthy
        again (the old master then being its replica). how: None, "FORCE"
        (no handshake with the master) or "TAKEOVER" (no vote either)."""
        old = master_port or self.masters()[0]
        replica = self.replicas(of=old)[0]
        self.node(replica).client().execute_command(
            "CLUSTER", "FAILOVER", *([how] if how else []))
        h.wait_for(lambda: self.roles().get(replica, ("",))[0] == "master" and
                   self.healthy(), timeout, "replica %d to take over" % replica,
                   interval=0.05)
        return old, replica

    def reshard_async(self, n_slots, from_port=None, to_port=None, pipeline=100,
                      replace=False):
        """Starts redis-cli --cluster reshard moving n_slots from one master
        (default: the one serving most slots) to another (default: the
        one serving fewest) and returns at once; pass the result to wait().
        The cluster must be healthy first: redis-cli refuses to start on
        nodes that disagree or on a slot left open."""
        counts = self.slot_counts()
        from_port = from_port or max(counts, key=counts.get)
        to_port = to_port or min((p for p in counts if p != from_port), key=counts.get)
        log_path = os.path.join(self.dir, "reshard-%d.log" % time.monotonic_ns())
        log = open(log_path, "w")
        argv = ["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % from_port,
                "--cluster-from", self.node_id(from_port),
                "--cluster-to", self.node_id(to_port),
                "--cluster-slots", str(n_slots), "--cluster-yes",
                "--cluster-pipeline", str(pipeline)]
        if replace:
            argv.append("--cluster-replace")
        proc = h.spawn(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        proc.mt_log = log_path
        proc.mt_from, proc.mt_to, proc.mt_slots = from_port, to_port, n_slots
        proc.mt_started = time.monotonic()
        return proc

    def wait(self, proc, timeout=180):
        """Waits for a reshard_async() and the cluster to be healthy after
        it; raises with redis-cli's output when it failed. Its seconds."""
        rc = proc.wait(timeout)
        with open(proc.mt_log) as f:
            out = ANSI.sub("", f.read())     # redis-cli colours even a pipe
        if rc != 0:
            raise RuntimeError("reshard failed (%s):\n%s" % (rc, out[-3000:]))
        self.wait_healthy(30, "cluster ok after the reshard")
        return time.monotonic() - proc.mt_started

    def reshard(self, n_slots, **kw):
        """reshard_async() and wait(): the seconds it took."""
        return self.wait(self.reshard_async(n_slots, **kw))

    # -- what the masters hold

    def _masters_now(self):
        return [self.node(p) for p in self.masters()]

    def key_owners(self, pattern="*"):
        """{key: [master ports holding it]}, by SCAN on every master; more
        than one port means a key that exists twice."""
        out = collections.defaultdict(list)
        for n in self._masters_now():
            for k in n.client().scan_iter(match=pattern, count=1000):
                out[k].append(n.port)
        return dict(out)

    def all_keys(self, pattern="*"):
        """Every key matching pattern on every master, as a list: a key held
        by two masters shows twice."""
        return [k for k, ports in self.key_owners(pattern).items() for _ in ports]

    def duplicates(self, pattern="*"):
        """{key: ports} for keys held by more than one master."""
        return {k: p for k, p in self.key_owners(pattern).items() if len(p) > 1}

    def misplaced(self, pattern="*"):
        """{key: port} for keys on a master that does not serve their slot
        (nobody would find them). Meaningful only when no slot migrates."""
        owner = {}
        for (a, b), p in self.slot_map().items():
            for s in range(a, b + 1):
                owner[s] = p
        out = {}
        for k, ports in self.key_owners(pattern).items():
            for p in ports:
                if owner.get(key_slot(k.encode())) != p:
                    out[k] = p
        return out

    def dump_all(self, pattern="*"):
        """{key: value} for every key on every master, read from the node
        that holds it: hash -> dict, list -> list, zset -> [(member,
        score)], set -> set, string -> str, stream -> [(id, fields)].
        Raises when a key is held by two masters."""
        dups = self.duplicates(pattern)
        if dups:
            raise AssertionError("keys held by more than one master: %r"
                                 % sorted(dups.items())[:10])
        out = {}
        for n in self._masters_now():
            c = n.client()
            for k in c.scan_iter(match=pattern, count=1000):
                out[k] = _read(c, k)
        return out

    def dbsizes(self):
        """{master port: DBSIZE}."""
        return {n.port: n.client().dbsize() for n in self._masters_now()}


def _read(c, k):
    t = c.type(k)
    if t == "hash":
        return c.hgetall(k)
    if t == "list":
        return c.lrange(k, 0, -1)
    if t == "zset":
        return c.zrange(k, 0, -1, withscores=True)
    if t == "set":
        return c.smembers(k)
    if t == "string":
        return c.get(k)
    if t == "stream":
        return c.xrange(k)
    return None         # expired between SCAN and TYPE
