"""
The milter seen from outside: what a real Postfix 3.7 delivers, what lands in
Redis and what the milter logs. One scenario per test, named for the behaviour.
"""

import base64
import json
import os
import pwd
import re
import signal
import smtplib
import subprocess
import threading
import time
import unittest

import harness as h

SEARCH_CLI = os.environ.get("MT_CLI") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail")

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
DAY = 86400
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# One Redis, sink, milter and Postfix shared by the tests that need nothing
# special; scenarios that change the set-up build their own.
shared = {}


def setUpModule():
    if not os.access(MILTER, os.X_OK):
        raise RuntimeError("milter binary %s is missing: make build/san/mailtrail-milter"
                           % MILTER)
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER).start()
    shared["postfix"] = h.Postfix(shared["sink"].port,
                                  milters=[shared["milter"].postfix_spec]).start()


def tearDownModule():
    if "postfix" in shared:
        shared["postfix"].stop()
    if "milter" in shared:
        assert_clean_stop(shared["milter"])
    if "redis" in shared:
        shared["redis"].stop()


assert_clean_stop = h.assert_clean_stop


class MilterCase(h.SharedSetupCase):
    shared = shared

    def send(self, sender, rcpts, subject, port=None, extra_headers=(), **kw):
        data = h.make_message(sender or "mailer-daemon@client.test", ", ".join(rcpts),
                              subject, extra_headers=extra_headers)
        sent = h.smtp_send(port or self.postfix.port, sender, rcpts, data, **kw)
        self.assertTrue(sent.qid, "no queue id in reply %r" % sent.reply)
        return sent

    def assertValidId(self, value):
        self.assertIsNotNone(value, "no X-Mailtrail-ID header")
        self.assertRegex(value.strip(), h.ID_RE)

    def assertCleanHeaders(self, msg):
        """Every header line <= 998 octets; mailtrail's own free of controls."""
        own = False
        for raw in msg.header_block:
            self.assertLessEqual(len(raw), 998, "header line over 998 octets: %r..."
                                 % raw[:80])
            if raw[:1] not in (b" ", b"\t"):
                own = raw.lower().startswith(b"x-mailtrail-")
            if not own:
                continue
            self.assertNotIn(b"\x00", raw)
            self.assertNotIn(b"\r", raw)
            self.assertIsNone(CONTROL.search(raw.decode("utf-8", "surrogateescape")),
                              "control character in header line %r" % raw[:200])

    def wait_record(self, rc, tid, timeout=10):
        h.wait_for(lambda: rc.exists("mt:{%s}" % tid), timeout, "record of %s" % tid)
        return rc.hgetall("mt:{%s}" % tid)


