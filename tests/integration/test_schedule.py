"""
Scheduled sending through a real Postfix: a submitted message with a future
Deferred-Delivery: waits in Postfix's hold queue until `mailtrail schedule
release --watch` sends it, within two seconds of its time, with postsuper -r
so that a hold longer than maximal_queue_lifetime (10 s here) bounces
nothing, and logwatch follows the new queue ID. Bad dates are refused at
submission, mail from outside is never held, a message an admin put on hold
stays there, and losing Redis or the watcher loses no scheduled message.
"""

import email.utils
import json
import os
import signal
import smtplib
import subprocess
import time
import unittest

import harness as h
import delivery_support as ds

LIFETIME = {"maximal_queue_lifetime": "10s", "bounce_queue_lifetime": "10s",
            "queue_run_delay": "2s", "minimal_backoff_time": "2s",
            "maximal_backoff_time": "4s"}


def rfc5322(t, zone_minutes=0):
    """t (unix seconds) as an RFC 5322 date in the given zone."""
    return email.utils.format_datetime(
        __import__("datetime").datetime.fromtimestamp(
            t, __import__("datetime").timezone(
                __import__("datetime").timedelta(minutes=zone_minutes))))


def hold_queue(pf):
    """{queue_id: entry} of Postfix's hold queue (postqueue -j)."""
    out = pf.ns("postqueue", "-j", check=False).stdout
    entries = [json.loads(l) for l in out.splitlines() if l.strip()]
    return {e["queue_id"]: e for e in entries if e["queue_name"] == "hold"}


