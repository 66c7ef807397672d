"""Test mode (ABI §4 pipeline, §5 SMTPTestMode / SMTPTestAddresses, §6), proved on
what real servers received: the envelope holds exactly the test addresses,
X-Original-To lists the original To and Cc, Bcc never appears in a header."""

from __future__ import annotations

from email.utils import getaddresses

import pytest

from conftest import CONFIG, SENDER, configure, expect_error, message

WAIT_S = 5.0
QA = ["qa1@test.example", "qa2@test.example"]
TO = ["to-one@example.com", {"email": "to-two@example.com", "name": "To Two"}]
CC = ["cc-one@example.com"]
BCC = ["hidden-bcc@example.com", "second-hidden@example.org"]
ORIGINAL = ["to-one@example.com", "to-two@example.com", "cc-one@example.com"]


@pytest.fixture
def testing(client, main):
    configure(client, main)
    client.configure(SMTPTestMode=True, SMTPTestAddresses="qa1@test.example, qa2@test.example")
    return client


def all_header_text(m) -> str:
    """Every header line of a received message, unfolded, lower-cased."""
    head = m.raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    return head.replace("\r\n ", " ").replace("\r\n\t", " ").lower()


def original_to(m) -> list:
    values = m.parsed.get_all("X-Original-To") or []
    return sorted(addr.lower() for _, addr in getaddresses([str(v) for v in values]))


def check_redirected(m, *, original=ORIGINAL, bcc=BCC) -> None:
    assert sorted(m.rcpt_tos) == QA, m.rcpt_tos
    assert original_to(m) == sorted(original)
    head = all_header_text(m)
    for address in bcc:
        assert address.lower() not in head, f"{address} appears in a header"
        assert address.encode() not in m.raw, f"{address} appears in the message"
    assert m.parsed["Bcc"] is None


def test_envelope_holds_exactly_the_test_addresses(testing, main):
    status = testing.send(message(to=TO, cc=CC, bcc=BCC, subject="redirected"))
    assert status["state"] == "sent"
    [m] = main.wait_for(1, WAIT_S)
    assert m.mail_from == SENDER
    check_redirected(m)
    assert m.parsed["Subject"] == "redirected"


def test_no_original_recipient_is_in_the_envelope(testing, main):
    testing.send(message(to=TO, cc=CC, bcc=BCC))
    [m] = main.wait_for(1, WAIT_S)
    originals = {"to-one@example.com", "to-two@example.com", "cc-one@example.com", *BCC}
    assert not originals & {r.lower() for r in m.rcpt_tos}


def test_x_original_to_lists_to_and_cc_but_never_bcc(testing, main):
    testing.send(message(to=["only-to@example.com"], cc=["only-cc@example.com"],
                         bcc=["never-shown@example.com"]))
    [m] = main.wait_for(1, WAIT_S)
    check_redirected(m, original=["only-to@example.com", "only-cc@example.com"],
                     bcc=["never-shown@example.com"])


def test_a_bcc_only_message_reveals_its_bcc_nowhere(testing, main):
    testing.send(message(to=[], bcc=BCC))
    [m] = main.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == QA
    for address in BCC:
        assert address.encode() not in m.raw
    assert original_to(m) == []


def test_one_test_address_is_enough(client, main):
    configure(client, main)
    client.configure(SMTPTestMode=True, SMTPTestAddresses="solo@test.example")
    client.send(message(to=TO, cc=CC, bcc=BCC))
    [m] = main.wait_for(1, WAIT_S)
    assert m.rcpt_tos == ["solo@test.example"]


def test_queued_mail_is_redirected_too(testing, main):
    id = testing.enqueue(message(to=TO, cc=CC, bcc=BCC))
    assert testing.wait(id, 10000)["state"] == "sent"
    [m] = main.wait_for(1, WAIT_S)
    check_redirected(m)


def test_test_mode_applies_to_every_routed_profile(testing, main, backup):
    configure(testing, backup, profile="Backup", SMTPFilter="other.example")
    assert testing.send(message(to=TO, cc=CC, bcc=BCC))["profile"] == "Default"
    assert testing.send(message(**{"from": "x@other.example"}, to=TO, cc=CC, bcc=BCC))["profile"] == "Backup"
    assert testing.send(message(profile="Backup", to=TO, cc=CC, bcc=BCC))["profile"] == "Backup"
    [m] = main.wait_for(1, WAIT_S)
    check_redirected(m)
    received = backup.wait_for(2, WAIT_S)
    for m in received:
        check_redirected(m)


