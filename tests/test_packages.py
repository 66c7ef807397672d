"""The packages of scripts/package.py, made here without the Windows
libraries (``--linux-only``; those are checked by
tests/windows/packages_check.py in the test command's Windows step):

- the NuGet package ``SmtpBridge``: its Open Packaging layout; installed from
  a local folder by NuGet 2.8.7 on Mono; a program built against it (by mcs
  against lib/, and by xbuild through build/SmtpBridge.targets) sends a mail
  on Mono and on CoreCLR with the native library of runtimes/linux-x64/native;
- the manylinux wheel: installed into a fresh virtual environment with pip,
  it sends a mail with no SMTPBRIDGE_LIBRARY, loading the library inside the
  package; auditwheel agrees with its platform tag.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import ROOT
from dotnet import RUNTIMES, mcs, nuget_install, require, run, xbuild
from servers import ScriptedServer

TIMEOUT_S = 300
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)  # type: ignore[union-attr]
SEND_MAIL = ROOT / "examples" / "csharp" / "SendMail.cs"


def make_packages(out: Path, *options: str) -> Dict[str, List[Path]]:
    """Runs scripts/package.py all OPTIONS into OUT: the .nupkg and .whl files made."""
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "package.py"), "all", "--out", str(out), *options],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    made = [Path(line) for line in done.stdout.split()]
    return {kind: [p for p in made if p.suffix == kind] for kind in (".nupkg", ".whl")}


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    out = tmp_path_factory.mktemp("packages")
    made = make_packages(out, "--linux-only")
    (nupkg,) = made[".nupkg"]
    (wheel,) = made[".whl"]
    return {"dir": out, "nupkg": nupkg, "wheel": wheel}


def test_nuget_package_is_an_open_packaging_zip_with_the_nuspec(packages: Dict[str, Path]) -> None:
    nupkg = packages["nupkg"]
    assert nupkg.name == f"SmtpBridge.{VERSION}.nupkg"
    with zipfile.ZipFile(nupkg) as archive:
        names = archive.namelist()
        files = {name: archive.read(name) for name in names}
    assert sorted(names) == sorted([
        "[Content_Types].xml", "_rels/.rels", "SmtpBridge.nuspec", "build/SmtpBridge.targets",
        "runtimes/linux-x64/native/libsmtpbridge.so",
        *(f"lib/{tfm}/SmtpBridge.Net.{ext}" for tfm in ("net462", "netstandard2.0") for ext in ("dll", "xml", "dll.config")),
    ])
    nuspec = ET.fromstring(files["SmtpBridge.nuspec"])
    ns = {"n": "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"}
    assert nuspec.findtext("n:metadata/n:id", namespaces=ns) == "SmtpBridge"
    assert nuspec.findtext("n:metadata/n:version", namespaces=ns) == VERSION
    groups = [g.get("targetFramework") for g in nuspec.findall("n:metadata/n:dependencies/n:group", ns)]
    assert groups == [".NETFramework4.6.2", ".NETStandard2.0"]
    rels = ET.fromstring(files["_rels/.rels"])
    (manifest,) = [r for r in rels if r.get("Type") == "http://schemas.microsoft.com/packaging/2010/07/manifest"]
    assert manifest.get("Target") == "/SmtpBridge.nuspec"
    # Every part has a content type (OPC): each extension has a Default.
    types = ET.fromstring(files["[Content_Types].xml"])
    extensions = {d.get("Extension") for d in types}
    assert {name.rsplit(".", 1)[1] for name in names if name != "[Content_Types].xml"} <= extensions
    assert files["runtimes/linux-x64/native/libsmtpbridge.so"] == (ROOT / "target" / "release" / "libsmtpbridge.so").read_bytes()


def test_one_assembly_serves_net462_and_netstandard2_0(packages: Dict[str, Path], tmp_path: Path) -> None:
    """The assembly references only what .NET Standard 2.0 provides as well
    (mscorlib and System.Runtime.Serialization, through its facades)."""
    with zipfile.ZipFile(packages["nupkg"]) as archive:
        assembly = archive.read("lib/netstandard2.0/SmtpBridge.Net.dll")
        assert assembly == archive.read("lib/net462/SmtpBridge.Net.dll")
    (tmp_path / "SmtpBridge.Net.dll").write_bytes(assembly)
    listing = subprocess.run(["ikdasm", str(tmp_path / "SmtpBridge.Net.dll")], capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    assert listing.returncode == 0, listing.stderr
    assert sorted(re.findall(r"^\.assembly extern (\S+)", listing.stdout, re.M)) == ["System.Runtime.Serialization",
                                                                                     "mscorlib"]


@pytest.fixture(scope="module")
def installed(packages: Dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nuget_install(packages["dir"], tmp_path_factory.mktemp("nuget") / "packages", VERSION)


def send_and_check(runtime: str, program: Path, tmp_path: Path) -> None:
    attachment = tmp_path / "Rechnung Ä.pdf"
    attachment.write_bytes(b"%PDF-1.4 from NuGet")
    with ScriptedServer() as server:
        done = run(runtime, program, str(server.port), str(attachment))
        assert done.returncode == 0, done.stdout + done.stderr
        (received,) = server.wait_for(1)
    assert received.parsed["Subject"] == "Your invoice - C# example"
    (part,) = list(received.parsed.iter_attachments())
    assert part.get_filename() == "Rechnung Ä.pdf" and part.get_content() == b"%PDF-1.4 from NuGet"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_program_compiled_against_the_installed_package_sends(runtime: str, installed: Path, tmp_path: Path) -> None:
    """What a build does with the package: the assembly of the lib/ folder the
    runtime's projects take (net462 on Mono, netstandard2.0 on .NET Core) and
    the native library of runtimes/linux-x64/native beside the program."""
    require(runtime)
    framework = "net462" if runtime == "mono" else "netstandard2.0"
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(installed / "lib" / framework / "SmtpBridge.Net.dll", app)
    shutil.copy(installed / "runtimes" / "linux-x64" / "native" / "libsmtpbridge.so", app)
    mcs(f"-r:{app / 'SmtpBridge.Net.dll'}", f"-out:{app / 'SendMail.exe'}", str(SEND_MAIL))
    send_and_check(runtime, app / "SendMail.exe", tmp_path)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_an_xbuild_project_gets_the_native_library_from_the_targets(runtime: str, installed: Path,
                                                                    tmp_path: Path) -> None:
    """build/SmtpBridge.targets, run by Mono's xbuild on Linux: the program's
    folder gets libsmtpbridge.so, and the program sends. (Which smtpbridge.dll
    it copies per platform needs the Windows libraries: packages_check.py.)"""
    require(runtime)
    # This package has no Windows library; a project that names one fails the build, so name one that exists.
    stand_in = installed / "runtimes" / "win-x64" / "native"
    stand_in.mkdir(parents=True, exist_ok=True)
    (stand_in / "smtpbridge.dll").write_bytes(b"stand-in")
    out = xbuild(installed, SEND_MAIL, tmp_path / "project", "x64")
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".mdb") == [
        "SendMail.exe", "SmtpBridge.Net.dll", "libsmtpbridge.so", "smtpbridge.dll"]
    send_and_check(runtime, out / "SendMail.exe", tmp_path)


def test_the_manylinux_wheel_installs_into_a_fresh_venv_and_sends(packages: Dict[str, Path], tmp_path: Path) -> None:
    wheel = packages["wheel"]
    with zipfile.ZipFile(wheel) as archive:
        tags = [line.split(": ", 1)[1] for line in archive.read(f"smtpbridge-{VERSION}.dist-info/WHEEL").decode().splitlines()
                if line.startswith("Tag: ")]
        assert "smtpbridge/libsmtpbridge.so" in archive.namelist()
    (tag,) = tags
    assert wheel.name == f"smtpbridge-{VERSION}-{tag}.whl"
    assert re.fullmatch(r"py3-none-manylinux_2_\d+_x86_64", tag), tag
    shown = subprocess.run([sys.executable, "-m", "auditwheel", "show", str(wheel)], capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    platform = tag.split("-")[2]
    assert f'consistent with the following platform tag: "{platform}"' in " ".join(shown.stdout.split()), shown.stdout

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=TIMEOUT_S)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("SMTPBRIDGE_LIBRARY", "LD_LIBRARY_PATH", "PYTHONPATH")}
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--disable-pip-version-check", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    script = """
import sys, smtpbridge
from smtpbridge import _native
with smtpbridge.Client() as client:
    client.config_set("SMTPServer", "127.0.0.1")
    client.config_set("SMTPServerPort", sys.argv[1])
    client.config_set("SMTPAuthentication", "None")
    client.send({"from": "anna@firm.example", "to": ["client@example.com"], "subject": "From the wheel",
                 "text": "sent by " + smtpbridge.__version__})
print(_native.path)
"""
    with ScriptedServer() as server:
        sent = subprocess.run([str(python), "-c", script, str(server.port)], capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=env, cwd=tmp_path)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        (received,) = server.wait_for(1)
    assert received.parsed["Subject"] == "From the wheel"
    # The library inside the installed package, found with no SMTPBRIDGE_LIBRARY.
    loaded = Path(sent.stdout.strip().splitlines()[-1])
    assert loaded.name == "libsmtpbridge.so" and loaded.parent.name == "smtpbridge", loaded
    assert loaded.resolve().is_relative_to(venv.resolve()), loaded
