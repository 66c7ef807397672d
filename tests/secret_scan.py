"""A suite-wide check that no known test secret reaches a log line or a transcript.

Loaded from conftest.py. Every Client the suite opens gets a log callback
at debug level (lines of the library and of rustls) that scans each line;
every transcript a test reads is scanned; and at the end of the session
every transcript file and log file under the session's temporary folder is
scanned. Any hit fails the session, naming where the secret appeared.
Set SMTPBRIDGE_TEST_SECRET_SCAN=0 to switch the callback off (files and
transcripts are still scanned).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import List, Tuple

import pytest

import smtpbridge

#: The passwords and tokens the suite's tests use (distinctive ones only).
SECRETS = [
    "Diag-Secret-Pw-4711",
    "Pässwörd-Unique-4711",
    "Shared-Secret-0815",
    "ya29.A0-unique-token-value",
    "pw-anna-111",
    "pw-bob-222",
    "pw-office-333",
]
FORMS = SECRETS + [base64.b64encode(s.encode("utf-8")).decode("ascii") for s in SECRETS]

_hits: List[Tuple[str, str]] = []
_lines = {"count": 0}


def scan(where: str, text: str) -> None:
    """Record each secret (or its base64 form) found in ``text``."""
    for secret in FORMS:
        if secret in text:
            _hits.append((where, secret))


def _on_line(line: dict) -> None:
    _lines["count"] += 1
    scan(f"log line {line.get('target')}", json.dumps(line, ensure_ascii=False))


@pytest.fixture(scope="session", autouse=True)
def secret_scan(tmp_path_factory: pytest.TempPathFactory):
    """Install the scans for the whole session; fail at its end on any hit."""
    original_init = smtpbridge.Client.__init__
    original_transcript = smtpbridge.Client.transcript
    callback = os.environ.get("SMTPBRIDGE_TEST_SECRET_SCAN", "1") != "0"

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if callback:
            try:
                self.set_log_callback(_on_line, 4)
            except smtpbridge.MissingFunctionError:
                pass

    def transcript(self, id):
        result = original_transcript(self, id)
        scan(f"transcript of {id}", json.dumps(result, ensure_ascii=False))
        return result

    smtpbridge.Client.__init__ = init
    smtpbridge.Client.transcript = transcript
    yield
    smtpbridge.Client.__init__ = original_init
    smtpbridge.Client.transcript = original_transcript
    base = Path(tmp_path_factory.getbasetemp())
    for path in base.rglob("*"):
        if path.is_file() and (path.parent.name == "transcripts" or ".log" in path.name):
            scan(str(path), path.read_text("utf-8", errors="replace"))
    if _hits:
        listed = "\n".join(f"  {where}: {secret[:6]}…" for where, secret in _hits[:20])
        pytest.fail(f"test secrets appeared in {len(_hits)} places:\n{listed}", pytrace=False)
