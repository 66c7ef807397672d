"""The outbox seen from outside: enqueue, background delivery with retries,
cancel/retry, idempotency, listing and stats, pause, send limits and OAuth2
credentials (ABI §4 "Sending", "Errors by phase", "Outbox"; §7; §11).

Every assertion is on what a server received or on status/events.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone

import pytest

from conftest import (
    CONNECT,
    INVALID_ARGUMENT,
    LIMIT,
    NOT_FOUND,
    REJECTED,
    RFC3339_UTC,
    STATE,
    TIMEOUT,
    TRANSIENT,
    ULID,
    ClosedPort,
    configure,
    expect_error,
    marker_arrives,
    message,
    timed,
)
import smtpbridge
from servers import DROP, HANG, RecordingServer, Script, ScriptedServer

#: A well-formed ULID no client ever made.
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
WAIT_MS = 10_000


# --- helpers ------------------------------------------------------------------------------


def fast_retries(client, initial_ms=100, max_ms=400, **extra):
    """Short backoff so a test sees several attempts within a second."""
    client.config_set("SMTPRetryInitialMs", initial_ms)
    client.config_set("SMTPRetryMaxMs", max_ms)
    for key, value in extra.items():
        client.config_set(key, value)


def poll(predicate, timeout=5.0, what="a condition", interval=0.02):
    """Call ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def wait_state(client, id, state, timeout=5.0):
    """Poll status(id) until it is in ``state``; return that status."""
    seen = []

    def check():
        status = client.status(id)
        seen.append(status["state"])
        return status if status["state"] == state else None

    try:
        return poll(check, timeout, f"message {id} to be {state}")
    except AssertionError:
        raise AssertionError(f"message {id} never became {state}; states seen: {sorted(set(seen))}; "
                             f"last status: {client.status(id)}") from None


def message_id(received):
    """The Message-ID header of a received message, as the status writes it."""
    return received.parsed["Message-ID"].strip()


class Recorder:
    """An event callback that keeps every event."""

    def __init__(self):
        self.events = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)

    def snapshot(self):
        with self.lock:
            return list(self.events)

    def of_type(self, kind):
        return [e for e in self.snapshot() if e.get("type") == kind]


# --- enqueue, wait, flush, attachments ------------------------------------------------------


def test_enqueue_returns_a_ulid_at_once_before_delivery(client):
    # A server that never greets: delivery cannot finish, enqueue must not wait for it.
    with ScriptedServer(Script(greeting=HANG)) as server:
        configure(client, server, timeout_ms=3000)
        started = time.monotonic()
        id = client.enqueue(message())
        elapsed = time.monotonic() - started
        assert len(id) == 26 and ULID.match(id), id
        assert elapsed < 1.0, f"enqueue took {elapsed:.2f} s"
        wait_state(client, id, "sending")  # and it stays sending while the server is silent


def test_enqueued_message_arrives_and_wait_returns_the_sent_status(client):
    with RecordingServer() as server:
        configure(client, server)
        id = client.enqueue(message(subject="outbox one", reference="CL-1001/DOC-7"))
        status = client.wait(id, WAIT_MS)
        [received] = server.wait_for(1)
    assert status["id"] == id
    assert status["state"] == "sent"
    assert status["attempts"] == 1
    assert status["error_code"] == 0 and status["error"] is None
    assert status["reference"] == "CL-1001/DOC-7"
    assert status["smtp_code"] == 250
    assert status["sent_at"] is not None
    assert received.parsed["Subject"] == "outbox one"
    assert message_id(received) == status["message_id"]


def test_flush_returns_when_nothing_is_queued_or_sending(client):
    with RecordingServer() as server:
        configure(client, server)
        ids = [client.enqueue(message(subject=f"flush {n}")) for n in range(5)]
        client.flush(WAIT_MS)
        stats = client.outbox_stats()
        assert stats["queued"] == 0 and stats["sending"] == 0
        assert stats["sent"] == 5
        assert [client.status(i)["state"] for i in ids] == ["sent"] * 5
        assert len(server.messages) == 5