class SubmissionHeaders(MilterCase):
    def test_submitted_message_gets_id_and_sender_headers_at_the_top(self):
        subj = self.subject("top")
        sent = self.send("alice@client.test", ["bob@remote.test"], subj)
        msg = self.sink.by_subject(subj)
        ids = msg.header_values("X-Mailtrail-ID")
        senders = msg.header_values("X-Mailtrail-Sender")
        self.assertEqual(len(ids), 1, msg.headers())
        self.assertEqual(len(senders), 1, msg.headers())
        self.assertValidId(ids[0])
        self.assertEqual(senders[0].strip(), "<alice@client.test>")
        names = [n for n, _ in msg.headers()]
        first_own = min(names.index("X-Mailtrail-ID"), names.index("X-Mailtrail-Sender"))
        self.assertTrue(all(n in ("Received", "X-Mailtrail-Hop") for n in names[:first_own]),
                        "only Received: may precede the mailtrail headers: %s" % names)
        self.assertLess(max(names.index("X-Mailtrail-ID"),
                            names.index("X-Mailtrail-Sender")), names.index("From"))
        self.assertCleanHeaders(msg)
        self.assertEqual(self.rc.get("mt:qid:" + sent.qid), ids[0].strip())

    def test_subject_is_decoded_and_cut_at_a_character(self):
        # RFC 2047 words are decoded; the record keeps 64 bytes at most,
        # never half a character (here a 2-byte "é" straddles byte 64).
        tail = "x" * 21
        word = "=?UTF-8?B?" + base64.b64encode(("é" * 40).encode()).decode() + "?="
        sent = self.send("carol@client.test", ["dave@remote.test"],
                         "Résumé " + tail + " " + word)
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
        subj = self.wait_record(self.rc, tid)["subject"]
        self.assertLessEqual(len(subj.encode()), 64)
        self.assertTrue(subj.startswith("Résumé " + tail + " éé"), subj)
        self.assertTrue(set(subj[len(tail) + 8:]) <= {"é"}, subj)

    def test_null_sender_is_shown_as_angle_brackets(self):
        subj = self.subject("null")
        self.send("", ["bob@remote.test"], subj)
        msg = self.sink.by_subject(subj)
        self.assertValidId(msg.header("X-Mailtrail-ID"))
        self.assertEqual(msg.header("X-Mailtrail-Sender").strip(), "<>")

    def test_submitted_message_has_full_redis_record(self):
        subj = self.subject("record")
        before_ms = int(time.time() * 1000)
        sent = self.send("carol@client.test", ["dave@remote.test"], subj)
        msg = self.sink.by_subject(subj)
        tid = msg.header("X-Mailtrail-ID").strip()
        msgid = msg.header("Message-ID").strip().strip("<>")
        rec = self.wait_record(self.rc, tid)
        self.assertNotIn("id", rec)   # the key names it (layout 2)
        self.assertEqual(rec["subject"], subj[:64])     # ASCII: 64 bytes kept
        self.assertEqual(rec["dir"], "out")
        self.assertEqual(rec["qid"], sent.qid)
        self.assertEqual(rec["msgid"], msgid)
        self.assertEqual(rec["sender"], "carol@client.test")
        self.assertEqual(rec["nrcpt"], "1")
        self.assertEqual(rec["client_ip"], "127.0.0.1")
        self.assertTrue(rec.get("client_name"), rec)
        self.assertEqual(rec["helo"], "client.test")
        self.assertGreater(int(rec["size"]), 100)
        self.assertTrue(before_ms - 5000 <= int(rec["received"]) <= time.time() * 1000 + 5000,
                        rec["received"])
        self.assertEqual(rec["by"], "mta1.test")

        self.assertEqual(h.statuses(self.rc, tid), {"dave@remote.test": "queued"})
        evs = h.events(self.rc, tid)
        self.assertEqual([e["ev"] for e in evs], ["RECEIVE"], evs)
        self.assertIsInstance(evs[0]["t"], int)
        self.assertEqual(self.rc.get("mt:qid:" + sent.qid), tid)
        self.assertEqual(self.rc.zrange("mt:msgid:" + msgid, 0, -1), [tid])
        self.assertIsNotNone(self.rc.zscore("mt:from:carol@client.test", tid))
        self.assertIsNotNone(self.rc.zscore("mt:to:dave@remote.test", tid))
        stream = self.rc.xrange("mt:events", "-", "+")
        self.assertTrue(any(tid in json.dumps(fields) for _id, fields in stream),
                        "no mt:events entry mentions %s" % tid)

        self.assertFalse(self.rc.exists("mt:{%s}:rcpt" % tid, "mt:{%s}:path" % tid))
        for key in ("mt:{%s}" % tid, "mt:{%s}:ev" % tid,
                    "mt:qid:" + sent.qid, "mt:msgid:" + msgid,
                    "mt:from:carol@client.test", "mt:to:dave@remote.test"):
            ttl = self.rc.ttl(key)
            self.assertGreater(ttl, 29 * DAY, "TTL of %s is %s" % (key, ttl))
            self.assertLessEqual(ttl, 30 * DAY, "TTL of %s is %s" % (key, ttl))


