"""
The whole path through a real Postfix: a message submitted from Paris
(XCLIENT) to this MTA, which PublicAddress places in London, delivered to
the sink; Postfix's real delivery line, its relay moved to an address the
test GeoDB places in Tokyo (the sink is on loopback, which no GeoDB
places), followed by `mailtrail logwatch`. Then the destination in
`trace`, `--json` and `--geojson` (checked with python3-geojson and
against the GeoDB), and `mailtrail map`: SVG parsed, dots at their
projected coordinates, text escaped, rendered by rsvg-convert. A message
with no coordinates anywhere still gives an honest map and GeoJSON.
"""

import json
import math
import os
import re
import subprocess
import unittest
import xml.etree.ElementTree as ET

import geojson

import harness as h
import delivery_support as ds

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
MMDB = os.environ.get("MT_TEST_MMDB_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "geo-test")
SVG = "{http://www.w3.org/2000/svg}"

# What tests/geo/make_mmdb.pl puts in city-maxmind.mmdb.
PARIS = (48.8566, 2.3522, "FR", "Paris")
LONDON = (51.5074, -0.1278, "GB", "London")
TOKYO = (35.6762, 139.6503, "JP", "Tokyo")
HOSTILE = (-23.5505, -46.6333, "BR", 'S<o> & "Paulo\'s"')
FAR_RELAY = "mx\"<&'>.example[203.0.113.30]:25"

# Land for the map: Western Europe and Japan as two boxes, quantized and
# delta-encoded as world-atlas writes it.
LAND = {
    "type": "Topology",
    "transform": {"scale": [0.5, 0.5], "translate": [-10, 30]},
    "objects": {"land": {"type": "MultiPolygon", "arcs": [[[0]], [[1]]]}},
    "arcs": [
        [[0, 0], [80, 0], [0, 60], [-80, 0], [0, -60]],
        [[278, 2], [34, 0], [0, 28], [-34, 0], [0, -28]],
    ],
}

shared = {}


def km(a, b):
    la1, lo1, la2, lo2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    d = (math.sin((la2 - la1) / 2) ** 2 +
         math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2)
    return 2 * 6371.0088 * math.asin(math.sqrt(d))


def setUpModule():
    db = os.path.join(MMDB, "city-maxmind.mmdb")
    if not os.path.exists(db):
        raise RuntimeError("test database missing in %s: make testdb" % MMDB)
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER, name="map",
                                extra={"GeoDB": db,
                                       "PublicAddress": "198.51.100.20"}).start()
    shared["postfix"] = h.Postfix(shared["sink"].port, hostname="map.test",
                                  milters=[shared["milter"].postfix_spec],
                                  extra={"inet_protocols": "all"}).start()
    shared["work"] = h.make_workdir("map")
    land = os.path.join(shared["work"], "land.json")
    with open(land, "w") as f:
        json.dump(LAND, f)
    shared["land"] = land


def tearDownModule():
    for key in ("postfix", "milter", "redis"):
        if key in shared:
            shared[key].stop()


def send_and_deliver(subject, xclient, rcpt="far@far.test", relay=FAR_RELAY):
    """A submission through the real Postfix; its real delivery line, the
    relay moved to `relay`, read by logwatch. Returns the tracking ID."""
    pf, rc, conf = shared["postfix"], shared["redis"].client(), shared["milter"].conf
    sent = h.smtp_send(pf.port, "alice@map.test", [rcpt],
                       h.make_message("alice@map.test", rcpt, subject),
                       xclient=xclient)
    tid = ds.id_of_qid(rc, sent.qid)
    mark = "%s: to=<%s>" % (sent.qid, rcpt)
    ds.wait_maillog(pf, lambda t: mark in t and "status=sent" in t,
                    what="delivery of %s" % sent.qid)
    lines = [l for l in pf.read_maillog().splitlines()
             if mark in l and "status=sent" in l]
    assert len(lines) == 1, lines
    assert re.search(r"relay=[^,]*\[127\.0\.0\.1\]:\d+", lines[0]), lines[0]
    if relay:
        lines = [re.sub(r"relay=[^,]*\[127\.0\.0\.1\]:\d+", "relay=" + relay,
                        lines[0])]
    log = os.path.join(shared["work"], sent.qid + ".log")
    with open(log, "w") as f:
        f.write(lines[0] + "\n")
    r = ds.cli(conf, "logwatch", "--once", "--no-state", log)
    assert r.returncode == 0, r.stderr
    return tid


