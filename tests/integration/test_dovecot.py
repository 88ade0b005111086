"""
Local delivery into a real Dovecot 2.3 over LMTP, through a real Postfix
with the milter: mail from outside is traced (TrackInbound, dir=in), and
logwatch turns Postfix's lmtp lines into DELIVER events and the status
`delivered` (remote delivery stays SEND/sent), keeping the LMTP session
that Dovecot's own log lines carry. Reads: Dovecot loads mailtrail's
push_notification Lua script (mailbox/mailtrail.lua), and `mailtrail
dovecot-watch` turns its lines into READ and DELETE, tied to the message
by the X-Mailtrail-ID in the stored copy.
"""

import json
import os
import re
import subprocess
import unittest

import harness as h
import delivery_support as ds
import dovecot_support as dv

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
MMDB = os.environ.get("MT_TEST_MMDB_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "geo-test")
LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "mailbox", "mailtrail.lua")
LONDON = "198.51.100.20"     # London in the test GeoDB
PARIS = "192.0.2.10"


shared = {}


def setUpModule():
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["dovecot"] = dv.Dovecot(
        mail_plugins=dv.LUA_PUSH_PLUGINS,
        extra=["plugin {", "  push_notification_driver = lua:file=%s" %
               os.path.abspath(LUA), "}"]).start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER,
                                name="milter-dovecot", extra={
                                    "GeoDB": os.path.join(MMDB, "city-maxmind.mmdb")}
                                ).start()
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