class RecentSearch(MilterCase):
    """`mailtrail search` without --from or --to: the newest messages the
    real milter recorded, from the events stream."""

    def search(self, *args):
        r = subprocess.run([SEARCH_CLI, "-c", self.milter.conf, "--json", "search"]
                           + list(args), capture_output=True, text=True, timeout=60)
        return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr

    def test_search_without_filters_lists_the_newest_messages(self):
        rc = self.redis.client()
        tag = "recent-%d" % os.getpid()
        ids = []
        for n in range(3):
            sent = self.send("alice@client.test", ["bob@remote.test"],
                             "%s message %d" % (tag, n))
            ids.append(h.wait_for(lambda: rc.get("mt:qid:" + sent.qid), 10, "qid key"))
            self.sink.by_subject("%s message %d" % (tag, n))
        code, rows, err = self.search("--limit", "3")
        self.assertEqual(code, 0, err)
        self.assertEqual([r["id"] for r in rows], ids[::-1])
        self.assertEqual(rows[0]["sender"], "alice@client.test")
        code, rows, err = self.search("--limit", "100")
        self.assertEqual(len([r["id"] for r in rows]), len(set(r["id"] for r in rows)))
        self.assertGreaterEqual(len(rows), 3)
        code, rows, err = self.search("--subject", tag.upper() + " MESSAGE 1")
        self.assertEqual((code, [r["id"] for r in rows]), (0, [ids[1]]), err)
        code, rows, err = self.search("--since", "2099-01-01")
        self.assertEqual(code, 1, err)
        self.assertEqual(rows, [])
        code, rows, err = self.search("--until", "2001-01-01")
        self.assertEqual(code, 1, err)


class InboundOff(unittest.TestCase):
    """TrackInbound no: mail from outside passes untraced, its forged
    X-Mailtrail-* headers still removed; submissions are traced."""

    def test_outside_mail_gets_no_id_and_no_record(self):
        redis = h.Redis().start()
        sink = h.Sink().start()
        milter = h.Milter(redis.address, binary=MILTER, name="milter-noin",
                          extra={"TrackInbound": "no"}).start()
        pf = h.Postfix(sink.port, milters=[milter.postfix_spec]).start()
        try:
            rc = redis.client()
            sent = h.swaks(pf.port, "eve@outside.example", "bob@remote.test",
                           header_lines=["X-Mailtrail-ID: " + "0" * 26 + "." + "0" * 16],
                           xclient="ADDR=203.0.113.5 NAME=mx.example.net",
                           subject="outside %d" % time.monotonic_ns())
            msg = sink.find(lambda m: sent.qid in (m.header("Received") or ""))
            self.assertEqual(msg.header_values("X-Mailtrail-ID"), [])
            self.assertIsNone(rc.get("mt:qid:" + sent.qid))
            data = h.make_message("alice@client.test", "bob@remote.test", "inside")
            s2 = h.smtp_send(pf.port, "alice@client.test", ["bob@remote.test"], data)
            tid = h.wait_for(lambda: rc.get("mt:qid:" + s2.qid), 10, "qid key")
            self.assertEqual(rc.hget("mt:{%s}" % tid, "dir"), "out")
        finally:
            pf.stop()
            h.assert_clean_stop(milter)
            sink.stop()
            redis.stop()


