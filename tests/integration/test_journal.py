"""
Delivery results from the systemd journal: Postfix's real delivery lines
of mail the real milter recorded, written as journal entries by
systemd-journal-remote (Journal Export Format on stdin) and read back by
`mailtrail logwatch --journal DIR`: statuses once each across restarts
(the cursor in the state file), entries appended while it follows, bad
input counted and never fatal, and the journal taken when there is no
/var/log/mail.log.
"""

import json
import os
import pwd
import re
import signal
import struct
import subprocess
import time
import unittest

import harness as h
import delivery_support as ds

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "6d61696c747261696c6a6f75726e616c"
# "Dec  3 05:40:00.123456 dlv postfix/smtp[123]: MESSAGE" (maillog_file)
SYSLOG_LINE = re.compile(
    r"^\w{3} +\d+ [\d:.]+ (?P<host>\S+) (?P<ident>[^\s\[:]+)"
    r"(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$")


def export_entry(fields):
    """One entry of the Journal Export Format; values with a line break
    or other binary bytes in the length-prefixed form."""
    out = b""
    for name, value in fields:
        if isinstance(value, str):
            value = value.encode()
        if b"\n" in value or b"\0" in value:
            out += name.encode() + b"\n" + struct.pack("<Q", len(value)) \
                + value + b"\n"
        else:
            out += name.encode() + b"=" + value + b"\n"
    return out + b"\n"


