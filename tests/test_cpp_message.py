"""The C++ message builder (bindings/cpp/smtpbridge_message.hpp): built with
-Wall -Wextra -Werror, its JSON parses to exactly the values given (quotes,
backslashes of a Windows path, line breaks, a control character, UTF-8),
and the message it describes arrives as built."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import LIBRARY, ROOT
from servers import RecordingServer

TEXT = 'Line one\r\nLine two\n\tTabbed "quoted" back\\slash C:\\docs\\inv.pdf \x01 end'


def test_the_builder_escapes_and_the_mail_arrives(tmp_path: Path) -> None:
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.fail("no C++ compiler: apt-get install g++ (or run .ci/run)", pytrace=False)
    exe = tmp_path / "test_message"
    built = subprocess.run(
        [cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{ROOT / 'include'}",
         f"-I{ROOT / 'bindings' / 'cpp'}", str(ROOT / "bindings" / "cpp" / "test_message.cpp"),
         f"-L{LIBRARY.parent}", "-l:" + LIBRARY.name, f"-Wl,-rpath,{LIBRARY.parent}", "-o", str(exe)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr
    attachment = tmp_path / "inv.pdf"
    attachment.write_bytes(b"%PDF-1.4 cpp")
    with RecordingServer() as server:
        done = subprocess.run([str(exe), str(server.port), str(attachment)], capture_output=True, text=True,
                              timeout=120)
        lines = done.stdout.splitlines()
        message = json.loads(lines[0])
        assert message == {
            "from": {"email": "anna@firm.example", "name": 'Anna "The" Smith'},
            "to": [{"email": "client@example.com", "name": "Client, Main"}],
            "cc": [{"email": "copy@example.com"}],
            "bcc": [],
            "subject": "C++ builder Ä €",
            "html": '<p>Dear client,</p><img src="cid:logo">',
            "text": TEXT,
            "attachments": [
                {"path": str(attachment), "name": "Invoice.pdf", "content_type": "application/pdf"},
                {"content_base64": base64.b64encode(b"a note\n").decode(), "name": "note.txt"},
            ],
            "inline": [{"path": str(attachment), "cid": "logo", "content_type": "image/png"}],
            "headers": {"X-Practice-Ref": "CL-1001"},
            "reference": "CL-1001/DOC-7",
            "idempotency_key": "cpp-1",
            "archive": False,
        }
        # A control character is allowed in a body (not in a header): it arrives.
        assert done.returncode == 0, done.stderr
        assert json.loads(lines[1])["state"] == "sent"
        (received,) = server.wait_for(1)
    parsed = received.parsed
    assert parsed["Subject"] == "C++ builder Ä €"
    assert parsed["From"].addresses[0].display_name == 'Anna "The" Smith'
    assert parsed["X-Practice-Ref"] == "CL-1001"
    body = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.rstrip("\n") == TEXT.replace("\r\n", "\n")
    names = {p.get_filename(): p.get_payload(decode=True) for p in parsed.iter_attachments()}
    assert names["Invoice.pdf"] == b"%PDF-1.4 cpp"
    assert names["note.txt"].replace(b"\r\n", b"\n") == b"a note\n"  # text: CRLF on the wire
