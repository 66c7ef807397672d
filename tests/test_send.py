"""smtpb_send against a well-behaved server: what arrives, and the status (ABI §4, §6, §7)."""

from __future__ import annotations

import base64
import os
from email.message import EmailMessage

import pytest

from conftest import (
    CONFIG,
    CONNECT,
    MESSAGE,
    NOT_FOUND,
    RECIPIENT,
    RFC3339_UTC,
    SENDER,
    ULID,
    configure,
    expect_error,
    message,
)
from servers import RecordingServer, ScriptedServer

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def received(server) -> EmailMessage:
    [m] = server.wait_for(1)
    return m.parsed


def text_of(part) -> str:
    return part.get_content().replace("\r\n", "\n")


# --- bodies -------------------------------------------------------------------


def test_html_only_gets_a_generated_text_alternative(sending, server):
    sending.send(message(text=None, html="<p>Dear <b>client</b>, your invoice.</p>"))
    parsed = received(server)
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None and html is not None
    assert "Dear client, your invoice." in " ".join(text_of(plain).split())
    assert "<b>" not in text_of(plain)
    assert text_of(html).strip() == "<p>Dear <b>client</b>, your invoice.</p>"


def test_text_only_is_a_single_text_plain_part(sending, server):
    sending.send(message(text="Just text.\nSecond line."))
    parsed = received(server)
    assert parsed.get_content_type() == "text/plain"
    assert not parsed.is_multipart()
    assert text_of(parsed).rstrip("\n") == "Just text.\nSecond line."


def test_html_and_text_are_both_kept_as_given(sending, server):
    sending.send(message(text="Plain version", html="<p>HTML version</p>"))
    parsed = received(server)
    assert parsed.get_content_type() == "multipart/alternative"
    assert text_of(parsed.get_body(("plain",))).strip() == "Plain version"
    assert text_of(parsed.get_body(("html",))).strip() == "<p>HTML version</p>"


def test_message_without_body_is_refused(sending, server):
    expect_error(MESSAGE, sending.send, message(text=None))
    assert server.connections == 0


def test_message_without_recipient_is_refused(sending, server):
    expect_error(MESSAGE, sending.send, message(to=[]))
    assert server.connections == 0


# --- recipients -------------------------------------------------------------------


def test_to_cc_bcc_go_in_the_envelope_and_bcc_never_in_headers(sending, server):
    sending.send(message(
        to=["to1@example.com", {"email": "to2@example.com", "name": "To Two"}],
        cc=["cc@example.com"],
        bcc=["hidden@example.com"],
    ))
    [m] = server.wait_for(1)
    assert sorted(m.rcpt_tos) == sorted(
        ["to1@example.com", "to2@example.com", "cc@example.com", "hidden@example.com"])
    assert m.mail_from == SENDER
    parsed = m.parsed
    assert [a.addr_spec for a in parsed["To"].addresses] == ["to1@example.com", "to2@example.com"]
    assert parsed["To"].addresses[1].display_name == "To Two"
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["cc@example.com"]
    assert parsed["Bcc"] is None
    assert b"hidden@example.com" not in m.raw


def test_bcc_only_message_is_sent_without_to_header(sending, server):
    sending.send(message(to=[], bcc=["hidden@example.com"]))
    [m] = server.wait_for(1)
    assert m.rcpt_tos == ["hidden@example.com"]
    assert b"hidden@example.com" not in m.raw


def test_status_recipients_are_the_addresses_as_given(sending, server):
    status = sending.send(message(to=[{"email": "to@example.com", "name": "T"}], cc=["cc@example.com"],
                                  bcc=["bcc@example.com"]))
    assert sorted(status["recipients"]) == ["bcc@example.com", "cc@example.com", "to@example.com"]


# --- attachments and inline parts -------------------------------------------------


def attachments_of(parsed: EmailMessage) -> list:
    return list(parsed.iter_attachments())


