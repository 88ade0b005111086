"""
Support for the read-receipt authentication tests: a real DKIM verifier
(Debian's opendkim in verify mode, as a milter in front of mailtrail), a
DKIM key made with opendkim-genkey and published by dnsmasq on a loopback
address (route_support.Dns), and receipts signed with python3-dkim.

Builds on harness.py and route_support.py without changing them.
"""

import os
import re
import subprocess

import dkim

import harness
import route_support

SELECTOR = "mt2026"


class DkimKey:
    """An RSA key pair from opendkim-genkey for SELECTOR._domainkey.DOMAIN."""

    def __init__(self, domain, selector=SELECTOR):
        self.domain = domain
        self.selector = selector
        self.dir = harness.make_workdir("dkim-key")
        subprocess.run(["opendkim-genkey", "-b", "1024", "-d", domain, "-s",
                        selector, "-D", self.dir], check=True,
                       capture_output=True, text=True, timeout=60)
        with open(os.path.join(self.dir, selector + ".private"), "rb") as f:
            self.private = f.read()
        with open(os.path.join(self.dir, selector + ".txt")) as f:
            txt = f.read()
        # The zone snippet splits the record into quoted strings; DNS
        # joins them again, and one string of < 255 octets fits a 1024-bit key.
        self.record = "".join(re.findall(r'"([^"]*)"', txt))

    @property
    def dns_name(self):
        return "%s._domainkey.%s" % (self.selector, self.domain)

    def dnsmasq_option(self):
        return "--txt-record=%s,%s" % (self.dns_name, self.record)

    def sign(self, message, headers=(b"from", b"to", b"subject", b"date",
                                    b"message-id", b"content-type",
                                    b"mime-version")):
        """message (bytes, CRLF) with a DKIM-Signature: on top."""
        sig = dkim.sign(message, self.selector.encode(), self.domain.encode(),
                        self.private, include_headers=list(headers))
        return sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + message


class OpenDkim(harness.Daemon):
    """opendkim -f in verify mode on 127.0.0.1:PORT, resolving through dns."""
    name = "opendkim"

    def __init__(self, dns, authserv_id, extra=None):
        self.binary = "/usr/sbin/opendkim"
        self.dir = harness.make_workdir("opendkim")
        self.port = harness.free_port()
        self.conf = os.path.join(self.dir, "opendkim.conf")
        self.log_path = os.path.join(self.dir, "opendkim.log")
        self.authserv_id = authserv_id
        self.settings = {
            "Mode": "v",
            "Socket": "inet:%d@127.0.0.1" % self.port,
            "AuthservID": authserv_id,
            # libunbound (opendkim's resolver) by default never asks a
            # 127/8 server and answers .test itself (RFC 6761); its own
            # config file lifts both for dnsmasq.
            "ResolverConfiguration": self._unbound_conf(dns.address),
            # Nothing is "internal" to the verifier: it signs nothing.
            "InternalHosts": "192.0.2.254",
            "PidFile": os.path.join(self.dir, "opendkim.pid"),
            "Syslog": "no",
            "DNSTimeout": "5",
        }
        self.settings.update(extra or {})
        with open(self.conf, "w") as f:
            for k, v in self.settings.items():
                f.write("%s %s\n" % (k, v))
        self.proc = None

    def _unbound_conf(self, address):
        path = os.path.join(self.dir, "unbound.conf")
        with open(path, "w") as f:
            f.write("server:\n  do-not-query-localhost: no\n"
                    "  local-zone: \"test.\" nodefault\n"
                    "forward-zone:\n  name: \".\"\n  forward-addr: %s\n"
                    % address)
        return path

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = harness.spawn([self.binary, "-f", "-x", self.conf],
                                  stdout=self.log, stderr=subprocess.STDOUT)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("opendkim exited %s at start:\n%s" % (
                    self.proc.returncode, self.read_log()[-3000:]))
            return harness.port_open(self.port)
        harness.wait_for(ready, timeout, "opendkim on port %d" % self.port)
        return self

    @property
    def postfix_spec(self):
        return "inet:127.0.0.1:%d" % self.port


def dkim_dns(*keys):
    """dnsmasq publishing the keys' TXT records; started."""
    return route_support.Dns([k.dnsmasq_option() for k in keys]).start()
