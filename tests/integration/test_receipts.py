"""
Read receipts as real clients send them (tests/mdn/*.eml), returned through
a real Postfix and the milter, mark the right recipient `read`; receipts from
non-recipients, with a forged ID, or malformed change nothing, and every
receipt is still delivered. Also RequestReadReceipt and `mailtrail mark-read`.
"""

import json
import os
import re
import time
import unittest

import harness as h
import delivery_support as ds

MDN_DIR = os.path.join(os.path.dirname(__file__), "..", "mdn")
SAMPLE_RCPT = "bob@rcpt.test"
SAMPLE_MSGID = "mdn-sample-1@client.test"


class ReadReceipts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = h.Redis().start()
        cls.rc = cls.redis.client()
        cls.sink = h.Sink().start()
        cls.milter = h.Milter(cls.redis.address, name="milter-mdn",
                              extra={"RequestReadReceipt": "yes"}).start()
        cls.pf = h.Postfix(cls.sink.port, hostname="mdn.test",
                           milters=[cls.milter.postfix_spec])
        cls.pf.start()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        cls.assert_clean_exit(cls.milter)
        cls.redis.stop()

    @staticmethod
    def assert_clean_exit(milter):
        rc = milter.stop()
        text = milter.read_log()
        if rc != 0 or "AddressSanitizer" in text or "runtime error" in text:
            raise AssertionError("milter exit %s:\n%s" % (rc, text[-4000:]))

    def original(self, rcpts=("bob@rcpt.test", "carol@rcpt.test")):
        """A tracked message from alice; returns (id, msgid, delivered copy)."""
        type(self).n += 1
        subject = "original %d %d" % (self.n, time.time_ns())
        msgid = "orig-%d-%d@client.test" % (self.n, time.time_ns())
        h.smtp_send(self.pf.port, "alice@mta1.test", list(rcpts),
                    h.make_message("Alice <alice@mta1.test>", ", ".join(rcpts),
                                   subject, msgid=msgid))
        copy = self.sink.by_subject(subject)
        return h.id_from_hdr(copy.header("X-Mailtrail-ID")), msgid, copy

    def send_receipt(self, sample, tid, msgid, rcpt="bob@rcpt.test",
                     env_from="bob@rcpt.test", mtid=None, raw=None):
        """Returns the receipt as the sink got it (it is always delivered)."""
        text = raw if raw is not None else open(
            os.path.join(MDN_DIR, sample), encoding="utf-8").read()
        text = (text.replace(SAMPLE_MSGID, msgid).replace(SAMPLE_RCPT, rcpt)
                .replace("@@MTID@@", mtid or tid))
        marker = "mdn-%d" % time.time_ns()
        text = text.replace("\n", "\r\n", ).replace("\r\r\n", "\r\n")
        text = "X-Test-Marker: %s\r\n" % marker + text
        h.smtp_send(self.pf.port, env_from, ["alice@mta1.test"],
                    text.encode("utf-8"))
        got = self.sink.find(lambda m: m.header("X-Test-Marker") == marker)
        return got

    def status(self, tid):
        return self.rc.hgetall("mt:{%s}:rcpt" % tid)

    def reads(self, tid):
        return [e for e in h.events(self.rc, tid) if e["ev"] in ("READ", "DELETE", "MDN")]

    def wait_read(self, tid, rcpt):
        h.wait_for(lambda: self.status(tid).get(rcpt) == "read", 20,
                   "%s read in %s" % (rcpt, tid))

    def wait_receipt_logged(self, qid_hint=None):
        time.sleep(0.2)

    # -- clients' formats ---------------------------------------------------

    def check_client_sample(self, sample, by_id):
        tid, msgid, _copy = self.original()
        got = self.send_receipt(sample, tid, msgid)
        self.assertIn("multipart/report", got.header("Content-Type"))
        self.wait_read(tid, "bob@rcpt.test")
        self.assertEqual(self.status(tid)["carol@rcpt.test"], "queued")
        ev = self.reads(tid)
        self.assertEqual([e["ev"] for e in ev], ["READ"])
        self.assertEqual(ev[0]["rcpt"], "bob@rcpt.test")
        self.assertIn("displayed", ev[0]["disposition"])
        self.assertEqual(ev[0]["via"], "mdn")

    def test_thunderbird_manual_displayed_via_returned_id(self):
        self.check_client_sample("thunderbird.eml", True)

    def test_outlook_exchange_via_original_message_id(self):
        self.check_client_sample("outlook-exchange.eml", False)

    def test_apple_mail_shape(self):
        self.check_client_sample("apple-mail.eml", True)

    def test_rfc8098_example_displayed(self):
        self.check_client_sample("rfc8098-displayed.eml", False)

    def test_rfc8098_deleted_records_delete_without_read(self):
        tid, msgid, _ = self.original()
        self.send_receipt("rfc8098-deleted.eml", tid, msgid)
        h.wait_for(lambda: self.reads(tid), 20, "DELETE event")
        self.assertEqual([e["ev"] for e in self.reads(tid)], ["DELETE"])
        self.assertEqual(self.status(tid)["bob@rcpt.test"], "queued")

    def test_second_receipt_adds_nothing(self):
        tid, msgid, _ = self.original()
        self.send_receipt("thunderbird.eml", tid, msgid)
        self.wait_read(tid, "bob@rcpt.test")
        self.send_receipt("outlook-exchange.eml", tid, msgid)
        self.milter.wait_log(lambda l: "read receipt" in l and tid in l and
                             "already recorded" in l, what="duplicate receipt")
        self.assertEqual(len(self.reads(tid)), 1)

    # -- what must change nothing -------------------------------------------

    def test_receipt_from_a_non_recipient_changes_nothing(self):
        tid, msgid, _ = self.original()
        got = self.send_receipt("outlook-exchange.eml", tid, msgid,
                                rcpt="eve@evil.test", env_from="eve@evil.test")
        self.assertIsNotNone(got)
        self.milter.wait_log(lambda l: "read receipt" in l and "eve@evil.test" in l,
                             what="non-recipient receipt logged")
        self.assertEqual(self.reads(tid), [])
        self.assertEqual(set(self.status(tid).values()), {"queued"})

    def test_receipt_with_a_forged_id_changes_nothing(self):
        tid, msgid, _ = self.original()
        forged = tid[:-1] + ("0" if tid[-1] != "0" else "1")
        self.send_receipt("thunderbird.eml", tid, msgid, mtid=forged)
        self.milter.wait_log(lambda l: "forged X-Mailtrail-ID" in l,
                             what="forged-ID receipt logged")
        self.assertEqual(self.reads(tid), [])
        self.assertEqual(set(self.status(tid).values()), {"queued"})

    def test_malformed_reports_change_nothing_and_are_delivered(self):
        tid, msgid, _ = self.original()
        for sample in ("malformed-no-final-recipient.eml",
                       "malformed-truncated.eml"):
            self.send_receipt(sample, tid, msgid)
        junk = ("From: x@evil.test\nSubject: junk\nMIME-Version: 1.0\n"
                "Content-Type: multipart/report; report-type=disposition-notification;"
                " boundary=\"b\"\n\n--b\nContent-Type: message/disposition-notification"
                "\n\n\x01\x02Final-Recipient: ;\nDisposition: ;;;;\n--b\n"
                + "--b\n" * 2000)
        self.send_receipt(None, tid, msgid, raw=junk)
        self.milter.wait_log(lambda l: "malformed read receipt" in l,
                             what="malformed receipt logged")
        self.assertEqual(self.reads(tid), [])
        self.assertTrue(self.milter.running())

    def test_oversized_report_is_not_read(self):
        tid, msgid, _ = self.original()
        text = open(os.path.join(MDN_DIR, "thunderbird.eml")).read()
        text = text.replace("This is a Return Receipt",
                            ("x" * 998 + "\n") * 1100 + "This is a Return Receipt")
        self.send_receipt(None, tid, msgid, raw=text)
        self.milter.wait_log(lambda l: "larger than" in l, what="oversize logged")
        self.assertEqual(self.reads(tid), [])

    # -- asking for receipts, and the command --------------------------------

    def test_request_read_receipt_adds_the_header_once(self):
        _tid, _msgid, copy = self.original()
        self.assertEqual(copy.header_values("Disposition-Notification-To"),
                         ["<alice@mta1.test>"])
        subject = "has its own %d" % time.time_ns()
        h.smtp_send(self.pf.port, "alice@mta1.test", ["bob@rcpt.test"],
                    h.make_message("a@mta1.test", "bob@rcpt.test", subject,
                                   extra_headers=["Disposition-Notification-To: <x@y.test>"]))
        got = self.sink.by_subject(subject)
        self.assertEqual(got.header_values("Disposition-Notification-To"),
                         ["<x@y.test>"])

    def test_mark_read_command(self):
        tid, msgid, _ = self.original()
        r = ds.cli(self.milter.conf, "--json", "mark-read", "<%s>" % msgid,
                   "Carol@RCPT.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["result"], "read")
        self.assertEqual(self.status(tid)["carol@rcpt.test"], "read")
        r = ds.cli(self.milter.conf, "mark-read", tid, "carol@rcpt.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already-read", r.stdout)
        r = ds.cli(self.milter.conf, "mark-read", tid, "eve@evil.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a recipient", r.stderr)
        self.assertEqual(len(self.reads(tid)), 1)
        r = ds.cli(self.milter.conf, "--json", "status", tid)
        self.assertEqual(json.loads(r.stdout)["recipients"]["carol@rcpt.test"], "read")
        r = ds.cli(self.milter.conf, "trace", tid)
        self.assertRegex(r.stdout, r"READ\s+rcpt=carol@rcpt\.test")


if __name__ == "__main__":
    unittest.main()
