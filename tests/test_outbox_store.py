"""The outbox over months (ABI §16, §4 "Outbox", §1 robustness): the store,
the migration of a 1.0 journal, damage recovered past, paged queries,
retention and purge, through the C ABI."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import struct
import threading
import time
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import INVALID_ARGUMENT, IO, NOT_FOUND, TESTS, ClosedPort, configure, expect_error, message
import smtpbridge
from servers import RecordingServer

FIXTURES = TESTS / "data"
FIFTY = FIXTURES / "journal-v1-50.log"
MIXED = FIXTURES / "journal-v1-mixed.log"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def rfc3339(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_plus(**delta) -> str:
    return rfc3339(datetime.now(timezone.utc) + timedelta(**delta))


def with_journal(data_dir: Path, journal: bytes) -> Path:
    spool = data_dir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    (spool / "journal.log").write_bytes(journal)
    return spool / "journal.log"


# --- the version-1 journal, read and written here as library 1.0 did ------------------


def records(journal: bytes):
    """[(offset, header dict, body bytes)] of a sound journal."""
    out, at = [], 16
    while at + 16 <= len(journal):
        hl, bl, _, _ = struct.unpack("<IIII", journal[at : at + 16])
        header = json.loads(journal[at + 16 : at + 16 + hl])
        out.append((at, header, journal[at + 16 + hl : at + 16 + hl + bl]))
        at += 16 + hl + bl
    return out


def encode(header: dict, body: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    lengths = struct.pack("<II", len(h), len(body))
    return lengths + struct.pack("<II", zlib.crc32(lengths + h), zlib.crc32(body)) + h + body


def ulid_at(ms: int) -> str:
    value = (ms << 80) | random.getrandbits(80)
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def aged_journal(ages_days: dict) -> bytes:
    """journal-v1-mixed with each message's id and created_at moved back by
    ages_days[final state] days (messages not final keep theirs)."""
    data = MIXED.read_bytes()
    recs = records(data)
    last = {h["status"]["id"]: h["status"]["state"] for _, h, _ in recs}
    new_ids = {}
    for old, state in last.items():
        if state in ages_days:
            created = time.time() - ages_days[state] * 86400
            new_ids[old] = (ulid_at(int(created * 1000)), int(created))
    out = data[:16]
    for _, h, body in recs:
        old = h["status"]["id"]
        if old in new_ids:
            h["status"]["id"], secs = new_ids[old]
            h["status"]["created_at"] = {"secs_since_epoch": secs, "nanos_since_epoch": 0}
        out += encode(h, body)
    return out


# --- migration ------------------------------------------------------------------------


def test_a_1_0_journal_is_migrated_keeping_every_state_and_a_copy(data_dir):
    original = MIXED.read_bytes()
    journal = with_journal(data_dir, original)
    expected = {h["status"]["id"]: h["status"]["state"] for _, h, _ in records(original)}
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            assert client.open_warning == ""
            configure(client, server)
            got = {s["id"]: s["state"] for s in client.outbox_list()}
            # What was `sending` when 1.0 stopped would come back queued; this one closed cleanly.
            assert got == expected
            stats = client.outbox_stats()
            assert (stats["sent"], stats["cancelled"], stats["queued"], stats["damaged_records"]) == (3, 1, 2, 0)
            # The idempotency key still names its message.
            again = client.enqueue(message(idempotency_key="IDEM-1"))
            assert expected[again] == "queued"
            client.outbox_resume(None)
            queued = [i for i, s in expected.items() if s == "queued"]
            for i in queued:
                assert client.wait(i, 10_000)["state"] == "sent"
        subjects = sorted(m.parsed["Subject"] for m in server.messages)
    assert subjects == ["flip 4", "flip 5"]
    assert not journal.exists()
    copies = list(journal.parent.glob("journal.log.v1-migrated-*"))
    assert len(copies) == 1 and copies[0].read_bytes() == original
    with smtpbridge.Client(data_dir, paused=True) as client:  # opens from the store alone
        assert {s["id"] for s in client.outbox_list()} == set(expected)


def test_a_journal_of_a_newer_format_is_refused_and_left_untouched(data_dir):
    data = bytearray(FIFTY.read_bytes())
    data[8:12] = (9).to_bytes(4, "little")
    journal = with_journal(data_dir, bytes(data))
    listing = sorted(p.name for p in journal.parent.iterdir())
    for _ in range(2):
        error = expect_error(IO, smtpbridge.Client, data_dir)
        text = error.message.replace(str(data_dir), "")
        assert re.search(r"(?<!\d)9(?!\d)", text) and re.search(r"(?<!\d)1(?!\d)", text), error.message
        assert journal.read_bytes() == bytes(data)
        assert sorted(p.name for p in journal.parent.iterdir()) == listing


def test_a_store_of_a_newer_format_is_refused_and_never_written(data_dir):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        client.enqueue(message())
    db = data_dir / "spool" / "outbox.db"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = {p.name: p.read_bytes() for p in db.parent.iterdir() if p.is_file()}
    error = expect_error(IO, smtpbridge.Client, data_dir)
    text = error.message.replace(str(data_dir), "")
    assert re.search(r"(?<!\d)7(?!\d)", text) and re.search(r"(?<!\d)3(?!\d)", text), error.message
    after = {p.name: p.read_bytes() for p in db.parent.iterdir() if p.is_file()}
    assert after == before


def test_a_format_2_store_of_library_1_1_opens_and_gains_the_tables_of_a_shared_data_dir(data_dir):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        queued = client.enqueue(message())
    db = data_dir / "spool" / "outbox.db"
    conn = sqlite3.connect(db)
    # Back to what 1.1 wrote: format 2, without the tables of format 3.
    conn.executescript(
        "DROP TRIGGER messages_shared_insert; DROP TRIGGER messages_shared_update;"
        "DROP TABLE clients; DROP TABLE lease; DROP TABLE changes; PRAGMA user_version = 2;"
    )
    conn.commit()
    conn.close()
    with smtpbridge.Client(data_dir, paused=True, shared=True) as client:
        assert client.status(queued)["state"] == "queued"
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"clients", "lease", "changes", "messages"} <= tables
    # Closed: the shared client left no trace of itself.
    assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM lease").fetchone()[0] == 0
    conn.close()


# --- damage ---------------------------------------------------------------------------


def flip_positions():
    """In each of the first three records of the 50-message journal: a byte
    of each frame field (lengths, CRCs), three of the header and two of the
    body. The Rust test in src/outbox/journal.rs flips every byte of them
    against the same reader; this runs the sample through the C ABI."""
    recs = records(FIFTY.read_bytes())
    starts = [at for at, _, _ in recs[:4]]
    positions = []
    for r in range(3):
        at, header, body = recs[r]
        hl = len(json.dumps(header, separators=(",", ":")))
        positions += [at + 1, at + 5, at + 9, at + 14, at + 16, at + 16 + hl // 2, at + 15 + hl]
        positions += [at + 16 + hl + 3, starts[r + 1] - 1]
    return starts, positions


def test_one_flipped_byte_in_the_first_records_costs_only_that_record(tmp_path):
    sound = FIFTY.read_bytes()
    recs = records(sound)
    ids = [h["status"]["id"] for _, h, _ in recs]
    starts, positions = flip_positions()
    for n, pos in enumerate(positions):
        record = max(r for r in range(3) if starts[r] <= pos)
        damaged = bytearray(sound)
        damaged[pos] ^= 0x5A
        data_dir = tmp_path / f"d{n}"
        journal = with_journal(data_dir, bytes(damaged))
        with smtpbridge.Client(data_dir, paused=True) as client:
            warning = client.open_warning
            assert warning.startswith("warning:"), (pos, warning)
            assert "journal.log" in warning and f"offset {starts[record]}" in warning, (pos, warning)
            assert client.outbox_stats()["damaged_records"] == 1, pos
            states = {s["id"]: s["state"] for s in client.outbox_list()}
        for i, id in enumerate(ids):
            if i == record:
                assert states.get(id, "failed") == "failed", pos  # gone, or failed when only its bytes were hit
            else:
                assert states.get(id) == "queued", (pos, i)
        assert list(journal.parent.glob("journal.log.v1-migrated-*"))[0].read_bytes() == bytes(damaged)


def test_damage_is_logged_and_every_intact_message_is_delivered(data_dir):
    sound = FIFTY.read_bytes()
    recs = records(sound)
    damaged = bytearray(sound)
    damaged[recs[10][0] + 40] ^= 0xFF  # inside record 10's header
    with_journal(data_dir, bytes(damaged))
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            assert f"offset {recs[10][0]}" in client.open_warning
            assert "1 record(s) lost" in client.open_warning
            configure(client, server)
            client.outbox_resume(None)
            client.flush(60_000)
            assert client.outbox_stats()["sent"] == 49
        subjects = sorted(m.parsed["Subject"] for m in server.messages)
    assert subjects == sorted(f"flip {n}" for n in range(50) if n != 10)
    # Once migrated, the store opens without a warning; the count stays.
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning == ""
        assert client.outbox_stats()["damaged_records"] == 1


def test_a_torn_tail_is_reported_the_same_way(data_dir):
    sound = FIFTY.read_bytes()
    recs = records(sound)
    cut = recs[49][0] + 100
    with_journal(data_dir, sound[:cut])
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.open_warning.startswith("warning:")
        assert f"offset {recs[49][0]}" in client.open_warning and "torn" in client.open_warning
        assert client.outbox_stats()["damaged_records"] == 1
        assert len(client.outbox_list("queued")) == 49
        # A later successful call clears the warning, as any success does.
        client.outbox_stats()
        assert smtpbridge._native.last_error() == ""


def test_recovery_copies_are_unique_and_few(tmp_path):
    data_dir = tmp_path / "d"
    spool = data_dir / "spool"
    for n in range(5):
        if (spool / "outbox.db").exists():
            for p in spool.glob("outbox.db*"):
                p.unlink()
        with_journal(data_dir, FIFTY.read_bytes())
        with smtpbridge.Client(data_dir, paused=True):
            pass
    copies = sorted(p.name for p in spool.glob("journal.log.v1-migrated-*"))
    assert len(copies) == 3, copies
    assert len(set(copies)) == 3


# --- queries --------------------------------------------------------------------------


def test_query_pages_newest_first_with_every_filter(data_dir):
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        configure(client, ClosedPort(), profile="Backup")
        ids = []
        for n in range(230):
            profile = "Backup" if n % 10 == 0 else None
            fields = {"reference": f"CL-{n // 100}/DOC-{n}"}
            if profile:
                fields["profile"] = profile
            ids.append(client.enqueue(message(subject=f"q {n}", **fields)))
        for i in ids[:5]:
            client.cancel(i)
        template = {k: v for k, v in message(subject="m {{Name}}").items() if k != "to"}
        batch = client.merge(template, [
            {"email": f"r{n}@example.com", "fields": {"Name": str(n)}} for n in range(7)
        ])
        newest_first = list(reversed(ids + batch["ids"]))

        page = client.outbox_query()
        assert len(page["items"]) == 100 and page["next_cursor"]
        assert [s["id"] for s in page["items"]] == newest_first[:100]
        seen = [s["id"] for s in client.iter_outbox(limit=37)]
        assert seen == newest_first

        def q(**f):
            return [s["id"] for s in client.iter_outbox(limit=1000, **f)]

        assert q(state=["cancelled"]) == list(reversed(ids[:5]))
        assert q(state=["cancelled", "queued"]) == newest_first
        assert q(state=["sent"]) == []
        assert q(batch_id=batch["batch_id"]) == list(reversed(batch["ids"]))
        assert q(reference="CL-1/DOC-150") == [ids[150]]
        assert q(reference_prefix="CL-2/") == list(reversed(ids[200:]))
        assert q(profile="backup") == list(reversed(ids[::10]))
        assert q(profile="BACKUP", reference_prefix="CL-0/") == list(reversed(ids[0:100:10]))
        assert q(since=now_plus(minutes=-5)) == newest_first
        assert q(until=now_plus(minutes=-5)) == []
        assert q(since=now_plus(minutes=1)) == []
        assert q(until=now_plus(minutes=1), state=["queued"])[-1] == ids[5]

        for bad, named in [
            ({"states": ["queued"]}, "states"),
            ({"state": "queued"}, "state"),
            ({"state": ["lost"]}, "lost"),
            ({"limit": 0}, "limit"),
            ({"limit": 1001}, "limit"),
            ({"limit": "10"}, "limit"),
            ({"since": "yesterday"}, "since"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"batch_id": 5}, "batch_id"),
        ]:
            error = expect_error(INVALID_ARGUMENT, client.outbox_query, bad)
            assert named in error.message, (bad, error.message)
        error = expect_error(INVALID_ARGUMENT, client._call_json, "smtpb_outbox_query", b'{"limit": 5, "limit": 6}')
        assert "limit" in error.message


def test_query_pages_are_stable_while_delivery_goes_on(data_dir):
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:
            configure(client, server)
            ids = [client.enqueue(message(subject=f"s {n}")) for n in range(300)]
            client.outbox_resume(None)
            seen = []
            cursor = None
            while True:
                page = client.outbox_query({"limit": 20, "cursor": cursor})
                seen += [s["id"] for s in page["items"]]
                client.enqueue(message(subject="arrives meanwhile"))
                cursor = page["next_cursor"]
                if not cursor:
                    break
            client.flush(60_000)
    assert seen == list(reversed(ids))


# --- retention and purge --------------------------------------------------------------


def test_purge_frees_ids_and_idempotency_keys_and_keeps_what_is_not_final(data_dir, tmp_path):
    archive = tmp_path / "archive"
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir) as client:
            configure(client, server, SMTPArchiveDir=str(archive))
            sent = [client.enqueue(message(subject=f"p {n}", idempotency_key=f"K-{n}")) for n in range(20)]
            for i in sent:
                assert client.wait(i, 10_000)["state"] == "sent"
            client.outbox_pause(None)
            queued = client.enqueue(message(subject="stays"))
            cancelled = client.enqueue(message(subject="cancelled"))
            client.cancel(cancelled)
            expect_error(INVALID_ARGUMENT, client.outbox_purge, "soon")
            expect_error(INVALID_ARGUMENT, client.outbox_purge, now_plus(days=1), ["queued"])
            expect_error(INVALID_ARGUMENT, client.outbox_purge, now_plus(days=1), ["gone"])
            assert client.outbox_purge(now_plus(days=-1)) == 0
            assert client.outbox_purge(now_plus(days=1), ["cancelled"]) == 1
            assert client.outbox_purge(now_plus(days=1)) == 20
            for i in sent + [cancelled]:
                expect_error(NOT_FOUND, client.status, i)
            assert client.status(queued)["state"] == "queued"
            stats = client.outbox_stats()
            assert (stats["sent"], stats["cancelled"], stats["queued"]) == (0, 0, 1)
            fresh = client.enqueue(message(subject="again", idempotency_key="K-3"))
            assert fresh not in sent
    assert len([p for p in archive.iterdir() if p.is_dir()]) == 20  # archives are the host's


def test_expired_statuses_are_purged_at_open_by_the_retention_keys(data_dir, tmp_path):
    # A configuration made beforehand (the keys persist in data_dir).
    other = tmp_path / "other"
    with smtpbridge.Client(other) as client:
        client.config_set("SMTPKeepSentDays", "30")
        client.config_set("SMTPKeepFailedDays", "0")
        assert client.config_get("SMTPKeepSentDays") == "30"
        expect_error(smtpbridge.ConfigError.code, client.config_set, "SMTPKeepSentDays", "-1")
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(other / "config.json", data_dir / "config.json")
    with_journal(data_dir, aged_journal({"sent": 40, "cancelled": 10}))
    with smtpbridge.Client(data_dir, paused=True) as client:
        deadline = time.monotonic() + 10
        while client.outbox_stats()["sent"] and time.monotonic() < deadline:
            time.sleep(0.05)
        stats = client.outbox_stats()
        assert (stats["sent"], stats["cancelled"], stats["queued"]) == (0, 1, 2)


def test_purge_gives_the_space_back(data_dir):
    spool = data_dir / "spool"
    with RecordingServer() as server:
        with smtpbridge.Client(data_dir) as client:
            configure(client, server)
            big = "x" * 20_000
            ids = [client.enqueue(message(subject=f"b {n}", text=big)) for n in range(300)]
            for i in ids:
                client.wait(i, 20_000)
            client.outbox_pause(None)
            size = lambda: sum(p.stat().st_size for p in spool.glob("outbox.db*"))
            full = size()
            assert client.outbox_purge(now_plus(days=1)) == 300
            assert size() < full / 2, (full, size())


def test_a_purged_status_takes_its_transcript_with_it(dir_client, server, data_dir):
    configure(dir_client, server)
    dir_client.config_set("SMTPTranscript", "All")
    status = dir_client.send(message())
    assert dir_client.transcript(status["id"]), "SMTPTranscript=All keeps the transcript of a sent message"
    assert (data_dir / "transcripts" / f"{status['id']}.json").is_file()
    later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert dir_client.outbox_purge(later) == 1
    expect_error(NOT_FOUND, dir_client.transcript, status["id"])
    assert not (data_dir / "transcripts" / f"{status['id']}.json").exists()
