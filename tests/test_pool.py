"""Connection reuse: one session carries several messages; a dead or outdated
one is replaced without losing a message (ABI §4 "Sending", §5 "Changes apply
to the next message")."""

from __future__ import annotations

import pytest
import smtpbridge

from conftest import configure, message
from servers import HANG, RecordingServer, Script, ScriptedServer


def test_two_consecutive_sends_share_one_connection(client):
    with RecordingServer() as server:
        configure(client, server)
        client.send(message(subject="one"))
        client.send(message(subject="two"))
        first, second = server.wait_for(2)
        assert server.connections == 1
    assert (first.connection, second.connection) == (1, 1)
    assert [first.parsed["Subject"], second.parsed["Subject"]] == ["one", "two"]


@pytest.mark.parametrize("idle_reply", ["421 4.4.2 scripted.test idle timeout", None],
                         ids=["with-421", "silent"])
def test_send_after_the_server_closed_the_idle_connection_uses_a_new_one(client, idle_reply):
    with ScriptedServer(Script(idle_close_ms=300, idle_reply=idle_reply)) as server:
        configure(client, server)
        client.send(message(subject="before"))
        server.wait_closed(1)  # the server closed the pooled connection
        status = client.send(message(subject="after"))
        messages = server.wait_for(2)
        assert server.connections == 2
    assert status["state"] == "sent" and status["attempts"] == 1
    assert [m.parsed["Subject"] for m in messages] == ["before", "after"]
    assert [m.connection for m in messages] == [1, 2]


def test_send_after_a_recording_server_dropped_the_session_succeeds(client):
    with RecordingServer(idle_timeout=0.3) as server:
        configure(client, server)
        client.send(message(subject="before"))
        server.wait_closed(1)  # aiosmtpd's idle timeout ended the pooled session
        client.send(message(subject="after"))
        assert len(server.wait_for(2)) == 2
        assert server.connections == 2


def test_changing_a_config_key_makes_the_next_send_use_a_new_connection(client):
    with RecordingServer() as server:
        configure(client, server)
        client.send(message())
        client.config_set("SMTPHeloName", "changed.example")
        client.send(message())
        first, second = server.wait_for(2)
        assert server.connections == 2
    assert (first.connection, second.connection) == (1, 2)


def test_changing_credentials_makes_the_next_send_log_in_again(client, ca):
    context = ca.valid().server_context()
    users = {"anna": "pw-anna-111", "bob": "pw-bob-222"}
    with RecordingServer(ssl_context=context, users=users, auth_require_tls=False) as server:
        configure(client, server, ca=ca, encryption="SSL", auth=True)
        client.credentials_set(None, "anna", "pw-anna-111")
        client.send(message())
        client.credentials_set(None, "bob", "pw-bob-222")
        client.send(message())
        first, second = server.wait_for(2)
    assert (first.auth_user, second.auth_user) == ("anna", "bob")


def test_a_rejected_message_does_not_poison_the_pooled_connection(client):
    with ScriptedServer(Script(replies={"DOT": ["550 5.7.1 no"]})) as server:
        configure(client, server)
        with pytest.raises(Exception):
            client.send(message(subject="refused"))
        status = client.send(message(subject="accepted"))
        messages = server.wait_for(2)
    assert status["state"] == "sent"
    assert messages[1].parsed["Subject"] == "accepted"


def test_a_profile_requiring_tls_never_reuses_a_plaintext_pooled_connection(client, ca):
    # curl CVE-2026-4873: a transfer that required TLS reused a pooled cleartext connection.
    with RecordingServer(tls_context=ca.valid().server_context()) as server:
        configure(client, server, ca=ca, profile="Plain", encryption="None")
        configure(client, server, ca=ca, profile="Secure", encryption="STARTTLS")
        client.send(message(profile="Plain", subject="plain"))
        client.send(message(profile="Secure", subject="secure"))
        plain, secure = server.wait_for(2)
    assert plain.tls is False
    assert secure.tls is True
    assert secure.connection == 2


def test_sessions_of_different_users_are_not_shared(client, ca):
    users = {"anna": "pw-anna-111", "bob": "pw-bob-222"}
    with RecordingServer(ssl_context=ca.valid().server_context(), users=users, auth_require_tls=False) as server:
        configure(client, server, ca=ca, encryption="SSL", auth=True)
        client.credentials_set("emp-1", "anna", "pw-anna-111")
        client.credentials_set("emp-2", "bob", "pw-bob-222")
        for user in ("emp-1", "emp-2", "emp-1", "emp-2"):
            client.send(message(user=user))
        messages = server.wait_for(4)
    assert [m.auth_user for m in messages] == ["anna", "bob", "anna", "bob"]


def test_a_session_that_stalled_after_the_dot_is_not_reused(client):
    # The first reply never comes in time: that session may still deliver a
    # late reply, which must not be read as the answer to the next message.
    with ScriptedServer(Script(replies={"DOT": [HANG, "250 2.0.0 Ok"]})) as server:
        configure(client, server, timeout_ms=1000)
        with pytest.raises(smtpbridge.TransientError) as first:
            client.send(message(subject="stalled"))
        assert first.value.status["possible_duplicate"] is True
        status = client.send(message(subject="next"))
        server.wait_for(2)
        assert server.connections == 2
    assert status["state"] == "sent"
