"""A real OpenID Connect authorization server for the tests, and a browser.

`OidcProvider` runs ``tests/servers/oidc/provider.mjs`` (oidc-provider 9,
a certified OpenID implementation, installed by ``npm ci`` in
``tests/servers/oidc``) on 127.0.0.1 with an ephemeral port. It has the
authorization code flow with PKCE, the device flow, client credentials,
refresh-token rotation, introspection and revocation, and its own
development login and consent pages.

Clients it knows (see provider.mjs):

- ``smtpbridge-public``: public native client, loopback redirect on any port,
  code + refresh + device grants.
- ``smtpbridge-app`` / ``APP_SECRET``: confidential, client credentials too.
- ``resource-server`` / ``RESOURCE_SECRET``: for introspection (the SMTP
  server and Graph stand-ins use it).

`Browser` drives the provider's own pages over HTTP with a cookie jar as a
browser would: `browser_sign_in(authorize_url, account)` follows the
authorize URL through login and consent to the redirect (the library's
loopback listener) and returns that final page; `device_sign_in(user_code,
account)` completes a device flow.

The provider process is stopped and started again with `stop()` /
`start()` (same port; its grants and tokens survive in a state file), to
take the token endpoint away and bring it back.
"""

from __future__ import annotations

import base64
import html.parser
import http.cookiejar
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent / "oidc"

PUBLIC_CLIENT = "smtpbridge-public"
APP_CLIENT = "smtpbridge-app"
APP_SECRET = "app-secret-0123456789abcdef"
RESOURCE_CLIENT = "resource-server"
RESOURCE_SECRET = "resource-secret-0123456789abcdef"

#: The longest the provider may take to start or stop.
START_TIMEOUT_S = 20.0


