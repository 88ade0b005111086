"""
Read receipts as real clients send them (tests/mdn/*.eml), returned through
a real Postfix and the milter, mark the right recipient `read`; receipts from
non-recipients, with a forged ID, or malformed change nothing, and every
receipt is still delivered. Also RequestReadReceipt and `mailtrail mark-read`.

Receipts from outside the site count only when authenticated: a real
verifier (opendkim, verify mode) sits in front of the milter in
smtpd_milters, with the DKIM keys published by dnsmasq. Outsiders' forged,
unsigned, misaligned or A-R-forging receipts are recorded as `MDN`
verified=no and change no status; carol's signed one, or a site user's,
marks her `read`.
"""

import json
import os
import time
import unittest

import harness as h
import delivery_support as ds
import receipt_support as rs

MDN_DIR = os.path.join(os.path.dirname(__file__), "..", "mdn")
SAMPLE_RCPT = "bob@rcpt.test"
SAMPLE_MSGID = "mdn-sample-1@client.test"
VERIFIER_ID = "verify.mdn.test"
# A client outside InternalHosts, as Postfix tells the milters via XCLIENT.
OUTSIDE = "ADDR=203.0.113.25 NAME=mx.rcpt.test"


def report(final, msgid, orig=None, disposition="displayed",
           from_hdr="Carol <carol@rcpt.test>", parts=""):
    """A minimal RFC 8098 report (LF line ends, as the samples)."""
    fields = "Reporting-UA: rcpt.test; test\n"
    if orig:
        fields += "Original-Recipient: rfc822;%s\n" % orig
    fields += ("Final-Recipient: rfc822;%s\nOriginal-Message-ID: <%s>\n"
               "Disposition: manual-action/MDN-sent-manually; %s\n"
               % (final, msgid, disposition))
    return ("From: %s\nTo: Alice <alice@mta1.test>\nSubject: Read: x\n"
            "Date: %s\nMessage-ID: <r%d@rcpt.test>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; "
            "report-type=disposition-notification; boundary=\"b\"\n\n"
            "--b\n\nDisplayed.\n\n--b\n"
            "Content-Type: message/disposition-notification\n\n%s\n%s--b--\n"
            % (from_hdr, time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                       time.gmtime()),
               time.time_ns(), fields, parts))


