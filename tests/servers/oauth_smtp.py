"""An SMTP server on 127.0.0.1 that accepts XOAUTH2 only for live tokens.

`IntrospectingServer` is a `RecordingServer` whose AUTH XOAUTH2 asks the
authorization server's introspection endpoint (RFC 7662) about the bearer
token: only a token it says is ``active`` (and, when the token names a
subject, for the user given in XOAUTH2) is accepted, so an expired or
revoked token really fails, with the 334 JSON challenge and 535 that
Office 365 sends. Each AUTH is recorded in ``auths`` as
``(user, active, fingerprint)``; the tokens themselves are kept in memory
only (``tokens``), for tests that check no token leaked to a file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

from .aiosmtpd_servers import RecordingServer, _Handler
from .oidc import RESOURCE_CLIENT, RESOURCE_SECRET, token_fingerprint


def introspector(endpoint: str, client_id: str = RESOURCE_CLIENT,
                 client_secret: str = RESOURCE_SECRET) -> Callable[[str], dict[str, Any]]:
    """A function asking ``endpoint`` about a token (client_secret_basic)."""
    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()

    def introspect(token: str) -> dict[str, Any]:
        request = urllib.request.Request(
            endpoint, data=urllib.parse.urlencode({"token": token}).encode(),
            headers={"Authorization": f"Basic {basic}",
                     "Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError):
            return {"active": False}

    return introspect


class _IntrospectingHandler(_Handler):
    def __init__(self, server: "IntrospectingServer") -> None:
        super().__init__(server._log, None)
        self._owner = server

    async def xoauth2_user(self, blob: bytes) -> str | None:
        """The user, when the provider's introspection says the token is active."""
        user, token = _parse_xoauth2(blob)
        active = False
        if token:
            answer = await asyncio.get_running_loop().run_in_executor(None, self._owner.introspect, token)
            subject = answer.get("sub")
            active = bool(answer.get("active")) and (
                subject is None or user in (subject, f"{subject}@example.test")
                or answer.get("client_id") == subject)
        self._owner._record(user, active, token_fingerprint(token) if token else "", token)
        return user if active else None


def _parse_xoauth2(blob: bytes) -> tuple[str, str]:
    user, token = "", ""
    for part in blob.decode("utf-8", "replace").split("\x01"):
        if part.startswith("user="):
            user = part[5:]
        elif part.lower().startswith("auth=bearer "):
            token = part[12:]
    return user, token


class IntrospectingServer(RecordingServer):
    """A `RecordingServer` offering only XOAUTH2, checked by introspection.

    introspection_endpoint  the provider's RFC 7662 endpoint.
    Other keyword arguments as for `RecordingServer` (``oauth`` excepted).
    """

    def __init__(self, introspection_endpoint: str, **kwargs: Any) -> None:
        self.introspect = introspector(introspection_endpoint)
        self.auths: list[tuple[str, bool, str]] = []
        self.tokens: list[str] = []
        self._auth_lock = threading.Lock()
        kwargs.setdefault("auth_mechanisms", ["XOAUTH2"])
        kwargs.setdefault("auth_require_tls", False)
        super().__init__(oauth=("-", "-"), **kwargs)
        self._controller.handler = _IntrospectingHandler(self)

    def _record(self, user: str, active: bool, fingerprint: str, token: str) -> None:
        with self._auth_lock:
            self.auths.append((user, active, fingerprint))
            if token:
                self.tokens.append(token)

    def auth_log(self) -> list[tuple[str, bool, str]]:
        with self._auth_lock:
            return list(self.auths)
