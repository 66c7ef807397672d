"""AUTH: PLAIN, LOGIN, XOAUTH2, per-user and shared credentials, and no secret
ever in plaintext on the wire or in an error (ABI §1 last_error, §2, §4, §5)."""

from __future__ import annotations

import base64
import json

import pytest

from conftest import AUTH, CREDENTIALS, configure, expect_error, message
from servers import RecordingServer, Script, ScriptedServer

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

USER, PASSWORD = "alice", "Corr3ct-Horse-Battery"
WRONG = "Wr0ng-Horse-Staple-9431"


def tls_server(ca, mode, **options):
    context = ca.valid().server_context()
    if mode == "SSL":
        # aiosmtpd only counts STARTTLS as TLS for AUTH; implicit TLS is TLS all along.
        return RecordingServer(ssl_context=context, auth_require_tls=False, **options)
    return RecordingServer(tls_context=context, require_starttls=True, **options)


def assert_secret_absent(error, secret):
    assert secret not in error.message
    if error.status is not None:
        assert secret not in json.dumps(error.status, ensure_ascii=False)
    if error.report is not None:
        assert secret not in json.dumps(error.report, ensure_ascii=False)


# --- Basic ----------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("mode", ["STARTTLS", "SSL"])
def test_good_password_authenticates(client, ca, mechanism, mode):
    with tls_server(ca, mode, users={USER: PASSWORD}, auth_mechanisms=[mechanism], auth_required=True) as server:
        configure(client, server, ca=ca, encryption=mode, auth=True)
        client.credentials_set(None, USER, PASSWORD)
        status = client.send(message())
        [m] = server.wait_for(1)
    assert m.auth_user == USER
    assert m.tls
    assert status["state"] == "sent"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_wrong_password_is_auth_error_naming_the_user_not_the_password(client, ca, mechanism):
    with tls_server(ca, "STARTTLS", users={USER: PASSWORD}, auth_mechanisms=[mechanism]) as server:
        configure(client, server, ca=ca, encryption="STARTTLS", auth=True)
        client.credentials_set(None, USER, WRONG)
        error = expect_error(AUTH, client.send, message())
        assert server.messages == []
    assert USER in error.message
    assert_secret_absent(error, WRONG)
    assert error.status["state"] == "failed"
    assert error.status["error_code"] == AUTH
    assert WRONG not in client.status(error.status["id"]).__repr__()


def test_auth_over_plaintext_is_refused_before_anything_is_sent(client):
    with ScriptedServer() as server:  # offers AUTH PLAIN LOGIN, no STARTTLS
        configure(client, server, auth=True)
        client.credentials_set(None, USER, PASSWORD)
        error = expect_error(AUTH, client.send, message())
        commands = server.commands()
        lines = server.lines
    assert "AUTH" not in commands and "MAIL" not in commands, commands
    assert set(commands) <= {"EHLO", "QUIT"}, commands
    assert all(PASSWORD not in line.text for line in lines)
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    assert all(encoded not in line.text for line in lines)
    assert_secret_absent(error, PASSWORD)


def test_connection_test_refuses_auth_over_plaintext(client):
    with ScriptedServer() as server:
        configure(client, server, auth=True)
        client.credentials_set(None, USER, PASSWORD)
        error = expect_error(AUTH, client.test_connection)
        assert "AUTH" not in server.commands()
    assert error.report["ok"] is False and error.report["stage"] == "auth"
    assert_secret_absent(error, PASSWORD)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_allow_plaintext_auth_permits_auth_without_tls(client):
    with RecordingServer(users={USER: PASSWORD}, auth_require_tls=False, auth_required=True) as server:
        configure(client, server, auth=True, SMTPAllowPlaintextAuth=True)
        client.credentials_set(None, USER, PASSWORD)
        client.send(message())
        [m] = server.wait_for(1)
    assert m.auth_user == USER and m.tls is False


def test_server_refusing_auth_is_auth_error(client, ca):
    script = Script(tls_context=ca.valid().server_context(),
                    replies={"AUTH": ["535 5.7.8 Authentication credentials invalid"]})
    with ScriptedServer(script) as server:
        configure(client, server, ca=ca, encryption="STARTTLS", auth=True)
        client.credentials_set(None, USER, PASSWORD)
        error = expect_error(AUTH, client.send, message())
        assert "MAIL" not in server.commands()
    assert_secret_absent(error, PASSWORD)


# --- whose credential -------------------------------------------------------------------


@pytest.fixture
def two_users_server(ca):
    with tls_server(ca, "SSL", users={"anna": "pw-anna-111", "bob": "pw-bob-222", "office": "pw-office-333"},
                    auth_required=True) as server:
        yield server


def test_per_user_credentials_follow_the_message_user(client, ca, two_users_server):
    configure(client, two_users_server, ca=ca, encryption="SSL", auth=True)
    client.credentials_set("emp-42", "anna", "pw-anna-111")
    client.credentials_set("emp-7", "bob", "pw-bob-222")
    client.send(message(user="emp-42"))
    client.send(message(user="emp-7"))
    first, second = two_users_server.wait_for(2)
    assert (first.auth_user, second.auth_user) == ("anna", "bob")


def test_shared_credentials_from_keys_ignore_the_message_user(client, ca, two_users_server):
    configure(client, two_users_server, ca=ca, encryption="SSL", auth=True,
              SMTPCredentials="Shared", SMTPUsername="office", SMTPPassword="pw-office-333")
    client.credentials_set("emp-42", "anna", "pw-anna-111")
    client.send(message(user="emp-42"))
    client.send(message(user="emp-without-credential"))
    first, second = two_users_server.wait_for(2)
    assert (first.auth_user, second.auth_user) == ("office", "office")


