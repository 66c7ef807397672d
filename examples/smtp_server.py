#!/usr/bin/env python3
"""A tiny loopback SMTP server for the examples: it keeps every message it gets.

    python3 examples/smtp_server.py --port-file F --maildir D [--max-seconds N]

Listens on 127.0.0.1 on a port the OS chooses and writes that port to F.
Each message is saved as D/NNNN.eml (whole files only: written aside, then
renamed) and summarised in one line on stdout. No TLS, no AUTH. Runs until
stopped with SIGTERM or SIGINT (Ctrl-C, `kill %1`), or, with
--max-seconds N, for at most N seconds (scripts use it so that a server
they could not stop does not outlive them); either way it says on stdout
that it stopped and why. Needs aiosmtpd.
"""

import argparse
import asyncio
import email.parser
import email.policy
import os
import signal

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
    # Signals are handled before the port file exists: whoever read the
    # port may stop the server at once.
    stop = asyncio.Event()
    why = []
    for signum, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
        loop.add_signal_handler(signum, lambda name=name: (why.append(name), stop.set()))
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", ident="smtpbridge example server"),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".part", "w") as f:
        f.write(f"{port}\n")
    os.replace(args.port_file + ".part", args.port_file)
    limit = f"; stops after {args.max_seconds:g} s" if args.max_seconds is not None else ""
    print(f"listening on 127.0.0.1:{port}, saving to {args.maildir} (pid {os.getpid()}; "
          f"stop with Ctrl-C or SIGTERM{limit})", flush=True)

    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        why.append(f"--max-seconds {args.max_seconds:g}")
    server.close()
    await server.wait_closed()
    print(f"stopped ({why[0]}); {handler.count} message(s) received", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port-file", required=True, help="where to write the chosen port")
    parser.add_argument("--maildir", required=True, help="folder for the received .eml files")
    parser.add_argument("--max-seconds", type=float, default=None, metavar="N",
                        help="stop after N seconds (default: run until SIGTERM or Ctrl-C)")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
