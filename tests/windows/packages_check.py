"""The packages with the Windows libraries (the test command's Windows step
runs this after scripts/windows/build.sh; it is not collected with tests/,
which runs before the Windows build):

    python -m pytest -q tests/windows/packages_check.py

scripts/package.py all, from the release folders of both architectures:

- the NuGet package holds each architecture's smtpbridge.dll (PE machine
  x64 0x8664, x86 0x14c) as built, and the licence texts;
- build/SmtpBridge.targets, run for real by Mono's xbuild on a .NET
  Framework project that uses the package installed by NuGet 2.8.7, copies
  the smtpbridge.dll of the project's platform (x86, x64, AnyCPU with and
  without Prefer32Bit, SmtpBridgeNativePlatform), and the program it builds
  sends a mail on Mono and on CoreCLR;
- the win_amd64 and win32 wheels hold the DLL of their architecture, with
  the right WHEEL tag and a RECORD that matches every file.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zipfile
from pathlib import Path
from typing import Dict, List

import pytest

from conftest import ROOT
from dotnet import RUNTIMES, nuget_install, require, xbuild
from test_packages import SEND_MAIL, VERSION, make_packages, send_and_check

MACHINE = {"x64": 0x8664, "x86": 0x14C}
WHEEL_TAG = {"x64": "win_amd64", "x86": "win32"}


def pe_machine(image: bytes) -> int:
    """The Machine field of a PE image's COFF header."""
    assert image[:2] == b"MZ", "not a PE image"
    offset = struct.unpack_from("<I", image, 0x3C)[0]
    assert image[offset:offset + 4] == b"PE\0\0", "no PE signature"
    return int(struct.unpack_from("<H", image, offset + 4)[0])


def release_folder(arch: str) -> Path:
    return ROOT / "target" / "windows" / arch / f"smtpbridge-{VERSION}-windows-{arch}"


def release_dll(arch: str) -> bytes:
    return (release_folder(arch) / "smtpbridge.dll").read_bytes()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, List[Path]]:
    return make_packages(tmp_path_factory.mktemp("packages"))


@pytest.fixture(scope="module")
def installed(made: Dict[str, List[Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    (nupkg,) = made[".nupkg"]
    return nuget_install(nupkg.parent, tmp_path_factory.mktemp("nuget") / "packages", VERSION)


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_nuget_package_holds_each_windows_dll(made: Dict[str, List[Path]], arch: str) -> None:
    (nupkg,) = made[".nupkg"]
    with zipfile.ZipFile(nupkg) as archive:
        dll = archive.read(f"runtimes/win-{arch}/native/smtpbridge.dll")
        notices = archive.read("THIRD-PARTY-NOTICES.txt")
    index = release_folder("x64") / "licenses" / "INDEX.txt"
    assert notices.startswith(index.read_bytes())
    assert pe_machine(dll) == MACHINE[arch]
    assert dll == release_dll(arch)


@pytest.mark.parametrize("platform, properties, arch", [
    ("x86", [], "x86"),
    ("x64", [], "x64"),
    ("AnyCPU", ["Prefer32Bit=true"], "x86"),
    ("AnyCPU", ["Prefer32Bit=false"], "x64"),
    ("AnyCPU", ["SmtpBridgeNativePlatform=x86"], "x86"),
])
def test_the_targets_copy_the_dll_of_the_platform(installed: Path, tmp_path: Path, platform: str,
                                                  properties: List[str], arch: str) -> None:
    out = xbuild(installed, SEND_MAIL, tmp_path / "project", platform, *properties)
    assert pe_machine((out / "smtpbridge.dll").read_bytes()) == MACHINE[arch]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_program_built_with_the_package_sends(installed: Path, tmp_path: Path, runtime: str) -> None:
    require(runtime)
    # AnyCPU: a 64-bit CoreCLR refuses an x86 image (BadImageFormatException), as .NET does.
    out = xbuild(installed, SEND_MAIL, tmp_path / "project", "AnyCPU")
    send_and_check(runtime, out / "SendMail.exe", tmp_path)


@pytest.mark.parametrize("arch", ["x64", "x86"])
def test_the_windows_wheel_holds_the_dll_of_its_tag(made: Dict[str, List[Path]], arch: str) -> None:
    tag = WHEEL_TAG[arch]
    (wheel,) = [w for w in made[".whl"] if w.name.endswith(f"-{tag}.whl")]
    assert wheel.name == f"smtpbridge-{VERSION}-py3-none-{tag}.whl"
    dist_info = f"smtpbridge-{VERSION}.dist-info"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        files = {name: archive.read(name) for name in names}
    assert [line for line in files[f"{dist_info}/WHEEL"].decode().splitlines() if line.startswith("Tag: ")] == [
        f"Tag: py3-none-{tag}"]
    assert "smtpbridge/libsmtpbridge.so" not in names
    dll = files["smtpbridge/smtpbridge.dll"]
    assert pe_machine(dll) == MACHINE[arch] and dll == release_dll(arch)
    record = [line.split(",") for line in files[f"{dist_info}/RECORD"].decode().splitlines()]
    assert sorted(row[0] for row in record) == sorted(names)
    for name, digest, size in record:
        if name == f"{dist_info}/RECORD":
            assert digest == size == ""
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(files[name]).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (f"sha256={expected}", len(files[name])), name