def test_attachment_is_read_at_enqueue(client, tmp_path):
    payload = os.urandom(3000)
    path = tmp_path / "report.bin"
    path.write_bytes(payload)
    with RecordingServer() as server:
        configure(client, server)
        client.outbox_pause(None)  # nothing is read at delivery time before the file is gone
        id = client.enqueue(message(attachments=[{"path": str(path), "name": "report.bin"}]))
        path.unlink()
        client.outbox_resume(None)
        status = client.wait(id, WAIT_MS)
        [received] = server.wait_for(1)
    assert status["state"] == "sent"
    parts = [p for p in received.parsed.walk() if p.get_filename() == "report.bin"]
    assert len(parts) == 1
    assert parts[0].get_content() == payload


# --- retries, permanent failures, faults -----------------------------------------------------


def test_two_451s_then_250_is_sent_on_the_third_attempt_with_one_message_id(client):
    with ScriptedServer(Script(replies={"DOT": ["451 4.3.0 try later", "451 4.3.0 try later"]})) as server:
        configure(client, server)
        fast_retries(client)
        id = client.enqueue(message())
        status = client.wait(id, WAIT_MS)
        messages = server.wait_for(3)
    assert status["state"] == "sent"
    assert status["attempts"] == 3
    assert len(messages) == 3
    assert {message_id(m) for m in messages} == {status["message_id"]}


def test_550_fails_at_once_with_the_reply(client):
    with ScriptedServer(Script(replies={"DOT": ["550 5.7.1 Message refused as spam"]})) as server:
        configure(client, server)
        fast_retries(client)
        id = client.enqueue(message())
        status, elapsed = timed(client.wait, id, WAIT_MS)
        assert len(server.messages) == 1
    assert elapsed < 3
    # Failed is final: no next attempt is planned.
    assert status["state"] == "failed" and status["next_attempt_at"] is None
    assert status["attempts"] == 1
    assert status["error_code"] == REJECTED
    assert status["smtp_code"] == 550
    assert status["enhanced_code"] == "5.7.1"
    assert status["error"]


def test_550_for_one_of_three_recipients_is_sent_partial(client):
    gone = "gone@example.com"
    script = Script(rcpt_replies={gone: "550 5.1.1 No such user"})
    with ScriptedServer(script) as server:
        configure(client, server)
        id = client.enqueue(message(to=["a@example.com", gone, "c@example.com"]))
        status = client.wait(id, WAIT_MS)
        [received] = server.wait_for(1)
    assert status["state"] == "sent"
    assert status["partial"] is True
    assert received.rcpt_tos == ["a@example.com", "c@example.com"]
    assert len(status["rejected"]) == 1
    [refusal] = status["rejected"]
    assert refusal["address"] == gone
    assert refusal["smtp_code"] == 550
    assert refusal["enhanced_code"] == "5.1.1"
    assert refusal["smtp_response"] == "No such user"


