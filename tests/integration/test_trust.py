"""
Trust boundaries, tried as an attacker would through a real Postfix 3.7: a
site user replaying another message's ID, a LAN client writing its own hop
headers, an outsider's unknown X-Mailtrail-* header, a reused Message-ID.
Only a site MTA (SiteMTAs) may hand mailtrail its X-Mailtrail-* headers.
"""

import json
import os
import subprocess
import time
import unittest

import redis

import harness as h

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
CLI = os.environ.get("MT_CLI") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail")
MMDB = os.environ.get("MT_TEST_MMDB_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "geo-test")

# 192.0.2.0/24 is the LAN here; the GeoDB puts 192.0.2.10 in Paris,
# 198.51.100.20 in London and 203.0.113.30 in Tokyo.
LAN_CLIENT = "192.0.2.10"
SITE_MTA = "192.0.2.25"     # a site MTA that is never the test's client

shared = {}


def setUpModule():
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER, extra={
        "InternalHosts": "127.0.0.0/8, ::1/128, 192.0.2.0/24",
        "SiteMTAs": SITE_MTA,
        "GeoDB": os.path.join(MMDB, "city-maxmind.mmdb"),
    }).start()
    shared["postfix"] = h.Postfix(shared["sink"].port,
                                  milters=[shared["milter"].postfix_spec]).start()
    # The sendmail command's mail (pickup) passes the milter too.
    shared["postfix"].postconf("non_smtpd_milters=" + shared["milter"].postfix_spec)
    shared["postfix"].reload()


def tearDownModule():
    if "postfix" in shared:
        shared["postfix"].stop()
    if "milter" in shared:
        h.assert_clean_stop(shared["milter"])
    if "redis" in shared:
        shared["redis"].stop()


def snapshot(rc, tid, qid):
    """Everything Redis holds of one message, byte for byte (DUMP)."""
    raw = redis.Redis(host="127.0.0.1", port=shared["redis"].port, socket_timeout=5)
    keys = sorted(rc.scan_iter(match="mt:{%s}*" % tid)) + ["mt:qid:" + qid]
    return {k: raw.dump(k) for k in keys}


class TrustCase(h.SharedSetupCase):
    shared = shared

    def send(self, sender, rcpts, subject, extra_headers=(), xclient=None, msgid=None):
        data = h.make_message(sender, ", ".join(rcpts), subject,
                              extra_headers=extra_headers, msgid=msgid)
        sent = h.smtp_send(self.postfix.port, sender, rcpts, data, xclient=xclient)
        self.assertTrue(sent.qid, sent.reply)
        return sent, self.sink.by_subject(subject)

    def tid_of(self, qid):
        return h.wait_for(lambda: self.rc.get("mt:qid:" + qid), 10, "record of " + qid)

    def victim(self):
        subj = self.subject("victim")
        sent, msg = self.send("ceo@client.test", ["board@remote.test"], subj)
        tid = msg.header("X-Mailtrail-ID").strip()
        self.assertEqual(self.tid_of(sent.qid), tid)
        h.wait_for(lambda: self.rc.exists("mt:{%s}" % tid), 10, "victim record")
        return tid, sent.qid

    def assert_own_headers(self, msg, victim_id, sender):
        ids = [v.strip() for v in msg.header_values("X-Mailtrail-ID")]
        self.assertEqual(len(ids), 1, ids)
        self.assertRegex(ids[0], h.ID_RE)
        self.assertNotEqual(ids[0], victim_id)
        self.assertEqual([v.strip() for v in msg.header_values("X-Mailtrail-Sender")],
                         ["<%s>" % sender])
        for hop in msg.header_values("X-Mailtrail-Hop"):
            self.assertNotIn("by=evil", hop)
        return ids[0]


