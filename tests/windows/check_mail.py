#!/usr/bin/env python3
"""Checks what a server of tests/windows/servers.py received.

    python tests/windows/check_mail.py DIR SERVER --subject S --count N
        [--attachment NAME=FILE]... [--tls] [--auth USER] [--from ADDR]
        [--header NAME=VALUE]... [--rcpt ADDR]...

Waits (up to --timeout seconds, default 30) until SERVER ("plain" or "tls")
has N messages with subject S, then fails if it has more; checks the newest
of them, parsed with Python's email package: each attachment NAME (the
decoded filename) is there with FILE's bytes, the message came over TLS
(--tls), after AUTH as USER (--auth), from ADDR (--from), each header NAME
has VALUE as decoded (--header), the envelope's recipients are exactly the
--rcpt ADDRs (in any order), and the text or HTML body contains --body. --count 0 checks
that no such message arrived. Prints one line on success; exits 1 naming
what differs otherwise.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import json
import sys
import time
from pathlib import Path


def matching(folder: Path, subject: str) -> list[tuple[Path, object]]:
    found = []
    for path in sorted(folder.glob("*.eml")):
        message = email.parser.BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
        if str(message["subject"]) == subject:
            found.append((path, message))
    return found


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir", type=Path)
    parser.add_argument("server", choices=["plain", "tls", "graph"])
    parser.add_argument("--subject", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--attachment", action="append", default=[])
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--auth")
    parser.add_argument("--from", dest="mail_from")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--rcpt", action="append", default=[])
    parser.add_argument("--body")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    folder = args.dir / args.server
    deadline = time.monotonic() + args.timeout
    found = matching(folder, args.subject)
    while len(found) < args.count and time.monotonic() < deadline:
        time.sleep(0.1)
        found = matching(folder, args.subject)
    if len(found) != args.count:
        print(f"check_mail: FAIL: {args.server} server has {len(found)} message(s) with subject "
              f"{args.subject!r}, expected {args.count}", file=sys.stderr)
        return 1
    if args.count == 0:
        print(f"check_mail: ok: no message {args.subject!r} reached the {args.server} server")
        return 0
    path, message = found[-1]
    meta = json.loads(path.with_suffix(".json").read_text())
    problems = []
    for spec in args.attachment:
        name, _, file = spec.partition("=")
        parts = [p for p in message.iter_attachments() if p.get_filename() == name]
        if len(parts) != 1:
            names = [p.get_filename() for p in message.iter_attachments()]
            problems.append(f"attachment {name!r}: found {len(parts)} (attachments: {names})")
        elif parts[0].get_payload(decode=True) != Path(file).read_bytes():
            problems.append(f"attachment {name!r}: its bytes differ from {file}")
    for spec in args.header:
        name, _, value = spec.partition("=")
        if str(message[name]) != value:
            problems.append(f"header {name}: {str(message[name])!r}, expected {value!r}")
    if args.rcpt and sorted(meta["rcpt_tos"]) != sorted(args.rcpt):
        problems.append(f"envelope recipients {meta['rcpt_tos']}, expected {args.rcpt}")
    if args.body is not None:
        body = message.get_body(("html", "plain"))
        if body is None or args.body not in body.get_content():
            problems.append(f"the body does not contain {args.body!r}")
    if args.tls and not (meta["tls_version"] or "").startswith("TLS"):
        problems.append(f"not received over TLS (tls_version {meta['tls_version']!r})")
    if args.auth is not None and meta["auth_user"] != args.auth:
        problems.append(f"AUTH user {meta['auth_user']!r}, expected {args.auth!r}")
    if args.mail_from is not None and meta["mail_from"] != args.mail_from:
        problems.append(f"MAIL FROM {meta['mail_from']!r}, expected {args.mail_from!r}")
    if problems:
        print(f"check_mail: FAIL: {path}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"check_mail: ok: {args.server} server got {args.subject!r} ({path.name}, "
          f"{meta['tls_version'] or 'plain'}, auth {meta['auth_user']}, {len(args.attachment)} attachment(s) checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
