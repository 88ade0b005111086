"""
Files the daemons create as root in a directory the service user owns (the
README's /run/mailtrail setup): the PidFile and the unix socket. A link
planted there by the service user must never lead root's write, chown or
chmod to another file. Run as root, with `nobody:nogroup` as UserID; the
calls the daemons make are read with strace(1).
"""

import grp
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import unittest

import harness as h
import route_support as rs

USER, GROUP = "nobody", "nogroup"
UID, GID = pwd.getpwnam(USER).pw_uid, grp.getgrnam(GROUP).gr_gid

# The attacker: the service user watching the socket's name and renaming
# a prepared symlink over it the moment a socket appears there (between
# root's bind and whatever root does next by path), until its count runs
# out or the stop file appears. Prints how often it swapped.
ATTACKER = r"""
import itertools, os, stat, sys
target, path, stop = sys.argv[1], sys.argv[2], sys.argv[3]
tmp = path + ".evil"
lstat, rename, S_ISSOCK = os.lstat, os.rename, stat.S_ISSOCK
swaps = 0
os.symlink(target, tmp)
# Until told to stop, however slow the starts are on a loaded machine.
for n in itertools.count():
    if n % 4096 == 0 and os.path.exists(stop):
        break
    try:
        if S_ISSOCK(lstat(path).st_mode):
            rename(tmp, path)
            swaps += 1
            os.symlink(target, tmp)
    except OSError:
        pass
print(swaps)
"""


def as_service_user(argv, **kw):
    return subprocess.Popen(["setpriv", "--reuid=%d" % UID, "--regid=%d" % GID,
                             "--clear-groups", "--"] + argv, **kw)


class ServiceUserDir:
    """A work dir (root's) holding the service user's run directory and a
    root-only file outside it that an attacker would like to own."""

    def __init__(self, name):
        self.top = h.make_workdir(name)
        self.run = os.path.join(self.top, "run")
        os.mkdir(self.run, 0o750)
        os.chown(self.run, UID, GID)
        self.target = os.path.join(self.top, "precious")
        with open(self.target, "w") as f:
            f.write("root's own content\n")
        os.chmod(self.target, 0o600)

    def target_state(self):
        st = os.stat(self.target)
        with open(self.target) as f:
            return (f.read(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))

    def plant_symlink(self, name):
        path = os.path.join(self.run, name)
        p = as_service_user([sys.executable, "-c",
                             "import os,sys; os.symlink(sys.argv[1], sys.argv[2])",
                             self.target, path])
        self.assert_ok(p.wait())
        return path

    @staticmethod
    def assert_ok(rc):
        if rc != 0:
            raise AssertionError("setpriv as %s failed: %d" % (USER, rc))


def service_milter(redis, d, name):
    m = h.Milter(redis.address, name=name)
    m.sock_path = os.path.join(d.run, "milter.sock")
    m.socket_spec = "unix:" + m.sock_path
    m.write_config(Socket=m.socket_spec, UserID="%s:%s" % (USER, GROUP),
                   UMask="007", PidFile=os.path.join(d.run, "milter.pid"),
                   SpoolDir=os.path.join(d.top, "spool-" + name))
    return m


def run_once(binary, conf):
    """One start in the foreground that is expected to end by itself."""
    return subprocess.run([binary, "-f", "-c", conf], capture_output=True,
                          text=True, timeout=60)


def assert_socket(test, path, mode):
    st = os.lstat(path)
    test.assertTrue(stat.S_ISSOCK(st.st_mode), oct(st.st_mode))
    test.assertEqual((st.st_uid, st.st_gid), (UID, GID))
    test.assertEqual(stat.S_IMODE(st.st_mode), mode)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.close()