class ForgedHeaders(MilterCase):
    def test_headers_from_external_client_are_removed(self):
        # TrackInbound yes (the default): the forged headers go first, then
        # the message gets an ID of ours and a record with dir=in.
        forged = "0" * 26 + "." + "0" * 16
        sent = h.swaks(self.postfix.port, "eve@outside.example", "bob@remote.test",
                       header_lines=["X-Mailtrail-ID: " + forged,
                                     "X-Mailtrail-Sender: boss@client.test",
                                     "X-Mailtrail-Hop: n=1; by=evil; ip=1.2.3.4"],
                       xclient="ADDR=203.0.113.5 NAME=mx.example.net",
                       subject=self.subject("ext"))
        msg = self.sink.find(lambda m: sent.qid and sent.qid in (m.header("Received") or ""))
        ids = [v.strip() for v in msg.header_values("X-Mailtrail-ID")]
        self.assertEqual(len(ids), 1, ids)
        self.assertNotEqual(ids[0], forged)
        self.assertValidId(ids[0])
        self.assertEqual([v.strip() for v in msg.header_values("X-Mailtrail-Sender")],
                         ["<eve@outside.example>"])
        for hop in msg.header_values("X-Mailtrail-Hop"):
            # only this MTA's own hop may remain, never the client's copy
            self.assertNotIn("by=evil", hop)
            self.assertIn("by=mta1.test", hop)
            self.assertIn("ip=203.0.113.5", hop)
        self.assertEqual(self.rc.get("mt:qid:" + sent.qid), ids[0])
        rec = self.wait_record(self.rc, ids[0])
        self.assertEqual((rec["dir"], rec["sender"], rec["client_ip"]),
                         ("in", "eve@outside.example", "203.0.113.5"))
        self.assertFalse(self.rc.exists("mt:{%s}" % forged))

    def test_valid_id_from_external_client_is_removed(self):
        subj = self.subject("real")
        self.send("alice@client.test", ["bob@remote.test"], subj)
        real = self.sink.by_subject(subj).header("X-Mailtrail-ID").strip()
        sent = h.swaks(self.postfix.port, "eve@outside.example", "bob@remote.test",
                       header_lines=["X-Mailtrail-ID: " + real],
                       xclient="ADDR=203.0.113.5 NAME=mx.example.net",
                       subject=self.subject("replay"))
        msg = self.sink.find(lambda m: sent.qid in (m.header("Received") or ""))
        ids = [v.strip() for v in msg.header_values("X-Mailtrail-ID")]
        self.assertEqual(len(ids), 1, ids)
        self.assertNotEqual(ids[0], real)
        self.assertEqual(len(h.events(self.rc, real)), 1,
                         "an external replay of a valid ID added to its record")

    def test_forged_id_from_internal_client_is_replaced(self):
        forged = "1" * 26 + "." + "2" * 16
        subj = self.subject("int")
        self.send("alice@client.test", ["bob@remote.test"], subj,
                  extra_headers=["X-Mailtrail-ID: " + forged, "X-Other: x"])
        msg = self.sink.by_subject(subj)
        ids = msg.header_values("X-Mailtrail-ID")
        self.assertEqual(len(ids), 1, ids)
        self.assertValidId(ids[0])
        self.assertNotEqual(ids[0].strip(), forged)
        self.assertEqual(msg.header("X-Other"), "x")
        self.assertFalse(self.rc.exists("mt:{%s}" % forged))


class TwoHops(MilterCase):
    def test_valid_id_is_kept_across_second_mailtrail_hop(self):
        sink = h.Sink().start()
        key_dir = h.make_workdir("key")
        secret = h.make_secret(key_dir)
        # mta1 reaches mta2 from 127.0.0.1: a site MTA of mta2's.
        m2 = h.Milter(self.redis.address, binary=MILTER, secret_file=secret,
                      name="milter2", extra={"SiteMTAs": "127.0.0.1/32"}).start()
        m1 = h.Milter(self.redis.address, binary=MILTER, secret_file=secret,
                      name="milter1").start()
        mta2 = h.Postfix(sink.port, hostname="mta2.test", milters=[m2.postfix_spec]).start()
        mta1 = h.Postfix(mta2.port, hostname="mta1.test", milters=[m1.postfix_spec]).start()
        try:
            subj = self.subject("chain")
            sent = self.send("alice@client.test", ["bob@remote.test"], subj, port=mta1.port)
            msg = sink.by_subject(subj, timeout=60)
            tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
            self.assertEqual([v.strip() for v in msg.header_values("X-Mailtrail-ID")], [tid])
            self.assertEqual(len(msg.header_values("X-Mailtrail-Sender")), 1)
            evs = h.wait_for(lambda: len(h.events(self.rc, tid)) >= 2 and h.events(self.rc, tid),
                             10, "second RECEIVE event")
            self.assertEqual([e["ev"] for e in evs], ["RECEIVE", "RECEIVE"], evs)
            # Layout 2: the record holds the first MTA's facts; the later
            # MTA's RECEIVE says its own.
            rec = self.rc.hgetall("mt:{%s}" % tid)
            self.assertEqual((rec["by"], rec["qid"]), ("mta1.test", sent.qid))
            self.assertNotIn("qid", evs[0])
            self.assertEqual(evs[1].get("by"), "mta2.test", evs)
            self.assertNotEqual(evs[1].get("qid"), sent.qid, evs)
        finally:
            mta1.stop()
            mta2.stop()
            assert_clean_stop(m1)
            assert_clean_stop(m2)


