"""
Outbound IP rotation, end to end: mailtrail-routed answering a real
Postfix's transport lookups over socketmap, routes bound to 127.0.0.11-13,
an SMTP sink that records each connection's source address, a real Redis,
and dnsmasq on loopback for `mailtrail route check`.
"""

import collections
import datetime
import os
import subprocess
import time
import unittest

import harness
import route_support as rs

TODAY = datetime.datetime.utcnow().strftime("%Y-%m-%d")
THREE_ROUTES = [
    "r1 bind=127.0.0.11 helo=r1.test weight=1",
    "r2 bind=127.0.0.12 helo=r2.test weight=2",
    "r3 bind=127.0.0.13 helo=r3.test weight=3",
]


class RouteTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = harness.Redis().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.rc = self.redis.client()
        self.rc.flushall()
        self.routeds = []

    def tearDown(self):
        for r in self.routeds:
            rc = r.stop()
            rep = r.sanitizer_report()
            self.assertIsNone(rep, "sanitizer report from routed:\n%s" % rep)
            self.assertEqual(rc, 0, "routed exit status")

    def routed(self, routes, **kw):
        r = rs.Routed(self.redis.address, routes, **kw).start()
        self.routeds.append(r)
        return r

    def postfix(self, routed, sink, hostname="mta1.test"):
        return rs.routed_postfix(routed, sink, hostname=hostname).start()

    @staticmethod
    def wait_health_refresh():
        time.sleep(2.2)		# routed reads route health every second

    # ---------------------------------------------------------------
    def test_shares_follow_weights_1_2_3_over_600_messages(self):
        sink = rs.RoutingSink().start()
        routed = self.routed(THREE_ROUTES)
        pf = self.postfix(routed, sink)
        rs.send_many(pf.port, 600)
        sink.wait_count(600, timeout=240)
        shares = collections.Counter(sink.sources())
        self.assertEqual(sum(shares.values()), 600, shares)
        for addr, want in (("127.0.0.11", 1 / 6), ("127.0.0.12", 2 / 6),
                           ("127.0.0.13", 3 / 6)):
            got = shares[addr] / 600
            self.assertLess(abs(got - want), 0.05,
                            "%s carried %.3f, want %.3f: %s" % (addr, got, want, shares))
        # The delivery log names the route: syslog_name=postfix-NAME.
        log = pf.read_maillog()
        for name in ("r1", "r2", "r3"):
            self.assertIn("postfix-%s/smtp[" % name, log)
        pf.stop()

    def test_paused_route_gets_nothing_new_even_on_retry(self):
        sink = rs.RoutingSink().start()
        routed = self.routed(THREE_ROUTES)
        pf = self.postfix(routed, sink)
        sink.refusing = True
        rs.send_many(pf.port, 30, prefix="deferred")
        def deferred(prefix, n):
            log = pf.read_maillog()
            return all("to=<%s%d@example.com>" % (prefix, i) in log and
                       "status=deferred" in log for i in range(n))
        harness.wait_for(lambda: deferred("deferred", 30), 90, "30 deferred messages")
        self.assertIn("127.0.0.11", sink.connections,
                      "the refused first attempts should include r1's address")
        r = routed.cli("route", "pause", "r1", "test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_health_refresh()
        # qmgr remembers its last resolution (one entry, 30 s); one more
        # message resolved after the pause moves it past the deferred ones.
        rs.send_many(pf.port, 1, prefix="evict")
        harness.wait_for(lambda: deferred("evict", 1), 60, "the evict message deferred")
        sink.refusing = False
        pf.flush()
        sink.wait_count(31, timeout=120)
        rs.send_many(pf.port, 29, prefix="fresh")
        sink.wait_count(60, timeout=120)
        sources = collections.Counter(sink.sources())
        self.assertNotIn("127.0.0.11", sources, sources)
        self.assertEqual(sources["127.0.0.12"] + sources["127.0.0.13"], 60)
        out = routed.cli("route", "list").stdout
        self.assertRegex(out, r"(?m)^r1\s.*\spaused\s.*paused: test")
        pf.stop()

    def test_warmup_cap_holds_across_two_mtas_sharing_redis(self):
        routes = ["warm bind=127.0.0.11 helo=warm.test weight=5 warmup=%s:50:2" % TODAY,
                  "bulk bind=127.0.0.12 helo=bulk.test weight=1"]
        sink = rs.RoutingSink().start()
        pfs = []
        for host in ("mta1.test", "mta2.test"):
            routed = self.routed(routes, name="routed-" + host.split(".")[0])
            pfs.append(self.postfix(routed, sink, hostname=host))
        import threading
        threads = [threading.Thread(target=rs.send_many, args=(pf.port, 100),
                                    kwargs={"prefix": pf.hostname.split(".")[0]})
                   for pf in pfs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sink.wait_count(200, timeout=180)
        sources = collections.Counter(sink.sources())
        self.assertEqual(sources["127.0.0.11"], 50, sources)
        self.assertEqual(sources["127.0.0.12"], 150, sources)
        day = datetime.datetime.utcnow().strftime("%Y%m%d")
        self.assertEqual(self.rc.get("mt:route:warm:" + day), "50")
        self.assertGreater(self.rc.ttl("mt:route:warm:" + day), 86400)
        out = self.routeds[0].cli("route", "list").stdout
        self.assertRegex(out, r"(?m)^warm\s.*\s50/50\s")
        for pf in pfs:
            pf.stop()

    def test_trace_shows_the_route_of_each_recipient(self):
        sink = rs.RoutingSink().start()
        milter = harness.Milter(self.redis.address).start()
        routed = self.routed(THREE_ROUTES)
        pf = rs.routed_postfix(routed, sink, extra={
            "smtpd_milters": milter.postfix_spec}).start()
        rcpts = ["t%d@example.com" % i for i in range(6)]
        data = harness.make_message("alice@example.org", ", ".join(rcpts), "route trace")
        sent = harness.smtp_send(pf.port, "alice@example.org", rcpts, data)
        # qmgr groups recipients per route: one delivery per route.
        msgs = sink.wait_count(3, timeout=60)
        pf.wait_drained()
        per_source = {m.peer[0]: len(m.rcpts) for m in msgs}
        self.assertEqual(per_source, {"127.0.0.11": 1, "127.0.0.12": 2,
                                      "127.0.0.13": 3})
        # One mailtrail.conf for all, as installed: with the Route lines,
        # logwatch believes their transports' syslog names (postfix-NAME).
        conf = milter.conf + ".routes"
        with open(milter.conf) as f, open(conf, "w") as g:
            g.write(f.read() + "".join("Route %s\n" % l for l in routed.routes))
        r = subprocess.run([rs.cli_binary(), "-c", conf, "logwatch", "--once",
                            "--no-state", pf.maillog], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([rs.cli_binary(), "-c", milter.conf, "trace", sent.qid],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Six recipients resolved one by one: weights 1:2:3 use every route.
        for name in ("r1", "r2", "r3"):
            self.assertIn("service=postfix-%s/smtp" % name, r.stdout, r.stdout)
        # Each SEND names its route, the route's outbound address and the
        # server that took the message: sent when, by which server.
        tid = self.rc.get("mt:qid:" + sent.qid)
        sends = [e for e in harness.events(self.rc, tid) if e["ev"] == "SEND"]
        self.assertEqual(len(sends), 6)
        for e in sends:
            self.assertEqual(e["route_ip"], "127.0.0.1" + e["route"][1], e)
            self.assertRegex(e["relay"], r"^127\.0\.0\.1\[127\.0\.0\.1\]:\d+$")
        self.assertEqual({e["route"] for e in sends}, {"r1", "r2", "r3"})
        pf.stop()
        self.assertEqual(milter.stop(), 0)

    def test_only_deliveries_count_against_warmup_not_smtpd_checks(self):
        # Through the mailtrail-resolve service only qmgr asks; with the map
        # in main.cf, smtpd's recipient checks would be counted as well.
        routed = self.routed(["w1 bind=127.0.0.11 helo=w.test warmup=%s:100000:1" % TODAY])
        sink = rs.RoutingSink().start()
        pf = self.postfix(routed, sink)
        rs.send_many(pf.port, 10)
        sink.wait_count(10, timeout=60)
        day = datetime.datetime.utcnow().strftime("%Y%m%d")
        self.assertEqual(self.rc.get("mt:route:w1:" + day), "10")
        self.assertEqual(set(sink.sources()), {"127.0.0.11"})
        pf.stop()

    def test_check_takes_listed_ip_out_and_reports_missing_ptr(self):
        dns = rs.Dns([
            "--local=/test/", "--local=/in-addr.arpa/",
            "--host-record=r1.test,127.0.0.11",
            "--host-record=r2.test,127.0.0.12",
            "--address=/r3.test/127.0.0.13",	# A but no PTR
            "--address=/12.0.0.127.bl.test/127.0.0.2",
            "--txt-record=12.0.0.127.bl.test,Listed for spam: see bl.test",
        ]).start()
        routed = self.routed(THREE_ROUTES, extra={"RouteBlocklist": "bl.test"})
        r = dns.run([rs.cli_binary(), "-c", routed.conf, "route", "check"])
        # A listed route fails the check, for monitoring.
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("1 route(s) listed on a blocklist", r.stderr)
        self.assertRegex(r.stdout, r"(?m)^r2\s+127\.0\.0\.12\s+listed\s")
        r = dns.run([rs.cli_binary(), "-c", routed.conf, "route", "check", "r1"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        h1 = self.rc.hgetall("mt:route:r1")
        self.assertEqual((h1["state"], h1["listed"], h1["ptr"], h1["fcrdns"],
                          h1["helo_match"]), ("active", "0", "r1.test", "pass", "yes"))
        h2 = self.rc.hgetall("mt:route:r2")
        self.assertEqual((h2["state"], h2["listed"]), ("listed", "1"))
        self.assertIn("bl.test 127.0.0.2: Listed for spam: see bl.test", h2["reason"])
        self.assertGreater(int(h2["checked_at"]), time.time() - 60)
        h3 = self.rc.hgetall("mt:route:r3")
        self.assertEqual((h3["state"], h3["ptr"], h3["fcrdns"]), ("active", "", "fail"))
        self.assertIn("127.0.0.13 has no PTR record", h3["problem"])
        out = routed.cli("route", "list").stdout
        self.assertRegex(out, r"(?m)^r2\s.*\slisted\s.*listed: bl\.test 127\.0\.0\.2: "
                              r"Listed for spam")
        self.wait_health_refresh()
        c = rs.SocketmapClient(routed.sock_path)
        answers = collections.Counter(c.lookup("u%d@example.org" % i) for i in range(60))
        c.close()
        self.assertEqual(answers, {"OK r1:": 15, "OK r3:": 45}, answers)
        # Delisted: the next check puts it back into rotation.
        dns.proc.kill()
        dns.proc.wait()
        dns2 = rs.Dns(["--local=/test/", "--local=/in-addr.arpa/",
                       "--host-record=r2.test,127.0.0.12"], address=dns.address).start()
        r = dns2.run([rs.cli_binary(), "-c", routed.conf, "route", "check", "r2"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.rc.hget("mt:route:r2", "state"), "active")
        self.wait_health_refresh()
        c = rs.SocketmapClient(routed.sock_path)
        self.assertIn("OK r2:", [c.lookup("v%d@example.org" % i) for i in range(6)])
        c.close()

    def test_no_usable_route_answers_notfound_and_logs_why(self):
        routed = self.routed(THREE_ROUTES)
        for name in ("r1", "r2", "r3"):
            self.assertEqual(routed.cli("route", "pause", name).returncode, 0)
        self.wait_health_refresh()
        c = rs.SocketmapClient(routed.sock_path)
        self.assertEqual(c.lookup("a@example.org"), "NOTFOUND ")
        c.close()
        harness.wait_for(lambda: "3 paused" in routed.read_log(), 5, "log line")
        self.assertIn("answering NOTFOUND, Postfix uses default_transport (fail-open)",
                      routed.read_log())

    def test_fail_closed_answers_temp_and_postfix_defers(self):
        sink = rs.RoutingSink().start()
        routed = self.routed(THREE_ROUTES, extra={"RouteFailClosed": "yes"})
        for name in ("r1", "r2", "r3"):
            routed.cli("route", "pause", name)
        self.wait_health_refresh()
        c = rs.SocketmapClient(routed.sock_path)
        self.assertTrue(c.lookup("a@example.org").startswith("TEMP no usable route"))
        c.close()
        pf = self.postfix(routed, sink)
        rs.send_many(pf.port, 1, prefix="closed")
        harness.wait_for(lambda: "status=deferred" in pf.read_maillog(), 60,
                         "a deferral")
        self.assertEqual(sink.count(), 0)
        routed.cli("route", "resume", "r2")
        self.wait_health_refresh()
        # A fresh message goes out at once; it also replaces qmgr's cached
        # (30 s, one entry) failed resolution, so the retry asks again.
        rs.send_many(pf.port, 1, prefix="after")
        sink.wait_count(1, timeout=60)
        pf.flush()
        sink.wait_count(2, timeout=60)
        self.assertEqual(sink.sources(), ["127.0.0.12", "127.0.0.12"])
        pf.stop()

    def test_fail_open_lets_postfix_use_default_transport(self):
        sink = rs.RoutingSink().start()
        routed = self.routed(THREE_ROUTES)
        for name in ("r1", "r2", "r3"):
            routed.cli("route", "pause", name)
        self.wait_health_refresh()
        pf = self.postfix(routed, sink)
        rs.send_many(pf.port, 3, prefix="open")
        sink.wait_count(3, timeout=60)
        self.assertEqual(set(sink.sources()), {"127.0.0.1"})
        pf.stop()

    def test_sticky_keeps_a_sender_domain_on_one_route(self):
        routed = self.routed(THREE_ROUTES, extra={"RouteSticky": "yes"})
        self.wait_health_refresh()
        c = rs.SocketmapClient(routed.sock_path)
        per_domain = {}
        for d in range(60):
            got = {c.lookup("user%d@dom%d.example" % (u, d)) for u in range(5)}
            self.assertEqual(len(got), 1, got)
            per_domain[d] = got.pop()
        self.assertEqual(len(set(per_domain.values())), 3, per_domain)
        # Pausing one route moves only the domains that were on it.
        routed.cli("route", "pause", "r3")
        self.wait_health_refresh()
        for d, before in per_domain.items():
            now = c.lookup("x@dom%d.example" % d)
            if before != "OK r3:":
                self.assertEqual(now, before)
            else:
                self.assertIn(now, ("OK r1:", "OK r2:"))
        c.close()

    def test_malformed_and_oversize_requests_get_perm_then_close(self):
        routed = self.routed(THREE_ROUTES)
        cases = [b"abc", b"5:route,", b"3:abc;", b"00:,", b"100001:x",
                 b"12:route a@b.c", b"11:route a@b.c!"]
        for data in cases:
            c = rs.SocketmapClient(routed.sock_path)
            if data == b"12:route a@b.c":	# incomplete: waits, then EOF
                c.sock.sendall(data)
                c.sock.shutdown(1)
                self.assertIsNone(rs.read_netstring(c.sock))
            else:
                reply = c.raw(data)
                self.assertTrue(reply.startswith("PERM "), (data, reply))
                self.assertEqual(c.sock.recv(10), b"", "connection closed")
            c.close()
        c = rs.SocketmapClient(routed.sock_path)
        self.assertTrue(c.lookup("a@b", name="other").startswith("PERM "))
        self.assertTrue(c.raw(rs.netstring("route a\x01b")).startswith("PERM "))
        self.assertTrue(c.lookup("a@b").startswith("OK r"))	# still served
        c.close()

    def test_config_errors_name_file_and_line(self):
        routed = rs.Routed(self.redis.address, THREE_ROUTES + [
            "r4 bind=127.0.0.300 helo=r4.test"])
        r = subprocess.run([routed.binary, "-n", "-c", routed.conf],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"mailtrail\.conf:9: Route: bind=\"127\.0\.0\.300\" "
                                   r"is not an IPv4 address")
        routed.write_config(routes=THREE_ROUTES + ["r1 bind=127.0.0.14 helo=x.test"])
        r = subprocess.run([routed.binary, "-n", "-c", routed.conf],
                           capture_output=True, text=True)
        self.assertRegex(r.stderr, r":9: Route: route r1 already defined at line 6")

    def test_postfix_config_generates_master_and_main_lines(self):
        routed = rs.Routed(self.redis.address, [
            "r1 transport=out1 bind=192.0.2.1 bind6=2001:db8::1 helo=o1.example.org weight=2"],
            extra={"RouteSocket": "inet:9999@127.0.0.1"})
        out = routed.cli("postfix-config").stdout
        self.assertIn("out1      unix  -       -       n       -       -       smtp\n"
                      "  -o smtp_bind_address=192.0.2.1\n"
                      "  -o smtp_bind_address6=2001:db8::1\n"
                      "  -o smtp_helo_name=o1.example.org\n"
                      "  -o syslog_name=postfix-r1\n", out)
        self.assertIn("  -o rewrite_service_name=mailtrail-resolve\n", out)
        self.assertIn("sender_dependent_default_transport_maps="
                      "socketmap:inet:127.0.0.1:9999:route", out)
        g = routed.cli("postfix-config", "--main", "--global").stdout
        self.assertIn("sender_dependent_default_transport_maps = "
                      "socketmap:inet:127.0.0.1:9999:route\n", g)

    def test_sighup_reload_takes_new_routes(self):
        routed = self.routed(THREE_ROUTES[:1])
        self.wait_health_refresh()
        c = rs.SocketmapClient(routed.sock_path)
        self.assertEqual(c.lookup("a@b.c"), "OK r1:")
        routed.write_config(routes=THREE_ROUTES[1:2])
        routed.hup()
        harness.wait_for(lambda: "configuration reloaded" in routed.read_log(), 10,
                         "reload")
        self.assertEqual(c.lookup("a@b.c"), "OK r2:")	# same connection
        c.close()

    def test_unknown_route_is_exit_1_and_usage_is_exit_2(self):
        routed = self.routed(THREE_ROUTES)
        self.assertEqual(routed.cli("route", "pause", "nope").returncode, 1)
        self.assertEqual(routed.cli("route", "frobnicate").returncode, 2)
        self.assertEqual(routed.cli("route").returncode, 2)


if __name__ == "__main__":
    unittest.main()