class Reads(h.SharedSetupCase):
    shared = shared

    def setUp(self):
        super().setUp()
        self.dovecot = shared["dovecot"]
        self.pf = self.postfix

    def deliver(self, user, tag, sender="eve@outside.example", msgid=None):
        """Mail from outside to user, stored; returns (ID, its UID)."""
        subj = self.subject(tag)
        data = h.make_message(sender, user, subj, msgid=msgid)
        sent = h.smtp_send(self.pf.port, sender, [user], data,
                           xclient="ADDR=203.0.113.30 NAME=mx.outside.example")
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
        h.wait_for(lambda: self.uid_of(user, subj), 30, "%s stored" % subj)
        # The watcher follows Dovecot's log as it grows: it sees the
        # delivery while the message is there.
        self.watch()
        return tid, self.uid_of(user, subj)

    def uid_of(self, user, subj):
        r = self.dovecot.doveadm("search", "-u", user, "mailbox", "INBOX",
                                 "header", "subject", subj, check=False)
        parts = r.stdout.split()
        return parts[1] if len(parts) >= 2 else None

    def watch(self, conf=None, state=None):
        args = ["--json", "dovecot-watch", "--once", "--doveadm-config",
                self.dovecot.conf]
        args += ["--state", state] if state else ["--no-state"]
        r = ds.cli(conf or self.milter.conf, *(args + [self.dovecot.log_path]))
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def reads(self, tid):
        return [e for e in h.events(self.rc, tid) if e["ev"] in ("READ", "DELETE")]

    def test_imap_fetch_of_the_body_is_read_with_the_readers_place(self):
        tid, uid = self.deliver("alice@dove.test", "fetch")
        # From outside: dir=in, delivered (logwatch), then read (Dovecot).
        self.assertEqual(self.rc.hget("mt:{%s}" % tid, "dir"), "in")
        self.pf.wait_drained(60)
        r = ds.cli(self.milter.conf, "logwatch", "--once", "--no-state", self.pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(h.statuses(self.rc, tid), {"alice@dove.test": "delivered"})
        c = self.dovecot.imap("alice@dove.test", ip=LONDON)
        c.select("INBOX")
        c.uid("FETCH", uid, "(BODY[])")
        c.logout()
        self.watch()
        self.assertEqual(h.statuses(self.rc, tid), {"alice@dove.test": "read"})
        ev = self.reads(tid)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual((ev[0]["via"], ev[0]["user"], ev[0]["ip"], ev[0]["city"],
                          ev[0]["cc"]), ("imap", "alice@dove.test", LONDON, "London", "GB"))
        r = ds.cli(self.milter.conf, "trace", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"READ\s.*via=imap")
        # The reader's place ends the path: Tokyo (the sender) to London.
        r = ds.cli(self.milter.conf, "--json", "trace", tid)
        path = json.loads(r.stdout)["path"]
        self.assertEqual((path[0]["city"], path[-1]["city"], path[-1]["src"]),
                         ("Tokyo", "London", "read"), path)
        self.assertAlmostEqual(path[-1]["km"], 9559, delta=20)

    def test_store_seen_and_again_after_clearing_is_one_read(self):
        tid, uid = self.deliver("bob@dove.test", "store")
        c = self.dovecot.imap("bob@dove.test", ip=PARIS)
        c.select("INBOX")
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        c.uid("STORE", uid, "-FLAGS", "(\\Seen)")
        c.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        c.logout()
        self.watch()
        self.assertEqual(h.statuses(self.rc, tid), {"bob@dove.test": "read"})
        self.assertEqual(len(self.reads(tid)), 1, self.reads(tid))

    def test_pop3_retrieval_is_read_via_pop3(self):
        tid, uid = self.deliver("carol@dove.test", "pop")
        p = self.dovecot.pop3("carol@dove.test", ip=LONDON)
        n = len(p.list()[1])
        p.retr(n)
        p.quit()
        self.watch()
        self.assertEqual(h.statuses(self.rc, tid), {"carol@dove.test": "read"})
        ev = self.reads(tid)
        self.assertEqual([(e["ev"], e["via"]) for e in ev], [("READ", "pop3")])

    def test_pop3_download_and_delete_is_read(self):
        # RETR, DELE, QUIT: Dovecot reports only the expunge.
        tid, uid = self.deliver("bob@dove.test", "popdele")
        p = self.dovecot.pop3("bob@dove.test", ip=PARIS)
        n = len(p.list()[1])
        p.retr(n)
        p.dele(n)
        p.quit()
        self.watch()
        self.assertEqual(h.statuses(self.rc, tid), {"bob@dove.test": "read"})
        self.assertEqual([(e["ev"], e["via"]) for e in self.reads(tid)], [("READ", "pop3")])

    def test_expunged_unread_is_deleted(self):
        tid, uid = self.deliver("alice@dove.test", "expunge")
        c = self.dovecot.imap("alice@dove.test")
        c.select("INBOX")
        c.uid("STORE", uid, "+FLAGS", "(\\Deleted)")
        c.expunge()
        c.logout()
        self.watch()
        self.assertEqual(h.statuses(self.rc, tid), {"alice@dove.test": "deleted"})
        self.assertEqual([e["ev"] for e in self.reads(tid)], ["DELETE"])

    def test_a_message_reusing_a_message_id_does_not_mark_the_original(self):
        victim, _ = self.deliver("bob@dove.test", "victim", msgid="reused@outside.example")
        copy, uid = self.deliver("bob@dove.test", "copycat", msgid="reused@outside.example")
        c = self.dovecot.imap("bob@dove.test")
        c.select("INBOX")
        c.uid("FETCH", uid, "(BODY[])")
        c.logout()
        self.watch()
        self.assertEqual(h.statuses(self.rc, copy), {"bob@dove.test": "read"})
        self.assertIn(h.statuses(self.rc, victim), ({"bob@dove.test": "queued"},
                                                     {"bob@dove.test": "delivered"}))
        self.assertEqual(self.reads(victim), [])

    def test_a_restart_between_reads_loses_and_doubles_nothing(self):
        state = os.path.join(h.make_workdir("dwstate"), "dovecot.state")
        t1, u1 = self.deliver("carol@dove.test", "restart1")
        c = self.dovecot.imap("carol@dove.test")
        c.select("INBOX")
        c.uid("FETCH", u1, "(BODY[])")
        c.logout()
        self.watch(state=state)
        t2, u2 = self.deliver("carol@dove.test", "restart2")
        c = self.dovecot.imap("carol@dove.test")
        c.select("INBOX")
        c.uid("FETCH", u2, "(BODY[])")
        c.logout()
        self.watch(state=state)
        self.watch()            # and the whole log once more, no state
        for tid in (t1, t2):
            self.assertEqual(h.statuses(self.rc, tid), {"carol@dove.test": "read"})
            self.assertEqual(len(self.reads(tid)), 1, self.reads(tid))

    def test_reader_location_country_keeps_only_the_country(self):
        tid, uid = self.deliver("alice@dove.test", "country")
        conf = os.path.join(h.make_workdir("rlconf"), "mailtrail.conf")
        with open(self.milter.conf) as f, open(conf, "w") as g:
            g.write(f.read() + "\nReaderLocation country\n")
        c = self.dovecot.imap("alice@dove.test", ip=LONDON)
        c.select("INBOX")
        c.uid("FETCH", uid, "(BODY[])")
        c.logout()
        self.watch(conf=conf)
        ev = self.reads(tid)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0].get("cc"), "GB")
        for k in ("ip", "lat", "lon", "city"):
            self.assertNotIn(k, ev[0])

    def test_a_copy_in_another_users_mailbox_makes_nobody_read(self):
        tid, uid = self.deliver("alice@dove.test", "shared")
        stored = self.dovecot.mailbox_files("alice@dove.test")[-1]
        with open(stored, "rb") as f:
            raw = f.read()
        r = subprocess.run(["doveadm", "-c", self.dovecot.conf, "save", "-u",
                            "bob@dove.test", "-m", "INBOX"], input=raw,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.watch()
        c = self.dovecot.imap("bob@dove.test")
        c.select("INBOX")
        typ, data = c.uid("SEARCH", "UNSEEN")
        for u in data[0].split():
            c.uid("FETCH", u, "(BODY[])")
        c.logout()
        self.watch()
        # (delivered once logwatch ran in another test; never read)
        self.assertIn(h.statuses(self.rc, tid), ({"alice@dove.test": "queued"},
                                                  {"alice@dove.test": "delivered"}))
        self.assertEqual(self.reads(tid), [])

    def test_a_move_to_a_hostile_folder_is_no_deletion_and_reads_count_there(self):
        tid, uid = self.deliver("alice@dove.test", "move")
        box = '"a b=c %41 ev=read uid=1"'
        c = self.dovecot.imap("alice@dove.test", ip=PARIS)
        c.create(box)
        c.select("INBOX")
        typ, _ = c.uid("MOVE", uid, box)
        self.assertEqual(typ, "OK")
        c.select(box)
        typ, data = c.uid("SEARCH", "ALL")
        c.uid("FETCH", data[0].split()[-1], "(BODY[])")
        c.logout()
        self.watch()
        ev = self.reads(tid)
        self.assertEqual([e["ev"] for e in ev], ["READ"], ev)
        self.assertEqual(ev[0]["box"], "a b=c %41 ev=read uid=1")
        self.assertEqual(h.statuses(self.rc, tid), {"alice@dove.test": "read"})

    def test_a_running_watcher_marks_a_read_within_two_seconds(self):
        errlog = os.path.join(h.make_workdir("dwlive"), "stderr")
        err = open(errlog, "w")
        proc = h.spawn([ds.CLI, "-c", self.milter.conf, "dovecot-watch", "--no-state",
                        "--doveadm-config", self.dovecot.conf, self.dovecot.log_path],
                       stdout=subprocess.DEVNULL, stderr=err)
        try:
            subj = self.subject("live")
            data = h.make_message("eve@outside.example", "bob@dove.test", subj)
            sent = h.smtp_send(self.pf.port, "eve@outside.example", ["bob@dove.test"], data,
                               xclient="ADDR=203.0.113.30 NAME=mx.outside.example")
            tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
            uid = h.wait_for(lambda: self.uid_of("bob@dove.test", subj), 30, "stored")
            key = lambda: [k for k in self.rc.scan_iter(match="mt:mbox:bob@dove.test:*")
                           if self.rc.get(k) == tid]
            h.wait_for(key, 30, "the delivery seen by the watcher (%s)" % errlog)
            c = self.dovecot.imap("bob@dove.test", ip=LONDON)
            c.select("INBOX")
            c.uid("FETCH", uid, "(BODY[])")
            c.logout()
            h.wait_for(lambda: h.statuses(self.rc, tid).get("bob@dove.test") == "read",
                       2, "read within two seconds")
        finally:
            proc.terminate()
            proc.wait(10)
            err.close()

    def test_dovecot_config_prints_the_snippet(self):
        r = ds.cli(self.milter.conf, "dovecot-config", "--lua", "/x/mailtrail.lua")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("push_notification_driver = lua:file=/x/mailtrail.lua", r.stdout)
        self.assertIn("mail_plugins = $mail_plugins notify push_notification mail_lua "
                      "push_notification_lua", r.stdout)


if __name__ == "__main__":
    unittest.main()
