"""
The Debian package (make deb) on this machine: lintian's verdict, each
unit's systemd exposure, what the maintainer scripts create, keep and
remove, and the installed milter, run as its unit says and inside the
unit's sandbox, tagging mail that passes a Postfix with Debian's stock
chrooted master.cf.

The package is installed with dpkg and purged at the end whatever happens;
the test refuses to run where mailtrail is installed already, since it
would purge someone's site key. MT_DEB_DIR names a directory with built
.deb files; without it the test runs `make deb` first.
"""

import glob
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import unittest

import harness as h

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PKG = "mailtrail"
CONF = "/etc/mailtrail/mailtrail.conf"
KEY = "/etc/mailtrail/secret.key"
SPOOL = "/var/spool/mailtrail"
STATE = "/var/lib/mailtrail"
SOCKET_DIR = "/var/spool/postfix/mailtrail"
UNIT_DIR = "/lib/systemd/system"
MAX_EXPOSURE = 3.0
MADE_BY_PACKAGE = (KEY, SPOOL, STATE, SOCKET_DIR, "/etc/mailtrail")
# What the purge check walks: where a package or its scripts could leave
# or delete something. dpkg's own database and caches change by design.
WATCHED = ("/etc", "/var/spool", "/var/lib", UNIT_DIR, "/usr/bin", "/usr/sbin",
           "/usr/share/doc", "/usr/share/man", "/usr/share/mailtrail")
UNWATCHED = ("/var/lib/dpkg", "/var/lib/apt", "/var/lib/man-db", "/var/lib/ucf",
             "/var/lib/systemd/deb-systemd-helper-enabled",
             "/var/lib/systemd/deb-systemd-user-helper-enabled")

shared = {}


def run(argv, check=True, timeout=300, **kw):
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for k in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(k, None)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=env, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode,
                                                       r.stdout[-4000:], r.stderr[-4000:]))
    return r


def package_state():
    r = run(["dpkg-query", "-W", "-f=${Status}", PKG], check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def installed():
    return package_state().endswith(" installed")


def dpkg_install():
    r = run(["dpkg", "-i", shared["deb"]])
    if os.path.isdir("/run/systemd/system"):
        # On a machine run by systemd the postinst started the units; the
        # test runs its own milter on the same socket.
        run(["systemctl", "stop", "mailtrail-milter.service",
             "mailtrail-schedule-release.timer"], check=False)
    return r.stdout + r.stderr


def dpkg_purge():
    if package_state():
        run(["dpkg", "--purge", PKG])


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def remove_test_user():
    """The package keeps its system user on purge; the test does not."""
    if shared.get("user_was_there", True) or not user_exists(PKG):
        return
    r = run(["userdel", PKG], check=False)
    if r.returncode != 0:
        print("test_deb: could not remove the user it caused: %s" % r.stderr.strip())
    try:
        grp.getgrnam(PKG)
        run(["groupdel", PKG], check=False)
    except KeyError:
        pass


def snapshot():
    """Every path under WATCHED (not following links, not UNWATCHED)."""
    seen = set()
    for top in WATCHED:
        for d, dirs, files in os.walk(top):
            if d.startswith(UNWATCHED):
                dirs[:] = []
                continue
            seen.add(d)
            seen.update(os.path.join(d, f) for f in files)
            seen.update(os.path.join(d, x) for x in dirs
                        if os.path.islink(os.path.join(d, x)))
    return seen


def tree_digest(top):
    """Names and contents of every file under top (the admin's Postfix)."""
    out = {}
    for d, _dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[p] = hashlib.sha256(fh.read()).hexdigest()
    return out


def file_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def owner_mode(path):
    st = os.lstat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode), stat.S_IFMT(st.st_mode))


