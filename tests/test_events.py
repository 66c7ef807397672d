"""Events and lifecycle (ABI §4 "Lifecycle", "Events"; §11 "Events", shutdown):
order and fields, the thread that calls back, replacing the callback,
re-entrant calls, close from inside the callback, shutdown with a hanging
server."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import RFC3339_UTC, SENDER, STATE, TIMEOUT, configure, expect_error, message, wait_until_in_call
import smtpbridge
from servers import HANG, RecordingServer, Script, ScriptedServer

WAIT_MS = 10_000
STATE_FIELDS = {"type", "seq", "time", "id", "batch_id", "reference", "state", "attempts",
                "error_code", "error", "possible_duplicate", "rejected_count"}


class Recorder:
    """An event callback that keeps each event with the thread it ran on."""

    def __init__(self, inner=None):
        self.events = []
        self.threads = []  # (threading.get_ident(), native id, native thread name)
        self.cond = threading.Condition()
        self.inner = inner

    def __call__(self, event):
        tid = threading.get_native_id()
        with self.cond:
            self.events.append(event)
            self.threads.append((threading.get_ident(), tid, _thread_name(tid)))
            self.cond.notify_all()
        if self.inner is not None:
            self.inner(event)

    def snapshot(self):
        with self.cond:
            return list(self.events)

    def for_id(self, id):
        return [e for e in self.snapshot() if e.get("id") == id]

    def wait_for(self, predicate, timeout=5.0, what="an event"):
        with self.cond:
            if not self.cond.wait_for(lambda: predicate(self.events), timeout):
                raise AssertionError(f"timed out waiting for {what}; events: {self.events}")


def _thread_name(native_id):
    """The OS name of a thread of this process (Linux), or None."""
    try:
        return Path(f"/proc/self/task/{native_id}/comm").read_text().strip()
    except OSError:
        return None


def has_state(id, state):
    return lambda events: any(e.get("id") == id and e.get("state") == state for e in events)


def events_drained(client, subject="marker"):
    """Replace the callback with a new recorder and send a marker message
    through the outbox; return once the recorder has the marker's ``sent``
    event. Events come in order from one thread, so every event before it
    has been handed out by then: the positive signal that nothing more is
    on its way to the callbacks that were set before."""
    marker = Recorder()
    client.set_event_callback(marker)
    id = client.enqueue(message(subject=subject))
    marker.wait_for(has_state(id, "sent"), what="the marker's sent event")
    return marker


def library_threads():
    """The names of this process's threads that the library started (Linux)."""
    names = []
    for comm in Path("/proc/self/task").glob("*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue  # the thread ended meanwhile
        if name.startswith("smtpbridge-"):
            names.append(name)
    return Counter(names)


# --- order and fields -----------------------------------------------------------------------


def test_one_message_gives_queued_sending_sent_in_order(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with RecordingServer() as server:
        configure(client, server)
        id = client.enqueue(message(reference="CL-1001/DOC-7"))
        status = client.wait(id, WAIT_MS)
        recorder.wait_for(has_state(id, "sent"), what="the sent event")
        server.wait_for(1)
    events = recorder.for_id(id)
    assert [e["state"] for e in events] == ["queued", "sending", "sent"]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for event in events:
        assert STATE_FIELDS <= set(event), set(event) ^ STATE_FIELDS
        assert event["type"] == "state"
        assert event["reference"] == "CL-1001/DOC-7"
        assert event["batch_id"] is None
        assert RFC3339_UTC.match(event["time"]), event
        assert event["possible_duplicate"] is False
        assert event["rejected_count"] == 0
    assert events[-1]["attempts"] == status["attempts"] == 1
    assert events[-1]["error_code"] == 0 and events[-1]["error"] is None
    all_seqs = [e["seq"] for e in recorder.snapshot()]
    assert all_seqs == sorted(all_seqs), "seq increases over the client's events"


def test_every_failed_attempt_gives_a_new_deferred_event(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with ScriptedServer(Script(replies={"DOT": ["451 4.3.0 try later", "451 4.3.0 try later"]})) as server:
        configure(client, server)
        client.config_set("SMTPRetryInitialMs", 100)
        client.config_set("SMTPRetryMaxMs", 300)
        id = client.enqueue(message())
        assert client.wait(id, WAIT_MS)["state"] == "sent"
        recorder.wait_for(has_state(id, "sent"))
        server.wait_for(3)
    events = recorder.for_id(id)
    assert [e["state"] for e in events] == [
        "queued", "sending", "deferred", "sending", "deferred", "sending", "sent"]
    assert [e["attempts"] for e in events if e["state"] != "queued"] == [1, 1, 2, 2, 3, 3]
    deferred = [e for e in events if e["state"] == "deferred"]
    assert all(e["error_code"] == 8 and e["error"] for e in deferred)


def test_merge_events_carry_the_batch_id_and_reference(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with RecordingServer() as server:
        configure(client, server)
        template = {"from": SENDER, "subject": "Hello {{Name}}", "text": "Dear {{Name}}"}
        batch = client.merge(template, [
            {"email": "a@example.com", "fields": {"Name": "A"}, "reference": "REF-A"},
            {"email": "b@example.com", "fields": {"Name": "B"}, "reference": "REF-B"},
        ])
        for id in batch["ids"]:
            client.wait(id, WAIT_MS)
            recorder.wait_for(has_state(id, "sent"), what=f"sent of {id}")
        server.wait_for(2)
    for id, reference in zip(batch["ids"], ["REF-A", "REF-B"]):
        events = recorder.for_id(id)
        assert [e["state"] for e in events] == ["queued", "sending", "sent"]
        assert {e["batch_id"] for e in events} == {batch["batch_id"]}
        assert {e["reference"] for e in events} == {reference}


def test_partial_delivery_event_counts_the_rejected(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    with ScriptedServer(Script(rcpt_replies={"gone@example.com": "550 5.1.1 No such user"})) as server:
        configure(client, server)
        id = client.enqueue(message(to=["a@example.com", "gone@example.com"]))
        client.wait(id, WAIT_MS)
        recorder.wait_for(has_state(id, "sent"))
        server.wait_for(1)
    assert recorder.for_id(id)[-1]["rejected_count"] == 1


# --- the thread that calls back ---------------------------------------------------------------


def test_callback_never_runs_on_the_calling_thread_nor_on_a_delivery_thread(client):
    recorder = Recorder()
    client.set_event_callback(recorder)
    caller = threading.get_ident()
    with RecordingServer() as server:
        configure(client, server)
        ids = [client.enqueue(message(subject=f"thread {n}")) for n in range(3)]
        client.send(message(subject="sent directly"))
        for id in ids:
            client.wait(id, WAIT_MS)
            recorder.wait_for(has_state(id, "sent"))
        server.wait_for(4)
    idents = {ident for ident, _, _ in recorder.threads}
    assert caller not in idents
    assert len(idents) == 1, "one event thread per client"
    if sys.platform.startswith("linux"):
        names = {name for _, _, name in recorder.threads}
        assert not any(name and name.startswith("smtpbridge-deli") for name in names), names


def test_after_clearing_the_callback_it_never_runs_again(client):
    cleared = threading.Event()
    late = []

    def callback(event):
        if cleared.is_set():
            late.append(event)
        time.sleep(0.005)  # widen the window in which set_event_callback must wait

    recorder = Recorder(callback)
    client.set_event_callback(recorder)
    with RecordingServer() as server:
        configure(client, server)
        ids = [client.enqueue(message(subject=f"traffic {n}")) for n in range(20)]
        recorder.wait_for(lambda events: len(events) >= 5, what="some events")
        client.set_event_callback(None)
        cleared.set()
        client.flush(WAIT_MS)
        for id in ids:
            client.wait(id, WAIT_MS)
        events_drained(client)
        server.wait_for(21)
    assert late == []


def test_no_callback_runs_after_close_returns(data_dir):
    closed = threading.Event()
    late = []

    def callback(event):
        if closed.is_set():
            late.append(event)
        time.sleep(0.005)

    recorder = Recorder(callback)
    before = library_threads()
    with RecordingServer() as server:
        client = smtpbridge.Client(data_dir)
        configure(client, server)
        client.set_event_callback(recorder)
        for n in range(20):
            client.enqueue(message(subject=f"close under traffic {n}"))
        recorder.wait_for(lambda events: len(events) >= 5, what="some events")
        client.close()
        closed.set()
        # Close joined every thread of the client, the event thread included:
        # none is left to call back.
        if sys.platform.startswith("linux"):
            assert library_threads() - before == Counter()
    assert late == []


def test_callback_may_call_the_client(client):
    seen = []
    errors = []

    def callback(event):
        try:
            seen.append((event["state"], client.status(event["id"])))
        except Exception as error:  # noqa: BLE001 - recorded for the assertion
            errors.append(error)

    recorder = Recorder(callback)
    client.set_event_callback(recorder)
    with RecordingServer() as server:
        configure(client, server)
        id = client.enqueue(message())
        client.wait(id, WAIT_MS)
        recorder.wait_for(has_state(id, "sent"))
        server.wait_for(1)
        events_drained(client)  # the callback's own calls have returned
    assert errors == []
    assert [state for state, _ in seen] == ["queued", "sending", "sent"]
    assert all(status["id"] == id for _, status in seen)
    assert seen[-1][1]["state"] == "sent"


def test_callback_may_clear_itself(client):
    calls = []

    def callback(event):
        calls.append(event)
        client.set_event_callback(None)  # from inside: must not deadlock

    client.set_event_callback(callback)
    with RecordingServer() as server:
        configure(client, server)
        outcome = {}

        def scenario():
            ids = [client.enqueue(message(subject=f"self-clear {n}")) for n in range(3)]
            outcome["states"] = [client.wait(id, WAIT_MS)["state"] for id in ids]

        thread = threading.Thread(target=scenario, daemon=True)
        thread.start()
        thread.join(15)
        assert not thread.is_alive(), "clearing the callback from inside it hung"
        server.wait_for(3)
        events_drained(client)
    assert outcome["states"] == ["sent"] * 3
    assert len(calls) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_callback_that_raises_does_not_break_delivery(client):
    calls = []

    def callback(event):
        calls.append(event)
        raise RuntimeError("host bug in the event handler")

    client.set_event_callback(callback)
    with RecordingServer() as server:
        configure(client, server)
        ids = [client.enqueue(message(subject=f"after raise {n}")) for n in range(3)]
        statuses = [client.wait(id, WAIT_MS) for id in ids]
        server.wait_for(3)
        deadline = time.monotonic() + 5
        while len(calls) < 9 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert [s["state"] for s in statuses] == ["sent"] * 3
    assert len(calls) >= 9, "events keep coming after a callback raised"


# --- close and shutdown -----------------------------------------------------------------------


def test_close_from_inside_the_callback_returns_and_the_client_ends(data_dir):
    outcome = {}

    def scenario():
        with RecordingServer() as server:
            client = smtpbridge.Client(data_dir)
            configure(client, server)
            closed_inside = threading.Event()

            def callback(event):
                if event.get("state") == "sent" and not closed_inside.is_set():
                    started = time.monotonic()
                    client.close()
                    outcome["close_s"] = time.monotonic() - started
                    closed_inside.set()

            client.set_event_callback(callback)
            client.enqueue(message())
            outcome["closed_inside"] = closed_inside.wait(10)
            outcome["closed"] = client.closed
            try:
                client.status("01ARZ3NDEKTSV4RRFFQ69G5FAV")
            except smtpbridge.StateError:
                outcome["state_after_close"] = True
            # The close completes once the callback returned: the data_dir is free again.
            deadline = time.monotonic() + 5
            while True:
                try:
                    smtpbridge.Client(data_dir).close()
                    outcome["reopened"] = True
                    break
                except smtpbridge.BusyError:
                    if time.monotonic() > deadline:
                        outcome["reopened"] = False
                        break
                    time.sleep(0.05)

    thread = threading.Thread(target=scenario, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "close from inside the callback hung"
    assert outcome.get("closed_inside") is True, outcome
    assert outcome["close_s"] < 1.0, "close inside the callback returns at once"
    assert outcome["closed"] is True
    assert outcome.get("state_after_close") is True
    assert outcome["reopened"] is True, "the client never finished closing"


def test_shutdown_with_a_hanging_final_dot_times_out_within_the_grace(data_dir):
    with ScriptedServer(Script(replies={"DOT": [HANG]}, max_wait_s=30)) as server:
        client = smtpbridge.Client(data_dir)
        try:
            configure(client, server, timeout_ms=20_000)
            id = client.enqueue(message())
            server.wait_for(1, 5)  # the final dot is in; the reply never comes
            started = time.monotonic()
            error = expect_error(TIMEOUT, client.shutdown, 500)
            elapsed = time.monotonic() - started
            assert isinstance(error, smtpbridge.WaitTimeoutError)
            assert elapsed < 2.0, f"shutdown(500) took {elapsed:.2f} s"
            expect_error(STATE, client.status, id)
            expect_error(STATE, client.enqueue, message())
            expect_error(STATE, client.flush, 1000)
            expect_error(STATE, client.wait, id, 1000)
            client.shutdown(500)  # a second shutdown is OK
        finally:
            client.close()
    # Dropped after the final dot: it is kept, queued again, as a possible duplicate.
    with smtpbridge.Client(data_dir, paused=True) as again:
        status = again.status(id)
    assert status["state"] == "deferred"  # a session broken after the dot: TRANSIENT
    assert status["possible_duplicate"] is True


def test_shutdown_lets_a_transaction_past_mail_finish_within_the_grace(data_dir):
    # The final dot's reply comes slowly (~0.6 s), well within a 3 s grace.
    script = Script(drip_ms=30, drip_at={"DOT"})
    with ScriptedServer(script) as server:
        client = smtpbridge.Client(data_dir)
        try:
            configure(client, server, timeout_ms=10_000)
            id = client.enqueue(message())
            server.wait_for(1, 5)
            started = time.monotonic()
            client.shutdown(3000)  # OK: the transaction finished in time
            elapsed = time.monotonic() - started
        finally:
            client.close()
    assert elapsed < 3.0
    with smtpbridge.Client(data_dir, paused=True) as again:
        status = again.status(id)
    assert status["state"] == "sent"
    assert status["possible_duplicate"] is False


def test_wait_blocked_in_another_thread_returns_state_at_shutdown(client):
    with ScriptedServer(Script(greeting=HANG, max_wait_s=30)) as server:
        configure(client, server, timeout_ms=20_000)
        id = client.enqueue(message())
        result = {}

        def blocked():
            started = time.monotonic()
            try:
                client.wait(id, 15_000)
                result["outcome"] = ("returned", time.monotonic() - started)
            except smtpbridge.SmtpBridgeError as error:
                result["outcome"] = (error.code, time.monotonic() - started)

        thread = threading.Thread(target=blocked, daemon=True)
        thread.start()
        wait_until_in_call(thread, "smtpb_wait")
        assert result == {}, "wait must still be blocked"
        started = time.monotonic()
        try:
            client.shutdown(500)
        except smtpbridge.WaitTimeoutError:
            pass
        thread.join(5)
        assert not thread.is_alive()
        returned_after = time.monotonic() - started
    assert result["outcome"][0] == STATE, result
    assert returned_after < 3.0


def test_flush_blocked_in_another_thread_returns_state_at_shutdown_every_time():
    # Shutdown ends the sessions still connecting; a flush blocked meanwhile
    # must still see SMTPB_ERR_STATE, never an OK because those attempts ended.
    # Repeated: the order of the two is a race inside the library.
    outcomes = []
    with ScriptedServer(Script(greeting=HANG, max_wait_s=30)) as server:
        for _ in range(30):
            client = smtpbridge.Client()
            try:
                configure(client, server, timeout_ms=20_000)
                for _ in range(2):
                    client.enqueue(message())
                result = {}

                def blocked():
                    try:
                        client.flush(15_000)
                        result["outcome"] = "returned OK"
                    except smtpbridge.SmtpBridgeError as error:
                        result["outcome"] = error.code

                thread = threading.Thread(target=blocked, daemon=True)
                thread.start()
                wait_until_in_call(thread, "smtpb_flush")
                assert result == {}, "flush must still be blocked"
                try:
                    client.shutdown(500)
                except smtpbridge.WaitTimeoutError:
                    pass
                thread.join(5)
                assert not thread.is_alive(), "flush still blocked after shutdown"
                outcomes.append(result["outcome"])
            finally:
                client.close()
    wrong = [o for o in outcomes if o != STATE]
    assert wrong == [], f"{len(wrong)} of {len(outcomes)} blocked flushes returned {set(wrong)} at shutdown"


@pytest.mark.parametrize("inside", ["shutdown", "close"])
def test_shutdown_racing_a_shutdown_or_close_inside_the_callback_does_not_hang(data_dir, inside):
    # One thread shuts the client down while the event callback, already
    # running, shuts it down or closes it too: neither may wait on the other.
    outcome = {}

    def scenario():
        with RecordingServer() as server:
            client = smtpbridge.Client(data_dir)
            configure(client, server)
            in_callback = threading.Event()
            outside = threading.current_thread()

            def callback(event):
                if event.get("state") == "sent" and not in_callback.is_set():
                    in_callback.set()
                    wait_until_in_call(outside, "shutdown")  # the other thread's shutdown is under way
                    try:
                        getattr(client, inside)()
                        outcome["inside"] = "returned"
                    except smtpbridge.SmtpBridgeError as error:
                        outcome["inside"] = error.name

            client.set_event_callback(callback)
            client.enqueue(message())
            assert in_callback.wait(10)
            try:
                client.shutdown(1000)
                outcome["outside"] = "returned"
            except smtpbridge.SmtpBridgeError as error:
                outcome["outside"] = error.name
            client.close()
            outcome["closed"] = True

    thread = threading.Thread(target=scenario, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), f"shutdown and {inside} inside the callback hung: {outcome}"
    assert outcome.get("closed") is True, outcome
    # A second shutdown is OK, and close returns at once inside the callback.
    assert outcome.get("inside") == "returned", outcome
