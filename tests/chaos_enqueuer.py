"""A child of tests/test_shared_chaos.py: enqueues messages into a shared
data_dir as a submit-only client, until killed.

    python chaos_enqueuer.py DATA_DIR NAME ACK_FILE START

Message ``NAME-n`` (n from START) is enqueued; once ``enqueue`` returned
(acknowledged), ``NAME-n ID`` is appended to ACK_FILE and flushed to disk
before the next one, so the file lists every acknowledged message (and at
most one more may have been queued without its line: killed in between).
"""

from __future__ import annotations

import os
import sys

import smtpbridge


def main() -> None:
    data_dir, name, ack_path, start = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    client = smtpbridge.Client(data_dir, shared=True, submit_only=True)
    with open(ack_path, "a", encoding="ascii") as acks:
        n = start
        while True:
            token = f"{name}-{n:06d}"
            id = client.enqueue({"from": "chaos@firm.example", "to": ["client@example.com"],
                                 "subject": token, "text": f"chaos message {token}"})
            acks.write(f"{token} {id}\n")
            acks.flush()
            os.fsync(acks.fileno())
            n += 1


if __name__ == "__main__":
    main()