def unit_service_settings(path):
    """[Service] of a unit file as {key: [values]} (continuations joined)."""
    out, section, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            pending = ""
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("["):
                section = s
                continue
            if section == "[Service]" and "=" in s:
                k, v = s.split("=", 1)
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def setUpModule():
    if os.geteuid() != 0:
        raise RuntimeError("test_deb installs a package: it needs root")
    if package_state() or os.path.exists("/etc/mailtrail"):
        raise RuntimeError("mailtrail is installed here already (dpkg: %r, /etc/mailtrail "
                           "exists: %s); this test purges what it installs and will not "
                           "take a site key with it. `dpkg --purge mailtrail` first if "
                           "that is yours to remove." % (package_state(),
                                                         os.path.exists("/etc/mailtrail")))
    deb_dir = os.environ.get("MT_DEB_DIR")
    if not deb_dir:
        deb_dir = os.path.join(ROOT, "build", "deb")
        run(["nice", "make", "-C", ROOT, "deb"], timeout=1800)
    debs = sorted(glob.glob(os.path.join(deb_dir, "mailtrail_*.deb")))
    if len(debs) != 1:
        raise RuntimeError("expected one mailtrail_*.deb in %s, found %r" % (deb_dir, debs))
    shared["deb"] = debs[0]
    shared["all_debs"] = sorted(glob.glob(os.path.join(deb_dir, "*.deb")))
    shared["user_was_there"] = user_exists(PKG)
    shared["before"] = snapshot()
    shared["postfix_etc"] = tree_digest("/etc/postfix")
    h.on_exit(remove_test_user)
    h.on_exit(dpkg_purge)
    shared["first_install_output"] = dpkg_install()


def tearDownModule():
    dpkg_purge()
    h.forget(dpkg_purge)
    remove_test_user()
    h.forget(remove_test_user)


def ensure_installed():
    if not installed():
        dpkg_install()


# --------------------------------------------------------------------------
# The unit's sandbox, as far as it can be had without systemd: a private
# mount namespace in which everything is read-only but the unit's
# ReadWritePaths= (ProtectSystem=strict), then no new privileges and the
# unit's CapabilityBoundingSet= for root, then the unit's own command line.

SANDBOX = r"""
import json, os, subprocess, sys
rw, argv = json.loads(sys.argv[1]), sys.argv[2:]
for p in rw:
    subprocess.run(["mount", "--bind", p, p], check=True)
api = ("/proc", "/sys", "/dev")
with open("/proc/self/mountinfo") as f:
    points = [l.split()[4].replace("\\040", " ") for l in f]
for mp in points:
    if mp in rw or any(mp == a or mp.startswith(a + "/") for a in api):
        continue
    subprocess.run(["mount", "-o", "remount,bind,ro", mp], stderr=subprocess.DEVNULL)
os.execvp(argv[0], argv)
"""


def sandboxed(unit_path, command):
    svc = unit_service_settings(unit_path)
    rw = []
    for v in svc.get("ReadWritePaths", []):
        for p in v.split():
            optional = p.startswith("-")
            p = p.lstrip("-")
            if os.path.isdir(p):
                rw.append(p)
            elif not optional:
                raise AssertionError("%s: ReadWritePaths %s does not exist" % (unit_path, p))
    caps = " ".join(svc.get("CapabilityBoundingSet", [])).split()
    bounding = ",".join(["-all"] + ["+" + c.lower()[4:] for c in caps])
    if svc.get("NoNewPrivileges") != ["yes"] or svc.get("ProtectSystem") != ["strict"]:
        raise AssertionError("%s lacks NoNewPrivileges=yes or ProtectSystem=strict" % unit_path)
    return (["unshare", "-m", "--propagation", "private", "/usr/bin/python3", "-c",
             SANDBOX, json.dumps(rw), "setpriv", "--no-new-privs", "--inh-caps=-all",
             "--bounding-set=" + bounding, "--"] + command.split())


# --------------------------------------------------------------------------
# Postfix as Debian ships it: the stock master.cf (smtpd, cleanup and the
# smtp client chrooted), queue_directory /var/spool/postfix. In its own
# mount namespace /var/spool/postfix is a private queue into which the real
# /var/spool/postfix/mailtrail (the package's socket directory) is
# bind-mounted: the chroot sees exactly what it would on a real site.

STOCK_MASTER_CF = "/usr/share/postfix/master.cf.dist"
STOCK_SMTPD = re.compile(r"^smtp\s+inet\s+n\s+-\s+y\s+-\s+-\s+smtpd$", re.M)
CHROOT_FILES = ("etc/localtime", "etc/services", "etc/resolv.conf", "etc/hosts",
                "etc/host.conf", "etc/nsswitch.conf")


