"""
A private Dovecot 2.3 for the read-tracking tests: its own config file
(`dovecot -F -c FILE`), base_dir, state_dir, log file and maildirs in a
workdir, passwd-file users with plain passwords, and IMAP, POP3 and LMTP on
free loopback ports (LMTP also on a unix socket). It never touches
/etc/dovecot or a system Dovecot. Built on harness.py; torn down at exit.

Mail is stored as the Debian user `mail` (uid 8 on Debian): Dovecot refuses
uid 0 for mail access, and the users dovecot / dovenull (from dovecot-core)
run the internal and login processes.

    dc = Dovecot(mail_plugins="mail_log notify",
                 extra=["plugin {", "  mail_log_events = save flag_change", "}"]).start()
    pf = h.Postfix(sink.port, extra=dc.postfix_settings())
    imap = dc.imap("alice@dove.test", ip="203.0.113.5")
    pop = dc.pop3("bob@dove.test", ip="198.51.100.7")

The reader's address: both login services believe a client in
login_trusted_networks (127.0.0.0/8 ::1 here) that claims another one, with
IMAP `ID ("x-originating-ip" IP)` sent BEFORE LOGIN (after LOGIN the imap
process only logs the ID; it does not change rip) and POP3 `XCLIENT ADDR=IP`
sent before USER/PASS. Dovecot then logs `rip=IP` and uses it as %r.
"""

import imaplib
import os
import poplib
import pwd
import grp
import re
import shutil
import signal
import smtplib
import subprocess
import time

import harness as h

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
MAIL_USER = "mail"          # Debian: uid 8, gid 8; owns every test maildir
# mail_plugins for the push_notification Lua driver (all in dovecot-core on
# Debian 12); add to extra: plugin { push_notification_driver = lua:file=F }
LUA_PUSH_PLUGINS = "notify push_notification mail_lua push_notification_lua"
DEFAULT_USERS = {
    "alice@dove.test": "alice-pw",
    "bob@dove.test": "bob-pw",
    "carol@dove.test": "carol-pw",
}

CONF = """\
# written by tests/integration/dovecot_support.py
instance_name = {instance}
base_dir = {base_dir}
state_dir = {state_dir}
log_path = {log}
info_log_path = {log}
debug_log_path = {log}
log_timestamp = "%Y-%m-%d %H:%M:%S "
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
login_trusted_networks = 127.0.0.0/8 ::1
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:{mail}/%d/%n/Maildir
mail_plugins = {mail_plugins}
mail_debug = {mail_debug}
auth_verbose = {auth_verbose}
verbose_proctitle = yes
shutdown_clients = yes
pop3_uidl_format = %08Xu%08Xv
hostname = {hostname}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
  mailbox Archive {{
    auto = create
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  process_min_avail = 0
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_plugins = $mail_plugins {imap_plugins}
}}
protocol pop3 {{
  mail_plugins = $mail_plugins {pop3_plugins}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins {lmtp_plugins}
}}
"""


_HOLD_NO_MAIL = {"log", "anvil", "stats", "config", ""}


