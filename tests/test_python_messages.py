"""The Python binding's message serialisation (issue 16, item 5): an
``email.message.EmailMessage`` is sent as the bytes it renders,
``os.PathLike`` attachment paths are made absolute, and JSON errors name
the field, never a line and column of JSON the caller did not write."""

from __future__ import annotations

import base64
import email.policy
import os
from email.message import EmailMessage
from pathlib import Path, PurePath

import pytest

import smtpbridge
from conftest import SENDER, expect_error, INVALID_ARGUMENT, MESSAGE

ONE = {"from": SENDER, "to": ["client@example.com"], "subject": "Paths", "text": "see attached"}


def email_message() -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Anna Smith <anna@firm.example>"
    m["To"] = "Client <client@example.com>"
    m["Cc"] = "copy@example.com"
    m["Bcc"] = "hidden@example.com"
    m["Subject"] = "Rendered by the email package"
    m.set_content("Dear client,\nsee the invoice.\n")
    m.add_alternative("<p>Dear client,</p>", subtype="html")
    m.add_attachment(b"%PDF-1.4 mime", maintype="application", subtype="pdf", filename="inv.pdf")
    return m


def test_an_email_message_becomes_mime_base64_of_its_crlf_bytes() -> None:
    m = email_message()
    built = smtpbridge.mime_message(m, user="emp-42", reference="CL-1")
    assert set(built) == {"mime_base64", "user", "reference"}
    raw = base64.b64decode(built["mime_base64"])
    assert raw == m.as_bytes(policy=m.policy.clone(linesep="\r\n"))
    assert b"\r\nSubject: Rendered by the email package\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_send_an_email_message(sending: smtpbridge.Client, server) -> None:
    status = sending.send(email_message())
    assert status["state"] == "sent"
    assert sorted(status["recipients"]) == ["client@example.com", "copy@example.com", "hidden@example.com"]
    (received,) = server.wait_for(1)
    assert received.mail_from == "anna@firm.example"
    assert sorted(received.rcpt_tos) == ["client@example.com", "copy@example.com", "hidden@example.com"]
    parsed = received.parsed
    assert parsed["Subject"] == "Rendered by the email package" and parsed["Bcc"] is None
    (part,) = list(parsed.iter_attachments())
    assert part.get_filename() == "inv.pdf" and part.get_content() == b"%PDF-1.4 mime"
    queued = sending.enqueue(smtpbridge.mime_message(email_message(), reference="Q-1"))
    assert sending.wait(queued, 10_000)["reference"] == "Q-1"


def test_pathlike_attachments_are_made_absolute(sending: smtpbridge.Client, server, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.pdf").write_bytes(b"A")
    (tmp_path / "b.txt").write_bytes(b"B")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG")
    monkeypatch.chdir(tmp_path)
    message = dict(ONE, html='<img src="cid:logo">',
                   attachments=[Path("a.pdf"), {"path": PurePath("b.txt"), "name": "Bee.txt"}],
                   inline=[{"path": Path("logo.png"), "cid": "logo"}])
    assert sending.send(message)["state"] == "sent"
    id = sending.enqueue(dict(ONE, attachments=[Path("a.pdf")]))
    assert sending.wait(id, 10_000)["state"] == "sent"
    first, second = server.wait_for(2)
    names = {p.get_filename(): p.get_payload(decode=True) for p in first.parsed.iter_attachments()}
    assert names == {"a.pdf": b"A", "Bee.txt": b"B"}
    assert [p.get_filename() for p in second.parsed.iter_attachments()] == ["a.pdf"]
    # A relative str stays the library's error (paths must be absolute), naming it.
    error = expect_error(MESSAGE, sending.send, dict(ONE, attachments=[{"path": "a.pdf"}]))
    assert "a.pdf" in error.message


def test_values_json_cannot_hold_name_their_field(client: smtpbridge.Client) -> None:
    with pytest.raises(TypeError, match=r"^message field attachments\[0\]\.path: object is not JSON serialisable"):
        client.send(dict(ONE, attachments=[{"path": object()}]))
    with pytest.raises(ValueError, match=r"^message field text: nan has no JSON form"):
        client.send(dict(ONE, text=float("nan")))
    with pytest.raises(TypeError, match=r"^message field headers: keys must be str"):
        client.enqueue(dict(ONE, headers={1: "x"}))
    with pytest.raises(TypeError, match=r"^recipients field \[1\]\.fields\.Name: bytes"):
        client.merge({"subject": "{{Name}}", "text": "x"}, [{"email": "a@example.com", "fields": {"Name": "A"}},
                                                            {"email": "b@example.com", "fields": {"Name": b"B"}}])


def test_the_library_s_json_errors_name_the_field_not_a_column(client: smtpbridge.Client) -> None:
    error = expect_error(INVALID_ARGUMENT, client.send, dict(ONE, to=5))
    assert error.message == ("message field to: invalid type: integer `5`, expected an array of addresses, "
                             "or one string of addresses separated by ; or ,"), error.message
    error = expect_error(INVALID_ARGUMENT, client.send, dict(ONE, attachments=[{"path": 5}]))
    assert error.message.startswith("message field attachments[0].path: invalid type: integer `5`"), error.message
    assert "column" not in str(error)
    error = expect_error(INVALID_ARGUMENT, client.enqueue, dict(ONE, subject="Ä€ non-ASCII first", archive="yes"))
    assert error.message.startswith("message field archive: invalid type: string \"yes\""), error.message
    error = expect_error(INVALID_ARGUMENT, client.merge, {"subject": "x", "text": "y"}, [{"email": ["a@example.com"]}])
    assert error.message.startswith("recipients field [0].email: "), error.message
    # Recipients the caller wrote as JSON keep their position, even where
    # the template the binding built has a field at that column.
    error = expect_error(INVALID_ARGUMENT, client.merge, {"subject": "x" * 80, "text": "y"},
                         '[{"email": ["a@example.com"]}]')
    assert error.message.startswith("recipients JSON: invalid type: sequence"), error.message
    assert error.message.endswith("at line 1 column 11"), error.message
    # JSON text the caller wrote keeps its line and column: that JSON is theirs.
    error = expect_error(INVALID_ARGUMENT, client.send, '{"to": 5, "text": "x"}')
    assert "line 1 column" in error.message