def test_connection_dropped_after_the_final_dot_is_a_possible_duplicate_retried_with_the_same_message_id(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with ScriptedServer(Script(replies={"DOT": [DROP]})) as server:
        configure(client, server)
        fast_retries(client, initial_ms=1000, max_ms=1000)
        id = client.enqueue(message())
        deferred = wait_state(client, id, "deferred")
        assert deferred["possible_duplicate"] is True
        assert deferred["error_code"] == TRANSIENT
        status = client.wait(id, WAIT_MS)
        messages = server.wait_for(2)
    assert status["state"] == "sent"
    assert status["attempts"] == 2
    assert len(messages) == 2
    assert {message_id(m) for m in messages} == {status["message_id"]}
    deferred_events = [e for e in recorder.of_type("state") if e["id"] == id and e["state"] == "deferred"]
    assert deferred_events and deferred_events[0]["possible_duplicate"] is True


def test_idle_pooled_connection_closed_by_the_server_loses_no_message(client):
    with ScriptedServer(Script(idle_close_ms=300)) as server:
        configure(client, server)
        fast_retries(client)
        first = client.wait(client.enqueue(message(subject="before")), WAIT_MS)
        server.wait_closed(1)  # the server closed the idle pooled connection
        second = client.wait(client.enqueue(message(subject="after")), WAIT_MS)
        messages = server.wait_for(2)
    assert first["state"] == "sent" and second["state"] == "sent"
    assert second["attempts"] == 1
    assert client.outbox_stats()["failed"] == 0
    assert [m.parsed["Subject"] for m in messages] == ["before", "after"]


def test_silent_server_with_a_1s_timeout_is_deferred_connect_not_failed(client):
    with ScriptedServer(Script(greeting=HANG)) as server:
        configure(client, server, timeout_ms=1000)
        fast_retries(client, initial_ms=10_000, max_ms=10_000)
        id = client.enqueue(message())
        status = wait_state(client, id, "deferred", timeout=5)
    assert status["error_code"] == CONNECT
    assert status["next_attempt_at"] is not None and RFC3339_UTC.match(status["next_attempt_at"])
    assert RFC3339_UTC.match(status["created_at"])
    assert client.outbox_stats()["failed"] == 0


def test_retries_end_failed_with_the_last_code_after_max_age(client):
    configure(client, ClosedPort())
    fast_retries(client, SMTPRetryMaxAgeMs=1500)
    id = client.enqueue(message())
    status = client.wait(id, WAIT_MS)
    assert status["state"] == "failed"
    assert status["error_code"] == CONNECT
    assert status["attempts"] >= 2


def test_transient_retries_end_failed_with_transient_after_max_age(client):
    with ScriptedServer(Script(replies={"DOT": ["451 4.3.0 try later"] * 200})) as server:
        configure(client, server)
        fast_retries(client, SMTPRetryMaxAgeMs=1000)
        id = client.enqueue(message())
        status = client.wait(id, WAIT_MS)
        assert len(server.messages) == status["attempts"]
    assert status["state"] == "failed"
    assert status["error_code"] == TRANSIENT
    assert status["smtp_code"] == 451
    assert status["attempts"] >= 2


# --- cancel, retry, idempotency -------------------------------------------------------------


def test_cancel_a_queued_message(client):
    with RecordingServer() as server:
        configure(client, server)
        client.outbox_pause(None)
        id = client.enqueue(message())
        assert client.status(id)["state"] == "queued"
        client.cancel(id)
        assert client.status(id)["state"] == "cancelled"
        assert client.wait(id, 0)["state"] == "cancelled"
        client.outbox_resume(None)
        assert marker_arrives(client, server) == ["marker"]
        assert client.status(id)["state"] == "cancelled"
        expect_error(STATE, client.retry, id)


def test_cancel_a_deferred_message(client):
    configure(client, ClosedPort())
    fast_retries(client, initial_ms=30_000, max_ms=30_000)
    id = client.enqueue(message())
    wait_state(client, id, "deferred")
    client.cancel(id)
    assert client.status(id)["state"] == "cancelled"


def test_cancel_of_a_sending_message_is_state(client):
    with ScriptedServer(Script(replies={"DOT": [HANG]}, max_wait_s=30)) as server:
        configure(client, server, timeout_ms=20_000)
        id = client.enqueue(message())
        server.wait_for(1)
        assert client.status(id)["state"] == "sending"
        expect_error(STATE, client.cancel, id)
        expect_error(STATE, client.retry, id)
        assert client.status(id)["state"] == "sending"


def test_cancel_a_sent_message_is_state_and_an_unknown_one_not_found(client):
    with RecordingServer() as server:
        configure(client, server)
        id = client.enqueue(message())
        assert client.wait(id, WAIT_MS)["state"] == "sent"
    expect_error(STATE, client.cancel, id)
    expect_error(STATE, client.retry, id)
    assert client.status(id)["state"] == "sent"
    expect_error(NOT_FOUND, client.cancel, UNKNOWN_ID)
    expect_error(NOT_FOUND, client.retry, UNKNOWN_ID)
    expect_error(NOT_FOUND, client.status, UNKNOWN_ID)


def test_retry_of_a_failed_message_queues_it_and_it_is_sent(client):
    with ScriptedServer(Script(replies={"DOT": ["554 5.3.0 temporarily broken filter"]})) as server:
        configure(client, server)
        id = client.enqueue(message())
        assert client.wait(id, WAIT_MS)["state"] == "failed"
        client.outbox_pause(None)  # so the state retry gives is seen before delivery moves it on
        client.retry(id)
        assert client.status(id)["state"] == "queued"
        client.outbox_resume(None)
        status = client.wait(id, WAIT_MS)
        messages = server.wait_for(2)
    assert status["state"] == "sent"
    assert status["attempts"] == 2
    assert status["error_code"] == 0
    assert {message_id(m) for m in messages} == {status["message_id"]}


def test_retry_of_a_deferred_message_sends_it_now(client):
    with ScriptedServer(Script(replies={"GREETING": ["421 4.3.2 busy, come back later"]})) as server:
        configure(client, server)
        fast_retries(client, initial_ms=30_000, max_ms=30_000)
        id = client.enqueue(message())
        wait_state(client, id, "deferred")
        client.retry(id)
        status, elapsed = timed(client.wait, id, WAIT_MS)
        server.wait_for(1)
    assert elapsed < 5
    assert status["state"] == "sent"
    assert status["attempts"] == 2


def test_failed_send_can_be_retried_through_the_outbox_with_the_same_message_id(client):
    with ScriptedServer(Script(replies={"DOT": ["550 5.7.1 not now"]})) as server:
        configure(client, server)
        error = expect_error(REJECTED, client.send, message())
        assert error.status is not None and error.status["state"] == "failed"
        id = error.status["id"]
        assert client.status(id)["state"] == "failed"
        client.retry(id)
        status = client.wait(id, WAIT_MS)
        messages = server.wait_for(2)
    assert status["state"] == "sent"
    assert status["message_id"] == error.status["message_id"]
    assert [message_id(m) for m in messages] == [status["message_id"]] * 2


def test_idempotency_key_returns_the_first_id_and_sends_once(client):
    with RecordingServer() as server:
        configure(client, server)
        first = client.enqueue(message(idempotency_key="DOC-7-send-1"))
        second = client.enqueue(message(idempotency_key="DOC-7-send-1", subject="changed"))
        assert second == first
        client.wait(first, WAIT_MS)
        client.flush(WAIT_MS)
        third = client.enqueue(message(idempotency_key="DOC-7-send-1"))
        assert third == first
        assert marker_arrives(client, server) == ["Test message", "marker"]
    assert len(client.outbox_list()) == 2  # the first message and the marker


def test_idempotency_key_is_kept_across_reopen(data_dir):
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir) as first:
            configure(first, server)
            id = first.enqueue(message(idempotency_key="DOC-9-send-1"))
            assert first.wait(id, WAIT_MS)["state"] == "sent"
        with smtpbridge.Client(data_dir) as second:
            assert second.enqueue(message(idempotency_key="DOC-9-send-1")) == id
            assert marker_arrives(second, server) == ["Test message", "marker"]


