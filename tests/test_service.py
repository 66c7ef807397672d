"""``smtpbridge service``: the background delivery service run as a real
process (``service run``), stopped by SIGTERM/SIGINT as systemd and a
terminal stop it, its log, ``service status``, and the systemd unit that
``service install`` writes (checked by ``systemd-analyze verify``).

Mail is queued by this process before the service starts (a paused
client) and while it runs (a shared, submit-only client, as a host opens
the data directory beside the service); the service delivers it to a
recording server on 127.0.0.1 and the assertions are on what the server
received.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

import smtpbridge
from conftest import CONNECT, INVALID_ARGUMENT, IO, NOT_FOUND, ROOT, SENDER, ClosedPort, configure, message
from servers import RecordingServer

CLI = Path(os.environ.get("SMTPBRIDGE_TEST_CLI") or ROOT / "target" / "release" / "smtpbridge")
TIMEOUT_S = 30.0
#: One line of the service log: an RFC 3339 UTC time, a space, the text.
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z (.+)$")


@pytest.fixture(scope="module", autouse=True)
def _binary() -> None:
    if not CLI.is_file():
        pytest.fail(f"{CLI} is missing: build it first (cargo build --release --workspace)", pytrace=False)


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), "--data-dir", str(data_dir), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT_S)


def cli_json(data_dir: Path, *args: str) -> Any:
    done = cli(data_dir, "--json", *args)
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout)


def queue(data_dir: Path, port: int, subjects: List[str]) -> List[str]:
    """Configure ``data_dir`` for ``port`` and queue one message per subject
    from a paused client (which delivers nothing); return their ids."""
    with smtpbridge.Client(data_dir, paused=True) as client:
        configure(client, _Port(port))
        return [client.enqueue(message(subject=s)) for s in subjects]


class _Port:
    """A server as :func:`conftest.configure` sees it: its port."""

    def __init__(self, port: int) -> None:
        self.port = port


def log_texts(log: Path) -> List[str]:
    """The texts of the log's lines; every line must carry its timestamp."""
    texts = []
    for line in log.read_text(encoding="utf-8").splitlines():
        match = LOG_LINE.match(line)
        assert match, f"a log line without its timestamp: {line!r}"
        texts.append(match.group(1))
    return texts


def wait_for_log(log: Path, text: str, service: subprocess.Popen, timeout: float = TIMEOUT_S) -> List[str]:
    """Wait (bounded) until a line of the log starts with ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        texts = log_texts(log) if log.exists() else []
        if any(t.startswith(text) for t in texts):
            return texts
        if service.poll() is not None:
            raise AssertionError(f"the service exited with {service.returncode} before logging {text!r}: {texts}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line {text!r} within {timeout} s: {texts}")
        time.sleep(0.02)


def start(data_dir: Path, log: Path) -> subprocess.Popen:
    service = subprocess.Popen([str(CLI), "--data-dir", str(data_dir), "service", "run", "--log", str(log)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_log(log, "lease taken", service)
    return service


def stop(service: subprocess.Popen, signum: int) -> None:
    service.send_signal(signum)
    try:
        out, err = service.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        service.kill()
        service.communicate()
        raise AssertionError(f"the service did not stop within {TIMEOUT_S} s of signal {signum}")
    assert service.returncode == 0, (service.returncode, out, err)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_service_run_delivers_what_any_process_queues_and_a_stop_signal_ends_it_cleanly(
        data_dir: Path, tmp_path: Path, signum: int) -> None:
    log = tmp_path / "service.log"
    with RecordingServer() as server:
        ids = queue(data_dir, server.port, ["Before 1", "Before 2"])
        service = start(data_dir, log)
        try:
            server.wait_for(2, TIMEOUT_S)
            # A host beside the running service: it queues, the service sends.
            with smtpbridge.Client(data_dir, shared=True, submit_only=True) as host:
                ids.append(host.enqueue(message(subject="While running")))
                assert host.wait(ids[-1], int(TIMEOUT_S * 1000))["state"] == "sent"
            # The administrator's command line beside it: queues and waits, the service sends.
            body = tmp_path / "body.txt"
            body.write_text("from the command line")
            sent = cli_json(data_dir, "send", "--queue", "--timeout", "20", "--from", SENDER, "--to",
                            "client@example.com", "--subject", "From the CLI", "--text", str(body))
            assert sent["state"] == "sent"
            ids.append(sent["id"])
            received = server.wait_for(4, TIMEOUT_S)
            assert sorted(m.parsed["Subject"] for m in received) == [
                "Before 1", "Before 2", "From the CLI", "While running"]
            assert all(m.parsed["From"] == SENDER for m in received)
            for id in ids:
                wait_for_log(log, f"message {id} sent (attempts 1)", service)
            # status, beside the service, names it as the lease holder.
            running = cli_json(data_dir, "service", "status")
            assert running["holder"]["pid"] == service.pid, running
        finally:
            if service.poll() is None:
                stop(service, signum)
        name = signal.Signals(signum).name
        texts = log_texts(log)
        assert texts[0].startswith(f"start: smtpbridge {smtpbridge.version()} service, pid {service.pid}, "
                                   f"data directory {data_dir}")
        assert texts[-3:] == [f"stop requested ({name}): closing the client",
                              "lease released: deliveries ended, the data directory is closed", "stopped"]
        # Stopped: nobody holds the lease, and the status says so.
        status = cli_json(data_dir, "service", "status")
        assert status["holder"] is None
        assert status["counts"] == {"queued": 0, "sending": 0, "sent": 4, "deferred": 0, "failed": 0,
                                    "cancelled": 0}
        assert status["last_failure"] is None
        assert len(server.messages) == 4


def test_a_second_service_waits_for_the_lease_and_takes_it_when_the_first_stops(
        data_dir: Path, tmp_path: Path) -> None:
    with RecordingServer() as server:
        queue(data_dir, server.port, [])
        first = start(data_dir, tmp_path / "first.log")
        second = subprocess.Popen([str(CLI), "--data-dir", str(data_dir), "service", "run", "--log",
                                   str(tmp_path / "second.log")], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_log(tmp_path / "second.log", f"waiting for the lease: pid {first.pid}, host ", second)
            stop(first, signal.SIGTERM)
            # A holder that closed hands over within the lease's 5 s.
            wait_for_log(tmp_path / "second.log", "lease taken", second, timeout=10)
            assert cli_json(data_dir, "service", "status")["holder"]["pid"] == second.pid
            with smtpbridge.Client(data_dir, shared=True, submit_only=True) as host:
                id = host.enqueue(message(subject="After the handover"))
                assert host.wait(id, int(TIMEOUT_S * 1000))["state"] == "sent"
            assert [m.parsed["Subject"] for m in server.wait_for(1, TIMEOUT_S)] == ["After the handover"]
        finally:
            for service in (first, second):
                if service.poll() is None:
                    stop(service, signal.SIGTERM)


def test_status_names_the_last_failure_and_the_log_its_error(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    (id,) = queue(data_dir, ClosedPort().port, ["Nowhere"])
    service = start(data_dir, log)
    try:
        texts = wait_for_log(log, f"message {id} deferred", service)
    finally:
        stop(service, signal.SIGTERM)
    (deferred,) = [t for t in texts if t.startswith(f"message {id} deferred")]
    assert deferred.startswith(f"message {id} deferred (attempts 1): SMTPB_ERR_CONNECT: "), deferred
    status = cli_json(data_dir, "service", "status")
    assert status["holder"] is None
    assert status["counts"]["deferred"] == 1
    failure = status["last_failure"]
    assert failure["id"] == id and failure["state"] == "deferred" and failure["error_code"] == CONNECT
    human = cli(data_dir, "service", "status")
    assert human.returncode == 0, human.stderr
    assert human.stdout.splitlines()[0] == "delivering: nobody (no client holds the delivery lease)"
    assert f"last failure: {id} deferred (queued " in human.stdout
    assert "outbox: queued 0, sending 0, sent 0, deferred 1, failed 0, cancelled 0" in human.stdout


def test_a_log_that_cannot_be_opened_is_an_io_error_naming_it(data_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "no such folder" / "service.log"
    done = cli(data_dir, "--json", "service", "run", "--log", str(log))
    assert done.returncode == IO, (done.stdout, done.stderr)
    assert str(log) in json.loads(done.stderr.strip().splitlines()[-1])["error"]


def unit_words(value: str) -> List[str]:
    """A unit file's command line as systemd splits it (quotes, `%%`, `$$`)."""
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]


