#!/usr/bin/env python3
"""Copies the licence texts of everything linked into smtpbridge.dll and
smtpbridge.exe for one Windows target into a release folder's licenses/.

Run by scripts/windows/build.sh inside the build chroot, after the build
(the crates' sources are then in cargo's registry):

    python3 scripts/windows/licenses.py --target x86_64-pc-windows-gnu --out DIR

The crates are those `cargo metadata --filter-platform TARGET` resolves as
normal (not build or dev) dependencies of the workspace's members, less
proc-macro crates; each gets
DIR/<name>-<version>/ with its LICENSE*, COPYING*, NOTICE*, COPYRIGHT* and
UNLICENSE* files (and folders, such as LICENSES/). A crate that declares
plain MIT but ships no text gets the MIT licence's standard text with its
authors as the copyright holders (INDEX.txt says so). The Rust standard library (built from source, linked in)
and MinGW-w64's runtime (startup code linked in) get their Debian copyright
files. DIR/INDEX.txt lists every component with its licence expression and
files. A crate without any licence file fails the run, naming it.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

LICENCE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT|UNLICENSE)", re.IGNORECASE)
MIT_TEXT = """Copyright (c) {holders}

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
# Components linked in that are not crates: (name, licence, copyright file).
TOOLCHAIN = [
    ("rust-standard-library", "MIT OR Apache-2.0", "/usr/share/doc/rust-src/copyright"),
    ("mingw-w64-runtime", "ZPL-2.1 AND MIT AND public domain", "/usr/share/doc/mingw-w64-common/copyright"),
    ("gcc-runtime-libgcc", "GPL-3.0-or-later WITH GCC-exception-3.1", "/usr/share/doc/gcc-mingw-w64-base/copyright"),
]


def linked_packages(metadata):
    """The workspace members and their normal dependencies, transitively;
    not proc-macro crates, which run in the compiler and are not linked in
    (nor what only they depend on)."""
    nodes = {node["id"]: node for node in metadata["resolve"]["nodes"]}
    proc_macros = {p["id"] for p in metadata["packages"] if any("proc-macro" in t["kind"] for t in p["targets"])}
    seen = set()
    todo = list(metadata["workspace_members"])
    while todo:
        package_id = todo.pop()
        if package_id in seen or package_id in proc_macros:
            continue
        seen.add(package_id)
        for dep in nodes[package_id]["deps"]:
            if any(kind["kind"] is None for kind in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    return [p for p in metadata["packages"] if p["id"] in seen]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", args.target],
            cwd=repo,
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
    )
    members = set(metadata["workspace_members"])
    os.makedirs(args.out, exist_ok=True)
    index = ["Licences of everything in smtpbridge.dll and smtpbridge.exe (%s)." % args.target, ""]
    missing = []
    for package in sorted(linked_packages(metadata), key=lambda p: (p["name"], p["version"])):
        if package["id"] in members:
            index.append("%s %s: %s (this project)" % (package["name"], package["version"], package["license"]))
            continue
        source_dir = os.path.dirname(package["manifest_path"])
        files = sorted(f for f in os.listdir(source_dir) if LICENCE_FILE.match(f))
        if package.get("license_file"):
            files.append(os.path.relpath(os.path.join(source_dir, package["license_file"]), source_dir))
        files = sorted(set(files))
        folder = os.path.join(args.out, "%s-%s" % (package["name"], package["version"]))
        if not files and package["license"] == "MIT" and package["authors"]:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "LICENSE-MIT"), "w", encoding="utf-8") as f:
                f.write(MIT_TEXT.format(holders=", ".join(package["authors"])))
            index.append("%s %s: MIT (the crate ships no licence file: LICENSE-MIT is the standard text, "
                         "copyright its authors)" % (package["name"], package["version"]))
            continue
        if not files:
            missing.append("%s %s (%s)" % (package["name"], package["version"], package["license"]))
            continue
        os.makedirs(folder, exist_ok=True)
        for name in files:
            source = os.path.join(source_dir, name)
            target = os.path.join(folder, os.path.basename(name))
            if os.path.isdir(source):
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copyfile(source, target)
        index.append("%s %s: %s (%s)" % (package["name"], package["version"], package["license"], ", ".join(files)))
    for name, licence, path in TOOLCHAIN:
        if not os.path.isfile(path):
            missing.append("%s (%s: %s is missing)" % (name, licence, path))
            continue
        os.makedirs(os.path.join(args.out, name), exist_ok=True)
        shutil.copyfile(path, os.path.join(args.out, name, "copyright"))
        index.append("%s: %s (copyright)" % (name, licence))
    if missing:
        sys.exit("licenses.py: no licence text found for:\n  " + "\n  ".join(missing))
    with open(os.path.join(args.out, "INDEX.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(index) + "\n")
    print("licenses.py: %d components" % (len(index) - 2))


if __name__ == "__main__":
    main()
