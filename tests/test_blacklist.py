"""The blacklist: addresses and "@domain" entries, applied before SMTP (ABI §3, §4 pipeline, §7, §11)."""

from __future__ import annotations

import pytest

from conftest import BLOCKED, NOT_FOUND, configure, expect_error, message
from servers import RecordingServer


def test_add_list_remove(client):
    client.blacklist_add("nobody@example.com")
    client.blacklist_add("@spam.example")
    assert sorted(client.blacklist_list()) == ["@spam.example", "nobody@example.com"]
    client.blacklist_remove("nobody@example.com")
    assert client.blacklist_list() == ["@spam.example"]


def test_removing_an_absent_entry_is_not_found(client):
    error = expect_error(NOT_FOUND, client.blacklist_remove, "absent@example.com")
    assert "absent@example.com" in error.message


@pytest.mark.parametrize("entry", ["not an address", "@", "a@b@c", "x\r\n@evil.example"])
def test_bad_entry_is_refused(client, entry):
    with pytest.raises(Exception):
        client.blacklist_add(entry)
    assert client.blacklist_list() == []


def test_blocked_recipients_are_dropped_and_listed_in_the_status(client):
    with RecordingServer() as server:
        configure(client, server)
        client.blacklist_add("blocked@example.com")
        client.blacklist_add("@spam.example")
        status = client.send(message(to=["ok@example.com", "blocked@example.com"], cc=["x@spam.example"]))
        [m] = server.wait_for(1)
    assert m.rcpt_tos == ["ok@example.com"]
    assert status["recipients"] == ["ok@example.com"]
    assert sorted(status["blocked"]) == ["blocked@example.com", "x@spam.example"]
    assert status["state"] == "sent"


def test_every_recipient_blocked_is_blocked_and_not_recorded(client):
    with RecordingServer() as server:
        configure(client, server)
        client.blacklist_add("@spam.example")
        error = expect_error(BLOCKED, client.send, message(to=["a@spam.example"], bcc=["b@spam.example"]))
        assert server.connections == 0
    assert error.status is None


def test_domain_entries_match_in_any_letter_case(client):
    with RecordingServer() as server:
        configure(client, server)
        client.blacklist_add("@Spam.Example")
        expect_error(BLOCKED, client.send, message(to=["Someone@SPAM.example"]))
