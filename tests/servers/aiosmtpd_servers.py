"""A well-behaved SMTP server on 127.0.0.1 that records what it receives.

`RecordingServer` wraps aiosmtpd in a thread: plain, STARTTLS, implicit
TLS, AUTH PLAIN/LOGIN against a user table and XOAUTH2 against one
(user, token) pair, answering a bad token the way Office 365 and Gmail do.
It starts listening in its constructor on an OS-chosen port and stops on
`stop()` or at the end of a ``with`` block.

`ReceivedMessage` and `MessageLog` are shared with `ScriptedServer`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import json
import ssl
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"

#: What Office 365 sends (base64-encoded, in a 334 challenge) for a refused token.
XOAUTH2_ERROR = {
    "status": "401",
    "schemes": "bearer",
    "scope": "https://outlook.office.com/SMTP.Send",
}


@dataclass
class ReceivedMessage:
    """One message as a server received it.

    ``raw`` holds the DATA bytes after un-dot-stuffing, with the CRLF line
    ends and the final CRLF as sent, without the terminating ``.``.
    ``connection`` is the 1-based number of the connection it came on.
    ``reply`` is what the server answered to the final dot.
    """

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    connection: int
    tls_version: str | None = None
    auth_user: str | None = None
    mail_options: list[str] = field(default_factory=list)
    reply: str = "250 OK"

    @property
    def tls(self) -> bool:
        """Whether the message came over TLS (STARTTLS or implicit)."""
        return self.tls_version is not None

    @property
    def parsed(self) -> EmailMessage:
        """``raw`` parsed with the modern `email.policy.default`."""
        return email.parser.BytesParser(policy=email.policy.default).parsebytes(self.raw)


class MessageLog:
    """A thread-safe list of `ReceivedMessage` that can be waited on."""

    def __init__(self) -> None:
        self._messages: list[ReceivedMessage] = []
        self._changed = threading.Condition()

    def append(self, message: ReceivedMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def snapshot(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """Wait until at least `count` messages arrived; return them all.

        Raises `TimeoutError` naming how many came if `timeout` seconds pass first.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, got {len(self._messages)}"
                )
            return list(self._messages)


