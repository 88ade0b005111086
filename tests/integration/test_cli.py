#!/usr/bin/python3
"""
The `mailtrail` command against a real Redis seeded with the milter's key
layout: status, trace and search as an admin sees them (tables and --json),
exit codes, and escaping of hostile bytes. Runs the binary in MT_CLI
(default build/san/mailtrail); standalone: /usr/bin/python3 tests/integration/test_cli.py
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CLI = os.environ.get("MT_CLI", os.path.join(ROOT, "build/san/mailtrail"))
P = "mt:"

# Tracking IDs: 26 chars of [0-9a-v], '.', 16 chars of [0-9a-v].
ID1 = "0vq1k2m3n4abcdefghijklmnop.0123456789abcdef"
ID2 = "0vq1k2m3n5abcdefghijklmnop.fedcba9876543210"
ID3 = "0vq1k2m3n6abcdefghijklmnop.00112233445566aa"
T1 = 1714564800123          # 2024-05-01T12:00:00.123Z
T2 = 1714651200000          # 2024-05-02T12:00:00.000Z
T3 = 1714737600000          # 2024-05-03T12:00:00.000Z
HOSTILE_SENDER = "evil\x1b[31m\r@attacker.example"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_message(r, mid, rec, rcpts, events):
    """Layout 2: statuses are r:ADDRESS fields of the record, and the hop
    path rides on the RECEIVE event."""
    rec = dict(rec)
    rec.pop("id", None)
    path = rec.pop("path", None)
    events = [dict(e) for e in events]
    if path is not None:
        events[0]["path"] = json.loads(path)
    r.hset(P + "{%s}" % mid, mapping=rec)
    r.hset(P + "{%s}" % mid, mapping={"r:" + a: v for a, v in rcpts.items()})
    for ev in events:
        r.rpush(P + "{%s}:ev" % mid, json.dumps(ev))
    r.set(P + "qid:" + rec["qid"], mid)
    if rec.get("msgid"):
        r.zadd(P + "msgid:" + rec["msgid"], {mid: int(rec["received"])})
    r.zadd(P + "from:" + rec["sender"], {mid: int(rec["received"])})
    for addr in rcpts:
        r.zadd(P + "to:" + addr, {mid: int(rec["received"])})


def seed(r):
    path = [
        {"n": 1, "by": "mx1.example.com", "ip": "192.0.2.10", "lat": 48.8566,
         "lon": 2.3522, "cc": "FR", "city": "Paris", "src": "milter",
         "trust": "yes", "t": T1},
        {"n": 2, "by": "relay.example.co.uk", "ip": "198.51.100.7",
         "lat": 51.5074, "lon": -0.1278, "cc": "GB", "city": "London",
         "src": "milter", "trust": "yes", "t": T1 + 900},
    ]
    seed_message(r, ID1, {
        "id": ID1, "qid": "4VqXyZ1abc", "msgid": "20240501.abc@example.com",
        "sender": "alice@example.com", "subject": "Invoice 2024-05 été",
        "dir": "out", "nrcpt": "2", "client_ip": "192.0.2.10",
        "client_name": "laptop.example.com", "helo": "laptop", "auth": "alice",
        "lat": "48.8566", "lon": "2.3522", "cc": "FR", "city": "Paris",
        "hops": "2", "size": "2048", "received": str(T1),
        "by": "mx1.example.com", "path": json.dumps(path),
    }, {"bob@example.org": "sent", "carol@example.net": "deferred"}, [
        {"t": T1, "ev": "RECEIVE", "qid": "4VqXyZ1abc",
         "from": "alice@example.com", "nrcpt": 2,
         "client": "laptop.example.com[192.0.2.10]", "size": 2048},
        {"t": T1 + 500, "ev": "ROUTE", "rcpt": "bob@example.org",
         "relay": "out1"},
        {"t": T1 + 2000, "ev": "SEND", "rcpt": "bob@example.org",
         "relay": "mx.example.org[203.0.113.5]:25", "dsn": "2.0.0",
         "status": "sent"},
        {"t": T1 + 3000, "ev": "DEFER", "rcpt": "carol@example.net",
         "dsn": "4.4.1", "reason": "connection timed out"},
    ])
    seed_message(r, ID2, {
        "id": ID2, "qid": "4VqXyZ2def", "msgid": "20240502.def@example.com",
        "sender": "alice@example.com", "subject": "Holiday photos",
        "dir": "out", "nrcpt": "1", "client_ip": "192.0.2.10",
        "received": str(T2), "by": "mx1.example.com", "hops": "1",
    }, {"dave@example.org": "bounced"}, [
        {"t": T2, "ev": "RECEIVE", "qid": "4VqXyZ2def"},
        {"t": T2 + 1000, "ev": "BOUNCE", "rcpt": "dave@example.org",
         "dsn": "5.1.1"},
    ])
    seed_message(r, ID3, {
        "id": ID3, "qid": "4VqXyZ3ghi", "msgid": "evil@attacker.example",
        "sender": HOSTILE_SENDER, "nrcpt": "1", "received": str(T3),
        "by": "mx1.example.com", "city": "Z\u00fcrich\u202e",
    }, {"bob@example.org": "queued"}, [
        {"t": T3, "ev": "RECEIVE", "from": HOSTILE_SENDER},
    ])


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(CLI, os.X_OK):
            raise unittest.SkipTest("no binary at %s (make build/san/mailtrail)" % CLI)
        cls.dir = tempfile.mkdtemp(prefix="mt-cli-")
        cls.port = free_port()
        cls.redis = subprocess.Popen(
            ["redis-server", "--port", str(cls.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.r = redis.Redis(host="127.0.0.1", port=cls.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                cls.r.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    cls.tearDownClass()
                    raise
                time.sleep(0.05)
        seed(cls.r)
        cls.conf = cls.write_config("mailtrail.conf", cls.port)
        cls.dead_conf = cls.write_config("dead.conf", free_port())

    @classmethod
    def write_config(cls, name, port):
        key = os.path.join(cls.dir, "secret.key")
        if not os.path.exists(key):
            fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
            os.write(fd, os.urandom(32))
            os.close(fd)
        spool = os.path.join(cls.dir, "spool")
        os.makedirs(spool, exist_ok=True)
        path = os.path.join(cls.dir, name)
        with open(path, "w") as f:
            f.write("# test configuration\nRedisServer 127.0.0.1:%d\n"
                    "SecretKeyFile %s\nSpoolDir %s\n" % (port, key, spool))
        return path

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "redis", None) is not None:
            cls.redis.kill()
            cls.redis.wait()
        if getattr(cls, "dir", None):
            shutil.rmtree(cls.dir, ignore_errors=True)

    def run_cli(self, *args, conf=None):
        p = subprocess.run([CLI, "-c", conf or self.conf] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        err = p.stderr.decode("utf-8", "replace")
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error"):
            self.assertNotIn(marker, err, "sanitizer report:\n" + err)
        return p.returncode, p.stdout.decode("utf-8"), err

    def status_ok(self, arg):
        rc, out, err = self.run_cli("status", arg)
        self.assertEqual(rc, 0, err)
        self.assertIn(ID1, out)
        self.assertIn("alice@example.com", out)
        self.assertRegex(out, r"bob@example\.org\s+sent\s+2024-05-01T12:00:02\.123Z SEND")
        self.assertRegex(out, r"carol@example\.net\s+deferred\s+2024-05-01T12:00:03\.123Z DEFER")
        self.assertRegex(out, r"received\s+2024-05-01T12:00:00\.123Z")
        return out

    # --- status ---------------------------------------------------------
    def test_status_by_tracking_id_shows_record_and_recipients(self):
        out = self.status_ok(ID1)
        self.assertRegex(out, r"client_name\s+laptop\.example\.com")
        self.assertNotIn('"n"', out)  # the raw path JSON is trace's business

    def test_status_by_queue_id(self):
        self.status_ok("4VqXyZ1abc")

    def test_status_by_message_id_with_angle_brackets(self):
        self.status_ok("<20240501.abc@example.com>")

    def test_status_by_message_id_without_angle_brackets(self):
        self.status_ok("20240501.abc@example.com")

    def test_status_json_has_fields_numbers_and_recipients(self):
        rc, out, err = self.run_cli("--json", "status", "4VqXyZ1abc")
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(list(doc)[:4], ["id", "qid", "msgid", "sender"])
        self.assertEqual(doc["id"], ID1)
        self.assertEqual(doc["qid"], "4VqXyZ1abc")
        self.assertEqual(doc["msgid"], "20240501.abc@example.com")
        self.assertEqual(doc["sender"], "alice@example.com")
        self.assertEqual(doc["nrcpt"], 2)
        self.assertEqual(doc["received"], T1)
        self.assertAlmostEqual(doc["lat"], 48.8566)
        self.assertEqual(doc["recipients"], {"bob@example.org": "sent",
                                             "carol@example.net": "deferred"})

    def test_json_flag_is_accepted_after_the_subcommand(self):
        rc, out, err = self.run_cli("status", ID2, "--json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["recipients"], {"dave@example.org": "bounced"})

    def test_status_of_unknown_message_exits_1(self):
        rc, out, err = self.run_cli("status", "no-such-thing@example.com")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("mailtrail: no message matches", err)

    def test_status_of_well_formed_but_unknown_id_exits_1(self):
        rc, _, err = self.run_cli("status", "0000000000aaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbb")
        self.assertEqual(rc, 1, err)

    def test_dangling_queue_id_pointer_is_not_found(self):
        self.r.set(P + "qid:DANGLING1", "0vq00000000000000000000000.0000000000000000")
        rc, _, err = self.run_cli("status", "DANGLING1")
        self.assertEqual(rc, 1)
        self.assertIn("expired", err)

    # --- usage and environment errors -------------------------------------
    def test_help_prints_usage_and_exits_0(self):
        p = subprocess.run([CLI, "-h"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        for word in (b"usage: mailtrail", b"status", b"trace", b"search"):
            self.assertIn(word, p.stdout)

    def test_missing_argument_is_usage_error(self):
        rc, _, err = self.run_cli("status")
        self.assertEqual(rc, 2)
        self.assertIn("usage: mailtrail", err)

    def test_unknown_subcommand_is_usage_error(self):
        rc, _, err = self.run_cli("frobnicate")
        self.assertEqual(rc, 2)
        self.assertIn("unknown command", err)

    def test_no_subcommand_is_usage_error(self):
        p = subprocess.run([CLI], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)

    def test_search_with_bad_time_is_usage_error(self):
        rc, _, err = self.run_cli("search", "--from", "a@b.c", "--since", "2024-02-30")
        self.assertEqual(rc, 2)
        self.assertIn("not a time", err)

    def test_unreadable_config_exits_2(self):
        rc, _, err = self.run_cli("status", ID1, conf=os.path.join(self.dir, "missing.conf"))
        self.assertEqual(rc, 2)
        self.assertRegex(err, r"^mailtrail: .*missing\.conf")

    def test_redis_down_exits_2_with_message(self):
        rc, out, err = self.run_cli("status", ID1, conf=self.dead_conf)
        self.assertEqual(rc, 2)
        self.assertEqual(out, "")
        self.assertRegex(err, r"^mailtrail: cannot connect to Redis at 127\.0\.0\.1:\d+: ")
        self.assertEqual(len(err.strip().splitlines()), 1)

    # --- trace ------------------------------------------------------------
    def test_trace_shows_events_in_order(self):
        rc, out, err = self.run_cli("trace", ID1)
        self.assertEqual(rc, 0, err)
        self.assertIn("ID %s  sender alice@example.com  received 2024-05-01T12:00:00.123Z" % ID1, out)
        order = [out.index(e) for e in ("RECEIVE", "ROUTE", "SEND", "DEFER")]
        self.assertEqual(order, sorted(order))
        self.assertRegex(out, r"2024-05-01T12:00:03\.123Z\s+DEFER\s+rcpt=carol@example\.net "
                              r'dsn=4\.4\.1 reason="connection timed out"')
        self.assertIn("client=laptop.example.com[192.0.2.10]", out)

    def test_trace_sorts_events_written_out_of_time_order(self):
        # A record replayed from the spool writes its SPOOL event after a
        # delivery result logwatch had already written.
        mid = "0vq1k2m3n7abcdefghijklmnop.0011223344556677"
        t = 1714564800000
        seed_message(self.r, mid, {"qid": "4VqXyZ4sort", "sender": "sort@example.com",
                                   "nrcpt": "1", "received": str(t)},
                     {"u@example.net": "sent"}, [
            {"t": t, "ev": "RECEIVE"},
            {"t": t + 5000, "ev": "SEND", "rcpt": "u@example.net"},
            {"t": t + 3000, "ev": "DEFER", "rcpt": "u@example.net"},
            {"t": t + 1000, "ev": "SPOOL", "spooled": t + 500},
        ])
        rc, out, err = self.run_cli("trace", mid)
        self.assertEqual(rc, 0, err)
        order = [out.index(e) for e in ("RECEIVE", "SPOOL", "DEFER", "SEND")]
        self.assertEqual(order, sorted(order), out)
        rc, out, err = self.run_cli("--json", "trace", mid)
        self.assertEqual([e["ev"] for e in json.loads(out)["events"]],
                         ["RECEIVE", "SPOOL", "DEFER", "SEND"])

    def test_trace_and_map_take_the_latest_delivery_by_time(self):
        # Two deliveries to one recipient (a resend), the later one in time
        # written first (two logwatch instances, a replay): the destination
        # is the later in time, for trace and map alike.
        mid = "0vq1k2m3n8abcdefghijklmnop.8899aabbccddeeff"
        t = 1714564800000
        seed_message(self.r, mid, {"qid": "4VqXyZ5late", "sender": "late@example.com",
                                   "nrcpt": "1", "received": str(t)},
                     {"v@example.net": "sent"}, [
            {"t": t, "ev": "RECEIVE"},
            {"t": t + 9000, "ev": "SEND", "rcpt": "v@example.net",
             "relay": "mx.tokyo.test[203.0.113.30]:25", "ip": "203.0.113.30",
             "lat": 35.6762, "lon": 139.6503, "cc": "JP", "city": "Tokyo"},
            {"t": t + 2000, "ev": "SEND", "rcpt": "v@example.net",
             "relay": "mx.paris.test[192.0.2.10]:25", "ip": "192.0.2.10",
             "lat": 48.8566, "lon": 2.3522, "cc": "FR", "city": "Paris"},
        ])
        rc, out, err = self.run_cli("trace", "--geojson", mid)
        self.assertEqual(rc, 0, err)
        cities = [f["properties"].get("city") for f in json.loads(out)["features"]
                  if f["properties"].get("role") == "destination"]
        self.assertEqual(cities, ["Tokyo"])
        svg = os.path.join(self.dir, "late.svg")
        rc, out, err = self.run_cli("map", "-o", svg, "--land",
                                    os.path.join(self.dir, "none.json"), mid)
        self.assertEqual(rc, 0, err)
        with open(svg, encoding="utf-8") as f:
            text = f.read()
        self.assertIn("Tokyo, JP", text)
        self.assertNotIn("Paris, FR", text)

    def test_trace_shows_hop_distance_paris_to_london(self):
        rc, out, err = self.run_cli("trace", "4VqXyZ1abc")
        self.assertEqual(rc, 0, err)
        london = [l for l in out.splitlines() if "London" in l]
        self.assertEqual(len(london), 1, out)
        self.assertIn("51.5074,-0.1278", london[0])
        km = float(london[0].split()[-1])
        self.assertAlmostEqual(km, 343.5, delta=1.0)

    def test_trace_json_has_events_and_path_with_distance(self):
        rc, out, err = self.run_cli("--json", "trace", ID1)
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["id"], ID1)
        self.assertEqual([e["ev"] for e in doc["events"]],
                         ["RECEIVE", "ROUTE", "SEND", "DEFER"])
        self.assertEqual([h["city"] for h in doc["path"]], ["Paris", "London"])
        self.assertNotIn("km", doc["path"][0])
        self.assertAlmostEqual(doc["path"][1]["km"], 343.5, delta=1.0)
        self.assertEqual(doc["recipients"]["carol@example.net"], "deferred")

    def test_trace_without_stored_path_shows_the_client_hop(self):
        # One mailtrail MTA, one hop: the record's client is the path.
        rc, out, err = self.run_cli("trace", ID2)
        self.assertEqual(rc, 0, err)
        self.assertIn("BOUNCE", out)
        path = out.split("Path:", 1)[1].split("\n\n", 1)
        rows = [l.split() for l in path[0].strip().splitlines()[1:]]
        # The client, then this MTA: neither placed, no distance invented.
        self.assertEqual(len(rows), 2, out)
        self.assertEqual(rows[0][:4], ["1", "origin", "mx1.example.com", "192.0.2.10"])
        self.assertEqual(rows[1][:3], ["2", "mta", "mx1.example.com"])
        self.assertEqual(rows[0][4], "-")
        routes = path[1].split("Routes:", 1)[1].strip().splitlines()
        self.assertEqual(routes[1].split(), ["dave@example.org", "1>2", "-", "1,2"])
        self.assertIn("no distance", routes[-1])

    # --- search -----------------------------------------------------------
    def search_ids(self, *args):
        rc, out, err = self.run_cli("--json", "search", *args)
        if rc == 1:
            self.assertEqual(json.loads(out), [])
            return rc, []
        self.assertEqual(rc, 0, err)
        return rc, [row["id"] for row in json.loads(out)]

    def test_search_by_sender_newest_first(self):
        self.assertEqual(self.search_ids("--from", "Alice@Example.COM"), (0, [ID2, ID1]))

    def test_search_by_recipient(self):
        self.assertEqual(self.search_ids("--to", "bob@example.org"), (0, [ID3, ID1]))

    def test_search_by_sender_and_recipient_intersects(self):
        self.assertEqual(self.search_ids("--from", "alice@example.com",
                                         "--to", "<dave@example.org>"), (0, [ID2]))

    def test_search_since_and_until_bound_the_time(self):
        self.assertEqual(self.search_ids("--from", "alice@example.com",
                                         "--since", "2024-05-02"), (0, [ID2]))
        self.assertEqual(self.search_ids("--from", "alice@example.com",
                                         "--until", "2024-05-01T23:59Z"), (0, [ID1]))
        self.assertEqual(self.search_ids("--to", "bob@example.org",
                                         "--since", str(T1 // 1000 - 1),
                                         "--until", str(T1 // 1000 + 1)), (0, [ID1]))

    def test_search_relative_since_finds_nothing_old(self):
        self.assertEqual(self.search_ids("--from", "alice@example.com", "--since", "2h"), (1, []))

    def test_search_limit(self):
        self.assertEqual(self.search_ids("--from", "alice@example.com", "--limit", "1"), (0, [ID2]))

    def test_search_filters_by_subject_ip_and_status(self):
        rc, ids = self.search_ids("--from", "alice@example.com", "--subject", "INVOICE")
        self.assertEqual((rc, ids), (0, [ID1]))
        rc, ids = self.search_ids("--from", "alice@example.com", "--subject", "été")
        self.assertEqual((rc, ids), (0, [ID1]))
        rc, ids = self.search_ids("--from", "alice@example.com", "--status", "bounced")
        self.assertEqual((rc, ids), (0, [ID2]))
        rc, ids = self.search_ids("--from", "alice@example.com", "--ip", "192.0.2.10",
                                  "--status", "deferred")
        self.assertEqual((rc, ids), (0, [ID1]))
        rc, ids = self.search_ids("--from", "alice@example.com", "--subject", "nowhere")
        self.assertEqual(rc, 1)
        rc, out, err = self.run_cli("search", "--from", "alice@example.com",
                                    "--status", "opened")
        self.assertEqual(rc, 2)
        self.assertIn("not a status", err)

    def test_search_table_summarises_recipient_statuses(self):
        rc, out, err = self.run_cli("search", "--from", "alice@example.com")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("RECEIVED"), out)
        self.assertRegex(lines[1], r"^2024-05-02T12:00:00\.000Z\s+%s\s+alice@example\.com\s+1\s+bounced:1$" % re.escape(ID2))
        self.assertRegex(lines[2], r"%s\s+alice@example\.com\s+2\s+sent:1 deferred:1$" % re.escape(ID1))

    def test_search_with_no_match_exits_1(self):
        rc, out, err = self.run_cli("search", "--to", "nobody@example.com")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("no messages match", err)

    # --- hostile data ----------------------------------------------------
    def test_hostile_sender_is_escaped_in_tables(self):
        for args in (("status", ID3), ("trace", ID3), ("search", "--to", "bob@example.org")):
            rc, out, err = self.run_cli(*args)
            self.assertEqual(rc, 0, err)
            self.assertNotIn("\x1b", out, args)
            self.assertNotIn("\r", out, args)
            self.assertNotIn("\u202e", out, args)
            self.assertIn("evil\\x1b[31m\\x0d@attacker.example", out, args)

    def test_hostile_sender_round_trips_in_json(self):
        rc, out, err = self.run_cli("--json", "status", ID3)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("\x1b", out)
        self.assertEqual(json.loads(out)["sender"], HOSTILE_SENDER)

    def test_json_output_escapes_c1_controls_and_bidi_overrides(self):
        self.r.hset("mt:{%s}" % ID3, "helo", "x\u0085y\u202ez\u2066")
        try:
            rc, out, err = self.run_cli("--json", "status", ID3)
        finally:
            self.r.hdel("mt:{%s}" % ID3, "helo")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.isascii(), [c for c in out if not c.isascii()])
        self.assertIn("\\u202e", out.lower())
        self.assertIn("\\u0085", out.lower())
        rec = json.loads(out)
        self.assertEqual(rec["helo"], "x\u0085y\u202ez\u2066")
        self.assertEqual(rec["city"], "Z\u00fcrich\u202e")


if __name__ == "__main__":
    unittest.main(verbosity=2)
