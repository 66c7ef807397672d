"""OAuth2 done by the library (ABI §13), against a real authorization server.

The authorization server is oidc-provider (tests/servers/oidc), driven
through its own login and consent pages as a browser would; the SMTP
server accepts XOAUTH2 only for tokens the provider's introspection
endpoint says are active, so an expired or revoked token really fails.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

import smtpbridge
from conftest import (AUTH, CONFIG, CONNECT, NOT_FOUND, TIMEOUT, expect_error, files_under, message)
from servers import Script, ScriptedServer
from servers.oauth_smtp import IntrospectingServer
from servers.oidc import APP_CLIENT, APP_SECRET, PUBLIC_CLIENT, OidcProvider

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

WAIT_MS = 15_000
USER = "emp-42"
ACCOUNT = "anna"
MAILBOX = "anna@example.test"


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e.get("type") == kind]


def poll(predicate, timeout=10.0, what="a condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as p:
        yield p


@pytest.fixture
def short_provider() -> Iterator[OidcProvider]:
    """Access tokens of 6 s: due for a refresh after 3 s (half their life)."""
    with OidcProvider(access_ttl=SHORT_TTL) as p:
        yield p


#: Seconds a short-lived access token lives.
SHORT_TTL = 6


def unix(rfc3339: str) -> int:
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp())


def refresh_due_at(client: smtpbridge.Client, user: str | None = USER) -> int:
    """When the user's access token is due for a refresh: min(5 min, half its
    lifetime) before it expires (its lifetime from when it was stored)."""
    masked = client.credentials_masked(user)
    expires, stored = unix(masked["expires_at"]), unix(masked["updated_at"])
    return expires - min(300, (expires - stored) // 2)


def wait_until_refresh_due(client: smtpbridge.Client, user: str | None = USER) -> None:
    """Waits (with a deadline) until the library must refresh the token."""
    due = refresh_due_at(client, user)
    poll(lambda: time.time() >= due + 0.1, SHORT_TTL + 5, "the token's refresh margin")


def smtp_for(provider: OidcProvider) -> IntrospectingServer:
    return IntrospectingServer(provider.introspection_endpoint, auth_required=True)


def setup(client: smtpbridge.Client, provider: OidcProvider, server: IntrospectingServer, **extra: Any) -> None:
    keys = {
        "SMTPServer": "127.0.0.1",
        "SMTPServerPort": server.port,
        "SMTPServerEncryption": "None",
        "SMTPAllowPlaintextAuth": True,
        "SMTPConnectionTimeout": 5000,
        "SMTPAuthModel": "OAuth2",
        "SMTPOAuth2Provider": "OpenID",
        "SMTPOAuth2Issuer": provider.issuer,
        "SMTPOAuth2ClientId": PUBLIC_CLIENT,
        "SMTPOAuth2Scopes": "smtp.send offline_access",
        "SMTPSenderEmail": MAILBOX,
    }
    keys.update(extra)
    for key, value in keys.items():
        client.config_set(key, value)


def sign_in(client: smtpbridge.Client, provider: OidcProvider, user: str | None = USER,
            account: str = ACCOUNT) -> dict[str, Any]:
    flow = client.oauth2_begin(None, user, "browser")
    status, page = provider.browser_sign_in(flow["authorize_url"], account)
    assert status == 200 and "You may close this window" in page, page
    return client.oauth2_complete(flow["flow_id"], WAIT_MS)


def host_refresh_token(provider: OidcProvider, scope: str, account: str) -> str:
    """A refresh token a host got itself (as MSAL would): one the provider
    issued to a device sign-in the test runs directly."""
    flow = json.loads(urllib.request.urlopen(urllib.request.Request(
        provider.discovery()["device_authorization_endpoint"],
        data=urllib.parse.urlencode({"client_id": PUBLIC_CLIENT, "scope": scope}).encode()),
        timeout=5).read())
    provider.device_sign_in(flow["user_code"], account)
    status, tokens = provider.token_request({"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                              "client_id": PUBLIC_CLIENT, "device_code": flow["device_code"]})
    assert status == 200 and "refresh_token" in tokens, tokens
    return str(tokens["refresh_token"])


def fast_retries(client: smtpbridge.Client, ms: int = 200) -> None:
    client.config_set("SMTPRetryInitialMs", ms)
    client.config_set("SMTPRetryMaxMs", ms)


# --- configuration --------------------------------------------------------------


def test_oauth2_keys_are_validated_persisted_exported_and_the_secret_never_read_back(tmp_path):
    data = tmp_path / "data"
    with smtpbridge.Client(data) as client:
        assert client.config_get("SMTPOAuth2Provider") == "None"
        assert client.config_get("SMTPOAuth2Flow") == "Interactive"
        assert client.config_get("SMTPOAuth2Tenant") == "organizations"
        client.config_set("SMTPOAuth2Provider", "microsoft")
        assert client.config_get("SMTPOAuth2Issuer") == "https://login.microsoftonline.com/organizations/v2.0"
        assert client.config_get("SMTPOAuth2Scopes") == "https://outlook.office.com/SMTP.Send offline_access"
        client.config_set("SMTPOAuth2Tenant", "contoso.onmicrosoft.com")
        assert client.config_get("SMTPOAuth2Issuer") == "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"
        client.config_set("Backup.SMTPOAuth2Provider", "Google")
        assert client.config_get("Backup.SMTPOAuth2Issuer") == "https://accounts.google.com"
        assert client.config_get("Backup.SMTPOAuth2Scopes") == "https://mail.google.com/"
        e = expect_error(CONFIG, client.config_set, "SMTPOAuth2Provider", "Yahoo")
        assert "SMTPOAuth2Provider" in str(e) and "Microsoft" in str(e)
        e = expect_error(CONFIG, client.config_set, "SMTPOAuth2Flow", "Implicit")
        assert "SMTPOAuth2Flow" in str(e)
        e = expect_error(CONFIG, client.config_set, "SMTPOAuth2Issuer", "http://idp.example.com")
        assert "SMTPOAuth2Issuer" in str(e) and "loopback" in str(e)
        client.config_set("SMTPOAuth2Issuer", "http://127.0.0.1:9/")
        client.config_set("SMTPOAuth2ClientId", "app-1")
        client.config_set("SMTPOAuth2ClientSecret", "very-secret-value-123")
        e = expect_error(CONFIG, client.config_get, "SMTPOAuth2ClientSecret")
        assert "very-secret" not in str(e)
        exported = client.config_export_json()
        assert "very-secret-value-123" not in json.dumps(exported)
        default = next(p for p in exported["profiles"] if p["name"] == "Default")
        assert default["SMTPOAuth2ClientId"] == "app-1"
        assert default["SMTPOAuth2Issuer"] == "http://127.0.0.1:9"
        assert "SMTPOAuth2ClientSecret" not in default
    for path in files_under(data):
        assert b"very-secret-value-123" not in path.read_bytes(), path
    with smtpbridge.Client(data) as client:
        assert client.config_get("SMTPOAuth2ClientId") == "app-1"
        assert client.config_get("SMTPOAuth2Tenant") == "contoso.onmicrosoft.com"


def test_begin_needs_an_oauth2_profile_and_a_known_kind(client, provider):
    with smtp_for(provider) as server:
        e = expect_error(CONFIG, client.oauth2_begin, None, USER, "browser")
        setup(client, provider, server)
        expect_error(1, client.oauth2_begin, None, USER, "implicit")
        client.config_set("SMTPOAuth2Provider", "None")
        e = expect_error(CONFIG, client.oauth2_begin, None, USER, "browser")
        assert "SMTPOAuth2Provider" in str(e)
        expect_error(NOT_FOUND, client.oauth2_complete, "01JDXXXXXXXXXXXXXXXXXXXXXX", 0)
        expect_error(NOT_FOUND, client.oauth2_cancel, "01JDXXXXXXXXXXXXXXXXXXXXXX")


# --- the browser flow ---------------------------------------------------------------


def test_browser_sign_in_through_the_providers_pages_then_mail_goes(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        flow = client.oauth2_begin(None, USER, "browser")
        assert flow["kind"] == "browser" and flow["user_code"] is None
        query = urllib.parse.parse_qs(urllib.parse.urlparse(flow["authorize_url"]).query)
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["code_challenge"][0]) == 43
        assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
        assert query["state"][0]
        expect_error(TIMEOUT, client.oauth2_complete, flow["flow_id"], 0)
        status, page = provider.browser_sign_in(flow["authorize_url"], ACCOUNT)
        assert status == 200 and "You may close this window" in page
        masked = client.oauth2_complete(flow["flow_id"], WAIT_MS)
        assert masked["kind"] == "oauth2"
        assert masked["refreshable"] is True
        assert masked["provider"] == "OpenID"
        assert masked["username"] == MAILBOX  # from the ID token
        assert masked["expires_at"]
        expect_error(NOT_FOUND, client.oauth2_complete, flow["flow_id"], 0)
        assert client.credentials_masked(USER)["refreshable"] is True
        status = client.send(message(user=USER, to=["client@example.com"], subject="signed in"))
        assert status["state"] == "sent"
        [received] = server.wait_for(1)
        assert received.parsed["Subject"] == "signed in"
        assert received.auth_user == MAILBOX
        assert [a[:2] for a in server.auth_log()] == [(MAILBOX, True)]


def test_wrong_state_and_a_second_redirect_are_refused_by_the_loopback_listener(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        flow = client.oauth2_begin(None, USER, "browser")
        redirect = urllib.parse.parse_qs(urllib.parse.urlparse(flow["authorize_url"]).query)["redirect_uri"][0]
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(redirect + "?code=forged-code&state=wrong-state", timeout=5)
        assert bad.value.code == 400
        assert b"state" in bad.value.read()
        # The forged answer did not end the sign-in: the real one still works.
        expect_error(TIMEOUT, client.oauth2_complete, flow["flow_id"], 0)
        status, page = provider.browser_sign_in(flow["authorize_url"], ACCOUNT)
        assert status == 200 and "You may close this window" in page
        masked = client.oauth2_complete(flow["flow_id"], WAIT_MS)
        assert masked["refreshable"] is True
        # One redirect accepted: nothing listens any more.
        with pytest.raises(urllib.error.URLError) as second:
            urllib.request.urlopen(redirect + "?code=again&state=" + urllib.parse.quote(
                urllib.parse.parse_qs(urllib.parse.urlparse(flow["authorize_url"]).query)["state"][0]), timeout=5)
        assert isinstance(second.value.reason, ConnectionRefusedError)


def test_cancel_closes_the_listener_and_stores_nothing(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        flow = client.oauth2_begin(None, USER, "browser")
        redirect = urllib.parse.parse_qs(urllib.parse.urlparse(flow["authorize_url"]).query)["redirect_uri"][0]
        client.oauth2_cancel(flow["flow_id"])
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(redirect, timeout=5)
        expect_error(NOT_FOUND, client.oauth2_complete, flow["flow_id"], 0)
        expect_error(NOT_FOUND, client.credentials_masked, USER)


def test_access_denied_at_the_redirect_is_auth_naming_the_error(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        flow = client.oauth2_begin(None, USER, "browser")
        query = urllib.parse.parse_qs(urllib.parse.urlparse(flow["authorize_url"]).query)
        url = query["redirect_uri"][0] + "?" + urllib.parse.urlencode(
            {"error": "access_denied", "state": query["state"][0]})
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200
        e = expect_error(AUTH, client.oauth2_complete, flow["flow_id"], WAIT_MS)
        assert "access_denied" in str(e)


# --- the device flow ----------------------------------------------------------------


def test_device_flow_completed_on_the_providers_pages(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        flow = client.oauth2_begin(None, "emp-7", "device")
        assert flow["kind"] == "device" and flow["authorize_url"] is None
        assert flow["verification_uri"] == f"{provider.issuer}/device"
        assert flow["user_code"] and flow["interval"] >= 1
        expect_error(TIMEOUT, client.oauth2_complete, flow["flow_id"], 0)
        provider.device_sign_in(flow["user_code"], "bob")
        masked = client.oauth2_complete(flow["flow_id"], 30_000)
        assert masked["username"] == "bob@example.test" and masked["refreshable"] is True
        client.send(message(user="emp-7", subject="device"))
        [received] = server.wait_for(1)
        assert received.auth_user == "bob@example.test"
        grants = provider.stats()["grant_types"]
        # Polled at the interval (5 s by default), not in a tight loop.
        assert grants["urn:ietf:params:oauth:grant-type:device_code"] <= 4, grants


# --- refresh ----------------------------------------------------------------------


def test_a_token_that_expires_between_two_sends_of_a_pooled_session_is_refreshed(client, short_provider):
    """The one test that waits for a token's refresh margin on the wall clock,
    end to end against the provider; the margin rule itself (5 minutes, or
    half a short lifetime) is tested in the library with a test clock."""
    provider = short_provider
    with smtp_for(provider) as server:
        setup(client, provider, server)
        sign_in(client, provider)
        provider.reset_stats()
        client.send(message(user=USER, subject="first"))
        assert provider.stats()["token_requests"] == 0  # fresh: no refresh
        wait_until_refresh_due(client)  # within half its life of its expiry
        client.send(message(user=USER, subject="second"))
        first, second = server.wait_for(2)
        assert provider.stats()["grant_types"] == {"refresh_token": 1}
        auths = server.auth_log()
        assert [a[1] for a in auths] == [True, True]
        assert auths[0][2] != auths[1][2], "the second send used the refreshed token"
        assert client.credentials_masked(USER)["refreshable"] is True


def test_concurrent_sends_of_one_user_refresh_once(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        # A refresh token without an access token: every send needs a refresh.
        client.credentials_set_oauth2_refresh(USER, "", host_refresh_token(
            provider, "openid offline_access profile email smtp.send", ACCOUNT))
        provider.reset_stats()
        results: list[Any] = []

        def send(n: int) -> None:
            results.append(client.send(message(user=USER, subject=f"parallel {n}"))["state"])

        threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == ["sent"] * 6
        server.wait_for(6)
        assert provider.stats()["grant_types"] == {"refresh_token": 1}


def test_a_rotated_refresh_token_survives_a_restart_of_the_client(tmp_path, provider):
    data = tmp_path / "data"
    with smtp_for(provider) as server:
        with smtpbridge.Client(data) as client:
            setup(client, provider, server)
            sign_in(client, provider)
            assert client.send(message(user=USER, subject="signed in"))["state"] == "sent"
        provider.reset_stats()
        for n in range(3):
            # The access token stops working (its grant lives on): the send
            # refreshes, in a new process each time.
            assert provider.forget_access_token(server.tokens[-1])
            with smtpbridge.Client(data) as client:
                status = client.send(message(user=USER, subject=f"after restart {n}"))
                assert status["state"] == "sent", status
        server.wait_for(4)
        # Each send refreshed, each time with the token the provider
        # rotated the time before: a reused one would be refused.
        assert provider.stats()["grant_types"] == {"refresh_token": 3}
        assert [active for _, active, _ in server.auth_log()] == [True] + [False, True] * 3


def test_a_revoked_grant_needs_credentials_and_a_new_sign_in_releases_the_messages(client, short_provider):
    provider = short_provider
    recorder = Recorder()
    client.set_event_callback(recorder)
    with smtp_for(provider) as server:
        setup(client, provider, server)
        fast_retries(client, 60_000)
        sign_in(client, provider)
        assert provider.revoke_account(ACCOUNT) >= 1
        id = client.enqueue(message(user=USER, subject="held"))
        deferred = poll(lambda: (s := client.status(id))["state"] == "deferred" and s, 10, "deferred")
        assert deferred["needs"] == "credentials"
        assert "invalid_grant" in deferred["error"]
        assert deferred["advice"]["key"] == "oauth2_refresh_failed"
        poll(lambda: recorder.of_type("credentials_needed"), 5, "credentials_needed")
        [needed] = recorder.of_type("credentials_needed")
        assert needed["user_id"] == USER
        assert server.messages == []
        start = time.monotonic()
        sign_in(client, provider)
        sent = client.wait(id, WAIT_MS)
        assert sent["state"] == "sent" and sent["needs"] is None
        assert time.monotonic() - start < 10  # released at once, not after the 60 s backoff
        [received] = server.wait_for(1)
        assert received.parsed["Subject"] == "held"


def test_a_token_the_server_refuses_is_refreshed_once_and_the_send_retried(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        sign_in(client, provider)
        client.send(message(user=USER, subject="first"))
        [token] = server.tokens
        # The token stops working before its expiry (as after a password
        # reset at the provider); the grant and refresh token live on.
        assert provider.forget_access_token(token)
        client.config_set("SMTPHeloName", "other.example")  # no pooled session to reuse
        provider.reset_stats()
        status = client.send(message(user=USER, subject="retried"))
        assert status["state"] == "sent" and status["attempts"] == 1
        assert provider.stats()["grant_types"] == {"refresh_token": 1}
        assert [a[1] for a in server.auth_log()] == [True, False, True]
        assert server.wait_for(2)[1].parsed["Subject"] == "retried"


def test_an_unreachable_token_endpoint_defers_then_the_message_goes_when_it_is_back(client, short_provider):
    provider = short_provider
    with smtp_for(provider) as server:
        setup(client, provider, server)
        fast_retries(client, 60_000)
        sign_in(client, provider)
        provider.stop()
        try:
            id = client.enqueue(message(user=USER, subject="deferred"))
            deferred = poll(lambda: (s := client.status(id))["state"] == "deferred" and s, 10, "deferred")
            assert deferred["error_code"] == CONNECT
            assert deferred["needs"] is None
            assert "127.0.0.1" in deferred["error"]
        finally:
            provider.start()
        client.retry(id)
        sent = client.wait(id, WAIT_MS)
        assert sent["state"] == "sent"
        server.wait_for(1)


def test_set_oauth2_refresh_with_a_host_held_refresh_token(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        expect_error(1, client.credentials_set_oauth2_refresh, USER, MAILBOX, "")
        client.credentials_set_oauth2_refresh(USER, "", host_refresh_token(
            provider, "openid offline_access profile email smtp.send", "carol"))
        masked = client.credentials_masked(USER)
        assert masked["refreshable"] is True and masked["has_secret"] is False
        assert client.send(message(user=USER, subject="msal"))["state"] == "sent"
        [received] = server.wait_for(1)
        assert received.auth_user == "carol@example.test"  # the username came from the ID token
        assert client.credentials_masked(USER)["username"] == "carol@example.test"
        # One the provider does not know: the send finds out, and says so
        # without the token.
        client.credentials_set_oauth2_refresh("emp-9", MAILBOX, "not-a-real-refresh-token")
        e = expect_error(3, client.send, message(user="emp-9"))
        assert "invalid_grant" in str(e) and "not-a-real-refresh-token" not in str(e)


def test_test_connection_refreshes_and_reports_oauth2(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        # A refresh token without an access token: a refresh is due at once.
        client.credentials_set_oauth2_refresh(USER, "", host_refresh_token(
            provider, "openid offline_access profile email smtp.send", ACCOUNT))
        provider.reset_stats()
        report = client.test_connection(None, USER)
        assert report["ok"] is True
        assert report["oauth2"]["refreshed"] is True
        assert unix(report["oauth2"]["expires_at"]) > time.time()
        # The refresh asked for the scopes of the original grant: no scope
        # parameter at all.
        assert provider.stats()["tokens"] == [{"grant_type": "refresh_token", "scope": None}]
        report = client.test_connection(None, USER)
        assert report["ok"] is True and report["oauth2"]["refreshed"] is False  # fresh now
        assert provider.stats()["token_requests"] == 1


def test_tokens_shorter_than_10_minutes_are_not_refreshed_for_every_session(tmp_path):
    """A 2-minute token is refreshed in its last minute (half its life), not at
    once because it is under the 5-minute margin."""
    with OidcProvider(access_ttl=120) as provider, smtp_for(provider) as server:
        data = tmp_path / "data"
        with smtpbridge.Client(data) as client:
            setup(client, provider, server)
            sign_in(client, provider)
            assert refresh_due_at(client) >= time.time() + 55
        provider.reset_stats()
        for n in range(3):  # a new client, so a new session, each time
            with smtpbridge.Client(data) as client:
                assert client.send(message(user=USER, subject=f"session {n}"))["state"] == "sent"
                assert client.test_connection(None, USER)["oauth2"]["refreshed"] is False
        server.wait_for(3)
        assert provider.stats()["token_requests"] == 0
        assert len({token for _, _, token in server.auth_log()}) == 1


def test_a_host_refresh_token_with_fewer_scopes_is_refreshed_with_the_original_grant(client, provider):
    """A refresh token the host got for ``offline_access smtp.send`` alone: the
    refresh sends no scope (RFC 6749 §6: the scopes originally granted), so
    the provider does not refuse it with invalid_scope."""
    with smtp_for(provider) as server:
        setup(client, provider, server, SMTPOAuth2Scopes="smtp.send offline_access openid")
        client.credentials_set_oauth2_refresh(USER, "dora@example.test", host_refresh_token(
            provider, "offline_access smtp.send", "dora"))
        provider.reset_stats()
        assert client.send(message(user=USER, subject="fewer scopes"))["state"] == "sent"
        [received] = server.wait_for(1)
        assert received.auth_user == "dora@example.test"
        stats = provider.stats()
        assert stats["tokens"] == [{"grant_type": "refresh_token", "scope": None}]
        assert [active for _, active, _ in server.auth_log()] == [True]


def test_smtp_auth_switched_off_for_a_signed_in_user_is_not_a_refresh_or_a_new_sign_in(client, provider):
    """535 5.7.139 answered to the library's own token: advice
    smtp_auth_disabled, no refresh, no ``needs``, no credentials_needed."""
    recorder = Recorder()
    client.set_event_callback(recorder)
    reply = "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."
    with ScriptedServer(Script(replies={"AUTH": [reply] * 5}, ehlo_caps=["AUTH XOAUTH2"])) as server:
        setup(client, provider, server)
        sign_in(client, provider)
        provider.reset_stats()
        id = client.enqueue(message(user=USER, subject="auth off"))
        status = client.wait(id, WAIT_MS)
        assert server.commands().count("AUTH") == 1
    assert status["state"] == "failed" and status["error_code"] == AUTH
    assert status["needs"] is None
    assert status["advice"]["key"] == "smtp_auth_disabled"
    assert provider.stats()["token_requests"] == 0
    assert recorder.of_type("credentials_needed") == []


# --- sign-in parameters and refresh tokens --------------------------------------------


def test_browser_sign_in_asks_select_account_not_consent(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        provider.reset_stats()
        flow = client.oauth2_begin(None, USER, "browser")
        query = urllib.parse.parse_qs(urllib.parse.urlparse(flow["authorize_url"]).query)
        assert query["prompt"] == ["select_account"]
        status, page = provider.browser_sign_in(flow["authorize_url"], ACCOUNT)
        assert status == 200, page
        masked = client.oauth2_complete(flow["flow_id"], WAIT_MS)
        assert masked["refreshable"] is True and masked["advice"] is None
        [authorize] = provider.stats()["authorize"]
        assert authorize["prompt"] == "select_account"
        assert authorize["scope"].split() == ["smtp.send", "offline_access", "openid", "profile", "email"]


def test_openid_default_scopes_ask_for_a_refresh_token(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server)
        client.config_set("SMTPOAuth2Scopes", "")  # the default
        assert client.config_get("SMTPOAuth2Scopes") == "openid offline_access"
        provider.reset_stats()
        masked = sign_in(client, provider)
        assert masked["refreshable"] is True and masked["advice"] is None
        [authorize] = provider.stats()["authorize"]
        assert {"openid", "offline_access"} <= set(authorize["scope"].split())
        status, tokens = provider.token_request({"grant_type": "refresh_token", "client_id": PUBLIC_CLIENT,
                                                  "refresh_token": "not-this-one"})
        assert status == 400  # the provider checks refresh tokens: the stored one is real
        assert client.credentials_masked(USER)["provider"] == "OpenID"


@pytest.mark.parametrize("strict", [False, True], ids=["no-offline_access", "provider-drops-it"])
def test_a_sign_in_without_a_refresh_token_says_not_refreshable(client, strict):
    """Without offline_access in SMTPOAuth2Scopes, or with a provider that drops
    it (OpenID Connect Core §11 without prompt=consent), the sign-in completes
    with refreshable false and the advice not_refreshable."""
    with OidcProvider(offline_access_needs_consent=strict) as provider, smtp_for(provider) as server:
        setup(client, provider, server, SMTPOAuth2Scopes="smtp.send offline_access" if strict else "smtp.send")
        masked = sign_in(client, provider)
        assert masked["refreshable"] is False
        assert masked["advice"]["key"] == "not_refreshable"
        assert "offline_access" in masked["advice"]["text"] and "SMTPOAuth2Scopes" in masked["advice"]["text"]
        assert client.credentials_masked(USER)["refreshable"] is False
        # The access token still works until it expires.
        assert client.send(message(user=USER, subject="one token"))["state"] == "sent"
        assert [active for _, active, _ in server.auth_log()] == [True]


# --- client credentials --------------------------------------------------------------


def test_client_credentials_app_token_for_the_shared_credential_is_cached(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server, SMTPOAuth2Flow="ClientCredentials", SMTPOAuth2ClientId=APP_CLIENT,
              SMTPOAuth2Scopes="smtp.send")
        e = expect_error(3, client.send, message())
        assert "SMTPOAuth2ClientSecret" in str(e)
        client.config_set("SMTPOAuth2ClientSecret", APP_SECRET)
        e = expect_error(CONFIG, client.oauth2_begin, None, None, "browser")
        provider.reset_stats()
        # No SMTPUsername: the XOAUTH2 user is the message's sender.
        assert client.send(message(subject="app 0"))["state"] == "sent"
        assert client.send(message(subject="app 1", **{"from": "office@example.test"}))["state"] == "sent"
        report = client.test_connection(None, None)  # as SMTPSenderEmail
        assert report["ok"] is True
        client.config_set("SMTPUsername", "shared-mailbox@example.test")
        assert client.send(message(subject="app 2"))["state"] == "sent"
        received = server.wait_for(3)
        assert [m.parsed["Subject"] for m in received] == ["app 0", "app 1", "app 2"]
        assert provider.stats()["grant_types"] == {"client_credentials": 1}
        assert [(user, active) for user, active, _ in server.auth_log()] == [
            ("anna@firm.example", True), ("office@example.test", True), (MAILBOX, True),
            ("shared-mailbox@example.test", True)]


def test_client_credentials_test_connection_without_a_mailbox_names_the_keys(client, provider):
    with smtp_for(provider) as server:
        setup(client, provider, server, SMTPOAuth2Flow="ClientCredentials", SMTPOAuth2ClientId=APP_CLIENT,
              SMTPOAuth2Scopes="smtp.send")
        client.config_set("SMTPOAuth2ClientSecret", APP_SECRET)
        client.config_set("SMTPSenderEmail", "")
        e = expect_error(3, client.test_connection, None, None)
        assert "SMTPUsername" in e.message and "SMTPSenderEmail" in e.message
        assert e.report["stage"] == "auth" and server.auth_log() == []


# --- no secret anywhere -------------------------------------------------------------


def test_no_token_code_or_secret_in_data_dir_last_error_or_the_logs(tmp_path, short_provider):
    provider = short_provider
    data = tmp_path / "data"
    with smtp_for(provider) as server:
        with smtpbridge.Client(data) as client:
            setup(client, provider, server, SMTPOAuth2ClientId=APP_CLIENT)
            client.config_set("SMTPOAuth2ClientSecret", APP_SECRET)
            sign_in(client, provider)
            client.send(message(user=USER, subject="one"))
            client.send(message(user=USER, subject="two"))
            provider.revoke_account(ACCOUNT)
            client.config_set("SMTPRetryInitialMs", 60_000)
            id = client.enqueue(message(user=USER, subject="held"))
            poll(lambda: client.status(id)["state"] == "deferred", 10, "deferred")
            error_text = json.dumps(client.status(id)) + json.dumps(client.credentials_masked(USER))
            try:
                client.send(message(user=USER))
            except smtpbridge.SmtpBridgeError as e:
                error_text += str(e)
        secrets = set(provider.secrets()) | set(server.tokens) | {APP_SECRET}
        assert len(server.tokens) >= 2
        blobs = [(str(p), p.read_bytes()) for p in files_under(data)]
        blobs.append(("provider log", provider.log_text().encode()))
        blobs.append(("errors and statuses", error_text.encode()))
        for name, blob in blobs:
            for secret in secrets:
                assert secret.encode() not in blob, f"a token or secret is in {name}"


# --- done when ------------------------------------------------------------------------


def test_done_when_the_minimal_keys_and_one_sign_in_send_for_months(tmp_path, short_provider):
    """Only the issue's keys and one sign-in; then many token lifetimes,
    restarts included, with no further host code."""
    provider = short_provider
    data = tmp_path / "data"
    with smtp_for(provider) as server:
        with smtpbridge.Client(data) as client:
            for key, value in {
                "SMTPServer": "127.0.0.1", "SMTPServerPort": server.port, "SMTPServerEncryption": "None",
                "SMTPAllowPlaintextAuth": True, "SMTPAuthModel": "OAuth2", "SMTPOAuth2Provider": "OpenID",
                "SMTPOAuth2Issuer": provider.issuer, "SMTPOAuth2ClientId": PUBLIC_CLIENT,
                "SMTPOAuth2Scopes": "smtp.send offline_access",
            }.items():
                client.config_set(key, value)
            sign_in(client, provider)
        for n in range(4):
            with smtpbridge.Client(data) as client:
                ids = [client.enqueue(message(user=USER, subject=f"month {n} #{k}")) for k in range(2)]
                for id in ids:
                    assert client.wait(id, WAIT_MS)["state"] == "sent"
        received = server.wait_for(8)
        assert sorted(m.parsed["Subject"] for m in received) == sorted(
            f"month {n} #{k}" for n in range(4) for k in range(2))
        assert all(active for _, active, _ in server.auth_log())


# --- HTTPS with the profile's trust settings ------------------------------------------


class _DiscoveryOverTls:
    """An HTTPS server on 127.0.0.1 serving one discovery document."""

    def __init__(self, cert, document: dict[str, Any]) -> None:
        import http.server
        import ssl

        body = json.dumps(document).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200 if self.path == "/.well-known/openid-configuration" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = cert.server_context().wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_discovery_over_https_uses_smtpcafile_and_a_bad_certificate_is_tls(client, provider, ca):
    document = dict(provider.discovery())
    tls = _DiscoveryOverTls(ca.valid(), document)
    try:
        with smtp_for(provider) as server:
            setup(client, provider, server, SMTPOAuth2Issuer=f"https://127.0.0.1:{tls.port}")
            e = expect_error(5, client.oauth2_begin, None, USER, "browser")  # the test CA is not trusted
            assert "127.0.0.1" in str(e)
            client.config_set("SMTPCaFile", str(ca.ca_pem_path))
            flow = client.oauth2_begin(None, USER, "browser")
            assert flow["authorize_url"].startswith(document["authorization_endpoint"])
            client.oauth2_cancel(flow["flow_id"])
    finally:
        tls.close()
