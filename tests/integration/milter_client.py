"""
The MTA side of the milter protocol (version 6, as Postfix's milter8.c
speaks it), small enough to read: the integration tests drive
mailtrail-milter's socket with it to prove the protocol engine, byte by
byte where they need to.

A packet is a 4-byte big-endian length (of the command byte and the data),
a command byte and data. Every step honours what the milter negotiated: a
step it asked not to be sent (SMFIP_NO*) is skipped unless forced, and no
reply is awaited for a step it agreed not to answer (SMFIP_NR_*).
"""

import re
import socket
import struct
import time

# Commands, MTA to milter (SMFIC_*).
ABORT, BODY, CONNECT, MACRO, EOB = b"A", b"B", b"C", b"D", b"E"
HELO, QUIT_NC, HEADER, MAIL, EOH = b"H", b"K", b"L", b"M", b"N"
OPTNEG, QUIT, RCPT, DATA, UNKNOWN = b"O", b"Q", b"R", b"T", b"U"

# Replies and actions, milter to MTA (SMFIR_*).
R_ADDRCPT, R_DELRCPT, R_ACCEPT, R_CONTINUE, R_DISCARD = "+", "-", "a", "c", "d"
R_ADDHEADER, R_INSHEADER, R_CHGHEADER, R_QUARANTINE = "h", "i", "m", "q"
R_REJECT, R_TEMPFAIL, R_REPLYCODE, R_SETSYMLIST = "r", "t", "y", "l"
R_PROGRESS, R_SKIP = "p", "s"
FINAL_REPLIES = frozenset("acrtdy")       # end a step; "s" too for BODY
ACTIONS = frozenset("+-hinmqbefl2")       # modification actions at EOB

# Actions a milter may ask for (SMFIF_*).
F_ADDHDRS, F_CHGBODY, F_ADDRCPT, F_DELRCPT = 0x1, 0x2, 0x4, 0x8
F_CHGHDRS, F_QUARANTINE, F_CHGFROM, F_ADDRCPT_PAR = 0x10, 0x20, 0x40, 0x80
F_SETSYMLIST = 0x100

# Protocol steps not sent (NO*) and not answered (NR_*) (SMFIP_*).
P_NOCONNECT, P_NOHELO, P_NOMAIL, P_NORCPT = 0x1, 0x2, 0x4, 0x8
P_NOBODY, P_NOHDRS, P_NOEOH, P_NR_HDR = 0x10, 0x20, 0x40, 0x80
P_NOUNKNOWN, P_NODATA, P_SKIP, P_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
P_NR_CONN, P_NR_HELO, P_NR_MAIL, P_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
P_NR_DATA, P_NR_UNKN, P_NR_EOH, P_NR_BODY = 0x10000, 0x20000, 0x40000, 0x80000
P_HDR_LEADSPC = 0x100000
P_ALL_NR = (P_NR_HDR | P_NR_CONN | P_NR_HELO | P_NR_MAIL | P_NR_RCPT | P_NR_DATA
            | P_NR_UNKN | P_NR_EOH | P_NR_BODY)

# What Postfix 3.7 offers with milter_protocol = 6.
POSTFIX_ACTIONS = 0x1ff
POSTFIX_PROTOCOL = 0x1fffff

# Macro stages (SMFIM_*), as the OPTNEG reply's symbol lists name them.
STAGE_CONNECT, STAGE_HELO, STAGE_MAIL, STAGE_RCPT = 0, 1, 2, 3
STAGE_DATA, STAGE_EOM, STAGE_EOH = 4, 5, 6

# step: (command, "do not send" flag, "do not answer" flag)
STEPS = {
    "connect": (CONNECT, P_NOCONNECT, P_NR_CONN),
    "helo": (HELO, P_NOHELO, P_NR_HELO),
    "mail": (MAIL, P_NOMAIL, P_NR_MAIL),
    "rcpt": (RCPT, P_NORCPT, P_NR_RCPT),
    "data": (DATA, P_NODATA, P_NR_DATA),
    "header": (HEADER, P_NOHDRS, P_NR_HDR),
    "eoh": (EOH, P_NOEOH, P_NR_EOH),
    "body": (BODY, P_NOBODY, P_NR_BODY),
    "unknown": (UNKNOWN, P_NOUNKNOWN, P_NR_UNKN),
}

