"""Damage is never silent (ABI §20): a damaged, truncated or deleted WAL, a
deleted or emptied outbox.db, an unreadable row and a damaged header byte
are found at open and reported (OK with a "warning: " naming the file,
`damaged_records` counting what was lost), and every readable record stays
readable. The WALs are real: written by a child process killed with
SIGKILL (which leaves the WAL and its index behind), then damaged here."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct
import sys
from pathlib import Path

import pytest

from conftest import IO, ClosedPort, configure, expect_error, message
import smtpbridge
from test_outbox_crash import Child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL of a child process")


def killed_with_wal(data_dir: Path, count: int = 15):
    """`count` messages enqueued by a child killed afterwards: their ids,
    and the WAL's page size, last committed frame and frames already in
    the database (from the wal-index SQLite left)."""
    child = Child(data_dir, ClosedPort().port, count, "queued")
    try:
        ids = json.loads(child.line(timeout=60))
        assert child.line() == "ready"
    finally:
        child.kill()
    spool = data_dir / "spool"
    wal = (spool / "outbox.db-wal").read_bytes()
    shm = (spool / "outbox.db-shm").read_bytes()
    page_size = struct.unpack_from(">I", wal, 8)[0]
    max_frame, backfilled = struct.unpack_from("=I", shm, 16)[0], struct.unpack_from("=I", shm, 96)[0]
    assert max_frame - backfilled >= count, (max_frame, backfilled)  # the enqueues are in the WAL
    return ids, page_size, max_frame, backfilled


def frame_offset(page_size: int, n: int) -> int:
    return 32 + n * (24 + page_size)


def damage(wal: Path, kind: str, page_size: int, frame: int) -> None:
    data = bytearray(wal.read_bytes())
    if kind == "page byte":
        data[frame_offset(page_size, frame) + 24 + page_size // 2] ^= 0x01
    elif kind == "frame salt":
        data[frame_offset(page_size, frame) + 9] ^= 0x40
    elif kind == "header byte":
        data[17] ^= 0x08
    elif kind == "truncated":
        del data[frame_offset(page_size, frame) + 100 :]
    elif kind == "emptied":
        data = bytearray()
    if kind == "deleted":
        wal.unlink()
    else:
        wal.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["page byte", "frame salt", "header byte", "truncated", "emptied", "deleted"])
def test_a_damaged_wal_is_reported_and_counts_every_message_it_lost(data_dir, kind):
    ids, page_size, max_frame, backfilled = killed_with_wal(data_dir)
    wal = data_dir / "spool" / "outbox.db-wal"
    damage(wal, kind, page_size, backfilled + (max_frame - backfilled) // 2)
    with smtpbridge.Client(data_dir, paused=True) as client:
        warning = client.open_warning
        present = {s["id"] for s in client.outbox_list()}
        damaged = client.outbox_stats()["damaged_records"]
    lost = [i for i in ids if i not in present]
    assert warning.startswith("warning: the WAL ") and str(wal) in warning, warning
    assert "were lost" in warning, warning
    assert 1 <= len(lost) <= damaged, (len(lost), damaged, warning)
    # What SQLite kept is the oldest part: the messages lost are the last ones.
    assert ids[: len(ids) - len(lost)] == [i for i in ids if i in present]
    if kind in ("page byte", "frame salt"):
        # The frames after the damage are still there: counted exactly, one per enqueue.
        assert damaged == len(lost), warning
        assert f" {damaged} committed transaction(s)" in warning and "up to" not in warning, warning
        copies = list(wal.parent.glob("outbox.db-wal.damaged-*"))
        assert len(copies) == 1
    if kind in ("truncated", "emptied", "deleted"):
        assert "up to" in warning, warning
    # Reported once: the next open is quiet and the count stays.
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning == ""
        assert client.outbox_stats()["damaged_records"] == damaged
        assert {s["id"] for s in client.outbox_list()} == present
        configure(client, ClosedPort())
        client.enqueue(message(subject="after the damage"))


def test_an_undamaged_wal_left_by_a_crash_opens_without_a_word(data_dir):
    ids, *_ = killed_with_wal(data_dir)
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning == ""
        assert [s["id"] for s in client.outbox_list()] == ids
        assert client.outbox_stats()["damaged_records"] == 0


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_missing_or_empty_store_beside_a_used_data_dir_is_reported(data_dir, how):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        for n in range(5):
            client.enqueue(message(subject=f"queued {n}"))
    db = data_dir / "spool" / "outbox.db"
    if how == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"")
    with smtpbridge.Client(data_dir, paused=True) as client:
        warning = client.open_warning
        assert warning.startswith("warning: the outbox store ") and str(db) in warning, warning
        assert ("is missing" if how == "deleted" else "is empty") in warning, warning
        assert "unknown number" in warning, warning
        assert client.outbox_stats()["damaged_records"] == 1
        assert client.outbox_list() == []
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning == ""
        assert client.outbox_stats()["damaged_records"] == 1
    # Without the marker too: a spool the library made, beside config.json.
    (data_dir / "store.json").unlink()
    db.unlink()
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert "is missing" in client.open_warning


def test_a_configuration_copied_into_a_new_data_dir_is_not_damage(data_dir, tmp_path):
    other = tmp_path / "other"
    with smtpbridge.Client(other) as client:
        configure(client, ClosedPort())
    data_dir.mkdir(parents=True)
    shutil.copy(other / "config.json", data_dir / "config.json")
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning == ""
        assert client.outbox_stats()["damaged_records"] == 0


def test_a_damaged_row_is_skipped_and_counted_and_every_other_stays_readable(data_dir):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        ids = [client.enqueue(message(subject=f"row {n}")) for n in range(12)]
        client.cancel(ids[10])  # final: the open does not read it
    db = data_dir / "spool" / "outbox.db"
    conn = sqlite3.connect(db)
    texts = {id: conn.execute("SELECT record FROM messages WHERE id = ?", (id,)).fetchone()[0] for id in ids}
    conn.close()
    # Flip bytes of the real file: one record stops being JSON, another names
    # no state (in every copy of it: a page split leaves stale ones behind).
    data = bytearray(db.read_bytes())
    not_json, bad_state, old = ids[3], ids[8], ids[10]
    state = texts[bad_state].encode().index(b'"queued"')
    # "{" -> "[", "queued" -> "qteued"
    for id, offset, bit in ((not_json, 0, 0x20), (bad_state, state + 2, 0x01), (old, 0, 0x20)):
        text, at = texts[id].encode(), 0
        while (at := data.find(text, at)) >= 0:
            data[at + offset] ^= bit
            at += 1
    db.write_bytes(bytes(data))
    readable = [i for i in ids if i not in (not_json, bad_state, old)]
    with smtpbridge.Client(data_dir, paused=True) as client:
        warning = client.open_warning
        # The messages not final are read at open; the history when it is read.
        assert warning.startswith("warning: 2 record(s) of the outbox store ") and str(db) in warning, warning
        assert client.outbox_stats()["damaged_records"] == 2
        assert [s["id"] for s in client.outbox_list("queued")] == readable
        assert [s["id"] for s in client.outbox_list()] == readable
        assert client.outbox_stats()["damaged_records"] == 3
        # Pages of 3: the bad rows cost no page its length.
        seen, cursor = [], None
        while True:
            page = client.outbox_query({"limit": 3, **({"cursor": cursor} if cursor else {})})
            seen += [s["id"] for s in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            assert len(page["items"]) == 3
        assert seen == readable[::-1]
        for bad in (not_json, bad_state, old):
            error = expect_error(IO, client.status, bad)
            assert bad in error.message and str(db) in error.message, error.message
        assert client.status(readable[0])["state"] == "queued"
        assert client.outbox_stats()["damaged_records"] == 3  # counted once, however often read


def test_a_damaged_header_byte_that_would_make_the_store_read_only_is_reported_and_repaired(data_dir):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        ids = [client.enqueue(message(subject=f"kept {n}")) for n in range(3)]
    db = data_dir / "spool" / "outbox.db"
    data = bytearray(db.read_bytes())
    data[18] ^= 0x80
    db.write_bytes(bytes(data))
    with smtpbridge.Client(data_dir, paused=True) as client:
        warning = client.open_warning
        assert warning.startswith("warning: the header of the outbox store ") and str(db) in warning, warning
        assert "130" in warning and "read-only" in warning, warning
        assert client.outbox_stats()["damaged_records"] == 0  # nothing was lost
        extra = client.enqueue(message(subject="written after the repair"))
        assert [s["id"] for s in client.outbox_list()] == ids + [extra]
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning == ""
        assert [s["id"] for s in client.outbox_list()] == ids + [extra]
