"""
Per-hop coordinates through a real Postfix: the client hop, hops learnt from
Received: with their trust marks, IPv6, private addresses, two mailtrail
MTAs, a GeoDB swapped under load, and the path in `mailtrail trace`.
Databases: tests/geo/make_mmdb.pl (documentation ranges, known places).
"""

import os
import re
import shutil
import subprocess
import threading
import time
import unittest

import harness as h

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
CLI = os.environ.get("MT_CLI") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail")
MMDB = os.environ.get("MT_TEST_MMDB_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "geo-test")

shared = {}


def db(name):
    return os.path.join(MMDB, name)


def setUpModule():
    if not os.path.exists(db("city-maxmind.mmdb")):
        raise RuntimeError("test databases missing in %s: make testdb" % MMDB)
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER, name="geo", extra={
        "GeoDB": db("city-maxmind.mmdb") + "\nGeoDB " + db("asn.mmdb"),
        "TrustedRelays": "198.51.100.0/24",
    }).start()
    # hopcount_limit: one test sends 500 Received: headers on purpose;
    # inet_protocols all: XCLIENT takes IPv6 client addresses only then.
    shared["postfix"] = h.Postfix(shared["sink"].port, extra={"hopcount_limit": "1000",
                                  "inet_protocols": "all"},
                                  milters=[shared["milter"].postfix_spec]).start()


def tearDownModule():
    for key in ("postfix",):
        if key in shared:
            shared[key].stop()
    if "milter" in shared:
        stop_clean(shared["milter"])
    if "redis" in shared:
        shared["redis"].stop()


stop_clean = h.assert_clean_stop


def fields(value):
    """X-Mailtrail-Hop value -> dict."""
    out = {}
    for part in value.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def hops_of(msg):
    """Hop headers as dicts, top (newest) first."""
    return [fields(v) for v in msg.header_values("X-Mailtrail-Hop")]


class GeoCase(h.SharedSetupCase):
    shared = shared

    def send(self, subject, received=(), sender="alice@client.test", xclient=None,
             port=None, extra=()):
        headers = ["Received: " + r for r in received] + list(extra)
        data = h.make_message(sender, "bob@remote.test", subject, extra_headers=headers)
        # Received: must come first to look like a real trace; put them on top
        # (a folded one with its continuation lines).
        if received:
            head, _, rest = data.partition(b"\r\n\r\n")
            fields, rx, others = [], [], []
            for line in head.split(b"\r\n"):
                if line[:1] in (b" ", b"\t") and fields:
                    fields[-1] += b"\r\n" + line
                else:
                    fields.append(line)
            for f in fields:
                (rx if f.startswith(b"Received:") else others).append(f)
            data = b"\r\n".join(rx + others) + b"\r\n\r\n" + rest
        return h.smtp_send(port or self.postfix.port, sender, ["bob@remote.test"], data,
                           xclient=xclient)

    def assertPlace(self, hop, lat, lon, cc, city):
        self.assertAlmostEqual(float(hop["lat"]), lat, places=3, msg=hop)
        self.assertAlmostEqual(float(hop["lon"]), lon, places=3, msg=hop)
        self.assertEqual(hop.get("cc"), cc, hop)
        self.assertEqual(hop.get("city"), city, hop)