BODY_CHUNK = 65535      # Postfix sends the body in chunks of at most this


class MilterError(Exception):
    pass


class MilterClosed(MilterError):
    """The milter closed the connection."""


class MilterTimeout(MilterError):
    """No (complete) reply in time."""


def packet(cmd, data=b""):
    """One packet: length, command byte, data."""
    if isinstance(cmd, str):
        cmd = cmd.encode()
    return struct.pack(">I", len(cmd) + len(data)) + cmd + data


def _z(*parts):
    """Each part as bytes, NUL-terminated."""
    out = b""
    for p in parts:
        out += (p.encode("utf-8", "surrogateescape") if isinstance(p, str) else p) + b"\0"
    return out


def _unz(data):
    """NUL-terminated strings of data, decoded."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "surrogateescape") for p in parts]


def parse_spec(spec):
    """unix:/path or local:/path, or inet:PORT@HOST -> (family, address)."""
    m = re.match(r"^(unix|local):(.+)$", spec)
    if m:
        return socket.AF_UNIX, m.group(2)
    m = re.match(r"^inet:(\d+)@(.+)$", spec)
    if m:
        return socket.AF_INET, (m.group(2), int(m.group(1)))
    m = re.match(r"^inet6:(\d+)@(.+)$", spec)
    if m:
        return socket.AF_INET6, (m.group(2), int(m.group(1)))
    raise ValueError("milter socket %r is neither unix:PATH nor inet:PORT@HOST" % spec)


class Negotiated:
    """The milter's OPTNEG reply."""

    def __init__(self, version, actions, protocol, symlists):
        self.version = version
        self.actions = actions
        self.protocol = protocol
        self.symlists = symlists      # {stage: [macro names]}

    def __repr__(self):
        return "Negotiated(version=%d, actions=%#x, protocol=%#x, symlists=%r)" % (
            self.version, self.actions, self.protocol, self.symlists)


class Reply:
    """One packet from the milter: its command letter and decoded fields."""

    def __init__(self, cmd, data):
        self.cmd = cmd
        self.data = data
        self.index = None
        self.name = None
        self.value = None
        self.text = None
        if cmd in (R_INSHEADER, R_CHGHEADER) and len(data) >= 4:
            self.index = struct.unpack(">I", data[:4])[0]
            fields = _unz(data[4:]) + ["", ""]
            self.name, self.value = fields[0], fields[1]
        elif cmd == R_ADDHEADER:
            fields = _unz(data) + ["", ""]
            self.name, self.value = fields[0], fields[1]
        elif cmd in (R_QUARANTINE, R_REPLYCODE, R_ADDRCPT, R_DELRCPT):
            self.text = (_unz(data) or [""])[0]

    def __repr__(self):
        if self.name is not None:
            return "Reply(%r, index=%r, %r: %r)" % (self.cmd, self.index, self.name,
                                                   self.value)
        if self.text is not None:
            return "Reply(%r, %r)" % (self.cmd, self.text)
        return "Reply(%r, %r)" % (self.cmd, self.data[:60])


class EobResult:
    """What the milter answered to end of body: actions, then a final reply."""

    def __init__(self, actions, final):
        self.actions = actions
        self.final = final

    def headers(self, name):
        """Values of every header the milter added or inserted under name."""
        return [a.value.strip() for a in self.actions
                if a.cmd in (R_ADDHEADER, R_INSHEADER) and a.name.lower() == name.lower()]

    def header(self, name):
        vals = self.headers(name)
        return vals[0] if vals else None

    def __repr__(self):
        return "EobResult(final=%r, actions=%r)" % (self.final, self.actions)


