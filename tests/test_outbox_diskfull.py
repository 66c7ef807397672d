"""A full disk (ABI §1 robustness, §4 durability): a call that fails
changes nothing, and a delivered message whose outcome cannot be recorded
says so and is recorded once there is room. The data_dir is on a small
tmpfs mounted for the test (the suite runs as root)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUSY, IO, ClosedPort, configure, expect_error, message
import smtpbridge
from servers.gated import GatedServer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="tmpfs is Linux's")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "mnt"
    mount.mkdir()
    # Root mounts directly; another user needs password-less sudo (CI).
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    options = f"size=8m,mode=0700,uid={os.getuid()},gid={os.getgid()}"
    done = subprocess.run([*sudo, "mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"these tests mount a tmpfs (root or password-less sudo): mount said {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run([*sudo, "umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fills the file system; returns the filler (delete it to make room)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    return filler


def test_calls_that_fail_on_a_full_disk_change_nothing(small_disk):
    data_dir = small_disk / "d"
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, ClosedPort())
        kept = [client.enqueue(message(subject=f"kept {n}")) for n in range(3)]
        client.outbox_pause(None)
        filler = fill(small_disk)
        before = client.outbox_list()
        for n in range(3):
            expect_error(IO, client.enqueue, message(subject="no room", text="x" * 200_000))
        assert client.outbox_list() == before
        # Resume reports IO and does not resume; pause reports IO and does not pause.
        expect_error(IO, client.outbox_resume, None)
        assert client.outbox_stats()["paused"] == ["*"]
        expect_error(IO, client.outbox_pause, "Default")
        assert client.outbox_stats()["paused"] == ["*"]
        filler.unlink()
        extra = client.enqueue(message(subject="room again"))
        client.outbox_resume(None)
        assert client.outbox_stats()["paused"] == []
        assert [s["id"] for s in client.outbox_list()] == kept + [extra]
    with smtpbridge.Client(data_dir, paused=True) as client:  # and all of it is on disk
        assert [s["id"] for s in client.outbox_list()] == kept + [extra]


def test_a_delivered_message_whose_sent_record_cannot_be_written_says_so(small_disk):
    data_dir = small_disk / "d"
    with GatedServer() as server:
        with smtpbridge.Client(data_dir, paused=True) as client:  # the delivery threads are read at open
            configure(client, server, SMTPDeliveryThreads=1)
        with smtpbridge.Client(data_dir) as client:
            id = client.enqueue(message(subject="delivered on a full disk"))
            assert server.arrived.wait(20), "the message never arrived"
            # The one delivery thread holds it: the next message waits behind it.
            next_id = client.enqueue(message(subject="the next one"))
            filler = fill(small_disk)
            server.release.set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                status = client.status(id)
                if "could not record" in (status["error"] or ""):
                    break
                time.sleep(0.05)
            # The store still says sending: so does the status, flagged.
            assert status["state"] == "sending", status
            assert status["possible_duplicate"] is True, status
            assert "could not record" in status["error"], status
            # The thread went on to the next message, and did not take the first again.
            deadline = time.monotonic() + 10
            while len(server.messages) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            subjects = [m["Subject"] for m in server.messages]
            assert subjects == ["delivered on a full disk", "the next one"], "it was sent again while the process lives"
            filler.unlink()
            final = client.wait(id, 10_000)
            assert final["state"] == "sent", final
            assert client.wait(next_id, 10_000)["state"] == "sent"
        assert len(server.messages) == 2
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert client.status(id)["state"] == "sent"


def test_a_client_opens_on_a_full_disk_and_delivers_the_queue(small_disk):
    """ABI §20 "Disk full": the open succeeds (lock.owner cannot be written,
    the lock still excludes), reads work, writes fail with IO naming the
    store, and the queue is delivered; the outcomes are recorded once
    there is room again, and no message goes twice."""
    data_dir = small_disk / "d"
    with GatedServer() as server:
        server.release.set()
        with smtpbridge.Client(data_dir, paused=True) as client:
            configure(client, server)
            ids = [client.enqueue(message(subject=f"queued {n}")) for n in range(5)]
        (data_dir / "lock.owner").unlink()  # written again at each open: here it cannot be
        filler = fill(small_disk)
        with smtpbridge.Client(data_dir, paused=True) as client:
            assert client.open_warning == ""
            assert client.outbox_stats()["queued"] == 5
            assert [s["id"] for s in client.outbox_list()] == ids
            busy = expect_error(BUSY, smtpbridge.Client, data_dir)
            assert "holder unknown" in busy.message, busy.message
            error = expect_error(IO, client.enqueue, message(subject="no room"))
            assert str(data_dir) in error.message, error.message
            assert [s["id"] for s in client.outbox_list()] == ids
        with smtpbridge.Client(data_dir) as client:  # delivering, the disk still full
            deadline = time.monotonic() + 20
            while len(server.messages) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sorted(m["Subject"] for m in server.messages) == [f"queued {n}" for n in range(5)]
            filler.unlink()
            assert [client.wait(id, 20_000)["state"] for id in ids] == ["sent"] * 5
        assert len(server.messages) == 5  # each once
    with smtpbridge.Client(data_dir, paused=True) as client:
        assert [client.status(id)["state"] for id in ids] == ["sent"] * 5
