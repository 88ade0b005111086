"""
Support for the route tests: mailtrail-routed as a child process, a raw
socketmap client, an SMTP sink that can refuse mail for a while, Postfix
wired to the routes with `mailtrail postfix-config`, and dnsmasq on a
dedicated loopback address with a private resolv.conf.

Builds on harness.py (owned by the milter tests) without changing it.
"""

import os
import re
import signal
import socket
import subprocess
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def routed_binary():
    return os.environ.get("MT_ROUTED") or os.path.join(ROOT, "build/san/mailtrail-routed")


def cli_binary():
    return os.environ.get("MT_CLI") or os.path.join(ROOT, "build/san/mailtrail")


class Routed(harness.Daemon):
    """mailtrail-routed -f with its own config and stderr log."""
    name = "routed"

    def __init__(self, redis_address, routes, extra=None, name="routed"):
        self.binary = routed_binary()
        self.dir = harness.make_workdir(name)
        self.sock_path = os.path.join(self.dir, "route.sock")
        self.conf = os.path.join(self.dir, "mailtrail.conf")
        self.log_path = os.path.join(self.dir, "routed.log")
        self.routes = list(routes)
        self.settings = {
            "RouteSocket": "unix:" + self.sock_path,
            "UMask": "000",
            "RedisServer": redis_address,
            "RedisPrefix": "mt:",
        }
        self.settings.update(extra or {})
        self.write_config()
        self.proc = None

    def write_config(self, routes=None, **changes):
        if routes is not None:
            self.routes = list(routes)
        self.settings.update(changes)
        with open(self.conf, "w") as f:
            f.write("# written by tests/integration/route_support.py\n")
            for k, v in self.settings.items():
                if v is None:
                    continue
                for one in (v if isinstance(v, list) else [v]):
                    f.write("%s %s\n" % (k, one))
            for r in self.routes:
                f.write("Route %s\n" % r)

    @property
    def postfix_map(self):
        return "socketmap:unix:%s:route" % self.sock_path

    def start(self, timeout=20):
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        return harness.Daemon.start(self, timeout)

    def socket_ready(self):
        return os.path.exists(self.sock_path)

    def cli(self, *args, check=False, env=None):
        return subprocess.run([cli_binary(), "-c", self.conf] + list(args),
                              capture_output=True, text=True, timeout=60,
                              check=check, env=env)


# --------------------------------------------------------------------------
# socketmap client (socketmap_table(5) netstrings)

def netstring(data):
    if isinstance(data, str):
        data = data.encode()
    return b"%d:%s," % (len(data), data)


def read_netstring(sock, limit=100000):
    buf = b""
    while b":" not in buf:
        c = sock.recv(1)
        if not c:
            return None
        buf += c
        if len(buf) > 7:
            raise ValueError("bad netstring length %r" % buf)
    n = int(buf[:-1])
    if n > limit:
        raise ValueError("reply too long")
    data = b""
    while len(data) < n + 1:
        c = sock.recv(n + 1 - len(data))
        if not c:
            raise ValueError("short netstring")
        data += c
    if data[-1:] != b",":
        raise ValueError("netstring without ','")
    return data[:-1].decode()


class SocketmapClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)

    def raw(self, data):
        self.sock.sendall(data)
        return read_netstring(self.sock)

    def lookup(self, key, name="route"):
        return self.raw(netstring("%s %s" % (name, key)))

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# An SMTP sink that can turn mail away with 421 while `refusing` is set.

class _RefusingHandler(harness._SinkHandler):
    def handle(self):
        sink = self.server.sink
        with sink.cond:
            sink.connections.append(self.client_address[0])
        if sink.refusing:
            self._reply("421 4.3.2 %s not accepting mail right now" % sink.hostname)
            return
        return super().handle()


class RoutingSink(harness.Sink):
    """harness.Sink that records every connection's source address."""

    def __init__(self, hostname="sink.test"):
        super().__init__(hostname)
        self.server.RequestHandlerClass = _RefusingHandler
        # socketserver listens with a backlog of 5; two Postfix instances
        # with several smtp clients each can burst past that, and a dropped
        # SYN becomes a deferral that skews the counts under test.
        self.server.socket.listen(128)
        self.refusing = False
        self.connections = []

    def sources(self):
        """Source address of every delivered message, in delivery order."""
        with self.cond:
            return [m.peer[0] for m in self.messages]


