"""
The log shipper configs of packaging/shippers/, run verbatim by a real
syslog-ng (LogFormat kv) and a real rsyslog (LogFormat json) that the milter
and Postfix reach through syslog(3): the fields they name equal the Redis
record, a hostile sender cannot forge them, and Postfix's own lines of the
same message join on qid. The README must quote both configs as they are.
"""

import os
import re
import smtplib
import unittest

import harness as h
import shipper_support as ss

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
MMDB = os.environ.get("MT_TEST_MMDB_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "geo-test")
README = os.path.join(ss.ROOT, "README.md")

# A quoted local part Postfix accepts that looks like the rest of a kv line:
# a forged id, a forged sender and a forged tail of every later field. In
# lower case, as mailtrail keeps addresses.
HOSTILE_SENDER = ('"a, id=forged, from=<x>, nrcpt=9, client=evil[6.6.6.6], '
                  'geo=1,1, cc=zz, hops=9, store=spool"@evil.example')
# Tokyo in the test GeoDB (tests/geo/make_mmdb.pl).
XCLIENT_TOKYO = "ADDR=203.0.113.30 NAME=mx.example.net"


def send(port, sender, rcpt, subject, xclient=None):
    """One message; MAIL FROM is written by hand so the sender goes as is."""
    data = h.make_message("Sender <sender@client.test>", rcpt, subject)
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=30) as s:
        s.ehlo("client.test")
        if xclient:
            code, msg = s.docmd("XCLIENT", xclient)
            if code != 220:
                raise RuntimeError("XCLIENT refused: %d %s" % (code, msg))
            s.ehlo("client.test")
        code, msg = s.docmd("MAIL", "FROM:<%s>" % sender)
        if code != 250:
            raise RuntimeError("MAIL FROM refused: %d %r" % (code, msg))
        code, msg = s.rcpt(rcpt)
        if code != 250:
            raise RuntimeError("RCPT TO refused: %d %r" % (code, msg))
        code, msg = s.data(data)
        if code != 250:
            raise RuntimeError("DATA refused: %d %r" % (code, msg))
    qid = h.qid_from_reply(msg.decode("utf-8", "replace"))
    if not qid:
        raise RuntimeError("no queue id in %r" % msg)
    return qid


