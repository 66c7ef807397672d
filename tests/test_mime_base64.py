"""A message the host built itself (``"mime_base64"``) goes out as its bytes:
envelope from its headers unless the JSON gives one, Bcc removed, its own
Message-ID kept, missing From/Date/Message-ID added (ABI §6 addition)."""

from __future__ import annotations

import base64
import email.policy
from email.message import EmailMessage

import pytest

from conftest import CONFIG, MESSAGE, RECIPIENT, SENDER, configure, expect_error, message


def built(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Dear client,\nthe invoice is attached.\n")
    msg.add_attachment(b"%PDF-1.4 invoice", maintype="application", subtype="pdf", filename="Invoice.pdf")
    return msg


def as_json(msg: EmailMessage, **fields):
    raw = msg.as_bytes(policy=email.policy.SMTP)
    return {"mime_base64": base64.b64encode(raw).decode(), **fields}


def test_envelope_comes_from_the_headers_and_bcc_is_removed(sending, server):
    msg = built(From=SENDER, To=RECIPIENT, Cc="cc@example.com", Bcc="hidden@example.com",
                Subject="Invoice 7", Message_ID="<own-7@firm.example>")
    status = sending.send(as_json(msg))
    assert status["state"] == "sent"
    assert status["message_id"] == "<own-7@firm.example>"
    received = server.wait_for(1)[0]
    assert received.mail_from == SENDER
    assert sorted(received.rcpt_tos) == sorted([RECIPIENT, "cc@example.com", "hidden@example.com"])
    parsed = received.parsed
    assert parsed["Subject"] == "Invoice 7"
    assert parsed["Message-ID"] == "<own-7@firm.example>"
    assert parsed["Bcc"] is None and b"hidden@example.com" not in received.raw
    attachment = next(parsed.iter_attachments())
    assert attachment.get_filename() == "Invoice.pdf"
    assert attachment.get_content() == b"%PDF-1.4 invoice"


def test_the_json_envelope_wins_over_the_headers(sending, server):
    msg = built(From=SENDER, To="listed@example.com", Subject="x")
    sending.send(as_json(msg, to=["actual@example.com"]))
    received = server.wait_for(1)[0]
    assert received.rcpt_tos == ["actual@example.com"]
    assert received.parsed["To"] == "listed@example.com"


def test_missing_from_date_and_message_id_are_added(sending, server):
    msg = built(To=RECIPIENT, Subject="no from")
    status = sending.send(as_json(msg, **{"from": SENDER}))
    parsed = server.wait_for(1)[0].parsed
    assert parsed["From"].addresses[0].addr_spec == SENDER
    assert parsed["Date"] is not None
    assert parsed["Message-ID"] == status["message_id"]
    assert status["message_id"].startswith("<" + status["id"] + "@")


def test_test_mode_redirects_and_names_the_original_recipients(sending, server):
    sending.configure(SMTPTestMode=True, SMTPTestAddresses="qa@firm.example")
    sending.send(as_json(built(From=SENDER, To=RECIPIENT, Subject="x")))
    received = server.wait_for(1)[0]
    assert received.rcpt_tos == ["qa@firm.example"]
    assert RECIPIENT in received.parsed["X-Original-To"]


@pytest.mark.parametrize("field, value", [
    ("subject", "x"), ("text", "x"), ("html", "<p>x</p>"),
    ("attachments", [{"content_base64": "AA==", "name": "a.bin"}]), ("headers", {"X-A": "1"}),
])
def test_fields_beside_mime_base64_are_refused_by_name(sending, server, field, value):
    error = expect_error(MESSAGE, sending.send, as_json(built(From=SENDER, To=RECIPIENT), **{field: value}))
    assert field in error.message and "mime_base64" in error.message
    assert error.status is None and server.connections == 0


def test_bad_base64_and_a_message_without_headers_are_refused(sending, server):
    error = expect_error(MESSAGE, sending.send, {"mime_base64": "not base64!"})
    assert "mime_base64" in error.message
    error = expect_error(MESSAGE, sending.send, {"mime_base64": base64.b64encode(b"no blank line").decode()})
    assert "header" in error.message
    assert server.connections == 0


def test_no_recipient_anywhere_is_refused(sending, server):
    error = expect_error(MESSAGE, sending.send, as_json(built(From=SENDER, Subject="x")))
    assert "recipient" in error.message


def test_a_header_address_with_a_line_break_cannot_inject(sending, server):
    raw = b"From: " + SENDER.encode() + b"\r\nTo: a@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    status = sending.send({"mime_base64": base64.b64encode(raw).decode()})
    assert status["recipients"] == ["a@example.com"]
    assert server.wait_for(1)[0].rcpt_tos == ["a@example.com"]


def test_a_merge_template_cannot_be_mime_base64(sending):
    template = as_json(built(From=SENDER, Subject="x"))
    error = expect_error(MESSAGE, sending.merge, template, [{"email": RECIPIENT}])
    assert "mime_base64" in error.message


def test_a_dkim_profile_refuses_a_prebuilt_message(sending, server, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = tmp_path / "dkim.pem"
    key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    sending.configure(SMTPDkimDomain="firm.example", SMTPDkimSelector="s1", SMTPDkimKeyFile=str(key))
    error = expect_error(CONFIG, sending.send, as_json(built(From=SENDER, To=RECIPIENT)))
    assert "DKIM" in error.message
    assert server.connections == 0
    # the same profile still signs messages the library builds
    assert sending.send(message())["state"] == "sent"