def require_node() -> str:
    """The ``node`` executable, or a clear failure naming what is missing."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node (Node.js 20 or later) is not installed: .ci/run installs it")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(
            f"oidc-provider is not installed: run `npm ci` in {HERE} (.ci/run does)"
        )
    return node


class OidcProvider:
    """oidc-provider on 127.0.0.1, started in the constructor.

    access_ttl              seconds an access token lives (short for tests).
    client_credentials_ttl  seconds an app-only token lives.
    device_ttl              seconds a device code lives.
    offline_access_needs_consent
                            drop offline_access from a sign-in without
                            prompt=consent, as OpenID Connect Core §11 says
                            (by default a refresh token comes for
                            offline_access alone, as from Microsoft).

    Attributes: ``port``, ``issuer``, ``log`` (the lines the process wrote,
    stdout and stderr), ``token_endpoint``, ``introspection_endpoint``.
    """

    def __init__(self, *, access_ttl: int = 3600, client_credentials_ttl: Optional[int] = None,
                 device_ttl: int = 600, offline_access_needs_consent: bool = False) -> None:
        self._node = require_node()
        self._dir = Path(tempfile.mkdtemp(prefix="smtpb-oidc-"))
        self._options: dict[str, Any] = {
            "port": 0,
            "access_ttl": access_ttl,
            "client_credentials_ttl": client_credentials_ttl or access_ttl,
            "device_ttl": device_ttl,
            "offline_access_needs_consent": offline_access_needs_consent,
            "state_file": str(self._dir / "state.json"),
        }
        self.log: list[str] = []
        self._lock = threading.Lock()
        self._process: Optional[subprocess.Popen[str]] = None
        self.port = 0
        self.issuer = ""
        self.start()

    # --- process ---------------------------------------------------------

    def start(self) -> None:
        """Start the process (again, on the same port after a `stop`)."""
        if self._process is not None:
            return
        if self.port:
            self._options["port"] = self.port
        process = subprocess.Popen(
            [self._node, str(HERE / "provider.mjs"), json.dumps(self._options)],
            cwd=HERE,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._process = process
        ready = threading.Event()
        info: dict[str, Any] = {}

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip("\n")
                with self._lock:
                    self.log.append(line)
                if not ready.is_set() and line.startswith("{\"port\""):
                    info.update(json.loads(line))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or "port" not in info:
            self.stop()
            raise RuntimeError("oidc-provider did not start: " + "\n".join(self.log[-20:]))
        self.port = info["port"]
        self.issuer = info["issuer"]
        # Wait until it answers discovery.
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self.discovery()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process (its state is kept for `start`). Idempotent."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def close(self) -> None:
        """Stop for good and remove the state file."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "OidcProvider":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.log)

    # --- endpoints -------------------------------------------------------

    def _open(self, request: urllib.request.Request | str, timeout: float = 10.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def discovery(self) -> dict[str, Any]:
        status, body = self._open(f"{self.issuer}/.well-known/openid-configuration", timeout=2.0)
        if status != 200:
            raise OSError(f"discovery answered {status}")
        return json.loads(body)

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.issuer}/token/introspection"

    def introspect(self, token: str) -> dict[str, Any]:
        """The introspection answer for ``token`` (as the resource server)."""
        basic = base64.b64encode(f"{RESOURCE_CLIENT}:{RESOURCE_SECRET}".encode()).decode()
        request = urllib.request.Request(
            self.introspection_endpoint,
            data=urllib.parse.urlencode({"token": token}).encode(),
            headers={"Authorization": f"Basic {basic}",
                     "Content-Type": "application/x-www-form-urlencoded"},
        )
        status, body = self._open(request)
        if status != 200:
            raise RuntimeError(f"introspection answered {status}: {body[:200]!r}")
        return json.loads(body)

    def revoke_account(self, account: str) -> int:
        """Destroy every grant of ``account`` with its tokens; how many."""
        request = urllib.request.Request(
            f"{self.issuer}/test/revoke-account?" + urllib.parse.urlencode({"account": account}),
            data=b"", method="POST")
        status, body = self._open(request)
        assert status == 200, body
        return int(json.loads(body)["revoked"])

    def forget_access_token(self, token: str) -> bool:
        """Make one access token invalid (introspection: inactive), keeping its grant."""
        request = urllib.request.Request(
            f"{self.issuer}/test/forget-token?" + urllib.parse.urlencode({"token": token}), data=b"", method="POST")
        status, body = self._open(request)
        assert status == 200, body
        return bool(json.loads(body)["forgotten"])

    def stats(self) -> dict[str, Any]:
        """``{"token_requests": n, "grant_types": {grant_type: n}, "authorize":
        [{"prompt", "scope"}], "tokens": [{"grant_type", "scope"}]}`` so far:
        the parameters of each authorization and token request (null when
        the request had none)."""
        status, body = self._open(f"{self.issuer}/test/stats")
        assert status == 200, body
        return json.loads(body)

    def secrets(self) -> list[str]:
        """Every token and code value the provider holds (and the client secrets)."""
        status, body = self._open(f"{self.issuer}/test/secrets")
        assert status == 200, body
        doc = json.loads(body)
        return list(doc["secrets"]) + list(doc["client_secrets"])

    def reset_stats(self) -> None:
        status, body = self._open(urllib.request.Request(f"{self.issuer}/test/reset-stats", data=b"",
                                                         method="POST"))
        assert status == 200, body

    def token_request(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """POST ``form`` to the token endpoint; (status, JSON)."""
        request = urllib.request.Request(
            self.token_endpoint, data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        status, body = self._open(request)
        return status, json.loads(body)

    # --- the user's side ----------------------------------------------

    def browser_sign_in(self, authorize_url: str, account: str, timeout: float = 15.0) -> "tuple[int, str]":
        """Sign ``account`` in through the provider's own pages.

        Follows ``authorize_url`` (as a browser: cookies, redirects), fills
        in the login page, confirms consent, and follows the final redirect
        to the client's redirect URI. Returns (status, page text) of that
        final page.
        """
        return Browser(timeout).sign_in(authorize_url, account)

    def device_sign_in(self, user_code: str, account: str, timeout: float = 15.0) -> str:
        """Complete a device flow for ``user_code`` as ``account``; the final page."""
        browser = Browser(timeout)
        status, page, url = browser.get(f"{self.issuer}/device")
        for _ in range(8):
            forms = _forms(page, url)
            if not forms:
                break
            form = forms[0]
            fields = dict(form["fields"])
            if "user_code" in fields:
                fields["user_code"] = user_code
            if "login" in fields:
                fields["login"] = account
                fields["password"] = "any"
            fields.pop("abort", None)
            status, page, url = browser.post(form["action"], fields)
        if status != 200 or "Sign-in Success" not in page:
            raise RuntimeError(f"device sign-in did not finish (HTTP {status}): {page[:300]}")
        return page


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Just enough of a browser: cookies, redirects followed by hand, forms."""

    def __init__(self, timeout: float = 15.0) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())
        self.timeout = timeout
        self.visited: list[str] = []

    def _fetch(self, url: str, data: Optional[bytes]) -> tuple[int, str, str]:
        for _ in range(20):
            self.visited.append(url)
            request = urllib.request.Request(url, data=data)
            if data is not None:
                request.add_header("Content-Type", "application/x-www-form-urlencoded")
            try:
                response = self.opener.open(request, timeout=self.timeout)
                status, headers, body = response.status, response.headers, response.read()
            except urllib.error.HTTPError as error:
                status, headers, body = error.code, error.headers, error.read()
            if status in (301, 302, 303, 307, 308) and headers.get("Location"):
                url = urllib.parse.urljoin(url, headers["Location"])
                if status in (301, 302, 303):
                    data = None
                continue
            return status, body.decode("utf-8", "replace"), url
        raise RuntimeError("too many redirects")

    def get(self, url: str) -> tuple[int, str, str]:
        return self._fetch(url, None)

    def post(self, url: str, fields: dict[str, str]) -> tuple[int, str, str]:
        return self._fetch(url, urllib.parse.urlencode(fields).encode())

    def sign_in(self, authorize_url: str, account: str) -> tuple[int, str]:
        status, page, url = self.get(authorize_url)
        for _ in range(6):
            if not url.startswith(authorize_url.split("/auth")[0]):
                return status, page  # left the provider: the redirect URI's page
            forms = _forms(page, url)
            if not forms:
                raise RuntimeError(f"no form on the provider's page (HTTP {status}): {page[:300]}")
            fields = dict(forms[0]["fields"])
            if "login" in fields:
                fields["login"] = account
                fields["password"] = "any"
            status, page, url = self.post(forms[0]["action"], fields)
        raise RuntimeError("sign-in did not reach the redirect URI")


class _FormParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: Optional[dict[str, Any]] = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, Optional[str]]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = {"action": a.get("action", ""), "id": a.get("id", ""), "fields": {}}
            self.forms.append(self._current)
        elif tag == "input" and a.get("name"):
            target = self._current
            if a.get("form"):
                target = next((f for f in self.forms if f["id"] == a["form"]), target)
            if target is not None:
                target["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _forms(page: str, base: str) -> list[dict[str, Any]]:
    parser = _FormParser()
    parser.feed(page)
    for form in parser.forms:
        form["action"] = urllib.parse.urljoin(base, form["action"] or base)
    return parser.forms


def token_fingerprint(token: str) -> str:
    """A short non-reversible name for a token, for logs and assertions."""
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()[:12]


def env_has_node() -> bool:
    return shutil.which("node") is not None and os.path.isdir(HERE / "node_modules")
