"""Loopback SMTP servers for the test suite, all on 127.0.0.1 with an OS-chosen port.

- `RecordingServer`: a correct server (aiosmtpd) that records messages;
  plain, STARTTLS, implicit TLS, AUTH PLAIN/LOGIN and XOAUTH2.
- `ScriptedServer` + `Script`: a raw-socket server for faults (odd
  greetings and capabilities, per-command and per-recipient replies,
  DROP/HANG, dripped replies, idle close, STARTTLS injection).
- `CertAuthority`, `self_signed`: certificates made at test time.
"""

from .aiosmtpd_servers import XOAUTH2_ERROR, MessageLog, ReceivedMessage, RecordingServer
from .certs import CertAuthority, ServerCert, self_signed
from .scripted import DROP, HANG, ClientLine, Script, ScriptedServer

__all__ = [
    "DROP",
    "HANG",
    "XOAUTH2_ERROR",
    "CertAuthority",
    "ClientLine",
    "MessageLog",
    "ReceivedMessage",
    "RecordingServer",
    "Script",
    "ScriptedServer",
    "ServerCert",
    "self_signed",
]
