"""
The milter protocol engine seen from the MTA's side of the socket: a test
client (milter_client.py) speaks version 6 to a real mailtrail-milter with a
real Redis, the way Postfix's milter8.c does, and also the ways it never
should. Each test asserts what a user sees: the headers the milter inserts
at end of body, the record in Redis and the milter's log line.

Tests marked `# new engine` prove behaviour that only the in-tree engine has
(libmilter logs nothing to our log and waits on a zero-length packet); every
other assertion holds for the libmilter build too.
"""

import os
import re
import resource
import socket
import struct
import threading
import time
import unittest

import harness as h
import milter_client as mc

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
CONNECTIONS = 500

shared = {}


def setUpModule():
    if not os.access(MILTER, os.X_OK):
        raise RuntimeError("milter binary %s is missing: make build/san/mailtrail-milter"
                           % MILTER)
    # 500 connections at once: this process and the milter it starts (which
    # inherits the limit) each need a descriptor per connection.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4 * CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
    shared["redis"] = h.Redis().start()
    shared["unix"] = h.Milter(shared["redis"].address, binary=MILTER,
                              name="milter-eng").start()
    shared["inet"] = h.Milter(shared["redis"].address, binary=MILTER, name="milter-eng-tcp",
                              socket_spec="inet:%d@127.0.0.1" % h.free_port()).start()


def tearDownModule():
    for name in ("unix", "inet"):
        if name in shared:
            h.assert_clean_stop(shared[name])
    if "redis" in shared:
        shared["redis"].stop()


_serial = [0]
_serial_lock = threading.Lock()


def new_qid():
    """A queue ID no other message of this run has, shaped like Postfix's."""
    with _serial_lock:
        _serial[0] += 1
        return "E%X%05X" % (os.getpid() & 0xffff, _serial[0])


def plain_headers(subject, msgid=None):
    return [("From", "Tester <tester@client.test>"), ("To", "rcpt@remote.test"),
            ("Subject", subject),
            ("Message-ID", "<%s>" % (msgid or "%s@client.test" % re.sub(r"\W", "", subject)))]


class EngineCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.redis = shared["redis"]
        self.rc = self.redis.client()
        self.milter = shared["unix"]
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, milter=None, **kw):
        c = mc.MilterClient((milter or self.milter).socket_spec, **kw)
        self.clients.append(c)
        return c

    def subject(self, tag):
        return "%s %s %d" % (self.id().rsplit(".", 1)[-1], tag, time.monotonic_ns())

    def assertTracked(self, res, qid, sender, rcpts, milter=None):
        """
        The EOB answer carries a fresh ID and the sender; the record, the qid
        index and the log line say the same. Returns (id, record).
        """
        milter = milter or self.milter
        self.assertEqual(res.final.cmd, mc.R_CONTINUE, res)
        ids = res.headers("X-Mailtrail-ID")
        self.assertEqual(len(ids), 1, res)
        tid = ids[0]
        self.assertRegex(tid, h.ID_RE)
        self.assertEqual(res.headers("X-Mailtrail-Sender"), ["<%s>" % sender], res)
        for a in res.actions:
            if a.name and a.name.lower().startswith("x-mailtrail-"):
                self.assertEqual((a.cmd, a.index), (mc.R_INSHEADER, 0), a)
        h.wait_for(lambda: self.rc.exists("mt:{%s}" % tid), 10, "record of %s" % tid)
        rec = self.rc.hgetall("mt:{%s}" % tid)
        self.assertEqual((rec["sender"], rec["nrcpt"]), (sender, str(len(rcpts))), rec)
        self.assertEqual(set(h.statuses(self.rc, tid)), set(rcpts))
        if qid is not None:
            self.assertEqual(rec["qid"], qid)
            self.assertEqual(self.rc.get("mt:qid:" + qid), tid)
            m = milter.wait_kv_for_qid(qid)
            self.assertEqual((m.group("id"), m.group("sender")), (tid, sender))
            self.assertEqual(m.group("nrcpt"), str(len(rcpts)))
        return tid, rec

    def run_message(self, c, tag, rcpts=("bob@remote.test",), milter=None, **kw):
        """One message on an open session; asserts it was tracked."""
        qid = new_qid()
        sender = "%s-%s@client.test" % (tag.lower(), qid.lower())
        res = c.message(sender, list(rcpts), plain_headers(self.subject(tag)), qid=qid, **kw)
        tid, rec = self.assertTracked(res, qid, sender, rcpts, milter)
        return tid, rec, res

    def assertStillServing(self, milter=None, client=None):
        """A connection (given or new) completes a message; the milter runs."""
        milter = milter or self.milter
        c = client
        if c is None:
            c = self.client(milter)
            c.session()
        tid, _rec, _res = self.run_message(c, "survivor", milter=milter)
        self.assertTrue(milter.running(), milter.read_log()[-2000:])
        self.assertIsNone(milter.sanitizer_report())
        return tid


