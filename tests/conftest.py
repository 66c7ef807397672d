"""Shared fixtures and helpers for the smtpbridge test suite.

The suite runs against the library the build produced
(``target/release/libsmtpbridge.so`` under the repository root, or the file
named by ``SMTPBRIDGE_TEST_LIBRARY``, e.g. a debug build), through the
Python binding in ``bindings/python``. Every server is on 127.0.0.1.

Helpers that tests import (``from conftest import ...``):

- :func:`configure` points a client at a test server.
- :func:`message` builds a message dict with harmless defaults.
- :func:`expect_error` runs a call that must fail and checks its code.
- :func:`marker_arrives` sends a marker through the outbox: the signal that
  an older message was held, where a test would otherwise wait for nothing.
- :func:`wait_until_in_call` waits until a thread is inside a library call.
- constants ``OK``, ``INVALID_ARGUMENT`` … ``INTERNAL`` (ABI §2).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
LIBRARY_FILE = {"win32": "smtpbridge.dll", "darwin": "libsmtpbridge.dylib"}.get(
    sys.platform, "libsmtpbridge.so"
)
LIBRARY = Path(os.environ.get("SMTPBRIDGE_TEST_LIBRARY") or ROOT / "target" / "release" / LIBRARY_FILE)

if not LIBRARY.is_file():
    raise pytest.UsageError(
        f"{LIBRARY} is missing: build the library first (cargo build --release), "
        "then run the tests again"
    )

os.environ["SMTPBRIDGE_LIBRARY"] = str(LIBRARY)
for directory in (ROOT / "bindings" / "python", TESTS):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

import smtpbridge  # noqa: E402  (needs SMTPBRIDGE_LIBRARY and sys.path above)
from servers import CertAuthority, RecordingServer  # noqa: E402

#: No known test secret in any log line or transcript of the whole suite.
pytest_plugins = ["secret_scan"]

# --- result codes (ABI §2) ----------------------------------------------------

OK = 0
INVALID_ARGUMENT = 1
CONFIG = 2
CREDENTIALS = 3
CONNECT = 4
TLS = 5
AUTH = 6
REJECTED = 7
TRANSIENT = 8
MESSAGE = 9
NOT_FOUND = 10
LIMIT = 11
BLOCKED = 12
IO = 13
TIMEOUT = 14
STATE = 15
BUSY = 16
INTERNAL = 99

#: RFC 3339 UTC as the status JSON writes it.
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
#: A ULID: 26 characters of Crockford base32.
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

#: The safety bound on any call that is expected to time out.
SAFETY_S = 10.0

SENDER = "anna@firm.example"
RECIPIENT = "client@example.com"


# --- helpers ------------------------------------------------------------------


def configure(
    client: "smtpbridge.Client",
    server: Any,
    *,
    ca: Optional[CertAuthority] = None,
    encryption: str = "None",
    auth: bool = False,
    timeout_ms: int = 5000,
    profile: Optional[str] = None,
    **extra: Any,
) -> None:
    """Point ``client`` (or one of its profiles) at ``server`` on 127.0.0.1.

    SMTPAuthentication is None unless ``auth``; SMTPCaFile is the test CA
    when ``ca`` is given; ``extra`` keys are set last, in order.
    """
    keys: Dict[str, Any] = {
        "SMTPServer": "127.0.0.1",
        "SMTPServerPort": server.port,
        "SMTPServerEncryption": encryption,
        "SMTPAuthentication": "Required" if auth else "None",
        "SMTPConnectionTimeout": timeout_ms,
    }
    if ca is not None:
        keys["SMTPCaFile"] = str(ca.ca_pem_path)
    keys.update(extra)
    prefix = f"{profile}." if profile else ""
    for key, value in keys.items():
        global_key = key in ("SMTPUsername", "SMTPPassword")
        client.config_set(key if global_key else prefix + key, value)


class ClosedPort:
    """A stand-in for a server: a loopback port nothing listens on (connection refused)."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]


def message(**fields: Any) -> Dict[str, Any]:
    """A message from SENDER to RECIPIENT with a subject and a text body; ``fields`` override."""
    base: Dict[str, Any] = {
        "from": SENDER,
        "to": [RECIPIENT],
        "subject": "Test message",
        "text": "Hello from the smtpbridge tests.",
    }
    base.update(fields)
    return base


