"""Writes the version-1 journals the migration and damage tests read
(tests/data/journal-v1-*.log). They were made once with the 1.0 library,
whose outbox wrote the journal; the 1.1 library only reads it (to migrate):

    SMTPBRIDGE_LIBRARY=/path/to/1.0/libsmtpbridge.so python tests/data/make_journal_fixtures.py

journal-v1-50.log: 50 queued messages ("flip 0".."flip 49", reference
REF-n), closed cleanly. journal-v1-mixed.log: 3 sent, 1 cancelled, 2 queued
(one with idempotency_key "IDEM-1").
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "bindings" / "python"))

import smtpbridge  # noqa: E402
from servers import RecordingServer  # noqa: E402


def configure(client, port):
    for key, value in {"SMTPServer": "127.0.0.1", "SMTPServerPort": port, "SMTPServerEncryption": "None",
                       "SMTPAuthentication": "None", "SMTPConnectionTimeout": 2000}.items():
        client.config_set(key, value)


def msg(n, **extra):
    return {"from": "anna@firm.example", "to": [f"client{n}@example.com"], "subject": f"flip {n}",
            "text": f"message number {n}", "reference": f"REF-{n}", **extra}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "a"
        with smtpbridge.Client(str(d), paused=True) as c:
            configure(c, 9)
            for n in range(50):
                c.enqueue(msg(n))
        shutil.copy(d / "spool" / "journal.log", HERE / "journal-v1-50.log")

        d = Path(tmp) / "b"
        with RecordingServer() as server:
            with smtpbridge.Client(str(d), paused=True) as c:
                configure(c, server.port)
                sent = [c.enqueue(msg(n)) for n in range(3)]
                cancelled = c.enqueue(msg(3))
                c.cancel(cancelled)
                c.outbox_resume(None)
                for i in sent:
                    c.wait(i, 10_000)
                c.outbox_pause(None)
                c.enqueue(msg(4))
                c.enqueue(msg(5, idempotency_key="IDEM-1"))
        with smtpbridge.Client(str(d), paused=True) as c:
            c.outbox_resume(None)
            c.outbox_pause(None)
        shutil.copy(d / "spool" / "journal.log", HERE / "journal-v1-mixed.log")


if __name__ == "__main__":
    main()