class Negotiation(EngineCase):
    def test_optneg_offers_what_postfix_offers_and_asks_for_its_macros(self):
        c = self.client()
        neg = c.optneg()
        self.assertEqual(neg.version, 6)
        # Adds and changes headers and quarantines (hold); nothing beyond
        # what Postfix offered.
        for flag in (mc.F_ADDHDRS, mc.F_CHGHDRS, mc.F_QUARANTINE):
            self.assertTrue(neg.actions & flag, neg)
        self.assertEqual(neg.actions & ~mc.POSTFIX_ACTIONS, 0, neg)
        self.assertEqual(neg.protocol & ~mc.POSTFIX_PROTOCOL, 0, neg)
        self.assertIn("i", neg.symlists.get(mc.STAGE_EOM, []), neg)
        self.assertIn("j", neg.symlists.get(mc.STAGE_CONNECT, []), neg)
        self.assertIn("{auth_authen}", neg.symlists.get(mc.STAGE_MAIL, []), neg)


class OneConnection(EngineCase):
    def test_messages_and_an_abort_on_one_connection_keep_their_own_state(self):
        c = self.client()
        c.session()
        id1, rec1, _ = self.run_message(c, "first", rcpts=("a1@remote.test", "a2@remote.test"))

        # The second is aborted after its headers: no ID, no record.
        lost_sender = "aborted-%s@client.test" % new_qid().lower()
        lost_rcpt = "lost-%s@remote.test" % new_qid().lower()
        c.macro(mc.MAIL, [("{mail_addr}", lost_sender)])
        c.mail(lost_sender)
        c.rcpt(lost_rcpt)
        lost_msgid = "aborted.%d@client.test" % time.monotonic_ns()
        for name, value in plain_headers("aborted", lost_msgid):
            c.header(name, value)
        c.eoh()
        c.body("never finished\r\n")
        c.abort()

        # The third has neither Subject nor Message-ID: nothing of the
        # aborted one may show up in its record.
        qid3 = new_qid()
        sender3 = "third-%s@client.test" % qid3.lower()
        res3 = c.message(sender3, ["c1@remote.test"], [("From", "x@client.test")], qid=qid3)
        id3, rec3 = self.assertTracked(res3, qid3, sender3, ["c1@remote.test"])
        id4, rec4, _ = self.run_message(c, "fourth")
        c.quit()
        # Nothing answered ABORT or QUIT, and QUIT ends the connection.
        self.assertEqual(c.wait_closed(5), b"")

        self.assertEqual(len({id1, id3, id4}), 3)
        self.assertEqual(h.statuses(self.rc, id3), {"c1@remote.test": "queued"})
        self.assertNotIn(lost_msgid, (rec3.get("msgid"), rec4.get("msgid")))
        self.assertIsNone(rec3.get("subject"), rec3)
        self.assertIsNone(rec3.get("msgid"), rec3)
        self.assertEqual(rec1["nrcpt"], "2")
        self.assertFalse(self.rc.exists("mt:from:" + lost_sender))
        self.assertFalse(self.rc.exists("mt:to:" + lost_rcpt))
        self.assertFalse(self.rc.exists("mt:msgid:" + lost_msgid))
        self.assertFalse([l for l in self.milter.lines() if lost_sender in l])
        for tid in h.record_keys(self.rc):
            self.assertNotEqual(self.rc.hget("mt:{%s}" % tid, "sender"), lost_sender)

    def test_quit_nc_then_a_new_session_on_the_same_connection_is_tracked(self):
        c = self.client()
        c.session(host="one.test", addr="127.0.0.5", helo="helo-one.test", mta="mta-one.test")
        id1, rec1, _ = self.run_message(c, "before")
        c.quit_nc()
        # A new SMTP session on the same milter connection: no OPTNEG again.
        c.session(host="two.test", addr="127.0.0.6", helo="helo-two.test",
                  mta="mta-two.test", negotiate=False)
        id2, rec2, _ = self.run_message(c, "after")
        c.quit()
        self.assertEqual(c.wait_closed(5), b"")
        self.assertNotEqual(id1, id2)
        self.assertEqual((rec1["client_ip"], rec1["helo"], rec1["by"]),
                         ("127.0.0.5", "helo-one.test", "mta-one.test"))
        self.assertEqual((rec2["client_ip"], rec2["helo"], rec2["by"]),
                         ("127.0.0.6", "helo-two.test", "mta-two.test"))
        self.assertEqual(rec2["client_name"], "two.test")

    def test_connect_of_each_address_family_gives_the_client_address(self):
        # family, address as CONNECT carries it, client_ip and dir in the record
        cases = [("4", "192.0.2.7", "192.0.2.7", "in"),
                 ("6", "2001:db8::7", "2001:db8::7", "in"),
                 ("L", "/run/smtpd.sock", "local", "out"),
                 ("U", None, "local", "out")]
        for family, addr, client_ip, direction in cases:
            with self.subTest(family=family):
                c = self.client()
                c.session(host="fam%s.test" % family, family=family, addr=addr or "",
                          port=0 if family in "LU" else 4025)
                _tid, rec, _res = self.run_message(c, "family" + family)
                c.quit()
                self.assertEqual((rec["client_ip"], rec["dir"]), (client_ip, direction), rec)
                self.assertEqual(rec["client_name"], "fam%s.test" % family)

    def test_message_without_any_macros_is_tracked_under_noqueue(self):
        c = self.client()
        c.session(macros=False)
        sender = "nomacro-%s@client.test" % new_qid().lower()
        res = c.message(sender, ["bob@remote.test"], plain_headers(self.subject("nomacro")),
                        macros=False)
        tid, rec = self.assertTracked(res, None, sender, ["bob@remote.test"])
        # No "i": the record and the log line say NOQUEUE. No "j": the
        # milter names this host.
        self.assertEqual(rec["qid"], "NOQUEUE")
        self.assertEqual(rec["by"], socket.gethostname())
        line = self.milter.wait_log(lambda l: ("id=%s," % tid) in l, what="line of %s" % tid)
        m = h.KV_LOG_RE.match(line)
        self.assertIsNotNone(m, line)
        self.assertEqual(m.group("qid"), "NOQUEUE")
        self.assertEqual(m.group("sender"), sender)
        c.quit()
        self.assertStillServing()


