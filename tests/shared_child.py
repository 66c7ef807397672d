"""A child process for tests/test_shared_outbox.py: one client on a shared
data_dir, driven over stdin/stdout, so that a test can run several
processes on one outbox and kill any of them.

    python shared_child.py DATA_DIR FLAGS

FLAGS: comma-separated ``shared``, ``submit_only``, ``paused`` (or ``-``).
The child opens the client and prints ``{"ready": pid}``, or
``{"error": code, "message": text}`` and ends. Then each stdin line is a
command ``{"op": name, ...arguments}``: a method of
``smtpbridge.Client`` called with the arguments, answered with one line
``{"result": value}`` or ``{"error": code, "message": text}``; the ops
``events`` and ``events_all`` set the event callback (or the callback for
every message), after which each event is printed as ``{"event": {...}}``
when it comes; ``stop_at_merge`` sets an event callback that prints each
event and, at the first event of a batch (a merge has written its first
messages), stops the whole process with SIGSTOP, so that a test holds it
inside ``smtpb_merge`` (then continues it with SIGCONT, or kills it);
``close`` closes the client and ends the child. Needs
SMTPBRIDGE_LIBRARY (conftest sets it; the child inherits it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import smtpbridge  # noqa: E402

_out = threading.Lock()


def emit(obj: Any) -> None:
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def stopping_at_merge() -> Any:
    """An event callback: prints each event, and stops this process at the
    first event of a batch (once)."""
    stopped = threading.Event()

    def on_event(event: Any) -> None:
        emit({"event": event})
        if event.get("batch_id") and not stopped.is_set():
            stopped.set()
            os.kill(os.getpid(), signal.SIGSTOP)

    return on_event


def main() -> None:
    data_dir, flags = sys.argv[1], set(sys.argv[2].split(","))
    try:
        client = smtpbridge.Client(
            data_dir, shared="shared" in flags, submit_only="submit_only" in flags, paused="paused" in flags
        )
    except smtpbridge.SmtpBridgeError as e:
        emit({"error": e.code, "message": e.message})
        return
    emit({"ready": os.getpid()})
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            if op == "events":
                client.set_event_callback(lambda event: emit({"event": event}))
                result = None
            elif op == "events_all":
                client.set_event_callback_all(lambda event: emit({"event": event}))
                result = None
            elif op == "stop_at_merge":
                client.set_event_callback(stopping_at_merge())
                result = None
            elif op == "close":
                client.close()
                emit({"result": None})
                return
            else:
                result = getattr(client, op)(**command)
            emit({"result": result})
        except smtpbridge.SmtpBridgeError as e:
            emit({"error": e.code, "message": e.message})


if __name__ == "__main__":
    main()
