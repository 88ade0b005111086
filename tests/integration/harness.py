"""
Test harness for mailtrail: a private Redis, a private Postfix 3.7 in its own
mount namespace, an SMTP sink that keeps what Postfix delivered, and the
milter itself. Used by the integration tests, the benchmark and the demo.

Only the Python standard library and python3-redis. Everything started here
is registered and torn down at exit, even when a test fails.
"""

import atexit
import email.parser
import email.policy
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

import redis

POSTFIX_SBIN = "/usr/sbin"
ID_RE = re.compile(r"^[0-9a-v]{26}\.[0-9a-v]{16}$")
KV_LOG_RE = re.compile(
    r"^mailtrail-milter\[(?P<pid>\d+)\]: (?P<qid>[0-9A-Za-z]+): "
    r"id=(?P<id>\S+), from=<(?P<sender>.*)>, nrcpt=(?P<nrcpt>\d+), "
    r"client=(?P<client_name>.*?)\[(?P<client_ip>[^\[\]]*)\], "
    r"geo=(?P<geo>-|-?\d+(\.\d+)?,-?\d+(\.\d+)?), cc=(?P<cc>-|[A-Z]{2}), "
    r"hops=(?P<hops>\d+), store=(?P<store>redis|spool)"
    r"(, hold=until (?P<hold>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ))?$")

_cleanups = []
_cleanup_lock = threading.Lock()


def on_exit(fn):
    """Registers fn to run at interpreter exit (last registered runs first)."""
    with _cleanup_lock:
        _cleanups.append(fn)
    return fn


def forget(fn):
    with _cleanup_lock:
        if fn in _cleanups:
            _cleanups.remove(fn)


