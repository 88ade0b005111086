"""
Local delivery into a real Dovecot 2.3 over LMTP, through a real Postfix
with the milter: mail from outside is traced (TrackInbound, dir=in), and
logwatch turns Postfix's lmtp lines into DELIVER events and the status
`delivered` (remote delivery stays SEND/sent), keeping the LMTP session
that Dovecot's own log lines carry.
"""

import os
import re
import unittest

import harness as h
import delivery_support as ds
import dovecot_support as dv

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")


shared = {}


def setUpModule():
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["dovecot"] = dv.Dovecot().start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER,
                                name="milter-dovecot").start()
    shared["postfix"] = h.Postfix(shared["sink"].port,
                                  milters=[shared["milter"].postfix_spec],
                                  extra=shared["dovecot"].postfix_settings()).start()


def tearDownModule():
    for name in ("postfix", "milter", "dovecot", "sink", "redis"):
        if name not in shared:
            continue
        if name == "milter":
            h.assert_clean_stop(shared[name])
        else:
            shared[name].stop()


class LocalDelivery(h.SharedSetupCase):
    shared = shared

    def setUp(self):
        super().setUp()
        self.dovecot = shared["dovecot"]
        self.pf = self.postfix

    def logwatch(self):
        self.pf.wait_drained(60)
        r = ds.cli(self.milter.conf, "--json", "logwatch", "--once", "--no-state",
                   self.pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_inbound_mail_is_traced_and_delivered_over_lmtp(self):
        subj = self.subject("inbound")
        sent = h.swaks(self.pf.port, "eve@outside.example", "alice@dove.test",
                       header_lines=["X-Mailtrail-ID: " + "0" * 26 + "." + "0" * 16],
                       xclient="ADDR=203.0.113.5 NAME=mx.outside.example",
                       subject=subj)
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
        self.dovecot.wait_stored("alice@dove.test", timeout=30)
        rec = self.rc.hgetall("mt:{%s}" % tid)
        self.assertEqual((rec["dir"], rec["sender"], rec["client_ip"]),
                         ("in", "eve@outside.example", "203.0.113.5"))
        self.logwatch()
        self.assertEqual(h.statuses(self.rc, tid), {"alice@dove.test": "delivered"})
        evs = [e for e in h.events(self.rc, tid) if e["ev"] != "RECEIVE"]
        self.assertEqual([e["ev"] for e in evs], ["DELIVER"], evs)
        self.assertEqual(evs[0]["service"], "postfix/lmtp")
        # The session in Postfix's line is the one Dovecot logged the
        # delivery under: what later ties the mailbox's copy to the record.
        m = re.search(r"lmtp\(alice@dove\.test\)<\d+><([^>]+)>: .*saved mail to INBOX",
                      self.dovecot.log())
        self.assertIsNotNone(m, self.dovecot.log()[-2000:])
        self.assertEqual(evs[0]["session"], m.group(1))
        # The stored message carries the site's ID, not the forged one.
        with open(self.dovecot.mailbox_files("alice@dove.test")[-1], "rb") as f:
            stored = f.read().decode("utf-8", "replace")
        self.assertIn("X-Mailtrail-ID: " + tid, stored)
        self.assertNotIn("0" * 26 + "." + "0" * 16, stored)

    def test_local_and_remote_recipients_get_delivered_and_sent(self):
        subj = self.subject("mixed")
        data = h.make_message("carol@client.test", "bob@dove.test, dave@remote.test", subj)
        sent = h.smtp_send(self.pf.port, "carol@client.test",
                           ["bob@dove.test", "dave@remote.test"], data)
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
        self.sink.by_subject(subj, timeout=60)
        self.dovecot.wait_stored("bob@dove.test", timeout=30)
        self.assertEqual(self.rc.hget("mt:{%s}" % tid, "dir"), "out")
        self.logwatch()
        self.assertEqual(h.statuses(self.rc, tid),
                         {"bob@dove.test": "delivered", "dave@remote.test": "sent"})
        kinds = sorted((e["ev"], e["rcpt"]) for e in h.events(self.rc, tid)
                       if e["ev"] != "RECEIVE")
        self.assertEqual(kinds, [("DELIVER", "bob@dove.test"), ("SEND", "dave@remote.test")])
        # The command shows both, and the timeline says DELIVER.
        r = ds.cli(self.milter.conf, "trace", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"DELIVER\s.*rcpt=bob@dove\.test")


if __name__ == "__main__":
    unittest.main()
