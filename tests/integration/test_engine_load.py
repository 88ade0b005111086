"""
The milter under load through a real Postfix 3.7: killed with SIGKILL in
the middle of 240 messages and restarted on the same socket, and reloaded
every 100 ms during 400 messages. Postfix runs with
milter_default_action = tempfail, so a message the milter could not filter
is refused with 4xx, never passed on untracked.
"""

import os
import signal
import smtplib
import threading
import time
import unittest

import harness as h

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
SESSIONS = 8


def setUpModule():
    if not os.access(MILTER, os.X_OK):
        raise RuntimeError("milter binary %s is missing: make build/san/mailtrail-milter"
                           % MILTER)


class Outcome:
    def __init__(self, subject):
        self.subject = subject
        self.code = None        # 250, or the 4xx/5xx that refused it
        self.qid = None
        self.at = None          # monotonic time of the answer
        self.error = None


class LoadRun:
    """
    `total` messages over SESSIONS concurrent SMTP sessions, each session
    reused until Postfix refuses something on it (then a new one is opened,
    as an SMTP client does after a 4xx).
    """

    def __init__(self, port, total, tag, pause=0.0, backoff=0.2):
        self.port = port
        self.pause = pause
        self.backoff = backoff
        self.outcomes = [Outcome("%s %d %d" % (tag, i, time.monotonic_ns()))
                         for i in range(total)]
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._sender, args=(k,), daemon=True)
                        for k in range(SESSIONS)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self, timeout):
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.1, end - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def answered(self, code=None):
        with self.lock:
            return [o for o in self.outcomes if o.code is not None
                    and (code is None or o.code == code)]

    def _session(self):
        s = smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.test", timeout=60)
        s.ehlo("client.test")
        return s

    def _send(self, s, o, sender):
        data = h.make_message(sender, "bob@remote.test", o.subject)
        try:
            code, msg = s.mail(sender)
            if code == 250:
                code, msg = s.rcpt("bob@remote.test")
            if code in (250, 251):
                code, msg = s.data(data)
                if code == 250:
                    o.qid = h.qid_from_reply(msg.decode("utf-8", "replace"))
            else:
                s.rset()
        except smtplib.SMTPResponseException as e:
            code = e.smtp_code
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            code, o.error = 421, repr(e)
        return code

    def _sender(self, k):
        s = None
        for o in self.outcomes[k::SESSIONS]:
            sender = "load%d@client.test" % k
            try:
                if s is None:
                    s = self._session()
                code = self._send(s, o, sender)
            except (smtplib.SMTPException, OSError) as e:
                code, o.error = 421, repr(e)
            with self.lock:
                o.code, o.at = code, time.monotonic()
            # After a refusal a client waits before it tries again.
            time.sleep(self.pause if code == 250 else self.backoff)
            if code != 250 and s is not None:
                try:
                    s.close()
                finally:
                    s = None
        if s is not None:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                s.close()


