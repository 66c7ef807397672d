"""AUTH only with a mechanism the server offered after TLS; OAUTHBEARER
(RFC 7628) where the server offers it and not XOAUTH2; a mechanism the
server does not offer is SMTPB_ERR_AUTH at once, naming what it offers,
and the session ends with QUIT."""

from __future__ import annotations

import base64

import pytest

from conftest import AUTH, configure, expect_error, message
from servers import Script, ScriptedServer

OAUTH_USER, TOKEN = "alice@example.test", "ya29.bearer-token-123"
CAPS = ["PIPELINING", "8BITMIME"]


def plaintext_auth(client, server, **keys):
    configure(client, server, auth=True, SMTPAllowPlaintextAuth=True, **keys)


def auth_lines(server):
    return [line.text for line in server.lines if line.verb == "AUTH" or line.verb is None]


def test_oauthbearer_is_used_where_the_server_offers_only_that(client):
    with ScriptedServer(Script(ehlo_caps=CAPS + ["AUTH OAUTHBEARER PLAIN"])) as server:
        plaintext_auth(client, server, SMTPAuthModel="OAuth2")
        client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN)
        status = client.send(message(user="emp-42"))
        assert status["state"] == "sent"
        [line] = auth_lines(server)
        verb, mechanism, payload = line.split(" ")
        assert mechanism == "OAUTHBEARER"
        decoded = base64.b64decode(payload).decode()
        assert decoded == f"n,a={OAUTH_USER},\x01host=127.0.0.1\x01port={server.port}\x01auth=Bearer {TOKEN}\x01\x01"


def test_xoauth2_is_preferred_when_both_are_offered(client):
    with ScriptedServer(Script(ehlo_caps=CAPS + ["AUTH OAUTHBEARER XOAUTH2"])) as server:
        plaintext_auth(client, server, SMTPAuthModel="OAuth2")
        client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN)
        client.send(message(user="emp-42"))
        [line] = auth_lines(server)
        assert line.split(" ")[1] == "XOAUTH2"


def test_oauthbearer_refusal_answers_the_error_challenge_and_needs_credentials(client):
    challenge = base64.b64encode(b'{"status":"invalid_token","scope":"mail"}').decode()
    script = Script(ehlo_caps=CAPS + ["AUTH OAUTHBEARER"],
                    replies={"AUTH": [f"334 {challenge}", "535 5.7.8 token refused"]})
    with ScriptedServer(script) as server:
        plaintext_auth(client, server, SMTPAuthModel="OAuth2")
        client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN)
        error = expect_error(AUTH, client.send, message(user="emp-42"))
        assert "invalid_token" in error.message and "OAUTHBEARER" in error.message
        assert TOKEN not in error.message
        assert error.status["needs"] == "credentials"
        # RFC 7628 §3.2.3: the client answers the error challenge with %x01.
        assert auth_lines(server)[1] == base64.b64encode(b"\x01").decode()
        assert server.messages == []


@pytest.mark.parametrize("offered", [["AUTH PLAIN LOGIN"], []])
def test_oauth2_without_xoauth2_or_oauthbearer_is_auth_error_at_once(client, offered):
    with ScriptedServer(Script(ehlo_caps=CAPS + offered)) as server:
        plaintext_auth(client, server, SMTPAuthModel="OAuth2")
        client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN)
        error = expect_error(AUTH, client.send, message(user="emp-42"))
        assert "XOAUTH2 or OAUTHBEARER" in error.message
        assert ("AUTH PLAIN LOGIN" if offered else "no AUTH mechanism") in error.message
        assert error.status["smtp_code"] is None
        # Nothing was tried; the session ended politely.
        assert "AUTH" not in server.commands(1)
        assert server.commands(1)[-1] == "QUIT"


def test_password_without_plain_or_login_is_auth_error_naming_what_is_offered(client):
    with ScriptedServer(Script(ehlo_caps=CAPS + ["AUTH CRAM-MD5 XOAUTH2"])) as server:
        plaintext_auth(client, server)
        client.credentials_set(None, "alice", "pw-123456")
        error = expect_error(AUTH, client.send, message())
        assert "AUTH CRAM-MD5 XOAUTH2" in error.message and "PLAIN or LOGIN" in error.message
        assert "AUTH" not in server.commands(1)
        assert server.commands(1)[-1] == "QUIT"


def test_mechanisms_offered_only_before_tls_are_not_used(client, ca):
    # AUTH listed in the plaintext EHLO only: after STARTTLS the server offers none.
    context = ca.valid().server_context()
    script = Script(tls_context=context, ehlo_caps=CAPS + ["STARTTLS", "AUTH PLAIN LOGIN"], ehlo_caps_tls=CAPS)
    with ScriptedServer(script) as server:
        configure(client, server, ca=ca, encryption="TLS", auth=True)
        client.credentials_set(None, "alice", "pw-123456")
        error = expect_error(AUTH, client.send, message())
        assert "no AUTH mechanism" in error.message
        assert "AUTH" not in server.commands(1)
        assert server.commands(1)[-1] == "QUIT"


def test_refused_password_ends_the_session_with_quit(client):
    script = Script(ehlo_caps=CAPS + ["AUTH PLAIN"], replies={"AUTH": ["535 5.7.8 bad credentials"]})
    with ScriptedServer(script) as server:
        plaintext_auth(client, server)
        client.credentials_set(None, "alice", "pw-123456")
        expect_error(AUTH, client.send, message())
        assert server.commands(1)[-2:] == ["AUTH", "QUIT"]


def test_missing_starttls_ends_the_session_with_quit(client, ca):
    with ScriptedServer(Script(ehlo_caps=CAPS)) as server:
        configure(client, server, ca=ca, encryption="TLS")
        expect_error(5, client.send, message())
        assert server.commands(1) == ["EHLO", "QUIT"]
