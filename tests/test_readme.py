"""The README's first-mail programs and commands run as written, and
docs/DESIGN.md's list of modules matches src/.

Each block marked ``<!-- readme-test: LANG -->`` is copied out of README.md,
built the way the README says (C, C++, C# with Mono, Python) and run with
PORT pointing at a recording server; the server must receive the mail. The
block marked ``examples`` (the examples built and run by hand) is run line
by line with bash, from a folder that links the repository's files, so that
what it builds does not land in the checkout.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import LIBRARY, ROOT

README = ROOT / "README.md"
FILES = {"c": "first.c", "cpp": "first.cpp", "csharp": "First.cs", "python": "first.py"}


def snippet(language: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- readme-test: {language} -->\n```\w+\n(.*?)\n```", text, re.S)
    assert match, f"README.md has no block marked readme-test: {language}"
    return match.group(1) + "\n"


def build_and_command(language: str, source: Path, work: Path) -> list[str]:
    """Build ``source`` as the README says; return the command that runs it."""
    libdir = str(LIBRARY.parent)
    soname = LIBRARY.parent / "libsmtpbridge.so.1"
    if not soname.exists():
        soname.symlink_to(LIBRARY.name)
    run = lambda *cmd: subprocess.run(cmd, check=True, cwd=ROOT, timeout=120, capture_output=True, text=True)
    if language == "c":
        run("cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-Iinclude", str(source), f"-L{libdir}", "-lsmtpbridge",
            f"-Wl,-rpath,{libdir}", "-o", str(work / "first"))
        return [str(work / "first")]
    if language == "cpp":
        run("c++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-Iinclude", "-Ibindings/cpp", str(source),
            f"-L{libdir}", "-lsmtpbridge", f"-Wl,-rpath,{libdir}", "-o", str(work / "first_cpp"))
        return [str(work / "first_cpp")]
    if language == "csharp":
        run("mcs", "-nologo", f"-out:{work / 'First.exe'}", "bindings/csharp/SmtpBridge.cs",
            "bindings/csharp/SmtpBridge.Native.cs", str(source))
        return ["mono", str(work / "First.exe")]
    return [sys.executable, str(source)]


@pytest.mark.parametrize("language", sorted(FILES))
def test_readme_program_sends_its_mail(language, server, tmp_path):
    source = tmp_path / FILES[language]
    source.write_text(snippet(language), encoding="utf-8")
    try:
        command = build_and_command(language, source, tmp_path)
    except subprocess.CalledProcessError as error:
        pytest.fail(f"the README's {language} program does not build:\n{error.stdout}{error.stderr}")
    env = dict(os.environ, PORT=str(server.port), SMTPBRIDGE_LIBRARY=str(LIBRARY),
               LD_LIBRARY_PATH=str(LIBRARY.parent), PYTHONPATH=str(ROOT / "bindings" / "python"))
    result = subprocess.run(command, cwd=ROOT, env=env, timeout=60, capture_output=True, text=True)
    assert result.returncode == 0, f"{language}: exit {result.returncode}\n{result.stdout}{result.stderr}"
    received = server.wait_for(1)
    assert len(received) == 1
    assert received[0].mail_from == "office@firm.example"
    assert received[0].rcpt_tos == ["client@example.com"]
    assert received[0].parsed["Subject"] == "Invoice"
    assert "sent" in result.stdout


EXAMPLE_SUBJECTS = ["Your invoice - C example", "Your invoice - C++ example", "Your invoice - C# example",
                    "Your invoice - Python example"]


def test_readme_example_commands_run_as_written(server, tmp_path):
    lines = [line for line in snippet("examples").splitlines() if line.strip()]
    assert len(lines) == len(EXAMPLE_SUBJECTS), lines
    for name in ("include", "bindings", "examples", "target", "Cargo.toml"):
        (tmp_path / name).symlink_to(ROOT / name)
    soname = LIBRARY.parent / "libsmtpbridge.so.1"
    if not soname.exists():
        soname.symlink_to(LIBRARY.name)
    env = dict(os.environ, PORT=str(server.port), SMTPBRIDGE_LIBRARY=str(LIBRARY))
    env.pop("LD_LIBRARY_PATH", None)  # only what the line itself sets
    for count, (line, subject) in enumerate(zip(lines, EXAMPLE_SUBJECTS), start=1):
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", line], cwd=tmp_path, env=env, timeout=180,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{line}\nexit {result.returncode}\n{result.stdout}{result.stderr}"
        received = server.wait_for(count)
        assert len(received) == count
        newest = received[-1]
        assert newest.parsed["Subject"] == subject, line
        assert newest.rcpt_tos == ["client@example.com"]
        attachments = [part.get_filename() for part in newest.parsed.iter_attachments()]
        assert attachments == ["Cargo.toml"], (line, attachments)


def design_modules() -> set[str]:
    """The files of src/ that docs/DESIGN.md's "Layers" block names."""
    text = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    match = re.search(r"## Layers\n.*?```\n(.*?)\n```", text, re.S)
    assert match, "docs/DESIGN.md has no Layers block"
    named, folder = set(), None
    for line in match.group(1).splitlines():
        words = line.split()
        if not words:
            continue
        if line.startswith("src/"):
            folder = words[0] if words[0].endswith("/") else None
            if folder is None:
                named.add(words[0])
        elif folder is not None:
            for word in words:
                if not word.endswith(".rs"):
                    break
                named.add(folder + word)
    return named


def test_design_lists_every_module_of_src():
    actual = {path.relative_to(ROOT).as_posix() for path in (ROOT / "src").rglob("*.rs")}
    named = design_modules()
    assert sorted(actual - named) == [], "modules missing from docs/DESIGN.md's Layers"
    assert sorted(named - actual) == [], "docs/DESIGN.md's Layers names files that do not exist"