class ReadReceipts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = h.Redis().start()
        cls.rc = cls.redis.client()
        cls.sink = h.Sink().start()
        cls.carol_key = rs.DkimKey("rcpt.test")
        cls.evil_key = rs.DkimKey("evil.example")
        cls.dns = rs.dkim_dns(cls.carol_key, cls.evil_key)
        # AlwaysAddARHeader: the verifier always writes its own result on
        # top; KeepAuthResults: it leaves a sender's copy with its
        # authserv-id in place, so the forged-A-R test proves mailtrail's
        # own rule rather than opendkim's clean-up.
        cls.verifier = rs.OpenDkim(cls.dns, VERIFIER_ID, extra={
            "AlwaysAddARHeader": "yes", "KeepAuthResults": "yes"}).start()
        cls.milter = h.Milter(cls.redis.address, name="milter-mdn",
                              extra={"RequestReadReceipt": "yes",
                                     "TrustedAuthservIDs": VERIFIER_ID}).start()
        cls.pf = h.Postfix(cls.sink.port, hostname="mdn.test",
                           milters=[cls.verifier.postfix_spec,
                                    cls.milter.postfix_spec])
        cls.pf.start()
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        cls.assert_clean_exit(cls.milter)
        cls.verifier.stop()
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
                     env_from="bob@rcpt.test", mtid=None, raw=None,
                     xclient=None, key=None, top_header=None):
        """
        Returns the receipt as the sink got it (it is always delivered).
        xclient: from outside the site; key: DKIM-signed by key's domain;
        top_header: a header the sender writes first.
        """
        text = raw if raw is not None else open(
            os.path.join(MDN_DIR, sample), encoding="utf-8").read()
        text = (text.replace(SAMPLE_MSGID, msgid).replace(SAMPLE_RCPT, rcpt)
                .replace("@@MTID@@", mtid or tid))
        marker = "mdn-%d" % time.time_ns()
        text = text.replace("\n", "\r\n", ).replace("\r\r\n", "\r\n")
        text = "X-Test-Marker: %s\r\n" % marker + text
        if top_header:
            text = top_header + "\r\n" + text
        data = text.encode("utf-8")
        if key is not None:
            data = key.sign(data)
        h.smtp_send(self.pf.port, env_from, ["alice@mta1.test"], data,
                    xclient=xclient)
        got = self.sink.find(lambda m: m.header("X-Test-Marker") == marker)
        return got

    def status(self, tid):
        return h.statuses(self.rc, tid)

    def reads(self, tid):
        return [e for e in h.events(self.rc, tid) if e["ev"] in ("READ", "DELETE", "MDN")]

    def wait_read(self, tid, rcpt):
        h.wait_for(lambda: self.status(tid).get(rcpt) == "read", 20,
                   "%s read in %s" % (rcpt, tid))

    def wait_receipt_line(self, tid, rcpt, what):
        """The milter's one log line for a receipt about tid from rcpt."""
        return self.milter.wait_log(
            lambda l: "read receipt: id=%s, rcpt=<%s>" % (tid, rcpt) in l and
            what in l, what="%s receipt for %s logged" % (what, tid))

    def carol_reads_for_real(self, tid, msgid):
        """carol's DKIM-signed receipt from outside: she is now `read`."""
        self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                          key=self.carol_key,
                          raw=report("carol@rcpt.test", msgid))
        self.wait_read(tid, "carol@rcpt.test")
        read = [e for e in self.reads(tid) if e["ev"] == "READ"]
        self.assertEqual(len(read), 1)
        self.assertEqual(read[0]["rcpt"], "carol@rcpt.test")
        self.assertEqual(read[0]["auth"], "dkim")
        self.assertNotIn("verified", read[0])

    def assert_unverified_only(self, tid, rcpt, why):
        """One MDN event verified=no for rcpt, and every status unchanged."""
        ev = self.reads(tid)
        self.assertEqual([(e["ev"], e["rcpt"], e["verified"], e["why"])
                          for e in ev], [("MDN", rcpt, "no", why)])
        self.assertEqual(set(self.status(tid).values()), {"queued"})

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

    # -- who may mark a recipient read ---------------------------------------

    def test_outsiders_forged_receipt_only_records_unverified_mdn(self):
        tid, msgid, _ = self.original()
        got = self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                                env_from="nobody@evil.example",
                                raw=report("nobody@evil.example", msgid,
                                           orig="carol@rcpt.test",
                                           from_hdr="<nobody@evil.example>"))
        self.assertIn("multipart/report", got.header("Content-Type"))
        self.wait_receipt_line(tid, "nobody@evil.example",
                               "verified=no (unauthenticated)")
        self.assert_unverified_only(tid, "nobody@evil.example",
                                    "unauthenticated")
        self.assertEqual(self.reads(tid)[0]["orig_rcpt"], "carol@rcpt.test")
        r = ds.cli(self.milter.conf, "trace", tid)
        self.assertRegex(r.stdout, r"MDN\s+rcpt=nobody@evil\.example\b.*"
                         r"\bverified=no why=unauthenticated\b")
        r = ds.cli(self.milter.conf, "--json", "status", tid)
        self.assertEqual(json.loads(r.stdout)["recipients"]["carol@rcpt.test"],
                         "queued")
        self.carol_reads_for_real(tid, msgid)

    def test_signed_outsider_cannot_use_original_recipient(self):
        tid, msgid, _ = self.original()
        self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                          env_from="nobody@evil.example", key=self.evil_key,
                          raw=report("nobody@evil.example", msgid,
                                     orig="carol@rcpt.test",
                                     from_hdr="<nobody@evil.example>"))
        self.wait_receipt_line(tid, "nobody@evil.example",
                               "auth=dkim, ignored: not a recipient of it")
        self.assertEqual(self.reads(tid), [])
        self.assertEqual(set(self.status(tid).values()), {"queued"})

    def test_unsigned_receipt_from_carols_domain_keeps_her_read_for_later(self):
        tid, msgid, _ = self.original()
        got = self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                                env_from="carol@rcpt.test",
                                raw=report("carol@rcpt.test", msgid))
        self.assertIn("dkim=none", got.header("Authentication-Results"))
        self.wait_receipt_line(tid, "carol@rcpt.test",
                               "verified=no (unauthenticated)")
        self.assert_unverified_only(tid, "carol@rcpt.test", "unauthenticated")
        self.carol_reads_for_real(tid, msgid)

    def test_receipt_signed_by_another_domain_is_not_aligned(self):
        tid, msgid, _ = self.original()
        got = self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                                key=self.evil_key,
                                raw=report("carol@rcpt.test", msgid))
        self.assertIn("header.d=evil.example",
                      got.header("Authentication-Results"))
        self.wait_receipt_line(tid, "carol@rcpt.test",
                               "verified=no (not-aligned)")
        self.assert_unverified_only(tid, "carol@rcpt.test", "not-aligned")

    def check_forged_authentication_results(self, forged):
        tid, msgid, _ = self.original()
        got = self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                                top_header="Authentication-Results: " + forged,
                                raw=report("carol@rcpt.test", msgid))
        # Both reached mailtrail: the verifier's on top, the forgery below.
        ar = got.header_values("Authentication-Results")
        self.assertEqual(len(ar), 2, ar)
        self.assertIn("dkim=none", ar[0])
        self.assertEqual(ar[1], forged)
        self.wait_receipt_line(tid, "carol@rcpt.test",
                               "verified=no (unauthenticated)")
        self.assert_unverified_only(tid, "carol@rcpt.test", "unauthenticated")
        self.carol_reads_for_real(tid, msgid)

    def test_sender_written_dkim_pass_is_not_believed(self):
        self.check_forged_authentication_results(
            "%s; dkim=pass header.d=rcpt.test header.i=@rcpt.test"
            % VERIFIER_ID)

    def test_sender_written_spf_pass_is_not_believed(self):
        # The copy OpenDKIM's default clean-up leaves (it has no DKIM
        # result): only the verifier's own header on top defeats it.
        self.check_forged_authentication_results(
            "%s; spf=pass smtp.mailfrom=carol@rcpt.test" % VERIFIER_ID)

    def test_carols_dkim_signed_receipt_marks_her_read(self):
        tid, msgid, _ = self.original()
        self.carol_reads_for_real(tid, msgid)
        self.assertEqual(self.status(tid)["bob@rcpt.test"], "queued")
        self.wait_receipt_line(tid, "carol@rcpt.test",
                               "auth=dkim, recorded, status changed")

    def test_site_users_receipt_needs_no_signature(self):
        tid, msgid, _ = self.original()
        got = self.send_receipt(None, tid, msgid, env_from="carol@rcpt.test",
                                raw=report("carol@rcpt.test", msgid))
        self.assertIn("dkim=none", got.header("Authentication-Results"))
        self.wait_read(tid, "carol@rcpt.test")
        ev = self.reads(tid)
        self.assertEqual([(e["ev"], e["rcpt"], e["auth"]) for e in ev],
                         [("READ", "carol@rcpt.test", "submission")])

    def test_a_site_user_cannot_answer_for_another_recipient(self):
        # mallory is a site user too, but the receipt speaks for carol.
        tid, msgid, _ = self.original()
        self.send_receipt(None, tid, msgid, env_from="mallory@rcpt.test",
                          raw=report("carol@rcpt.test", msgid,
                                     from_hdr="<mallory@rcpt.test>"))
        self.wait_receipt_line(tid, "carol@rcpt.test",
                               "verified=no (sender-is-not-final-recipient)")
        self.assert_unverified_only(tid, "carol@rcpt.test",
                                    "sender-is-not-final-recipient")
        self.carol_reads_for_real(tid, msgid)

    def test_report_with_20000_parts_is_refused_cheaply_and_delivered(self):
        tid, msgid, _ = self.original()
        parts = "--b\nContent-Type: text/plain\n\nx\n" * 20000
        raw = report("carol@rcpt.test", msgid, parts=parts)
        self.assertLess(len(raw), 1024 * 1024)
        got = self.send_receipt(None, tid, msgid, xclient=OUTSIDE,
                                key=self.carol_key, raw=raw)
        self.assertGreater(len(got.data), 20000 * 20)
        self.milter.wait_log(lambda l: "malformed read receipt (report with "
                             "more than 256 MIME parts); ignored" in l,
                             what="many-part receipt refused")
        self.assertEqual(self.reads(tid), [])
        self.assertEqual(set(self.status(tid).values()), {"queued"})
        self.assertTrue(self.milter.running())

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
