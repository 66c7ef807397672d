"""Group commit (issue 25): new messages from several threads, and a
merge's messages, are written together, one transaction and one fsync for
all of them; an acknowledgement still means durable. A child process
enqueues from several threads and merges beside them, and is SIGKILLed the
moment the test reads an id it reported: every id it reported is in the
store at the next open and is delivered, once."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import TESTS, ClosedPort
import smtpbridge
from servers import RecordingServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of a child process")

CHILD = TESTS / "group_commit_child.py"


def run_until_acknowledged(data_dir, threads, merge, kill_after):
    """Starts the child and SIGKILLs it as soon as it has reported
    `kill_after` acknowledgements; returns every id it reported."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(ClosedPort().port), str(threads), str(merge)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: "queue.Queue[str | None]" = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    ids = []
    acknowledgements = 0
    try:
        assert lines.get(timeout=60) == "ready"
        deadline = time.monotonic() + 60
        while acknowledgements < kill_after:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"the child ended early: {proc.stderr.read()}"
            said = json.loads(line)
            ids.extend(said.get("merged", []) + ([said["enqueued"]] if "enqueued" in said else []))
            acknowledgements += 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # What the child wrote to the pipe before it died was acknowledged too.
    while (line := lines.get(timeout=10)) is not None:
        said = json.loads(line)
        ids.extend(said.get("merged", []) + ([said["enqueued"]] if "enqueued" in said else []))
    assert proc.returncode == -signal.SIGKILL
    return ids


@pytest.mark.parametrize("kill_after", [1, 40, 400])
def test_every_acknowledged_message_of_concurrent_enqueuers_survives_a_sigkill(data_dir, kill_after):
    acknowledged = run_until_acknowledged(data_dir, threads=4, merge=30, kill_after=kill_after)
    assert len(acknowledged) >= kill_after and len(set(acknowledged)) == len(acknowledged)

    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            client.config_set("SMTPServerPort", server.port)  # the rest of the config persisted
            # The child was paused: nothing was sent, every message it
            # acknowledged is queued, a merge it returned released.
            assert [id for id in acknowledged if client.status(id)["state"] != "queued"] == []
            client.outbox_resume(None)
            client.flush(60_000)
            statuses = {id: client.status(id) for id in acknowledged}
        messages = server.messages
    # A merge cut short by the kill was never acknowledged; one that
    # returned was released, so its messages are delivered like the rest.
    assert {s["state"] for s in statuses.values()} == {"sent"}, [
        (id, s["state"]) for id, s in statuses.items() if s["state"] != "sent"]
    received = [m.parsed["Message-ID"].strip() for m in messages]
    for id, s in statuses.items():
        assert received.count(s["message_id"]) == 1, id


def test_concurrent_enqueues_with_one_idempotency_key_make_one_message(dir_client):
    dir_client.config_set("SMTPServer", "127.0.0.1")
    dir_client.outbox_pause(None)
    barrier = threading.Barrier(8)
    ids = []

    def enqueue():
        barrier.wait(10)
        ids.append(dir_client.enqueue({
            "from": "anna@firm.example", "to": ["client@example.com"], "subject": "once",
            "text": "once", "idempotency_key": "invoice-42",
        }))

    threads = [threading.Thread(target=enqueue) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert [s["id"] for s in dir_client.outbox_list()] == ids[:1]
