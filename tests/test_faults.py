"""Faulty servers: each failure lands in the right result code and status
(ABI §2, §4 "Errors by phase", §7, §11; security-anchors §0.2, §0.3)."""

from __future__ import annotations

import time

import pytest

from conftest import (
    CONNECT,
    MESSAGE,
    TLS,
    REJECTED,
    SAFETY_S,
    TRANSIENT,
    ClosedPort,
    configure,
    expect_error,
    message,
    timed,
)
from servers import DROP, HANG, RecordingServer, Script, ScriptedServer

TIMEOUT_MS = 1000


def scripted(client, script: Script, **keys):
    server = ScriptedServer(script)
    configure(client, server, **keys)
    return server


def failed_send(client, code, msg=None):
    """Send; it must fail with ``code`` within the safety bound. Returns the exception."""
    outcome, elapsed = timed(client.send, msg or message())
    assert elapsed < SAFETY_S, f"send took {elapsed:.1f} s"
    assert not isinstance(outcome, dict), f"expected code {code}, but it was sent: {outcome}"
    assert outcome.code == code, f"expected {code}, got {outcome.name}: {outcome.message}"
    return outcome


# --- before MAIL: CONNECT -------------------------------------------------------------------


def test_5xx_greeting_is_connect(client):
    with scripted(client, Script(greeting="554 5.7.1 mail.example blocked")) as server:
        error = failed_send(client, CONNECT)
        assert "MAIL" not in server.commands()
    assert error.status["state"] == "failed"
    assert error.status["error_code"] == CONNECT


@pytest.mark.parametrize("greeting", ["421 4.3.2 Service not available", "hello, I am not SMTP"])
def test_4xx_or_garbled_greeting_is_connect(client, greeting):
    with scripted(client, Script(greeting=greeting), timeout_ms=TIMEOUT_MS) as server:
        failed_send(client, CONNECT)
        assert "MAIL" not in server.commands()


def test_no_greeting_is_connect_within_the_timeout(client):
    with scripted(client, Script(greeting=HANG), timeout_ms=TIMEOUT_MS):
        error = failed_send(client, CONNECT)
    assert error.status["state"] == "failed"


def test_dripped_greeting_is_connect_within_the_overall_deadline(client):
    # 33 bytes at 200 ms each = 6.6 s: every read gets a byte in time, the phase does not.
    script = Script(greeting="220 scripted.test ESMTP scripted", drip_ms=200, drip_at={"GREETING"})
    with scripted(client, script, timeout_ms=TIMEOUT_MS):
        _, elapsed = timed(failed_send, client, CONNECT)
    assert elapsed < 5, f"a 1 s deadline took {elapsed:.1f} s"


def test_dripped_ehlo_reply_is_connect_within_the_overall_deadline(client):
    with scripted(client, Script(drip_ms=200, drip_at={"EHLO"}), timeout_ms=TIMEOUT_MS) as server:
        _, elapsed = timed(failed_send, client, CONNECT)
        assert "MAIL" not in server.commands()
    assert elapsed < 5, f"a 1 s deadline took {elapsed:.1f} s"


def test_one_deadline_covers_greeting_and_ehlo_together(client):
    # Greeting (34 bytes) and EHLO reply (52 bytes) at 25 ms a byte: each fits in
    # 1.5 s on its own, together they do not. ABI §4: one deadline for the phase.
    script = Script(greeting="220 scripted.test ESMTP scripted", ehlo_caps=["8BITMIME"],
                    drip_ms=25, drip_at={"GREETING", "EHLO"})
    with scripted(client, script, timeout_ms=1500, SMTPHeloName="client.test") as server:
        failed_send(client, CONNECT)
        assert "MAIL" not in server.commands()


def test_dripped_reply_after_mail_is_transient_within_the_deadline(client):
    script = Script(replies={"MAIL": ["250 2.1.0 sender accepted, but slowly, very slowly"]},
                    drip_ms=200, drip_at={"MAIL"})
    with scripted(client, script, timeout_ms=TIMEOUT_MS):
        _, elapsed = timed(failed_send, client, TRANSIENT)
    assert elapsed < 5, f"a 1 s deadline took {elapsed:.1f} s"


def test_dripped_reply_after_the_final_dot_is_transient_and_a_possible_duplicate(client):
    script = Script(replies={"DOT": ["250 2.0.0 queued as 4711, slowly, very, very slowly"]},
                    drip_ms=200, drip_at={"DOT"})
    with scripted(client, script, timeout_ms=TIMEOUT_MS):
        error, elapsed = timed(failed_send, client, TRANSIENT)
    assert elapsed < 5, f"a 1 s deadline took {elapsed:.1f} s"
    assert error.status["possible_duplicate"] is True


def test_endless_multiline_greeting_is_connect_within_the_deadline(client):
    # 100,000 continuation lines and never a last line: the read must be bounded.
    greeting = "\r\n".join(["220-filler line"] * 100_000)
    with scripted(client, Script(greeting=greeting), timeout_ms=TIMEOUT_MS):
        failed_send(client, CONNECT)