class Transactions(MilterCase):
    def test_two_messages_and_rset_on_one_connection_get_own_ids(self):
        sb, sc = self.subject("B"), self.subject("C")
        tag = str(time.monotonic_ns())
        a, b, c = ("rset-a%s@client.test" % tag, "second-b%s@client.test" % tag,
                   "third-c%s@client.test" % tag)
        with smtplib.SMTP("127.0.0.1", self.postfix.port, local_hostname="client.test",
                          timeout=30) as s:
            s.ehlo("client.test")
            self.assertEqual(s.mail(a)[0], 250)
            self.assertEqual(s.rcpt("rset-rcpt%s@remote.test" % tag)[0], 250)
            self.assertEqual(s.rset()[0], 250)
            sent_b = h.smtp_transaction(s, b, ["b1@remote.test"],
                                        h.make_message(b, "b1@remote.test", sb))
            sent_c = h.smtp_transaction(s, c, ["c1@remote.test", "c2@remote.test"],
                                        h.make_message(c, "c1, c2", sc))
        mb, mc = self.sink.by_subject(sb), self.sink.by_subject(sc)
        idb, idc = mb.header("X-Mailtrail-ID").strip(), mc.header("X-Mailtrail-ID").strip()
        self.assertValidId(idb)
        self.assertValidId(idc)
        self.assertNotEqual(idb, idc)
        self.assertEqual(mb.header("X-Mailtrail-Sender").strip(), "<%s>" % b)
        self.assertEqual(mc.header("X-Mailtrail-Sender").strip(), "<%s>" % c)
        rb, rcr = self.wait_record(self.rc, idb), self.wait_record(self.rc, idc)
        self.assertEqual((rb["sender"], rb["nrcpt"], rb["qid"]), (b, "1", sent_b.qid))
        self.assertEqual((rcr["sender"], rcr["nrcpt"], rcr["qid"]), (c, "2", sent_c.qid))
        self.assertEqual(set(h.statuses(self.rc, idb)), {"b1@remote.test"})
        self.assertEqual(set(h.statuses(self.rc, idc)),
                         {"c1@remote.test", "c2@remote.test"})
        self.assertFalse(self.rc.exists("mt:from:" + a))
        self.assertFalse(self.rc.exists("mt:to:rset-rcpt%s@remote.test" % tag))
        self.assertEqual(len(h.events(self.rc, idb)), 1)
        self.assertEqual(len(h.events(self.rc, idc)), 1)


