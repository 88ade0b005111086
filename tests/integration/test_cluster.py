"""
RedisCluster mode through a real Postfix: three masters and three replicas
on loopback. 500 messages go through the milter while one master's replica
takes over (CLUSTER FAILOVER), and 500 more while slots migrate
(redis-cli --cluster reshard): every record is present exactly once, with
one RECEIVE event; no message is refused; logwatch's statuses land once;
and `mailtrail status/trace/search` read everything back through the
cluster.
"""

import json
import os
import subprocess
import threading
import unittest

import harness as h
import delivery_support as ds
import cluster_support as cs

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")

N = 500
DISTURB_AT = 150


def send_all(port, n, tag, sent, errors, lock, senders=4):
    def sender(k):
        for i in range(k, n, senders):
            subj = "%s %d" % (tag, i)
            data = h.make_message("alice@client.test", "bob%d@remote.test" % i, subj)
            try:
                s = h.smtp_send(port, "alice@client.test", ["bob%d@remote.test" % i], data)
                with lock:
                    sent.append((s.qid, i))
            except Exception as e:      # a refused message is the failure
                with lock:
                    errors.append(repr(e))
    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    return threads


class ClusterCase(unittest.TestCase):
    """One cluster, milter, Postfix and sink for the class: each test sends
    its own 500 messages (their own recipients) and disturbs the cluster."""

    @classmethod
    def setUpClass(cls):
        cls.cluster = cs.Cluster().start()
        cls.sink = h.Sink().start()
        cls.milter = h.Milter(None, binary=MILTER, name="milter-cluster", extra={
            "RedisServer": None, "RedisCluster": cls.cluster.seeds,
            "RedisTimeout": "500"}).start()
        cls.pf = h.Postfix(cls.sink.port, milters=[cls.milter.postfix_spec]).start()
        cls.rc = cls.cluster.client()

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        h.assert_clean_stop(cls.milter)
        cls.sink.stop()
        cls.cluster.stop()

    def run_through(self, tag, disturb):
        """Sends N messages, calls disturb() after DISTURB_AT, checks that
        every record is there once. Returns {qid: (tid, i)}."""
        sent, errors = [], []
        lock = threading.Lock()
        before = len(self.sink.messages)
        threads = send_all(self.pf.port, N, tag, sent, errors, lock)
        h.wait_for(lambda: len(sent) >= DISTURB_AT, 120, "%d messages sent" % DISTURB_AT)
        disturb()
        for t in threads:
            t.join(300)
        self.assertEqual(errors, [], "messages refused")
        self.assertEqual(len(sent), N)
        self.sink.wait_count(before + N, timeout=180)
        h.wait_for(lambda: self.milter.spooled() == [], 120, "the spool to drain")
        mine = {}
        for m in self.sink.messages:
            subj = m.header("Subject") or ""
            if subj.startswith(tag + " "):
                mine[int(subj.split()[-1])] = h.id_from_hdr(m.header("X-Mailtrail-ID"))
        self.assertEqual(len(mine), N)
        self.assertEqual(len(set(mine.values())), N, "an ID given twice")
        out = {}
        for qid, i in sent:
            tid = self.rc.get("mt:qid:" + qid)
            self.assertEqual(tid, mine[i], qid)
            out[qid] = (tid, i)
        # every record exactly once, with exactly one RECEIVE event
        records = self.cluster.all_keys("mt:{*}")
        for tid in mine.values():
            self.assertEqual(records.count("mt:{%s}" % tid), 1, tid)
            evs = [e["ev"] for e in h.events(self.rc, tid)]
            self.assertEqual(evs.count("RECEIVE"), 1, (tid, evs))
            self.assertEqual(self.rc.hget("mt:{%s}" % tid, "sender"), "alice@client.test")
        self.assertFalse([k for k in records if k.endswith((":rcpt", ":path", ":seen"))])
        return out

    def logwatch_and_check(self, msgs):
        self.pf.wait_drained(60)
        r = ds.cli(self.milter.conf, "--json", "logwatch", "--once", "--no-state",
                   self.pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)
        for qid, (tid, i) in msgs.items():
            self.assertEqual(self.rc.hget("mt:{%s}" % tid, "r:bob%d@remote.test" % i),
                             "sent", tid)
        # The same log again adds nothing: fingerprints hold across nodes.
        r = ds.cli(self.milter.conf, "--json", "logwatch", "--once", "--no-state",
                   self.pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)
        for qid, (tid, i) in msgs.items():
            evs = [e["ev"] for e in h.events(self.rc, tid)]
            # SPOOL: the record waited in the spool during the disturbance.
            self.assertLessEqual(evs.count("SPOOL"), 1, (tid, evs))
            self.assertEqual([e for e in evs if e != "SPOOL"], ["RECEIVE", "SEND"],
                             (tid, evs))

    def read_back(self, msgs):
        qid, (tid, i) = sorted(msgs.items())[0]
        r = ds.cli(self.milter.conf, "--json", "status", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["id"], tid)
        self.assertEqual(doc["recipients"], {"bob%d@remote.test" % i: "sent"})
        r = ds.cli(self.milter.conf, "--json", "trace", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([e["ev"] for e in json.loads(r.stdout)["events"]
                          if e["ev"] != "SPOOL"], ["RECEIVE", "SEND"])
        r = ds.cli(self.milter.conf, "--json", "search", "--to", "bob%d@remote.test" % i)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(tid, [row["id"] for row in json.loads(r.stdout)])
        # --from spans every node: all of this run's messages come back.
        r = ds.cli(self.milter.conf, "--json", "search", "--from", "alice@client.test",
                   "--limit", "5000")
        self.assertEqual(r.returncode, 0, r.stderr)
        found = {row["id"] for row in json.loads(r.stdout)}
        self.assertTrue({t for t, _ in msgs.values()} <= found)

    def test_failover_of_a_master_during_500_messages(self):
        turned = []
        msgs = self.run_through("failover", lambda: turned.append(
            self.cluster.failover_one()))
        old, new = turned[0]
        self.assertIn(new, self.cluster.masters())
        self.assertNotIn(old, self.cluster.masters())
        self.logwatch_and_check(msgs)
        self.read_back(msgs)

    def test_slots_migrating_during_500_messages(self):
        jobs = []
        msgs = self.run_through("reshard", lambda: jobs.append(
            self.cluster.reshard_async(2000)))
        self.cluster.wait(jobs[0])
        self.logwatch_and_check(msgs)
        self.read_back(msgs)


class ClusterConfig(unittest.TestCase):
    def check(self, extra):
        m = h.Milter("127.0.0.1:6379", binary=MILTER, name="milter-cconf", extra=extra)
        return subprocess.run([MILTER, "-n", "-c", m.conf], capture_output=True,
                              text=True, timeout=30)

    def test_cluster_and_server_together_are_refused(self):
        r = self.check({"RedisCluster": "127.0.0.1:7000"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("RedisCluster and RedisServer both given", r.stderr + r.stdout)

    def test_a_malformed_seed_list_is_refused_with_its_line(self):
        r = self.check({"RedisServer": None, "RedisCluster": "127.0.0.1:7000, nocolon"})
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr + r.stdout, r"mailtrail\.conf:\d+: RedisCluster: "
                         r"\"nocolon\" is not HOST:PORT")

    def test_cluster_mode_passes_the_check(self):
        r = self.check({"RedisServer": None, "RedisCluster": "127.0.0.1:7000 [::1]:7001"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
