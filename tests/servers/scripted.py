"""A raw-socket SMTP server on 127.0.0.1 that misbehaves as a `Script` says.

Every reply is looked up by *point*: the command verb (``EHLO``, ``MAIL``,
``RCPT``, ``DATA``, ``AUTH``, ``STARTTLS``, ``RSET``, ``NOOP``, ``QUIT``,
``HELO``, any other verb) or ``GREETING`` or ``DOT`` (the end of the
message data). ``Script.replies[point]`` is a list consumed in order over
the server's life, across connections; once it is empty the point's
default answers. A reply is a line such as ``"451 4.3.0 try later"``
(several lines joined by CRLF make a multi-line reply), or `DROP` (close
the connection instead of answering) or `HANG` (never answer; wait until
the client leaves).

    Script(replies={"DOT": [DROP, "250 OK"]})    # first message: dropped after
                                                 # the final dot, the retry is accepted
    Script(rcpt_replies={"b@x.test": "550 5.1.1 no such user"})
    Script(greeting=HANG)                        # accept and never speak
    Script(drip_ms=200, drip_at={"GREETING"})    # a slow greeting, a byte at a time
    Script(tls_context=ctx, starttls_inject=b"250 injected\\r\\n")

The server records every line the client sent (`ClientLine`, AUTH
payloads included) and every message whose final dot arrived
(`ReceivedMessage`, recorded before the reply, so a dropped one counts).
"""

from __future__ import annotations

import copy
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .aiosmtpd_servers import HOST, ClosedConnections, MessageLog, ReceivedMessage

DROP = "<drop>"
"""A reply that closes the connection instead of answering."""

HANG = "<hang>"
"""A reply that is never sent: the server waits until the client leaves."""

NAME = "scripted.test"
_POLL_S = 0.05  # how often blocked loops look at stop()
_ADDRESS = re.compile(r"(?i)(?:FROM|TO):\s*<([^>]*)>\s*(.*)")
_LOGIN_CHALLENGES = ["VXNlcm5hbWU6", "UGFzc3dvcmQ6"]  # "Username:", "Password:"


@dataclass
class Script:
    """What a `ScriptedServer` says; every field has a well-behaved default.

    greeting        the default greeting (may be `DROP` or `HANG`).
    ehlo_caps       EHLO capabilities; None: PIPELINING 8BITMIME SMTPUTF8
                    ``AUTH PLAIN LOGIN``, plus STARTTLS with a tls_context.
    ehlo_caps_tls   capabilities once TLS is on; None: ehlo_caps less STARTTLS.
    replies         {point: [reply, ...]} consumed in order (see the module doc).
    rcpt_replies    {address: reply} for RCPT TO:<address>, before `replies`.
    tls_context     server context for STARTTLS (a 220 reply starts the
                    handshake) and for implicit_tls.
    implicit_tls    start TLS on connect (SMTPS).
    starttls_inject bytes sent in the same send() as STARTTLS's 220,
                    before the handshake (the STARTTLS injection attack).
    drip_ms         send replies one byte every drip_ms milliseconds...
    drip_at         ...at these points ("*": everywhere).
    idle_close_ms   close a connection idle that long between commands,
    idle_reply      after saying this (None: silently).
    max_wait_s      bound on any wait for the client, hangs included.
    """

    greeting: str = f"220 {NAME} ESMTP scripted"
    ehlo_caps: list[str] | None = None
    ehlo_caps_tls: list[str] | None = None
    replies: dict[str, list[str]] = field(default_factory=dict)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    tls_context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    starttls_inject: bytes = b""
    drip_ms: int = 0
    drip_at: frozenset[str] | set[str] = frozenset({"*"})
    idle_close_ms: int | None = None
    idle_reply: str | None = f"421 4.4.2 {NAME} idle timeout"
    max_wait_s: float = 30.0


@dataclass(frozen=True)
class ClientLine:
    """A line the client sent outside message data.

    ``verb`` is the upper-cased command, or None for an answer to a 334
    AUTH challenge. ``connection`` is 1-based; ``tls`` says whether the
    line came over TLS.
    """

    connection: int
    text: str
    tls: bool
    verb: str | None


class _EndSession(Exception):
    """The connection is over: the client left, a DROP/HANG/QUIT, a timeout, stop()."""