class ReplayedId(TrustCase):
    """A site user copies a valid ID from an earlier message."""

    def takeover(self, xclient):
        vid, vqid = self.victim()
        before = snapshot(self.rc, vid, vqid)
        subj = self.subject("attack")
        sent, msg = self.send(
            "mallory@client.test", ["accomplice@remote.test"], subj, xclient=xclient,
            extra_headers=["X-Mailtrail-ID: " + vid,
                           "X-Mailtrail-Sender: <ceo@client.test>",
                           "X-Mailtrail-Hop: n=1; by=evil; ip=203.0.113.30; city=Tokyo"])
        own = self.assert_own_headers(msg, vid, "mallory@client.test")
        self.assertEqual(self.tid_of(sent.qid), own)
        rec = h.wait_for(lambda: self.rc.hgetall("mt:{%s}" % own), 10, "attacker record")
        self.assertEqual(rec["sender"], "mallory@client.test")
        self.assertEqual(h.statuses(self.rc, own),
                         {"accomplice@remote.test": "queued"})
        # the victim's record, recipients, events, path and index: untouched
        self.assertEqual(snapshot(self.rc, vid, vqid), before)
        self.assertNotIn(vid, self.rc.zrange("mt:from:mallory@client.test", 0, -1))
        self.assertNotIn(vid, self.rc.zrange("mt:to:accomplice@remote.test", 0, -1))

    def test_sasl_user_replaying_an_id_gets_a_fresh_one(self):
        self.takeover("ADDR=198.51.100.20 NAME=roaming.example LOGIN=mallory")

    def test_lan_client_replaying_an_id_gets_a_fresh_one(self):
        self.takeover("ADDR=%s NAME=pc.client.test" % LAN_CLIENT)

    def test_loopback_client_replaying_an_id_gets_a_fresh_one(self):
        self.takeover(None)

    def test_local_sendmail_user_replaying_an_id_gets_a_fresh_one(self):
        vid, vqid = self.victim()
        before = snapshot(self.rc, vid, vqid)
        subj = self.subject("sendmail")
        data = h.make_message("mallory@client.test", "accomplice@remote.test", subj,
                              extra_headers=["X-Mailtrail-ID: " + vid,
                                             "X-Mailtrail-Sender: <ceo@client.test>"])
        r = subprocess.run(["nsenter", "-t", str(self.postfix.master_pid), "-m", "--",
                            "sendmail", "-f", "mallory@client.test", "-i",
                            "accomplice@remote.test"], input=data.replace(b"\r\n", b"\n"),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r)
        msg = self.sink.by_subject(subj, timeout=60)
        self.assert_own_headers(msg, vid, "mallory@client.test")
        self.assertEqual(snapshot(self.rc, vid, vqid), before)


class ForgedHops(TrustCase):
    def test_two_hundred_hop_headers_from_a_lan_client_are_not_the_origin(self):
        forged = ["X-Mailtrail-Hop: n=%d; by=evil; ip=203.0.113.30; lat=1.5; lon=2.5; "
                  "cc=AQ; city=Forged" % i for i in range(1, 201)]
        subj = self.subject("hops")
        sent, msg = self.send("alice@client.test", ["bob@remote.test"], subj,
                              xclient="ADDR=%s NAME=pc.client.test" % LAN_CLIENT,
                              extra_headers=forged)
        hops = msg.header_values("X-Mailtrail-Hop")
        self.assertEqual(len(hops), 1, hops)
        self.assertIn("ip=%s" % LAN_CLIENT, hops[0])
        self.assertIn("city=Paris", hops[0])
        rec = h.wait_for(lambda: self.rc.hgetall("mt:{%s}" % self.tid_of(sent.qid)),
                         10, "record")
        self.assertEqual((rec.get("city"), rec.get("cc"), rec.get("hops")),
                         ("Paris", "FR", "1"))
        self.assertAlmostEqual(float(rec["lat"]), 48.8566, places=3)

    def test_a_forged_hop_naming_a_received_address_does_not_cut_the_chain(self):
        received = ("Received: from relay.example (relay.example [203.0.113.30])\r\n"
                    "\tby pc.client.test with ESMTP id 1; Mon, 1 Jan 2024 00:00:00 +0000")
        subj = self.subject("cut")
        sent, msg = self.send("alice@client.test", ["bob@remote.test"], subj,
                              xclient="ADDR=%s NAME=pc.client.test" % LAN_CLIENT,
                              extra_headers=[received,
                                             "X-Mailtrail-Hop: n=1; by=evil; ip=203.0.113.30"])
        tid = self.tid_of(sent.qid)
        path = h.wait_for(lambda: h.hop_path(self.rc, tid), 10, "path")
        self.assertEqual([p.get("ip") for p in path], ["203.0.113.30", LAN_CLIENT], path)
        self.assertEqual(path[0].get("src"), "received")
        self.assertNotIn("evil", json.dumps(path))
        rec = self.rc.hgetall("mt:{%s}" % tid)
        self.assertEqual(rec.get("city"), "Tokyo")