class HostileSenders(MilterCase):
    SENDERS = {
        "quoted": ('"john ; doe\\"x y"@example.com', []),
        "utf8": ("jörg.ümlaut@exämple.test", ["SMTPUTF8"]),
        "long": ("a" * 990 + "@example.com", []),
        "very_long": ("b" * 1900 + "@example.com", []),
        "tab": ('"tab\there"@example.com', []),
        "control": ('"ctl\x01x\x1b[31m"@example.com', []),
        "delete": ('"del\x7fx"@example.com', []),
    }

    def test_hostile_senders_give_clean_headers_and_records(self):
        for name, (sender, opts) in self.SENDERS.items():
            with self.subTest(sender=name):
                subj = self.subject(name)
                data = h.make_message("hostile@client.test", "bob@remote.test", subj)
                sent = h.smtp_send(self.postfix.port, sender, ["bob@remote.test"], data,
                                   mail_options=opts)
                msg = self.sink.by_subject(subj)
                self.assertCleanHeaders(msg)
                self.assertValidId(msg.header("X-Mailtrail-ID"))
                hdr = msg.header("X-Mailtrail-Sender")
                self.assertIsNotNone(hdr, "no X-Mailtrail-Sender for %s" % name)
                self.assertIsNone(CONTROL.search(hdr.replace("\r\n", "")), repr(hdr))
                tid = msg.header("X-Mailtrail-ID").strip()
                rec = self.wait_record(self.rc, tid)
                self.assertEqual(rec["qid"], sent.qid)
                self.assertIsNone(re.search(r"[\x00-\x1f\x7f]", rec["sender"]),
                                  repr(rec["sender"]))
                self.assertTrue(rec["sender"], "empty sender field for %s" % name)
                if name in ("quoted", "utf8"):
                    self.assertEqual(rec["sender"], sender)
                    self.assertEqual(hdr.strip(), "<%s>" % sender)