class ScriptedServer:
    """A threaded SMTP server on 127.0.0.1:<free port> playing `script`.

    Listens once constructed; serves each connection in its own thread.
    ``host``, ``port``, ``messages``, ``lines``, ``commands()``,
    ``connections``, ``wait_for(count, timeout)``, ``wait_closed(connection,
    timeout)``, ``stop()``; a context manager.
    """

    host = HOST

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or Script()
        self._pending = copy.deepcopy(self.script.replies)
        self._lock = threading.Lock()
        self._lines: list[ClientLine] = []
        self._log = MessageLog()
        self._closed = ClosedConnections()
        self._connections = 0
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener = socket.create_server((HOST, 0))
        self._listener.settimeout(_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="scripted-accept", daemon=True)
        self._acceptor.start()

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Messages whose final dot arrived, oldest first (a copy)."""
        return self._log.snapshot()

    @property
    def lines(self) -> list[ClientLine]:
        """Every line the client sent outside message data (a copy)."""
        with self._lock:
            return list(self._lines)

    def commands(self, connection: int | None = None) -> list[str]:
        """The command verbs received, in order, on one connection or all."""
        return [line.verb for line in self.lines
                if line.verb is not None and connection in (None, line.connection)]

    @property
    def connections(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return self._connections

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until `count` messages arrived (`TimeoutError` if not in time)."""
        return self._log.wait_for(count, timeout)

    def wait_closed(self, connection: int, timeout: float = 5.0) -> None:
        """Wait until connection number `connection` (1-based) has ended, closed
        by either side (`TimeoutError` if not in time)."""
        self._closed.wait_for(connection, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, end every connection and join the threads. Idempotent."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        self._acceptor.join(timeout)
        self._listener.close()
        for thread in self._threads:  # complete once the acceptor is gone
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in [self._acceptor, *self._threads] if t.is_alive()]
        if stuck:
            raise RuntimeError(f"ScriptedServer threads did not stop: {stuck}")

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self._connections += 1
                number = self._connections
            session = _Session(self, sock, number)
            thread = threading.Thread(target=session.run, name=f"scripted-conn-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _next_reply(self, point: str, default: str) -> str:
        with self._lock:
            queue = self._pending.get(point)
            return queue.pop(0) if queue else default

    def _record_line(self, line: ClientLine) -> None:
        with self._lock:
            self._lines.append(line)


class _Session:
    """One client connection: a buffered line reader and the command loop."""

    def __init__(self, server: ScriptedServer, sock: socket.socket, number: int) -> None:
        self.server = server
        self.script = server.script
        self.sock = sock
        self.sock.settimeout(_POLL_S)
        self.number = number
        self.buffer = bytearray()
        self.tls_version: str | None = None
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.rcpt_tos: list[str] = []
        self.handlers: dict[str, Callable[[str], None]] = {
            "EHLO": self._ehlo, "HELO": self._helo, "STARTTLS": self._starttls,
            "AUTH": self._auth, "MAIL": self._mail, "RCPT": self._rcpt,
            "DATA": self._data, "RSET": self._rset, "NOOP": self._noop, "QUIT": self._quit,
        }

    def run(self) -> None:
        try:
            if self.script.implicit_tls:
                self._start_tls()
            self._reply("GREETING", self.script.greeting)
            while True:
                line = self._read_line(idle=True).rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                verb, _, arg = line.partition(" ")
                verb = verb.upper()
                self._record(line, verb)
                handler = self.handlers.get(verb)
                if handler is None:
                    self._reply(verb, "502 5.5.2 Command not recognized")
                else:
                    handler(arg.strip())
        except (_EndSession, OSError):  # OSError includes ssl.SSLError
            pass
        finally:
            self.sock.close()
            self.server._closed.mark(self.number)

    # --- commands -------------------------------------------------------

    def _ehlo(self, arg: str) -> None:
        caps = self.script.ehlo_caps
        if caps is None:
            caps = ["PIPELINING", "8BITMIME", "SMTPUTF8", "AUTH PLAIN LOGIN"]
            if self.script.tls_context is not None and not self.script.implicit_tls:
                caps.append("STARTTLS")
        if self.tls_version is not None:
            explicit = self.script.ehlo_caps_tls
            caps = explicit if explicit is not None else [c for c in caps if c.upper() != "STARTTLS"]
        self._reply("EHLO", _multiline("250", [f"{NAME} greets {arg}", *caps]))

    def _helo(self, arg: str) -> None:
        self._reply("HELO", f"250 {NAME}")

    def _starttls(self, arg: str) -> None:
        can = self.script.tls_context is not None and self.tls_version is None
        text = self.server._next_reply(
            "STARTTLS", "220 2.0.0 Ready to start TLS" if can else "454 4.7.0 TLS not available")
        if not text.startswith("220"):
            self._say("STARTTLS", text)
            return
        self._say("STARTTLS", text, extra=self.script.starttls_inject)
        self.buffer.clear()  # plaintext must never be read as if it came over TLS
        self._start_tls()

    def _auth(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        challenges = _LOGIN_CHALLENGES if mechanism.upper() == "LOGIN" else [""]
        for challenge in challenges[1:] if initial else challenges:
            if not self._challenge(f"334 {challenge}"):
                return
        text = self.server._next_reply("AUTH", "235 2.7.0 Authentication successful")
        while text.startswith("334"):  # e.g. XOAUTH2's JSON error before its 535
            if not self._challenge(text):
                return
            text = self.server._next_reply("AUTH", "235 2.7.0 Authentication successful")
        self._say("AUTH", text)

    def _challenge(self, text: str) -> bool:
        """Send a 334 and record the answer; False if the client aborted with ``*``."""
        self._say("AUTH", text)
        answer = self._read_line().rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        self._record(answer, None)
        if answer == "*":
            self._say("AUTH", "501 5.7.0 Authentication aborted")
            return False
        return True

    def _mail(self, arg: str) -> None:
        match = _ADDRESS.match(arg)
        if match is None:
            self._say("MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>")
            return
        text = self.server._next_reply("MAIL", "250 2.1.0 OK")
        if text.startswith("2"):
            self.mail_from, self.mail_options, self.rcpt_tos = match[1], match[2].split(), []
        self._say("MAIL", text)

    def _rcpt(self, arg: str) -> None:
        match = _ADDRESS.match(arg)
        if match is None:
            self._say("RCPT", "501 5.5.4 Syntax: RCPT TO:<address>")
            return
        text = self.script.rcpt_replies.get(match[1]) or self.server._next_reply("RCPT", "250 2.1.5 OK")
        if text.startswith("2"):
            self.rcpt_tos.append(match[1])
        self._say("RCPT", text)

    def _data(self, arg: str) -> None:
        ready = self.mail_from is not None and self.rcpt_tos
        text = self.server._next_reply(
            "DATA", "354 End data with <CR><LF>.<CR><LF>" if ready else "554 5.5.1 No valid recipients")
        self._say("DATA", text)
        if not text.startswith("354"):
            return
        body = bytearray()
        while (line := self._read_line()) != b".\r\n":
            body += line[1:] if line.startswith(b".") else line
        reply = self.server._next_reply("DOT", "250 2.0.0 OK queued")
        self.server._log.append(ReceivedMessage(
            mail_from=self.mail_from or "", rcpt_tos=list(self.rcpt_tos), raw=bytes(body),
            connection=self.number, tls_version=self.tls_version,
            mail_options=self.mail_options, reply=reply,
        ))
        self.mail_from, self.rcpt_tos = None, []
        self._say("DOT", reply)

    def _rset(self, arg: str) -> None:
        self.mail_from, self.rcpt_tos = None, []
        self._reply("RSET", "250 2.0.0 OK")

    def _noop(self, arg: str) -> None:
        self._reply("NOOP", "250 2.0.0 OK")

    def _quit(self, arg: str) -> None:
        self._reply("QUIT", f"221 2.0.0 {NAME} closing")
        raise _EndSession

    # --- I/O ------------------------------------------------------------

    def _record(self, text: str, verb: str | None) -> None:
        self.server._record_line(ClientLine(self.number, text, self.tls_version is not None, verb))

    def _reply(self, point: str, default: str) -> None:
        self._say(point, self.server._next_reply(point, default))

    def _say(self, point: str, text: str, extra: bytes = b"") -> None:
        """Send `text` (+ `extra` in the same send), or act out DROP/HANG."""
        if text == DROP:
            raise _EndSession
        if text == HANG:
            self._wait_for_client_to_leave()
        data = text.encode("utf-8") + b"\r\n" + extra
        if self.script.drip_ms and ({"*", point} & set(self.script.drip_at)):
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
                if self.server._stopping.wait(self.script.drip_ms / 1000):
                    raise _EndSession
        else:
            self.sock.sendall(data)

    def _read_line(self, idle: bool = False) -> bytes:
        """The next line with its line end; between commands (`idle`) the
        idle-close rule applies."""
        idle_ms = self.script.idle_close_ms if idle else None
        deadline = time.monotonic() + (idle_ms / 1000 if idle_ms else self.script.max_wait_s)
        while (end := self.buffer.find(b"\n")) < 0:
            if self.server._stopping.is_set():
                raise _EndSession
            if time.monotonic() >= deadline:
                if idle_ms and self.script.idle_reply:
                    self.sock.sendall(self.script.idle_reply.encode() + b"\r\n")
                raise _EndSession
            self._receive()
        line = bytes(self.buffer[:end + 1])
        del self.buffer[:end + 1]
        return line

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return
        if not chunk:
            raise _EndSession
        self.buffer += chunk

    def _wait_for_client_to_leave(self) -> None:
        deadline = time.monotonic() + self.script.max_wait_s
        while not self.server._stopping.is_set() and time.monotonic() < deadline:
            self._receive()
        raise _EndSession

    def _start_tls(self) -> None:
        if self.script.tls_context is None:
            raise _EndSession
        self.sock = self.script.tls_context.wrap_socket(
            self.sock, server_side=True, do_handshake_on_connect=False)
        deadline = time.monotonic() + self.script.max_wait_s
        while True:
            try:
                self.sock.do_handshake()
                break
            except TimeoutError:
                if self.server._stopping.is_set() or time.monotonic() >= deadline:
                    raise _EndSession from None
        self.tls_version = self.sock.version()


def _multiline(code: str, lines: list[str]) -> str:
    """``250-a`` CRLF ``250-b`` CRLF ``250 c``."""
    return "\r\n".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{line}"
                       for i, line in enumerate(lines))
