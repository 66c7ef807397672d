"""Loading errors, checked in a subprocess so they run without the library."""

import os
import subprocess
import sys
from pathlib import Path

BINDINGS = Path(__file__).resolve().parents[1]


def import_with(library: str) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, SMTPBRIDGE_LIBRARY=library, PYTHONPATH=str(BINDINGS))
    code = (
        "try:\n"
        "    import smtpbridge\n"
        "except ImportError as error:\n"
        "    print(type(error).__name__, error, error.tried, sep='\\n')\n"
        "    raise SystemExit(3)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_missing_library_fails_import_naming_the_path_tried(tmp_path: Path) -> None:
    missing = str(tmp_path / "libsmtpbridge.so")
    result = import_with(missing)
    assert result.returncode == 3, result.stderr
    assert "LibraryLoadError\nlibsmtpbridge not found; tried:" in result.stdout
    assert f"SMTPBRIDGE_LIBRARY={missing}: no such file" in result.stdout
    assert "nothing else was tried" in result.stdout


def test_a_file_that_is_not_a_library_fails_import(tmp_path: Path) -> None:
    bogus = tmp_path / "libsmtpbridge.so"
    bogus.write_text("not a shared object")
    result = import_with(str(bogus))
    assert result.returncode == 3, result.stderr
    assert f"SMTPBRIDGE_LIBRARY={bogus}: " in result.stdout