class BadInput(EngineCase):
    """A peer that breaks the protocol loses its connection, nobody else's."""

    def open_pair(self):
        """A bystander mid-session and a connection about to misbehave."""
        bystander = self.client()
        bystander.session()
        bad = self.client()
        bad.session()
        return bystander, bad

    def test_unknown_command_closes_that_connection_only(self):
        bystander, bad = self.open_pair()
        bad.send_packet(b"Z", b"what is this\0")
        bad.wait_closed(5)
        self.assertStillServing(client=bystander)
        self.assertStillServing()

    def test_length_over_the_limit_closes_the_connection(self):
        bystander, bad = self.open_pair()
        bad.send_raw(struct.pack(">I", 0x7fffffff) + mc.HEADER + b"X-Big\0")
        bad.wait_closed(5)
        self.assertStillServing(client=bystander)
        self.assertStillServing()

    def test_truncated_packet_then_close_leaves_the_milter_serving(self):
        bystander, bad = self.open_pair()
        bad.send_raw(struct.pack(">I", 64) + mc.HEADER + b"Subject\0cut sh")
        bad.sock.shutdown(socket.SHUT_WR)
        bad.wait_closed(5)
        bad.close()
        self.assertStillServing(client=bystander)
        self.assertStillServing()

    def test_zero_length_packet_leaves_the_milter_serving(self):
        bystander, bad = self.open_pair()
        bad.send_raw(b"\0\0\0\0")
        time.sleep(0.3)
        self.assertStillServing(client=bystander)
        bad.close()
        self.assertStillServing()

    def test_zero_length_packet_closes_the_connection(self):
        # new engine: a packet must hold at least its command byte.
        # libmilter instead waits for a fifth byte to read as the command.
        bystander, bad = self.open_pair()
        bad.send_raw(b"\0\0\0\0")
        bad.wait_closed(5)
        self.assertStillServing(client=bystander)

    def test_each_bad_connection_logs_exactly_one_closed_line(self):
        # new engine: one line per connection it closes ("milter connection
        # N: ...; closed"); libmilter logs to syslog, not to our log.
        milter = h.Milter(self.redis.address, binary=MILTER, name="milter-eng-bad").start()

        def closed_lines():
            return [l for l in milter.lines() if "milter connection" in l and "closed" in l]
        try:
            bystander = self.client(milter)
            bystander.session()
            bad_inputs = {
                "unknown command": mc.packet(b"Z", b"what is this\0"),
                "too long": struct.pack(">I", 0x7fffffff) + mc.HEADER,
                "truncated, then EOF": struct.pack(">I", 64) + mc.HEADER + b"Subject\0cut sh",
                "zero length": b"\0\0\0\0",
            }
            added = {}
            for what, data in bad_inputs.items():
                before = len(closed_lines())
                bad = self.client(milter)
                bad.session()
                bad.send_raw(data)
                if what.startswith("truncated"):
                    bad.sock.shutdown(socket.SHUT_WR)
                try:
                    bad.wait_closed(5)
                except mc.MilterTimeout:
                    added[what] = "connection still open"
                    continue
                try:
                    h.wait_for(lambda: len(closed_lines()) > before, 2, "closed line")
                except TimeoutError:
                    pass
                time.sleep(0.2)     # a second line for the same connection shows now
                added[what] = len(closed_lines()) - before
            self.assertStillServing(milter, client=bystander)
            bystander.quit()
            time.sleep(0.3)
            self.assertEqual(added, {what: 1 for what in bad_inputs},
                             "\n".join(milter.lines()))
            self.assertEqual(len(closed_lines()), len(bad_inputs))
            self.assertEqual(len([l for l in closed_lines() if "'Z'" in l or "0x5a" in l]),
                             1, closed_lines())
        finally:
            h.assert_clean_stop(milter)