class RedisOutage(MilterCase):
    TOTAL = 500

    def test_redis_outage_during_500_messages_loses_and_duplicates_nothing(self):
        red = h.Redis(persistent=True).start()
        sink = h.Sink().start()
        milter = h.Milter(red.address, binary=MILTER, name="milter-outage",
                          extra={"RedisTimeout": "500"}).start()
        pf = h.Postfix(sink.port, hostname="mta1.test", milters=[milter.postfix_spec]).start()
        try:
            t0 = time.monotonic()
            src = subprocess.Popen(
                ["/usr/sbin/smtp-source", "-m", str(self.TOTAL), "-s", "5", "-l", "1024",
                 "-f", "outage@client.test", "-t", "sink@remote.test",
                 "-M", "client.test", "127.0.0.1:%d" % pf.port],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

            def accepted():
                return sum(1 for l in milter.lines() if ", store=" in l)
            h.wait_for(lambda: accepted() >= 150, 120, "150 messages", interval=0.02)
            red.stop()
            h.wait_for(lambda: accepted() >= 350, 120, "350 messages", interval=0.02)
            red.start()
            out, _ = src.communicate(timeout=180)
            self.assertEqual(src.returncode, 0, out)
            sink.wait_count(self.TOTAL, timeout=180)
            delivered = time.monotonic() - t0
            rc = red.client()
            h.wait_for(lambda: not milter.spooled()
                       and len(h.record_keys(rc)) >= self.TOTAL, 120,
                       "spool to drain", interval=0.2)
            time.sleep(1)  # a late duplicate replay would show now
            self.assertEqual(milter.corrupt(), [])
            ids = h.record_keys(rc)
            self.assertEqual(len(ids), self.TOTAL)
            qids = set()
            for tid in ids:
                evs = h.events(rc, tid)
                self.assertEqual([e["ev"] for e in evs].count("RECEIVE"), 1, (tid, evs))
                qids.add(rc.hget("mt:{%s}" % tid, "qid"))
            self.assertEqual(len(qids), self.TOTAL)
            stores = [m.group("store") for m in milter.kv_lines()]
            self.assertEqual(len(stores), self.TOTAL)
            self.assertGreater(stores.count("spool"), 0)
            self.assertGreater(stores.count("redis"), 0)
            # A spooled record reaches Redis with a SPOOL event, unless the
            # write that timed out had in fact landed just as Redis went
            # down: then the replay is a duplicate and adds nothing.
            spooled = [m.group("id") for m in milter.kv_lines() if m.group("store") == "spool"]
            with_spool_event = [t for t in spooled
                                if "SPOOL" in [e["ev"] for e in h.events(rc, t)]]
            self.assertGreater(len(with_spool_event), len(spooled) // 2,
                               "%d of %d spooled records have a SPOOL event"
                               % (len(with_spool_event), len(spooled)))
            delivered_ids = {m.header("X-Mailtrail-ID").strip() for m in sink.messages}
            self.assertEqual(delivered_ids, ids)
            self.assertLess(delivered, 150, "delivery took %.1fs" % delivered)
        finally:
            pf.stop()
            assert_clean_stop(milter)
            red.stop()


class LogLines(MilterCase):
    def test_accepted_message_logs_one_kv_line(self):
        subj = self.subject("kv")
        sent = self.send("lisa@client.test", ["r1@remote.test", "r2@remote.test"], subj)
        tid = self.sink.by_subject(subj).header("X-Mailtrail-ID").strip()
        m = self.milter.wait_kv_for_qid(sent.qid)
        self.assertEqual(m.group("id"), tid)
        self.assertEqual(m.group("sender"), "lisa@client.test")
        self.assertEqual(m.group("nrcpt"), "2")
        self.assertEqual(m.group("client_ip"), "127.0.0.1")
        # Postfix logs a client without a name as unknown[IP]; the line must join it.
        self.assertEqual(m.group("client_name"), "unknown")
        self.assertEqual((m.group("geo"), m.group("cc")), ("-", "-"))
        self.assertEqual(m.group("store"), "redis")
        self.assertEqual(int(m.group("pid")), self.milter.pid)
        self.assertEqual(sum(1 for l in self.milter.lines() if (": %s: " % sent.qid) in l), 1)

    def test_json_log_format_gives_one_object_per_message(self):
        sink = h.Sink().start()
        milter = h.Milter(self.redis.address, binary=MILTER, log_format="json",
                          name="milter-json").start()
        pf = h.Postfix(sink.port, milters=[milter.postfix_spec]).start()
        try:
            subj = self.subject("json")
            sent = self.send("jason@client.test", ["r@remote.test"], subj, port=pf.port)
            tid = sink.by_subject(subj).header("X-Mailtrail-ID").strip()
            line = milter.wait_log(lambda l: sent.qid in l and "{" in l, what="json line")
            obj = json.loads(line.split(": ", 1)[1])
            self.assertEqual(obj["qid"], sent.qid)
            self.assertEqual(obj["id"], tid)
            self.assertEqual(obj["from"], "jason@client.test")
            self.assertEqual(obj["nrcpt"], 1)
            self.assertEqual(obj["client_ip"], "127.0.0.1")
            self.assertIn("client_name", obj)
            self.assertIsNone(obj.get("lat"))
            self.assertIsNone(obj.get("lon"))
            self.assertIsNone(obj.get("cc"))
            self.assertIsInstance(obj["hops"], int)
            self.assertEqual(obj["store"], "redis")
            self.assertEqual(h.KV_LOG_RE.match(line), None)
        finally:
            pf.stop()
            assert_clean_stop(milter)


class ConfigCheck(unittest.TestCase):
    def setUp(self):
        self.dir = h.make_workdir("conf")
        self.secret = h.make_secret(self.dir)

    def write(self, name, lines):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def base(self, secret=None):
        return ["# mailtrail test config", "Socket unix:%s/m.sock" % self.dir,
                "RedisServer 127.0.0.1:6399", "RedisPrefix mt:", "RetentionDays 30",
                "SecretKeyFile %s" % (secret or self.secret), "SpoolDir %s" % self.dir,
                "LogFormat kv", "UMask 000"]

    def check(self, path):
        return subprocess.run([MILTER, "-n", "-c", path], capture_output=True, text=True,
                              timeout=30)

    def test_good_config_passes_check(self):
        r = self.check(self.write("good.conf", self.base()))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unknown_key_fails_check_with_file_and_line(self):
        path = self.write("bad.conf", self.base() + ["", "NoSuchKey yes"])
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:11" % path, r.stdout + r.stderr)

    def test_malformed_value_fails_check_with_file_and_line(self):
        lines = self.base()
        lines[4] = "RetentionDays thirty"
        path = self.write("bad2.conf", lines)
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:5" % path, r.stdout + r.stderr)

    def test_group_readable_secret_key_is_refused(self):
        os.chmod(self.secret, 0o640)
        r = self.check(self.write("loose.conf", self.base()))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(self.secret, r.stdout + r.stderr)

    def test_missing_config_file_fails_check(self):
        r = self.check(os.path.join(self.dir, "absent.conf"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_check_refuses_a_socket_postfix_cannot_connect_to(self):
        # Root's socket, mode 0770 under the default UMask: Postfix's user
        # is out, and mail would flow untagged.
        lines = [l for l in self.base() if not l.startswith("UMask")]
        r = self.check(self.write("closed.conf", lines))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("the socket will be mode 0770, owner 0:root, which user "
                      "postfix cannot connect to", r.stderr)
        self.assertIn("UserID mailtrail:postfix", r.stderr)

    def test_check_refuses_a_spool_userid_cannot_write_and_passes_once_fixed(self):
        os.chmod(self.dir, 0o755)
        spool = os.path.join(self.dir, "spool")
        os.mkdir(spool, 0o700)
        lines = [l for l in self.base() if not l.startswith(("UMask", "SpoolDir"))]
        path = self.write("user.conf", lines + ["UserID nobody:postfix",
                                                "SpoolDir %s" % spool])
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("SpoolDir %s: UserID nobody:postfix cannot write it "
                      "(mode 0700, owner 0:0)" % spool, r.stderr)
        os.chown(spool, pwd.getpwnam("nobody").pw_uid, -1)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("configuration OK", r.stdout)

    def test_help_is_usage_on_stdout(self):
        for flag in ("--help", "-h"):
            r = subprocess.run([MILTER, flag], capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("usage: mailtrail-milter", r.stdout)


class StartLine(MilterCase):
    def test_starting_line_says_whether_redis_answered(self):
        up = h.Milter(self.redis.address, binary=MILTER, name="milter-up").start()
        down = h.Milter("127.0.0.1:%d" % h.free_port(), binary=MILTER,
                        name="milter-down").start()
        try:
            line = up.wait_log(lambda t: "starting:" in t, what="starting line")
            self.assertRegex(up.read_log(), r"starting: socket .*, redis answered")
            down.wait_log(lambda t: "starting:" in t, what="starting line")
            self.assertRegex(down.read_log(), r"starting: socket .*, redis not "
                             r"answering \(.*\): records wait in the spool until it does")
            self.assertTrue(line)
        finally:
            up.stop()
            down.stop()


class Reload(MilterCase):
    def test_sighup_switches_log_format_and_keeps_running(self):
        sink = h.Sink().start()
        milter = h.Milter(self.redis.address, binary=MILTER, name="milter-hup").start()
        pf = h.Postfix(sink.port, milters=[milter.postfix_spec]).start()
        try:
            s1 = self.send("kv@client.test", ["r@remote.test"], self.subject("kv"),
                           port=pf.port)
            milter.wait_kv_for_qid(s1.qid)
            milter.write_config(LogFormat="json")
            milter.hup()
            time.sleep(1)
            self.assertTrue(milter.running(), milter.read_log()[-2000:])
            subj = self.subject("json")
            s2 = self.send("js@client.test", ["r@remote.test"], subj, port=pf.port)
            sink.by_subject(subj)
            line = milter.wait_log(lambda l: s2.qid in l, what="line of %s" % s2.qid)
            obj = json.loads(line.split(": ", 1)[1])
            self.assertEqual(obj["qid"], s2.qid)
            self.assertTrue(milter.running())
        finally:
            pf.stop()
            assert_clean_stop(milter)


if __name__ == "__main__":
    unittest.main()