class EngineLoad(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.redis = h.Redis().start()
        self.rc = self.redis.client()
        self.sink = h.Sink().start()

    def tearDown(self):
        self.sink.stop()
        self.redis.stop()

    def postfix(self, milter):
        return h.Postfix(self.sink.port, milters=[milter.postfix_spec],
                         extra={"milter_default_action": "tempfail"}).start()

    def assertAllAcceptedTracked(self, run, milter, timeout=60):
        """Each 250 was delivered with an ID whose record is in Redis."""
        accepted = run.answered(250)
        self.sink.wait_count(len(accepted), timeout=timeout)
        by_subject = {}
        for m in self.sink.messages:
            by_subject.setdefault(m.header("Subject"), []).append(m)
        h.wait_for(lambda: not milter.spooled(), 30, "the spool to replay", interval=0.2)
        untracked = []
        ids = set()
        for o in accepted:
            msgs = by_subject.get(o.subject, [])
            self.assertEqual(len(msgs), 1, "%s delivered %d times" % (o.subject, len(msgs)))
            tid = h.id_from_hdr(msgs[0].header("X-Mailtrail-ID"))
            if tid is None or not h.ID_RE.match(tid):
                untracked.append((o.subject, o.qid, "no ID header"))
                continue
            ids.add(tid)
            try:
                h.wait_for(lambda: self.rc.exists("mt:{%s}" % tid), 10, "record of %s" % tid)
            except TimeoutError:
                untracked.append((o.subject, o.qid, "no record for %s" % tid))
                continue
            self.assertEqual(self.rc.get("mt:qid:" + o.qid), tid, o.subject)
        self.assertEqual(untracked, [])
        self.assertEqual(len(ids), len(accepted), "an ID given twice")
        # Nothing Postfix refused went out anyway.
        refused = {o.subject for o in run.answered() if o.code != 250}
        self.assertEqual(refused & set(by_subject), set())
        self.assertEqual(self.sink.count(), len(accepted))
        return ids

    def test_milter_killed_during_240_messages_leaves_no_accepted_message_untracked(self):
        total = 240
        milter = h.Milter(self.redis.address, binary=MILTER, name="milter-kill").start()
        pf = self.postfix(milter)
        try:
            run = LoadRun(pf.port, total, "kill").start()
            h.wait_for(lambda: len(run.answered(250)) >= 80, 60, "80 messages accepted",
                       interval=0.01)
            os.kill(milter.pid, signal.SIGKILL)
            milter.proc.wait(10)
            h.forget(milter.proc._mt_kill)
            killed_at = time.monotonic()
            milter.log.close()
            milter.start()             # the same socket, spool and log
            restarted_at = time.monotonic()
            self.assertTrue(run.join(120), "senders did not finish")
            outcomes = run.answered()
            self.assertEqual(len(outcomes), total)
            codes = sorted({o.code for o in outcomes})
            refused = [o for o in outcomes if o.code != 250]
            accepted = run.answered(250)
            after = [o for o in accepted if o.at > restarted_at]
            print("\nkill -9: %d accepted (%d after the restart, which took %.2fs), "
                  "%d refused (codes %s)" % (len(accepted), len(after),
                                            restarted_at - killed_at, len(refused), codes))
            # Refusals are temporary: Postfix defers, the client retries.
            self.assertTrue(all(400 <= o.code < 500 for o in refused),
                            [(o.code, o.error) for o in refused if not 400 <= o.code < 500])
            self.assertGreaterEqual(len([o for o in accepted if o.at < killed_at]), 80)
            self.assertGreaterEqual(len(after), 40, "the restarted milter served too little")
            self.assertAllAcceptedTracked(run, milter)
            # The restarted milter, never killed, logged every message it took
            # (the killed one may have died between its answer and its line).
            logged = {m.group("qid") for m in milter.kv_lines()}
            self.assertEqual({o.qid for o in after} - logged, set())
            self.assertEqual(milter.corrupt(), [])
        finally:
            pf.stop()
            h.assert_clean_stop(milter)

    def test_sighup_every_100ms_during_400_messages_refuses_nothing(self):
        # Paced so that the run lasts a few seconds: 20 and more reloads.
        total = 400
        milter = h.Milter(self.redis.address, binary=MILTER, name="milter-hup-load").start()
        pf = self.postfix(milter)
        stop = threading.Event()
        hups = [0]

        def hupper():
            while not stop.is_set():
                milter.hup()
                hups[0] += 1
                stop.wait(0.1)
        try:
            hup_thread = threading.Thread(target=hupper, daemon=True)
            hup_thread.start()
            run = LoadRun(pf.port, total, "hup", pause=0.03).start()
            finished = run.join(120)
            stop.set()
            hup_thread.join(5)
            self.assertTrue(finished, "senders did not finish")
            refused = [(o.subject, o.code, o.error) for o in run.answered() if o.code != 250]
            self.assertEqual(refused, [])
            self.assertEqual(len(run.answered(250)), total)
            self.assertAllAcceptedTracked(run, milter)
            self.assertTrue(milter.running(), milter.read_log()[-2000:])
            reloads = [l for l in milter.lines() if "configuration reloaded" in l]
            print("\nSIGHUP: %d sent, %d reloads logged" % (hups[0], len(reloads)))
            self.assertGreaterEqual(hups[0], 15)
            self.assertGreaterEqual(len(reloads), hups[0] // 2)
            self.assertEqual(len(milter.kv_lines()), total)
        finally:
            stop.set()
            pf.stop()
            h.assert_clean_stop(milter)


if __name__ == "__main__":
    unittest.main()