def test_turning_test_mode_off_delivers_to_the_real_recipients(testing, main):
    testing.config_set("SMTPTestMode", False)
    testing.send(message(to=["real@example.com"], bcc=["real-bcc@example.com"]))
    [m] = main.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == ["real-bcc@example.com", "real@example.com"]
    assert m.parsed["X-Original-To"] is None


@pytest.mark.parametrize("key", ["Backup.SMTPTestMode", "Default.SMTPTestMode",
                                 "Backup.SMTPTestAddresses"])
def test_a_prefix_on_a_test_mode_key_is_config_error(client, key):
    error = expect_error(CONFIG, client.config_set, key, "true" if key.endswith("Mode") else QA[0])
    assert key.split(".")[1] in error.message
    assert client.config_get("SMTPTestMode") == "false"


def test_a_prefixed_test_mode_key_in_an_import_is_config_error(client):
    expect_error(CONFIG, client.config_import_keys,
                 "SMTPServer=mail.example\nBackup.SMTPTestMode=true\n")
    assert client.config_get("SMTPTestMode") == "false"


@pytest.mark.parametrize("addresses", [None, "", " , "], ids=["unset", "empty", "commas"])
def test_test_mode_without_addresses_is_config_error_at_send(client, main, addresses):
    configure(client, main)
    client.config_set("SMTPTestMode", True)
    if addresses is not None:
        try:
            client.config_set("SMTPTestAddresses", addresses)
        except Exception as error:  # refusing the value itself is fine too
            assert getattr(error, "code", None) == CONFIG
    error = expect_error(CONFIG, client.send, message())
    assert error.status is None
    assert "SMTPTestAddresses" in error.message
    expect_error(CONFIG, client.enqueue, message())
    client.flush(2000)
    assert main.messages == [] and main.connections == 0


# --- 1.2: test mode in the status, SMTPTestSubjectPrefix (ABI §20) ------------------------------


def test_the_status_names_the_test_addresses_and_the_original_recipients(testing, main):
    status = testing.send(message(to=TO, cc=CC, bcc=BCC))
    assert status["test_mode"] == {"redirected_to": QA, "original": ORIGINAL + BCC}
    assert testing.status(status["id"])["test_mode"] == status["test_mode"]
    [m] = main.wait_for(1, WAIT_S)
    check_redirected(m)


def test_the_status_test_mode_is_null_when_test_mode_is_off(client, main):
    configure(client, main)
    status = client.send(message())
    assert "test_mode" in status and status["test_mode"] is None
    assert main.wait_for(1, WAIT_S)[0].rcpt_tos == ["client@example.com"]


def test_the_subject_prefix_goes_before_the_subject_of_redirected_mail_only(testing, main):
    testing.config_set("SMTPTestSubjectPrefix", "[TEST]")
    assert testing.config_get("SMTPTestSubjectPrefix") == "[TEST]"
    testing.send(message(to=TO, subject="Your invoice"))
    testing.config_set("SMTPTestSubjectPrefix", "TEST: ")
    testing.send(message(to=TO, subject="Zweite Mahnung für Müller"))
    first, second = main.wait_for(2, WAIT_S)
    assert first.parsed["Subject"] == "[TEST] Your invoice"
    assert second.parsed["Subject"] == "TEST: Zweite Mahnung für Müller"
    testing.config_set("SMTPTestMode", False)
    testing.send(message(to=["real@example.com"], subject="Your invoice"))
    third = main.wait_for(3, WAIT_S)[2]
    assert third.rcpt_tos == ["real@example.com"] and third.parsed["Subject"] == "Your invoice"


def test_the_subject_prefix_is_a_profile_key(testing, main, backup):
    configure(testing, backup, profile="Backup", SMTPTestSubjectPrefix="[BACKUP TEST]")
    testing.send(message(subject="via default"))
    testing.send(message(profile="Backup", subject="via backup"))
    assert main.wait_for(1, WAIT_S)[0].parsed["Subject"] == "via default"
    assert backup.wait_for(1, WAIT_S)[0].parsed["Subject"] == "[BACKUP TEST] via backup"
    expect_error(CONFIG, testing.config_set, "SMTPTestSubjectPrefix", "bad\nprefix")


def test_test_addresses_take_semicolons_and_display_names(client, main):
    configure(client, main)
    client.configure(SMTPTestMode=True,
                     SMTPTestAddresses="qa1@test.example; Tester, QA <qa2@test.example>")
    assert client.config_get("SMTPTestAddresses") == "qa1@test.example,qa2@test.example"
    status = client.send(message(to=TO, cc=CC))
    assert status["test_mode"]["redirected_to"] == QA
    [m] = main.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == QA
    error = expect_error(CONFIG, client.config_set, "SMTPTestAddresses", "qa1@test.example; not-an-address")
    assert "not-an-address" in error.message