def test_wait_on_a_message_that_is_not_final_is_timeout(client):
    configure(client, ClosedPort())
    client.outbox_pause(None)
    id = client.enqueue(message())
    expect_error(TIMEOUT, client.wait, id, 0)
    outcome, elapsed = timed(client.wait, id, 300)
    assert getattr(outcome, "code", None) == TIMEOUT
    assert 0.2 < elapsed < 2


def test_batch_cancel_cancels_what_it_can(client):
    with RecordingServer() as server:
        configure(client, server)
        client.outbox_pause(None)
        batch = client.merge({"from": "anna@firm.example", "subject": "Hi {{Name}}", "text": "Dear {{Name}}"},
                             [{"email": f"r{n}@example.com", "fields": {"Name": str(n)}} for n in range(3)])
        assert batch["count"] == 3 and len(batch["ids"]) == 3
        assert client.batch_status(batch["batch_id"])["queued"] == 3
        assert client.batch_cancel(batch["batch_id"]) == {"cancelled": 3, "sending": 0, "sent": 0}
        counts = client.batch_status(batch["batch_id"])
        assert counts["cancelled"] == 3 and counts["total"] == 3 and counts["queued"] == 0
        client.outbox_resume(None)
        assert marker_arrives(client, server) == ["marker"]
        assert client.batch_status(batch["batch_id"])["cancelled"] == 3


