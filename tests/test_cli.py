"""The ``smtpbridge`` command line, end to end: the binary run as an
administrator would, against recording servers on 127.0.0.1, with the
outcome checked on what the server received and on the exit codes (the
library's result codes). Passwords go through a real pseudo-terminal prompt
or stdin, never an argument.

The binary is ``target/release/smtpbridge`` (``cargo build --release
--workspace``), or the file named by ``SMTPBRIDGE_TEST_CLI``.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import os
import pty
import re
import select
import shutil
import subprocess
import termios
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pytest

import smtpbridge
from conftest import (
    AUTH,
    BUSY,
    CONFIG,
    CONNECT,
    MESSAGE,
    NOT_FOUND,
    ROOT,
    SENDER,
    STATE,
    ULID,
    ClosedPort,
)
from servers import RecordingServer

CLI = Path(os.environ.get("SMTPBRIDGE_TEST_CLI") or ROOT / "target" / "release" / "smtpbridge")
USAGE = 64
TIMEOUT_S = 30.0


@pytest.fixture(scope="module", autouse=True)
def _binary() -> None:
    if not CLI.is_file():
        pytest.fail(f"{CLI} is missing: build it first (cargo build --release --workspace)", pytrace=False)


def cli(data_dir: Path, *args: str, stdin: Optional[str] = None, json_out: bool = False) -> subprocess.CompletedProcess:
    """Run ``smtpbridge --data-dir DATA_DIR [--json] ARGS``; stdin is a pipe (never a terminal)."""
    command = [str(CLI), "--data-dir", str(data_dir), *(["--json"] if json_out else []), *args]
    return subprocess.run(
        command, input=stdin if stdin is not None else "", capture_output=True, text=True, timeout=TIMEOUT_S
    )


def ok(data_dir: Path, *args: str, stdin: Optional[str] = None) -> Any:
    """Run with --json; it must exit 0; return its stdout as JSON."""
    done = cli(data_dir, *args, stdin=stdin, json_out=True)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def fails(data_dir: Path, code: int, *args: str, stdin: Optional[str] = None) -> Dict[str, Any]:
    """Run with --json; it must exit ``code``; return its error JSON (stderr)."""
    done = cli(data_dir, *args, stdin=stdin, json_out=True)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    error: Dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    assert error["error_code"] == code
    return error


def point_at(data_dir: Path, port: int, *extra: str) -> None:
    """Configure the Default profile for a plain loopback server through `config import`."""
    keys_set = {
        "SMTPServer": "127.0.0.1",
        "SMTPServerPort": str(port),
        "SMTPServerEncryption": "None",
        "SMTPAuthentication": "None",
        "SMTPConnectionTimeout": "5000",
        "SMTPSenderEmail": SENDER,
    }
    keys_set.update(line.split("=", 1) for line in extra)  # type: ignore[arg-type]
    lines = [f"{key}={value}" for key, value in keys_set.items()]
    keys = data_dir.parent / "keys.txt"
    keys.write_text("\r\n".join(["# the host's table", *lines]) + "\r\n")
    done = cli(data_dir, "config", "import", str(keys))
    assert done.returncode == 0, done.stderr


def wait_for_no_echo(fd: int, timeout: float = 5.0) -> None:
    """Wait (bounded) until the program has turned the terminal's echo off, as a
    person typing after the prompt would; if it never does, the echo test fails."""
    deadline = time.monotonic() + timeout
    while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < deadline:
        time.sleep(0.02)


def in_pty(argv: Sequence[str], replies: Dict[str, str], timeout: float = TIMEOUT_S) -> "tuple[int, str]":
    """Run ``argv`` on a new pseudo-terminal; answer each prompt in ``replies``
    (text seen -> line to type) once; return the exit code and all it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its controlling terminal
        os.execv(argv[0], list(argv))
    seen, pending = b"", dict(replies)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            for prompt in list(pending):
                if prompt.encode() in seen:
                    wait_for_no_echo(fd)
                    os.write(fd, pending.pop(prompt).encode() + b"\r")
        else:
            os.kill(pid, 9)
            pytest.fail(f"{argv} did not finish within {timeout} s: {seen!r}")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode("utf-8", "replace")