def test_silent_server_during_the_implicit_tls_handshake_is_bounded(client):
    with scripted(client, Script(greeting=HANG), encryption="SSL", timeout_ms=TIMEOUT_MS):
        outcome, elapsed = timed(client.send, message())
    assert elapsed < SAFETY_S
    assert getattr(outcome, "code", None) == TLS, outcome  # the handshake ran out of time


def test_ehlo_5xx_falls_back_to_helo_and_sends(client):
    with scripted(client, Script(replies={"EHLO": ["502 5.5.2 EHLO not supported"]})) as server:
        status = client.send(message())
        [m] = server.wait_for(1)
        commands = server.commands()
    assert commands[:3] == ["EHLO", "HELO", "MAIL"]
    assert status["state"] == "sent" and m.rcpt_tos == ["client@example.com"]


def test_ehlo_and_helo_both_refused_is_connect(client):
    script = Script(replies={"EHLO": ["502 5.5.2 no"], "HELO": ["502 5.5.2 no"]})
    with scripted(client, script) as server:
        failed_send(client, CONNECT)
        assert "MAIL" not in server.commands()


def test_connection_refused_is_connect(client):
    configure(client, ClosedPort(), timeout_ms=2000)
    error = failed_send(client, CONNECT)
    assert error.status["state"] == "failed" and error.status["error_code"] == CONNECT


# --- from MAIL on: TRANSIENT or REJECTED ----------------------------------------------------


def test_mail_451_is_transient(client):
    with scripted(client, Script(replies={"MAIL": ["451 4.3.0 Try again later"]})) as server:
        error = failed_send(client, TRANSIENT)
        assert server.messages == []
    assert error.status["state"] == "failed"
    assert error.status["smtp_code"] == 451
    assert error.status["enhanced_code"] == "4.3.0"
    assert error.status["error_code"] == TRANSIENT


def test_final_dot_550_is_rejected_with_codes_in_the_status(client):
    with scripted(client, Script(replies={"DOT": ["550 5.7.1 Message refused as spam"]})):
        error = failed_send(client, REJECTED)
    status = error.status
    assert status["state"] == "failed"
    assert status["smtp_code"] == 550
    assert status["enhanced_code"] == "5.7.1"
    assert status["smtp_response"] == "Message refused as spam"
    assert status["error_code"] == REJECTED
    assert status["possible_duplicate"] is False


def test_status_of_a_failed_send_is_kept_under_its_id(client):
    with scripted(client, Script(replies={"DOT": ["554 5.6.0 bad content"]})):
        error = failed_send(client, REJECTED)
    assert client.status(error.status["id"]) == error.status
    assert error.status["attempts"] == 1
    assert error.status["error"] and "554" in error.status["error"]
    assert error.status["sent_at"] is None


def test_final_dot_451_is_transient(client):
    with scripted(client, Script(replies={"DOT": ["451 4.7.1 Greylisted, try later"]})):
        error = failed_send(client, TRANSIENT)
    assert error.status["smtp_code"] == 451
    assert error.status["possible_duplicate"] is False


def test_one_recipient_of_three_refused_is_a_partial_send(client):
    script = Script(rcpt_replies={"gone@example.com": "550 5.1.1 No such user"})
    with scripted(client, script) as server:
        status = client.send(message(to=["a@example.com", "gone@example.com", "c@example.com"]))
        [m] = server.wait_for(1)
    assert m.rcpt_tos == ["a@example.com", "c@example.com"]
    assert status["state"] == "sent"
    assert status["partial"] is True
    assert status["rejected"] == [{
        "address": "gone@example.com", "smtp_code": 550,
        "enhanced_code": "5.1.1", "smtp_response": "No such user",
    }]


def test_every_recipient_refused_is_rejected_and_failed(client):
    script = Script(rcpt_replies={"a@example.com": "550 5.1.1 No such user",
                                  "b@example.com": "550 5.1.1 No such user"})
    with scripted(client, script) as server:
        error = failed_send(client, REJECTED, message(to=["a@example.com", "b@example.com"]))
        assert server.messages == []
    status = error.status
    assert status["state"] == "failed"
    assert status["partial"] is False
    assert sorted(r["address"] for r in status["rejected"]) == ["a@example.com", "b@example.com"]


def test_connection_dropped_after_the_final_dot_is_a_possible_duplicate(client):
    with scripted(client, Script(replies={"DOT": [DROP]})) as server:
        error = failed_send(client, TRANSIENT)
        assert len(server.messages) == 1  # the data did arrive
    assert error.status["possible_duplicate"] is True
    assert error.status["state"] == "failed"


def test_hung_reply_after_the_final_dot_is_transient_within_the_timeout(client):
    with scripted(client, Script(replies={"DOT": [HANG]}), timeout_ms=1500) as server:
        error = failed_send(client, TRANSIENT)
        assert len(server.messages) == 1
    assert error.status["possible_duplicate"] is True


def test_connection_dropped_at_mail_is_transient_without_duplicate(client):
    with scripted(client, Script(replies={"MAIL": [DROP]})) as server:
        error = failed_send(client, TRANSIENT)
        assert server.messages == []
    assert error.status["possible_duplicate"] is False