def expect_error(code: int, call: Callable[..., Any], *args: Any, **kwargs: Any) -> smtpbridge.SmtpBridgeError:
    """Run ``call``; it must raise the SmtpBridgeError of ``code``. Returns the exception."""
    try:
        result = call(*args, **kwargs)
    except smtpbridge.SmtpBridgeError as error:
        assert error.code == code, (
            f"expected {smtpbridge.result_name(code)}, got {error.name} ({error.code}): {error.message}"
        )
        return error
    raise AssertionError(f"expected {smtpbridge.result_name(code)}, but the call succeeded: {result!r}")


def marker_arrives(client: "smtpbridge.Client", server: Any, timeout_ms: int = 10_000,
                   **fields: Any) -> "list[str]":
    """Enqueue a message with the subject "marker", wait until it is sent, and
    return the subjects ``server`` has received, oldest first.

    The positive signal that something was held: the outbox takes due mail
    oldest first (by due time, then id), so a message that was due before
    the marker was enqueued has been taken (``sending`` or later) by the time
    the marker is sent. A test checks the held message's state and the
    server's subjects right after, with no time to wait out.
    """
    id = client.enqueue(message(subject="marker", **fields))
    status = client.wait(id, timeout_ms)
    assert status["state"] == "sent", status
    return [m.parsed["Subject"] for m in server.messages]


def wait_until_in_call(thread: "threading.Thread", function: str, timeout: float = SAFETY_S) -> None:
    """Wait until ``thread`` is inside ``function``: a C function the binding
    calls through ``call_raw`` (``"smtpb_wait"``) or a binding method that calls
    the library itself (``"shutdown"``), as the innermost Python frame of the
    thread shows. The positive signal that a call is under way (blocked in the
    library), where a test would otherwise sleep and hope.
    """
    def inside() -> bool:
        frame = sys._current_frames().get(thread.ident or -1)
        if frame is None:
            return False
        name = frame.f_code.co_name
        return name == function or (name == "call_raw" and frame.f_locals.get("name") == function)

    deadline = time.monotonic() + timeout
    while not inside():
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError(f"thread {thread.name} never got inside {function}")
        time.sleep(0.005)


def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> "tuple[Any, float]":
    """Run ``call`` and return (its exception or result, seconds taken)."""
    started = time.monotonic()
    try:
        outcome: Any = call(*args, **kwargs)
    except smtpbridge.SmtpBridgeError as error:
        outcome = error
    return outcome, time.monotonic() - started


def files_under(directory: Path) -> Iterator[Path]:
    """Every regular file under ``directory``, recursively."""
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            yield path


# --- fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    """The test certificate authority; its ca.pem is what SMTPCaFile points at."""
    return CertAuthority(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def client() -> Iterator[smtpbridge.Client]:
    """An in-memory client, closed after the test."""
    c = smtpbridge.Client()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    """A plain recording server on 127.0.0.1, stopped after the test."""
    with RecordingServer() as s:
        yield s


@pytest.fixture
def sending(client: smtpbridge.Client, server: RecordingServer) -> smtpbridge.Client:
    """The in-memory client pointed at the plain recording server."""
    configure(client, server)
    return client


@pytest.fixture
def main() -> Iterator[RecordingServer]:
    """The first of two recording servers (profile routing)."""
    with RecordingServer() as s:
        yield s


@pytest.fixture
def backup() -> Iterator[RecordingServer]:
    """The second of two recording servers (profile routing)."""
    with RecordingServer() as s:
        yield s


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An absolute data directory path (not created yet)."""
    return tmp_path / "data"


@pytest.fixture
def dir_client(data_dir: Path) -> Iterator[smtpbridge.Client]:
    """A client on ``data_dir`` with a key-file master secret, closed after the test."""
    c = smtpbridge.Client(data_dir)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def postfix(ca: CertAuthority) -> Iterator[Any]:
    """One real Postfix (smtpd + Dovecot SASL) for the session, on 127.0.0.1 ports of
    its own (tests/servers/postfix.py). Not installed: the tests FAIL, naming the package."""
    from servers.postfix import PostfixServer, PostfixUnavailable

    try:
        server = PostfixServer(ca).start()
    except PostfixUnavailable as error:
        pytest.fail(f"real-server tests need Postfix and Dovecot: {error}")
    try:
        yield server
    finally:
        server.stop()
