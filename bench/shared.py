"""Shared outbox bench (ABI.md §17), one run: the enqueue rate from 1, 2 and
4 processes sharing one data_dir (submit-only clients, each enqueuing its
share as fast as it can, started together), and the delivery rate of a
queue of messages drained by a client that holds the data_dir exclusively
beside one that opened it shared. Against smtp-sink on 127.0.0.1.

    bash -c 'source scripts/env.sh; python bench/shared.py [--messages 2000]'

Prints the rows of docs/PERFORMANCE.md's table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SMTPBRIDGE_LIBRARY", str(ROOT / "target" / "release" / "libsmtpbridge.so"))
sys.path.insert(0, str(ROOT / "bindings" / "python"))
import smtpbridge  # noqa: E402

MESSAGE = {"from": "bench@firm.example", "to": ["client@example.com"], "subject": "Bench",
           "text": "A short message of the shared outbox bench.\r\n" * 20}


def child_enqueue(data_dir: str, count: int) -> None:
    """A child: open shared + submit-only, say ready, wait for go, enqueue
    ``count`` messages; print the monotonic start and end."""
    client = smtpbridge.Client(data_dir, shared=True, submit_only=True)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    for _ in range(count):
        client.enqueue(MESSAGE)
    ended = time.monotonic()
    print(f"{started} {ended}", flush=True)
    client.close()


def configure(data_dir: Path, port: int) -> None:
    with smtpbridge.Client(data_dir, paused=True) as client:
        for key, value in {"SMTPServer": "127.0.0.1", "SMTPServerPort": port, "SMTPServerEncryption": "None",
                           "SMTPAuthentication": "None"}.items():
            client.config_set(key, value)


def enqueue_rate(work: Path, port: int, processes: int, total: int) -> float:
    data_dir = work / f"enqueue-{processes}"
    configure(data_dir, port)
    with smtpbridge.Client(data_dir, shared=True, paused=True):  # holds delivery back: only enqueues are timed
        children = [subprocess.Popen([sys.executable, __file__, "--child-enqueue", str(data_dir),
                                      str(total // processes)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True) for _ in range(processes)]
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        spans = []
        for child in children:
            assert child.stdout is not None
            started, ended = map(float, child.stdout.readline().split())
            spans.append((started, ended))
            assert child.wait(timeout=600) == 0
    seconds = max(e for _, e in spans) - min(s for s, _ in spans)
    return seconds


def exclusive_enqueue_seconds(work: Path, port: int, count: int) -> float:
    data_dir = work / "enqueue-exclusive"
    configure(data_dir, port)
    with smtpbridge.Client(data_dir, paused=True) as client:
        started = time.monotonic()
        for _ in range(count):
            client.enqueue(MESSAGE)
        return time.monotonic() - started


def drain_seconds(work: Path, port: int, shared: bool, count: int) -> float:
    data_dir = work / f"drain-{'shared' if shared else 'exclusive'}"
    configure(data_dir, port)
    with smtpbridge.Client(data_dir, shared=shared, paused=True) as client:
        for _ in range(count):
            client.enqueue(MESSAGE)
        started = time.monotonic()
        client.outbox_resume()
        client.flush(600_000)
        seconds = time.monotonic() - started
        assert client.outbox_stats()["sent"] == count
    return seconds


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-enqueue":
        return child_enqueue(sys.argv[2], int(sys.argv[3]))
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    if not shutil.which("smtp-sink"):
        sys.exit("smtp-sink is missing (apt-get install postfix)")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = subprocess.Popen(["smtp-sink", "-u", os.environ.get("USER", "root"), f"127.0.0.1:{port}", "1024"])
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        n = args.messages
        with tempfile.TemporaryDirectory() as work:
            rows = [("smtpb_enqueue, exclusive data_dir, 1 process (1.1 behaviour)", n,
                     exclusive_enqueue_seconds(Path(work), port, n))]
            for processes in (1, 2, 4):
                seconds = enqueue_rate(Path(work), port, processes, n)
                label = f"{processes} process" + ("es" if processes > 1 else "")
                rows.append((f"smtpb_enqueue, shared data_dir, {label}", n, seconds))
            for shared in (False, True):
                seconds = drain_seconds(Path(work), port, shared, n)
                mode = "shared (SMTPB_OPEN_SHARED, holds the lease)" if shared else "exclusive"
                rows.append((f"drain of {n} queued, {mode}", n, seconds))
        print("| measurement | count | seconds | rate |\n|---|---:|---:|---:|")
        for name, count, seconds in rows:
            print(f"| {name} | {count} | {seconds:.3f} | {count / seconds:,.0f}/s |")
    finally:
        sink.terminate()
        sink.wait(timeout=10)


if __name__ == "__main__":
    main()
