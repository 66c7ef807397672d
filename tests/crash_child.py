"""A child process for tests/test_outbox_crash.py: it fills an outbox, says
"ready" and waits to be killed (SIGKILL), so the test can check what a crash
leaves in the spool.

    python crash_child.py DATA_DIR PORT COUNT MODE [TIMEOUT_MS]

MODE ``closed``: PORT has no listener; print the ids (one JSON line), then
"ready". MODE ``queued``: the same with the client opened paused (nothing
is written after the enqueues). MODE ``sending``: PORT is a server that hangs after the final dot;
wait until SMTPDeliveryThreads messages are ``sending``, print the ids and
the sending ids (two JSON lines), then "ready". MODE ``churn``: see
churn() (COUNT is ignored); a warning the open left (damage found) is
printed first, as one line beginning "warning:". Needs SMTPBRIDGE_LIBRARY
(conftest sets it; the child inherits it).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import smtpbridge  # noqa: E402


def main() -> None:
    data_dir, port, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    timeout_ms = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    client = smtpbridge.Client(data_dir, paused=mode == "queued")
    for key, value in {
        "SMTPServer": "127.0.0.1",
        "SMTPServerPort": port,
        "SMTPServerEncryption": "None",
        "SMTPAuthentication": "None",
        "SMTPConnectionTimeout": timeout_ms,
        "SMTPRetryInitialMs": 100,
        "SMTPRetryMaxMs": 200,
    }.items():
        client.config_set(key, value)
    if mode == "churn":
        if client.open_warning:
            print(client.open_warning.replace("\n", " "), flush=True)
        churn(client)
        return
    ids = [
        client.enqueue({
            "from": "anna@firm.example",
            "to": [f"client{n}@example.com"],
            "subject": f"crash test {n}",
            "text": f"message number {n}",
        })
        for n in range(count)
    ]
    print(json.dumps(ids), flush=True)
    if mode == "sending":
        threads = int(client.config_get("SMTPDeliveryThreads"))
        deadline = time.monotonic() + 10
        while True:
            sending = [s["id"] for s in client.outbox_list("sending")]
            if len(sending) >= min(threads, count) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        print(json.dumps(sending), flush=True)
    print("ready", flush=True)
    time.sleep(120)  # killed long before this


def churn(client) -> None:
    """MODE ``churn``: say "ready", then enqueue for ever (printing each id
    once enqueue returned it) while the delivery threads send to PORT, and
    purge every sent status every 20 messages: killed at a random point of
    enqueue, delivery or purge."""
    print("ready", flush=True)
    n = 0
    while True:
        id = client.enqueue({
            "from": "anna@firm.example",
            "to": [f"churn{n}@example.com"],
            "subject": f"churn {n}",
            "text": f"message number {n}",
        })
        print(id, flush=True)
        n += 1
        if n % 20 == 0:
            client.outbox_purge("9999-01-01T00:00:00Z", ["sent"])


if __name__ == "__main__":
    main()
