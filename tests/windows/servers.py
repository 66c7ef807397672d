#!/usr/bin/env python3
"""The loopback SMTP servers the Windows programs under Wine send to.

    python tests/windows/servers.py --dir DIR

Runs on the Linux side (Wine shares the host's network) until SIGTERM or
SIGINT, with the test suite's own servers (tests/servers):

- ``plain``: `RecordingServer`, no TLS, no AUTH.
- ``tls``:   `RecordingServer` with STARTTLS required and AUTH PLAIN/LOGIN
  (user ``anna``, password ``s3cret``), certificate from a test
  `CertAuthority` (``DIR/certs/ca.pem``).
- ``graph``: the loopback Microsoft Graph server (`GraphServer`, HTTPS with
  a certificate of the same CA), accepting the bearer token ``GRAPH_TOKEN``;
  ``graph_url`` is its base URL.
- ``closed``: a port that was bound and released, where nothing listens.

Writes ``DIR/servers.json`` (ports, CA path) once listening; then, for every
message a server receives, ``DIR/<server>/NNNN.eml`` (the DATA bytes, or
the MIME Graph got) and ``NNNN.json`` (envelope, TLS version, AUTH user;
for Graph the mailbox), each file written aside and
renamed, so a reader never sees half of one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers.aiosmtpd_servers import RecordingServer  # noqa: E402
from servers.certs import CertAuthority  # noqa: E402
from servers.graph import GraphServer  # noqa: E402

USERS = {"anna": "s3cret"}
GRAPH_TOKEN = "windows-graph-access-token"
GRAPH_SENDER = "anna@firm.example"


def write_atomically(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


def record(name: str, server: RecordingServer, folder: Path, stop: threading.Event) -> None:
    """Writes each message `server` receives into `folder` as it arrives."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    while not stop.is_set():
        try:
            messages = server.wait_for(written + 1, timeout=0.5)
        except TimeoutError:
            continue
        for message in messages[written:]:
            written += 1
            stem = folder / f"{written:04d}"
            write_atomically(stem.with_suffix(".eml"), message.raw)
            meta = {"server": name, "mail_from": message.mail_from, "rcpt_tos": message.rcpt_tos,
                    "tls_version": message.tls_version, "auth_user": message.auth_user}
            write_atomically(stem.with_suffix(".json"), json.dumps(meta).encode())


def record_graph(server: GraphServer, folder: Path, stop: threading.Event) -> None:
    """Writes each message the Graph server accepts into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    while not stop.is_set():
        try:
            messages = server.wait_for(written + 1, timeout=0.5)
        except (TimeoutError, AssertionError):
            continue
        for message in messages[written:]:
            written += 1
            stem = folder / f"{written:04d}"
            write_atomically(stem.with_suffix(".eml"), message.mime)
            meta = {"server": "graph", "mail_from": message.mailbox, "rcpt_tos": message.recipients(),
                    "tls_version": "TLS (HTTPS)", "auth_user": GRAPH_SENDER}
            write_atomically(stem.with_suffix(".json"), json.dumps(meta).encode())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True, type=Path)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    authority = CertAuthority(args.dir / "certs")
    servers = {
        "plain": RecordingServer(),
        "tls": RecordingServer(tls_context=authority.valid().server_context(), require_starttls=True,
                               users=USERS, auth_required=True),
    }
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    graph = GraphServer(
        authority.valid(),
        lambda token: {"active": True, "scope": "Mail.Send"} if token == GRAPH_TOKEN else None,
        {"me": {"id": "1", "mail": GRAPH_SENDER, "userPrincipalName": GRAPH_SENDER}},
    )
    threads = [threading.Thread(target=record, args=(name, server, args.dir / name, stop), daemon=True)
               for name, server in servers.items()]
    threads.append(threading.Thread(target=record_graph, args=(graph, args.dir / "graph", stop), daemon=True))
    for thread in threads:
        thread.start()
    info = {name: server.port for name, server in servers.items()}
    info.update(closed=closed_port(), ca_pem=str(authority.ca_pem_path), graph_url=graph.url,
                graph_token=GRAPH_TOKEN)
    write_atomically(args.dir / "servers.json", json.dumps(info).encode())
    print(f"servers.py: {info}", flush=True)
    stop.wait()
    for server in servers.values():
        server.stop()
    graph.stop()
    for thread in threads:
        thread.join(5)


if __name__ == "__main__":
    main()
