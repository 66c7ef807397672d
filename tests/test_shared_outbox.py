"""One outbox for several processes (ABI §17): real processes (tests/shared_child.py)
on one data_dir, each a client of the Python binding; assertions on what the
aiosmtpd server received, parsed by the email package. Every wait is on a
signal (a status, an event, a line of a child) with a deadline."""

from __future__ import annotations

import datetime
import getpass
import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from conftest import BUSY, LIMIT, SAFETY_S, STATE, TIMEOUT, ClosedPort, message
from servers import RecordingServer

CHILD = Path(__file__).resolve().parent / "shared_child.py"

#: Bound on one command of a child (a send may take a few seconds).
CALL_S = 30.0
#: Bound on mail arriving at the server.
ARRIVE_S = 30.0


class ChildError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Child:
    """A process with one client on the data_dir, driven by JSON lines."""

    def __init__(self, data_dir: Path, flags: str = "shared") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        self.replies: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.events: List[Dict[str, Any]] = []
        self.seen = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.replies.get(timeout=CALL_S)
        if "error" in first:
            raise ChildError(first["error"], first["message"])
        self.pid: int = first["ready"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            obj = json.loads(line)
            if "event" in obj:
                with self.seen:
                    self.events.append(obj["event"])
                    self.seen.notify_all()
            else:
                self.replies.put(obj)

    def call(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self.reply()

    def send(self, op: str, **args: Any) -> None:
        """Starts a command; :meth:`reply` waits for its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = CALL_S) -> Any:
        reply = self.replies.get(timeout=timeout)
        if "error" in reply:
            raise ChildError(reply["error"], reply["message"])
        return reply["result"]

    def wait_event(self, pred: Callable[[Dict[str, Any]], bool], timeout: float = ARRIVE_S) -> Dict[str, Any]:
        with self.seen:
            assert self.seen.wait_for(lambda: any(pred(e) for e in self.events), timeout), self.events
            return next(e for e in self.events if pred(e))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=SAFETY_S)

    def close(self) -> None:
        self.call("close")
        self.proc.wait(timeout=CALL_S)


@pytest.fixture
def spawn(data_dir: Path) -> Iterator[Callable[..., Child]]:
    children: List[Child] = []

    def start(flags: str = "shared") -> Child:
        child = Child(data_dir, flags)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.kill()


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    with RecordingServer() as s:
        yield s


def point_at(child: Child, port: int, **extra: Any) -> None:
    keys = {
        "SMTPServer": "127.0.0.1",
        "SMTPServerPort": port,
        "SMTPServerEncryption": "None",
        "SMTPAuthentication": "None",
        "SMTPConnectionTimeout": 5000,
        "SMTPRetryInitialMs": 100,
        "SMTPRetryMaxMs": 200,
    }
    keys.update(extra)
    for key, value in keys.items():
        child.call("config_set", key=key, value=value)


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Polls ``check`` (a call into a child) until it is truthy; fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)


def holder_pid(child: Child) -> Optional[int]:
    holder = child.call("outbox_stats")["delivery"]["holder"]
    return holder["pid"] if holder else None


def delivering(child: Child, timeout: float = 5.0) -> None:
    until(lambda: holder_pid(child) == child.pid, timeout, f"pid {child.pid} holds the delivery lease")


def subjects(server: RecordingServer) -> List[str]:
    return [m.parsed["Subject"] for m in server.messages]


def test_two_processes_enqueue_while_a_third_delivers(spawn, server):
    deliverer = spawn("shared")
    point_at(deliverer, server.port)
    delivering(deliverer)
    hosts = [spawn("shared,submit_only"), spawn("shared,submit_only")]
    ids: Dict[str, str] = {}
    for n in range(10):
        for h, host in enumerate(hosts):
            subject = f"host {h} message {n}"
            ids[subject] = host.call("enqueue", message=message(subject=subject))
    server.wait_for(20, ARRIVE_S)
    assert sorted(subjects(server)) == sorted(ids), "every message arrived once"
    # Each host sees the outcome of its own messages, delivered elsewhere.
    for h, host in enumerate(hosts):
        for n in range(10):
            status = host.call("wait", id=ids[f"host {h} message {n}"], timeout_ms=int(CALL_S * 1000))
            assert status["state"] == "sent"
        assert holder_pid(host) == deliverer.pid
    assert len(server.messages) == 20


def test_a_killed_deliverer_is_replaced_within_5_s_and_the_rest_is_delivered(spawn, server):
    first = spawn("shared")
    point_at(first, server.port)
    delivering(first)
    second = spawn("shared")
    assert holder_pid(second) == first.pid
    host = spawn("shared,submit_only")
    host.call("outbox_pause")
    ids = {f"message {n}": host.call("enqueue", message=message(subject=f"message {n}")) for n in range(30)}
    host.call("outbox_resume")
    server.wait_for(3, ARRIVE_S)
    first.kill()
    killed = time.monotonic()
    until(lambda: holder_pid(second) == second.pid, 6.0, "the second client took the lease")
    assert time.monotonic() - killed < 5.0, "the lease was taken over within 5 s"
    for subject, id in ids.items():
        assert host.call("wait", id=id, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent", subject
    received = server.messages
    assert set(subjects(server)) == set(ids), "nothing lost"
    # Sent twice only past a crash, and then with the same Message-ID.
    by_subject: Dict[str, set] = {}
    for m in received:
        by_subject.setdefault(m.parsed["Subject"], set()).add(m.parsed["Message-ID"])
    assert all(len(mids) == 1 for mids in by_subject.values()), by_subject
    for subject, id in ids.items():
        if subjects(server).count(subject) > 1:
            assert host.call("status", id=id)["possible_duplicate"] is True


def test_a_submit_only_client_never_delivers(spawn, server):
    host = spawn("shared,submit_only")
    point_at(host, server.port)
    id = host.call("enqueue", message=message(subject="queued by a submit-only client"))
    with pytest.raises(ChildError) as refused:
        host.call("flush", timeout_ms=2500)
    assert refused.value.code == TIMEOUT
    assert host.call("status", id=id)["state"] == "queued"
    assert host.call("outbox_stats")["delivery"]["holder"] is None
    assert server.connections == 0
    with pytest.raises(ChildError) as no_send:
        host.call("send", message=message(subject="sent now"))
    assert no_send.value.code == STATE and "SUBMIT_ONLY" in no_send.value.message
    deliverer = spawn("shared")
    assert host.call("wait", id=id, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"
    assert subjects(server) == ["queued by a submit-only client"]
    assert holder_pid(host) == deliverer.pid


def test_cancel_retry_purge_pause_and_wait_act_across_processes(spawn, server):
    closed = ClosedPort()
    deliverer = spawn("shared")
    point_at(deliverer, closed.port, SMTPRetryInitialMs=600_000, SMTPRetryMaxMs=600_000)
    delivering(deliverer)
    a = spawn("shared,submit_only")
    b = spawn("shared,submit_only")
    # A pause by one process holds the delivery of another.
    a.call("outbox_pause")
    first = b.call("enqueue", message=message(subject="cancelled by another process"))
    a.call("cancel", id=first)
    assert b.call("status", id=first)["state"] == "cancelled"
    with pytest.raises(ChildError) as again:
        b.call("cancel", id=first)
    assert again.value.code == STATE
    # Deferred by the deliverer (nothing listens), retried by another.
    later = b.call("enqueue", message=message(subject="retried by another process"))
    b.call("outbox_resume")
    until(lambda: a.call("status", id=later)["state"] == "deferred", 10.0, "the message was deferred")
    # A configuration change by one process reaches the deliverer.
    a.call("config_set", key="SMTPServerPort", value=server.port)
    a.call("retry", id=later)
    assert b.call("wait", id=later, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"
    assert subjects(server) == ["retried by another process"]
    # Purged by a third process: gone for everyone.
    tomorrow = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert deliverer.call("outbox_purge", before=tomorrow, states=["sent", "cancelled"]) == 2
    for id in (first, later):
        with pytest.raises(ChildError) as gone:
            a.call("status", id=id)
        assert gone.value.code == 10  # NOT_FOUND


def test_the_send_limit_is_counted_across_processes(spawn, server):
    one = spawn("shared")
    two = spawn("shared")
    point_at(one, server.port, SMTPSendLimit=2, SMTPSendLimitPeriod="Day")
    assert one.call("send", message=message(subject="one"))["state"] == "sent"
    assert two.call("send", message=message(subject="two"))["state"] == "sent"
    with pytest.raises(ChildError) as refused:
        one.call("send", message=message(subject="three"))
    assert refused.value.code == LIMIT
    with pytest.raises(ChildError) as refused:
        two.call("send", message=message(subject="four"))
    assert refused.value.code == LIMIT
    assert sorted(subjects(server)) == ["one", "two"]
    assert two.call("outbox_stats")["profiles"]["Default"]["sent_in_period"] == 2


def test_the_per_minute_throttle_is_counted_across_processes(spawn, server):
    one = spawn("shared")
    two = spawn("shared")
    point_at(one, server.port, SMTPBatchPerMinute=2, SMTPConnectionTimeout=1000)
    assert one.call("send", message=message(subject="one"))["state"] == "sent"
    assert two.call("send", message=message(subject="two"))["state"] == "sent"
    with pytest.raises(ChildError) as refused:
        one.call("send", message=message(subject="three"))
    assert refused.value.code == LIMIT and "SMTPBatchPerMinute" in refused.value.message
    assert sorted(subjects(server)) == ["one", "two"]


def test_events_reach_the_queuing_process_and_a_monitor_sees_every_message(spawn, server):
    deliverer = spawn("shared")
    point_at(deliverer, server.port)
    delivering(deliverer)
    deliverer.call("events")
    host = spawn("shared,submit_only")
    host.call("events")
    monitor = spawn("shared,submit_only")
    monitor.call("events_all")
    id = host.call("enqueue", message=message(subject="events"))
    sent = host.wait_event(lambda e: e.get("id") == id and e.get("state") == "sent")
    assert sent["type"] == "state"
    monitor.wait_event(lambda e: e.get("id") == id and e.get("state") == "sent")
    assert monitor.events and all(e["id"] == id for e in monitor.events)
    # The deliverer's own callback is for its own messages.
    assert not [e for e in deliverer.events if e.get("id") == id]
    own = deliverer.call("enqueue", message=message(subject="the deliverer's own"))
    deliverer.wait_event(lambda e: e.get("id") == own and e.get("state") == "sent")
    monitor.wait_event(lambda e: e.get("id") == own and e.get("state") == "sent")
    assert not [e for e in host.events if e.get("id") == own]
    assert sorted(subjects(server)) == ["events", "the deliverer's own"]


def test_a_closed_deliverer_hands_the_lease_over_at_once(spawn, server):
    first = spawn("shared")
    point_at(first, server.port)
    delivering(first)
    second = spawn("shared")
    first.close()
    delivering(second, timeout=2.0)
    id = second.call("enqueue", message=message(subject="after the handover"))
    assert second.call("wait", id=id, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"


@pytest.mark.parametrize("held, asking", [("-", "shared"), ("shared", "-")])
def test_exclusive_and_shared_exclude_each_other_naming_the_user(spawn, held, asking):
    holder = spawn(held)
    with pytest.raises(ChildError) as busy:
        spawn(asking)
    assert busy.value.code == BUSY
    text = busy.value.message
    assert f"pid {holder.pid}" in text and f"user {getpass.getuser()}" in text, text
    assert "unknown" not in text and "SMTPB_OPEN_SHARED" in text


def test_the_first_exclusive_open_after_sharing_clients_died_sends_what_they_left(spawn, data_dir, server):
    import smtpbridge

    host = spawn("shared,submit_only")
    point_at(host, server.port)
    id = host.call("enqueue", message=message(subject="left behind"))
    host.kill()
    with smtpbridge.Client(data_dir) as client:
        assert client.wait(id, int(ARRIVE_S * 1000))["state"] == "sent"
        assert client.outbox_stats()["delivery"]["holder"]["pid"] == os.getpid()
    assert subjects(server) == ["left behind"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_settings_and_credentials_set_by_one_process_are_used_by_the_deliverer(spawn):
    with RecordingServer(users={"anna": "shared-outbox-pw"}, auth_require_tls=False, auth_required=True) as server:
        deliverer = spawn("shared")
        delivering(deliverer)
        host = spawn("shared,submit_only")
        point_at(host, server.port, SMTPAuthentication="Required", SMTPAllowPlaintextAuth=True)
        host.call("credentials_set", user_id=None, username="anna", password="shared-outbox-pw")
        assert deliverer.call("config_get", key="SMTPServerPort") == str(server.port)
        id = host.call("enqueue", message=message(subject="with the credential of another process"))
        assert host.call("wait", id=id, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"
        [received] = server.messages
        assert received.auth_user == "anna"
        assert received.parsed["Subject"] == "with the credential of another process"


def test_random_kills_of_three_processes_lose_no_acknowledged_message(spawn, data_dir, server):
    """2 processes enqueue, 1 delivers; each round one of them is SIGKILLed at a
    random point while commands are in flight, then started again. Every
    enqueue a process acknowledged arrives; a message arrives twice only as a
    possible duplicate, with one Message-ID. SMTPBRIDGE_SHARED_ROUNDS sets
    the rounds (default 12; the release check runs 200)."""
    import random

    import smtpbridge

    rounds = int(os.environ.get("SMTPBRIDGE_SHARED_ROUNDS", "12"))
    rng = random.Random(int(os.environ.get("SMTPBRIDGE_SHARED_SEED", "24")))
    roles = {"deliverer": "shared", "host 0": "shared,submit_only", "host 1": "shared,submit_only"}
    children = {name: spawn(flags) for name, flags in roles.items()}
    point_at(children["deliverer"], server.port)
    acked: Dict[str, str] = {}
    for round_ in range(rounds):
        pending: Dict[str, List[str]] = {}
        for name in ("host 0", "host 1"):
            child = children[name]
            assert child.proc.stdin is not None
            pending[name] = []
            for n in range(4):
                subject = f"round {round_} {name} message {n}"
                pending[name].append(subject)
                child.proc.stdin.write(json.dumps({"op": "enqueue", "message": message(subject=subject)}) + "\n")
            child.proc.stdin.flush()
        time.sleep(rng.uniform(0.0, 0.3))  # the random point of the kill
        victim = rng.choice(sorted(children))
        children[victim].kill()
        for name in ("host 0", "host 1"):
            child = children[name]
            deadline = time.monotonic() + (0.0 if name == victim else CALL_S)
            for subject in pending[name]:
                try:
                    reply = child.replies.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                assert "result" in reply, reply
                acked[subject] = reply["result"]
        children[victim] = spawn(roles[victim])
    for child in children.values():
        child.close()
    with smtpbridge.Client(data_dir) as client:
        for subject, id in acked.items():
            assert client.wait(id, int(ARRIVE_S * 1000))["state"] == "sent", subject
        received: Dict[str, set] = {}
        for m in server.messages:
            received.setdefault(m.parsed["Subject"], set()).add(m.parsed["Message-ID"])
        assert set(acked) <= set(received), sorted(set(acked) - set(received))
        assert all(len(mids) == 1 for mids in received.values()), "a duplicate with a new Message-ID"
        names = subjects(server)
        for subject, id in acked.items():
            if names.count(subject) > 1:
                assert client.status(id)["possible_duplicate"] is True, subject


#: Recipients of the merges below: several group commits (512 a transaction).
MERGED = 2000


def merge_stopped_midway(spawn: Callable[..., Child], data_dir: Path) -> "tuple[Child, str, int]":
    """A submit-only process that merges MERGED recipients and is stopped
    (SIGSTOP) inside ``smtpb_merge`` once its first messages are written;
    returns it, the batch id and how many of its messages are written."""
    merger = spawn("shared,submit_only")
    merger.call("stop_at_merge")
    recipients = [{"email": f"r{i:04d}@example.com", "fields": {"N": f"{i:04d}"}} for i in range(MERGED)]
    template = {"from": "anna@firm.example", "subject": "merged {{N}}", "text": "Dear {{N}}",
                "idempotency_key": "merge-run"}
    merger.send("merge", template=template, recipients=recipients)
    batch_id = merger.wait_event(lambda e: bool(e.get("batch_id")))["batch_id"]
    until(lambda: process_state(merger.pid) == "T", SAFETY_S, "the merging process is stopped")
    assert merger.replies.empty(), "smtpb_merge has not returned"
    staged = store_rows(data_dir, "SELECT batch_id, pid FROM staged")
    [(written,)] = store_rows(data_dir, "SELECT count(*) FROM messages WHERE batch_id = ?", batch_id)
    # Staged until the merge releases it, which the stopped process has not.
    assert staged == [(batch_id, merger.pid)]
    assert 0 < written <= MERGED
    return merger, batch_id, written


def store_rows(data_dir: Path, sql: str, *args: Any) -> List[tuple]:
    """Rows of the outbox store, read beside its clients."""
    db = sqlite3.connect(data_dir / "spool" / "outbox.db")
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def process_state(pid: int) -> str:
    """The state letter of process ``pid`` (``T``: stopped)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP of a child process")
def test_a_merge_is_held_back_in_every_process_until_it_returns(spawn, data_dir, server):
    deliverer = spawn("shared")
    point_at(deliverer, server.port)
    delivering(deliverer)
    merger, batch_id, written = merge_stopped_midway(spawn, data_dir)
    # The deliverer sees the messages written so far (batch_status catches
    # up with the other processes first), queued, and takes none: the
    # marker, queued after them, goes first, where mail due before it
    # would be taken first.
    counts = deliverer.call("batch_status", batch_id=batch_id)
    assert (counts["total"], counts["queued"]) == (written, written)
    marker = deliverer.call("enqueue", message=message(subject="marker"))
    assert deliverer.call("wait", id=marker, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"
    assert subjects(server) == ["marker"]

    os.kill(merger.pid, signal.SIGCONT)
    merged = merger.reply(timeout=ARRIVE_S)
    assert (merged["batch_id"], merged["count"]) == (batch_id, MERGED)
    server.wait_for(MERGED + 1, 4 * ARRIVE_S)
    expected = sorted(f"merged {i:04d}" for i in range(MERGED))
    assert sorted(subjects(server)[1:]) == expected, "every message of the merge arrived once, after the marker"
    assert deliverer.call("batch_status", batch_id=batch_id)["sent"] == MERGED


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP of a child process")
def test_a_merge_whose_process_is_killed_midway_is_cancelled_by_the_deliverer(spawn, data_dir, server):
    deliverer = spawn("shared")
    point_at(deliverer, server.port)
    delivering(deliverer)
    merger, batch_id, written = merge_stopped_midway(spawn, data_dir)
    merger.kill()
    killed = time.monotonic()
    until(lambda: deliverer.call("batch_status", batch_id=batch_id)["cancelled"] == written, 6.0,
          "the deliverer cancelled the merge's messages")
    # The lease holder looks at every heartbeat (1 s).
    assert time.monotonic() - killed < 3.0
    cancelled = deliverer.call("outbox_query", batch_id=batch_id, limit=1000)["items"]
    assert {(s["state"], s["error"]) for s in cancelled} == {("cancelled", "the merge that made this message did not finish")}
    assert store_rows(data_dir, "SELECT * FROM staged") == [], "the merge is forgotten"
    # Nothing of it was sent, and its idempotency keys are free again.
    marker = deliverer.call("enqueue", message=message(subject="marker", idempotency_key="merge-run#0"))
    assert deliverer.call("wait", id=marker, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"
    assert deliverer.call("status", id=marker).get("batch_id") is None, "a new message, not the merge's"
    assert subjects(server) == ["marker"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP of a child process")
def test_a_shared_open_cancels_the_merge_an_exclusive_process_left_unfinished(spawn, data_dir, server):
    # An exclusive client (paused: it delivers nothing itself) is killed
    # inside smtpb_merge; its staging.json names the batch.
    merger = spawn("paused")
    point_at(merger, server.port)
    merger.call("stop_at_merge")
    recipients = [{"email": f"r{i:04d}@example.com", "fields": {"N": f"{i:04d}"}} for i in range(MERGED)]
    template = {"from": "anna@firm.example", "subject": "merged {{N}}", "text": "Dear {{N}}"}
    merger.send("merge", template=template, recipients=recipients)
    batch_id = merger.wait_event(lambda e: bool(e.get("batch_id")))["batch_id"]
    until(lambda: process_state(merger.pid) == "T", SAFETY_S, "the merging process is stopped")
    merger.kill()
    staging = data_dir / "spool" / "staging.json"
    assert json.loads(staging.read_text()) == [batch_id]
    [(written,)] = store_rows(data_dir, "SELECT count(*) FROM messages WHERE batch_id = ?", batch_id)
    assert written > 0
    # The first sharing client to open cancels it before anything delivers.
    deliverer = spawn("shared")
    counts = deliverer.call("batch_status", batch_id=batch_id)
    assert (counts["cancelled"], counts["queued"]) == (written, 0)
    assert json.loads(staging.read_text()) == [], "the merge is forgotten"
    delivering(deliverer)
    marker = deliverer.call("enqueue", message=message(subject="marker"))
    assert deliverer.call("wait", id=marker, timeout_ms=int(ARRIVE_S * 1000))["state"] == "sent"
    assert subjects(server) == ["marker"]