class _Handler:
    """aiosmtpd hooks: records messages, checks XOAUTH2, tidies EHLO."""

    def __init__(self, log: MessageLog, oauth: tuple[str, str] | None) -> None:
        self._log = log
        self._oauth = oauth

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        # aiosmtpd advertises a bare "250-AUTH " when every mechanism is
        # excluded; a server without AUTH must not mention it at all.
        session.host_name = hostname
        return [line for line in responses if line.rstrip() != "250-AUTH"]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = "250 2.0.0 OK queued"
        ssl_object = server.transport.get_extra_info("ssl_object")
        self._log.append(ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            raw=envelope.original_content,
            connection=server.connection_number,
            tls_version=ssl_object.version() if ssl_object else None,
            auth_user=session.auth_data if session.authenticated else None,
            mail_options=list(envelope.mail_options),
            reply=reply,
        ))
        return reply

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2: ``user=<u>^Aauth=Bearer <token>^A^A``, base64.

        A wrong user or token gets a 334 challenge carrying the JSON error;
        the client answers it with an empty line and then gets 535. Which
        tokens pass is :meth:`xoauth2_user`'s to say.
        """
        if len(args) == 2:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        else:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        user = await self.xoauth2_user(blob)
        if user is not None:
            return AuthResult(success=True, auth_data=user)
        if await server.challenge_auth(json.dumps(XOAUTH2_ERROR)) is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False,
                          message="535 5.7.3 Authentication unsuccessful")

    async def xoauth2_user(self, blob: bytes) -> str | None:
        """The user an XOAUTH2 initial response logs in, or None to refuse it."""
        if self._oauth is not None:
            user, token = self._oauth
            if blob == f"user={user}\x01auth=Bearer {token}\x01\x01".encode():
                return user
        return None


class _SMTP(SMTP):
    """aiosmtpd's SMTP session, telling its controller when its connection ends."""

    def __init__(self, controller: "_Controller", *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._controller = controller

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._controller.closed.mark(self.connection_number)


class ClosedConnections:
    """The numbers of the connections that ended, which a test can wait for."""

    def __init__(self) -> None:
        self._numbers: set[int] = set()
        self._changed = threading.Condition()

    def mark(self, number: int) -> None:
        with self._changed:
            self._numbers.add(number)
            self._changed.notify_all()

    def wait_for(self, number: int, timeout: float) -> None:
        """Wait until connection `number` has ended (`TimeoutError` if not in time)."""
        with self._changed:
            if not self._changed.wait_for(lambda: number in self._numbers, timeout):
                raise TimeoutError(f"connection {number} was still open after {timeout}s")


class _Controller(Controller):
    """A Controller that works with port 0 and numbers its connections."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connections = 0
        #: False during start()'s readiness probe, which is connection 0.
        self.counting = False
        self.closed = ClosedConnections()
        self.live_sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()

    def factory(self) -> SMTP:
        smtp = _SMTP(self, self.handler, **self.SMTP_kwargs)
        if self.counting:
            self.connections += 1
        smtp.connection_number = self.connections
        self.live_sessions.add(smtp)
        return smtp

    def _trigger_server(self) -> None:
        # start() checks readiness by connecting to self.port; with port 0
        # that must first become the port the OS chose.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class RecordingServer:
    """An aiosmtpd server on 127.0.0.1:<free port>, listening once constructed.

    tls_context        offer STARTTLS with this server context.
    require_starttls   answer 530 to all but EHLO, NOOP, QUIT before STARTTLS.
    ssl_context        implicit TLS (SMTPS) with this server context.
    users              {username: password} for AUTH PLAIN and LOGIN.
    oauth              (user, token) accepted by AUTH XOAUTH2.
    auth_mechanisms    advertise only these (default: PLAIN LOGIN with users,
                       XOAUTH2 with oauth).
    auth_require_tls   offer and allow AUTH only over TLS (aiosmtpd's default).
    auth_required      refuse MAIL before AUTH (530).
    hostname, ident    the greeting is ``220 <hostname> <ident>``.
    smtputf8           advertise SMTPUTF8.
    data_size_limit    advertise SIZE and refuse bigger data with 552;
                       None for neither.
    idle_timeout       seconds before aiosmtpd closes an idle connection (silently).

    Attributes and methods: ``host``, ``port``, ``messages`` (a copy),
    ``connections`` (count so far), ``wait_for(count, timeout)``,
    ``wait_closed(connection, timeout)``, ``stop()``.
    """

    host = HOST

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        ssl_context: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        oauth: tuple[str, str] | None = None,
        auth_mechanisms: Iterable[str] | None = None,
        auth_require_tls: bool = True,
        auth_required: bool = False,
        hostname: str = "localhost",
        ident: str = "smtpbridge recording server",
        smtputf8: bool = True,
        data_size_limit: int | None = 33554432,
        idle_timeout: float = 30.0,
    ) -> None:
        self._log = MessageLog()
        self._users = dict(users or {})
        offered = set(auth_mechanisms) if auth_mechanisms is not None else (
            ({"PLAIN", "LOGIN"} if users else set()) | ({"XOAUTH2"} if oauth else set())
        )
        self._controller = _Controller(
            _Handler(self._log, oauth),
            hostname=HOST,
            port=0,
            ssl_context=ssl_context,
            server_hostname=hostname,
            ident=ident,
            tls_context=tls_context,
            require_starttls=require_starttls,
            authenticator=self._authenticate,
            auth_require_tls=auth_require_tls,
            auth_required=auth_required,
            auth_exclude_mechanism={"PLAIN", "LOGIN", "XOAUTH2"} - offered,
            enable_SMTPUTF8=smtputf8,
            decode_data=False,
            data_size_limit=data_size_limit,
            timeout=idle_timeout,
        )
        self._controller.start()
        self._controller.counting = True  # start()'s readiness probe was connection 0
        self._running = True
        self.port: int = self._controller.port

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: LoginPassword) -> AuthResult:
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if user in self._users and self._users[user] == password:
            return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The messages received so far, oldest first (a copy)."""
        return self._log.snapshot()

    @property
    def connections(self) -> int:
        """How many client connections were accepted so far."""
        return self._controller.connections

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until `count` messages arrived (`TimeoutError` if not in time)."""
        return self._log.wait_for(count, timeout)

    def wait_closed(self, connection: int, timeout: float = 5.0) -> None:
        """Wait until connection number `connection` (1-based) has ended, closed
        by either side (`TimeoutError` if not in time)."""
        self._controller.closed.wait_for(connection, timeout)

    def stop(self) -> None:
        """Close every client connection, then stop the server. Idempotent."""
        if not self._running:
            return
        self._running = False
        controller = self._controller
        asyncio.run_coroutine_threadsafe(_abort_sessions(controller), controller.loop).result(5)
        controller.stop()

    def __enter__(self) -> RecordingServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _abort_sessions(controller: _Controller) -> None:
    """Drop live client connections so clients see the server go, not a hang."""
    for smtp in list(controller.live_sessions):
        for transport in (smtp.transport, smtp._original_transport):
            if transport is not None:
                transport.abort()
    await asyncio.sleep(0.05)  # let connection_lost run before the loop stops