# --- listing and stats --------------------------------------------------------------------


def test_outbox_list_by_state_and_stats_count(client):
    with ScriptedServer(Script(replies={"DOT": ["550 5.7.1 no"]})) as server:
        configure(client, server)
        failed = client.enqueue(message(subject="refused"))
        assert client.wait(failed, WAIT_MS)["state"] == "failed"
        sent = client.enqueue(message(subject="accepted"))
        assert client.wait(sent, WAIT_MS)["state"] == "sent"
        client.outbox_pause(None)
        queued = client.enqueue(message(subject="held"))

        def ids(state=None):
            return sorted(s["id"] for s in client.outbox_list(state))

        assert ids("sent") == [sent]
        assert ids("failed") == [failed]
        assert ids("queued") == [queued]
        assert ids("deferred") == [] and ids("sending") == [] and ids("cancelled") == []
        assert ids() == sorted([failed, sent, queued])
        assert client.outbox_list("queued")[0]["state"] == "queued"
        expect_error(INVALID_ARGUMENT, client.outbox_list, "nonsense")

        stats = client.outbox_stats()
        counts = {k: stats[k] for k in ("queued", "sending", "sent", "deferred", "failed", "cancelled")}
        assert counts == {"queued": 1, "sending": 0, "sent": 1, "deferred": 0, "failed": 1, "cancelled": 0}
        assert stats["paused"] == ["*"]
        client.cancel(queued)
        stats = client.outbox_stats()
        assert stats["queued"] == 0 and stats["cancelled"] == 1
        assert ids("cancelled") == [queued]


# --- pause ------------------------------------------------------------------------------------


def lower(names):
    return sorted(n.lower() for n in names)


def test_pause_of_one_profile_holds_only_its_messages(client):
    with RecordingServer() as server:
        configure(client, server, profile="Slow")
        configure(client, server, profile="Fast")
        client.outbox_pause("SLOW")  # profile names match in any letter case
        slow = client.enqueue(message(profile="Slow", subject="slow"))
        fast = client.enqueue(message(profile="Fast", subject="fast"))
        _, elapsed = timed(client.flush, WAIT_MS)
        assert elapsed < 5
        # "fast" came after "slow": had "slow" been free to go, it would have
        # been taken first.
        assert client.wait(fast, WAIT_MS)["state"] == "sent"
        assert client.status(slow)["state"] == "queued"
        assert [m.parsed["Subject"] for m in server.messages] == ["fast"]
        assert lower(client.outbox_stats()["paused"]) == ["slow"]
        client.outbox_resume("Slow")
        assert client.wait(slow, WAIT_MS)["state"] == "sent"
        assert client.outbox_stats()["paused"] == []
        assert len(server.wait_for(2)) == 2


def test_pause_of_all_holds_every_profile_and_flush_does_not_wait(client):
    with RecordingServer() as server:
        configure(client, server, profile="One")
        configure(client, server, profile="Two")
        client.outbox_pause(None)
        ids = [client.enqueue(message(profile=p)) for p in ("One", "Two")]
        outcome, elapsed = timed(client.flush, WAIT_MS)
        assert outcome is None and elapsed < 2, (outcome, elapsed)
        # A direct send after them arrives, and they are still queued.
        client.send(message(profile="One", subject="direct"))
        assert [client.status(i)["state"] for i in ids] == ["queued", "queued"]
        assert [m.parsed["Subject"] for m in server.messages] == ["direct"]
        assert client.outbox_stats()["paused"] == ["*"]
        client.outbox_resume(None)
        assert [client.wait(i, WAIT_MS)["state"] for i in ids] == ["sent", "sent"]
        assert client.outbox_stats()["paused"] == []