class Framing(EngineCase):
    def test_session_written_one_byte_at_a_time_gives_the_same_result(self):
        for kind in ("unix", "inet"):
            milter = shared[kind]
            with self.subTest(socket=kind):
                results = []
                for split in (None, 1):
                    c = self.client(milter, split=split, pause=0.0005 if split else 0)
                    c.session(host="split.test", helo="helo-split.test")
                    subj = "split %s" % kind
                    qid = new_qid()
                    res = c.message("split@client.test", ["s1@remote.test", "s2@remote.test"],
                                    plain_headers(subj, "split-%s@client.test" % kind),
                                    body="line one\r\nline two\r\n" * 20, qid=qid)
                    tid, rec = self.assertTracked(res, qid, "split@client.test",
                                                  ["s1@remote.test", "s2@remote.test"], milter)
                    c.quit()
                    results.append((res, tid, rec))
                (whole, id_w, rec_w), (split, id_s, rec_s) = results
                self.assertNotEqual(id_w, id_s)

                def shape(res):
                    return ([(a.cmd, a.index, a.name,
                              re.sub(r"t=[^;]*;", "", a.value) if a.name != "X-Mailtrail-ID"
                              else "ID") for a in res.actions], res.final.cmd)
                self.assertEqual(shape(whole), shape(split))
                fields = ("sender", "nrcpt", "subject", "msgid", "helo", "client_ip",
                          "client_name", "by", "dir", "size")
                self.assertEqual({k: rec_w.get(k) for k in fields},
                                 {k: rec_s.get(k) for k in fields})