# --------------------------------------------------------------------------
# Postfix with route transports from `mailtrail postfix-config`

def routed_postfix(routed, sink, hostname="mta1.test", extra=None):
    """A harness.Postfix delivering through routed's routes (not started)."""
    params = {
        # One delivery per connection, so each shows its source address.
        "smtp_connection_cache_on_demand": "no",
        "smtp_connection_cache_destinations": "",
        "default_destination_concurrency_limit": "10",
    }
    params.update(extra or {})
    pf = harness.Postfix(sink.port, hostname=hostname, extra=params)
    r = routed.cli("postfix-config", "--master")
    if r.returncode != 0:
        raise RuntimeError("postfix-config failed: %s" % r.stderr)
    master = os.path.join(pf.etc, "master.cf")
    with open(master) as f:
        text = f.read()
    # postfix-config replaces the stock qmgr line; drop the harness's.
    text = re.sub(r"(?m)^qmgr\s.*\n", "", text)
    with open(master, "w") as f:
        f.write(text + r.stdout)
    main = routed.cli("postfix-config", "--main")
    settings = [l.replace(" = ", "=", 1) for l in main.stdout.splitlines()
                if l.strip() and not l.startswith("#")]
    if settings:
        pf.postconf(*settings)
    return pf


def send_many(port, n, sender="news@example.org", prefix="rcpt", start=0,
              batch=50):
    """n messages, one recipient each (distinct), over a few sessions."""
    import smtplib
    sent = 0
    while sent < n:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo("client.test")
            for _ in range(min(batch, n - sent)):
                i = start + sent
                data = harness.make_message(sender, "%s%d@example.com" % (prefix, i),
                                            "route test %d" % i)
                harness.smtp_transaction(s, sender, ["%s%d@example.com" % (prefix, i)], data)
                sent += 1


# --------------------------------------------------------------------------
# dnsmasq on a loopback address, and commands run with its resolv.conf

class Dns:
    """dnsmasq answering fixed records on ADDRESS:53, nothing else."""

    def __init__(self, records, address=None):
        self.dir = harness.make_workdir("dns")
        self.address = address or self._free_address()
        self.resolv = os.path.join(self.dir, "resolv.conf")
        with open(self.resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:2 attempts:1\n" % self.address)
        self.argv = ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts",
                     "--port", "53", "--listen-address", self.address,
                     "--bind-interfaces", "--user=root", "--pid-file=",
                     "--log-facility=" + os.path.join(self.dir, "dnsmasq.log")]
        self.argv += list(records)
        self.proc = None

    @staticmethod
    def _free_address():
        for addr in ("127.0.0.53", "127.0.1.53", "127.0.2.53", "127.0.3.53"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((addr, 53))
                return addr
            except OSError:
                continue
            finally:
                s.close()
        raise RuntimeError("no free loopback address for dnsmasq on port 53")

    def start(self):
        self.proc = harness.spawn(self.argv, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: %s" % self.proc.stderr.read().decode())
            return self.resolves("probe.invalid.") is not None
        harness.wait_for(up, 10, "dnsmasq on %s" % self.address, interval=0.1)
        return self

    def resolves(self, name):
        """Any answer (even NXDOMAIN) from the server proves it listens."""
        q = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
             + b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split("."))
             + b"\x00\x00\x01\x00\x01")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.3)
        try:
            s.sendto(q, (self.address, 53))
            return s.recv(512)
        except OSError:
            return None
        finally:
            s.close()

    def run(self, argv, timeout=120):
        """argv in a private mount namespace whose resolv.conf is ours."""
        cmd = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
        return subprocess.run(["unshare", "-m", "--propagation", "private",
                               "sh", "-c", cmd, self.resolv] + list(argv),
                              capture_output=True, text=True, timeout=timeout)