def _group(pgid):
    """[(pid, process title)] of the live processes in process group pgid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) != pgid or fields[0] == "Z":
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                title = f.read().split(b"\0")[0].decode("utf-8", "replace").strip()
            out.append((int(d), title))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _listening_ports():
    """TCP ports in LISTEN state on this machine (IPv4 and IPv6)."""
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.read().splitlines()[1:]:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return ports


class Dovecot:
    """
    A private Dovecot. Options:
      users          {address: password}; domains are part of the address
      mail_plugins   global mail_plugins, e.g. "mail_log notify"
      imap_plugins, pop3_plugins, lmtp_plugins
                     added to $mail_plugins in that protocol only
                     (e.g. imap_plugins="imap_sieve")
      extra          list of config lines (or one string) appended verbatim:
                     plugin { ... }, more services, protocol sections
      mail_debug     mail_debug = yes (plugin and storage debug lines)
      hostname       Dovecot's hostname (its LMTP Received: header says
                     "by HOSTNAME with LMTP id SESSION")
    Attributes: imap_port, pop3_port, lmtp_port, lmtp_socket, conf, dir,
    log_path, mail_dir, users.
    """

    def __init__(self, users=None, mail_plugins="", imap_plugins="", pop3_plugins="",
                 lmtp_plugins="", extra=(), mail_debug=False, auth_verbose=False,
                 hostname="mailbox.test", name="dovecot"):
        self.users = dict(users or DEFAULT_USERS)
        self.dir = h.make_workdir(name)
        self.base_dir = os.path.join(self.dir, "run")
        self.state_dir = os.path.join(self.dir, "state")
        self.mail_dir = os.path.join(self.dir, "mail")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.passwd = os.path.join(self.dir, "passwd")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.lmtp_socket = os.path.join(self.base_dir, "lmtp")
        self.imap_port = h.free_port()
        self.pop3_port = h.free_port()
        self.lmtp_port = h.free_port()
        while len({self.imap_port, self.pop3_port, self.lmtp_port}) < 3:
            self.lmtp_port = h.free_port()
        self.mail_plugins = mail_plugins
        self.imap_plugins = imap_plugins
        self.pop3_plugins = pop3_plugins
        self.lmtp_plugins = lmtp_plugins
        self.extra = [extra] if isinstance(extra, str) else list(extra)
        self.mail_debug = mail_debug
        self.auth_verbose = auth_verbose
        self.uid = pwd.getpwnam(MAIL_USER).pw_uid
        self.gid = grp.getgrnam(MAIL_USER).gr_gid
        self.hostname = hostname
        # process titles read dovecot-mt-dovecot-XXXX/imap etc.
        self.instance = os.path.basename(self.dir)
        self.proc = None
        self._log_file = None
        for d in (self.state_dir, self.mail_dir):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.state_dir, 0o755)
        os.chown(self.mail_dir, self.uid, self.gid)
        os.chmod(self.mail_dir, 0o770)
        self.write_config()

    # -- config
    def config_text(self):
        text = CONF.format(
            instance=self.instance, hostname=self.hostname, base_dir=self.base_dir,
            state_dir=self.state_dir,
            log=self.log_path, uid=self.uid, gid=self.gid, mail=self.mail_dir,
            mail_plugins=self.mail_plugins, imap_plugins=self.imap_plugins,
            pop3_plugins=self.pop3_plugins, lmtp_plugins=self.lmtp_plugins,
            mail_debug="yes" if self.mail_debug else "no",
            auth_verbose="yes" if self.auth_verbose else "no",
            passwd=self.passwd, imap_port=self.imap_port, pop3_port=self.pop3_port,
            lmtp_port=self.lmtp_port)
        if self.extra:
            text += "# extra\n" + "\n".join(self.extra) + "\n"
        return text

    def write_config(self):
        with open(self.passwd, "w") as f:
            for user, pw in self.users.items():
                f.write("%s:{PLAIN}%s::::::\n" % (user.lower(), pw))
        os.chmod(self.passwd, 0o640)
        shutil.chown(self.passwd, "root", "dovecot")
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def check(self):
        """doveconf -n on the config: CompletedProcess (rc 0 when it parses)."""
        return subprocess.run(["doveconf", "-c", self.conf, "-n"],
                              capture_output=True, text=True, timeout=30)

    # -- life cycle
    def start(self, timeout=10):
        r = self.check()
        if r.returncode != 0:
            raise RuntimeError("dovecot config %s does not parse:\n%s"
                               % (self.conf, r.stderr))
        self._log_file = open(os.path.join(self.dir, "dovecot.stderr"), "ab")
        self.proc = h.spawn([DOVECOT, "-F", "-c", self.conf],
                            stdout=self._log_file, stderr=subprocess.STDOUT)
        h.on_exit(self._dump_on_failure)

        start_offset = self.log_offset()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("dovecot exited %s at start:\n%s\n%s" % (
                    self.proc.returncode, self.stderr_text()[-3000:], self.log()[-3000:]))
            # the master logs "starting up" after it has bound every listener;
            # checking LISTEN sockets (not connecting) keeps the log free of
            # probe sessions
            return (any("starting up" in l for l in self.lines_since(start_offset))
                    and os.path.exists(self.lmtp_socket)
                    and {self.imap_port, self.pop3_port, self.lmtp_port}
                    <= _listening_ports())
        h.wait_for(ready, timeout, "dovecot ports %d/%d/%d" % (
            self.imap_port, self.pop3_port, self.lmtp_port), interval=0.01)
        return self

    def stop(self, timeout=10):
        """
        SIGTERM to the master, which stops every child; returns its exit
        code (-9 when the rest was SIGKILLed). The master lingers 1 s
        keeping its log process for late lines, and up to 6 s when stopped
        right after start (anvil ignores the first SIGTERM then): once only
        processes that hold no mail (log, anvil, stats, config) are left and
        the log has had 0.5 s, the group is SIGKILLed to save that time.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            end = time.monotonic() + timeout
            only_log_since = None
            while self.proc.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
                rest = [c for pid, c in _group(self.proc.pid) if pid != self.proc.pid]
                if all(c.rsplit("/", 1)[-1] in _HOLD_NO_MAIL for c in rest):
                    only_log_since = only_log_since or time.monotonic()
                    if time.monotonic() - only_log_since > 0.5:
                        break
                else:
                    only_log_since = None
            if self.proc.poll() is None:
                self.proc._mt_kill()
        h.forget(self.proc._mt_kill)
        h.wait_for(lambda: not ({self.imap_port, self.pop3_port, self.lmtp_port}
                                & _listening_ports()), 5, "dovecot ports to close")
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        rc = self.proc.returncode
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL to the whole process group (a crash): no clean shutdown."""
        if self.proc is None:
            return
        self.proc._mt_kill()
        h.forget(self.proc._mt_kill)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def reload(self):
        """Rewrites the config and SIGHUPs the master (new processes see it)."""
        self.write_config()
        self.proc.send_signal(signal.SIGHUP)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _dump_on_failure(self):
        if os.environ.get("MT_DOVECOT_LOG"):
            print("\n*** dovecot log %s ***\n%s" % (self.log_path, self.log()[-6000:]))

    # -- logs
    def log(self):
        return h.read_text(self.log_path)

    def lines(self):
        return self.log().splitlines()

    def stderr_text(self):
        try:
            with open(os.path.join(self.dir, "dovecot.stderr"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_offset(self):
        """Where the log ends now: pass to lines_since() to see only new lines."""
        try:
            return os.path.getsize(self.log_path)
        except FileNotFoundError:
            return 0

    def lines_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []

    def wait_log(self, pred, timeout=10, offset=0, what="dovecot log line"):
        """Waits for a log line (after offset) with pred(line) true; returns it."""
        def find():
            for line in self.lines_since(offset):
                if pred(line):
                    return line
            return None
        return h.wait_for(find, timeout, what + " in " + self.log_path)

    # -- clients
    def password(self, user):
        return self.users[user]

    def imap(self, user, ip=None, password=None, ident=None):
        """
        An imaplib.IMAP4 logged in as user. With ip, sends
        `ID ("x-originating-ip" IP)` before LOGIN so that Dovecot takes the
        session's remote address (rip=) to be ip.
        """
        c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        if ip or ident:
            fields = []
            if ident:
                fields += ['"name"', '"%s"' % ident]
            if ip:
                fields += ['"x-originating-ip"', '"%s"' % ip]
            imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
            typ, data = c._simple_command("ID", "(%s)" % " ".join(fields))
            if typ != "OK":
                raise RuntimeError("IMAP ID refused: %r" % (data,))
        c.login(user, password or self.users[user])
        return c

    def pop3(self, user, ip=None, password=None):
        """
        A poplib.POP3 logged in as user. With ip, sends `XCLIENT ADDR=IP`
        before USER/PASS (Dovecot honours it from login_trusted_networks).
        """
        c = poplib.POP3("127.0.0.1", self.pop3_port, timeout=30)
        if ip:
            resp = c._shortcmd("XCLIENT ADDR=%s PORT=%d" % (ip, 40000))
            if not resp.startswith(b"+OK"):
                raise RuntimeError("POP3 XCLIENT refused: %r" % resp)
        c.user(user)
        c.pass_(password or self.users[user])
        return c

    def lmtp_deliver(self, sender, rcpts, data, xclient=None):
        """
        Delivers data straight over LMTP (no Postfix); returns one
        (code, text) reply per recipient. xclient: e.g. "ADDR=192.0.2.1"
        (Dovecot's LMTP takes XCLIENT from login_trusted_networks).
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=30) as c:
            c.ehlo("client.test")       # smtplib.LMTP sends LHLO
            if xclient:
                code, msg = c.docmd("XCLIENT", xclient)
                if code != 220:
                    raise RuntimeError("LMTP XCLIENT refused: %d %r" % (code, msg))
                c.ehlo("client.test")
            code, msg = c.mail(sender)
            if code != 250:
                raise RuntimeError("LMTP MAIL refused: %d %r" % (code, msg))
            for r in rcpts:
                code, msg = c.rcpt(r)
                if code != 250:
                    raise RuntimeError("LMTP RCPT %s refused: %d %r" % (r, code, msg))
            c.putcmd("data")
            code, msg = c.getreply()
            if code != 354:
                raise RuntimeError("LMTP DATA refused: %d %r" % (code, msg))
            q = re.sub(rb"(?m)^\.", b"..", re.sub(rb"\r\n|\n|\r", b"\r\n", data))
            if not q.endswith(b"\r\n"):
                q += b"\r\n"
            c.send(q + b".\r\n")
            return [(code, msg.decode("utf-8", "replace"))
                    for code, msg in (c.getreply() for _ in rcpts)]

    def doveadm(self, *args, check=True):
        return subprocess.run([DOVEADM, "-c", self.conf] + list(args),
                              capture_output=True, text=True, timeout=30, check=check)

    def maildir(self, user):
        local, domain = user.lower().split("@", 1)
        return os.path.join(self.mail_dir, domain, local, "Maildir")

    def mailbox_files(self, user, folder=None):
        """Paths of the stored messages of user's INBOX (or a folder)."""
        base = self.maildir(user)
        if folder and folder.upper() != "INBOX":
            base = os.path.join(base, "." + folder.replace("/", "."))
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(base, sub)
            if os.path.isdir(d):
                out += [os.path.join(d, f) for f in sorted(os.listdir(d))]
        return out

    def wait_stored(self, user, n=1, timeout=20, folder=None):
        return h.wait_for(lambda: len(self.mailbox_files(user, folder)) >= n and
                          self.mailbox_files(user, folder), timeout,
                          "%d message(s) in %s's mailbox" % (n, user))

    # -- Postfix
    @property
    def domains(self):
        return sorted({u.split("@", 1)[1].lower() for u in self.users})

    def postfix_settings(self, unix=False):
        """
        main.cf settings for h.Postfix(extra=...) that deliver this Dovecot's
        domains over LMTP (Postfix's lmtp service; logs `postfix/lmtp`),
        everything else still to relayhost.
        """
        dest = ("lmtp:unix:%s" % self.lmtp_socket if unix
                else "lmtp:inet:127.0.0.1:%d" % self.lmtp_port)
        return {
            "virtual_mailbox_domains": ", ".join(self.domains),
            "virtual_mailbox_maps": "inline:{%s}" % ", ".join(
                "%s=ok" % u.lower() for u in self.users),
            "virtual_transport": dest,
            "lmtp_host_lookup": "native",
        }
