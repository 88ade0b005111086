"""
Helpers for the log shipper tests: a private syslog-ng or rsyslog running the
configs of packaging/shippers/ verbatim, and a private /dev/log for the milter
and Postfix so that their syslog(3) lines reach that daemon as they would on
a real host. Nothing here touches the system's /dev/log or /var/log: each
program runs in a mount namespace of its own. Built on harness.py.
"""

import json
import os
import signal
import subprocess

import harness as h

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SHIPPERS = os.path.join(ROOT, "packaging", "shippers")
SYSLOG_NG_CONF = os.path.join(SHIPPERS, "syslog-ng-mailtrail.conf")
RSYSLOG_CONF = os.path.join(SHIPPERS, "rsyslog-mailtrail.conf")
# rsyslog conflicts with syslog-ng as a Debian package: packaging/deps.sh
# unpacks it here instead of installing it.
RSYSLOG_ROOT = os.environ.get("MT_RSYSLOG_ROOT", "/opt/mailtrail-test/rsyslog")
RSYSLOGD = os.path.join(RSYSLOG_ROOT, "usr/sbin/rsyslogd")
RSYSLOG_MODULES = os.path.join(RSYSLOG_ROOT, "usr/lib/x86_64-linux-gnu/rsyslog")
# Where both configs write, seen inside the daemon's namespace.
JSON_LOG = "mailtrail/mail.json"
DEVICES = "null zero full random urandom tty"


def private_dev_log(sock, scratch):
    """
    Shell commands for a fresh mount namespace: a tmpfs on /dev with the
    usual device nodes bound in, and /dev/log a symlink to sock. Ends in
    "&& " so that the command to run can follow.
    """
    old = os.path.join(scratch, "dev.orig")
    os.makedirs(old, exist_ok=True)
    return ("mount --bind /dev {old} && "
            "mount -t tmpfs -o mode=0755,nosuid tmpfs /dev && "
            "for n in {devices}; do [ -e {old}/$n ] || continue; "
            "touch /dev/$n && mount --bind {old}/$n /dev/$n || exit 1; done && "
            "mkdir /dev/shm /dev/pts && mount -t tmpfs -o mode=1777 tmpfs /dev/shm && "
            "ln -s /proc/self/fd /dev/fd && ln -s {sock} /dev/log && "
            "umount -l {old} && ").format(old=old, devices=DEVICES, sock=sock)


def milter_logging_to(milter, sock):
    """Makes milter's next start() run with /dev/log leading to sock."""
    milter.launcher = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                       private_dev_log(sock, milter.dir) + 'exec "$0" "$@"']
    return milter


def postfix_logging_to(postfix, sock):
    """Makes postfix log through syslog(3) to sock instead of its maillog."""
    postfix.postconf("maillog_file=")
    postfix.ns_setup = private_dev_log(sock, postfix.dir)
    return postfix


class Shipper:
    """
    A syslog daemon in its own mount namespace: it listens on a datagram
    socket in its work dir, and its /var/log is the work dir's varlog, so
    the shipped config writes /var/log/mailtrail/mail.json there.
    """
    name = "shipper"

    def __init__(self):
        self.dir = h.make_workdir(self.name)
        self.sock = os.path.join(self.dir, "log")
        self.varlog = os.path.join(self.dir, "varlog")
        os.mkdir(self.varlog, 0o755)
        self.json_path = os.path.join(self.varlog, JSON_LOG)
        self.conf = os.path.join(self.dir, self.name + ".conf")
        self.log_path = os.path.join(self.dir, self.name + ".stderr")
        self.proc = None
        with open(self.conf, "w") as f:
            f.write(self.config())

    def config(self):
        raise NotImplementedError

    def argv(self):
        raise NotImplementedError

    def start(self):
        self.log = open(self.log_path, "ab")
        ns = 'mount --bind %s /var/log && exec "$0" "$@"' % self.varlog
        self.proc = h.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c",
                             ns] + self.argv(), stdout=self.log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s at start:\n%s" % (
                    self.name, self.proc.returncode, self.read_log()[-3000:]))
            return os.path.exists(self.sock)
        h.wait_for(ready, 20, "%s socket %s" % (self.name, self.sock))
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc._mt_kill()
            h.forget(self.proc._mt_kill)
            self.log.close()
        self.proc = None

    def read_log(self):
        return h.read_text(self.log_path)

    def objects(self):
        """Every complete JSON line the shipped config wrote so far."""
        try:
            with open(self.json_path, "rb") as f:
                text = f.read().decode("utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def wait_object(self, pred, what, timeout=30):
        def find():
            for o in self.objects():
                if pred(o):
                    return o
            return None
        try:
            return h.wait_for(find, timeout, what, interval=0.1)
        except TimeoutError:
            raise AssertionError("%s: no %s in %s; it has:\n%s\n%s log:\n%s" % (
                self.name, what, self.json_path, "\n".join(map(json.dumps, self.objects())),
                self.name, self.read_log()[-3000:]))


class SyslogNg(Shipper):
    """syslog-ng with Debian's source name s_src and the shipped conf.d file."""
    name = "syslog-ng"

    def config(self):
        return ('@version: 3.38\n'
                'options { stats_freq(0); };\n'
                'source s_src { unix-dgram("%s"); internal(); };\n'
                '@include "%s"\n' % (self.sock, os.path.abspath(SYSLOG_NG_CONF)))

    def argv(self):
        return ["syslog-ng", "-F", "-e", "-f", self.conf,
                "--persist-file", os.path.join(self.dir, "persist"),
                "--pidfile", os.path.join(self.dir, "pid"),
                "--control", os.path.join(self.dir, "ctl")]


class Rsyslog(Shipper):
    """rsyslogd with a local socket input and the shipped rsyslog.d file."""
    name = "rsyslog"

    def config(self):
        work = os.path.join(self.dir, "work")
        os.mkdir(work, 0o700)
        return ('global(workDirectory="%s")\n'
                'module(load="imuxsock" SysSock.Use="off")\n'
                'input(type="imuxsock" Socket="%s")\n'
                'include(file="%s")\n' % (work, self.sock, os.path.abspath(RSYSLOG_CONF)))

    def argv(self):
        return [RSYSLOGD, "-n", "-f", self.conf, "-i", os.path.join(self.dir, "pid"),
                "-M", RSYSLOG_MODULES]
