"""
Helpers for the delivery-status and read-receipt tests: loopback SMTP
servers that accept, refuse or reject (real smtp-sink for the 550), the
`mailtrail logwatch` follower as a process, and Redis look-ups by queue ID.
Built on harness.py, which belongs to the milter tests.
"""

import os
import signal
import subprocess
import time

import harness as h

CLI = os.environ.get("MT_CLI") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "san", "mailtrail")


def rejecting_sink():
    """A real smtp-sink that answers 5xx to every RCPT; returns its port."""
    port = h.free_port()
    h.spawn(["/usr/sbin/smtp-sink", "-u", "postfix", "-f", "rcpt",
             "-B", "550 5.1.1 Recipient address rejected: no such user",
             "127.0.0.1:%d" % port, "16"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    h.wait_for(lambda: h.port_open(port), 10, "smtp-sink on %d" % port)
    return port


def refused_port():
    """A loopback port nobody listens on: connect() is refused."""
    return h.free_port()


def transport_map(routes):
    """inline: transport map sending each domain to its loopback port."""
    return "inline:{%s}" % ", ".join(
        "%s=smtp:[127.0.0.1]:%d" % (dom, port) for dom, port in routes.items())


def cli(conf, *args, timeout=60):
    return subprocess.run([CLI, "-c", conf] + list(args), capture_output=True,
                          text=True, timeout=timeout)


class Follower:
    """`mailtrail logwatch` following a file, stopped with SIGTERM or SIGKILL."""

    def __init__(self, conf, path, state):
        self.conf, self.path, self.state = conf, path, state
        self.proc = None
        self.err_path = state + ".stderr"

    def start(self):
        self.err = open(self.err_path, "ab")
        self.proc = h.spawn([CLI, "-c", self.conf, "logwatch", "--state",
                             self.state, self.path],
                            stdout=subprocess.DEVNULL, stderr=self.err)
        return self

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(20)
        self.err.close()
        return self.proc.returncode

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


def id_of_qid(rc, qid, timeout=20):
    return h.wait_for(lambda: rc.get("mt:qid:" + qid), timeout,
                      "mt:qid:%s" % qid)


def delivery_lines(maillog_text, qids):
    """Postfix's delivery lines (to=..., status=...) of the given queue IDs."""
    out = []
    for line in maillog_text.splitlines():
        for q in qids:
            if (" %s: to=<" % q) in line and " status=" in line:
                out.append(line)
    return out


def wait_maillog(pf, pred, timeout=60, what="maillog line"):
    def find():
        text = pf.read_maillog()
        return text if pred(text) else None
    return h.wait_for(find, timeout, what, interval=0.2)


def now_ms():
    return int(time.time() * 1000)