class MilterClient:
    """
    One connection to a milter. split=N writes every packet N bytes at a
    time, pause seconds apart, so that the milter reads it piecemeal.
    """

    def __init__(self, spec, timeout=10.0, split=None, pause=0.0, connect=True):
        self.spec = spec
        self.timeout = timeout
        self.split = split
        self.pause = pause
        self.neg = None
        self.buf = b""
        self.sock = None
        if connect:
            self.open()

    # -- socket
    def open(self):
        family, addr = parse_spec(self.spec)
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(addr)
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data, split=None, pause=None):
        """Writes data as is: whole, or split bytes per write."""
        split = split if split is not None else self.split
        pause = self.pause if pause is None else pause
        if not split:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), split):
            self.sock.sendall(data[i:i + split])
            if pause:
                time.sleep(pause)

    def send_packet(self, cmd, data=b"", **kw):
        self.send_raw(packet(cmd, data), **kw)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise MilterTimeout("no reply from the milter within %.1fs" % self.timeout)
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise MilterTimeout("no reply from the milter within %.1fs" % self.timeout)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            raise MilterClosed("milter closed the connection (%d bytes of a packet "
                               "pending)" % len(self.buf))
        self.buf += chunk

    def read_packet(self, timeout=None):
        """The next packet from the milter as a Reply."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while len(self.buf) < 5:
            self._fill(deadline)
        length = struct.unpack(">I", self.buf[:4])[0]
        if length < 1 or length > (1 << 24):
            raise MilterError("milter sent a packet of length %d" % length)
        while len(self.buf) < 4 + length:
            self._fill(deadline)
        cmd = self.buf[4:5].decode("latin-1")
        data = self.buf[5:4 + length]
        self.buf = self.buf[4 + length:]
        return Reply(cmd, data)

    def wait_closed(self, timeout=10.0):
        """Reads until the milter closes; returns the bytes it sent before."""
        deadline = time.monotonic() + timeout
        got = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MilterTimeout("milter kept the connection open for %.1fs" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk

    def is_open(self, wait=0.3):
        """False if the milter closed the connection within wait seconds."""
        self.sock.settimeout(wait)
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK))
        except socket.timeout:
            return True
        except ConnectionResetError:
            return False
        finally:
            self.sock.settimeout(self.timeout)

    # -- negotiation
    def optneg(self, version=6, actions=POSTFIX_ACTIONS, protocol=POSTFIX_PROTOCOL):
        self.send_packet(OPTNEG, struct.pack(">III", version, actions, protocol))
        r = self.read_packet()
        if r.cmd != "O" or len(r.data) < 12:
            raise MilterError("OPTNEG answered with %r" % r)
        v, a, p = struct.unpack(">III", r.data[:12])
        symlists = {}
        rest = r.data[12:]
        while len(rest) >= 4:
            stage = struct.unpack(">I", rest[:4])[0]
            end = rest.find(b"\0", 4)
            if end < 0:
                end = len(rest)
            symlists[stage] = rest[4:end].decode("utf-8", "replace").split()
            rest = rest[end + 1:]
        self.neg = Negotiated(v, a, p, symlists)
        return self.neg

    @property
    def protocol(self):
        return self.neg.protocol if self.neg else 0

    # -- steps
    def macro(self, cmd, pairs):
        """'D', the command the macros are for, name\\0value\\0... (no reply)."""
        if isinstance(cmd, str):
            cmd = cmd.encode()
        items = pairs.items() if isinstance(pairs, dict) else pairs
        data = cmd
        for name, value in items:
            data += _z(name, value)
        self.send_packet(MACRO, data)

    def sends(self, name):
        """Whether Postfix would send this step (and its macros) at all."""
        return not self.protocol & STEPS[name][1]

    def step(self, name, data=b"", force=False):
        """
        Sends one protocol step and returns its Reply, or None when the
        milter agreed not to answer it (or asked not to get it: then nothing
        is sent unless force).
        """
        cmd, no_flag, nr_flag = STEPS[name]
        if self.protocol & no_flag and not force:
            return None
        self.send_packet(cmd, data)
        if self.protocol & nr_flag:
            return None
        return self.read_reply(final=FINAL_REPLIES | ({"s"} if name == "body" else set()))

    def read_reply(self, final=FINAL_REPLIES, timeout=None):
        """The next final reply of a step, skipping progress packets."""
        while True:
            r = self.read_packet(timeout)
            if r.cmd == R_PROGRESS:
                continue
            if r.cmd not in final:
                raise MilterError("expected a reply, got %r" % r)
            return r

    def connect(self, host="client.test", family="4", port=25, addr="127.0.0.1"):
        """CONNECT: host, family '4'/'6'/'L'/'U', port (BE), address."""
        data = _z(host) + family.encode()
        if family != "U":
            data += struct.pack(">H", port) + _z(addr)
        return self.step("connect", data)

    def helo(self, name="client.test"):
        return self.step("helo", _z(name))

    def mail(self, sender, *args):
        return self.step("mail", _z("<%s>" % sender, *args))

    def rcpt(self, rcpt, *args):
        return self.step("rcpt", _z("<%s>" % rcpt, *args))

    def data(self, force=False):
        return self.step("data", force=force)

    def header(self, name, value):
        return self.step("header", _z(name, value))

    def eoh(self, force=False):
        return self.step("eoh", force=force)

    def body(self, data):
        if isinstance(data, str):
            data = data.encode()
        r = None
        for i in range(0, len(data), BODY_CHUNK):
            r = self.step("body", data[i:i + BODY_CHUNK])
            if r is not None and r.cmd != R_CONTINUE:
                return r
        return r

    def unknown(self, command, force=False):
        return self.step("unknown", _z(command), force=force)

    def eob(self, data=b"", timeout=None):
        """End of body; collects the actions up to the final reply."""
        self.send_packet(EOB, data)
        return self.read_eob(timeout)

    def read_eob(self, timeout=None):
        """The actions and final reply that answer an EOB already sent."""
        actions = []
        while True:
            r = self.read_packet(timeout)
            if r.cmd == R_PROGRESS:
                continue
            if r.cmd in FINAL_REPLIES:
                return EobResult(actions, r)
            if r.cmd not in ACTIONS:
                raise MilterError("unexpected packet at end of body: %r" % r)
            actions.append(r)

    def abort(self):
        self.send_packet(ABORT)

    def quit(self):
        self.send_packet(QUIT)

    def quit_nc(self):
        self.send_packet(QUIT_NC)

    # -- Postfix-like sequences
    def session(self, host="client.test", addr="127.0.0.1", port=40000, helo="client.test",
                family="4", mta="mta1.test", daemon_addr="127.0.0.1", macros=True,
                negotiate=True):
        """OPTNEG (unless done), connect macros, CONNECT and HELO."""
        if negotiate:
            self.optneg()
        if macros and self.sends("connect"):
            self.macro(CONNECT, [("j", mta), ("{daemon_addr}", daemon_addr)])
        self.connect(host, family, port, addr)
        self.helo(helo)
        return self.neg

    def message(self, sender, rcpts, headers=(), body="Hello.\r\n", qid=None,
                auth=None, macros=True, eob_timeout=None, wait=True):
        """
        MAIL .. EOB of one message as Postfix sends it; its EobResult, or
        None with wait=False (read it later with read_eob).
        """
        if macros and self.sends("mail"):
            mail_macros = [("{auth_authen}", auth)] if auth else []
            mail_macros.append(("{mail_addr}", sender))
            self.macro(MAIL, mail_macros)
        self.mail(sender)
        for r in rcpts:
            if macros and self.sends("rcpt"):
                self.macro(RCPT, [("{rcpt_addr}", r)])
            self.rcpt(r)
        if macros and qid and self.sends("data"):
            self.macro(DATA, [("i", qid)])
        self.data()
        for name, value in headers:
            self.header(name, value)
        self.eoh()
        self.body(body)
        if macros and qid:
            self.macro(EOB, [("i", qid)])
        self.send_packet(EOB)
        return self.read_eob(eob_timeout) if wait else None