class Load(EngineCase):
    def test_500_connections_at_once_each_get_a_distinct_id(self):
        milter = shared["inet"]
        conns = []
        t0 = time.monotonic()
        for _ in range(CONNECTIONS):
            conns.append(self.client(milter, timeout=30))
        for c in conns:
            c.optneg()
        for i, c in enumerate(conns):
            c.session(host="c%d.test" % i, port=20000 + i, negotiate=False)
        # Every message in flight before the first answer is read.
        sent = []
        for i, c in enumerate(conns):
            qid = new_qid()
            sender = "load%d@client.test" % i
            c.message(sender, ["r%d@remote.test" % i], plain_headers("load %d" % i),
                      qid=qid, wait=False)
            sent.append((c, qid, sender, i))
        ids = set()
        for c, qid, sender, i in sent:
            res = c.read_eob(timeout=60)
            self.assertEqual(res.final.cmd, mc.R_CONTINUE, res)
            self.assertEqual(res.headers("X-Mailtrail-Sender"), ["<%s>" % sender])
            tid = res.header("X-Mailtrail-ID")
            self.assertRegex(tid, h.ID_RE)
            ids.add(tid)
        for c in conns:
            c.quit()
        self.assertEqual(len(ids), CONNECTIONS)
        for c, qid, sender, i in sent:
            tid = self.rc.get("mt:qid:" + qid)
            self.assertIn(tid, ids)
            self.assertEqual(self.rc.hmget("mt:{%s}" % tid, "sender", "client_name"),
                             [sender, "c%d.test" % i])
        logged = {m.group("qid") for m in milter.kv_lines()}
        self.assertTrue({q for _c, q, _s, _i in sent} <= logged)
        self.assertTrue(milter.running())
        self.assertLess(time.monotonic() - t0, 45)

    def test_peer_that_stops_reading_does_not_stall_others(self):
        # Without NR flags every header is answered; this peer never reads
        # the answers, so the milter's writes to it back up.
        stalled = self.client(timeout=5)
        stalled.optneg(protocol=mc.POSTFIX_PROTOCOL & ~mc.P_ALL_NR)
        stalled.macro(mc.CONNECT, [("j", "mta1.test")])
        stalled.send_packet(mc.CONNECT, b"stall.test\x004" + struct.pack(">H", 25)
                            + b"127.0.0.1\0")
        stalled.send_packet(mc.HELO, b"stall.test\0")
        stalled.send_packet(mc.MAIL, b"<stall@client.test>\0")
        stalled.send_packet(mc.RCPT, b"<r@remote.test>\0")
        chunk = mc.packet(mc.HEADER, b"X-Fill\0" + b"f" * 40 + b"\0") * 100
        stalled.sock.settimeout(1.0)
        pushed, t0 = 0, time.monotonic()
        blocked = closed = False
        while pushed < (256 << 20) and time.monotonic() - t0 < 20:
            try:
                stalled.sock.sendall(chunk)
                pushed += len(chunk)
            except socket.timeout:
                blocked = True           # the milter stopped reading us
                break
            except (BrokenPipeError, ConnectionResetError):
                closed = True            # or closed us: both fine
                break
        # It asked for more answers than the socket buffers hold: the milter
        # stopped reading it (or closed it) long before 256 MiB.
        self.assertTrue(blocked or closed, "%d bytes taken without a stall" % pushed)
        self.assertGreater(pushed, 0)

        # Meanwhile others are served, on a connection open before and after.
        before = self.client()
        before.session()
        for _ in range(3):
            self.assertStillServing(client=before)
        self.assertStillServing()
        if blocked:
            # Still stalled: nothing of it became a record.
            self.assertFalse(self.rc.exists("mt:from:stall@client.test"))
        stalled.close()
        time.sleep(0.3)
        self.assertStillServing(client=before)


if __name__ == "__main__":
    unittest.main()
