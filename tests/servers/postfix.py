"""A real Postfix (smtpd) with Dovecot SASL on 127.0.0.1, for the test suite.

One instance per test session: its own config, queue, data and mail
directories under a temporary directory (never the system service, whose
/etc/postfix/main.cf is not read), `inet_interfaces = 127.0.0.1`, and
several `master.cf` services, one port each:

==========  ===============================================================
service     what it is
==========  ===============================================================
plain       STARTTLS offered, no AUTH, PIPELINING, SMTPUTF8
starttls    STARTTLS required before MAIL (smtpd_tls_security_level=encrypt)
            and AUTH through Dovecot once encrypted
smtps       implicit TLS (smtpd_tls_wrappermode) with AUTH through Dovecot
limit3      smtpd_recipient_limit = 3 (``452 4.5.3`` past the third)
small       message_size_limit = 20000 (announced as SIZE 20000)
noutf8      smtputf8_enable = no
tls12       STARTTLS required, TLS 1.2 only
notls       no STARTTLS offered (smtpd_tls_security_level=none)
==========  ===============================================================

Every service delivers through virtual(8) into one catch-all Maildir,
``mail/all/``, a copy per recipient marked ``Delivered-To``, which
`PostfixServer.delivered` and `wait_for` read.
Mail to `REJECTED` is refused by an access map (``550 5.1.1``). The SASL
user is `USER` / `PASSWORD` (Dovecot passwd-file).

Start and stop are bounded (`START_TIMEOUT_S`). Needs the Debian packages
``postfix`` and ``dovecot-core`` and root (Postfix's master starts as root
and drops to its own users); a missing program raises
`PostfixUnavailable` naming the package, which the fixture turns into a
test failure, never a skip.
"""

from __future__ import annotations

import email
import email.policy
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from .certs import CertAuthority

HOST = "127.0.0.1"
DOMAIN = "example.test"
USER = "sasl-user@example.test"
PASSWORD = "s3cret-Pa55"
REJECTED = f"rejected@{DOMAIN}"
SMALL_LIMIT = 20000
START_TIMEOUT_S = 20.0
SERVICES = ("plain", "starttls", "smtps", "limit3", "small", "noutf8", "tls12", "notls")

POSTFIX = "/usr/sbin/postfix"
DAEMONS = "/usr/lib/postfix/sbin"
DOVECOT = "/usr/sbin/dovecot"


class PostfixUnavailable(RuntimeError):
    """Postfix or Dovecot cannot run here (not installed, not root)."""


@dataclass
class Delivered:
    """A message found in a Maildir: who it was for and its bytes."""

    mailbox: str
    path: Path
    data: bytes

    @property
    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


