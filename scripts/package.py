#!/usr/bin/env python3
"""Makes the packages a .NET or Python developer installs, from the
libraries the builds made (it builds nothing in Rust):

    python3 scripts/package.py [nuget|wheels|all] [--out DIR] [--linux-only]

- ``SmtpBridge.<version>.nupkg``: lib/net462/ and lib/netstandard2.0/ hold
  SmtpBridge.Net.dll (bindings/csharp/SmtpBridge.cs, SmtpBridge.Native.cs and SmtpBridge.Typed.cs,
  compiled once by Mono's mcs against the .NET Framework 4.6.2 reference
  assemblies; it references only mscorlib and System.Runtime.Serialization,
  which .NET Standard 2.0 provides, so the same file serves both folders),
  its XML documentation and Mono's dllmap config; runtimes/win-x64/native/
  and runtimes/win-x86/native/smtpbridge.dll, runtimes/linux-x64/native/
  libsmtpbridge.so; build/SmtpBridge.targets (bindings/csharp/nuget/: copies
  the right smtpbridge.dll beside a .NET Framework program); the .nuspec
  (bindings/csharp/nuget/), ``[Content_Types].xml`` and ``_rels/.rels`` of
  the Open Packaging Conventions that a .nupkg is.
- ``smtpbridge-<version>-py3-none-<platform>.whl``: the Python binding with
  the native library inside the package, for ``manylinux_<glibc>_x86_64``
  (the newest GLIBC symbol version the .so needs), ``win_amd64`` and
  ``win32``. The binding is pure ctypes, so one wheel serves every Python 3.

The version is Cargo.toml's. Inputs: target/release/libsmtpbridge.so
(``cargo build --release``) and the release folders of
scripts/windows/build.sh, target/windows/{x64,x86}/smtpbridge-<version>-windows-<arch>/
(whose licenses/ become THIRD-PARTY-NOTICES.txt). ``--linux-only`` leaves the
Windows libraries and their licence texts out: packages for the Linux tests,
not for release.
Output: target/packages/ unless ``--out``. Needs mcs and mono-devel (the
reference assemblies), objdump.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
CSHARP = ROOT / "bindings" / "csharp"
PYTHON_PACKAGE = ROOT / "bindings" / "python" / "smtpbridge"
REFERENCE_ASSEMBLIES = Path("/usr/lib/mono/4.6.2-api")
# A fixed time for every zip entry: the layout does not depend on when it was made.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
WINDOWS = {"win-x64": ("x64", "win_amd64"), "win-x86": ("x86", "win32")}
SUMMARY = "Send mail by SMTP or Microsoft Graph through libsmtpbridge: ctypes bindings with the native library"


def fail(message: str) -> None:
    sys.exit(f"package.py: error: {message}")


def version() -> str:
    found = re.search(r'^\[package\][^\[]*?^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M | re.S)
    if not found:
        fail("no [package] version in Cargo.toml")
    return found.group(1)  # type: ignore[union-attr]


def release_folder(arch: str, ver: str) -> Path:
    return ROOT / "target" / "windows" / arch / f"smtpbridge-{ver}-windows-{arch}"


def natives(ver: str, linux_only: bool) -> Dict[str, Path]:
    """The native library per runtime identifier; fails naming what is missing."""
    found = {"linux-x64": ROOT / "target" / "release" / "libsmtpbridge.so"}
    if not linux_only:
        for rid, (arch, _) in WINDOWS.items():
            found[rid] = release_folder(arch, ver) / "smtpbridge.dll"
    missing = [str(path) for path in found.values() if not path.is_file()]
    if missing:
        fail("missing " + ", ".join(missing) + ": build them first (cargo build --release; "
             "scripts/windows/build.sh), or pass --linux-only for a package without the Windows libraries")
    return found


def third_party_notices(ver: str) -> bytes:
    """The licence texts of the Windows release folder (the same crates as the
    other builds), as one file: INDEX.txt, then each text under its path."""
    licenses = release_folder("x64", ver) / "licenses"
    if not (licenses / "INDEX.txt").is_file():
        fail(f"{licenses}/INDEX.txt is missing: run scripts/windows/build.sh")
    parts: List[str] = [(licenses / "INDEX.txt").read_text(encoding="utf-8")]
    for path in sorted(p for p in licenses.rglob("*") if p.is_file() and p.name != "INDEX.txt"):
        text = path.read_bytes().decode("utf-8", errors="replace")
        parts.append(f"\n{'=' * 78}\n{path.relative_to(licenses)}\n{'=' * 78}\n{text}")
    return "".join(parts).encode("utf-8")


class Archive:
    """A zip whose entries have a fixed time and mode, in the order added."""

    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED)
        self.names: List[str] = []

    def add(self, name: str, data: bytes, executable: bool = False) -> None:
        info = zipfile.ZipInfo(name, ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (0o100755 if executable else 0o100644) << 16
        self.zip.writestr(info, data)
        self.names.append(name)

    def close(self) -> None:
        self.zip.close()


# --- NuGet --------------------------------------------------------------------


def compile_assembly(work: Path) -> Tuple[Path, Path]:
    """SmtpBridge.Net.dll and its XML documentation, for .NET Framework 4.6.2."""
    if not (REFERENCE_ASSEMBLIES / "mscorlib.dll").is_file():
        fail(f"{REFERENCE_ASSEMBLIES} is missing: apt-get install mono-devel (the reference assemblies)")
    dll, doc = work / "SmtpBridge.Net.dll", work / "SmtpBridge.Net.xml"
    command = ["mcs", "-sdk:4.6.2-api", "-target:library", "-warn:4", "-warnaserror", "-nowarn:1591",
               "-r:System.Runtime.Serialization", f"-out:{dll}", f"-doc:{doc}",
               *(str(CSHARP / name) for name in ("SmtpBridge.cs", "SmtpBridge.Native.cs", "SmtpBridge.Typed.cs"))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        fail("mcs failed:\n" + done.stdout + done.stderr)
    return dll, doc


CONTENT_TYPES = {
    "rels": "application/vnd.openxmlformats-package.relationships+xml",
    "psmdcp": "application/vnd.openxmlformats-package.core-properties+xml",
}


def content_types(names: List[str]) -> bytes:
    extensions = sorted({name.rsplit(".", 1)[1].lower() for name in names if "." in name.rsplit("/", 1)[-1]})
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">']
    lines += [f'  <Default Extension="{ext}" ContentType="{CONTENT_TYPES.get(ext, "application/octet")}" />'
              for ext in sorted(set(extensions) | {"rels"})]
    lines.append("</Types>")
    return ("\n".join(lines) + "\n").encode()


def nuget(out: Path, ver: str, libraries: Dict[str, Path], notices: Optional[bytes]) -> Path:
    path = out / f"SmtpBridge.{ver}.nupkg"
    nuspec = (CSHARP / "nuget" / "SmtpBridge.nuspec").read_text(encoding="utf-8").replace("$version$", ver)
    with tempfile.TemporaryDirectory() as work:
        dll, doc = compile_assembly(Path(work))
        archive = Archive(path)
        archive.add("_rels/.rels", (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\n'
            '  <Relationship Type="http://schemas.microsoft.com/packaging/2010/07/manifest"'
            ' Target="/SmtpBridge.nuspec" Id="R0" />\n'
            '</Relationships>\n').encode())
        archive.add("SmtpBridge.nuspec", nuspec.encode("utf-8"))
        for framework in ("net462", "netstandard2.0"):
            archive.add(f"lib/{framework}/SmtpBridge.Net.dll", dll.read_bytes())
            archive.add(f"lib/{framework}/SmtpBridge.Net.xml", doc.read_bytes())
            archive.add(f"lib/{framework}/SmtpBridge.Net.dll.config", (CSHARP / "SmtpBridge.Net.dll.config").read_bytes())
        for rid, library in sorted(libraries.items()):
            archive.add(f"runtimes/{rid}/native/{library.name}", library.read_bytes(), executable=rid.startswith("linux"))
        archive.add("build/SmtpBridge.targets", (CSHARP / "nuget" / "SmtpBridge.targets").read_bytes())
        if notices is not None:
            archive.add("THIRD-PARTY-NOTICES.txt", notices)
        archive.add("[Content_Types].xml", content_types(archive.names))
        archive.close()
    return path


# --- Python wheels --------------------------------------------------------------


def glibc_tag(library: Path) -> str:
    """manylinux_X_Y_x86_64 for the newest GLIBC_X.Y symbol version the library needs."""
    symbols = subprocess.run(["objdump", "-T", str(library)], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(n) for n in v.split(".")) for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", symbols)}
    if not versions:
        fail(f"{library} needs no GLIBC symbol: is it a glibc x86_64 library?")
    newest = max(versions)
    return f"manylinux_{newest[0]}_{newest[1]}_x86_64"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def wheel(out: Path, ver: str, library: Path, tag: str, notices: Optional[bytes]) -> Path:
    dist_info = f"smtpbridge-{ver}.dist-info"
    files: List[Tuple[str, bytes, bool]] = [
        (f"smtpbridge/{p.name}", p.read_bytes(), False)
        for p in sorted(PYTHON_PACKAGE.iterdir()) if p.suffix == ".py" or p.name == "py.typed"
    ]
    files.append((f"smtpbridge/{library.name}", library.read_bytes(), library.suffix == ".so"))
    readme = (ROOT / "bindings" / "python" / "README.md").read_text(encoding="utf-8")
    metadata = (f"Metadata-Version: 2.1\nName: smtpbridge\nVersion: {ver}\nSummary: {SUMMARY}\n"
                "License: MIT OR Apache-2.0\nRequires-Python: >=3.8\n"
                f"Description-Content-Type: text/markdown\n\n{readme}")
    files.append((f"{dist_info}/METADATA", metadata.encode("utf-8"), False))
    files.append((f"{dist_info}/WHEEL", (
        "Wheel-Version: 1.0\nGenerator: smtpbridge scripts/package.py\n"
        f"Root-Is-Purelib: false\nTag: py3-none-{tag}\n").encode(), False))
    if notices is not None:
        files.append((f"{dist_info}/THIRD-PARTY-NOTICES.txt", notices, False))
    path = out / f"smtpbridge-{ver}-py3-none-{tag}.whl"
    archive = Archive(path)
    record = []
    for name, data, executable in files:
        archive.add(name, data, executable)
        record.append(record_line(name, data))
    record.append(f"{dist_info}/RECORD,,")
    archive.add(f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode())
    archive.close()
    return path


def wheels(out: Path, ver: str, libraries: Dict[str, Path], notices: Optional[bytes]) -> List[Path]:
    stated = re.search(r'^__version__ = "([^"]+)"', (PYTHON_PACKAGE / "__init__.py").read_text(), re.M)
    if not stated or stated.group(1) != ver:
        fail(f"bindings/python/smtpbridge/__init__.py's __version__ is not Cargo.toml's {ver}")
    made = [wheel(out, ver, libraries["linux-x64"], glibc_tag(libraries["linux-x64"]), notices)]
    for rid, (_, tag) in WINDOWS.items():
        if rid in libraries:
            made.append(wheel(out, ver, libraries[rid], tag, notices))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("nuget", "wheels", "all"), default="all")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "packages")
    parser.add_argument("--linux-only", action="store_true",
                        help="without the Windows libraries (for tests on Linux; not for release)")
    args = parser.parse_args()
    ver = version()
    libraries = natives(ver, args.linux_only)
    # The licence texts come with the Windows release folders.
    notices = None if args.linux_only else third_party_notices(ver)
    args.out.mkdir(parents=True, exist_ok=True)
    made: List[Path] = []
    if args.what in ("nuget", "all"):
        made.append(nuget(args.out, ver, libraries, notices))
    if args.what in ("wheels", "all"):
        made += wheels(args.out, ver, libraries, notices)
    for path in made:
        print(path)


if __name__ == "__main__":
    main()