def test_message_over_the_servers_size_is_rejected_without_data(client):
    script = Script(ehlo_caps=["SIZE 1000", "PIPELINING", "8BITMIME"])
    with scripted(client, script) as server:
        error = failed_send(client, REJECTED, message(text="x" * 5000))
        assert "DATA" not in server.commands()
        assert server.messages == []
    assert error.status["state"] == "failed"
    # The library's own refusal: no server reply is made up for it.
    assert error.status["smtp_code"] is None and error.status["smtp_response"] is None
    assert "SIZE 1000" in error.status["error"]


def test_message_under_the_servers_size_is_sent(client):
    with scripted(client, Script(ehlo_caps=["SIZE 100000", "8BITMIME"])) as server:
        client.send(message(text="small"))
        assert len(server.wait_for(1)) == 1


def test_message_over_max_message_bytes_is_a_message_error_at_the_call(client):
    with RecordingServer() as server:
        configure(client, server, SMTPMaxMessageBytes=2000)
        error = expect_error(MESSAGE, client.send, message(text="y" * 5000))
        assert server.connections == 0
    assert error.status is None


# --- PIPELINING --------------------------------------------------------------------------------


def test_pipelining_keeps_mail_and_every_rcpt_right(client):
    with scripted(client, Script(ehlo_caps=["PIPELINING", "8BITMIME"])) as server:
        client.send(message(to=["a@example.com", "b@example.com"], cc=["c@example.com"],
                            bcc=["d@example.com"]))
        [m] = server.wait_for(1)
        commands = server.commands()
    assert m.mail_from == "anna@firm.example"
    assert m.rcpt_tos == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    assert commands[commands.index("MAIL"):commands.index("DATA") + 1] == [
        "MAIL", "RCPT", "RCPT", "RCPT", "RCPT", "DATA"]


def test_pipelining_matches_each_rcpt_reply_to_its_recipient(client):
    script = Script(ehlo_caps=["PIPELINING", "8BITMIME"],
                    rcpt_replies={"b@example.com": "550 5.1.1 b is gone",
                                  "d@example.com": "551 5.1.6 d has moved"})
    with scripted(client, script) as server:
        status = client.send(message(to=["a@example.com", "b@example.com", "c@example.com", "d@example.com"]))
        [m] = server.wait_for(1)
    assert m.rcpt_tos == ["a@example.com", "c@example.com"]
    rejected = {r["address"]: (r["smtp_code"], r["smtp_response"]) for r in status["rejected"]}
    assert rejected == {"b@example.com": (550, "b is gone"), "d@example.com": (551, "d has moved")}
    assert status["partial"] is True


def test_without_pipelining_the_dialogue_still_works(client):
    with scripted(client, Script(ehlo_caps=["8BITMIME"])) as server:
        client.send(message(to=["a@example.com", "b@example.com"]))
        assert server.wait_for(1)[0].rcpt_tos == ["a@example.com", "b@example.com"]


@pytest.mark.parametrize("caps", [["SMTPUTF8", "8BITMIME"], ["8BITMIME"]])
def test_non_ascii_body_arrives_with_or_without_smtputf8(client, caps):
    with scripted(client, Script(ehlo_caps=caps)) as server:
        client.send(message(text="Grüße € ✓", subject="Grüße"))
        [m] = server.wait_for(1)
    assert m.parsed.get_content().strip() == "Grüße € ✓"
    assert m.parsed["Subject"] == "Grüße"


def test_a_host_name_is_resolved_and_each_address_tried(client):
    # "localhost" may resolve to ::1 first, where nothing listens: the
    # next address (127.0.0.1) must be tried within the same deadline.
    with RecordingServer() as server:
        configure(client, server, SMTPServer="localhost")
        status = client.send(message())
        server.wait_for(1)
    assert status["state"] == "sent"


def test_a_name_that_does_not_resolve_is_connect_within_the_deadline(client):
    with RecordingServer() as server:
        configure(client, server, timeout_ms=1000, SMTPServer="no-such-host.invalid")
        started = time.monotonic()
        error = expect_error(CONNECT, client.send, message())
    assert time.monotonic() - started < 10
    assert "no-such-host.invalid" in error.message
    assert server.messages == []


def test_a_4xx_for_one_recipient_after_a_pipelined_354_delivers_to_nobody(client):
    # MAIL, RCPT and DATA go out in one write; the server accepts one
    # recipient, defers the other, and answers DATA with 354. The message
    # must not go to the accepted one alone: the client ends the session
    # without the final dot and the whole message is retried later.
    script = Script(rcpt_replies={"later@example.com": "451 4.2.1 try later"})
    with ScriptedServer(script) as server:
        configure(client, server)
        error = expect_error(TRANSIENT, client.send, message(to=["now@example.com", "later@example.com"]))
        assert "later@example.com" in error.message
        server.wait_closed(1)  # the client ended the session: no final dot can follow
        assert server.messages == []
        assert "DATA" in server.commands()
    assert error.status["state"] == "failed"
