"""
A Redis master, one replica and three redis-sentinel processes on loopback,
for the tests of RedisSentinel mode. Everything is registered with the
harness and torn down at exit.
"""

import os
import signal

import redis

import harness as h

MASTER_NAME = "mymaster"


class SentinelSet:
    def __init__(self, n_sentinels=3):
        # No 5 s delay before the replica's first sync (Redis 7's default).
        self.master = h.Redis(extra_args=["--repl-diskless-sync-delay", "0"])
        self.replica = h.Redis(extra_args=["--replicaof", "127.0.0.1",
                                           str(self.master.port)])
        self.sentinel_ports = [h.free_port() for _ in range(n_sentinels)]
        self.dir = h.make_workdir("sentinel")
        self.procs = []

    @property
    def sentinel_list(self):
        return ", ".join("127.0.0.1:%d" % p for p in self.sentinel_ports)

    def start(self):
        self.master.start()
        self.replica.start()
        for i, port in enumerate(self.sentinel_ports):
            conf = os.path.join(self.dir, "sentinel%d.conf" % i)
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "logfile %s\n"
                        "sentinel monitor %s 127.0.0.1 %d 2\n"
                        "sentinel down-after-milliseconds %s 1000\n"
                        "sentinel failover-timeout %s 4000\n"
                        % (port, self.dir, os.path.join(self.dir, "s%d.log" % i),
                           MASTER_NAME, self.master.port, MASTER_NAME, MASTER_NAME))
            self.procs.append(h.spawn(["redis-sentinel", conf]))
            h.wait_for(lambda p=port: h.port_open(p), 10, "sentinel on %d" % port)
        h.wait_for(self.ready, 30, "replica synced and known to every Sentinel",
                   interval=0.1)
        return self

    def sentinel(self, port):
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True,
                           socket_timeout=2)

    def ready(self):
        info = self.replica.client().info("replication")
        if info.get("master_link_status") != "up":
            return False
        for port in self.sentinel_ports:
            try:
                if len(self.sentinel(port).sentinel_slaves(MASTER_NAME)) != 1:
                    return False
            except redis.RedisError:
                return False
        return True

    def master_port_now(self):
        """The master's port as the Sentinels' majority says it now."""
        ports = []
        for port in self.sentinel_ports:
            try:
                ports.append(int(self.sentinel(port)
                                 .sentinel_get_master_addr_by_name(MASTER_NAME)[1]))
            except (redis.RedisError, TypeError):
                pass
        return max(set(ports), key=ports.count) if ports else None

    def kill_master(self):
        self.master.proc.send_signal(signal.SIGKILL)
        self.master.proc.wait(10)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
        self.replica.stop()
        if self.master.proc and self.master.proc.poll() is None:
            self.master.stop()