@atexit.register
def _run_cleanups():
    while True:
        with _cleanup_lock:
            if not _cleanups:
                return
            fn = _cleanups.pop()
        try:
            fn()
        except Exception as e:  # teardown must go on
            print("harness cleanup: %r" % (e,))


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it is truthy; returns its value or raises."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def read_text(path):
    """A log file's text so far (bad bytes replaced), "" before it exists."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def make_workdir(prefix):
    """A temp dir under /var/tmp that user postfix can traverse."""
    d = tempfile.mkdtemp(prefix="mt-%s-" % prefix, dir="/var/tmp")
    os.chmod(d, 0o755)
    if not os.environ.get("MT_KEEP"):
        on_exit(lambda: shutil.rmtree(d, ignore_errors=True))
    return d


def _kill_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def spawn(argv, **kw):
    """Starts argv in its own process group, killed at exit if still alive."""
    proc = subprocess.Popen(argv, start_new_session=True, **kw)

    def kill():
        if proc.poll() is None:
            _kill_group(proc)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
    proc._mt_kill = kill
    on_exit(kill)
    return proc


# --------------------------------------------------------------------------
# Redis

class Redis:
    """A private redis-server on 127.0.0.1; stop() and start() keep the port."""

    def __init__(self, port=None, persistent=False, extra_args=()):
        self.port = port or free_port()
        self.persistent = persistent
        self.extra_args = list(extra_args)
        self.dir = make_workdir("redis")
        self.proc = None

    def start(self):
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--dir", self.dir, "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")] + self.extra_args
        if self.persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv += ["--appendonly", "no"]
        self.proc = spawn(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._ping, 10, "redis on port %d" % self.port)
        return self

    def _ping(self):
        try:
            return redis.Redis(host="127.0.0.1", port=self.port,
                               socket_timeout=0.5).ping()
        except redis.RedisError:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: see %s/redis.log" % self.dir)
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
            forget(self.proc._mt_kill)
        self.proc = None

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True,
                           socket_timeout=5)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port


# --------------------------------------------------------------------------
# SMTP sink: keeps every delivered message (envelope + bytes) in memory.

class SinkMessage:
    def __init__(self, mail_from, rcpts, data, peer):
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data
        self.peer = peer

    @property
    def header_block(self):
        """The raw header lines (bytes, unfolded lines kept as sent)."""
        end = self.data.find(b"\r\n\r\n")
        block = self.data if end < 0 else self.data[:end]
        return block.split(b"\r\n")

    def headers(self):
        """[(name, value)] in order, folded lines joined, values raw str."""
        out = []
        for line in self.header_block:
            text = line.decode("utf-8", "surrogateescape")
            if text[:1] in (" ", "\t") and out:
                out[-1] = (out[-1][0], out[-1][1] + "\r\n" + text)
            elif ":" in text:
                name, value = text.split(":", 1)
                out.append((name, value.lstrip(" ")))
        return out

    def header_values(self, name):
        return [v for n, v in self.headers() if n.lower() == name.lower()]

    def header(self, name):
        vals = self.header_values(name)
        return vals[0] if vals else None


class _SinkHandler(socketserver.StreamRequestHandler):
    def _reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        sink = self.server.sink
        self._reply("220 %s ESMTP mailtrail-test-sink" % sink.hostname)
        mail_from, rcpts = None, []
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            cmd = line.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
            verb = cmd[:4].upper()
            if verb == "EHLO":
                self._reply("250-%s\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
                            "250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES"
                            % sink.hostname)
            elif verb == "HELO":
                self._reply("250 %s" % sink.hostname)
            elif verb == "MAIL":
                m = re.match(r"(?i)MAIL FROM:\s*<(.*?)>(\s.*)?$", cmd)
                mail_from, rcpts = (m.group(1) if m else cmd), []
                self._reply("250 2.1.0 Ok")
            elif verb == "RCPT":
                m = re.match(r"(?i)RCPT TO:\s*<(.*?)>(\s.*)?$", cmd)
                rcpts.append(m.group(1) if m else cmd)
                self._reply("250 2.1.5 Ok")
            elif verb == "DATA":
                self._reply("354 End data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    dl = self.rfile.readline(1 << 20)
                    if not dl:
                        return
                    if dl in (b".\r\n", b".\n"):
                        break
                    if dl.startswith(b".."):
                        dl = dl[1:]
                    chunks.append(dl)
                sink._add(SinkMessage(mail_from, rcpts, b"".join(chunks),
                                      self.client_address))
                mail_from, rcpts = None, []
                self._reply("250 2.0.0 Ok: queued")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self._reply("250 2.0.0 Ok")
            elif verb == "QUIT":
                self._reply("221 2.0.0 Bye")
                return
            elif verb == "NOOP":
                self._reply("250 2.0.0 Ok")
            else:
                self._reply("502 5.5.2 Error: command not recognized")


class _SinkServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Sink:
    """A threaded SMTP server on 127.0.0.1 that records every message."""

    def __init__(self, hostname="sink.test"):
        self.hostname = hostname
        self.messages = []
        self.cond = threading.Condition()
        self.server = _SinkServer(("127.0.0.1", 0), _SinkHandler)
        self.server.sink = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        on_exit(self.stop)
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _add(self, msg):
        msg.arrived = time.time()       # wall clock, as Deferred-Delivery is
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def count(self):
        with self.cond:
            return len(self.messages)

    def wait_count(self, n, timeout=30):
        end = time.monotonic() + timeout
        with self.cond:
            while len(self.messages) < n:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("sink has %d of %d messages after %ss"
                                       % (len(self.messages), n, timeout))
                self.cond.wait(left)
            return list(self.messages)

    def find(self, pred, timeout=30):
        """Waits for the first delivered message with pred(msg) true."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message in sink after %ss" % timeout)
                self.cond.wait(left)

    def by_subject(self, subject, timeout=30):
        return self.find(lambda m: m.header("Subject") == subject, timeout)


# --------------------------------------------------------------------------
# The milter

SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


