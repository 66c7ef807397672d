"""Crash safety of the outbox (ABI §4 "Outbox", "Errors by phase"): what
enqueue returned survives a SIGKILL; a message caught `sending` is sent again
with its Message-ID; random SIGKILLs during enqueue, delivery and purge lose
nothing, and damage to the WAL between them loses nothing unreported.
(Damage, torn tails and newer formats: tests/test_outbox_store.py and
tests/test_outbox_damage.py.)"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import TESTS, ClosedPort
import smtpbridge
from servers import HANG, RecordingServer, Script, ScriptedServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of a child process")

CHILD = TESTS / "crash_child.py"


class Child:
    """crash_child.py in a subprocess, with its stdout read line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout=30.0):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError(f"the child said nothing for {timeout} s") from None
        if line is None:
            self.proc.wait(5)
            raise AssertionError(f"the child ended early ({self.proc.returncode}): {self.proc.stderr.read()}")
        return line

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def message_id(received):
    return received.parsed["Message-ID"].strip()


def wait_all(client, ids, timeout=30.0):
    """wait() on each id within one overall deadline; return the statuses."""
    deadline = time.monotonic() + timeout
    statuses = []
    for id in ids:
        left = max(0, int((deadline - time.monotonic()) * 1000))
        statuses.append(client.wait(id, left))
    return statuses


# --- SIGKILL ------------------------------------------------------------------------------


def test_every_enqueued_message_survives_a_sigkill_and_is_delivered_once(data_dir):
    count = 300
    child = Child(data_dir, ClosedPort().port, count, "closed")
    try:
        ids = json.loads(child.line(timeout=60))
        assert child.line() == "ready"
    finally:
        child.kill()
    assert child.proc.returncode == -signal.SIGKILL
    assert len(ids) == count and len(set(ids)) == count

    with RecordingServer() as server:
        with smtpbridge.Client(data_dir) as client:
            client.config_set("SMTPServerPort", server.port)  # the rest of the config persisted
            client.flush(30_000)
            statuses = wait_all(client, ids)
            server.wait_for(count, 10)
            assert len(client.outbox_list()) == count
        # Closed: every thread of the client is joined, nothing more can come.
        messages = server.messages
    assert [s["state"] for s in statuses] == ["sent"] * count
    received_ids = [message_id(m) for m in messages]
    assert len(set(received_ids)) == count, "a message was lost"
    assert len(received_ids) == count, "a message arrived twice"
    assert set(received_ids) == {s["message_id"] for s in statuses}


def test_messages_sending_at_sigkill_are_queued_again_as_possible_duplicates(data_dir):
    count = 4
    script = Script(replies={"DOT": [HANG, HANG]}, max_wait_s=30)
    with ScriptedServer(script) as server:
        child = Child(data_dir, server.port, count, "sending", 20_000)
        try:
            ids = json.loads(child.line())
            sending = json.loads(child.line())
            assert child.line() == "ready"
            first_round = server.wait_for(len(sending), 10)  # their final dots arrived; replies hang
        finally:
            child.kill()
        assert len(sending) == 2, f"expected SMTPDeliveryThreads (2) messages sending, got {sending}"
        assert set(sending) <= set(ids)

        with smtpbridge.Client(data_dir, paused=True) as client:
            before = {id: client.status(id) for id in ids}
            for id in ids:
                assert before[id]["state"] == "queued", before[id]
                assert before[id]["possible_duplicate"] is (id in sending), before[id]
            client.outbox_resume(None)
            statuses = dict(zip(ids, wait_all(client, ids)))
        messages = server.messages

    assert {s["state"] for s in statuses.values()} == {"sent"}
    assert {message_id(m) for m in first_round} == {before[id]["message_id"] for id in sending}
    received = [message_id(m) for m in messages]
    for id in ids:
        expected = 2 if id in sending else 1
        assert statuses[id]["message_id"] == before[id]["message_id"]
        assert received.count(statuses[id]["message_id"]) == expected, id
    assert all(statuses[id]["possible_duplicate"] is True for id in sending)