def text_of(message: Any) -> str:
    return str(message.parsed.get_body(("plain",)).get_content())


# --- the command line itself ---------------------------------------------------------


def test_one_version_everywhere(tmp_path: Path) -> None:
    """Cargo (library and command line), the header, the native library, the
    Python package, the C# assembly and ``smtpbridge --version`` name one
    version; --version also prints the library's C ABI version."""
    def grab(path: Path, pattern: str) -> str:
        found = re.search(pattern, (ROOT / path).read_text(encoding="utf-8"), re.M)
        assert found, f"{pattern} not in {path}"
        return found.group(1)

    version = grab(Path("Cargo.toml"), r'^version = "(.+)"')
    assert version == "1.2.0"
    assert grab(Path("cli/Cargo.toml"), r'^version = "(.+)"') == version
    assert grab(Path("include/smtpbridge.h"), r'^#define SMTPB_VERSION "(.+)"') == version
    major, minor, patch = version.split(".")
    for part, value in (("MAJOR", major), ("MINOR", minor), ("PATCH", patch)):
        assert grab(Path("include/smtpbridge.h"), rf"^#define SMTPB_VERSION_{part} (\d+)") == value
    assert grab(Path("bindings/csharp/SmtpBridge.csproj"), r"<Version>(.+)</Version>") == version
    assert smtpbridge.version() == version
    assert smtpbridge.__version__ == version
    abi = f"{smtpbridge.abi_version()}.{smtpbridge.abi_minor()}"
    done = subprocess.run([str(CLI), "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0
    assert done.stdout == f"smtpbridge {version} (C ABI {abi})\n"
    # The C# assembly, built with mcs as a host would, and the library it loads.
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        pytest.fail("missing mcs/mono: apt-get install mono-mcs mono-runtime (or run .ci/run)", pytrace=False)
    program = tmp_path / "Versions.cs"
    program.write_text(
        "class Versions { static void Main() {"
        " System.Console.WriteLine(typeof(SmtpBridge.Client).Assembly.GetName().Version);"
        " System.Console.WriteLine(System.Diagnostics.FileVersionInfo.GetVersionInfo("
        "typeof(SmtpBridge.Client).Assembly.Location).ProductVersion);"
        " System.Console.WriteLine(SmtpBridge.Client.Version); } }\n"
    )
    csharp = ROOT / "bindings" / "csharp"
    exe = tmp_path / "Versions.exe"
    built = subprocess.run(
        ["mcs", "-r:System.Runtime.Serialization", f"-out:{exe}", str(csharp / "SmtpBridge.cs"),
         str(csharp / "SmtpBridge.Native.cs"), str(csharp / "SmtpBridge.Typed.cs"), str(program)],
        capture_output=True, text=True, timeout=120,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    env = dict(os.environ, LD_LIBRARY_PATH=str(Path(os.environ["SMTPBRIDGE_LIBRARY"]).parent))
    ran = subprocess.run(["mono", str(exe)], capture_output=True, text=True, timeout=120, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.split() == [f"{version}.0", version, version]


def test_help_documents_the_exit_codes_and_a_usage_error_is_not_a_result_code(data_dir: Path) -> None:
    done = subprocess.run([str(CLI), "--help"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0
    for line in ("2 CONFIG", "4 CONNECT", "6 AUTH", "16 BUSY", "64 usage error"):
        assert line in done.stdout
    for command in ("config", "test", "send", "merge", "outbox", "status", "credentials"):
        assert f"  {command} " in done.stdout
    assert cli(data_dir, "no-such-command").returncode == USAGE
    assert cli(data_dir, "send", "--to", "a@example.com").returncode == USAGE  # no body


def test_config_import_set_get_export(data_dir: Path) -> None:
    point_at(data_dir, 2525)
    assert ok(data_dir, "config", "get", "SMTPServerPort") == {"key": "SMTPServerPort", "value": "2525"}
    assert ok(data_dir, "config", "set", "Backup.SMTPServer", "backup.example")["value"] == "backup.example"
    exported = ok(data_dir, "config", "export")
    names = [p["name"] for p in exported["profiles"]]
    assert names == ["Default", "Backup"]
    assert cli(data_dir, "config", "get", "SMTPServer").stdout.strip() == "127.0.0.1"
    # --default restores the default.
    ok(data_dir, "config", "set", "SMTPServerPort", "--default")
    assert ok(data_dir, "config", "get", "SMTPServerPort")["value"] == "25"
    # A bad key or value: CONFIG, naming it; nothing applied from a bad import.
    assert "SMTPServr" in fails(data_dir, CONFIG, "config", "set", "SMTPServr", "x")["error"]
    bad = data_dir.parent / "bad.txt"
    bad.write_text("SMTPServerPort=2626\nSMTPServerEncryption=Sometimes\n")
    assert "line 2" in fails(data_dir, CONFIG, "config", "import", str(bad))["error"]
    assert ok(data_dir, "config", "get", "SMTPServerPort")["value"] == "25"
    # An export imports back (JSON through stdin).
    other = data_dir.parent / "other"
    done = cli(other, "config", "import", "-", stdin=json.dumps(exported))
    assert done.returncode == 0, done.stderr
    assert ok(other, "config", "export") == exported


def test_send_text_html_and_attachment(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with RecordingServer() as server:
        point_at(data_dir, server.port)
        (tmp_path / "body.txt").write_text("Dear client,\nplease find the invoice attached.\n")
        (tmp_path / "body.html").write_text("<p>Dear client,</p><p>the invoice is attached.</p>")
        attachment = tmp_path / "Invoice 117 Ä.pdf"
        attachment.write_bytes(b"%PDF-1.4 invoice 117")
        monkeypatch.chdir(tmp_path)  # a relative --attach path is made absolute
        status = ok(
            data_dir, "send", "--to", "client@example.com", "--cc", "copy@example.com",
            "--subject", "Invoice 117", "--text", "body.txt", "--html", str(tmp_path / "body.html"),
            "--attach", attachment.name, "--reference", "CL-1/DOC-117",
        )
        assert status["state"] == "sent" and ULID.match(status["id"])
        assert status["reference"] == "CL-1/DOC-117"
        (received,) = server.wait_for(1)
        assert received.mail_from == SENDER
        assert sorted(received.rcpt_tos) == ["client@example.com", "copy@example.com"]
        parsed = received.parsed
        assert parsed["Subject"] == "Invoice 117"
        assert text_of(received).replace("\r\n", "\n") == "Dear client,\nplease find the invoice attached.\n"
        assert "the invoice is attached" in parsed.get_body(("html",)).get_content()
        (part,) = list(parsed.iter_attachments())
        assert part.get_filename() == "Invoice 117 Ä.pdf"
        assert part.get_content() == b"%PDF-1.4 invoice 117"
        # status ID shows the same status.
        assert ok(data_dir, "status", status["id"])["state"] == "sent"
        human = cli(data_dir, "status", status["id"])
        assert human.returncode == 0 and f"{status['id']} sent" in human.stdout


def test_a_failed_send_exits_with_its_code_names_the_error_and_can_be_retried(data_dir: Path, tmp_path: Path) -> None:
    closed = ClosedPort()
    point_at(data_dir, closed.port)
    body = tmp_path / "body.txt"
    body.write_text("retry me")
    error = fails(data_dir, CONNECT, "send", "--to", "client@example.com", "--subject", "Retry", "--text", str(body))
    assert error["error_name"] == "SMTPB_ERR_CONNECT"
    assert "127.0.0.1" in error["error"] and str(closed.port) in error["error"]
    status = error["status"]
    assert status["state"] == "failed" and status["error_code"] == CONNECT
    human = cli(data_dir, "send", "--to", "client@example.com", "--subject", "Retry", "--text", str(body))
    assert human.returncode == CONNECT
    assert human.stderr.startswith("error: SMTPB_ERR_CONNECT: ")
    assert "outbox retry" in human.stderr
    with RecordingServer() as server:
        ok(data_dir, "config", "set", "SMTPServerPort", str(server.port))
        retried = ok(data_dir, "outbox", "retry", status["id"], "--wait", "10")
        assert retried["state"] == "sent" and retried["attempts"] == 2
        (received,) = server.wait_for(1)
        assert received.parsed["Subject"] == "Retry"
        assert status["id"] in received.parsed["Message-ID"]
    # Retrying a sent message: STATE; an unknown id: NOT_FOUND.
    fails(data_dir, STATE, "outbox", "retry", status["id"])
    fails(data_dir, NOT_FOUND, "status", "01JD0000000000000000000000")


def test_outbox_pause_list_stats_cancel_resume_flush(data_dir: Path, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("queued")
    with RecordingServer() as server:
        point_at(data_dir, server.port)
        assert ok(data_dir, "outbox", "pause") == {"ok": True}
        queued: List[str] = []
        for subject in ("Keep", "Drop"):
            status = ok(data_dir, "send", "--queue", "--timeout", "0", "--to", "client@example.com",
                        "--subject", subject, "--text", str(body))
            assert status["state"] == "queued"
            queued.append(status["id"])
        listed = ok(data_dir, "outbox", "list", "--state", "queued")
        assert sorted(s["id"] for s in listed) == sorted(queued)
        stats = ok(data_dir, "outbox", "stats")
        assert stats["queued"] == 2 and "*" in stats["paused"]
        assert ok(data_dir, "outbox", "cancel", queued[1]) == {"ok": True}
        fails(data_dir, STATE, "outbox", "cancel", queued[1])
        resumed = ok(data_dir, "outbox", "resume", "--timeout", "20")  # resumes and delivers
        assert resumed["sent"] == 1 and resumed["cancelled"] == 1 and resumed["queued"] == 0
        assert resumed["paused"] == []
        (received,) = server.wait_for(1)
        assert received.parsed["Subject"] == "Keep"
        # One profile paused, then resumed (its own hold only), then flushed.
        ok(data_dir, "outbox", "pause", "Default")
        later = ok(data_dir, "send", "--queue", "--timeout", "0", "--to", "client@example.com",
                   "--subject", "Later", "--text", str(body))
        assert ok(data_dir, "outbox", "stats")["paused"] == ["*", "Default"]  # "*": this command's hold
        ok(data_dir, "outbox", "resume", "Default")
        assert ok(data_dir, "status", later["id"])["state"] == "queued"
        flushed = ok(data_dir, "outbox", "flush", "--timeout", "20")
        assert flushed["sent"] == 2 and flushed["queued"] == 0
        # Every command has exited: no client of the data_dir is left to send more.
        assert [m.parsed["Subject"] for m in server.wait_for(2)] == ["Keep", "Later"]
        assert len(server.messages) == 2
        human = cli(data_dir, "outbox", "list")
        assert human.returncode == 0
        assert f"{queued[0]}  sent" in human.stdout and f"{queued[1]}  cancelled" in human.stdout


def test_a_data_directory_held_by_a_host_is_busy(data_dir: Path) -> None:
    with smtpbridge.Client(data_dir):
        error = fails(data_dir, BUSY, "outbox", "stats")
        assert f"pid {os.getpid()}" in error["error"]


# --- credentials: prompt and stdin, never an argument ------------------------------------


def test_credentials_from_a_terminal_prompt_log_in_and_never_show(data_dir: Path, tmp_path: Path) -> None:
    password = "s3cret-Pässword"
    with RecordingServer(users={"anna": password}, auth_require_tls=False, auth_required=True) as server:
        point_at(data_dir, server.port, "SMTPAuthentication=Required", "SMTPAllowPlaintextAuth=true")
        code, seen = in_pty(
            [str(CLI), "--data-dir", str(data_dir), "credentials", "set", "emp-42", "--username", "anna"],
            {"Password for anna: ": password},
        )
        assert code == 0, seen
        assert password not in seen  # not echoed
        masked = ok(data_dir, "credentials", "show", "emp-42")
        assert masked["username"] == "anna" and masked["password"] == "********" and masked["has_secret"]
        body = tmp_path / "body.txt"
        body.write_text("logged in")
        status = ok(data_dir, "send", "--user", "emp-42", "--to", "client@example.com", "--subject", "Auth",
                    "--text", str(body))
        assert status["state"] == "sent"
        (received,) = server.wait_for(1)
        assert received.auth_user == "anna"
        for path in data_dir.rglob("*"):
            if path.is_file():
                assert password.encode() not in path.read_bytes(), path
        ok(data_dir, "credentials", "remove", "emp-42")
        fails(data_dir, NOT_FOUND, "credentials", "show", "emp-42")


def test_shared_password_from_stdin_and_test_command(data_dir: Path) -> None:
    with RecordingServer(users={"office": "right"}, auth_require_tls=False) as server:
        point_at(data_dir, server.port, "SMTPAuthentication=Required", "SMTPAllowPlaintextAuth=true",
                 "SMTPCredentials=Shared")
        ok(data_dir, "config", "set", "SMTPUsername", "office")
        # A secret is never an argument.
        assert "never given on the command line" in fails(
            data_dir, 1, "config", "set", "SMTPPassword", "wrong")["error"]
        assert ok(data_dir, "config", "set", "SMTPPassword", stdin="wrong\n")["value"] == "********"
        error = fails(data_dir, AUTH, "test")
        assert error["report"]["stage"] == "auth" and error["report"]["ok"] is False
        assert "wrong" not in json.dumps(error)
        ok(data_dir, "credentials", "set", "--username", "office", stdin="right\n")
        report = ok(data_dir, "test")
        assert report["ok"] is True and report["stage"] == "done"
        assert "PLAIN" in report["auth_mechanisms"]
        human = cli(data_dir, "test")
        assert human.returncode == 0 and human.stdout.startswith("ok done")
    assert server.messages == []


# --- merge -------------------------------------------------------------------------------


def write_merge_files(tmp_path: Path, rows: List[str]) -> "tuple[Path, Path]":
    template = tmp_path / "template.json"
    template.write_text(json.dumps({
        "from": SENDER,
        "subject": "Invoice {{Ref}} for {{First}}",
        "text": "Dear {{First}},\nyour invoice {{Ref}} of {{Amount}} is due.",
    }))
    recipients = tmp_path / "recipients.csv"
    recipients.write_text("email,name,First,Ref,Amount,reference\n" + "\n".join(rows) + "\n")
    return template, recipients


def test_merge_from_csv_with_a_progress_bar(data_dir: Path, tmp_path: Path) -> None:
    rows = [
        'r1@example.com,Ann One,Ann,INV-1,"1,250.00 EUR",CL-1',
        "r2@example.com,Bob Two,Bob,INV-2,80.00 EUR,CL-2",
        'r3@example.com,"Cy, Three",Cy,INV-3,5.00 EUR,CL-3',
    ]
    template, recipients = write_merge_files(tmp_path, rows)
    with RecordingServer() as server:
        point_at(data_dir, server.port)
        code, seen = in_pty(
            [str(CLI), "--data-dir", str(data_dir), "merge", str(template), str(recipients), "--timeout", "20"], {}
        )
        assert code == 0, seen
        assert "3/3" in seen and "3 sent" in seen  # the bar, drawn on the terminal
        received = {m.rcpt_tos[0]: m for m in server.wait_for(3)}
        assert sorted(received) == ["r1@example.com", "r2@example.com", "r3@example.com"]
        assert received["r1@example.com"].parsed["Subject"] == "Invoice INV-1 for Ann"
        assert "of 1,250.00 EUR is due" in text_of(received["r1@example.com"])
        assert received["r3@example.com"].parsed["To"].addresses[0].display_name == "Cy, Three"
        # --json: the batch and its outcome.
        merged = ok(data_dir, "merge", str(template), str(recipients), "--timeout", "20")
        assert merged["count"] == 3 and len(merged["ids"]) == 3
        assert merged["outcome"]["sent"] == 3 and merged["outcome"]["total"] == 3
        assert [ok(data_dir, "status", i)["reference"] for i in merged["ids"]] == ["CL-1", "CL-2", "CL-3"]
        server.wait_for(6)


def test_merge_refuses_a_missing_field_and_a_csv_without_email(data_dir: Path, tmp_path: Path) -> None:
    with RecordingServer() as server:
        point_at(data_dir, server.port)
        template, recipients = write_merge_files(tmp_path, ["r1@example.com,Ann,Ann,INV-1,1 EUR,CL-1"])
        template.write_text(json.dumps({"from": SENDER, "subject": "{{Missing}}", "text": "x"}))
        assert "Missing" in fails(data_dir, MESSAGE, "merge", str(template), str(recipients))["error"]
        no_email = tmp_path / "no_email.csv"
        no_email.write_text("mail,First\nr1@example.com,Ann\n")
        error = fails(data_dir, 1, "merge", str(template), str(no_email))
        assert "email" in error["error"] and "no_email.csv" in error["error"]
        assert ok(data_dir, "outbox", "stats")["queued"] == 0
    assert server.messages == []


def test_transcript_query_purge_and_probe(data_dir: Path, tmp_path: Path) -> None:
    body = tmp_path / "body.txt"
    body.write_text("for the record")
    with RecordingServer() as server:
        point_at(data_dir, server.port, "SMTPTranscript=All")
        ids = [ok(data_dir, "send", "--to", f"c{i}@example.com", "--subject", f"S{i}", "--text", str(body))["id"]
               for i in range(3)]
        server.wait_for(3)
    # The transcript an administrator reads: the dialogue, with the body as one note.
    attempts = ok(data_dir, "transcript", ids[0])
    texts = [line["text"] for line in attempts[0]["lines"]]
    assert any(t.startswith("MAIL FROM:") for t in texts) and any("DATA:" in t for t in texts)
    assert not any("for the record" in t for t in texts)
    human = cli(data_dir, "transcript", ids[0])
    assert human.returncode == 0 and "RCPT TO:<c0@example.com>" in human.stdout
    # Paging: newest first, two pages of 2 and 1, or all at once.
    first = ok(data_dir, "outbox", "query", "--limit", "2")
    assert [s["id"] for s in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    second = ok(data_dir, "outbox", "query", "--limit", "2", "--cursor", first["next_cursor"])
    assert [s["id"] for s in second["items"]] == [ids[0]] and second["next_cursor"] is None
    every = ok(data_dir, "outbox", "query", "--limit", "1", "--all", "--state", "sent")
    assert [s["id"] for s in every["items"]] == ids[::-1]
    fails(data_dir, 1, "outbox", "query", "--since", "yesterday")
    # Purge: everything sent before tomorrow goes, and its transcript with it.
    assert ok(data_dir, "outbox", "purge", "2999-01-01T00:00:00Z")["purged"] == 3
    fails(data_dir, NOT_FOUND, "transcript", ids[0])
    # Probe: the ports come from SMTPProbePorts; nothing listens, so nothing works.
    closed = [ClosedPort() for _ in range(3)]
    ok(data_dir, "config", "set", "SMTPProbePorts",
       f"465={closed[0].port},587={closed[1].port},25={closed[2].port}")
    report = fails(data_dir, CONNECT, "probe", "127.0.0.1")
    assert report["error_name"] == "SMTPB_ERR_CONNECT"
    human = cli(data_dir, "probe", "127.0.0.1")
    assert human.returncode == CONNECT and "suggested: nothing works" in human.stdout


def test_login_signs_a_user_in_and_their_mail_goes(data_dir: Path, tmp_path: Path) -> None:
    from servers.oauth_smtp import IntrospectingServer
    from servers.oidc import PUBLIC_CLIENT, OidcProvider

    body = tmp_path / "body.txt"
    body.write_text("signed in from the command line")
    with OidcProvider() as provider, IntrospectingServer(provider.introspection_endpoint, auth_required=True) as server:
        point_at(data_dir, server.port, "SMTPAuthentication=Required", "SMTPAllowPlaintextAuth=true",
                 "SMTPAuthModel=OAuth2", "SMTPOAuth2Provider=OpenID", f"SMTPOAuth2Issuer={provider.issuer}",
                 f"SMTPOAuth2ClientId={PUBLIC_CLIENT}", "SMTPOAuth2Scopes=smtp.send offline_access")
        command = [str(CLI), "--data-dir", str(data_dir), "--json", "login", "emp-42", "--browser", "--timeout", "60"]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as login:
            assert login.stderr is not None
            url = ""
            deadline = time.monotonic() + TIMEOUT_S
            while not url and time.monotonic() < deadline:
                line = login.stderr.readline()
                url = line.strip() if line.strip().startswith("http") else ""
            assert url, "login printed no address to open"
            status, page = provider.browser_sign_in(url, "anna")
            assert status == 200 and "You may close this window" in page
            out, err = login.communicate(timeout=TIMEOUT_S)
            assert login.returncode == 0, err
        masked = json.loads(out)
        assert masked["user_id"] == "emp-42" and masked["refreshable"] is True
        assert masked["username"] == "anna@example.test"
        sent = ok(data_dir, "send", "--user", "emp-42", "--to", "client@example.com", "--subject", "OAuth2",
                  "--text", str(body))
        assert sent["state"] == "sent"
        (received,) = server.wait_for(1)
        assert received.auth_user == "anna@example.test"
        secrets = provider.secrets()
    # No token or code in any file of the data directory.
    assert secrets
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(secret.encode() in content for secret in secrets), path


# --- render (1.2) --------------------------------------------------------------------------------


def test_render_prints_the_mime_and_sends_nothing(data_dir, tmp_path):
    with RecordingServer() as server:
        point_at(data_dir, server.port, "SMTPTestMode=true", "SMTPTestAddresses=qa@test.example",
                 "SMTPTestSubjectPrefix=[TEST]")
        body = tmp_path / "body.txt"
        body.write_text("Guten Tag\n")
        done = cli(data_dir, "render", "--to", "Müller, Hans <h@example.com>; b@example.com",
                   "--subject", "Rechnung", "--text", str(body))
        assert done.returncode == 0, done.stderr
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(done.stdout.encode())
        assert parsed["Subject"] == "[TEST] Rechnung"
        assert [(a.display_name, a.addr_spec) for a in parsed["To"].addresses] == [
            ("Müller, Hans", "h@example.com"), ("", "b@example.com")]
        assert parsed["X-Original-To"] == "h@example.com, b@example.com"
        out = tmp_path / "message.eml"
        assert cli(data_dir, "render", "--to", "a@x.example", "--text", str(body), "--out", str(out)).returncode == 0
        assert b"a@x.example" in out.read_bytes()
        assert server.connections == 0
    assert ok(data_dir, "outbox", "list") == []
    error = fails(data_dir, MESSAGE, "render", "--to", "not an address", "--text", str(body))
    assert "not an address" in error["error"]
