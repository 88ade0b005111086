"""
A Redis Cluster of three masters and three replicas on loopback, made with
redis-server --cluster-enabled and redis-cli --cluster create, for the
tests of RedisCluster mode (and the store benchmark). Registered with the
harness and torn down at exit.
"""

import os
import random
import socket
import subprocess
import time

import redis
import redis.cluster

import harness as h


def _bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def cluster_port():
    """A free port whose cluster bus port (+10000) is free as well."""
    for _ in range(200):
        p = random.randint(20000, 29999)
        if _bindable(p) and _bindable(p + 10000):
            return p
    raise RuntimeError("no free port pair for a cluster node")


class Node:
    def __init__(self, dirname, port):
        self.port = port
        self.dir = os.path.join(dirname, str(port))
        os.makedirs(self.dir)
        self.proc = None

    def start(self):
        self.proc = h.spawn([
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
            "--cluster-config-file", os.path.join(self.dir, "nodes.conf"),
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
            "--save", "", "--appendonly", "no", "--dir", self.dir,
            "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        h.wait_for(self.ping, 10, "cluster node %d" % self.port)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5)

    def ping(self):
        try:
            return self.client().ping()
        except redis.RedisError:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: see %s/redis.log" % self.dir)
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Cluster:
    def __init__(self, masters=3, replicas_each=1):
        self.dir = h.make_workdir("cluster")
        self.nodes = [Node(self.dir, cluster_port())
                      for _ in range(masters * (1 + replicas_each))]
        self.n_masters = masters
        self.replicas_each = replicas_each

    @property
    def seeds(self):
        """The RedisCluster value: the first three nodes are enough."""
        return ", ".join("127.0.0.1:%d" % n.port for n in self.nodes[:3])

    def start(self):
        for n in self.nodes:
            n.start()
        r = subprocess.run(["redis-cli", "--cluster", "create"] +
                           ["127.0.0.1:%d" % n.port for n in self.nodes] +
                           ["--cluster-replicas", str(self.replicas_each),
                            "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("redis-cli --cluster create: %s" % (r.stdout + r.stderr))
        h.wait_for(self.healthy, 30, "cluster state ok, replicas synced", interval=0.1)
        h.on_exit(self.stop)
        return self

    def stop(self):
        for n in self.nodes:
            n.stop()

    def node(self, port):
        return next(n for n in self.nodes if n.port == port)

    def roles(self):
        """port -> (role, master port or None) from each node's ROLE."""
        out = {}
        for n in self.nodes:
            role = n.client().execute_command("ROLE")
            if role[0] == "master":
                out[n.port] = ("master", None)
            else:
                out[n.port] = ("slave", int(role[2]))
        return out

    def masters(self):
        return sorted(p for p, (r, _m) in self.roles().items() if r == "master")

    def replicas(self):
        return sorted(p for p, (r, _m) in self.roles().items() if r != "master")

    def healthy(self):
        try:
            for n in self.nodes:
                info = n.client().cluster("INFO")
                if info.get("cluster_state") != "ok":
                    return False
                if int(info.get("cluster_known_nodes", 0)) != len(self.nodes):
                    return False
            roles = self.roles()
            for p, (r, m) in roles.items():
                if r != "master" and n_link(self.node(p)) != "up":
                    return False
            return sum(1 for r, _ in roles.values() if r == "master") == self.n_masters
        except redis.RedisError:
            return False

    def client(self):
        return redis.cluster.RedisCluster(host="127.0.0.1", port=self.nodes[0].port,
                                          decode_responses=True, socket_timeout=5)

    def node_id(self, port):
        return self.node(port).client().cluster("MYID")

    def failover_one(self, master_port=None):
        """CLUSTER FAILOVER on a replica of master_port (default: the first
        master). Returns (old master port, new master port) once the
        cluster is ok again with the replica in charge."""
        roles = self.roles()
        old = master_port or self.masters()[0]
        replica = next(p for p, (r, m) in roles.items() if r != "master" and m == old)
        self.node(replica).client().execute_command("CLUSTER", "FAILOVER")
        h.wait_for(lambda: self.roles().get(replica, ("",))[0] == "master" and
                   self.healthy(), 30, "replica %d to take over" % replica, interval=0.1)
        return old, replica

    def reshard_async(self, n_slots):
        """Starts moving n_slots from the first master to the second with
        redis-cli --cluster reshard; wait() for it."""
        masters = self.masters()
        src, dst = self.node_id(masters[0]), self.node_id(masters[1])
        log = open(os.path.join(self.dir, "reshard-%d.log" % time.monotonic_ns()), "w")
        proc = h.spawn(["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % masters[0],
                        "--cluster-from", src, "--cluster-to", dst,
                        "--cluster-slots", str(n_slots), "--cluster-yes",
                        "--cluster-pipeline", "100"],
                       stdout=log, stderr=subprocess.STDOUT)
        proc._mt_log = log
        return proc

    def wait(self, proc, timeout=180):
        rc = proc.wait(timeout)
        proc._mt_log.close()
        if rc != 0:
            with open(proc._mt_log.name) as f:
                raise RuntimeError("reshard failed: %s" % f.read()[-2000:])
        h.wait_for(self.healthy, 30, "cluster ok after the reshard", interval=0.1)

    def all_keys(self, pattern):
        """Every key matching pattern on every master (a list: a key seen
        on two masters would show twice)."""
        keys = []
        for p in self.masters():
            keys.extend(self.node(p).client().scan_iter(match=pattern, count=1000))
        return keys


def n_link(node):
    return node.client().info("replication").get("master_link_status")
