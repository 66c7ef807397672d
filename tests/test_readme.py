"""The README's first-mail programs run as written against a local server,
and docs/DESIGN.md's list of modules matches src/.

Each block marked ``<!-- readme-test: LANG -->`` is copied out of README.md,
built the way the README says (C, C++, C# with Mono, Python) and run with
PORT pointing at a recording server; the server must receive the mail.
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
        run("mcs", "-nologo", f"-out:{work / 'First.exe'}", "bindings/csharp/SmtpBridge.cs", str(source))
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