class StockPostfix(h.Postfix):
    def __init__(self, relay_port):
        h.Postfix.__init__(self, relay_port, hostname="deb.test",
                           milters=["unix:mailtrail/milter.sock"],
                           extra={"non_smtpd_milters": "$smtpd_milters"})
        with open(STOCK_MASTER_CF) as f:
            master = f.read()
        if not STOCK_SMTPD.search(master):
            raise RuntimeError("%s has no chrooted smtpd line" % STOCK_MASTER_CF)
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(STOCK_SMTPD.sub("127.0.0.1:%d inet n - y - - smtpd" % self.port,
                                    master, count=1))
        self.postconf("queue_directory=/var/spool/postfix")
        # What Debian's configure-instance.sh copies into the chroot.
        for rel in CHROOT_FILES:
            if os.path.isfile("/" + rel):
                os.makedirs(os.path.join(self.queue, os.path.dirname(rel)), exist_ok=True)
                shutil.copy("/" + rel, os.path.join(self.queue, rel))
        for lib in glob.glob("/lib/*/libnss*.so*") + glob.glob("/lib/*/libresolv*.so*"):
            dst = os.path.join(self.queue, lib.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(lib, dst)
        os.mkdir(os.path.join(self.queue, "mailtrail"), 0o755)

    def start(self):
        cmd = ("mount --bind {etc} /etc/postfix && "
               "mount --bind {sock} {queue}/mailtrail && "
               "mount --rbind {queue} /var/spool/postfix && "
               "postfix check && postfix start").format(
                   etc=self.etc, sock=SOCKET_DIR, queue=self.queue)
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", cmd],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed (%d):\n%s%s\nmaillog:\n%s"
                               % (r.returncode, r.stdout, r.stderr, self.read_maillog()))
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        h.wait_for(lambda: os.path.exists(pidfile), 20, "master.pid")
        self.master_pid = int(open(pidfile).read().strip())
        h.on_exit(self._abort)
        h.wait_for(lambda: h.port_open(self.port), 20, "smtpd port %d" % self.port)
        return self