class ForeignMailtrailHeaders(TrustCase):
    NAMES = ["X-Mailtrail-Foo: bar", "x-mailtrail-foo: again", "X-MAILTRAIL-Route: out1",
             "X-Mailtrail-ID-Extra: 1", "X-Mailtrail-: empty"]

    def foreign_removed(self, xclient):
        subj = self.subject("foo")
        sent, msg = self.send("eve@outside.example", ["bob@remote.test"], subj,
                              xclient=xclient, extra_headers=self.NAMES + ["X-Other: kept"])
        names = [n.lower() for n, _ in msg.headers()]
        mine = {"x-mailtrail-id", "x-mailtrail-sender", "x-mailtrail-hop"}
        self.assertEqual([n for n in names if n.startswith("x-mailtrail-") and n not in mine],
                         [], names)
        self.assertEqual(msg.header("X-Other"), "kept")
        return sent, msg

    def test_unknown_mailtrail_headers_from_outside_are_removed(self):
        self.foreign_removed("ADDR=203.0.113.30 NAME=mx.outside.example")

    def test_unknown_mailtrail_headers_from_a_site_user_are_removed(self):
        self.foreign_removed(None)

    def test_a_flood_of_mailtrail_headers_is_refused_with_a_reason(self):
        data = h.make_message("eve@outside.example", "bob@remote.test", self.subject("flood"),
                              extra_headers=["X-Mailtrail-N%d: x" % i for i in range(40)])
        with self.assertRaises(RuntimeError) as cm:
            h.smtp_send(self.postfix.port, "eve@outside.example", ["bob@remote.test"], data,
                        xclient="ADDR=203.0.113.30 NAME=mx.outside.example")
        self.assertIn("550", str(cm.exception))
        self.assertIn("X-Mailtrail", str(cm.exception))