class ClientHop(GeoCase):
    def test_remote_client_hop_has_its_coordinates_on_top(self):
        subj = self.subject("client")
        self.send(subj, xclient="ADDR=203.0.113.30 NAME=mx.example.net")
        msg = self.sink.by_subject(subj)
        # On top, below only the ID and sender mailtrail gives the message
        # (TrackInbound: mail from outside is traced too).
        first = [n for n, _v in msg.headers()
                 if n not in ("X-Mailtrail-ID", "X-Mailtrail-Sender")][0]
        self.assertEqual(first, "X-Mailtrail-Hop", msg.headers()[:3])
        hops = hops_of(msg)
        self.assertEqual(len(hops), 1, hops)
        hop = hops[0]
        self.assertEqual(hop["n"], "1")
        self.assertEqual(hop["by"], "mta1.test")
        self.assertEqual(hop["ip"], "203.0.113.30")
        self.assertEqual(hop["src"], "milter")
        self.assertRegex(hop["t"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertPlace(hop, 35.6762, 139.6503, "JP", "Tokyo")

    def test_asn_database_adds_asn(self):
        subj = self.subject("asn")
        self.send(subj, xclient="ADDR=192.0.2.10 NAME=paris.example.net")
        hop = hops_of(self.sink.by_subject(subj))[0]
        self.assertEqual(hop.get("asn"), "64496", hop)
        self.assertPlace(hop, 48.8566, 2.3522, "FR", "Paris")

    def test_ipv6_client_hop(self):
        subj = self.subject("v6")
        self.send(subj, xclient="ADDR=IPV6:2001:db8:1::25 NAME=ny.example.net")
        hop = hops_of(self.sink.by_subject(subj))[0]
        self.assertEqual(hop["ip"], "2001:db8:1::25")
        self.assertPlace(hop, 40.7128, -74.006, "US", "New York")

    def test_loopback_client_has_no_coordinates(self):
        subj = self.subject("local")
        self.send(subj)
        hop = hops_of(self.sink.by_subject(subj))[0]
        self.assertEqual(hop["ip"], "127.0.0.1")
        for k in ("lat", "lon", "cc", "city"):
            self.assertNotIn(k, hop)

    def test_forged_hops_from_outside_are_removed(self):
        subj = self.subject("forged")
        self.send(subj, xclient="ADDR=203.0.113.30 NAME=mx.example.net",
                  extra=["X-Mailtrail-Hop: n=1; by=evil; ip=192.0.2.99; lat=0; lon=0"])
        hops = hops_of(self.sink.by_subject(subj))
        self.assertEqual([x["ip"] for x in hops], ["203.0.113.30"])


class ReceivedChain(GeoCase):
    CHAIN = [
        # newest first, as they stand in a message
        "from relay2.example (relay2.example [203.0.113.30]) by relay3.example "
        "(Postfix) with ESMTPS id 4AAA; Sat, 21 Nov 2026 10:00:03 +0000",
        "from relay1.example (relay1.example [192.0.2.10])\r\n\tby relay2.example "
        "(8.15.2/8.15.2) with ESMTP id 5BBB; Sat, 21 Nov 2026 10:00:02 +0000",
        "from laptop ([IPv6:2001:db8::1] helo=laptop) by relay1.example with esmtpsa "
        "(Exim 4.96) id 1abc; Sat, 21 Nov 2026 10:00:01 +0000",
    ]

    def test_three_relays_become_hops_in_order_with_trust_marks(self):
        subj = self.subject("chain")
        # The client is a TrustedRelay: what it wrote is believed; the first
        # relay outside (203.0.113.30) is the last trustworthy fact.
        self.send(subj, received=self.CHAIN, xclient="ADDR=198.51.100.7 NAME=relay3.example")
        hops = hops_of(self.sink.by_subject(subj))
        self.assertEqual([x["n"] for x in hops], ["4", "3", "2", "1"], hops)
        self.assertEqual([x["ip"] for x in hops],
                         ["198.51.100.7", "203.0.113.30", "192.0.2.10", "2001:db8::1"])
        self.assertEqual([x.get("src") for x in hops],
                         ["milter", "received", "received", "received"])
        self.assertEqual([x.get("trust") for x in hops],
                         [None, "verified", "unverified", "unverified"])
        self.assertEqual([x["by"] for x in hops],
                         ["mta1.test", "relay3.example", "relay2.example", "relay1.example"])
        self.assertPlace(hops[0], 51.5074, -0.1278, "GB", "London")
        self.assertPlace(hops[1], 35.6762, 139.6503, "JP", "Tokyo")
        self.assertPlace(hops[2], 48.8566, 2.3522, "FR", "Paris")
        self.assertPlace(hops[3], 52.52, 13.405, "DE", "Berlin")

    def test_untrusted_client_makes_every_received_hop_unverified(self):
        subj = self.subject("untrusted")
        self.send(subj, received=self.CHAIN[:1], xclient="ADDR=192.0.2.77 NAME=x.example")
        hops = hops_of(self.sink.by_subject(subj))
        self.assertEqual([x.get("trust") for x in hops], [None, "unverified"])

    def test_private_addresses_get_no_coordinates(self):
        subj = self.subject("private")
        chain = ["from a (a [10.1.2.3]) by b (Postfix) with ESMTP id 1",
                 "from c (c [192.168.1.1]) by a (Postfix) with ESMTP id 2",
                 "from d (d [fd00::5]) by c (Postfix) with ESMTP id 3"]
        self.send(subj, received=chain)
        hops = hops_of(self.sink.by_subject(subj))
        self.assertEqual([x["ip"] for x in hops][1:], ["10.1.2.3", "192.168.1.1", "fd00::5"])
        for hop in hops:
            self.assertNotIn("lat", hop, hop)

    def test_500_received_headers_stay_within_bounds(self):
        subj = self.subject("many")
        chain = ["from r%d.example (r%d.example [192.0.2.%d]) by r%d.example (Postfix) "
                 "with ESMTP id X%d" % (i, i, i % 250 + 1, i + 1, i) for i in range(500)]
        self.send(subj, received=chain)
        msg = self.sink.by_subject(subj, timeout=60)
        hops = hops_of(msg)
        self.assertLessEqual(len(hops), 64)
        self.assertGreater(len(hops), 10)
        self.assertEqual(hops[0]["src"], "milter")
        for raw in msg.header_block:
            self.assertLessEqual(len(raw), 998)

    def test_record_and_log_line_carry_origin_and_path(self):
        subj = self.subject("record")
        sent = self.send(subj, received=self.CHAIN)   # a submission from 127.0.0.1
        self.sink.by_subject(subj)
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
        rec = self.rc.hgetall("mt:{%s}" % tid)
        self.assertEqual(rec["hops"], "4")
        self.assertEqual(rec["cc"], "DE")        # the origin: the laptop in Berlin
        self.assertEqual(rec["city"], "Berlin")
        self.assertAlmostEqual(float(rec["lat"]), 52.52, places=3)
        line = self.milter.wait_kv_for_qid(sent.qid).group(0)
        self.assertIn("geo=52.5200,13.4050, cc=DE, hops=4", line)

    def test_trace_shows_the_path_with_coordinates_and_distances(self):
        subj = self.subject("trace")
        sent = self.send(subj, received=self.CHAIN)
        self.sink.by_subject(subj)
        tid = h.wait_for(lambda: self.rc.get("mt:qid:" + sent.qid), 10, "qid key")
        r = subprocess.run([CLI, "-c", self.milter.conf, "trace", tid],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        path = r.stdout.split("Path:", 1)[1].split("\n\n", 1)[0]
        rows = [l.split() for l in path.strip().splitlines()[1:]]
        # Four Received: hops, then this MTA where the route ends.
        self.assertEqual([row[:2] for row in rows],
                         [["1", "origin"], ["2", "transit"], ["3", "transit"],
                          ["4", "transit"], ["5", "mta"]], r.stdout)
        self.assertIn("52.5200,13.4050", path)
        self.assertIn("48.8566,2.3522", path)
        # Berlin -> Paris is about 878 km as the crow flies.
        km = float(rows[1][-1])
        self.assertAlmostEqual(km, 878, delta=5)


class TwoMailtrailMtas(GeoCase):
    def test_hops_are_not_stamped_twice(self):
        sink = h.Sink().start()
        key = h.make_secret(h.make_workdir("geokey"))
        extra = {"GeoDB": db("city-maxmind.mmdb")}
        # mta1 reaches mta2 from 127.0.0.1: a site MTA of mta2's.
        m2 = h.Milter(shared["redis"].address, binary=MILTER, secret_file=key,
                      name="geo2", extra=dict(extra, SiteMTAs="127.0.0.1/32")).start()
        m1 = h.Milter(shared["redis"].address, binary=MILTER, secret_file=key,
                      name="geo1", extra=extra).start()
        mta2 = h.Postfix(sink.port, hostname="mta2.test", milters=[m2.postfix_spec]).start()
        mta1 = h.Postfix(mta2.port, hostname="mta1.test", milters=[m1.postfix_spec]).start()
        try:
            subj = self.subject("two")
            self.send(subj, port=mta1.port, xclient="ADDR=192.0.2.10 NAME=paris.example")
            hops = hops_of(sink.by_subject(subj, timeout=60))
            self.assertEqual([(x["n"], x["ip"], x["by"]) for x in hops],
                             [("2", "127.0.0.1", "mta2.test"),
                              ("1", "192.0.2.10", "mta1.test")], hops)
            self.assertPlace(hops[1], 48.8566, 2.3522, "FR", "Paris")
        finally:
            mta1.stop()
            mta2.stop()
            stop_clean(m1)
            stop_clean(m2)


class DatabaseSwap(GeoCase):
    def test_database_replaced_under_load_never_fails_a_lookup(self):
        work = h.make_workdir("geoswap")
        live = os.path.join(work, "city.mmdb")
        shutil.copy(db("city-maxmind.mmdb"), live)
        sink = h.Sink().start()
        m = h.Milter(shared["redis"].address, binary=MILTER, name="swap",
                     extra={"GeoDB": live}).start()
        mta = h.Postfix(sink.port, hostname="mta9.test", milters=[m.postfix_spec]).start()
        stop = threading.Event()

        def swapper():
            i = 0
            while not stop.is_set():
                src = db("city-maxmind-v2.mmdb" if i % 2 == 0 else "city-maxmind.mmdb")
                shutil.copy(src, live + ".new")
                os.rename(live + ".new", live)
                i += 1
                time.sleep(0.7)
        t = threading.Thread(target=swapper)
        try:
            t.start()
            tag = self.subject("load")
            n = 40
            for i in range(n):
                self.send("%s #%d" % (tag, i), port=mta.port,
                          xclient="ADDR=203.0.113.30 NAME=tokyo.example")
            sink.wait_count(n, timeout=120)
            stop.set()
            t.join()
            cities = set()
            for msg in list(sink.messages):
                hop = hops_of(msg)[0]
                self.assertIn("lat", hop, "a lookup failed during the swap: %r" % hop)
                cities.add(hop["city"])
            self.assertLessEqual(cities, {"Tokyo", "Sydney"})
            m.wait_log(lambda l: "GeoDB:" in l and "replaced" in l, 20, "swap log line")
            # The file now in place is served once the watcher has seen it.
            shutil.copy(db("city-maxmind-v2.mmdb"), live + ".new")
            os.rename(live + ".new", live)
            time.sleep(3)
            subj = self.subject("after")
            self.send(subj, port=mta.port, xclient="ADDR=203.0.113.30 NAME=tokyo.example")
            self.assertEqual(hops_of(sink.by_subject(subj))[0]["city"], "Sydney")
            # A broken replacement keeps the old one in service, with a warning.
            with open(live + ".new", "w") as f:
                f.write("not a database")
            os.rename(live + ".new", live)
            m.wait_log(lambda l: "warning: GeoDB" in l, 20, "bad-file warning")
            subj = self.subject("bad")
            self.send(subj, port=mta.port, xclient="ADDR=203.0.113.30 NAME=tokyo.example")
            self.assertEqual(hops_of(sink.by_subject(subj))[0]["city"], "Sydney")
        finally:
            stop.set()
            t.join()
            mta.stop()
            stop_clean(m)


if __name__ == "__main__":
    unittest.main()