def test_smtp_username_key_reads_back_but_password_does_not(client):
    client.configure(SMTPUsername="office", SMTPPassword="pw-office-333")
    assert client.config_get("SMTPUsername") == "office"
    try:
        value = client.config_get("SMTPPassword")
    except Exception as error:  # refused: fine, as long as it does not leak
        assert "pw-office-333" not in str(error)
    else:
        assert "pw-office-333" not in value


def test_missing_per_user_credential_is_credentials_error_naming_the_user(client, ca, two_users_server):
    configure(client, two_users_server, ca=ca, encryption="SSL", auth=True)
    client.credentials_set("emp-42", "anna", "pw-anna-111")
    error = expect_error(CREDENTIALS, client.send, message(user="emp-99"))
    assert "emp-99" in error.message
    assert error.status["state"] == "failed" and error.status["error_code"] == CREDENTIALS
    assert two_users_server.messages == []


def test_authentication_none_sends_without_credentials(client):
    with RecordingServer() as server:
        configure(client, server)  # SMTPAuthentication=None
        client.send(message(user="emp-without-credential"))
        assert server.wait_for(1)[0].auth_user is None


# --- OAuth2 ---------------------------------------------------------------------------------

OAUTH_USER, TOKEN = "alice@example.test", "ya29.good-token-abc"


@pytest.fixture
def oauth_server(ca):
    with tls_server(ca, "STARTTLS", oauth=(OAUTH_USER, TOKEN), auth_required=True) as server:
        yield server


def test_xoauth2_with_a_good_token_delivers(client, ca, oauth_server):
    configure(client, oauth_server, ca=ca, encryption="STARTTLS", auth=True, SMTPAuthModel="OAuth2")
    client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN)
    status = client.send(message(user="emp-42"))
    [m] = oauth_server.wait_for(1)
    assert m.auth_user == OAUTH_USER
    assert status["state"] == "sent" and status["needs"] is None


def test_xoauth2_with_a_bad_token_is_auth_error_needing_credentials(client, ca, oauth_server):
    bad = "ya29.expired-token-xyz"
    configure(client, oauth_server, ca=ca, encryption="STARTTLS", auth=True, SMTPAuthModel="OAuth2")
    client.credentials_set_oauth2("emp-42", OAUTH_USER, bad)
    error = expect_error(AUTH, client.send, message(user="emp-42"))
    assert oauth_server.messages == []
    assert error.status["needs"] == "credentials"
    assert error.status["state"] == "failed"
    assert_secret_absent(error, bad)


def test_connection_test_lists_the_auth_mechanisms(client, ca):
    with tls_server(ca, "SSL", users={USER: PASSWORD}) as server:
        configure(client, server, ca=ca, encryption="SSL", auth=True)
        client.credentials_set(None, USER, PASSWORD)
        report = client.test_connection()
    assert report["ok"] is True and report["stage"] == "done"
    assert {"PLAIN", "LOGIN"} <= set(report["auth_mechanisms"])


def test_connection_test_with_a_user_uses_that_users_credential(client, ca):
    with tls_server(ca, "SSL", users={"anna": "pw-anna-111"}) as server:
        configure(client, server, ca=ca, encryption="SSL", auth=True)
        client.credentials_set("emp-42", "anna", "pw-anna-111")
        client.credentials_set(None, "nobody", "wrong-pw-000")
        assert client.test_connection(None, "emp-42")["ok"] is True
        error = expect_error(AUTH, client.test_connection)
    assert error.report["stage"] == "auth"
    assert_secret_absent(error, "wrong-pw-000")


def test_expired_oauth2_token_fails_needing_credentials(client, ca, oauth_server):
    configure(client, oauth_server, ca=ca, encryption="STARTTLS", auth=True, SMTPAuthModel="OAuth2")
    client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN, expires_at=1_000_000)  # 1970
    with pytest.raises(Exception) as info:
        client.send(message(user="emp-42"))
    error = info.value
    assert error.code == CREDENTIALS
    assert error.status["needs"] == "credentials"
    assert oauth_server.messages == []
    assert_secret_absent(error, TOKEN)


def test_new_oauth2_token_works_after_a_refused_one(client, ca, oauth_server):
    configure(client, oauth_server, ca=ca, encryption="STARTTLS", auth=True, SMTPAuthModel="OAuth2")
    client.credentials_set_oauth2("emp-42", OAUTH_USER, "ya29.old-token")
    expect_error(AUTH, client.send, message(user="emp-42"))
    client.credentials_set_oauth2("emp-42", OAUTH_USER, TOKEN)
    assert client.send(message(user="emp-42"))["state"] == "sent"


def test_password_credential_on_an_oauth2_profile_is_credentials_error(client, ca, oauth_server):
    configure(client, oauth_server, ca=ca, encryption="STARTTLS", auth=True, SMTPAuthModel="OAuth2")
    client.credentials_set("emp-42", OAUTH_USER, PASSWORD)
    error = expect_error(CREDENTIALS, client.send, message(user="emp-42"))
    assert_secret_absent(error, PASSWORD)


# --- Optional ------------------------------------------------------------------------------


def test_optional_authentication_without_a_credential_sends_unauthenticated(client):
    with RecordingServer() as server:
        configure(client, server, SMTPAuthentication="Optional")
        client.send(message(user="emp-without-credential"))
        assert server.wait_for(1)[0].auth_user is None


def test_optional_authentication_allows_an_empty_password(client):
    with RecordingServer(users={"kiosk": ""}, auth_require_tls=False, auth_required=True) as server:
        configure(client, server, SMTPAuthentication="Optional", SMTPAllowPlaintextAuth=True)
        client.credentials_set("emp-1", "kiosk", "")
        client.send(message(user="emp-1"))
        assert server.wait_for(1)[0].auth_user == "kiosk"