class FilesCreatedAsRoot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = h.Redis().start()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def test_milter_serves_its_socket_with_owner_mode_and_pidfile(self):
        d = ServiceUserDir("files-plain")
        m = service_milter(self.redis, d, "milter-plain").start()
        assert_socket(self, m.sock_path, 0o770)
        pidfile = os.path.join(d.run, "milter.pid")
        with open(pidfile) as f:
            self.assertEqual(f.read(), "%d\n" % m.pid)
        self.assertEqual(os.stat(pidfile).st_nlink, 1)
        h.assert_clean_stop(m)

    def test_symlink_at_the_pidfile_is_refused_and_its_target_kept(self):
        d = ServiceUserDir("files-pidlink")
        before = d.target_state()
        d.plant_symlink("milter.pid")
        m = service_milter(self.redis, d, "milter-pidlink")
        r = run_once(m.binary, m.conf)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is a symbolic link; refusing to write through it",
                      r.stderr)
        self.assertEqual(d.target_state(), before)
        self.assertFalse(os.path.exists(m.sock_path))

    def test_hard_link_at_the_pidfile_is_refused_and_its_target_kept(self):
        # fs.protected_hardlinks stops the service user from making this
        # link; root makes it here, as on a system without that setting.
        d = ServiceUserDir("files-pidhard")
        before = d.target_state()
        os.link(d.target, os.path.join(d.run, "milter.pid"))
        m = service_milter(self.redis, d, "milter-pidhard")
        r = run_once(m.binary, m.conf)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("has 2 hard links; refusing", r.stderr)
        self.assertEqual(d.target_state(), before)

    def attack_socket_while_starting(self, d, daemon, starts):
        stop = os.path.join(d.top, "stop-attack")
        attacker = as_service_user(
            [sys.executable, "-c", ATTACKER, d.target, daemon.sock_path, stop],
            stdout=subprocess.PIPE, text=True)
        h.on_exit(lambda: attacker.poll() is None and attacker.kill())
        before = d.target_state()
        served = 0
        for i in range(starts):
            log = os.path.join(d.top, "%s-start%d.log" % (daemon.name, i))
            with open(log, "wb") as out:
                r = subprocess.Popen([daemon.binary, "-f", "-c", daemon.conf],
                                     stdout=out, stderr=subprocess.STDOUT)

            def settled():
                with open(log, "rb") as f:
                    return r.poll() is not None or b"starting: socket" in f.read()
            h.wait_for(settled, 30, "start of %s" % daemon.name)
            if r.poll() is None:
                served += 1
                # Serving: let the attacker take its turn on the name.
                h.wait_for(lambda: os.path.islink(daemon.sock_path), 30,
                           "the attacker's symlink at %s" % daemon.sock_path)
                r.terminate()
            r.wait(30)
            self.assertEqual(d.target_state(), before)
            with open(log, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            for bad in h.SANITIZER_REPORTS:
                self.assertNotIn(bad, text)
            if os.path.lexists(daemon.sock_path):   # the next start's turn
                os.unlink(daemon.sock_path)
        with open(stop, "w"):
            pass
        swaps = int(attacker.communicate(timeout=60)[0])
        self.assertEqual(d.target_state(), before)
        self.assertEqual(served, starts, "a start failed: see %s" % d.top)
        self.assertEqual(swaps, starts, "one swap per start")

    def test_symlink_swapped_in_at_the_milter_socket_never_hands_over_root_files(self):
        d = ServiceUserDir("files-socklink")
        m = service_milter(self.redis, d, "milter-socklink")
        self.attack_socket_while_starting(d, m, 10)
        # Nobody interfering any more: the milter serves as configured.
        if os.path.lexists(m.sock_path):
            os.unlink(m.sock_path)
        m.start()
        assert_socket(self, m.sock_path, 0o770)
        h.assert_clean_stop(m)

    def test_routed_creates_its_socket_the_same_way(self):
        d = ServiceUserDir("files-routed")
        r = rs.Routed(self.redis.address, [], name="routed-files")
        r.sock_path = os.path.join(d.run, "route.sock")
        r.write_config(RouteSocket="unix:" + r.sock_path, UMask="007",
                       UserID="%s:%s" % (USER, GROUP))
        self.attack_socket_while_starting(d, r, 10)
        if os.path.lexists(r.sock_path):
            os.unlink(r.sock_path)
        r.start()
        assert_socket(self, r.sock_path, 0o770)
        self.assertEqual(r.stop(), 0)

    def traced_start(self, daemon, d, name):
        """One start under strace; the ownership and mode calls it made."""
        trace = os.path.join(d.top, name + ".strace")
        log = os.path.join(d.top, name + ".log")
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")  # LSan vs ptrace
        with open(log, "wb") as out:
            r = subprocess.Popen(
                ["strace", "-f", "-qq", "-o", trace, "-e",
                 "trace=chown,fchown,lchown,fchownat,chmod,fchmod,fchmodat",
                 daemon.binary, "-f", "-c", daemon.conf],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        h.wait_for(lambda: b"starting: socket" in open(log, "rb").read(), 60,
                   "traced start of %s" % daemon.name)
        assert_socket(self, daemon.sock_path, 0o770)
        with open("/proc/%d/task/%d/children" % (r.pid, r.pid)) as f:
            os.kill(int(f.read().split()[0]), signal.SIGTERM)  # not strace
        r.wait(30)
        with open(trace) as f:
            return [l for l in f.read().splitlines() if d.run in l or
                    re.search(r"\bf?ch(own|mod)(at)?\(", l)]

    def assert_no_path_following_calls(self, calls):
        for c in calls:
            # fchown/fchmod on a descriptor and *at(..., AT_SYMLINK_NOFOLLOW)
            # cannot be led elsewhere by a link; anything else by path can.
            if re.search(r"\bf(chown|chmod)\(\d+,", c):
                continue
            self.assertIn("AT_SYMLINK_NOFOLLOW", c,
                          "path-following call in the service user's "
                          "directory: %s" % c)

    def test_milter_never_chowns_or_chmods_by_path(self):
        d = ServiceUserDir("files-trace")
        m = service_milter(self.redis, d, "milter-trace")
        self.assert_no_path_following_calls(self.traced_start(m, d, "milter"))

    def test_routed_never_chowns_or_chmods_by_path(self):
        d = ServiceUserDir("files-trace-routed")
        r = rs.Routed(self.redis.address, [], name="routed-trace")
        r.sock_path = os.path.join(d.run, "route.sock")
        r.write_config(RouteSocket="unix:" + r.sock_path, UMask="007",
                       UserID="%s:%s" % (USER, GROUP))
        self.assert_no_path_following_calls(self.traced_start(r, d, "routed"))

    def test_socket_in_a_root_only_directory_is_handed_over_by_descriptor(self):
        d = ServiceUserDir("files-rootdir")
        rootdir = os.path.join(d.top, "root-run")
        os.mkdir(rootdir, 0o755)
        m = service_milter(self.redis, d, "milter-rootdir")
        m.sock_path = os.path.join(rootdir, "milter.sock")
        m.socket_spec = "unix:" + m.sock_path
        m.write_config(Socket=m.socket_spec)
        calls = self.traced_start(m, d, "milter-rootdir")
        self.assert_no_path_following_calls(calls)
        self.assertTrue(any('"milter.sock", 65534, 65534, AT_SYMLINK_NOFOLLOW'
                            in c for c in calls), calls)


if __name__ == "__main__":
    unittest.main()
