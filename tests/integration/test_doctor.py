"""
`mailtrail doctor` on a real chain: Redis, the milter and a Postfix that
names it (postconf -c on the test Postfix's directory), then each link
broken in turn: Redis down, smtpd_milters without the milter, a chrooted
smtpd with the socket outside its chroot, a socket Postfix's user cannot
connect to, a key others can read. Each gives a FAIL that says what to
do, and the exit status 1 a monitoring check reads.
"""

import json
import os
import shutil
import subprocess
import unittest

import harness as h
import delivery_support as ds

MILTER = os.environ.get("MT_MILTER") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail-milter")
MMDB = os.environ.get("MT_TEST_MMDB_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "geo-test")

shared = {}


def setUpModule():
    shared["redis"] = h.Redis().start()
    shared["sink"] = h.Sink().start()
    shared["milter"] = h.Milter(shared["redis"].address, binary=MILTER, name="doctor",
                                extra={"GeoDB": os.path.join(MMDB, "city-maxmind.mmdb")}
                                ).start()
    shared["postfix"] = h.Postfix(shared["sink"].port, hostname="doctor.test",
                                  milters=[shared["milter"].postfix_spec]).start()
    shared["work"] = h.make_workdir("doctor")


def tearDownModule():
    for key in ("postfix", "milter", "redis"):
        if key in shared:
            shared[key].stop()


def doctor(conf, *args, postfix_dir=None):
    argv = ["--json", "doctor", "--state", os.path.join(shared["work"], "none.state")]
    argv += ["--postfix-config", postfix_dir or shared["postfix"].etc] + list(args)
    r = ds.cli(conf, *argv)
    checks = json.loads(r.stdout) if r.stdout.strip() else []
    return r.returncode, checks, r.stderr


def results(checks, name):
    return [(c["result"], c["detail"]) for c in checks if c["check"] == name]


def postfix_copy(name, main=None, master_sub=None):
    """A copy of the test Postfix's configuration, changed: what postconf
    -c reads; no Postfix needs to run on it."""
    d = os.path.join(shared["work"], name)
    shutil.copytree(shared["postfix"].etc, d)
    if main:
        subprocess.run(["postconf", "-c", d, "-e"] + main, check=True)
    if master_sub:
        path = os.path.join(d, "master.cf")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(master_sub(text))
    return d


class Doctor(unittest.TestCase):
    def test_a_working_chain_passes_with_every_link_named(self):
        m = shared["milter"]
        rc, checks, err = doctor(m.conf)
        self.assertEqual(rc, 0, checks)
        self.assertEqual(results(checks, "config")[0][0], "ok")
        self.assertEqual(results(checks, "key")[0][0], "ok")
        self.assertIn(("ok", "%s accepts connections from user postfix" % m.sock_path),
                      results(checks, "socket"))
        self.assertEqual(results(checks, "redis"),
                         [("ok", "%s answers" % shared["redis"].address)])
        pf = results(checks, "postfix")
        self.assertEqual(pf[0][0], "ok")
        self.assertIn("smtpd_milters names unix:%s" % m.sock_path, pf[0][1])
        # The test Postfix has no non_smtpd_milters: a warning, not a failure.
        self.assertEqual(pf[1][0], "warn")
        self.assertIn("non_smtpd_milters = unix:%s" % m.sock_path, pf[1][1])
        geo = results(checks, "geodb")
        self.assertEqual(geo[0][0], "ok")
        self.assertIn("GeoIP2-City, IPv6, built", geo[0][1])
        self.assertEqual(results(checks, "map")[0][0], "warn")
        self.assertFalse([c for c in checks if c["result"] == "FAIL"], checks)
        # The table for people says the same.
        r = ds.cli(m.conf, "doctor", "--postfix-config", shared["postfix"].etc)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^ok\s+redis\s+127\.0\.0\.1:\d+ answers$")
        self.assertRegex(r.stdout, r"(?m)^0 problem\(s\), \d+ warning\(s\)$")

    def test_logwatch_results_are_seen(self):
        m, pf = shared["milter"], shared["postfix"]
        sent = h.smtp_send(pf.port, "alice@doctor.test", ["bob@remote.test"],
                           h.make_message("alice@doctor.test", "bob", "doctor lw"))
        ds.id_of_qid(shared["redis"].client(), sent.qid)
        ds.wait_maillog(pf, lambda t: "%s: to=<bob@remote.test>" % sent.qid in t,
                        what="delivery line")
        r = ds.cli(m.conf, "logwatch", "--once", "--no-state", pf.maillog)
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, checks, err = doctor(m.conf)
        self.assertIn(("ok", "delivery results are recorded"),
                      results(checks, "logwatch"))

    def test_redis_down_fails_and_says_what_to_do(self):
        red = h.Redis().start()
        m = h.Milter(red.address, binary=MILTER, name="doctor-nored").start()
        try:
            red.stop()
            rc, checks, err = doctor(m.conf, postfix_dir=postfix_copy(
                "nored", main=["smtpd_milters=" + m.postfix_spec]))
            self.assertEqual(rc, 1, checks)
            (res, detail), = results(checks, "redis")
            self.assertEqual(res, "FAIL")
            self.assertIn("start it (systemctl start redis-server) or fix "
                          "RedisServer; meanwhile records wait in SpoolDir", detail)
        finally:
            m.stop()

    def test_postfix_without_the_milter_fails_with_the_line_to_add(self):
        m = shared["milter"]
        d = postfix_copy("nomilter", main=["smtpd_milters="])
        rc, checks, err = doctor(m.conf, postfix_dir=d)
        self.assertEqual(rc, 1, checks)
        (res, detail), = results(checks, "postfix")
        self.assertEqual(res, "FAIL")
        self.assertIn("smtpd_milters (empty) does not name this milter: add "
                      "`smtpd_milters = unix:%s`" % m.sock_path, detail)

    def test_a_chrooted_smtpd_cannot_reach_a_socket_outside_its_chroot(self):
        m = shared["milter"]
        d = postfix_copy("chroot", master_sub=lambda t: t.replace(
            " inet n - n - - smtpd", " inet n - y - - smtpd"))
        rc, checks, err = doctor(m.conf, postfix_dir=d)
        self.assertEqual(rc, 1, checks)
        (res, detail), = results(checks, "postfix")
        self.assertEqual(res, "FAIL")
        self.assertIn("smtpd runs chrooted in %s" % shared["postfix"].queue, detail)
        self.assertIn("and the socket %s is outside it" % m.sock_path, detail)

    def test_a_socket_postfix_cannot_connect_to_fails(self):
        m = h.Milter(shared["redis"].address, binary=MILTER, name="doctor-closed",
                     extra={"UMask": "077"}).start()
        try:
            d = postfix_copy("closed", main=["smtpd_milters=" + m.postfix_spec])
            rc, checks, err = doctor(m.conf, postfix_dir=d)
            self.assertEqual(rc, 1, checks)
            sock = results(checks, "socket")
            self.assertIn("FAIL", [s[0] for s in sock])
            self.assertTrue(any("which user postfix cannot connect to" in s[1]
                                for s in sock), sock)
            self.assertTrue(any("user postfix cannot connect to %s: Permission "
                                "denied" % m.sock_path in s[1] for s in sock), sock)
        finally:
            m.stop()

    def test_a_key_others_can_read_fails(self):
        m = shared["milter"]
        conf = os.path.join(shared["work"], "loose.conf")
        key = os.path.join(shared["work"], "loose.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o644)
        with open(m.conf) as f:
            text = "".join(l for l in f if not l.startswith("SecretKeyFile"))
        with open(conf, "w") as f:
            f.write(text + "SecretKeyFile %s\n" % key)
        rc, checks, err = doctor(conf)
        self.assertEqual(rc, 1, checks)
        (res, detail), = results(checks, "key")
        self.assertEqual(res, "FAIL")
        self.assertIn(key, detail)
        self.assertIn("chmod 600", detail)


if __name__ == "__main__":
    unittest.main()
