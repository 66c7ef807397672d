"""Honest failures (ABI §20 "Replies", "Log file", the credential-store
sentence of "Damage is never silent"; issue 21): a reply of a class its
command never gets is TRANSIENT and quoted, an unusable SMTPLogFile is
CONFIG at the setting, a credential store with out-of-range parameters is
CREDENTIALS at once, and a token endpoint's huge expires_in saturates.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

import smtpbridge
from conftest import CONFIG, CREDENTIALS, REJECTED, TRANSIENT, configure, expect_error, message
from servers import RecordingServer, Script, ScriptedServer
from test_bounded_inputs import QUICK_S, within

WAIT_S = 5.0


def poll(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.02)


# --- replies of an unexpected class ---------------------------------------------------


def scripted(client: smtpbridge.Client, script: Script) -> ScriptedServer:
    server = ScriptedServer(script)
    configure(client, server, timeout_ms=2000)
    return server


@pytest.mark.parametrize("pipelining", [True, False])
def test_250_to_data_is_transient_quoted_and_the_session_is_not_reused(client, pipelining):
    caps = None if pipelining else ["8BITMIME", "SMTPUTF8"]
    with scripted(client, Script(ehlo_caps=caps, replies={"DATA": ["250 2.0.0 OK extra reply"]})) as server:
        e = expect_error(TRANSIENT, client.send, message())
        assert e.message.startswith(
            'the server answered DATA with "250 2.0.0 OK extra reply" where 354 was expected'), e.message
        assert e.status["state"] == "failed" and e.status["error_code"] == TRANSIENT
        assert e.status["smtp_code"] == 250
        assert server.messages == []
        # The session was out of step: the next message gets a new one.
        assert client.send(message(subject="second"))["state"] == "sent"
        [received] = server.wait_for(1)
        assert received.parsed["subject"] == "second"
        assert received.connection == 2


def test_354_to_rcpt_is_transient_naming_the_recipient(client):
    script = Script(rcpt_replies={"b@example.com": "354 go ahead"})
    with scripted(client, script) as server:
        e = expect_error(TRANSIENT, client.send, message(to=["a@example.com", "b@example.com"]))
        assert e.message.startswith(
            'the server answered RCPT TO:<b@example.com> with "354 go ahead" where 2xx was expected'), e.message
        assert server.messages == []


def test_an_odd_reply_to_the_final_dot_is_transient_and_a_possible_duplicate(client):
    with scripted(client, Script(replies={"DOT": ["354 what now"]})) as server:
        e = expect_error(TRANSIENT, client.send, message())
        assert 'the server answered the final dot with "354 what now" where 2xx was expected' in e.message
        assert e.status["possible_duplicate"] is True
        assert len(server.messages) == 1  # the server had the whole message


def test_a_5xx_to_data_stays_rejected(client):
    with scripted(client, Script(replies={"DATA": ["554 5.5.1 no"]})) as server:
        e = expect_error(REJECTED, client.send, message())
        assert e.message == "the server refused DATA: 554 5.5.1 no"
        assert server.messages == []


def test_the_outbox_tries_again_after_an_odd_reply(client):
    client.config_set("SMTPRetryInitialMs", 50)
    with scripted(client, Script(replies={"DATA": ["250 OK"]})) as server:
        id = client.enqueue(message(subject="retried"))
        status = client.wait(id, int(WAIT_S * 1000))
        assert status["state"] == "sent" and status["attempts"] == 2, status
        assert server.wait_for(1)[0].parsed["subject"] == "retried"


# --- SMTPLogFile ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing folder", "/dev/full", "folder", "fifo"])
def test_a_log_file_that_cannot_be_written_is_config_at_the_setting(client, tmp_path, where):
    client.config_set("SMTPLogFile", str(tmp_path / "good.log"))
    if where == "missing folder":
        path, why = tmp_path / "no-such-folder" / "x.log", "cannot open {}: No such file or directory (os error 2)"
    elif where == "/dev/full":
        path, why = Path("/dev/full"), "{} is not a regular file (a character device)"
    elif where == "folder":
        path, why = tmp_path, "{} is not a regular file (a folder)"
    else:
        path = tmp_path / "log.fifo"
        os.mkfifo(path)
        why = "{} is not a regular file (a FIFO)"
    e = expect_error(CONFIG, within, QUICK_S, client.config_set, "SMTPLogFile", str(path))
    assert e.message == "SMTPLogFile: " + why.format(path)
    assert client.config_get("SMTPLogFile") == str(tmp_path / "good.log")
    e = expect_error(CONFIG, client.config_load_json, {"global": {"SMTPLogFile": str(path)}})
    assert str(path) in e.message


def test_a_log_file_that_can_be_opened_gets_the_lines(client, server, tmp_path):
    path = tmp_path / "logs" / "smtpbridge.log"
    path.parent.mkdir()
    configure(client, server)
    client.config_set("SMTPLogFile", str(path))
    client.send(message())
    poll(lambda: path.exists() and " sent (attempt 1)" in path.read_text(), WAIT_S, "'sent' line in the log file")


# --- the credential store's parameters ------------------------------------------------------


@pytest.mark.parametrize("field,value,shown", [
    ("iterations", 4_000_000_000, "iterations 4000000000 is out of range (1 to 10000000)"),
    ("iterations", 10_000_001, "iterations 10000001 is out of range (1 to 10000000)"),
    ("iterations", 0, "iterations 0 is out of range (1 to 10000000)"),
    ("kdf", "scrypt", 'kdf "scrypt" is out of range (pbkdf2-hmac-sha256)'),
])
def test_a_credential_store_out_of_range_is_credentials_at_once(data_dir, field, value, shown):
    with smtpbridge.Client(data_dir) as client:
        client.credentials_set(None, "anna", "pw-kept")
    path = data_dir / "credentials.json"
    good = path.read_text()
    store = json.loads(good)
    store[field] = value
    path.write_text(json.dumps(store))
    started = time.monotonic()
    e = expect_error(CREDENTIALS, smtpbridge.Client, data_dir)
    assert time.monotonic() - started < QUICK_S
    assert e.message == f"the credential store {path} is damaged or was changed: {shown}"
    path.write_text(good)
    with smtpbridge.Client(data_dir) as client:
        assert client.credentials_masked(None)["username"] == "anna"


# --- a token endpoint's expires_in ------------------------------------------------------------


class TokenEndpoint:
    """A loopback OpenID issuer whose token endpoint gives app tokens that
    expire in i64::MAX seconds; counts the token requests."""

    TOKEN = "app-token-never-expires"

    def __init__(self) -> None:
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                base = f"http://127.0.0.1:{self.server.server_port}"
                self.answer({"issuer": base, "token_endpoint": base + "/token",
                             "authorization_endpoint": base + "/authorize"})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                self.answer({"access_token": TokenEndpoint.TOKEN, "token_type": "Bearer",
                             "expires_in": 9223372036854775807})

            def answer(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def test_expires_in_of_i64_max_saturates_and_the_token_is_kept(data_dir, token_endpoint):
    """A refreshed token's expiry is stored saturated (it wrapped to a
    negative time, or panicked where overflow is checked), and the token
    is used until then: one token request for two messages."""
    mailbox = "anna@example.test"
    with RecordingServer(oauth=(mailbox, TokenEndpoint.TOKEN), auth_require_tls=False) as server, \
            smtpbridge.Client(data_dir) as client:
        configure(client, server, auth=True, SMTPAllowPlaintextAuth=True, SMTPAuthModel="OAuth2",
                  SMTPOAuth2Provider="OpenID", SMTPOAuth2Issuer=token_endpoint.issuer,
                  SMTPOAuth2ClientId="app", SMTPOAuth2Scopes="smtp.send")
        client.credentials_set_oauth2_refresh("emp-1", mailbox, "refresh-token-1")
        for n in range(2):
            assert client.send(message(user="emp-1", subject=f"refreshed {n}"))["state"] == "sent"
        assert [m.auth_user for m in server.wait_for(2)] == [mailbox, mailbox]
        assert token_endpoint.requests == 1
    store = json.loads((data_dir / "credentials.json").read_text())
    [entry] = [e for e in store["entries"] if e.get("user_id") == "emp-1"]
    assert entry["expires_at"] == 9223372036854775807
