"""A child process for tests/test_group_commit.py: THREADS threads enqueue
without pause into one durable client (opened paused: nothing is sent),
and one more thread merges batches of MERGE recipients, until the test
kills the process (SIGKILL). Each id is printed on its own line the moment
the call that made it returned (a merge prints all of its ids, aligned with
its recipients, in one line), so whatever the test read was acknowledged.

    python group_commit_child.py DATA_DIR PORT THREADS MERGE

Needs SMTPBRIDGE_LIBRARY (conftest sets it; the child inherits it).
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import smtpbridge  # noqa: E402

PRINT = threading.Lock()


def say(line: str) -> None:
    with PRINT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def enqueue_for_ever(client, who: int) -> None:
    n = 0
    while True:
        id = client.enqueue({
            "from": "anna@firm.example",
            "to": [f"client{who}-{n}@example.com"],
            "subject": f"group commit {who}-{n}",
            "text": f"message {n} of thread {who}",
        })
        say(json.dumps({"enqueued": id}))
        n += 1


def merge_for_ever(client, size: int) -> None:
    n = 0
    while True:
        result = client.merge(
            {"from": "anna@firm.example", "subject": "merge {{N}}", "text": "merged {{N}}"},
            [{"email": f"merged{n}-{i}@example.com", "fields": {"N": f"{n}-{i}"}} for i in range(size)],
        )
        say(json.dumps({"merged": result["ids"]}))
        n += 1


def main() -> None:
    data_dir, port, threads, merge = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    client = smtpbridge.Client(data_dir, paused=True)
    for key, value in {
        "SMTPServer": "127.0.0.1",
        "SMTPServerPort": port,
        "SMTPServerEncryption": "None",
        "SMTPAuthentication": "None",
    }.items():
        client.config_set(key, value)
    workers = [threading.Thread(target=enqueue_for_ever, args=(client, t), daemon=True) for t in range(threads)]
    if merge:
        workers.append(threading.Thread(target=merge_for_ever, args=(client, merge), daemon=True))
    say("ready")
    for w in workers:
        w.start()
    for w in workers:
        w.join()  # killed long before any ends


if __name__ == "__main__":
    main()