def test_pause_persists_across_reopen(data_dir):
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir) as first:
            configure(first, server)
            first.outbox_pause("Default")
            id = first.enqueue(message())
        with smtpbridge.Client(data_dir) as second:
            assert lower(second.outbox_stats()["paused"]) == ["default"]
            _, elapsed = timed(second.flush, WAIT_MS)
            assert elapsed < 2
            configure(second, server, profile="Other")
            assert marker_arrives(second, server, profile="Other") == ["marker"]
            assert second.status(id)["state"] == "queued"
            second.outbox_resume("Default")
            assert second.wait(id, WAIT_MS)["state"] == "sent"
        with smtpbridge.Client(data_dir) as third:
            assert third.outbox_stats()["paused"] == []
        assert len(server.messages) == 2


def test_open_paused_sends_nothing_until_resume(data_dir):
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            configure(client, server)
            ids = [client.enqueue(message(subject=f"held {n}")) for n in range(2)]
            _, elapsed = timed(client.flush, WAIT_MS)
            assert elapsed < 2
            # Pause never holds smtpb_send: a direct send after them arrives,
            # and they are still queued.
            assert client.send(message(subject="direct"))["state"] == "sent"
            assert [m.parsed["Subject"] for m in server.messages] == ["direct"]
            assert [client.status(i)["state"] for i in ids] == ["queued", "queued"]
            assert "*" in client.outbox_stats()["paused"]
            client.outbox_resume(None)
            assert [client.wait(i, WAIT_MS)["state"] for i in ids] == ["sent", "sent"]
        assert sorted(m.parsed["Subject"] for m in server.messages) == ["direct", "held 0", "held 1"]


def test_open_paused_is_not_persisted(data_dir):
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            configure(client, server)
            id = client.enqueue(message())
        assert server.messages == []
        with smtpbridge.Client(data_dir) as client:
            assert client.outbox_stats()["paused"] == []
            assert client.wait(id, WAIT_MS)["state"] == "sent"
        assert len(server.messages) == 1


# --- send limits --------------------------------------------------------------------------


def wait_states(client, ids, want, timeout=5.0):
    """Poll until the sorted states of ``ids`` equal ``want`` (sorted); return the statuses."""
    last = []

    def check():
        nonlocal last
        last = [client.status(i) for i in ids]
        return sorted(s["state"] for s in last) == sorted(want)

    try:
        poll(check, timeout, f"states {want}")
    except AssertionError:
        raise AssertionError(f"states never became {want}: {[(s['state'], s['error_code'], s['error']) for s in last]}") from None
    return last


def test_send_limit_holds_the_third_message_deferred_until_reset(client):
    with RecordingServer() as server:
        configure(client, server, SMTPSendLimit=2, SMTPSendLimitPeriod="Hour")
        configure(client, server, profile="Other")
        # A held message never ages out, even with a max age that is over
        # before it is first held.
        fast_retries(client, SMTPRetryMaxAgeMs=1)
        ids = [client.enqueue(message(subject=f"limited {n}")) for n in range(3)]
        statuses = wait_states(client, ids, ["sent", "sent", "deferred"])
        [held] = [s for s in statuses if s["state"] == "deferred"]
        assert held["error_code"] == LIMIT
        assert held["error"], "the reason belongs in error"
        profile = client.outbox_stats()["profiles"]["Default"]
        assert profile["sent_in_period"] == 2 and profile["limit"] == 2
        # smtpb_retry of a limit-held message does not bypass the limit: it
        # is due again at once, so a later marker of another profile comes
        # after the outbox looked at it.
        client.retry(held["id"])
        *earlier, last = marker_arrives(client, server, profile="Other")
        assert (sorted(earlier), last) == (["limited 0", "limited 1"], "marker")  # the first two in any order: two threads
        status = client.status(held["id"])
        assert (status["state"], status["error_code"]) == ("deferred", LIMIT)
        client.limits_reset()
        status = client.wait(held["id"], WAIT_MS)
        assert status["state"] == "sent"
        assert len(server.wait_for(4)) == 4


