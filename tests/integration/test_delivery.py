"""
Delivery results from Postfix's own log: one message to three recipients,
each sent by transport_maps to another loopback server (accepting sink,
closed port, smtp-sink answering 550), followed by `mailtrail logwatch` from
the maillog_file of a real Postfix. Also restart and rotation of the log,
and lines nobody but Postfix's delivery programs may be believed for.
"""

import json
import os
import re
import signal
import smtplib
import subprocess
import time
import unittest

import harness as h
import delivery_support as ds


class DeliveryStatus(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = h.Redis().start()
        cls.rc = cls.redis.client()
        cls.sink = h.Sink().start()
        cls.reject_port = ds.rejecting_sink()
        cls.closed_port = ds.refused_port()
        cls.milter = h.Milter(cls.redis.address, name="milter-dlv").start()
        routes = {"ok.test": cls.sink.port, "defer.test": cls.closed_port,
                  "bounce.test": cls.reject_port}
        # A second outbound transport under its own syslog_name, as a
        # multi-instance or per-IP setup has it.
        tmap = ds.transport_map(routes)[:-1] + \
            ", out.test=out:[127.0.0.1]:%d}" % cls.sink.port
        cls.pf = h.Postfix(cls.sink.port, hostname="dlv.test",
                           milters=[cls.milter.postfix_spec],
                           extra={"transport_maps": tmap})
        with open(os.path.join(cls.pf.etc, "master.cf"), "a") as f:
            f.write("out unix - - n - - smtp -o syslog_name=postfix-out\n")
        cls.pf.start()
        cls.work = h.make_workdir("logwatch")
        # The one message of the issue: sent, deferred and bounced at once.
        data = h.make_message("Alice <alice@dlv.test>", "three recipients",
                              "three outcomes")
        sent = h.smtp_send(cls.pf.port, "alice@dlv.test",
                           ["ok@ok.test", "later@defer.test",
                            "nope@bounce.test"], data)
        cls.qid = sent.qid
        cls.id = ds.id_of_qid(cls.rc, cls.qid)
        ds.wait_maillog(cls.pf, lambda t: all(
            ("%s: to=<%s>" % (cls.qid, r)) in t and
            any(("to=<%s>" % r) in l and ("status=" + s) in l
                for l in t.splitlines() if cls.qid in l)
            for r, s in (("ok@ok.test", "sent"), ("later@defer.test",
                                                  "deferred"),
                         ("nope@bounce.test", "bounced"))),
            what="three delivery results of %s" % cls.qid)
        cls.first_log = cls.pf.read_maillog()   # later tests rotate it

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        cls.milter.stop()
        cls.redis.stop()

    def state(self, name):
        return os.path.join(self.work, name + ".state")

    def events(self, tid=None):
        return h.events(self.rc, tid or self.id)

    def logwatch_once(self, path, state):
        r = ds.cli(self.milter.conf, "--json", "logwatch", "--once",
                   "--state", state, path)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_1_sent_deferred_bounced_per_recipient(self):
        self.logwatch_once(self.pf.maillog, self.state("main"))
        st = h.statuses(self.rc, self.id)
        self.assertEqual(st, {"ok@ok.test": "sent",
                              "later@defer.test": "deferred",
                              "nope@bounce.test": "bounced"})
        evs = {e["rcpt"]: e for e in self.events() if e["ev"] in
               ("SEND", "BOUNCE")}
        send = evs["ok@ok.test"]
        self.assertEqual(send["relay"], "127.0.0.1[127.0.0.1]:%d" % self.sink.port)
        self.assertEqual(send["dsn"], "2.0.0")
        self.assertEqual(send["status"], "sent")
        self.assertEqual(send["service"], "postfix/smtp")
        self.assertEqual(send["qid"], self.qid)
        self.assertIn("250", send["reply"])
        bounce = evs["nope@bounce.test"]
        self.assertTrue(bounce["dsn"].startswith("5."), bounce)
        self.assertIn("550 5.1.1", bounce["reason"])
        defer = [e for e in self.events() if e["ev"] == "DEFER"][0]
        self.assertEqual(defer["rcpt"], "later@defer.test")
        self.assertTrue(defer["dsn"].startswith("4."))
        self.assertIn("refused", defer["reason"].lower())
        # The same events reach the stream, like RECEIVE does.
        kinds = [f["ev"] for _id, f in self.rc.xrange("mt:events")
                 if f["id"] == self.id]
        self.assertIn("SEND", kinds)
        self.assertIn("BOUNCE", kinds)
        self.assertIn("DEFER", kinds)
        # Layout 2: each event carries its fingerprint; no key of its own.
        self.assertFalse(self.rc.exists("mt:{%s}:seen" % self.id))
        fps = [e["fp"] for e in self.events() if e["ev"] != "RECEIVE"]
        self.assertEqual(len(fps), len(set(fps)), fps)
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{16}", f) for f in fps), fps)

    def test_2_status_and_trace_show_the_results(self):
        self.logwatch_once(self.pf.maillog, self.state("main"))
        r = ds.cli(self.milter.conf, "--json", "status", self.qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["recipients"]["ok@ok.test"], "sent")
        r = ds.cli(self.milter.conf, "status", self.id)
        self.assertRegex(r.stdout, r"nope@bounce\.test\s+bounced\s+\S+ BOUNCE")
        r = ds.cli(self.milter.conf, "trace", self.id)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("SEND", r.stdout)
        self.assertIn("service=postfix/smtp", r.stdout)

    def test_3_rerun_and_lost_state_add_no_duplicates(self):
        self.logwatch_once(self.pf.maillog, self.state("main"))
        before = self.rc.lrange("mt:{%s}:ev" % self.id, 0, -1)
        self.logwatch_once(self.pf.maillog, self.state("main"))
        os.unlink(self.state("main"))          # as if the state was lost
        out = self.logwatch_once(self.pf.maillog, self.state("main"))
        after = self.rc.lrange("mt:{%s}:ev" % self.id, 0, -1)
        # Deferrals may have been retried meanwhile; nothing else is new.
        self.assertEqual([e for e in after if '"DEFER"' not in e],
                         [e for e in before if '"DEFER"' not in e])
        self.assertEqual(len(after), len(set(after)), "duplicate events")
        self.assertGreater(out["duplicate"], 0)

    def test_4_follower_killed_mid_log_resumes_without_duplicates(self):
        state = self.state("kill")
        f = ds.Follower(self.milter.conf, self.pf.maillog, state).start()
        sent = [h.smtp_send(self.pf.port, "alice@dlv.test", ["k%d@ok.test" % i],
                            h.make_message("a@dlv.test", "k", "kill %d" % i))
                for i in range(3)]
        ids = [ds.id_of_qid(self.rc, s.qid) for s in sent]
        h.wait_for(lambda: any(e["ev"] == "SEND" for e in self.events(ids[0])),
                   30, "first SEND applied")
        f.stop(signal.SIGKILL)                 # no clean shutdown
        more = [h.smtp_send(self.pf.port, "alice@dlv.test", ["m%d@ok.test" % i],
                            h.make_message("a@dlv.test", "m", "more %d" % i))
                for i in range(3)]
        ids += [ds.id_of_qid(self.rc, s.qid) for s in more]
        ds.wait_maillog(self.pf, lambda t: all(
            ("%s: to=<" % s.qid) in t for s in more), what="new deliveries")
        f2 = ds.Follower(self.milter.conf, self.pf.maillog, state).start()
        for tid in ids:
            h.wait_for(lambda: any(e["ev"] == "SEND" for e in self.events(tid)),
                       30, "SEND of %s" % tid)
        f2.stop()
        for tid in ids:
            sends = [e for e in self.events(tid) if e["ev"] == "SEND"]
            self.assertEqual(len(sends), 1, sends)
            self.assertEqual(list(h.statuses(self.rc, tid).values()), ["sent"])

    def test_5_rotation_by_rename_and_by_truncate_during_a_run(self):
        state = self.state("rotate")
        f = ds.Follower(self.milter.conf, self.pf.maillog, state).start()

        def send_and_wait(tag):
            s = h.smtp_send(self.pf.port, "alice@dlv.test", [tag + "@ok.test"],
                            h.make_message("a@dlv.test", tag, tag))
            tid = ds.id_of_qid(self.rc, s.qid)
            h.wait_for(lambda: any(e["ev"] == "SEND" for e in self.events(tid)),
                       40, "SEND of %s (%s)" % (tag, s.qid))
            return tid

        a = send_and_wait("before-rotation")
        # Postfix's own rotation: rename maillog, postlogd opens a new one.
        self.pf.ns("postfix", "logrotate")
        b = send_and_wait("after-rename")
        os.truncate(self.pf.maillog, 0)        # copytruncate-style rotation
        c = send_and_wait("after-truncate")
        self.assertEqual(f.stop(), 0)
        for tid in (a, b, c):
            self.assertEqual(
                len([e for e in self.events(tid) if e["ev"] == "SEND"]), 1)
        self.assertNotIn("cannot", f.stderr())

    def test_6_unparsable_lines_are_counted_never_fatal(self):
        path = os.path.join(self.work, "garbage.log")
        with open(path, "wb") as out:
            out.write(b"\x00\xff garbage\n")
            out.write(b"Nov 21 23:15:00 h postfix/smtp[1]: Q1: to=<a@b>, "
                      b"relay=x, status=weird (x)\n")
            out.write(b"x" * 20000 + b"\n")
            out.write(b"Nov 21 23:15:00 h postfix/smtpd[1]: connect from x[1.2.3.4]\n")
            out.write(b"Nov 21 23:15:00 h postfix/smtp[1]: UNTRACKED1: to=<a@b.test>, "
                      b"relay=x, delay=1, dsn=2.0.0, status=sent (250 ok)\n")
        out = self.logwatch_once(path, self.state("garbage"))
        self.assertEqual(out["lines"], 5)
        self.assertEqual(out["unparsable"], 3)
        self.assertEqual(out["results"], 1)
        self.assertEqual(out["tracked"], 0)

    def test_7_standard_input(self):
        text = "\n".join(ds.delivery_lines(self.first_log, [self.qid]))
        r = subprocess.run([ds.CLI, "-c", self.milter.conf, "--json", "logwatch", "-"],
                           input=text + "\n", capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertGreaterEqual(out["tracked"], 3)
        self.assertEqual(out["written"], 0)    # all applied before

    def send_quoted_sender(self, sender, rcpts):
        """MAIL FROM:<sender> as written (smtplib would re-quote it)."""
        data = h.make_message("Mallory <m@site.test>", "quoted sender",
                              "quoted %s" % time.time())
        with smtplib.SMTP("127.0.0.1", self.pf.port, local_hostname="c.test",
                          timeout=30) as s:
            s.ehlo("c.test")
            code, msg = s.docmd("MAIL", "FROM:<%s>" % sender)
            self.assertEqual(code, 250, msg)
            for r in rcpts:
                code, msg = s.rcpt(r)
                self.assertEqual(code, 250, msg)
            code, msg = s.data(data)
            self.assertEqual(code, 250, msg)
        return h.qid_from_reply(msg.decode())

    def wait_sent(self, qid, rcpts):
        ds.wait_maillog(self.pf, lambda t: all(
            any(("%s: to=<%s>" % (qid, r)) in l and "status=sent" in l
                for l in t.splitlines()) for r in rcpts),
            what="status=sent of %s" % qid)

    def test_8_sender_quoting_a_status_field_bounces_nothing(self):
        rcpts = ["q1@ok.test", "q2@ok.test", "q3@ok.test"]
        qid = self.send_quoted_sender('"x, status=expired"@site', rcpts)
        tid = ds.id_of_qid(self.rc, qid)
        self.wait_sent(qid, rcpts)
        # Postfix logs the sender as it came, quotes and all.
        self.assertIn('%s: from=<"x, status=expired"@site>, size=' % qid,
                      self.pf.read_maillog())
        out = self.logwatch_once(self.pf.maillog, self.state("quoted"))
        self.assertEqual(h.statuses(self.rc, tid),
                         {r: "sent" for r in rcpts})
        evs = self.events(tid)
        self.assertEqual([e for e in evs if e["ev"] == "BOUNCE"], [])
        self.assertEqual(sorted(e["rcpt"] for e in evs if e["ev"] == "SEND"),
                         rcpts)
        self.assertEqual(out["ignored"], 0)

    def test_9_forged_lines_in_postfixs_log_change_nothing(self):
        rcpt = "forge@ok.test"
        sent = h.smtp_send(self.pf.port, "alice@dlv.test", [rcpt],
                           h.make_message("a@dlv.test", rcpt, "forged"))
        tid = ds.id_of_qid(self.rc, sent.qid)
        self.wait_sent(sent.qid, [rcpt])
        # What a local user gets into a log: logger(1) and syslog(3) take
        # any tag and pid; postlog(1) without -t writes postfix/postlog.
        now = time.strftime("%b %d %H:%M:%S")
        result = ("%s: to=<%s>, relay=none, delay=1, delays=0/0/1/0, "
                  "dsn=5.1.1, status=bounced (forged)" % (sent.qid, rcpt))
        expiry = "%s: from=<a@dlv.test>, status=expired, returned to sender" \
            % sent.qid
        forged = ["whatever[4242]: " + result, "logger: " + result,
                  "postfix/evil[1]: " + result, "evilfix/smtp[2]: " + result,
                  "postfix-out9/smtp[3]: " + result,
                  "postfix/postlog[4]: " + result,
                  "postfix/smtpd[5]: " + result, "evilfix/qmgr[6]: " + expiry,
                  "postfix/evil[7]: " + expiry]
        with open(self.pf.maillog, "a") as f:
            f.write("".join("%s dlv %s\n" % (now, l) for l in forged))
        out = self.logwatch_once(self.pf.maillog, self.state("forged"))
        self.assertEqual(h.statuses(self.rc, tid), {rcpt: "sent"})
        evs = self.events(tid)
        self.assertEqual([e["ev"] for e in evs if e["ev"] in
                          ("SEND", "DEFER", "BOUNCE")], ["SEND"])
        self.assertEqual(out["ignored"], len(forged))
        r = ds.cli(self.milter.conf, "logwatch", "--once", "--no-state",
                   self.pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%d ignored (not from a Postfix delivery program)"
                      % len(forged), r.stderr)
        self.assertIn("warning: ignoring a delivery line not written by a "
                      "Postfix delivery program", r.stderr)
        self.assertIn("evilfix/smtp[2]: " + sent.qid, r.stderr)

    def test_10_own_instance_name_counts_once_listed(self):
        rcpt = "multi@out.test"
        sent = h.smtp_send(self.pf.port, "alice@dlv.test", [rcpt],
                           h.make_message("a@dlv.test", rcpt, "instance"))
        tid = ds.id_of_qid(self.rc, sent.qid)
        ds.wait_maillog(self.pf, lambda t: (
            "postfix-out/smtp[" in t and "%s: to=<%s>" % (sent.qid, rcpt) in t),
            what="postfix-out/smtp line of %s" % sent.qid)
        out = self.logwatch_once(self.pf.maillog, self.state("instance"))
        self.assertEqual(h.statuses(self.rc, tid),
                         {rcpt: "queued"})
        self.assertGreaterEqual(out["ignored"], 1)
        conf = os.path.join(self.work, "instances.conf")
        with open(self.milter.conf) as f, open(conf, "w") as g:
            g.write(f.read() + "PostfixSyslogNames postfix, postfix-out\n")
        r = ds.cli(conf, "--json", "logwatch", "--once", "--no-state",
                   self.pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(h.statuses(self.rc, tid), {rcpt: "sent"})
        send = [e for e in self.events(tid) if e["ev"] == "SEND"]
        self.assertEqual([e["service"] for e in send], ["postfix-out/smtp"])


    def test_11_the_destination_server_and_its_place_join_the_send_event(self):
        """Postfix's real delivery line of a fresh message, its relay moved
        to a documentation address the test GeoDB places in Tokyo (the
        sink itself is on loopback, which no GeoDB places)."""
        s = h.smtp_send(self.pf.port, "alice@dlv.test", ["far@ok.test"],
                        h.make_message("a@dlv.test", "far", "far away"))
        tid = ds.id_of_qid(self.rc, s.qid)
        ds.wait_maillog(self.pf, lambda t: ("%s: to=<far@ok.test>" % s.qid) in t,
                        what="delivery of %s" % s.qid)
        lines = [l for l in self.pf.read_maillog().splitlines()
                 if ("%s: to=<far@ok.test>" % s.qid) in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"relay=[^,]*\[127\.0\.0\.1\]:\d+")
        moved = re.sub(r"relay=[^,]*\[127\.0\.0\.1\]:\d+",
                       "relay=mx.far.test[203.0.113.30]:25", lines[0])
        log = os.path.join(self.work, "far.log")
        with open(log, "w") as f:
            f.write(moved + "\n")
        db = os.path.join(os.environ.get("MT_TEST_MMDB_DIR", ""),
                          "city-maxmind.mmdb")
        self.assertTrue(os.path.exists(db), db)
        conf = os.path.join(self.work, "with-geodb.conf")
        with open(self.milter.conf) as f, open(conf, "w") as out:
            out.write(f.read() + "\nGeoDB %s\n" % db)
        r = ds.cli(conf, "--json", "logwatch", "--once", "--no-state", log)
        self.assertEqual(r.returncode, 0, r.stderr)
        send = [e for e in self.events(tid) if e["ev"] == "SEND"]
        self.assertEqual(len(send), 1, send)
        e = send[0]
        self.assertEqual(e["relay"], "mx.far.test[203.0.113.30]:25")
        self.assertEqual((e["ip"], e["cc"], e["city"]),
                         ("203.0.113.30", "JP", "Tokyo"))
        self.assertAlmostEqual(e["lat"], 35.6762, places=3)
        self.assertAlmostEqual(e["lon"], 139.6503, places=3)
        # Without a GeoDB the address is still named, and no place made up.
        s2 = h.smtp_send(self.pf.port, "alice@dlv.test", ["near@ok.test"],
                         h.make_message("a@dlv.test", "near", "near"))
        tid2 = ds.id_of_qid(self.rc, s2.qid)
        ds.wait_maillog(self.pf, lambda t: ("%s: to=<near@ok.test>" % s2.qid) in t,
                        what="delivery of %s" % s2.qid)
        r = self.logwatch_once(self.pf.maillog, self.state("near"))
        send = [e for e in self.events(tid2) if e["ev"] == "SEND"]
        self.assertEqual(len(send), 1, send)
        self.assertEqual(send[0]["ip"], "127.0.0.1")
        for k in ("lat", "lon", "cc", "city"):
            self.assertNotIn(k, send[0])


if __name__ == "__main__":
    unittest.main()
