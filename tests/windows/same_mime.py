#!/usr/bin/env python3
"""Checks that mails are the same MIME apart from ids, dates and boundaries.

    python tests/windows/same_mime.py A.eml B.eml [C.eml]...

(Every mail is compared with the first: the same mail sent through Simple
MAPI, rendered through the C ABI, saved and displayed through COM.)

Both are parsed with Python's email package; for every part, in order, the
headers (names and decoded values) and the decoded content must be equal,
leaving out Message-ID and Date, the multipart boundary and the transfer
encoding (a server that offers SMTPUTF8 or 8BITMIME may get raw UTF-8 where
a rendering encodes). Exits 1 naming the first difference.
"""

from __future__ import annotations

import email.parser
import email.policy
import sys
from pathlib import Path

SKIPPED = {"message-id", "date", "content-transfer-encoding"}


def outline(path: Path) -> list:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(path.read_bytes())
    parts = []
    for part in message.walk():
        headers = []
        for name, value in part.items():
            if name.lower() in SKIPPED:
                continue
            if name.lower() == "content-type":
                params = {k: v for k, v in part["content-type"].params.items() if k != "boundary"}
                value = f"{part.get_content_type()} {sorted(params.items())}"
            headers.append((name.lower(), str(value)))
        content = None if part.is_multipart() else part.get_payload(decode=True)
        parts.append((headers, content))
    return parts


def main() -> int:
    if len(sys.argv) < 3:
        print("same_mime: FAIL: give two mails or more", file=sys.stderr)
        return 2
    first, *others = [Path(arg) for arg in sys.argv[1:]]
    return max(compare(first, other) for other in others)


def compare(a: Path, b: Path) -> int:
    left, right = outline(a), outline(b)
    if len(left) != len(right):
        print(f"same_mime: FAIL: {a} has {len(left)} parts, {b} {len(right)}", file=sys.stderr)
        return 1
    for n, ((headers_a, content_a), (headers_b, content_b)) in enumerate(zip(left, right)):
        if headers_a != headers_b:
            print(f"same_mime: FAIL: part {n} headers differ:\n  {headers_a}\n  {headers_b}", file=sys.stderr)
            return 1
        if content_a != content_b:
            print(f"same_mime: FAIL: part {n} content differs", file=sys.stderr)
            return 1
    print(f"same_mime: ok: {a.name} and {b.name} are the same mail ({len(left)} parts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