# --- random SIGKILLs during enqueue, delivery and purge -----------------------------------

#: Rounds of the random-SIGKILL test; the long run sets more, e.g.
#: SMTPB_CRASH_ROUNDS=200 (docs/PERFORMANCE.md, "Crash test").
CRASH_ROUNDS = int(os.environ.get("SMTPB_CRASH_ROUNDS", "20"))


def damage_wal(wal: Path, rng: random.Random) -> str:
    """Damages the WAL a killed child left: a flipped byte (anywhere, the
    header included), a cut at a random length, or the file deleted."""
    if not wal.exists() or wal.stat().st_size == 0:
        return "none"
    data = bytearray(wal.read_bytes())
    kind = rng.choice(["flip", "flip", "cut", "delete"])
    if kind == "flip":
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        wal.write_bytes(bytes(data))
    elif kind == "cut":
        wal.write_bytes(bytes(data[: rng.randrange(len(data))]))
    else:
        wal.unlink()
    return kind


@pytest.mark.parametrize("damaged", [False, True], ids=["sound", "wal-damaged"])
def test_random_sigkills_during_enqueue_delivery_and_purge_lose_nothing(data_dir, damaged):
    seed = os.environ.get("SMTPB_CRASH_SEED", str(time.time()))
    rng = random.Random(seed)
    acknowledged = []
    warnings = []
    wal = data_dir / "spool" / "outbox.db-wal"
    with RecordingServer() as server:
        for _ in range(CRASH_ROUNDS):
            child = Child(data_dir, server.port, 0, "churn")
            try:
                first = child.line(timeout=60)
                if first.startswith("warning:"):  # damage found at the child's open
                    warnings.append(first)
                    first = child.line()
                assert first == "ready"
                deadline = time.monotonic() + rng.uniform(0.2, 1.2)
                while time.monotonic() < deadline:
                    try:
                        line = child.lines.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    if line is None:
                        child.proc.wait(5)
                        raise AssertionError(f"the child ended early: {child.proc.stderr.read()}")
                    acknowledged.append(line)
            finally:
                child.kill()
            # What the child printed before it died was acknowledged too.
            while True:
                try:
                    line = child.lines.get(timeout=1)
                except queue.Empty:
                    break
                if line is None:
                    break
                acknowledged.append(line)
            if damaged and rng.random() < 0.5:
                damage_wal(wal, rng)
        warnings += [line for line in acknowledged if line.startswith("warning:")]
        acknowledged = [line for line in acknowledged if not line.startswith("warning:")]
        assert len(acknowledged) > CRASH_ROUNDS, "the rounds were too short to enqueue anything"
        with smtpbridge.Client(data_dir) as client:
            if client.open_warning:
                warnings.append(client.open_warning)
            client.flush(120_000)
            stats = client.outbox_stats()
            assert stats["queued"] == stats["sending"] == stats["deferred"] == 0, stats
        received = [message_id(m) for m in server.messages]
    received_ids = {mid[1:27] for mid in received}
    lost = [i for i in acknowledged if i not in received_ids]
    if damaged:
        # Every loss is reported: counted in damaged_records, with a warning at an open.
        assert len(lost) <= stats["damaged_records"], (
            f"seed {seed}: {len(lost)} acknowledged messages lost, {stats['damaged_records']} reported: {warnings}"
        )
        assert not lost or warnings, f"seed {seed}: {len(lost)} lost without a warning"
        assert all("outbox.db" in w for w in warnings), warnings
    else:
        assert not warnings, warnings
        assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged messages were never delivered"
    # A duplicate is the same message again: same Message-ID, never a new one.
    assert all(re.fullmatch(r"<[0-9A-Z]{26}@firm\.example>", m) for m in received)
    duplicates = len(received) - len(set(received))
    print(
        f"{CRASH_ROUNDS} rounds: {len(acknowledged)} acknowledged, {len(lost)} lost, "
        f"{stats['damaged_records']} reported lost, {duplicates} duplicates"
    )