def test_limits_reset_of_one_profile_releases_only_its_messages(client):
    with RecordingServer() as server:
        for name in ("A", "B"):
            configure(client, server, profile=name, SMTPSendLimit=1, SMTPSendLimitPeriod="Week")
        fast_retries(client)
        ids = {name: [client.enqueue(message(profile=name, subject=f"{name}{n}")) for n in range(2)]
               for name in ("A", "B")}
        for name in ("A", "B"):
            statuses = wait_states(client, ids[name], ["sent", "deferred"])
            assert [s["error_code"] for s in statuses if s["state"] == "deferred"] == [LIMIT]
        client.limits_reset("a")  # profile names match in any letter case
        assert [client.wait(i, WAIT_MS)["state"] for i in ids["A"]] == ["sent", "sent"]
        # Released along with A's, B's would have gone before a later marker.
        configure(client, server, profile="Other")
        subjects = marker_arrives(client, server, profile="Other")
        assert sorted(client.status(i)["state"] for i in ids["B"]) == ["deferred", "sent"]
        assert sorted(subjects) == ["A0", "A1", "B0", "marker"]


def test_a_message_is_sent_only_if_all_its_recipients_fit(client):
    with RecordingServer() as server:
        configure(client, server, SMTPSendLimit=3, SMTPSendLimitPeriod="Day")
        fast_retries(client)
        first = client.enqueue(message(to=["a@example.com", "b@example.com"]))
        assert client.wait(first, WAIT_MS)["state"] == "sent"
        second = client.enqueue(message(to=["c@example.com", "d@example.com"]))
        held = wait_state(client, second, "deferred")
        assert held["error_code"] == LIMIT
        # Held before its attempt: a part sent would have arrived by now.
        assert len(server.messages) == 1, "no part of the second message may go out"
        client.limits_reset()
        assert client.wait(second, WAIT_MS)["state"] == "sent"
        assert server.wait_for(2)[1].rcpt_tos == ["c@example.com", "d@example.com"]


def test_a_message_with_more_recipients_than_the_whole_limit_is_refused(client):
    with RecordingServer() as server:
        configure(client, server, SMTPSendLimit=2, SMTPSendLimitPeriod="Hour")
        fast_retries(client)
        big = message(to=["a@example.com", "b@example.com", "c@example.com"])
        try:
            id = client.enqueue(big)
        except smtpbridge.LimitError:
            id = None  # refused at the call
        if id is not None:
            status = client.wait(id, 5000)  # never deferred for ever: it can never fit
            assert status["state"] == "failed"
            assert status["error_code"] == LIMIT
        expect_error(LIMIT, client.send, big)
        assert server.messages == []


def test_send_limit_counter_survives_a_reopen(data_dir):
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir) as first:
            configure(first, server, SMTPSendLimit=2, SMTPSendLimitPeriod="Hour")
            for n in range(2):
                assert first.wait(first.enqueue(message(subject=f"counted {n}")), WAIT_MS)["state"] == "sent"
        with smtpbridge.Client(data_dir) as second:
            fast_retries(second)
            assert second.outbox_stats()["profiles"]["Default"]["sent_in_period"] == 2
            refused = expect_error(LIMIT, second.send, message(subject="refused now"))
            assert refused.status is not None, "smtpb_send records a LIMIT failure (ABI §11)"
            assert refused.status["state"] == "failed" and refused.status["error_code"] == LIMIT
            id = second.enqueue(message(subject="held"))
            held = wait_state(second, id, "deferred")
            assert held["error_code"] == LIMIT
            assert len(server.messages) == 2
            second.limits_reset()
            assert second.wait(id, WAIT_MS)["state"] == "sent"
        assert len(server.messages) == 3


def test_batch_per_minute_defers_the_third_message(client):
    with RecordingServer() as server:
        configure(client, server, SMTPBatchPerMinute=2)
        configure(client, server, profile="Other")
        fast_retries(client, SMTPRetryMaxAgeMs=1)
        ids = [client.enqueue(message(subject=f"throttled {n}")) for n in range(3)]
        statuses = wait_states(client, ids, ["sent", "sent", "deferred"])
        [held] = [s for s in statuses if s["state"] == "deferred"]
        assert held["error_code"] == LIMIT
        assert held["error"]
        # Due again at once, still within the minute: held, and never aged out.
        client.retry(held["id"])
        *earlier, last = marker_arrives(client, server, profile="Other")
        assert (sorted(earlier), last) == (["throttled 0", "throttled 1"], "marker")  # the first two in any order: two threads
        assert client.status(held["id"])["state"] == "deferred"
        assert client.outbox_stats()["failed"] == 0
        client.limits_reset()
        assert client.wait(held["id"], WAIT_MS)["state"] == "sent"