class DebPackageCase(unittest.TestCase):
    maxDiff = None

    def test_lintian_finds_no_errors_and_no_unexplained_warnings(self):
        r = run(["nice", "lintian", "--display-level", ">=warning"] + shared["all_debs"],
                check=False, timeout=600)
        bad = [l for l in r.stdout.splitlines() if re.match(r"^[EW]: ", l)]
        self.assertEqual(bad, [], "lintian:\n" + r.stdout)
        self.assertEqual(r.returncode, 0, "lintian exited %d:\n%s%s"
                         % (r.returncode, r.stdout, r.stderr))

    def test_every_packaged_service_rates_ok_in_systemd_analyze_security(self):
        ensure_installed()
        shipped = sorted(os.path.basename(p) for p in
                         glob.glob(os.path.join(ROOT, "packaging", "*.service")))
        units = sorted(os.path.basename(p) for p in
                       glob.glob(os.path.join(UNIT_DIR, "mailtrail*.service")))
        self.assertEqual(units, shipped)
        scores = {}
        for u in units:
            r = run(["systemd-analyze", "security", "--offline=yes",
                     os.path.join(UNIT_DIR, u)], check=False)
            m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout)
            self.assertIsNotNone(m, "no score for %s:\n%s%s" % (u, r.stdout, r.stderr))
            scores[u] = float(m.group(1))
        print("  exposure: " + ", ".join("%s %.1f" % kv for kv in sorted(scores.items())))
        self.assertEqual({u: s for u, s in scores.items() if s > MAX_EXPOSURE}, {})
        for timer in glob.glob(os.path.join(UNIT_DIR, "mailtrail*.timer")):
            self.assertIn(os.path.basename(timer)[:-len(".timer")] + ".service", units)

    def test_milter_unit_checks_the_configuration_first_and_reloads_with_hup(self):
        ensure_installed()
        svc = unit_service_settings(os.path.join(UNIT_DIR, "mailtrail-milter.service"))
        self.assertEqual(svc["ExecStartPre"],
                         ["/usr/sbin/mailtrail-milter -n -c /etc/mailtrail/mailtrail.conf"])
        self.assertEqual(svc["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertIn(SOCKET_DIR, " ".join(svc["ReadWritePaths"]))
        self.assertIn(SPOOL, " ".join(svc["ReadWritePaths"]))

    def test_install_creates_user_directories_and_a_private_key(self):
        ensure_installed()
        pw = pwd.getpwnam(PKG)
        self.assertLess(pw.pw_uid, 1000, "not a system user")
        self.assertEqual(grp.getgrgid(pw.pw_gid).gr_name, PKG)
        self.assertIn(pw.pw_shell, ("/usr/sbin/nologin", "/bin/false"))
        self.assertIn(PKG, grp.getgrnam("postfix").gr_mem)
        self.assertEqual(owner_mode(SPOOL), (PKG, PKG, 0o700, stat.S_IFDIR))
        self.assertEqual(owner_mode(STATE), (PKG, PKG, 0o750, stat.S_IFDIR))
        self.assertEqual(owner_mode(SOCKET_DIR), (PKG, "postfix", 0o750, stat.S_IFDIR))
        self.assertEqual(owner_mode(KEY), (PKG, PKG, 0o600, stat.S_IFREG))
        self.assertEqual(len(file_bytes(KEY)), 32)
        self.assertEqual(owner_mode(CONF), ("root", "root", 0o644, stat.S_IFREG))
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
        self.assertIn(CONF, conffiles)

    def test_install_leaves_main_cf_alone_and_prints_the_lines_to_add(self):
        self.assertEqual(tree_digest("/etc/postfix"), shared["postfix_etc"])
        out = re.sub(r"[ \t]+", " ", shared["first_install_output"])
        self.assertIn("smtpd_milters = unix:mailtrail/milter.sock", out)
        self.assertIn("non_smtpd_milters = $smtpd_milters", out)

    def test_packaged_configuration_passes_the_check(self):
        ensure_installed()
        r = run(["/usr/sbin/mailtrail-milter", "-n", "-c", CONF], check=False)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        with open(CONF) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^Socket\s+unix:/var/spool/postfix/mailtrail/milter\.sock$")
        self.assertRegex(text, r"(?m)^UserID\s+mailtrail:postfix$")

    def test_installed_milter_in_its_sandbox_tags_mail_through_stock_chrooted_postfix(self):
        ensure_installed()
        unit = os.path.join(UNIT_DIR, "mailtrail-milter.service")
        svc = unit_service_settings(unit)
        redis = h.Redis().start()
        # What an admin does after installing: name the site's Redis.
        with open(CONF, "a") as f:
            f.write("RedisServer\t\t%s\n" % redis.address)
        pre = run(sandboxed(unit, svc["ExecStartPre"][0]), check=False)
        self.assertEqual(pre.returncode, 0, pre.stdout + pre.stderr)
        # The emulated sandbox holds: root may not write outside it.
        probe = run(sandboxed(unit, "/usr/bin/touch /var/cache/mailtrail-probe"), check=False)
        self.assertIn("Read-only file system", probe.stderr)
        workdir = h.make_workdir("deb")
        log_path = os.path.join(workdir, "milter.log")
        with open(log_path, "ab") as log:
            milter = h.spawn(sandboxed(unit, svc["ExecStart"][0]), stdout=log,
                             stderr=subprocess.STDOUT)
        try:
            self.tag_through_stock_postfix(milter, log_path, redis)
        finally:
            if milter.poll() is None:
                milter.send_signal(signal.SIGTERM)
                try:
                    milter.wait(20)
                except subprocess.TimeoutExpired:
                    milter._mt_kill()
            h.forget(milter._mt_kill)
        self.assertEqual(milter.returncode, 0, open(log_path).read()[-3000:])

    def tag_through_stock_postfix(self, milter, log_path, redis):
        sock = os.path.join(SOCKET_DIR, "milter.sock")

        def ready():
            if milter.poll() is not None:
                raise AssertionError("milter exited %s:\n%s" % (milter.returncode,
                                                               open(log_path).read()))
            return os.path.exists(sock)
        h.wait_for(ready, 20, "milter socket %s" % sock)
        user, group, mode, kind = owner_mode(sock)
        self.assertEqual((user, group, kind), (PKG, "postfix", stat.S_IFSOCK))
        self.assertEqual(mode & 0o067, 0o060, "socket mode %o: group postfix must "
                         "connect, others must not" % mode)
        with open("/proc/%d/status" % milter.pid) as f:
            uids = re.search(r"(?m)^Uid:\s+(.*)$", f.read()).group(1).split()
        self.assertEqual({pwd.getpwuid(int(u)).pw_name for u in uids}, {PKG},
                         "the milter did not drop to UserID mailtrail")

        sink = h.Sink().start()
        postfix = StockPostfix(sink.port).start()
        try:
            data = h.make_message("Alice <alice@client.test>", "bob@remote.test",
                                  "packaged milter")
            h.smtp_send(postfix.port, "alice@client.test", ["bob@remote.test"], data)
            msg = sink.by_subject("packaged milter", timeout=60)
            tid = h.id_from_hdr(msg.header("X-Mailtrail-ID"))
            self.assertRegex(tid or "", h.ID_RE)
            self.assertEqual(msg.header("X-Mailtrail-Sender"), "<alice@client.test>")
            self.assertTrue(msg.header_values("X-Mailtrail-Hop"))
            rc = redis.client()
            h.wait_for(lambda: rc.hget("mt:{%s}" % tid, "sender"), 20, "record of " + tid)

            # ExecReload's SIGHUP: the key is read again, as mailtrail now.
            milter.send_signal(signal.SIGHUP)
            h.wait_for(lambda: "configuration reloaded" in open(log_path).read(), 20,
                       "reload line in " + log_path)
            self.assertNotIn("reload failed", open(log_path).read())

            # Redis gone: the record must go to the spool, which the
            # sandbox leaves writable.
            redis.stop()
            data = h.make_message("alice@client.test", "bob@remote.test", "spooled")
            h.smtp_send(postfix.port, "alice@client.test", ["bob@remote.test"], data)
            spooled = sink.by_subject("spooled", timeout=60)
            self.assertRegex(h.id_from_hdr(spooled.header("X-Mailtrail-ID")) or "", h.ID_RE)
            h.wait_for(lambda: [f for f in os.listdir(SPOOL) if not f.startswith(".")],
                       20, "a record in " + SPOOL)
            self.assertIn("store=spool", open(log_path).read())
        finally:
            postfix.stop()

    def test_reinstall_and_remove_keep_key_configuration_and_spool(self):
        ensure_installed()
        key = file_bytes(KEY)
        with open(CONF, "a") as f:
            f.write("# the admin's own line\n")
        conf = file_bytes(CONF)
        marker = os.path.join(STATE, "admin-marker")
        with open(marker, "w") as f:
            f.write("kept\n")
        spool = owner_mode(SPOOL)
        dpkg_install()
        self.assertEqual(file_bytes(KEY), key)
        self.assertEqual(owner_mode(KEY), (PKG, PKG, 0o600, stat.S_IFREG))
        self.assertEqual(file_bytes(CONF), conf)
        self.assertEqual(owner_mode(SPOOL), spool)
        self.assertTrue(os.path.exists(marker))

        run(["dpkg", "--remove", PKG])
        self.assertEqual(file_bytes(KEY), key)
        self.assertEqual(file_bytes(CONF), conf)
        self.assertEqual(owner_mode(SPOOL), spool)
        self.assertTrue(os.path.exists(marker))
        self.assertFalse(os.path.exists("/usr/sbin/mailtrail-milter"))
        dpkg_install()
        self.assertEqual(file_bytes(KEY), key)
        self.assertEqual(file_bytes(CONF), conf)

    def test_purge_removes_what_the_package_made_and_nothing_else(self):
        ensure_installed()
        dpkg_purge()
        self.assertEqual(package_state(), "")
        for p in MADE_BY_PACKAGE:
            self.assertFalse(os.path.lexists(p), "%s is still there after purge" % p)
        after = snapshot()
        self.assertEqual(sorted(shared["before"] - after), [], "purge deleted these")
        self.assertEqual(sorted(p for p in after - shared["before"] if "mailtrail" in p),
                         [], "purge left these")
        self.assertEqual(tree_digest("/etc/postfix"), shared["postfix_etc"])
        # Debian keeps system users on purge (files they own may outlive
        # the package); the module's teardown removes the one it caused.
        self.assertTrue(user_exists(PKG))


if __name__ == "__main__":
    unittest.main()
