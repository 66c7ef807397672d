"""The C# bindings (bindings/csharp: SmtpBridge.cs and the typed layer
SmtpBridge.Typed.cs), their tests and the C# example, compiled with Mono's
mcs and run on Mono and on CoreCLR (tests/dotnet.py) against a loopback
server; what the server received is parsed with the email package.

Needs mcs, mono and Mono's System.Runtime.Serialization (Debian:
mono-mcs mono-runtime libmono-system-runtime-serialization4.0-cil) and the
PyPI package dotnetcore2 (tests/requirements.txt).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import LIBRARY, ROOT, ClosedPort
from dotnet import RUNTIMES, mcs, require, run
from servers import ScriptedServer
from servers.scripted import Script

CSHARP = ROOT / "bindings" / "csharp"
BINDINGS = [CSHARP / "SmtpBridge.cs", CSHARP / "SmtpBridge.Native.cs", CSHARP / "SmtpBridge.Typed.cs"]
WINDOWS_NAME = "C:\\docs\\inv.pdf"  # a file name on Linux: backslashes and a colon in the JSON


@pytest.fixture(params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    require(request.param)
    return str(request.param)


def plain(message) -> str:
    return str(message.parsed.get_body(("plain",)).get_content())


def test_binding_test_program(runtime: str, tmp_path: Path) -> None:
    """bindings/csharp/tests/SmtpBridgeTests.cs: every wrapper of SmtpBridge.cs."""
    exe = tmp_path / "SmtpBridgeTests.exe"
    mcs("-r:System.Runtime.Serialization", f"-out:{exe}", *map(str, BINDINGS),
        str(CSHARP / "tests" / "SmtpBridgeTests.cs"))
    with ScriptedServer() as server:
        done = run(runtime, exe, str(server.port), str(ClosedPort().port), library_dir=LIBRARY.parent)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SmtpBridgeTests: all checks passed" in done.stdout
        (received,) = server.wait_for(1)
    parsed = received.parsed
    assert parsed["Subject"] == "C# binding test"
    # UTF-8 marshalled by hand both ways: the HTML and a non-ASCII file name.
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Grüße from <b>C#</b></p>"
    (part,) = list(parsed.iter_attachments())
    assert part.get_filename() == "Rechnung Ä-1.txt"
    assert part.get_content().replace("\r\n", "\n") == "A note from the C# binding test.\n"


def test_typed_layer(runtime: str, tmp_path: Path) -> None:
    exe = tmp_path / "TypedTests.exe"
    mcs("-r:System.Runtime.Serialization", f"-out:{exe}", *map(str, BINDINGS),
        str(CSHARP / "tests" / "TypedTests.cs"))
    (tmp_path / WINDOWS_NAME).write_bytes(b"%PDF-1.4 typed")
    script = Script(rcpt_replies={"gone@example.com": "550 5.1.1 no such user"})
    with ScriptedServer(script) as server:
        done = run(runtime, exe, str(server.port), str(ClosedPort().port), str(tmp_path),
                   library_dir=LIBRARY.parent)
        assert done.returncode == 0, done.stdout + done.stderr
        received = server.wait_for(7)
    by_subject: Dict[str, List] = {}
    for m in received:
        by_subject.setdefault(str(m.parsed["Subject"]), []).append(m)
    assert sorted(by_subject) == ["Async", "Invoice INV-1", "Invoice INV-2", "Once", "Partial", "Queued", "Typed HTML"]
    assert all(len(v) == 1 for v in by_subject.values()), {k: len(v) for k, v in by_subject.items()}

    (typed,) = by_subject["Typed HTML"]
    parsed = typed.parsed
    assert sorted(typed.rcpt_tos) == ["client@example.com", "copy@example.com", "hidden@example.com"]
    assert parsed["From"].addresses[0].display_name == 'Anna "The" Smith'
    assert parsed["To"].addresses[0].display_name == "Client, Main"
    assert parsed["Bcc"] is None
    assert parsed["X-Practice-Ref"] == "CL-1001"
    # The multi-line text with tabs, quotes, backslashes and non-ASCII, exactly
    # (line ends as CRLF on the wire).
    expected = "Line one\nLine two\n\tTabbed \"quoted\" back\\slash C:\\docs\\inv.pdf Ä €"
    assert plain(typed).replace("\r\n", "\n").rstrip("\n") == expected
    attachments = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert attachments["Invoice.pdf"].get_content() == b"%PDF-1.4 typed"
    assert attachments["Invoice.pdf"].get_content_type() == "application/pdf"
    assert attachments["note.txt"].get_content().replace("\r\n", "\n") == "a note\n"
    related = [p for p in parsed.walk() if p.get("Content-ID")]
    assert [p["Content-ID"] for p in related] == ["<logo>"]
    assert related[0].get_content() == b"\x89PNG"

    (merged,) = by_subject["Invoice INV-2"]
    assert merged.rcpt_tos == ["m2@example.com"]
    assert plain(merged).replace("\r\n", "\n").startswith("Dear Client 2,\nyour invoice INV-2.")
    (partial,) = by_subject["Partial"]
    assert partial.rcpt_tos == ["ok@example.com"]


def test_csharp_example_escapes_a_windows_path_and_a_multi_line_body(runtime: str, tmp_path: Path) -> None:
    """The example as shipped: SmtpBridge.Net.dll, its dllmap config (Mono)
    and libsmtpbridge.so beside the program, no LD_LIBRARY_PATH."""
    dll = tmp_path / "SmtpBridge.Net.dll"
    exe = tmp_path / "SendMail.exe"
    mcs("-r:System.Runtime.Serialization", "-target:library", f"-out:{dll}", *map(str, BINDINGS))
    mcs(f"-r:{dll}", f"-out:{exe}", str(ROOT / "examples" / "csharp" / "SendMail.cs"))
    shutil.copy(CSHARP / "SmtpBridge.Net.dll.config", tmp_path)
    shutil.copy(LIBRARY, tmp_path / "libsmtpbridge.so")
    attachment = tmp_path / WINDOWS_NAME
    attachment.write_bytes(b"%PDF-1.4 example")
    with ScriptedServer() as server:
        done = run(runtime, exe, str(server.port), str(attachment))
        assert done.returncode == 0, done.stdout + done.stderr
        assert " Sent to client@example.com (250 " in done.stdout
        (received,) = server.wait_for(1)
        parsed = received.parsed
        assert parsed["Subject"] == "Your invoice - C# example"
        assert plain(received).replace("\r\n", "\n") == "Dear client,\nyour invoice is attached.\n"
        (part,) = list(parsed.iter_attachments())
        assert part.get_filename() == WINDOWS_NAME and part.get_content() == b"%PDF-1.4 example"
        # A path that does not exist: the library names it (the JSON was
        # valid), where hand-made JSON failed with "invalid escape".
        missing = run(runtime, exe, str(server.port), str(tmp_path / "C:\\docs\\missing.pdf"))
        assert missing.returncode == 1
        assert missing.stderr.startswith("SMTPB_ERR_MESSAGE: ")
        assert "C:\\docs\\missing.pdf" in missing.stderr
        assert len(server.messages) == 1