# --- OAuth2 in the outbox -----------------------------------------------------------------

OAUTH_USER, GOOD_TOKEN, BAD_TOKEN = "alice@example.test", "ya29.good-token-abc", "ya29.refused-token-xyz"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_refused_oauth2_token_defers_needing_credentials_and_a_new_token_releases_at_once(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with RecordingServer(oauth=(OAUTH_USER, GOOD_TOKEN), auth_require_tls=False, auth_required=True) as server:
        configure(client, server, auth=True, SMTPAuthModel="OAuth2", SMTPAllowPlaintextAuth=True)
        fast_retries(client, initial_ms=150, max_ms=150)
        client.credentials_set_oauth2("emp-42", OAUTH_USER, BAD_TOKEN)
        id = client.enqueue(message(user="emp-42"))
        poll(lambda: client.status(id)["attempts"] >= 3, 5, "three attempts")
        deferred = wait_state(client, id, "deferred")
        assert deferred["needs"] == "credentials"
        assert deferred["state"] != "failed"
        # Now a long backoff: the next attempt is far away...
        fast_retries(client, initial_ms=60_000, max_ms=60_000)
        attempts = client.status(id)["attempts"]
        poll(lambda: client.status(id)["attempts"] > attempts and client.status(id)["state"] == "deferred",
             5, "one more deferral under the long backoff")
        far = client.status(id)
        due = datetime.fromisoformat(far["next_attempt_at"].replace("Z", "+00:00"))
        assert (due - datetime.now(timezone.utc)).total_seconds() > 20
        assert server.messages == []
        needed = recorder.of_type("credentials_needed")
        assert len(needed) == 1, needed
        assert needed[0]["user_id"] == "emp-42"
        assert needed[0]["profile"].lower() == "default"
        # ...but new credentials release the message at once.
        client.credentials_set_oauth2("emp-42", OAUTH_USER, GOOD_TOKEN)
        sent, elapsed = timed(client.wait, id, WAIT_MS)
        assert elapsed < 3, f"released after {elapsed:.1f} s"
        [received] = server.wait_for(1)
    assert sent["state"] == "sent"
    assert sent["needs"] is None
    assert received.auth_user == OAUTH_USER


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_expired_oauth2_token_defers_needing_credentials_until_a_new_one(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with RecordingServer(oauth=(OAUTH_USER, GOOD_TOKEN), auth_require_tls=False, auth_required=True) as server:
        configure(client, server, auth=True, SMTPAuthModel="OAuth2", SMTPAllowPlaintextAuth=True)
        fast_retries(client, initial_ms=30_000, max_ms=30_000)
        client.credentials_set_oauth2("emp-7", OAUTH_USER, GOOD_TOKEN, expires_at=1_000_000)  # 1970
        ids = [client.enqueue(message(user="emp-7", subject=f"expired {n}")) for n in range(2)]
        for id in ids:
            status = wait_state(client, id, "deferred")
            assert status["needs"] == "credentials"
        # Events come in order: once the event of a later message is in, any
        # credentials_needed of the two deferrals is too.
        later = client.enqueue(message(user="emp-7", subject="expired 2"))
        poll(lambda: any(e.get("id") == later for e in recorder.snapshot()), 3, "the later message's event")
        ids.append(later)
        needed = recorder.of_type("credentials_needed")
        assert len(needed) == 1 and needed[0]["user_id"] == "emp-7", needed
        assert server.messages == []
        client.credentials_set_oauth2("emp-7", OAUTH_USER, GOOD_TOKEN, expires_at=int(time.time()) + 3600)
        statuses = [client.wait(id, 5000) for id in ids]
        assert [s["state"] for s in statuses] == ["sent"] * 3
        assert len(server.wait_for(3)) == 3