class ShipperCase:
    """
    The scenarios, run once per daemon. Subclasses set shipper_class and
    log_format; setUpClass starts Redis, the sink, the shipper, the milter
    and Postfix, the last two logging to the shipper.
    """
    shipper_class = None
    log_format = None
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if not os.access(MILTER, os.X_OK):
            raise RuntimeError("milter binary %s is missing" % MILTER)
        if not os.path.exists(os.path.join(MMDB, "city-maxmind.mmdb")):
            raise RuntimeError("test databases missing in %s: make testdb" % MMDB)
        cls.redis = h.Redis().start()
        cls.sink = h.Sink().start()
        cls.shipper = cls.shipper_class().start()
        cls.milter = ss.milter_logging_to(h.Milter(
            cls.redis.address, binary=MILTER, log_format=cls.log_format,
            name="milter-" + cls.shipper.name,
            extra={"GeoDB": os.path.join(MMDB, "city-maxmind.mmdb")}),
            cls.shipper.sock).start()
        cls.postfix = ss.postfix_logging_to(h.Postfix(
            cls.sink.port, milters=[cls.milter.postfix_spec]), cls.shipper.sock).start()

    @classmethod
    def tearDownClass(cls):
        for part in ("postfix", "shipper"):
            if hasattr(cls, part):
                getattr(cls, part).stop()
        if hasattr(cls, "milter"):
            h.assert_clean_stop(cls.milter)
        if hasattr(cls, "redis"):
            cls.redis.stop()

    def setUp(self):
        self.rc = self.redis.client()

    def subject(self, tag):
        return "%s %s" % (self.id().rsplit(".", 1)[-1], tag)

    def record_of(self, qid):
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + qid), 20, "record of " + qid)
        return tid, self.rc.hgetall("mt:{%s}" % tid)

    def milter_object(self, qid):
        return self.shipper.wait_object(
            lambda o: o.get("program") == "mailtrail-milter" and o.get("qid") == qid,
            "mailtrail-milter object of " + qid)

    def assertFieldsAreTheRecords(self, obj, tid, rec):
        self.assertEqual(obj["qid"], rec["qid"], obj)
        self.assertEqual(obj["id"], tid, obj)
        self.assertEqual(obj["from"], rec["sender"], obj)
        self.assertEqual(obj["nrcpt"], int(rec["nrcpt"]), obj)
        self.assertEqual(obj["client_name"], rec["client_name"], obj)
        self.assertEqual(obj["client_ip"], rec["client_ip"], obj)
        self.assertEqual(obj["cc"], rec["cc"], obj)
        self.assertEqual(obj["hops"], int(rec["hops"]), obj)
        self.assertEqual(obj["store"], "redis", obj)

    def test_fields_of_the_milter_line_equal_the_redis_record(self):
        qid = send(self.postfix.port, "alice@client.test", "bob@remote.test",
                   self.subject("fields"), xclient=XCLIENT_TOKYO)
        tid, rec = self.record_of(qid)
        obj = self.milter_object(qid)
        self.assertEqual((rec["client_ip"], rec["cc"]), ("203.0.113.30", "JP"), rec)
        self.assertFieldsAreTheRecords(obj, tid, rec)
        self.assertEqual(obj["from"], "alice@client.test")

    def test_hostile_sender_cannot_forge_the_id_or_later_fields(self):
        qid = send(self.postfix.port, HOSTILE_SENDER, "bob@remote.test",
                   self.subject("hostile"))
        tid, rec = self.record_of(qid)
        obj = self.milter_object(qid)
        line = self.milter.wait_log(lambda l: qid in l and "forged" in l,
                                    what="hostile sender's line")
        self.assertIn("id=forged", line)
        self.assertEqual(rec["sender"], HOSTILE_SENDER)
        self.assertRegex(obj["id"], h.ID_RE)
        self.assertNotEqual(obj["id"], "forged")
        self.assertEqual(obj["from"], HOSTILE_SENDER)
        self.assertEqual((obj["nrcpt"], obj["client_ip"], obj["hops"]),
                         (1, "127.0.0.1", int(rec["hops"])))
        self.assertNotEqual(obj.get("cc"), "zz")
        self.assertEqual(obj["qid"], qid)
        self.assertEqual(obj["id"], tid)
        self.assertEqual(obj["store"], "redis")

    def test_postfix_delivery_line_joins_the_milter_line_on_qid(self):
        qid = send(self.postfix.port, "carol@client.test", "dave@remote.test",
                   self.subject("join"))
        self.sink.find(lambda m: m.header("Subject") == self.subject("join"))
        tid, _rec = self.record_of(qid)
        milter_obj = self.milter_object(qid)
        delivery = self.shipper.wait_object(
            lambda o: o.get("program") == "postfix/smtp" and o.get("qid") == qid
            and "status=sent" in o.get("message", ""),
            "postfix/smtp delivery object of " + qid)
        self.assertEqual(delivery["qid"], milter_obj["qid"])
        self.assertIn("to=<dave@remote.test>", delivery["message"])
        # Every object of the message, Postfix's and mailtrail's, carries it.
        joined = [o for o in self.shipper.objects() if o.get("qid") == qid]
        programs = {o["program"] for o in joined}
        self.assertTrue({"postfix/smtpd", "postfix/cleanup", "postfix/qmgr",
                         "postfix/smtp", "mailtrail-milter"} <= programs, programs)
        self.assertEqual([o["id"] for o in joined if "id" in o], [tid])

    def test_only_lines_with_a_queue_id_are_written(self):
        qid = send(self.postfix.port, "erin@client.test", "frank@remote.test",
                   self.subject("only"))
        self.milter_object(qid)
        # The milter's start-up lines reached the shipper too, and were dropped.
        self.assertTrue([m for m in self.milter.messages() if not m.startswith("{")
                         and not re.match(r"[0-9A-Za-z]+: id=", m)])
        for o in self.shipper.objects():
            self.assertRegex(o.get("qid", ""), r"^[0-9A-Za-z]+$", o)
            self.assertRegex(o["program"], r"^(mailtrail-milter|postfix/[a-z-]+)$", o)


class SyslogNgReadsKvLines(ShipperCase, unittest.TestCase):
    shipper_class = ss.SyslogNg
    log_format = "kv"


class RsyslogReadsJsonLines(ShipperCase, unittest.TestCase):
    shipper_class = ss.Rsyslog
    log_format = "json"


class ReadmeQuotesTheConfigs(unittest.TestCase):
    def test_readme_holds_each_shipper_config_verbatim(self):
        with open(README) as f:
            readme = f.read()
        blocks = re.findall(r"^```[a-z]*\n(.*?)^```$", readme, re.S | re.M)
        for path in (ss.SYSLOG_NG_CONF, ss.RSYSLOG_CONF):
            with open(path) as f:
                text = f.read()
            self.assertTrue(text in blocks, "README.md does not quote %s as it is"
                            % os.path.relpath(path, ss.ROOT))


if __name__ == "__main__":
    unittest.main()