def read_unit(path: Path) -> Dict[str, Dict[str, str]]:
    sections: Dict[str, Dict[str, str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            sections[section] = {}
        elif line and not line.startswith("#"):
            key, value = line.split("=", 1)
            assert key not in sections[section], f"{key} twice in [{section}]"
            sections[section][key] = value
    return sections


def test_install_writes_a_hardened_unit_that_systemd_accepts_and_uninstall_removes_it(tmp_path: Path) -> None:
    # A data directory whose name needs systemd's quoting and escaping.
    data_dir = tmp_path / "Kanzlei 100% $HOME"
    units = tmp_path / "units"
    done = cli(data_dir, "--json", "service", "install", "--unit-dir", str(units))
    assert done.returncode == 0, done.stderr
    unit = units / "smtpbridge.service"
    assert json.loads(done.stdout) == {"unit": str(unit), "registered": False,
                                       "commands": ["systemctl daemon-reload",
                                                    "systemctl enable --now smtpbridge.service"]}
    sections = read_unit(unit)
    service = sections["Service"]
    assert unit_words(service["ExecStart"]) == [str(CLI.resolve()), "service", "run", "--data-dir", str(data_dir)]
    assert service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert unit_words(service["ReadWritePaths"]) == [str(data_dir)]
    assert data_dir.is_dir()  # ReadWritePaths must exist when the unit starts
    assert sections["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze:
        verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
        assert verified.returncode == 0, verified.stderr
        assert "smtpbridge.service" not in verified.stderr, verified.stderr
    # A user unit: no system sandbox options a user manager cannot apply.
    user = cli(data_dir, "service", "install", "--user", "--unit-dir", str(tmp_path / "user-units"))
    assert user.returncode == 0, user.stderr
    user_unit = read_unit(tmp_path / "user-units" / "smtpbridge.service")
    assert "ProtectSystem" not in user_unit["Service"] and user_unit["Install"]["WantedBy"] == "default.target"
    # Uninstall removes it; a second time there is nothing to remove.
    removed = cli(data_dir, "service", "uninstall", "--unit-dir", str(units))
    assert removed.returncode == 0, removed.stderr
    assert not unit.exists()
    again = cli(data_dir, "--json", "service", "uninstall", "--unit-dir", str(units))
    assert again.returncode == NOT_FOUND
    assert str(unit) in json.loads(again.stderr.strip().splitlines()[-1])["error"]


def test_a_data_directory_a_unit_cannot_name_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "line\nbreak"
    done = cli(data_dir, "--json", "service", "install", "--unit-dir", str(tmp_path / "units"))
    assert done.returncode == INVALID_ARGUMENT, (done.stdout, done.stderr)
    assert "the data directory" in json.loads(done.stderr.strip().splitlines()[-1])["error"]
    assert not (tmp_path / "units" / "smtpbridge.service").exists()
