"""Message JSON is read strictly, and a message that would inject anything is
refused before it reaches a server (ABI §1 JSON, §6; security-anchors §1.4)."""

from __future__ import annotations

import json

import pytest

from conftest import INVALID_ARGUMENT, MESSAGE, RECIPIENT, configure, expect_error, message


def refused(client, server, code, msg):
    """Send ``msg`` (a dict or JSON text); it must fail with ``code``, unrecorded, nothing sent."""
    error = expect_error(code, client.send, msg)
    assert error.status is None, "a message refused at validation must not be recorded"
    assert server.connections == 0, "nothing may reach the server"
    return error


# --- strict JSON ------------------------------------------------------------------------


def test_unknown_field_is_invalid_argument_naming_it(sending, server):
    error = refused(sending, server, INVALID_ARGUMENT, message(atachments=[]))
    assert "atachments" in error.message


def test_unknown_field_inside_an_address_is_named(sending, server):
    error = refused(sending, server, INVALID_ARGUMENT, message(to=[{"email": RECIPIENT, "nmae": "X"}]))
    assert "nmae" in error.message


def test_unknown_field_inside_an_attachment_is_named(sending, server):
    error = refused(sending, server, INVALID_ARGUMENT,
                    message(attachments=[{"content_base64": "AA==", "name": "a.bin", "filename": "b"}]))
    assert "filename" in error.message


def test_duplicate_keys_are_invalid_argument(sending, server):
    text = json.dumps(message())[:-1] + ', "subject": "again"}'
    error = refused(sending, server, INVALID_ARGUMENT, text)
    assert "subject" in error.message


def test_duplicate_custom_header_keys_are_invalid_argument(sending, server):
    text = json.dumps(message())[:-1] + ', "headers": {"X-A": "1", "X-A": "2"}}'
    refused(sending, server, INVALID_ARGUMENT, text)


@pytest.mark.parametrize("field, value", [
    ("to", 5),  # one string is a list of addresses since 1.2
    ("cc", {"email": "a@x.example"}),
    ("subject", 5),
    ("text", ["a"]),
    ("archive", "yes"),
    ("attachments", {"path": "/x"}),
])
def test_wrong_json_type_is_invalid_argument_naming_the_field(sending, server, field, value):
    error = refused(sending, server, INVALID_ARGUMENT, message(**{field: value}))
    assert field in error.message, error.message


def test_malformed_json_gives_line_and_column(sending, server):
    text = '{\n  "to": ["client@example.com"],\n  "text": "x",\n  "subject": \n}'
    error = refused(sending, server, INVALID_ARGUMENT, text)
    assert "line 5" in error.message, error.message
    assert "column" in error.message, error.message


def test_json_array_instead_of_the_message_object_is_invalid_argument(sending, server):
    # Field values in declaration order: must not be read as a message.
    positional = '[null, null, "anna@firm.example", null, ["client@example.com"], [], [], "s", null, "text"]'
    refused(sending, server, INVALID_ARGUMENT, positional)


def test_json_array_instead_of_an_attachment_object_is_invalid_argument(sending, server, tmp_path):
    path = tmp_path / "secret.txt"
    path.write_bytes(b"not for mailing")
    refused(sending, server, INVALID_ARGUMENT, message(attachments=[[str(path)]]))


@pytest.mark.parametrize("text", ['"just a string"', "42", "null"])
def test_json_that_is_not_an_object_is_invalid_argument(sending, server, text):
    refused(sending, server, INVALID_ARGUMENT, text)


# --- header injection ------------------------------------------------------------------------


@pytest.mark.parametrize("fields", [
    {"subject": "Invoice\r\nBcc: evil@attacker.example"},
    {"subject": "Invoice\nX-Evil: 1"},
    {"subject": "Invoice\rX-Evil: 1"},
    {"subject": "nul\x00byte"},
    {"subject": "escape\x1b[31m"},
    {"subject": "delete\x7f"},
    {"to": ["client@example.com\r\nRCPT TO:<evil@attacker.example>"]},
    {"to": ["client@example.com>\r\nDATA"]},
    {"cc": ["cc@example.com\nBcc: evil@attacker.example"]},
    {"bcc": ["bcc@example.com\r\n"]},
    {"from": "anna@firm.example\r\nRCPT TO:<evil@attacker.example>"},
    {"from": {"email": "anna@firm.example", "name": "Anna\r\nBcc: evil@attacker.example"}},
    {"to": [{"email": RECIPIENT, "name": "Client\nX-Evil: 1"}]},
    {"reply_to": "office@firm.example\r\nBcc: evil@attacker.example"},
    {"headers": {"X-Practice-Ref": "CL-1001\r\nBcc: evil@attacker.example"}},
    {"headers": {"X-Practice-Ref": "CL-1001\nBcc: evil@attacker.example"}},
    {"headers": {"X-Evil\r\nBcc": "evil@attacker.example"}},
    {"headers": {"Bad Name": "x"}},
    {"headers": {"Bcc": "evil@attacker.example"}},
    {"attachments": [{"content_base64": "AA==", "name": "a\r\nContent-Type: text/html"}]},
], ids=lambda f: next(iter(f)))
def test_header_injection_is_message_error_and_nothing_reaches_the_server(sending, server, fields):
    refused(sending, server, MESSAGE, message(**fields))


def test_tab_is_allowed_in_subject_and_display_name(sending, server):
    sending.send(message(subject="a\tb", to=[{"email": RECIPIENT, "name": "Client\tName"}]))
    assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize("address", ["not-an-address", "@example.com", "a@", "a b@example.com", ""])
def test_bad_address_is_message_error_naming_it(sending, server, address):
    error = refused(sending, server, MESSAGE, message(to=[address]))
    if address:
        assert address in error.message


@pytest.mark.parametrize("fields", [
    {"attachments": [{"path": "/tmp/a.pdf", "content_base64": "AA=="}]},
    {"attachments": [{"name": "nothing.pdf"}]},
    {"attachments": [{"content_base64": "%%% not base64 %%%", "name": "x.bin"}]},
    {"inline": [{"content_base64": "AA==", "name": "logo.png"}], "html": "<p>x</p>"},
])
def test_bad_attachment_is_message_error(sending, server, fields):
    refused(sending, server, MESSAGE, message(**fields))
