"""smtpb_render and smtpb_validate (ABI §20): the MIME the library would send
(after profile choice, test mode and DKIM) and a check of a message and its
settings, neither sending nor recording anything. Rendered bytes are compared
with what a real server receives when the same message is sent."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import re

import pytest

from conftest import BLOCKED, CONFIG, CREDENTIALS, MESSAGE, NOT_FOUND, SENDER, configure, expect_error, message
from test_dkim import DOMAIN, SELECTOR, ed25519_key, verifies

WAIT_S = 5.0
#: Headers that differ from one building of a message to the next.
PER_BUILD = {"message-id", "date", "dkim-signature"}


def parse(raw: bytes):
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)


def stable_headers(parsed) -> list:
    """The headers that do not change between buildings; MIME boundaries are random per building."""
    return [(k.lower(), re.sub(r'boundary="[^"]*"', "boundary", str(v)))
            for k, v in parsed.items() if k.lower() not in PER_BUILD]


def leaf_payloads(parsed) -> list:
    return [(part.get_content_type(), part.get_payload(decode=True)) for part in parsed.walk()
            if not part.is_multipart()]


def nothing_recorded(client) -> None:
    assert client.outbox_list() == []
    assert client.outbox_stats()["sent"] == 0


def test_render_is_what_send_would_put_on_the_wire_and_sends_nothing(sending, server, tmp_path):
    attachment = tmp_path / "Rechnung 7.pdf"
    attachment.write_bytes(b"%PDF-1.4 invoice bytes")
    msg = message(to="Müller, Hans <h@example.com>; b@y.example", cc=["c@z.example"],
                  subject="Ihre Rechnung", html="<p>Guten Tag</p>", text="Guten Tag",
                  attachments=[{"path": str(attachment)}])
    eml = sending.render(msg)
    assert "\r\n" in eml and "\n" not in eml.replace("\r\n", "")
    assert server.connections == 0
    nothing_recorded(sending)
    rendered = parse(eml.encode())
    sending.send(msg)
    [m] = server.wait_for(1, WAIT_S)
    assert stable_headers(rendered) == stable_headers(m.parsed)
    assert leaf_payloads(rendered) == leaf_payloads(m.parsed)
    assert rendered["To"].addresses[0].display_name == "Müller, Hans"
    assert rendered["Message-ID"] != m.parsed["Message-ID"]


def test_render_applies_profile_choice_test_mode_and_dkim(client, server, backup, tmp_path):
    key, record = ed25519_key(tmp_path)
    configure(client, server)
    configure(client, backup, profile="Club", SMTPFilter="club.example", SMTPSenderEmail="office@club.example",
              SMTPDkimDomain=DOMAIN, SMTPDkimSelector=SELECTOR, SMTPDkimKeyFile=str(key),
              SMTPTestSubjectPrefix="[TEST]")
    client.configure(SMTPTestMode=True, SMTPTestAddresses="qa@test.example")
    msg = message(**{"from": "Kasse <kasse@club.example>"}, to="real@example.com", bcc="secret-bcc@example.com",
                  subject="Beitrag")
    raw = client.render(msg).encode()
    parsed = parse(raw)
    assert parsed["Subject"] == "[TEST] Beitrag"
    assert parsed["X-Original-To"] == "real@example.com"
    assert parsed["Bcc"] is None and b"secret-bcc" not in raw
    assert verifies(raw, record)
    assert server.connections == 0 and backup.connections == 0
    nothing_recorded(client)
    # The same message sent goes to the profile the filter chose, redirected.
    status = client.send(msg)
    assert status["profile"] == "Club" and status["test_mode"]["redirected_to"] == ["qa@test.example"]
    [m] = backup.wait_for(1, WAIT_S)
    assert m.rcpt_tos == ["qa@test.example"] and m.parsed["Subject"] == "[TEST] Beitrag"
    assert stable_headers(parse(raw)) == stable_headers(m.parsed)


def test_render_uses_the_profile_default_sender(client, server):
    configure(client, server, SMTPSenderEmail="office@firm.example", SMTPSenderName="Firm Office")
    msg = message()
    del msg["from"]
    parsed = parse(client.render(msg).encode())
    assert parsed["From"].addresses[0].display_name == "Firm Office"
    assert parsed["From"].addresses[0].addr_spec == "office@firm.example"


def test_a_host_mime_message_renders_with_what_the_library_adds(sending, server):
    own = b"To: client@example.com\r\nSubject: own\r\n\r\nbody\r\n"
    parsed = parse(sending.render({"from": SENDER, "mime_base64": base64.b64encode(own).decode()}).encode())
    assert parsed["Subject"] == "own" and parsed["Message-ID"] and parsed["Date"]
    nothing_recorded(sending)


@pytest.mark.parametrize("call", ["render", "validate"])
def test_render_and_validate_refuse_what_send_refuses_naming_it(client, server, call):
    configure(client, server)
    run = getattr(client, call)
    error = expect_error(MESSAGE, run, message(to="a@x.example; not an address"))
    assert "not an address" in error.message
    no_from = message()
    del no_from["from"]
    error = expect_error(MESSAGE, run, no_from)
    assert "SMTPSenderEmail" in error.message and "SMTPSenderName" in error.message
    expect_error(NOT_FOUND, run, message(profile="Nowhere"))
    client.blacklist_add("@example.com")
    expect_error(BLOCKED, run, message(to="a@example.com"))
    client.config_set("SMTPEnabled", False)
    expect_error(CONFIG, run, message())
    assert server.connections == 0
    nothing_recorded(client)


def test_validate_checks_the_credential_the_message_would_log_in_with(client, server):
    configure(client, server, auth=True, SMTPAllowPlaintextAuth=True)
    error = expect_error(CREDENTIALS, client.validate, message(user="emp-42"))
    assert "emp-42" in error.message and "Default" in error.message
    client.credentials_set("emp-42", "anna", "pw-anna")
    assert client.validate(message(user="emp-42")) is None
    client.credentials_set("emp-7", "bob", "")
    error = expect_error(CREDENTIALS, client.validate, message(user="emp-7"))
    assert "empty password" in error.message
    client.config_set("SMTPCredentials", "Shared")
    expect_error(CREDENTIALS, client.validate, message(user="emp-42"))
    client.configure({"SMTPUsername": "office", "SMTPPassword": "pw-office"})
    assert client.validate(message(user="emp-42")) is None
    client.config_set("SMTPAuthModel", "OAuth2")
    error = expect_error(CREDENTIALS, client.validate, message())
    assert "OAuth2" in error.message
    assert server.connections == 0
    nothing_recorded(client)


def test_validate_checks_the_server_setting(client):
    client.config_set("SMTPSenderEmail", SENDER)
    error = expect_error(CONFIG, client.validate, message())
    assert "SMTPServer" in error.message