class PostfixServer:
    """A Postfix instance with a Dovecot auth service; see the module doc."""

    def __init__(self, ca: CertAuthority) -> None:
        for program, package in ((POSTFIX, "postfix"), (f"{DAEMONS}/smtpd", "postfix"), (DOVECOT, "dovecot-core")):
            if not os.access(program, os.X_OK):
                raise PostfixUnavailable(f"{program} is missing: apt-get install {package} (or run .ci/run)")
        if os.geteuid() != 0:
            raise PostfixUnavailable("Postfix's master must start as root to run a private instance")
        # Its own directory, not under pytest's (mode 0700): Postfix's and
        # Dovecot's unprivileged users must reach their files.
        self.base = Path(tempfile.mkdtemp(prefix="smtpbridge-postfix-"))
        self.base.chmod(0o755)
        self.etc = self.base / "etc"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        self.mail = self.base / "mail"
        self.dovecot = self.base / "dovecot"
        self.ports = {name: _free_port() for name in SERVICES}
        self.cert = ca.issue("postfix")
        self._dovecot: subprocess.Popen | None = None
        self._started = False

    # --- life cycle -----------------------------------------------------------

    def start(self) -> "PostfixServer":
        deadline = time.monotonic() + START_TIMEOUT_S
        self._write_dovecot()
        self._dovecot = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.dovecot / "dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=open(self.dovecot / "stderr.log", "wb"),
        )
        socket_path = self.dovecot / "run" / "auth-postfix"
        while not socket_path.exists():
            if self._dovecot.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PostfixUnavailable("Dovecot did not start: " + self._log_tail(self.dovecot / "stderr.log")
                                         + self._log_tail(self.dovecot / "dovecot.log"))
            time.sleep(0.05)
        self._write_postfix()
        run = subprocess.run([POSTFIX, "-c", str(self.etc), "start"], capture_output=True, text=True,
                             timeout=START_TIMEOUT_S)
        if run.returncode != 0:
            self.stop()
            raise PostfixUnavailable(f"postfix start failed: {run.stdout}{run.stderr}"
                                     + self._log_tail(self.base / "maillog"))
        self._started = True
        for name, port in self.ports.items():
            if not _wait_port(port, deadline):
                self.stop()
                raise PostfixUnavailable(f"Postfix service {name} did not listen on {port}"
                                         + self._log_tail(self.base / "maillog"))
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                subprocess.run([POSTFIX, "-c", str(self.etc), "stop"], capture_output=True, timeout=15)
            except subprocess.TimeoutExpired:
                subprocess.run([POSTFIX, "-c", str(self.etc), "abort"], capture_output=True, timeout=10)
        if self._dovecot is not None:
            self._dovecot.terminate()
            try:
                self._dovecot.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._dovecot.kill()
                self._dovecot.wait(timeout=5)
            self._dovecot = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostfixServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what the tests read ----------------------------------------------------

    def port(self, service: str) -> int:
        return self.ports[service]

    def delivered(self, address: str) -> list[Delivered]:
        """Every copy delivered to `address`: the files of the catch-all Maildir
        whose ``Delivered-To`` (virtual(8) adds it to each recipient's copy)
        is `address`. Tests use addresses of their own."""
        found = []
        wanted = address.lower()
        for sub in ("new", "cur"):
            folder = self.mail / "all" / sub
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                data = path.read_bytes()
                head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
                for line in head.splitlines():
                    if line.lower().startswith(b"delivered-to:"):
                        if line.split(b":", 1)[1].strip().decode("utf-8", "replace").lower() == wanted:
                            found.append(Delivered(address, path, data))
                        break
        return found

    def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[Delivered]:
        """Waits until the Maildir of `address` holds at least `count` messages, then
        a moment more (to see a duplicate arrive), and returns them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.delivered(address)) >= count:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"{address}: {len(self.delivered(address))} of {count} messages after {timeout}s"
                                 + self._log_tail(self.base / "maillog"))
        return self.delivered(address)

    def settle(self, seconds: float = 1.0) -> None:
        """Waits until the queue is empty (everything delivered), at most `seconds` more."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pending = [p for d in ("incoming", "active", "deferred") for p in (self.queue / d).rglob("*") if p.is_file()]
            if not pending:
                return
            time.sleep(0.1)

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- configuration ----------------------------------------------------------

    @staticmethod
    def _log_tail(path: Path, lines: int = 30) -> str:
        if not path.exists():
            return ""
        return f"\n--- {path.name}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _write_dovecot(self) -> None:
        run = self.dovecot / "run"
        run.mkdir(parents=True, exist_ok=True)
        (self.dovecot / "state").mkdir(exist_ok=True)
        users = self.dovecot / "users"
        users.write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        users.chmod(0o644)
        os.chmod(self.dovecot, 0o755)
        (self.dovecot / "dovecot.conf").write_text(f"""\
# A Dovecot that only authenticates, for Postfix's smtpd (SASL).
protocols =
listen = {HOST}
base_dir = {run}
state_dir = {self.dovecot / "state"}
instance_name = smtpbridge-test-{os.getpid()}
log_path = {self.dovecot / "dovecot.log"}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
service anvil {{
  chroot =
}}
""")

    def _write_postfix(self) -> None:
        for d in (self.etc, self.queue, self.data, self.mail):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.base, self.queue):
            os.chown(d, 0, 0)
            d.chmod(0o755)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        nobody = pwd.getpwnam("nobody")
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        cert, key = self.etc / "cert.pem", self.etc / "key.pem"
        shutil.copyfile(self.cert.cert_path, cert)
        shutil.copyfile(self.cert.key_path, key)
        key.chmod(0o600)
        (self.etc / "rcpt_access").write_text(f"{REJECTED} 550 5.1.1 <{REJECTED}>: no such user here\n")
        (self.etc / "vmailbox").write_text("/@/ all/\n")
        tls12 = "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.3"
        (self.etc / "main.cf").write_text(f"""\
# A private Postfix instance for the smtpbridge tests.
compatibility_level = 3.6
config_directory = {self.etc}
queue_directory = {self.queue}
data_directory = {self.data}
meta_directory = /etc/postfix
daemon_directory = {DAEMONS}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.{DOMAIN}
mydomain = {DOMAIN}
myorigin = {DOMAIN}
inet_interfaces = {HOST}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = {self.base / "maillog"}
maillog_file_prefixes = {self.base}
smtpd_banner = $myhostname ESMTP Postfix (smtpbridge test)
biff = no
smtputf8_enable = yes
virtual_mailbox_domains = regexp:{self.etc / "vdomains"}
virtual_mailbox_base = {self.mail}
virtual_mailbox_maps = regexp:{self.etc / "vmailbox"}
virtual_minimum_uid = 100
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
smtpd_recipient_restrictions = check_recipient_access texthash:{self.etc / "rcpt_access"},
    permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_tls_cert_file = {self.etc / "cert.pem"}
smtpd_tls_key_file = {self.etc / "key.pem"}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_received_header = yes
smtpd_sasl_authenticated_header = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.dovecot / "run" / "auth-postfix"}
smtpd_sasl_auth_enable = no
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 200
message_size_limit = 10240000
delay_warning_time = 0
maximal_queue_lifetime = 1h
""")
        (self.etc / "vdomains").write_text("/./ OK\n")
        sasl = "-o smtpd_sasl_auth_enable=yes"
        services = {
            "plain": "",
            "starttls": f"-o smtpd_tls_security_level=encrypt {sasl}",
            "smtps": f"-o smtpd_tls_wrappermode=yes {sasl}",
            "limit3": "-o smtpd_recipient_limit=3",
            "small": f"-o message_size_limit={SMALL_LIMIT}",
            "noutf8": "-o smtputf8_enable=no",
            "notls": "-o smtpd_tls_security_level=none",
            "tls12": (f"-o smtpd_tls_security_level=encrypt -o {{smtpd_tls_protocols={tls12}}} "
                      f"-o {{smtpd_tls_mandatory_protocols={tls12}}}"),
        }
        lines = [f"{HOST}:{self.ports[name]} inet n - n - - smtpd {options}".rstrip()
                 for name, options in services.items()]
        lines += [
            "pickup    unix  n       -       n       60      1       pickup",
            "cleanup   unix  n       -       n       -       0       cleanup",
            "qmgr      unix  n       -       n       300     1       qmgr",
            "tlsmgr    unix  -       -       n       1000?   1       tlsmgr",
            "rewrite   unix  -       -       n       -       -       trivial-rewrite",
            "bounce    unix  -       -       n       -       0       bounce",
            "defer     unix  -       -       n       -       0       bounce",
            "trace     unix  -       -       n       -       0       bounce",
            "verify    unix  -       -       n       -       1       verify",
            "flush     unix  n       -       n       1000?   0       flush",
            "proxymap  unix  -       -       n       -       -       proxymap",
            "smtp      unix  -       -       n       -       -       smtp",
            "relay     unix  -       -       n       -       -       smtp",
            "showq     unix  n       -       n       -       -       showq",
            "error     unix  -       -       n       -       -       error",
            "retry     unix  -       -       n       -       -       error",
            "discard   unix  -       -       n       -       -       discard",
            "local     unix  -       n       n       -       -       local",
            "virtual   unix  -       n       n       -       -       virtual",
            "lmtp      unix  -       -       n       -       -       lmtp",
            "anvil     unix  -       -       n       -       1       anvil",
            "scache    unix  -       -       n       -       1       scache",
            "postlog   unix-dgram n  -       n       -       1       postlogd",
        ]
        (self.etc / "master.cf").write_text("\n".join(lines) + "\n")

