"""Crash safety of the outbox (ABI §4 "Outbox", "Errors by phase"): what
enqueue returned survives a SIGKILL; a message caught `sending` is sent again
with its Message-ID; a torn journal tail is cut off (keeping a copy); a
spool of a newer format is refused and left untouched."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import IO, TESTS, ClosedPort, configure, expect_error, message
import smtpbridge
from servers import HANG, RecordingServer, Script, ScriptedServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of a child process")

CHILD = TESTS / "crash_child.py"
MAGIC = b"SMTPBSPL"


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
            messages = server.wait_for(count, 10)
            time.sleep(0.3)
            messages = server.messages
            assert len(client.outbox_list()) == count
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


# --- a damaged journal ------------------------------------------------------------------------


def journal_of(data_dir: Path) -> Path:
    return data_dir / "spool" / "journal.log"


@pytest.mark.parametrize("damage", ["garbage_appended", "cut_mid_record"])
def test_torn_journal_tail_is_cut_off_keeping_every_complete_record(tmp_path, data_dir, damage):
    with RecordingServer() as server:
        sizes = []
        with smtpbridge.Client(data_dir, paused=True) as client:
            configure(client, server)
            ids = []
            for n in range(5):
                ids.append(client.enqueue(message(subject=f"kept {n}")))
                sizes.append(journal_of(data_dir).stat().st_size)  # durable when enqueue returns
        copy = tmp_path / "copy"
        shutil.copytree(data_dir, copy)
        journal = journal_of(copy)
        data = journal.read_bytes()
        assert data[:8] == MAGIC
        if damage == "garbage_appended":
            torn = data + os.urandom(97)
            kept = ids
        else:
            torn = data[: (sizes[3] + sizes[4]) // 2]  # inside the fifth message's record
            kept = ids[:4]
        journal.write_bytes(torn)

        with smtpbridge.Client(copy, paused=True) as client:
            assert sorted(s["id"] for s in client.outbox_list()) == sorted(kept)
            assert {client.status(i)["state"] for i in kept} == {"queued"}
            damaged = sorted(journal.parent.glob("journal.log.damaged-*"))
            assert len(damaged) == 1, list(journal.parent.iterdir())
            assert damaged[0].read_bytes() == torn
            # The journal takes new records after the cut, and every kept body is intact.
            extra = client.enqueue(message(subject="after repair"))
            client.outbox_resume(None)
            statuses = wait_all(client, [*kept, extra], timeout=10)
        assert [s["state"] for s in statuses] == ["sent"] * (len(kept) + 1)
        subjects = sorted(m.parsed["Subject"] for m in server.messages)
    assert subjects == sorted([f"kept {n}" for n in range(len(kept))] + ["after repair"])
    with smtpbridge.Client(copy, paused=True) as client:  # and it opens cleanly again
        assert len(client.outbox_list()) == len(kept) + 1


def test_spool_of_a_newer_format_is_refused_and_left_untouched(data_dir):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        client.enqueue(message())
    journal = journal_of(data_dir)
    data = bytearray(journal.read_bytes())
    assert data[:8] == MAGIC
    assert int.from_bytes(data[8:12], "little") == 1
    data[8:12] = (9).to_bytes(4, "little")
    journal.write_bytes(bytes(data))
    listing = sorted(p.name for p in journal.parent.iterdir())

    error = expect_error(IO, smtpbridge.Client, data_dir)
    assert isinstance(error, smtpbridge.SmtpIOError)
    text = error.message.replace(str(data_dir), "")
    assert re.search(r"(?<!\d)9(?!\d)", text), error.message
    assert re.search(r"(?<!\d)1(?!\d)", text), error.message
    assert journal.read_bytes() == bytes(data)
    assert sorted(p.name for p in journal.parent.iterdir()) == listing
    # Refused again, still untouched (not "migrated" by the first try).
    expect_error(IO, smtpbridge.Client, data_dir, paused=True)
    assert journal.read_bytes() == bytes(data)