class ReusedMessageId(TrustCase):
    def test_a_later_message_with_the_same_message_id_does_not_take_over(self):
        mid = "reused.%d@client.test" % time.time_ns()
        s1 = self.subject("first")
        sent1, m1 = self.send("alice@client.test", ["bob@remote.test"], s1, msgid=mid)
        first = self.tid_of(sent1.qid)
        s2 = self.subject("second")
        sent2, m2 = self.send("mallory@client.test", ["bob@remote.test"], s2, msgid=mid)
        second = self.tid_of(sent2.qid)
        self.assertNotEqual(first, second)
        self.assertEqual(self.rc.zrange("mt:msgid:" + mid, 0, -1), [first, second])
        r = subprocess.run([CLI, "-c", self.milter.conf, "status", "--json", "<%s>" % mid],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["id"], first)
        self.assertEqual(out["same_msgid"], [first, second])
        r = subprocess.run([CLI, "-c", self.milter.conf, "status", mid],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(first, r.stdout)
        self.assertLess(r.stdout.index(first), r.stdout.index(second))
        self.assertIn("carried by 2 messages", r.stdout)


class SiteMtaRelay(unittest.TestCase):
    """The legitimate next hop: a site MTA keeps the ID and adds its hop."""

    def test_a_site_mta_keeps_the_id_a_site_user_cannot(self):
        redis = shared["redis"]
        rc = redis.client()
        sink = h.Sink().start()
        key_dir = h.make_workdir("key")
        secret = h.make_secret(key_dir)
        # mta1 relays to mta2 from 127.0.0.1, which mta2 lists in SiteMTAs;
        # mta1 lists no site MTA, so the same headers from a client are dropped.
        m2 = h.Milter(redis.address, binary=MILTER, secret_file=secret, name="site2",
                      extra={"SiteMTAs": "127.0.0.1/32"}).start()
        m1 = h.Milter(redis.address, binary=MILTER, secret_file=secret, name="site1").start()
        mta2 = h.Postfix(sink.port, hostname="mta2.test", milters=[m2.postfix_spec]).start()
        mta1 = h.Postfix(mta2.port, hostname="mta1.test", milters=[m1.postfix_spec]).start()
        try:
            subj = "site relay %d" % time.monotonic_ns()
            data = h.make_message("alice@client.test", "bob@remote.test", subj)
            sent = h.smtp_send(mta1.port, "alice@client.test", ["bob@remote.test"], data)
            msg = sink.by_subject(subj, timeout=60)
            tid = h.wait_for(lambda: rc.get("mt:qid:" + sent.qid), 10, "qid key")
            self.assertEqual([v.strip() for v in msg.header_values("X-Mailtrail-ID")], [tid])
            hops = msg.header_values("X-Mailtrail-Hop")
            self.assertEqual(len(hops), 2, hops)
            evs = h.wait_for(lambda: len(h.events(rc, tid)) >= 2 and h.events(rc, tid),
                             10, "second RECEIVE event")
            # The record says mta1; mta2's RECEIVE (layout 2) says itself.
            self.assertEqual(rc.hget("mt:{%s}" % tid, "by"), "mta1.test")
            self.assertEqual([e.get("by") for e in evs], [None, "mta2.test"])
            # The same ID sent straight to mta1 by a client: a fresh ID there.
            subj2 = "site replay %d" % time.monotonic_ns()
            data = h.make_message("mallory@client.test", "bob@remote.test", subj2,
                                  extra_headers=["X-Mailtrail-ID: " + tid])
            h.smtp_send(mta1.port, "mallory@client.test", ["bob@remote.test"], data)
            msg2 = sink.by_subject(subj2, timeout=60)
            ids2 = [v.strip() for v in msg2.header_values("X-Mailtrail-ID")]
            self.assertEqual(len(ids2), 1)
            self.assertNotEqual(ids2[0], tid)
            self.assertEqual(len(h.events(rc, tid)), 2)
        finally:
            mta1.stop()
            mta2.stop()
            h.assert_clean_stop(m1)
            h.assert_clean_stop(m2)
            sink.stop()


class UnreadableSpoolFile(unittest.TestCase):
    def test_a_spool_file_the_milter_cannot_read_is_quarantined_not_waited_for(self):
        redis = shared["redis"]
        rc = redis.client()
        sink = h.Sink().start()
        m = h.Milter(redis.address, binary=MILTER, name="unreadable",
                     extra={"UserID": "nobody:nogroup", "PidFile": None})
        os.chmod(m.dir, 0o755)
        os.chown(m.spool, 65534, 65534)
        planted = os.path.join(m.spool, "00000000000000000001-planted.rec")
        with open(planted, "w") as f:
            f.write("{}")
        os.chmod(planted, 0o600)      # root's: the milter (nobody) cannot read it
        m.start()
        pf = h.Postfix(sink.port, milters=[m.postfix_spec]).start()
        try:
            subj = "after planted %d" % time.monotonic_ns()
            data = h.make_message("alice@client.test", "bob@remote.test", subj)
            sent = h.smtp_send(pf.port, "alice@client.test", ["bob@remote.test"], data)
            sink.by_subject(subj)
            h.wait_for(lambda: os.path.exists(os.path.join(m.spool, "corrupt",
                                                           os.path.basename(planted))),
                       20, "planted file moved to corrupt/")
            line = m.wait_kv_for_qid(sent.qid)
            self.assertIn("store=redis", line.group(0))
            self.assertTrue(rc.get("mt:qid:" + sent.qid))
            self.assertTrue(any("planted.rec" in l and "corrupt" in l for l in m.lines()))
        finally:
            pf.stop()
            h.assert_clean_stop(m)
            sink.stop()


if __name__ == "__main__":
    unittest.main()