def test_attachment_from_absolute_path_arrives_byte_for_byte_with_non_ascii_name(sending, server, tmp_path):
    content = os.urandom(20000) + b"\r\n.\r\n\x00\r\rend"
    path = tmp_path / "Rechnung Müller.pdf"
    path.write_bytes(content)
    sending.send(message(attachments=[{"path": str(path)}]))
    parsed = received(server)
    assert parsed.get_content_type() == "multipart/mixed"
    [attachment] = attachments_of(parsed)
    assert attachment.get_filename() == "Rechnung Müller.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_payload(decode=True) == content


def test_attachment_name_overrides_the_file_name_and_sets_the_type(sending, server, tmp_path):
    path = tmp_path / "scan-0001.bin"
    path.write_bytes(b"%PDF-1.4 fake")
    sending.send(message(attachments=[{"path": str(path), "name": "Invoice.pdf"}]))
    [attachment] = attachments_of(received(server))
    assert attachment.get_filename() == "Invoice.pdf"
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_payload(decode=True) == b"%PDF-1.4 fake"


def test_attachment_explicit_content_type_is_used(sending, server, tmp_path):
    path = tmp_path / "data.dat"
    path.write_bytes(b"\x01\x02\x03")
    sending.send(message(attachments=[{"path": str(path), "content_type": "application/x-custom"}]))
    [attachment] = attachments_of(received(server))
    assert attachment.get_content_type() == "application/x-custom"


def test_attachment_of_unknown_type_is_octet_stream(sending, server, tmp_path):
    path = tmp_path / "blob.zzqx"
    path.write_bytes(b"\xff\x00\xfe")
    sending.send(message(attachments=[{"path": str(path)}]))
    [attachment] = attachments_of(received(server))
    assert attachment.get_content_type() == "application/octet-stream"
    assert attachment.get_payload(decode=True) == b"\xff\x00\xfe"


def test_attachment_from_content_base64(sending, server):
    content = os.urandom(3000)
    sending.send(message(attachments=[
        {"content_base64": base64.b64encode(content).decode(), "name": "photo.png"},
        {"content_base64": base64.b64encode(b"a;b\r\n1;2\r\n").decode(), "name": "note.txt"},
    ]))
    png, note = attachments_of(received(server))
    assert (png.get_filename(), png.get_content_type()) == ("photo.png", "image/png")
    assert png.get_payload(decode=True) == content
    assert (note.get_filename(), note.get_content_type()) == ("note.txt", "text/plain")
    assert note.get_payload(decode=True) == b"a;b\r\n1;2\r\n"


def test_files_of_ascii_bytes_with_bare_line_ends_arrive_byte_for_byte(sending, server):
    # ASCII throughout, so that nothing but the line ends tells it from text.
    content = b"col;a\ncol;b\rend\n\n.\n"
    sending.send(message(
        html='<p>Hello</p><img src="cid:logo">',
        attachments=[{"content_base64": base64.b64encode(content).decode(), "name": "export.csv"}],
        inline=[{"content_base64": base64.b64encode(content).decode(), "cid": "logo", "name": "logo.png"}],
    ))
    parsed = received(server)
    [attachment] = attachments_of(parsed)
    [image] = [p for p in parsed.walk() if p["Content-ID"]]
    for part in (attachment, image):
        assert part["Content-Transfer-Encoding"] == "base64"
        assert part.get_payload(decode=True) == content


def test_relative_attachment_path_is_refused_naming_it(sending, server):
    error = expect_error(MESSAGE, sending.send, message(attachments=[{"path": "docs/inv.pdf"}]))
    assert "docs/inv.pdf" in error.message
    assert error.status is None
    assert server.connections == 0


def test_missing_attachment_file_is_refused_naming_it(sending, server, tmp_path):
    missing = tmp_path / "nowhere" / "Rechnung.pdf"
    error = expect_error(MESSAGE, sending.send, message(attachments=[{"path": str(missing)}]))
    assert str(missing) in error.message
    assert server.connections == 0


