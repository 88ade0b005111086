"""
RedisSentinel mode through a real Postfix: the milter, logwatch and the
command find the master through three redis-sentinel processes, and a
master killed in the middle of 500 messages loses and duplicates nothing.
"""

import os
import subprocess
import threading
import time
import unittest

import harness as h
import delivery_support as ds
import sentinel_support as ss

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")

N = 500
KILL_AT = 150


class SentinelFailover(unittest.TestCase):
    def test_master_killed_during_500_messages_loses_and_duplicates_nothing(self):
        sset = ss.SentinelSet().start()
        sink = h.Sink().start()
        milter = h.Milter(None, binary=MILTER, name="milter-sentinel", extra={
            "RedisServer": None, "RedisSentinel": sset.sentinel_list,
            "RedisSentinelMaster": ss.MASTER_NAME, "RedisTimeout": "500"}).start()
        pf = h.Postfix(sink.port, milters=[milter.postfix_spec]).start()
        sent, errors = [], []
        lock = threading.Lock()

        def sender(k):
            for i in range(k, N, 4):
                subj = "sentinel %d" % i
                data = h.make_message("alice@client.test", "bob@remote.test", subj)
                try:
                    s = h.smtp_send(pf.port, "alice@client.test", ["bob@remote.test"], data)
                    with lock:
                        sent.append(s.qid)
                except Exception as e:      # a refused message is the failure
                    with lock:
                        errors.append(repr(e))
        try:
            threads = [threading.Thread(target=sender, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            h.wait_for(lambda: len(sent) >= KILL_AT, 60, "%d messages sent" % KILL_AT)
            old = sset.master.port
            sset.kill_master()
            for t in threads:
                t.join(300)
            self.assertEqual(errors, [])
            self.assertEqual(len(sent), N)
            sink.wait_count(N, timeout=120)
            h.wait_for(lambda: sset.master_port_now() == sset.replica.port, 60,
                       "the Sentinels to promote the replica")
            h.wait_for(lambda: milter.spooled() == [], 120, "the spool to drain")
            rc = sset.replica.client()
            self.assertEqual(rc.info("replication")["role"], "master")
            delivered = [h.id_from_hdr(m.header("X-Mailtrail-ID")) for m in sink.messages]
            self.assertEqual(len(set(delivered)), N, "an ID given twice")
            # every record exactly once, with exactly one RECEIVE event
            self.assertEqual(h.record_keys(rc), set(delivered))
            for qid in sent:
                tid = rc.get("mt:qid:" + qid)
                self.assertIn(tid, delivered, qid)
                evs = [e["ev"] for e in h.events(rc, tid)]
                self.assertEqual(evs.count("RECEIVE"), 1, (tid, evs))
            log = milter.read_log()
            self.assertIn("spooling", log, "the failover never reached the milter")
            self.assertIn("reachable again", log)
            self.assertNotEqual(old, sset.replica.port)

            # logwatch writes delivery statuses through the Sentinels.
            pf.wait_drained(60)
            r = ds.cli(milter.conf, "--json", "logwatch", "--once", "--no-state",
                       pf.maillog)
            self.assertEqual(r.returncode, 0, r.stderr)
            statuses = {rc.hget("mt:{%s}" % t, "r:bob@remote.test") for t in delivered}
            self.assertEqual(statuses, {"sent"})

            # The command reads through the Sentinels too.
            r = ds.cli(milter.conf, "--json", "status", sent[0])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(rc.get("mt:qid:" + sent[0]), r.stdout)
        finally:
            pf.stop()
            h.assert_clean_stop(milter)
            sink.stop()
            sset.stop()


class SentinelConfig(unittest.TestCase):
    def check(self, extra):
        m = h.Milter("127.0.0.1:6379", binary=MILTER, name="milter-sconf", extra=extra)
        return subprocess.run([MILTER, "-n", "-c", m.conf], capture_output=True,
                              text=True, timeout=30)

    def test_sentinel_and_server_together_are_refused(self):
        r = self.check({"RedisSentinel": "127.0.0.1:26379"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("RedisSentinel and RedisServer both given", r.stderr + r.stdout)

    def test_a_malformed_sentinel_list_is_refused_with_its_line(self):
        r = self.check({"RedisServer": None, "RedisSentinel": "127.0.0.1:26379, nocolon"})
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr + r.stdout, r"mailtrail\.conf:\d+: RedisSentinel: "
                         r"\"nocolon\" is not HOST:PORT")

    def test_sentinel_mode_passes_the_check(self):
        r = self.check({"RedisServer": None, "RedisSentinel": "127.0.0.1:26379 [::1]:26380",
                        "RedisSentinelMaster": "mail-redis"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout)


if __name__ == "__main__":
    unittest.main()