class Daemon:
    """
    A mailtrail daemon run with -f: its stderr log, readiness, SIGHUP, and a
    SIGTERM stop that returns the exit status. Subclasses set binary, conf,
    log_path and name, and say when they are ready (socket_ready).
    """
    proc = None
    # argv put before the daemon's own, e.g. to start it in a namespace of
    # its own (the log shipper tests give it a private /dev/log).
    launcher = ()

    def socket_ready(self):
        raise NotImplementedError

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = spawn(list(self.launcher) + [self.binary, "-f", "-c", self.conf],
                          stdout=self.log, stderr=subprocess.STDOUT)
        on_exit(self._dump_on_sanitizer_error)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited %s at start:\n%s" % (
                    self.name, self.proc.returncode, self.read_log()[-3000:]))
            return self.socket_ready()
        wait_for(ready, timeout, "%s socket" % self.name)
        return self

    def sanitizer_report(self):
        text = self.read_log()
        if any(bad in text for bad in SANITIZER_REPORTS):
            return text[-6000:]
        return None

    def _dump_on_sanitizer_error(self):
        rep = self.sanitizer_report()
        if rep:
            print("\n*** sanitizer report in %s ***\n%s" % (self.log_path, rep))

    def stop(self, timeout=20):
        """SIGTERM; returns the exit status (0 expected)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
                self.proc.wait(5)
                raise RuntimeError("%s did not stop within %ss of SIGTERM"
                                   % (self.name, timeout))
        forget(self.proc._mt_kill)
        self.log.close()
        return self.proc.returncode

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def read_log(self):
        return read_text(self.log_path)

    def lines(self):
        return self.read_log().splitlines()


class Milter(Daemon):
    """mailtrail-milter -f with its own config, key, spool and stderr log."""
    name = "milter"

    def __init__(self, redis_address, binary=None, secret_file=None, socket_spec=None,
                 log_format="kv", extra=None, name="milter"):
        self.binary = binary or os.environ.get("MT_MILTER") or \
            os.path.join(os.path.dirname(__file__), "..", "..", "build", "san",
                         "mailtrail-milter")
        self.dir = make_workdir(name)
        self.secret_file = secret_file or make_secret(self.dir)
        self.spool = os.path.join(self.dir, "spool")
        os.mkdir(self.spool, 0o700)
        if socket_spec is None:
            self.sock_path = os.path.join(self.dir, "milter.sock")
            socket_spec = "unix:" + self.sock_path
        else:
            self.sock_path = None
        self.socket_spec = socket_spec
        self.conf = os.path.join(self.dir, "mailtrail.conf")
        self.settings = {
            "Socket": socket_spec,
            "UMask": "000",
            "RedisServer": redis_address,
            "RedisPrefix": "mt:",
            "RetentionDays": "30",
            "SecretKeyFile": self.secret_file,
            "SpoolDir": self.spool,
            "LogFormat": log_format,
            "PidFile": os.path.join(self.dir, "milter.pid"),
        }
        self.settings.update(extra or {})
        self.write_config()
        self.log_path = os.path.join(self.dir, "milter.log")
        self.proc = None

    @property
    def postfix_spec(self):
        """How Postfix names this milter in smtpd_milters."""
        return self.socket_spec

    def write_config(self, **changes):
        self.settings.update(changes)
        with open(self.conf, "w") as f:
            f.write("# written by tests/integration/harness.py\n")
            for k, v in self.settings.items():
                if v is not None:
                    f.write("%s %s\n" % (k, v))

    def start(self, timeout=20):
        if self.sock_path and os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        return Daemon.start(self, timeout)

    def socket_ready(self):
        if self.sock_path:
            return os.path.exists(self.sock_path)
        m = re.match(r"inet:(\d+)@(.*)", self.socket_spec)
        return port_open(int(m.group(1)), m.group(2))

    def messages(self):
        """The MESSAGE part of every `mailtrail-milter[PID]: MESSAGE` line."""
        out = []
        for line in self.lines():
            m = re.match(r"^mailtrail-milter\[\d+\]: (.*)$", line)
            if m:
                out.append(m.group(1))
        return out

    def kv_lines(self):
        return [m for m in (KV_LOG_RE.match(l) for l in self.lines()) if m]

    def json_lines(self):
        out = []
        for msg in self.messages():
            if msg.startswith("{"):
                try:
                    out.append(json.loads(msg))
                except ValueError:
                    pass
        return out

    def wait_log(self, pred, timeout=20, what="log line"):
        """Waits for a line (full text) with pred(line) true; returns it."""
        def find():
            for line in self.lines():
                if pred(line):
                    return line
            return None
        return wait_for(find, timeout, what + " in " + self.log_path)

    def wait_kv_for_qid(self, qid, timeout=20):
        line = self.wait_log(lambda l: (": %s: id=" % qid) in l, timeout,
                             "kv log line of %s" % qid)
        m = KV_LOG_RE.match(line)
        if not m:
            raise AssertionError("log line does not match the kv form: %r" % line)
        return m

    def spooled(self):
        """Spool entries waiting for replay (not dot files, not corrupt/)."""
        return [f for f in os.listdir(self.spool)
                if not f.startswith(".") and os.path.isfile(os.path.join(self.spool, f))]

    def corrupt(self):
        d = os.path.join(self.spool, "corrupt")
        return os.listdir(d) if os.path.isdir(d) else []

    def check(self, conf=None):
        """-n on conf (default own); returns CompletedProcess."""
        return subprocess.run([self.binary, "-n", "-c", conf or self.conf],
                              capture_output=True, text=True, timeout=30)


def assert_clean_stop(milter):
    """SIGTERM; the milter must exit 0 with no sanitizer report in its log."""
    rc = milter.stop()
    log = milter.read_log()
    if any(bad in log for bad in SANITIZER_REPORTS):
        raise AssertionError("sanitizer report in %s:\n%s" % (milter.log_path, log[-4000:]))
    if rc != 0:
        raise AssertionError("milter exited %r after SIGTERM; log tail:\n%s"
                             % (rc, log[-2000:]))


def make_secret(directory, mode=0o600):
    path = os.path.join(directory, "secret.key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.write(fd, os.urandom(32))
    os.close(fd)
    os.chmod(path, mode)
    return path


# --------------------------------------------------------------------------
# Postfix in a private mount namespace

MASTER_CF = """\
# written by tests/integration/harness.py: no chroot, private ports
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """
    A Postfix instance: its own /etc/postfix (bind-mounted in a private mount
    namespace), queue, data dir and maillog; smtpd on 127.0.0.1:port; every
    message relayed to relay_port on 127.0.0.1.
    """

    def __init__(self, relay_port, hostname="mta1.test", milters=None, port=None,
                 extra=None):
        self.hostname = hostname
        self.port = port or free_port()
        self.relay_port = relay_port
        self.dir = make_workdir("postfix-" + hostname.split(".")[0])
        self.etc = os.path.join(self.dir, "etc")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog = os.path.join(self.dir, "maillog")
        self.master_pid = None
        shutil.copytree("/etc/postfix", self.etc, symlinks=True)
        for d in (self.queue, self.data):
            os.mkdir(d, 0o755)
        shutil.chown(self.data, "postfix", "postfix")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port))
        params = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "maillog_file": self.maillog,
            "myhostname": hostname,
            "mydomain": "test",
            "myorigin": hostname,
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": "[127.0.0.1]:%d" % relay_port,
            "smtp_host_lookup": "native",
            "disable_dns_lookups": "yes",
            "smtp_dns_support_level": "disabled",
            "smtpd_peername_lookup": "no",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            "smtpd_relay_restrictions":
                "permit_mynetworks, check_client_access static:OK, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "smtpd_milters": " ".join(milters or []),
            "non_smtpd_milters": "",
            "milter_default_action": "accept",
            "milter_protocol": "6",
            "milter_connect_timeout": "10s",
            "milter_command_timeout": "30s",
            "milter_content_timeout": "60s",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtputf8_enable": "yes",
            "smtpd_error_sleep_time": "0",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "anvil_rate_time_unit": "60s",
            "default_process_limit": "100",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "smtp_connection_cache_on_demand": "yes",
            "queue_run_delay": "5s",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "in_flow_delay": "0",
            "message_size_limit": "20480000",
            "header_size_limit": "1024000",
            "notify_classes": "",
            "smtp_helo_name": hostname,
        }
        params.update(extra or {})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write("# written by tests/integration/harness.py\n")
            for k, v in params.items():
                f.write("%s = %s\n" % (k, v))
        for junk in ("main.cf.proto", "master.cf.proto"):
            p = os.path.join(self.etc, junk)
            if os.path.exists(p):
                os.unlink(p)

    # -- namespace helpers
    def postconf(self, *settings):
        """postconf -e on this instance's config (no namespace needed)."""
        subprocess.run(["postconf", "-c", self.etc, "-e"] + list(settings),
                       check=True, capture_output=True, text=True)

    def ns(self, *argv, check=True, timeout=60):
        """Runs argv inside this instance's mount namespace."""
        if not self.master_pid:
            raise RuntimeError("postfix %s is not running" % self.hostname)
        return subprocess.run(["nsenter", "-t", str(self.master_pid), "-m", "--"]
                              + list(argv), check=check, capture_output=True,
                              text=True, timeout=timeout)

    # Shell commands run in the new mount namespace before Postfix starts,
    # ending in "&& " (the log shipper tests give Postfix a private /dev/log).
    ns_setup = ""

    def start(self):
        cmd = self.ns_setup + (
            "mount --bind %s /etc/postfix && postfix check && postfix start"
            % self.etc)
        r = subprocess.run(["unshare", "-m", "--propagation", "private",
                            "sh", "-c", cmd], capture_output=True, text=True,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError("postfix start failed (%d):\n%s%s\nmaillog:\n%s"
                               % (r.returncode, r.stdout, r.stderr, self.read_maillog()))
        pidfile = os.path.join(self.queue, "pid", "master.pid")
        wait_for(lambda: os.path.exists(pidfile), 20, "master.pid")
        self.master_pid = int(open(pidfile).read().strip())
        on_exit(self._abort)
        wait_for(lambda: port_open(self.port), 20, "smtpd port %d" % self.port)
        return self

    def stop(self):
        if not self.master_pid:
            return
        try:
            self.ns("postfix", "stop", check=False)
        except subprocess.TimeoutExpired:
            pass
        try:
            wait_for(lambda: not _pid_alive(self.master_pid), 20, "postfix master exit")
        except TimeoutError:
            self._abort()
        forget(self._abort)
        self.master_pid = None

    def _abort(self):
        """Last resort: kill master and every Postfix child of this instance."""
        pid = self.master_pid
        if not pid:
            return
        if _pid_alive(pid):
            try:
                self.ns("postfix", "abort", check=False, timeout=20)
            except Exception:
                pass
        try:
            wait_for(lambda: not _pid_alive(pid), 5, "master abort")
        except TimeoutError:
            for child in _children(pid) + [pid]:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.master_pid = None

    def reload(self):
        self.ns("postfix", "reload")

    def set_milters(self, specs):
        self.postconf("smtpd_milters=" + " ".join(specs))
        self.reload()

    # -- queue and logs
    def queue_count(self):
        """Messages in incoming/active/deferred/hold/maildrop (file count)."""
        n = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            for _root, _dirs, files in os.walk(os.path.join(self.queue, sub)):
                n += len(files)
        return n

    def wait_drained(self, timeout=60):
        wait_for(lambda: self.queue_count() == 0, timeout,
                 "postfix %s queue to drain" % self.hostname, interval=0.1)

    def postqueue(self):
        return self.ns("postqueue", "-p", check=False).stdout

    def read_maillog(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def flush(self):
        self.ns("postqueue", "-f", check=False)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _children(pid):
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]
    except Exception:
        return []


# --------------------------------------------------------------------------
# Sending

class Sent:
    def __init__(self, qid, reply):
        self.qid = qid
        self.reply = reply


def qid_from_reply(text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", text)
    return m.group(1) if m else None


def make_message(sender_hdr, to_hdr, subject, body="Hello from the mailtrail tests.\r\n",
                 extra_headers=(), msgid=None):
    """A small RFC 5322 message as bytes (CRLF)."""
    lines = ["From: %s" % sender_hdr, "To: %s" % to_hdr, "Subject: %s" % subject,
             "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
             "Message-ID: <%s>" % (msgid or "%s.%d@client.test" % (
                 re.sub(r"\W", "", subject)[:40] or "m", int(time.time() * 1e6)))]
    lines += list(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def smtp_send(port, sender, rcpts, data, mail_options=(), helo="client.test",
              xclient=None):
    """One transaction on a fresh connection; returns Sent with the queue id."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=30) as s:
        s.ehlo(helo)
        if xclient:
            code, msg = s.docmd("XCLIENT", xclient)
            if code != 220:
                raise RuntimeError("XCLIENT refused: %d %s" % (code, msg))
            s.ehlo(helo)
        return smtp_transaction(s, sender, rcpts, data, mail_options)


def smtp_transaction(s, sender, rcpts, data, mail_options=()):
    """MAIL, RCPT..., DATA on an open smtplib.SMTP; returns Sent."""
    code, msg = s.mail(sender, list(mail_options))
    if code != 250:
        raise RuntimeError("MAIL FROM refused: %d %r" % (code, msg))
    for r in rcpts:
        code, msg = s.rcpt(r)
        if code not in (250, 251):
            raise RuntimeError("RCPT TO %s refused: %d %r" % (r, code, msg))
    code, msg = s.data(data)
    text = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else msg
    if code != 250:
        raise RuntimeError("DATA refused: %d %s" % (code, text))
    return Sent(qid_from_reply(text), text)


def swaks(port, sender, rcpt, header_lines=(), xclient=None, subject="swaks test",
          body="Sent by swaks.", extra=()):
    """Sends with swaks; returns Sent with the queue id from the transcript."""
    argv = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--from", sender,
            "--to", rcpt, "--helo", "client.test", "--header", "Subject: " + subject,
            "--body", body, "--timeout", "60", "--suppress-data"]
    for h in header_lines:
        argv += ["--add-header", h]
    if xclient:
        argv += ["--xclient", xclient]
    argv += list(extra)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    if r.returncode != 0:
        raise RuntimeError("swaks failed (%d):\n%s%s" % (r.returncode, r.stdout, r.stderr))
    return Sent(qid_from_reply(r.stdout), r.stdout)


# --------------------------------------------------------------------------
# Redis record helpers

def record_keys(rc, prefix="mt:"):
    """Every tracking ID with a record hash P{ID}."""
    ids = set()
    for k in rc.scan_iter(match=prefix + "{*}", count=1000):
        m = re.match(re.escape(prefix) + r"\{(.+)\}$", k)
        if m:
            ids.add(m.group(1))
    return ids


def statuses(rc, tid, prefix="mt:"):
    """Layout 2: each recipient's status is an r:ADDRESS field of the record."""
    rec = rc.hgetall(prefix + "{%s}" % tid)
    return {k[2:]: v for k, v in rec.items() if k.startswith("r:")}


def hop_path(rc, tid, prefix="mt:"):
    """The hop path of the last RECEIVE event that carries one, or None."""
    path = None
    for e in events(rc, tid, prefix):
        if e.get("ev") == "RECEIVE" and "path" in e:
            path = e["path"]
    return path


def events(rc, tid, prefix="mt:"):
    return [json.loads(e) for e in rc.lrange("%s{%s}:ev" % (prefix, tid), 0, -1)]


def id_from_hdr(value):
    return value.strip() if value is not None else None


class SharedSetupCase(unittest.TestCase):
    """
    A test against one module's shared Redis, sink, milter and Postfix:
    subclasses set `shared` to the module's dict of them.
    """
    maxDiff = None
    shared = None

    def setUp(self):
        self.redis = self.shared["redis"]
        self.rc = self.redis.client()
        self.sink = self.shared["sink"]
        self.milter = self.shared["milter"]
        self.postfix = self.shared["postfix"]

    def subject(self, tag):
        """A subject no other test sends: the test's name, tag and a clock."""
        return "%s %s %d" % (self.id().rsplit(".", 1)[-1], tag, time.monotonic_ns())