def test_inline_image_by_cid_sits_in_multipart_related_with_the_html(sending, server, tmp_path):
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG)
    sending.send(message(
        text=None,
        html='<p>Hello</p><img src="cid:logo">',
        inline=[{"path": str(logo), "cid": "logo"}],
    ))
    parsed = received(server)
    related = [p for p in parsed.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1
    parts = list(related[0].iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/html", "image/png"]
    assert 'src="cid:logo"' in text_of(parts[0])
    image = parts[1]
    assert image["Content-ID"].strip() == "<logo>"
    assert image.get_payload(decode=True) == PNG
    assert image.get_content_disposition() == "inline"
    # the generated text alternative is still there
    assert parsed.get_body(("plain",)) is not None


# --- headers ---------------------------------------------------------------------


def test_custom_headers_arrive(sending, server):
    sending.send(message(headers={"X-Practice-Ref": "CL-1001", "X-Other": "a\tb value"}))
    parsed = received(server)
    assert parsed["X-Practice-Ref"] == "CL-1001"
    assert parsed["X-Other"] == "a\tb value"


def test_non_ascii_subject_and_display_names_decode_correctly(sending, server):
    subject = "Grüße aus Köln – Rechnung Nr. 5 ✓ 請求書"
    sending.send(message(
        subject=subject,
        **{"from": {"email": SENDER, "name": "Jürgen Müller"}},
        to=[{"email": RECIPIENT, "name": "Zoë Ångström"}],
        cc=[{"email": "cc@example.com", "name": "Smith, John"}],
        text="Körper mit Umlauten: äöü ß €",
    ))
    parsed = received(server)
    assert parsed["Subject"] == subject
    assert parsed["From"].addresses[0].display_name == "Jürgen Müller"
    assert parsed["From"].addresses[0].addr_spec == SENDER
    assert parsed["To"].addresses[0].display_name == "Zoë Ångström"
    assert parsed["Cc"].addresses[0].display_name == "Smith, John"
    assert text_of(parsed).strip() == "Körper mit Umlauten: äöü ß €"


def test_non_ascii_headers_are_mime_encoded_when_the_server_lacks_smtputf8(client):
    with RecordingServer(smtputf8=False) as server:
        configure(client, server)
        client.send(message(subject="Grüße ✓", to=[{"email": RECIPIENT, "name": "Zoë"}]))
        [m] = server.wait_for(1)
    head = m.raw.split(b"\r\n\r\n", 1)[0]
    assert all(byte < 0x80 for byte in head), head
    assert m.parsed["Subject"] == "Grüße ✓"
    assert m.parsed["To"].addresses[0].display_name == "Zoë"


def test_reply_to_is_written(sending, server):
    sending.send(message(reply_to="office@firm.example"))
    assert received(server)["Reply-To"] == "office@firm.example"


def test_from_falls_back_to_the_profile_sender(client, server):
    configure(client, server, SMTPSenderEmail="office@firm.example", SMTPSenderName="Firm Office")
    msg = message()
    del msg["from"]
    client.send(msg)
    [m] = server.wait_for(1)
    assert m.mail_from == "office@firm.example"
    assert m.parsed["From"].addresses[0].display_name == "Firm Office"


def test_from_and_reply_to_fall_back_to_the_profile_keys(client, server):
    configure(client, server, SMTPSenderEmail="office@firm.example", SMTPReplyTo="replies@firm.example")
    msg = message()
    del msg["from"]
    client.send(msg)
    assert received(server)["Reply-To"] == "replies@firm.example"


def test_no_from_and_no_profile_sender_is_message_error_naming_both_keys(client, server):
    configure(client, server)
    msg = message()
    del msg["from"]
    error = expect_error(MESSAGE, client.send, msg)
    assert "Default.SMTPSenderEmail" in error.message and "Default.SMTPSenderName" in error.message
    assert server.connections == 0


# --- test mode -------------------------------------------------------------------


def test_test_mode_replaces_the_envelope_and_lists_the_original_to_and_cc(client, server):
    configure(client, server)
    client.configure(SMTPTestMode=True, SMTPTestAddresses="qa1@firm.example, qa2@firm.example")
    client.send(message(to=["to@example.com"], cc=["cc@example.com"], bcc=["secret-bcc@example.com"]))
    [m] = server.wait_for(1)
    assert sorted(m.rcpt_tos) == ["qa1@firm.example", "qa2@firm.example"]
    original = m.parsed["X-Original-To"]
    assert "to@example.com" in original and "cc@example.com" in original
    assert b"secret-bcc@example.com" not in m.raw


def test_test_mode_without_addresses_is_config_error(client, server):
    configure(client, server)
    client.config_set("SMTPTestMode", True)
    expect_error(CONFIG, client.send, message())
    assert server.connections == 0


# --- status ----------------------------------------------------------------------


def test_message_id_in_the_status_equals_the_received_header(sending, server):
    status = sending.send(message())
    parsed = received(server)
    assert parsed["Message-ID"] == status["message_id"]
    assert status["message_id"].startswith("<") and status["message_id"].endswith(">")


def test_status_of_a_sent_message(sending, server):
    status = sending.send(message(to=["a@example.com", "b@example.com"], reference="CL-1001/DOC-7"))
    assert status["state"] == "sent"
    assert status["smtp_code"] == 250
    assert status["enhanced_code"] == "2.0.0"
    assert status["smtp_response"] == "OK queued"
    assert status["recipients"] == ["a@example.com", "b@example.com"]
    assert status["attempts"] == 1
    assert status["error_code"] == 0 and status["error"] is None and status["needs"] is None
    assert status["partial"] is False and status["possible_duplicate"] is False
    assert status["rejected"] == [] and status["blocked"] == []
    assert status["reference"] == "CL-1001/DOC-7"
    assert status["profile"] == "Default"
    assert ULID.match(status["id"])
    assert RFC3339_UTC.match(status["created_at"])
    assert RFC3339_UTC.match(status["sent_at"])
    assert status["created_at"] <= status["sent_at"]


def test_status_by_id_returns_the_same_status(sending, server):
    status = sending.send(message())
    assert sending.status(status["id"]) == status


def test_status_of_an_unknown_id_is_not_found(sending):
    error = expect_error(NOT_FOUND, sending.status, "01JD0000000000000000000000")
    assert "01JD0000000000000000000000" in error.message


def test_ids_are_unique_and_sortable_by_creation(sending, server):
    # Many sends fall in the same millisecond: ids must still sort in creation order.
    ids = [sending.send(message())["id"] for _ in range(30)]
    assert len(set(ids)) == 30
    assert ids == sorted(ids)


# --- the bytes on the wire -----------------------------------------------------------


def test_body_lines_starting_with_a_dot_arrive_intact(client):
    text = ".leading dot\n..two dots\n.\nafter a lone dot\nend ."
    with ScriptedServer() as server:
        configure(client, server)
        client.send(message(text=text))
        [m] = server.wait_for(1)
    assert text_of(m.parsed).rstrip("\n") == text


def test_a_lone_cr_never_reaches_the_wire(client):
    with ScriptedServer() as server:
        configure(client, server)
        client.send(message(
            text="one\rtwo\r\n.three\rfour\n\rfive\r",
            html="<p>a\rb</p>\r<p>c</p>",
            subject="tab\tsubject",
        ))
        [m] = server.wait_for(1)
    raw = m.raw
    for i, byte in enumerate(raw):
        if byte == 0x0D:
            assert raw[i + 1:i + 2] == b"\n", f"lone CR at {i}: {raw[max(0, i - 20):i + 20]!r}"
        if byte == 0x0A:
            assert raw[i - 1:i] == b"\r", f"lone LF at {i}: {raw[max(0, i - 20):i + 20]!r}"
    assert b"\r\n.\r\n" not in raw


def test_a_repeated_idempotency_key_answers_with_the_first_message_failure(client):
    # The first message failed: sending it again under the same key sends
    # nothing and does not pretend success.
    with ScriptedServer() as server:
        port = server.port
    configure(client, server, timeout_ms=1000, SMTPServerPort=port)
    first = expect_error(CONNECT, client.send, message(idempotency_key="DOC-7-send-1"))
    again = expect_error(CONNECT, client.send, message(idempotency_key="DOC-7-send-1"))
    assert again.status["id"] == first.status["id"]
    assert again.status["state"] == "failed"
