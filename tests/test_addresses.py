"""Addresses as Outlook users type them (ABI §20), proved on what a real server
received: display names with a comma, and lists in one string separated by
``;`` or ``,``."""

from __future__ import annotations

from email.utils import getaddresses

import pytest

from conftest import MESSAGE, SENDER, expect_error, message

WAIT_S = 5.0


def header_addresses(m, name: str) -> list:
    """(display name, address) pairs of a received header, parsed by the email package."""
    return [(group.display_name, group.addr_spec) for group in m.parsed[name].addresses] if m.parsed[name] else []


def test_a_comma_in_an_unquoted_display_name_does_not_split_the_address(sending, server):
    status = sending.send(message(to="Müller, Hans <h@example.com>"))
    assert status["recipients"] == ["h@example.com"]
    [m] = server.wait_for(1, WAIT_S)
    assert m.rcpt_tos == ["h@example.com"]
    assert header_addresses(m, "To") == [("Müller, Hans", "h@example.com")]


def test_one_string_holds_a_list_separated_by_semicolons_and_commas(sending, server):
    status = sending.send(message(
        to="a@x.example; Müller, Hans <h@example.com>, b@y.example",
        cc="\"Doe; Jane\" <j@z.example>;",
        bcc="hidden@example.org, other-hidden@example.org",
    ))
    assert status["recipients"] == ["a@x.example", "h@example.com", "b@y.example", "j@z.example",
                                    "hidden@example.org", "other-hidden@example.org"]
    [m] = server.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == sorted(status["recipients"])
    assert header_addresses(m, "To") == [("", "a@x.example"), ("Müller, Hans", "h@example.com"),
                                         ("", "b@y.example")]
    assert header_addresses(m, "Cc") == [("Doe; Jane", "j@z.example")]
    assert m.parsed["Bcc"] is None and b"hidden@example.org" not in m.raw


def test_array_elements_may_be_typed_lists_and_from_may_have_a_display_name(sending, server):
    sending.send(message(**{"from": "Office, Firm <office@firm.example>"},
                         to=["a@x.example; b@y.example", {"email": "c@z.example", "name": "C, D"}],
                         reply_to="Replies <replies@firm.example>"))
    [m] = server.wait_for(1, WAIT_S)
    assert m.mail_from == "office@firm.example"
    assert header_addresses(m, "From") == [("Office, Firm", "office@firm.example")]
    assert header_addresses(m, "Reply-To") == [("Replies", "replies@firm.example")]
    assert header_addresses(m, "To") == [("", "a@x.example"), ("", "b@y.example"), ("C, D", "c@z.example")]


@pytest.mark.parametrize("to, named", [
    ("a@x.example; Hans Müller", "Hans Müller"),
    ("Müller, Hans <h@example.com", "Müller, Hans <h@example.com"),
    ("a@x.example; b@y.example\r\nBcc: evil@example.com", "evil@example.com"),
])
def test_an_entry_without_a_valid_address_is_message_error_naming_it(sending, server, to, named):
    error = expect_error(MESSAGE, sending.send, message(to=to))
    assert named.split("\r\n")[-1].split()[-1] in error.message
    assert server.connections == 0


def test_a_typed_list_of_only_separators_is_no_recipient(sending, server):
    error = expect_error(MESSAGE, sending.send, message(to=" ; , ;"))
    assert "recipient" in error.message
    assert server.connections == 0


def test_merge_cc_may_be_a_typed_list(sending, server):
    template = {"from": SENDER, "subject": "Hello {{Name}}", "text": "Dear {{Name}}"}
    batch = sending.merge(template, [{"email": "r@x.example", "fields": {"Name": "R"},
                                      "cc": "Müller, Hans <h@example.com>; c2@example.com"}])
    assert sending.wait(batch["ids"][0], 10000)["state"] == "sent"
    [m] = server.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == ["c2@example.com", "h@example.com", "r@x.example"]
    assert header_addresses(m, "Cc") == [("Müller, Hans", "h@example.com"), ("", "c2@example.com")]