class Journal:
    """A directory of journal files that systemd-journal-remote appends
    to; times rise by a millisecond per entry, from now."""

    def __init__(self, parent, name):
        self.dir = os.path.join(parent, name)
        os.mkdir(self.dir)
        self.t_us = int(time.time() * 1e6)
        self.mono_us = 1000000
        self.times = []

    def append(self, entries):
        data = b""
        for fields in entries:
            self.t_us += 1000
            self.mono_us += 1000
            self.times.append(self.t_us)
            data += export_entry([("__REALTIME_TIMESTAMP", str(self.t_us)),
                                  ("__MONOTONIC_TIMESTAMP", str(self.mono_us)),
                                  ("_BOOT_ID", BOOT_ID)] + list(fields))
        r = subprocess.run([JOURNAL_REMOTE, "-o",
                            os.path.join(self.dir, "remote.journal"), "-"],
                           input=data, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("systemd-journal-remote: %s" % r.stderr)

    def append_lines(self, lines):
        """Postfix's maillog lines as the entries journald makes of them."""
        entries = []
        for line in lines:
            m = SYSLOG_LINE.match(line)
            if m is None:
                raise AssertionError("not a maillog line: %r" % line)
            entries.append(postfix_entry(m["ident"], m["msg"], m["pid"],
                                         m["host"]))
        self.append(entries)
        return len(entries)


POSTFIX_UID = str(pwd.getpwnam("postfix").pw_uid)


def postfix_entry(ident, msg, pid="4242", host="jnl", facility="2",
                  uid=POSTFIX_UID):
    """An entry as journald writes it for a Postfix program: _UID is the
    writer journald saw (Postfix's user; root for master and local)."""
    fields = [("_HOSTNAME", host), ("SYSLOG_FACILITY", facility),
              ("_UID", uid),
              ("SYSLOG_IDENTIFIER", ident), ("_SYSTEMD_UNIT",
                                             "postfix@-.service"),
              ("PRIORITY", "6"), ("MESSAGE", msg)]
    if pid:
        fields += [("SYSLOG_PID", pid), ("_PID", pid)]
    return fields


class JournalDelivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(JOURNAL_REMOTE, os.X_OK):
            raise RuntimeError("%s missing: packaging/deps.sh installs "
                               "systemd-journal-remote" % JOURNAL_REMOTE)
        cls.redis = h.Redis().start()
        cls.rc = cls.redis.client()
        cls.sink = h.Sink().start()
        cls.reject_port = ds.rejecting_sink()
        cls.closed_port = ds.refused_port()
        cls.milter = h.Milter(cls.redis.address, name="milter-jnl").start()
        cls.pf = h.Postfix(cls.sink.port, hostname="jnl.test",
                           milters=[cls.milter.postfix_spec],
                           extra={"transport_maps": ds.transport_map(
                               {"ok.test": cls.sink.port,
                                "defer.test": cls.closed_port,
                                "bounce.test": cls.reject_port})})
        cls.pf.start()
        cls.work = h.make_workdir("journal")

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        cls.milter.stop()
        cls.redis.stop()

    def send(self, rcpts, outcomes=None):
        """A message through the real Postfix and milter: its ID and every
        maillog line of its queue ID once each recipient has a result."""
        outcomes = outcomes or {r: "sent" for r in rcpts}
        sent = h.smtp_send(self.pf.port, "alice@jnl.test", rcpts,
                           h.make_message("Alice <alice@jnl.test>", rcpts[0],
                                          "journal %s" % time.time()))
        tid = ds.id_of_qid(self.rc, sent.qid)
        text = ds.wait_maillog(self.pf, lambda t: all(
            any(("%s: to=<%s>" % (sent.qid, r)) in l and
                ("status=" + s) in l for l in t.splitlines())
            for r, s in outcomes.items()),
            what="results of %s" % sent.qid)
        lines = [l for l in text.splitlines() if (" %s: " % sent.qid) in l]
        return tid, lines

    def logwatch(self, *args):
        r = ds.cli(self.milter.conf, "--json", "logwatch", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout), r.stderr

    def state(self, name):
        return os.path.join(self.work, name + ".state")

    def ev_list(self, tid):
        return self.rc.lrange("mt:{%s}:ev" % tid, 0, -1)

    def test_1_sent_deferred_bounced_from_journal_entries(self):
        tid, lines = self.send(
            ["ok@ok.test", "later@defer.test", "nope@bounce.test"],
            {"ok@ok.test": "sent", "later@defer.test": "deferred",
             "nope@bounce.test": "bounced"})
        j = Journal(self.work, "first")
        n = j.append_lines(lines)
        # Not of facility mail (a user's logger -p user.info): never read.
        j.append([postfix_entry("postfix/smtp", "%s: to=<ok@ok.test>, "
                                "relay=none, dsn=5.0.0, status=bounced (x)"
                                % lines[0].split(": ")[1].split()[-1],
                                facility="1")])
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 self.state("first"))
        self.assertEqual(out["lines"], n)
        self.assertEqual(out["results"], 3)
        self.assertEqual(out["tracked"], 3)
        self.assertEqual(out["written"], 3)
        self.assertEqual(out["unparsable"], 0)
        self.assertEqual(h.statuses(self.rc, tid),
                         {"ok@ok.test": "sent", "later@defer.test": "deferred",
                          "nope@bounce.test": "bounced"})
        send = [e for e in h.events(self.rc, tid) if e["ev"] == "SEND"][0]
        self.assertEqual(send["service"], "postfix/smtp")
        self.assertEqual(send["relay"],
                         "127.0.0.1[127.0.0.1]:%d" % self.sink.port)
        # The event's time is the entry's, to the millisecond.
        self.assertIn(send["t"], [t // 1000 for t in j.times])
        with open(self.state("first")) as f:
            self.assertRegex(f.read(), r"^cursor s=[0-9a-f]+;i=[0-9a-f]+;")
        r = ds.cli(self.milter.conf, "status", tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"nope@bounce\.test\s+bounced")
        r = ds.cli(self.milter.conf, "trace", tid)
        self.assertIn("SEND", r.stdout)
        self.assertIn("DEFER", r.stdout)

    def test_2_a_restart_resumes_after_the_saved_cursor(self):
        tid1, lines1 = self.send(["r1@ok.test"])
        tid2, lines2 = self.send(["r2@ok.test"])
        j = Journal(self.work, "resume")
        j.append_lines(lines1)
        state = self.state("resume")
        out, _ = self.logwatch("--journal", j.dir, "--once", "--state", state)
        self.assertEqual(out["written"], 1)
        before = self.ev_list(tid1)
        n2 = j.append_lines(lines2)
        out, _ = self.logwatch("--journal", j.dir, "--once", "--state", state)
        # Only the new entries are read: nothing even to drop as seen.
        self.assertEqual((out["lines"], out["written"], out["duplicate"]),
                         (n2, 1, 0))
        self.assertEqual(self.ev_list(tid1), before)
        self.assertEqual(h.statuses(self.rc, tid2), {"r2@ok.test": "sent"})
        out, _ = self.logwatch("--journal", j.dir, "--once", "--state", state)
        self.assertEqual(out["lines"], 0)
        # Without the state it starts at the head, as a new log file is
        # read from 0; the fingerprints keep the events single.
        out, _ = self.logwatch("--journal=" + j.dir, "--once", "--no-state")
        self.assertEqual((out["written"], out["duplicate"]), (0, 2))
        self.assertEqual(self.ev_list(tid1), before)
        self.assertEqual(len([e for e in h.events(self.rc, tid2)
                              if e["ev"] == "SEND"]), 1)

    def test_3_entries_appended_while_following_are_picked_up(self):
        j = Journal(self.work, "follow")      # no journal file yet
        err_path = self.state("follow") + ".stderr"
        with open(err_path, "wb") as err:
            proc = h.spawn([ds.CLI, "-c", self.milter.conf, "logwatch",
                            "--journal", j.dir, "--state",
                            self.state("follow")],
                           stdout=subprocess.DEVNULL, stderr=err)
        ids = []
        for i in range(2):
            tid, lines = self.send(["f%d@ok.test" % i])
            j.append_lines(lines)
            h.wait_for(lambda: h.statuses(self.rc, tid) ==
                       {"f%d@ok.test" % i: "sent"}, 30,
                       "SEND of %s from the followed journal" % tid)
            ids.append(tid)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(20), 0)
        with open(err_path) as f:
            err = f.read()
        self.assertIn("2 events written", err)
        for tid in ids:
            self.assertEqual(len([e for e in h.events(self.rc, tid)
                                  if e["ev"] == "SEND"]), 1)

    def test_4_bad_entries_are_counted_never_fatal(self):
        tid, lines = self.send(["b@ok.test"])
        j = Journal(self.work, "bad")
        qid = re.search(r": (\w+): to=<b@ok.test>", "\n".join(lines))[1]
        result = ("%s: to=<b@ok.test>, relay=none, delay=1, dsn=5.1.1, "
                  "status=bounced (forged)" % qid)
        j.append([
            postfix_entry("postfix/smtp", "x" * 70000),          # huge
            postfix_entry("postfix/smtp", b"\x00\xff\xfe binary"),
            postfix_entry("postfix/smtp", "A1: removed\n" + result),
            # An identifier that would move the tag into the message.
            postfix_entry("x postfix/smtp", result, pid=None),
            [("SYSLOG_FACILITY", "2"), ("MESSAGE", result)],   # no tag
            postfix_entry("evilfix/smtp", result),              # foreign
        ])
        j.append_lines(lines)
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 self.state("bad"))
        self.assertEqual(out["unparsable"], 5)
        self.assertEqual(out["ignored"], 1)
        self.assertEqual(h.statuses(self.rc, tid), {"b@ok.test": "sent"})
        self.assertIn("warning: cannot parse line: ", err)
        self.assertIn(" x postfix/smtp: " + qid, err)
        self.assertIn("\\x00", err)           # quoted, not written raw
        self.assertNotIn("\x00", err)

    def test_4b_a_local_users_entries_change_nothing(self):
        """logger -t postfix/smtp writes any identifier; journald's _UID
        tells the writer. Root's entries (master, local) count."""
        tid, lines = self.send(["u@ok.test"])
        j = Journal(self.work, "uid")
        qid = re.search(r": (\w+): to=<u@ok.test>", "\n".join(lines))[1]
        forged = ("%s: to=<u@ok.test>, relay=none, delay=1, dsn=5.1.1, "
                  "status=bounced (forged by a local user)" % qid)
        j.append([postfix_entry("postfix/smtp", forged, uid="65534"),
                  [f for f in postfix_entry("postfix/smtp", forged)
                   if f[0] != "_UID"]])
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 self.state("uid"))
        self.assertEqual(out["ignored"], 2)
        self.assertEqual(out["written"], 0)
        self.assertEqual(h.statuses(self.rc, tid), {"u@ok.test": "queued"})
        self.assertIn("neither root nor user postfix wrote", err)
        self.assertIn("forged by a local user", err)
        real = [l for l in lines if "to=<u@ok.test>" in l]
        m = SYSLOG_LINE.match(real[0])
        j.append([postfix_entry(m["ident"], m["msg"], m["pid"], uid="0")])
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 self.state("uid"))
        self.assertEqual(out["written"], 1)
        self.assertEqual(h.statuses(self.rc, tid), {"u@ok.test": "sent"})

    def test_5_unusable_cursors_and_directories_say_so(self):
        tid, lines = self.send(["c@ok.test"])
        j = Journal(self.work, "cursor")
        n = j.append_lines(lines)
        state = self.state("cursor")
        with open(state, "w") as f:
            f.write("cursor not-a-cursor\n")
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 state)
        self.assertIn("is not a journal cursor", err)
        self.assertIn("starting at the head of the journal", err)
        self.assertEqual(out["lines"], n)
        # A log file position (the state of logwatch on a file before).
        with open(state, "w") as f:
            f.write("1234 5678\n")
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 state)
        self.assertIn("holds no journal cursor", err)
        self.assertEqual((out["lines"], out["written"]), (n, 0))
        # Another journal's cursor (or one whose entry was vacuumed):
        # resumed by its time, an entry of that very time included.
        with open(state, "w") as f:
            f.write("cursor s=%s;i=1;b=%s;m=0;t=%x;x=0\n"
                    % ("0" * 31 + "1", "1" * 32, j.times[-2]))
        out, err = self.logwatch("--journal", j.dir, "--once", "--state",
                                 state)
        self.assertIn("resuming at the first entry at or after its time", err)
        self.assertEqual(out["lines"], 2)
        missing = os.path.join(self.work, "no-such-dir")
        r = ds.cli(self.milter.conf, "logwatch", "--journal", missing,
                   "--once")
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot open the journal directory %s: No such file "
                      "or directory" % missing, r.stderr)

    def test_6_no_mail_log_means_the_journal(self):
        # /var/log hidden in a private mount namespace: no mail.log there.
        r = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             'mount -t tmpfs none /var/log && exec "$@"', "sh", ds.CLI,
             "-c", self.milter.conf, "--json", "logwatch", "--once",
             "--no-state"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("/var/log/mail.log does not exist; following the "
                      "systemd journal", r.stderr)
        self.assertIn("lines", json.loads(r.stdout))


if __name__ == "__main__":
    unittest.main()
