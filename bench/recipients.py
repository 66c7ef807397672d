"""Recipient scaling: the seconds `smtpb_enqueue` takes for one message
with N recipients in To, for each library given, side by side.

The client is in memory with its outbox paused, so nothing is sent: the
time is the library reading the message JSON, validating every address,
building the MIME message and recording it. Each library runs in a
process of its own (through the Python binding); a library stops at the
first N that takes longer than --max-seconds, the larger ones marked
"skipped". Short runs are repeated and their median shown.

    python3 bench/recipients.py [--counts 1000,10000,100000] [--max-seconds 60] \\
        NAME=path/to/libsmtpbridge.so [NAME=...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_COUNTS = "1000,2000,5000,10000,20000,50000,100000"


def child(count: int) -> None:
    """Prints the seconds of one enqueue of `count` recipients."""
    sys.path.insert(0, str(ROOT / "bindings" / "python"))
    import smtpbridge

    message = {
        "from": "bench@firm.example",
        "to": [f"recipient{i}@example.com" for i in range(count)],
        "subject": "recipient scaling",
        "text": "one message, many recipients",
    }
    with smtpbridge.Client(paused=True) as client:
        client.configure(SMTPServer="127.0.0.1", SMTPAuthentication="None")
        started = time.perf_counter()
        client.enqueue(message)
        print(f"{time.perf_counter() - started:.4f}")


def measure(library: str, count: int) -> float:
    env = {**os.environ, "SMTPBRIDGE_LIBRARY": library}
    out = subprocess.run([sys.executable, __file__, "--child", str(count)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default=DEFAULT_COUNTS)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--child", type=int)
    parser.add_argument("libraries", nargs="*", metavar="NAME=LIBRARY")
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if not args.libraries:
        parser.error("name at least one NAME=LIBRARY")
    counts = [int(c) for c in args.counts.split(",")]
    names = [entry.split("=", 1)[0] for entry in args.libraries]
    results: dict[str, dict[int, str]] = {name: {} for name in names}
    for entry in args.libraries:
        name, library = entry.split("=", 1)
        stopped = False
        for count in counts:
            if stopped:
                results[name][count] = "skipped"
                continue
            first = measure(library, count)
            runs = [first] + ([measure(library, count) for _ in range(2)] if first < 5 else [])
            seconds = statistics.median(runs)
            results[name][count] = f"{seconds:.3f}"
            print(f"{name}: {count} recipients: {seconds:.3f} s ({len(runs)} runs)", file=sys.stderr)
            stopped = seconds > args.max_seconds
    print("| recipients | " + " | ".join(f"{n} (s)" for n in names) + " |")
    print("|---:|" + "---:|" * len(names))
    for count in counts:
        print(f"| {count:,} | " + " | ".join(results[n][count] for n in names) + " |")


if __name__ == "__main__":
    main()
