"""Send limits through smtpb_send (ABI §4 pipeline, §5 SMTPSendLimit /
SMTPSendLimitPeriod / SMTPBatchPerMinute, §7 outbox_stats, §11 Limits),
proved on what a real server received."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

import smtpbridge
from conftest import LIMIT, NOT_FOUND, RFC3339_UTC, configure, expect_error, message, timed
from servers import RecordingServer

WAIT_S = 5.0


def limited(client, server, limit: int = 3, **extra) -> None:
    configure(client, server, SMTPSendLimit=limit, SMTPSendLimitPeriod="Hour", **extra)


def recipients(n: int, tag: str = "r") -> list:
    return [f"{tag}{i}@example.com" for i in range(n)]


def expect_limit(client, server, msg) -> dict:
    """``msg`` is refused with LIMIT, recorded as failed (error_code 11), and nothing goes out."""
    before_messages, before_connections = len(server.messages), server.connections
    error = expect_error(LIMIT, client.send, msg)
    assert error.status is not None, "a LIMIT failure must write its status (ABI §4, §11)"
    assert error.status["state"] == "failed"
    assert error.status["error_code"] == LIMIT
    assert client.status(error.status["id"])["state"] == "failed"
    # Refused within the call, before any connection: nothing can follow.
    assert len(server.messages) == before_messages, "a message over the limit reached the server"
    assert server.connections == before_connections
    return error.status


def test_recipients_up_to_the_limit_go_and_the_next_is_refused(client, server):
    limited(client, server)
    assert client.send(message(to=recipients(2, "a")))["state"] == "sent"
    assert client.send(message(to=["b0@example.com"]))["state"] == "sent"
    received = server.wait_for(2, WAIT_S)
    assert sum(len(m.rcpt_tos) for m in received) == 3
    expect_limit(client, server, message(to=["c0@example.com"]))
    assert len(server.messages) == 2


def test_cc_and_bcc_count_as_recipients(client, server):
    limited(client, server)
    client.send(message(to=["a@example.com"], cc=["b@example.com"], bcc=["c@example.com"]))
    server.wait_for(1, WAIT_S)
    expect_limit(client, server, message(to=["d@example.com"]))


def test_a_message_that_does_not_fit_what_is_left_is_refused_whole(client, server):
    limited(client, server)
    client.send(message(to=recipients(2)))
    server.wait_for(1, WAIT_S)
    expect_limit(client, server, message(to=recipients(2, "late")))
    # What is left (one recipient) is still usable.
    client.send(message(to=["last@example.com"]))
    assert server.wait_for(2, WAIT_S)[1].rcpt_tos == ["last@example.com"]


def test_a_message_over_the_whole_limit_is_refused(client, server):
    limited(client, server)
    status = expect_limit(client, server, message(to=recipients(4)))
    assert status["error"]
    assert client.outbox_stats()["profiles"]["Default"]["sent_in_period"] == 0
    # Nothing was used up by the refusal: the full limit is still there.
    client.send(message(to=recipients(3)))
    assert len(server.wait_for(1, WAIT_S)[0].rcpt_tos) == 3


def test_retry_of_a_limit_refused_message_does_not_bypass_the_limit(client, server):
    limited(client, server, limit=1)
    client.send(message())
    server.wait_for(1, WAIT_S)
    status = expect_limit(client, server, message(to=["x@example.com"]))
    client.retry(status["id"])
    # The outbox takes it and holds it: deferred by the limit.
    deadline = time.monotonic() + WAIT_S
    while (held := client.status(status["id"]))["state"] != "deferred":
        assert time.monotonic() < deadline, held
        time.sleep(0.02)
    assert held["error_code"] == LIMIT
    assert len(server.messages) == 1, "retry bypassed the send limit"


def test_test_mode_addresses_are_what_count(client, server):
    limited(client, server)
    client.configure(SMTPTestMode=True, SMTPTestAddresses="qa1@test.example, qa2@test.example")
    # Five original recipients, but the envelope holds the two test addresses.
    assert client.send(message(to=recipients(3), cc=recipients(1, "c"), bcc=recipients(1, "b")))["state"] == "sent"
    [m] = server.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == ["qa1@test.example", "qa2@test.example"]
    assert client.outbox_stats()["profiles"]["Default"]["sent_in_period"] == 2
    # One original recipient, two envelope recipients: 2 + 2 > 3.
    expect_limit(client, server, message(to=["one@example.com"]))


def test_blacklisted_recipients_are_dropped_before_the_limit_counts(client, server):
    # Pipeline (ABI §4): blacklist, then test mode, then limits on the envelope.
    limited(client, server, limit=2)
    client.blacklist_add("@blocked.example")
    status = client.send(message(to=["a@example.com", "x@blocked.example", "y@blocked.example", "b@example.com"]))
    assert status["state"] == "sent"
    [m] = server.wait_for(1, WAIT_S)
    assert sorted(m.rcpt_tos) == ["a@example.com", "b@example.com"]
    assert client.outbox_stats()["profiles"]["Default"]["sent_in_period"] == 2


def test_queued_mail_over_the_limit_is_deferred_and_released_by_limits_reset(client, server):
    limited(client, server, limit=1)
    client.send(message(subject="first"))
    server.wait_for(1, WAIT_S)
    id = client.enqueue(message(subject="held"))
    deadline = time.monotonic() + WAIT_S
    while client.status(id)["state"] in ("queued", "sending") and time.monotonic() < deadline:
        time.sleep(0.05)
    held = client.status(id)
    assert held["state"] == "deferred", held
    assert held["error"], "a limit-held message names its reason in error"
    client.flush(2000)  # deferred mail does not hold flush
    assert len(server.messages) == 1
    client.limits_reset(None)
    assert client.wait(id, 10000)["state"] == "sent"
    assert server.wait_for(2, WAIT_S)[1].parsed["Subject"] == "held"


def test_limits_reset_of_the_profile_releases_it(client, server):
    limited(client, server)
    client.send(message(to=recipients(3)))
    server.wait_for(1, WAIT_S)
    expect_limit(client, server, message())
    client.limits_reset("Default")
    assert client.outbox_stats()["profiles"]["Default"]["sent_in_period"] == 0
    assert client.send(message(subject="after reset"))["state"] == "sent"
    assert server.wait_for(2, WAIT_S)[1].parsed["Subject"] == "after reset"


def test_limits_reset_of_all_profiles_releases_each(client, server):
    with RecordingServer() as other:
        limited(client, server, limit=1)
        configure(client, other, profile="Backup", SMTPSendLimit=1, SMTPSendLimitPeriod="Day")
        client.send(message())
        client.send(message(profile="Backup"))
        expect_limit(client, server, message())
        expect_limit(client, other, message(profile="Backup"))
        client.limits_reset(None)
        stats = client.outbox_stats()["profiles"]
        assert stats["Default"]["sent_in_period"] == 0 and stats["Backup"]["sent_in_period"] == 0
        client.send(message(subject="default again"))
        client.send(message(profile="Backup", subject="backup again"))
        assert server.wait_for(2, WAIT_S)[1].parsed["Subject"] == "default again"
        assert other.wait_for(2, WAIT_S)[1].parsed["Subject"] == "backup again"


def test_limits_are_counted_per_profile(client, server):
    with RecordingServer() as other:
        limited(client, server, limit=1)
        configure(client, other, profile="Backup")
        client.send(message())
        expect_limit(client, server, message())
        assert client.send(message(profile="Backup"))["state"] == "sent"
        other.wait_for(1, WAIT_S)


def test_limits_reset_is_case_insensitive_and_unknown_profile_is_not_found(client, server):
    limited(client, server, limit=1)
    client.send(message())
    expect_limit(client, server, message())
    client.limits_reset("dEfAuLt")
    client.send(message())
    server.wait_for(2, WAIT_S)
    error = expect_error(NOT_FOUND, client.limits_reset, "Nowhere")
    assert "Nowhere" in error.message


def test_the_count_survives_closing_and_reopening_the_data_dir(data_dir, server):
    with smtpbridge.Client(data_dir) as first:
        limited(first, server)
        first.send(message(to=recipients(3)))
        server.wait_for(1, WAIT_S)
    with smtpbridge.Client(data_dir) as second:
        stats = second.outbox_stats()["profiles"]["Default"]
        assert stats["sent_in_period"] == 3
        assert stats["limit"] == 3
        expect_limit(second, server, message())
        second.limits_reset("Default")
    with smtpbridge.Client(data_dir) as third:
        assert third.outbox_stats()["profiles"]["Default"]["sent_in_period"] == 0
        third.send(message())
        server.wait_for(2, WAIT_S)


def test_outbox_stats_show_the_limit_of_each_profile(client, server):
    limited(client, server)
    stats = client.outbox_stats()["profiles"]["Default"]
    assert stats["sent_in_period"] == 0
    assert stats["limit"] == 3
    assert stats["period"] == "Hour"
    started = datetime.now(timezone.utc)
    client.send(message(to=recipients(2)))
    server.wait_for(1, WAIT_S)
    stats = client.outbox_stats()["profiles"]["Default"]
    assert stats["sent_in_period"] == 2
    assert stats["limit"] == 3
    assert stats["period"] == "Hour"
    assert isinstance(stats["resets_at"], str) and RFC3339_UTC.match(stats["resets_at"]), stats
    resets_at = datetime.fromisoformat(stats["resets_at"].replace("Z", "+00:00"))
    assert started + timedelta(minutes=59) <= resets_at <= started + timedelta(minutes=61), resets_at


def test_period_enum_is_case_insensitive_and_reported_canonically(client, server):
    configure(client, server, SMTPSendLimit=5, SMTPSendLimitPeriod="dAy")
    assert client.config_get("SMTPSendLimitPeriod") == "Day"
    assert client.outbox_stats()["profiles"]["Default"]["period"] == "Day"


def test_batch_per_minute_refuses_a_third_sync_send_with_limit_not_a_hang(client, server):
    configure(client, server, timeout_ms=1000, SMTPBatchPerMinute=2)
    assert client.send(message(subject="one"))["state"] == "sent"
    assert client.send(message(subject="two"))["state"] == "sent"
    server.wait_for(2, WAIT_S)
    outcome, seconds = timed(client.send, message(subject="three"))
    assert isinstance(outcome, smtpbridge.SmtpBridgeError), f"the third send succeeded: {outcome!r}"
    assert outcome.code == LIMIT, f"expected LIMIT, got {outcome.name}: {outcome.message}"
    assert seconds < 5.0, f"the third send took {seconds:.1f}s"
    assert outcome.status is not None and outcome.status["error_code"] == LIMIT
    assert [m.parsed["Subject"] for m in server.messages] == ["one", "two"]
