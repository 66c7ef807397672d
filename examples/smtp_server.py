#!/usr/bin/env python3
"""A tiny loopback SMTP server for the examples: it keeps every message it gets.

    python3 examples/smtp_server.py --port-file F --maildir D [--max-seconds 120]

Listens on 127.0.0.1 on a port the OS chooses and writes that port to F.
Each message is saved as D/NNNN.eml (whole files only: written aside, then
renamed) and summarised in one line on stdout. No TLS, no AUTH. Stops on
SIGTERM or SIGINT, or after --max-seconds. Needs aiosmtpd.
"""

import argparse
import asyncio
import email.parser
import email.policy
import os
import signal
import sys

from aiosmtpd.smtp import SMTP


class SaveToMaildir:
    """aiosmtpd handler: one .eml file and one stdout line per message."""

    def __init__(self, maildir: str) -> None:
        self.maildir = maildir
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        path = os.path.join(self.maildir, f"{self.count:04d}.eml")
        with open(path + ".part", "wb") as f:
            f.write(envelope.original_content)
        os.replace(path + ".part", path)
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(
            envelope.original_content)
        print(f"#{self.count} from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}"
              f" subject {str(headers['subject'])!r} ({len(envelope.original_content)} bytes)"
              f" -> {path}", flush=True)
        return "250 2.0.0 OK queued"


async def serve(args: argparse.Namespace) -> None:
    os.makedirs(args.maildir, exist_ok=True)
    handler = SaveToMaildir(args.maildir)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", ident="smtpbridge example server"),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".part", "w") as f:
        f.write(f"{port}\n")
    os.replace(args.port_file + ".part", args.port_file)
    print(f"listening on 127.0.0.1:{port}, saving to {args.maildir}", flush=True)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        print(f"stopping after {args.max_seconds}s", file=sys.stderr, flush=True)
    server.close()
    await server.wait_closed()
    print(f"stopped; {handler.count} message(s) received", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="where to write the chosen port")
    parser.add_argument("--maildir", required=True, help="folder for the received .eml files")
    parser.add_argument("--max-seconds", type=float, default=120, help="stop after this long")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