class Watcher:
    """`mailtrail schedule release --watch` inside the Postfix namespace."""

    def __init__(self, pf, conf, log):
        self.pf, self.conf, self.log = pf, conf, log
        self.proc = None

    def start(self):
        self.err = open(self.log, "ab")
        self.proc = h.spawn(["nsenter", "-t", str(self.pf.master_pid), "-m",
                             "--", ds.CLI, "-c", self.conf, "schedule",
                             "release", "--watch"],
                            stdout=self.err, stderr=self.err)
        return self

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        rc = self.proc.wait(20)
        self.err.close()
        return rc

    def text(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Setup:
    @classmethod
    def start_all(cls, name):
        cls.redis = h.Redis().start()
        cls.rc = cls.redis.client()
        cls.sink = h.Sink().start()
        cls.closed = ds.refused_port()
        cls.milter = h.Milter(cls.redis.address, name="milter-" + name,
                              extra={"MaxDeferral": "1d"}).start()
        extra = dict(LIFETIME)
        extra["transport_maps"] = ds.transport_map(
            {"ok.test": cls.sink.port, "defer.test": cls.closed,
             "late.test": cls.closed})
        cls.pf = h.Postfix(cls.sink.port, hostname=name + ".test",
                           milters=[cls.milter.postfix_spec], extra=extra)
        cls.pf.start()
        cls.work = h.make_workdir(name)

    @classmethod
    def stop_all(cls):
        cls.pf.stop()
        cls.milter.stop()
        cls.redis.stop()

    @classmethod
    def submit(cls, subject, due=None, rcpts=("bob@ok.test",), xclient=None,
               date_text=None):
        extra = []
        if date_text is not None:
            extra.append("Deferred-Delivery: " + date_text)
        elif due is not None:
            extra.append("Deferred-Delivery: " + rfc5322(due, 60))
        data = h.make_message("Alice <alice@site.test>", ", ".join(rcpts),
                              subject, extra_headers=extra)
        return h.smtp_send(cls.pf.port, "alice@site.test", list(rcpts), data,
                           xclient=xclient)

    @classmethod
    def cli(cls, *args):
        """The command inside the Postfix namespace (postsuper needs it)."""
        return subprocess.run(["nsenter", "-t", str(cls.pf.master_pid), "-m",
                               "--", ds.CLI, "-c", cls.milter.conf] +
                              list(args), capture_output=True, text=True,
                              timeout=120)

    def arrival(self, subject, timeout):
        return self.sink.by_subject(subject, timeout).arrived

    def tid(self, qid):
        return ds.id_of_qid(self.rc, qid)


class ScheduledSending(Setup, unittest.TestCase):
    """One watcher; the messages are submitted together so waits overlap."""

    @classmethod
    def setUpClass(cls):
        cls.start_all("sched")
        cls.follower = ds.Follower(cls.milter.conf, cls.pf.maillog,
                                   os.path.join(cls.work, "lw.state")).start()
        cls.watcher = Watcher(cls.pf, cls.milter.conf,
                              os.path.join(cls.work, "watch.log")).start()
        cls.t0 = time.time()
        cls.due_a = int(cls.t0) + 20
        cls.a = cls.submit("due in twenty seconds", cls.due_a)
        cls.b = cls.submit("to be cancelled", int(cls.t0) + 40)
        cls.late = cls.submit("held past the queue lifetime", int(cls.t0) + 21,
                              rcpts=("x@late.test",))
        # Deferred by its destination, then put on hold by the admin: its
        # past Deferred-Delivery: and our ID do not make it ours.
        cls.e = cls.submit("held by the admin", int(cls.t0) - 3600,
                           rcpts=("carol@defer.test",))
        h.wait_for(lambda: "%s: to=<carol@defer.test>" % cls.e.qid in
                   cls.pf.read_maillog(), 30, "the first deferral")
        cls.pf.ns("postsuper", "-h", cls.e.qid)

    @classmethod
    def tearDownClass(cls):
        cls.watcher.kill(signal.SIGTERM)
        cls.follower.stop()
        cls.stop_all()

    def test_1_held_listed_then_sent_on_time_and_traced(self):
        tid = self.tid(self.a.qid)
        self.assertIn(self.a.qid, hold_queue(self.pf))
        rec = self.rc.hgetall("mt:{%s}" % tid)
        self.assertEqual(int(rec["send_at"]), self.due_a * 1000)
        self.assertEqual(h.statuses(self.rc, tid), {"bob@ok.test": "scheduled"})
        self.assertIsNotNone(self.rc.zscore("mt:sched", tid))
        line = self.milter.wait_kv_for_qid(self.a.qid)
        self.assertEqual(line.group("hold"), time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.due_a)))
        st = ds.cli(self.milter.conf, "status", tid).stdout
        self.assertRegex(st, r"send_at\s+" + time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.gmtime(self.due_a)))
        self.assertRegex(st, r"bob@ok\.test\s+scheduled")
        r = self.cli("--json", "schedule", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = {e["id"]: e for e in json.loads(r.stdout)}
        self.assertEqual(set(listed), {tid, self.tid(self.b.qid),
                                       self.tid(self.late.qid)})
        self.assertEqual(listed[tid]["sender"], "alice@site.test")
        self.assertEqual(listed[tid]["recipients"], ["bob@ok.test"])
        self.assertEqual(listed[tid]["subject"], "due in twenty seconds")
        self.assertEqual(listed[tid]["due_ms"], self.due_a * 1000)
        table = self.cli("schedule", "list").stdout
        self.assertIn("due in twenty seconds", table)
        # Not there ten seconds in; there between its time and 2 s after.
        time.sleep(max(0, self.t0 + 10 - time.time()))
        self.assertFalse([m for m in self.sink.messages
                          if m.header("Subject") == "due in twenty seconds"])
        arrived = self.arrival("due in twenty seconds", 40)
        self.assertGreaterEqual(arrived, self.due_a)
        self.assertLessEqual(arrived, self.due_a + 2)
        h.wait_for(lambda: any(e["ev"] == "SEND" for e in h.events(self.rc, tid)),
                   30, "SEND of the released message")
        evs = [e["ev"] for e in h.events(self.rc, tid)]
        self.assertEqual(evs, ["RECEIVE", "SCHEDULE", "RELEASE", "SEND"])
        self.assertIsNone(self.rc.zscore("mt:sched", tid))
        self.assertIn("released", self.watcher.text())
        r = ds.cli(self.milter.conf, "trace", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("due=" + time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                             time.gmtime(self.due_a)), r.stdout)
        pos = [r.stdout.find(x) for x in ("RECEIVE", "SCHEDULE", "RELEASE", "SEND")]
        self.assertTrue(all(p >= 0 for p in pos) and pos == sorted(pos), r.stdout)

    def test_2_held_past_the_queue_lifetime_is_sent_under_its_new_queue_id(self):
        # Its first attempt after release fails: a message as old as its
        # hold would bounce now (postsuper -H keeps the arrival time); a
        # requeued one waits for the next try, which the sink accepts.
        tid = self.tid(self.late.qid)
        first = h.wait_for(lambda: [e for e in h.events(self.rc, tid)
                                    if e["ev"] == "DEFER"], 60,
                           "DEFER of the released message")[0]
        self.assertNotEqual(first["qid"], self.late.qid)   # requeued: new ID
        self.assertEqual(self.rc.get("mt:qid:" + first["qid"]), tid)
        self.pf.postconf("transport_maps=" + ds.transport_map(
            {"ok.test": self.sink.port, "defer.test": self.closed,
             "late.test": self.sink.port}))
        self.pf.reload()
        self.pf.ns("postqueue", "-f")
        self.arrival("held past the queue lifetime", 60)
        h.wait_for(lambda: any(e["ev"] == "SEND" for e in h.events(self.rc, tid)),
                   30, "SEND")
        evs = [e["ev"] for e in h.events(self.rc, tid)]
        self.assertEqual(evs[:3], ["RECEIVE", "SCHEDULE", "RELEASE"])
        self.assertEqual(evs[-1], "SEND")
        send = [e for e in h.events(self.rc, tid) if e["ev"] == "SEND"][0]
        self.assertEqual(send["qid"], first["qid"])
        self.assertEqual(h.statuses(self.rc, tid), {"x@late.test": "sent"})
        log = self.pf.read_maillog()
        self.assertNotIn("status=expired", log)
        self.assertNotIn("status=bounced", log)

    def test_3_cancel_is_never_delivered(self):
        tid = self.tid(self.b.qid)
        r = self.cli("schedule", "cancel", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(self.b.qid, hold_queue(self.pf))
        self.assertEqual(h.statuses(self.rc, tid), {"bob@ok.test": "cancelled"})
        self.assertEqual(h.events(self.rc, tid)[-1]["ev"], "CANCEL")
        self.assertIsNone(self.rc.zscore("mt:sched", tid))
        r = self.cli("schedule", "cancel", tid)
        self.assertEqual(r.returncode, 1)
        time.sleep(max(0, self.t0 + 43 - time.time()))
        self.assertFalse([m for m in self.sink.messages
                          if m.header("Subject") == "to be cancelled"])

    def test_4_past_date_and_slack_go_at_once(self):
        for subject, due in (("an hour ago", time.time() - 3600),
                             ("within the slack", time.time() + 2)):
            s = self.submit(subject, int(due))
            self.arrival(subject, 20)
            self.assertNotIn(s.qid, hold_queue(self.pf))
            self.assertNotIn("send_at", self.rc.hgetall("mt:{%s}" % self.tid(s.qid)))

    def test_5_bad_dates_are_refused_with_their_reason(self):
        cases = (("not a date", "not a date and time we can read"),
                 (rfc5322(time.time() + 3 * 86400), "MaxDeferral"))
        for text, want in cases:
            with self.assertRaises(RuntimeError) as cm:
                self.submit("refused " + want, date_text=text)
            msg = str(cm.exception)
            self.assertIn("554", msg)
            self.assertIn("Deferred-Delivery", msg)
            self.assertIn(want, msg)

    def test_6_mail_from_outside_is_never_held(self):
        s = self.submit("from outside", int(time.time()) + 30,
                        xclient="ADDR=192.0.2.77 NAME=[UNAVAILABLE]")
        self.arrival("from outside", 20)
        self.assertNotIn(s.qid, hold_queue(self.pf))

    def test_7_put_on_hold_by_the_admin_stays_there(self):
        # The watcher has scanned the hold queue many times by now.
        time.sleep(max(0, self.t0 + 25 - time.time()))
        self.assertIn(self.e.qid, hold_queue(self.pf))
        r = self.cli("schedule", "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.e.qid, hold_queue(self.pf))
        r = self.cli("schedule", "now", self.e.qid)
        self.assertEqual(r.returncode, 1)
        self.assertIn(self.e.qid, hold_queue(self.pf))


class NothingHeldForever(Setup, unittest.TestCase):
    """The hold queue is the ground truth: Redis and the watcher may go."""

    @classmethod
    def setUpClass(cls):
        cls.start_all("schedrec")

    @classmethod
    def tearDownClass(cls):
        cls.stop_all()

    def test_release_once_then_flush_and_watcher_restart(self):
        t0 = time.time()
        soon = self.submit("released by a timer run", int(t0) + 6)
        due_d = int(t0) + 20
        later = self.submit("survives a flush and a restart", due_d)
        r = self.cli("schedule", "release")             # nothing due yet
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(hold_queue(self.pf)), {soon.qid, later.qid})
        time.sleep(max(0, t0 + 7 - time.time()))
        r = self.cli("schedule", "release")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(hold_queue(self.pf)), {later.qid})
        self.arrival("released by a timer run", 20)
        watch = Watcher(self.pf, self.milter.conf,
                        os.path.join(self.work, "watch.log")).start()
        time.sleep(2)
        self.assertEqual(watch.kill(), -signal.SIGKILL)
        self.rc.flushall()
        watch = Watcher(self.pf, self.milter.conf,
                        os.path.join(self.work, "watch2.log")).start()
        try:
            arrived = self.arrival("survives a flush and a restart", 40)
        finally:
            watch.kill(signal.SIGTERM)
        self.assertGreaterEqual(arrived, due_d)
        self.assertLessEqual(arrived, due_d + 2)
        self.assertIn("released", watch.text())


if __name__ == "__main__":
    unittest.main()