def project(svg_root):
    g = [e for e in svg_root.iter(SVG + "g") if e.get("id") == "map"][0]
    lon0, lat0, scale = (float(g.get(k)) for k in ("data-lon0", "data-lat0",
                                                  "data-scale"))
    return lambda lat, lon: (((lon - lon0) % 360) * scale, (lat0 - lat) * scale)


def text_of(e):
    return "".join(e.itertext())


class WholePath(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.conf = shared["milter"].conf
        cls.tid = send_and_deliver("to Tokyo", "ADDR=192.0.2.10 NAME=paris.example LOGIN=alice")

    def cli(self, *args):
        r = ds.cli(self.conf, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_send_event_names_the_destination_and_its_place(self):
        send = [e for e in h.events(shared["redis"].client(), self.tid)
                if e["ev"] == "SEND"]
        self.assertEqual(len(send), 1, send)
        self.assertEqual(send[0]["relay"], FAR_RELAY)
        self.assertEqual((send[0]["ip"], send[0]["cc"], send[0]["city"]),
                         ("203.0.113.30", "JP", "Tokyo"))

    def test_trace_shows_origin_mta_destination_and_distances(self):
        out = self.cli("trace", self.tid)
        path, routes = out.split("Path:", 1)[1].split("Routes:", 1)
        rows = [l.split() for l in path.strip().splitlines()[1:]]
        self.assertEqual([r[:2] for r in rows],
                         [["1", "origin"], ["2", "mta"], ["3", "destination"]], out)
        self.assertEqual(rows[0][3], "192.0.2.10")
        self.assertIn("48.8566,2.3522", rows[0])
        self.assertIn("51.5074,-0.1278", rows[1])     # PublicAddress
        self.assertEqual(rows[2][3], "203.0.113.30")
        self.assertIn("35.6762,139.6503", rows[2])
        self.assertIn("delivery/verified", rows[2])
        self.assertAlmostEqual(float(rows[1][-1]), km(PARIS, LONDON), delta=0.2)
        self.assertAlmostEqual(float(rows[2][-1]), km(LONDON, TOKYO), delta=0.2)
        # The relay's name is shown escaped, as every value in the table.
        self.assertIn("mx\\\"<&'>.example", rows[2][2])
        route = routes.strip().splitlines()[1].split()
        self.assertEqual(route[:2], ["far@far.test", "1>2>3"])
        total = km(PARIS, LONDON) + km(LONDON, TOKYO)
        self.assertAlmostEqual(float(route[2]), total, delta=0.3)
        self.assertRegex(routes, r"total %.0f\.\d km" % math.floor(total))

    def test_trace_json_has_the_whole_path(self):
        doc = json.loads(self.cli("--json", "trace", self.tid))
        whole = doc["whole"]
        self.assertEqual([p["role"] for p in whole["places"]],
                         ["origin", "mta", "destination"])
        dest = whole["places"][2]
        self.assertEqual((dest["ip"], dest["cc"], dest["city"]),
                         ("203.0.113.30", "JP", "Tokyo"))
        self.assertAlmostEqual(dest["lat"], TOKYO[0], places=4)
        self.assertEqual(whole["routes"][0]["rcpt"], "far@far.test")
        self.assertEqual(whole["routes"][0]["unplaced"], [])
        self.assertAlmostEqual(whole["km"], km(PARIS, LONDON) + km(LONDON, TOKYO),
                               delta=0.3)
        self.assertIn("path", doc)      # the hop path as before

    def test_geojson_is_valid_and_places_match_the_geodb(self):
        out = self.cli("trace", "--geojson", self.tid)
        fc = geojson.loads(out)
        self.assertTrue(fc.is_valid, fc.errors())
        self.assertEqual(fc["type"], "FeatureCollection")
        points = [f for f in fc["features"] if f["geometry"] and
                  f["geometry"]["type"] == "Point"]
        lines = [f for f in fc["features"] if f["geometry"] and
                 f["geometry"]["type"] == "LineString"]
        self.assertEqual(len(points), 3)
        self.assertEqual(len(lines), 1)
        for f, (lat, lon, cc, city) in zip(points, (PARIS, LONDON, TOKYO)):
            # RFC 7946: longitude first.
            self.assertAlmostEqual(f["geometry"]["coordinates"][0], lon, places=4)
            self.assertAlmostEqual(f["geometry"]["coordinates"][1], lat, places=4)
            self.assertEqual((f["properties"]["cc"], f["properties"]["city"]), (cc, city))
        p = points[2]["properties"]
        self.assertEqual((p["hop"], p["role"], p["ip"], p["by"]),
                         (3, "destination", "203.0.113.30", FAR_RELAY))
        line = lines[0]
        self.assertEqual([[round(c, 4) for c in xy] for xy in line["geometry"]["coordinates"]],
                         [[PARIS[1], PARIS[0]], [LONDON[1], LONDON[0]],
                          [TOKYO[1], TOKYO[0]]])
        self.assertEqual(line["properties"]["rcpt"], "far@far.test")
        self.assertEqual(line["properties"]["hops"], [1, 2, 3])
        self.assertEqual(line["properties"]["unplaced"], [])

    def test_map_dots_stand_at_their_projected_coordinates(self):
        svg = os.path.join(shared["work"], "tokyo.svg")
        self.cli("map", "-o", svg, "--land", shared["land"], self.tid)
        root = ET.parse(svg).getroot()
        self.assertEqual(root.tag, SVG + "svg")
        xy = project(root)
        dots = [c for c in root.iter(SVG + "circle") if c.get("class") == "place"]
        self.assertEqual(len(dots), 3)
        for dot, place in zip(dots, (PARIS, LONDON, TOKYO)):
            x, y = xy(place[0], place[1])
            self.assertAlmostEqual(float(dot.get("cx")), x, delta=0.6)
            self.assertAlmostEqual(float(dot.get("cy")), y, delta=0.6)
        legs = [p for p in root.iter(SVG + "path") if p.get("class") == "leg"]
        self.assertEqual([(l.get("data-from"), l.get("data-to")) for l in legs],
                         [("1", "2"), ("2", "3")])
        land = [p for p in root.iter(SVG + "path") if p.get("class") == "land"]
        self.assertEqual(len(land), 1)
        self.assertEqual(land[0].get("d").count("M"), 2)
        labels = [text_of(t) for t in root.iter(SVG + "text") if t.get("class") == "label"]
        self.assertEqual(sorted(labels), ["1 Paris, FR", "2 London, GB", "3 Tokyo, JP"])
        legend = [text_of(t) for t in root.iter(SVG + "text")]
        # The relay's name with <, &, quotes: parsed back to what it was.
        self.assertTrue(any("received by " + FAR_RELAY in t for t in legend), legend)
        self.assertTrue(any("Natural Earth" in t for t in legend))
        png = svg[:-4] + ".png"
        r = subprocess.run(["rsvg-convert", "-o", png, svg], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_map_without_land_still_draws_and_says_why(self):
        svg = os.path.join(shared["work"], "noland.svg")
        r = ds.cli(self.conf, "map", "-o", svg, "--land",
                   os.path.join(shared["work"], "missing.json"), self.tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no land drawn", r.stderr)
        root = ET.parse(svg).getroot()
        self.assertEqual([p for p in root.iter(SVG + "path") if p.get("class") == "land"], [])
        self.assertEqual(len([c for c in root.iter(SVG + "circle")
                              if c.get("class") == "place"]), 3)
        self.assertTrue(any("make worldmap" in text_of(t) for t in root.iter(SVG + "text")))

    def test_map_needs_an_output_file_and_a_known_id(self):
        r = ds.cli(self.conf, "map", self.tid)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("-o", r.stderr)
        r = ds.cli(self.conf, "map", "-o", os.path.join(shared["work"], "x.svg"),
                   "4VqXyZ2nope")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(shared["work"], "x.svg")))


class HostileNames(unittest.TestCase):
    def test_a_place_name_with_markup_is_escaped_in_map_and_geojson(self):
        conf = shared["milter"].conf
        tid = send_and_deliver("from a hostile place",
                               "ADDR=IPV6:2001:db8:3::7 NAME=sp.example LOGIN=alice")
        svg = os.path.join(shared["work"], "hostile.svg")
        r = ds.cli(conf, "map", "-o", svg, "--land", shared["land"], tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(svg, encoding="utf-8") as f:
            raw = f.read()
        self.assertIn("S&lt;o&gt; &amp; &quot;Paulo&apos;s&quot;", raw)
        self.assertNotIn("S<o>", raw)
        root = ET.fromstring(raw)
        labels = [text_of(t) for t in root.iter(SVG + "text") if t.get("class") == "label"]
        self.assertIn("1 %s, BR" % HOSTILE[3], labels)
        xy = project(root)
        dot = [c for c in root.iter(SVG + "circle") if c.get("class") == "place"][0]
        x, y = xy(HOSTILE[0], HOSTILE[1])
        self.assertAlmostEqual(float(dot.get("cx")), x, delta=0.6)
        self.assertAlmostEqual(float(dot.get("cy")), y, delta=0.6)
        r = subprocess.run(["rsvg-convert", "-o", svg + ".png", svg],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ds.cli(conf, "trace", "--geojson", tid)
        fc = geojson.loads(r.stdout)
        self.assertTrue(fc.is_valid, fc.errors())
        self.assertEqual(fc["features"][0]["properties"]["city"], HOSTILE[3])
        self.assertEqual(fc["features"][0]["properties"]["ip"], "2001:db8:3::7")


class NoCoordinates(unittest.TestCase):
    """Neither a GeoDB nor a PublicAddress: nothing on the path is placed."""

    @classmethod
    def setUpClass(cls):
        cls.sink = h.Sink().start()
        cls.milter = h.Milter(shared["redis"].address, binary=MILTER,
                              name="map-nogeo").start()
        cls.pf = h.Postfix(cls.sink.port, hostname="nogeo.test",
                           milters=[cls.milter.postfix_spec]).start()

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()
        cls.milter.stop()

    def test_map_and_geojson_are_valid_and_honest(self):
        rc = shared["redis"].client()
        sent = h.smtp_send(self.pf.port, "alice@nogeo.test", ["bob@remote.test"],
                           h.make_message("alice@nogeo.test", "bob", "nowhere"),
                           xclient="ADDR=192.0.2.10 NAME=paris.example LOGIN=alice")
        tid = ds.id_of_qid(rc, sent.qid)
        self.sink.by_subject("nowhere")
        fc = geojson.loads(ds.cli(self.milter.conf, "trace", "--geojson", tid).stdout)
        self.assertTrue(fc.is_valid, fc.errors())
        self.assertTrue(fc["features"])
        self.assertTrue(all(f["geometry"] is None for f in fc["features"]))
        places = [f["properties"] for f in fc["features"] if "role" in f["properties"]]
        self.assertEqual(places[0]["ip"], "192.0.2.10")   # listed, not placed
        route = [f["properties"] for f in fc["features"] if "rcpt" in f["properties"]]
        self.assertEqual(route[0]["unplaced"], [p["hop"] for p in places])
        out = ds.cli(self.milter.conf, "trace", tid).stdout
        self.assertIn("no distance", out)
        self.assertNotIn(" km great-circle", out)
        svg = os.path.join(shared["work"], "nowhere.svg")
        r = ds.cli(self.milter.conf, "map", "-o", svg, "--land", shared["land"], tid)
        self.assertEqual(r.returncode, 0, r.stderr)
        root = ET.parse(svg).getroot()
        self.assertEqual([c for c in root.iter(SVG + "circle") if c.get("class") == "place"], [])
        self.assertEqual([p for p in root.iter(SVG + "path") if p.get("class") == "leg"], [])
        g = [e for e in root.iter(SVG + "g") if e.get("id") == "map"][0]
        self.assertAlmostEqual(float(g.get("data-lon0")), -180)     # the world
        self.assertAlmostEqual(float(g.get("data-scale")), 1000 / 360, places=3)
        texts = [text_of(t) for t in root.iter(SVG + "text")]
        self.assertTrue(any("No place on this path has coordinates" in t for t in texts))
        self.assertTrue(any("no coordinates" in t for t in texts))
        r = subprocess.run(["rsvg-convert", "-o", svg + ".png", svg],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
