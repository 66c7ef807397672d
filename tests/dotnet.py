"""Compiling C# with Mono's mcs and running the result on both runtimes a
.NET host may use: Mono (``mono``) and CoreCLR (.NET Core 3.1, the
``dotnet`` host of the PyPI wheel ``dotnetcore2``; .NET 5+ is the same
runtime).

CoreCLR runs an mcs-built ``.exe`` given a ``<name>.runtimeconfig.json``
beside it that names ``Microsoft.NETCore.App`` 3.1.23. Two things differ
from Mono, and both are handled here or by the callers:

- CoreCLR ignores Mono's ``<dllmap>`` config: ``[DllImport("smtpbridge")]``
  finds ``libsmtpbridge.so`` beside the assembly, else through the system's
  search (``LD_LIBRARY_PATH``).
- .NET Core 3.1 looks for ICU only up to the versions it knew of and does
  not find Debian 12's libicu72: it then stops with "Couldn't find a valid
  ICU package". The runtimeconfig switches globalization to invariant mode
  (what ``DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1`` does); the binding
  converts UTF-8 by hand and does not depend on culture data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Optional

import pytest

TIMEOUT_S = 120
RUNTIMES = ("mono", "coreclr")
CORECLR_VERSION = "3.1.23"


def mcs(*args: str) -> None:
    """Compiles with mcs, warnings as errors."""
    done = subprocess.run(["mcs", "-warn:4", "-warnaserror", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr


def dotnet_host() -> Path:
    """The ``dotnet`` host of the ``dotnetcore2`` wheel (tests/requirements.txt)."""
    try:
        import dotnetcore2  # type: ignore[import-untyped]
    except ImportError:
        pytest.fail("the CoreCLR runs need the PyPI package dotnetcore2 (pip install -r tests/requirements.txt, "
                    "or source scripts/env.sh)", pytrace=False)
    return Path(dotnetcore2.__file__).parent / "bin" / "dotnet"


def require(runtime: str) -> None:
    """Fails (does not skip) when a runtime's tools are missing."""
    if runtime == "coreclr":
        dotnet_host()
    missing = [tool for tool in ("mcs", "mono") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install mono-mcs mono-runtime mono-devel "
                    "libmono-system-runtime-serialization4.0-cil (or run .ci/run)", pytrace=False)


def run(runtime: str, exe: Path, *args: str, library_dir: Optional[Path] = None,
        cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    """Runs ``exe`` on ``runtime``; ``library_dir`` goes on LD_LIBRARY_PATH
    (None: the native library must be found beside the program)."""
    env: Dict[str, str] = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    if library_dir is not None:
        env["LD_LIBRARY_PATH"] = str(library_dir)
    if runtime == "mono":
        command = ["mono", str(exe), *args]
    else:
        config = {"runtimeOptions": {
            "framework": {"name": "Microsoft.NETCore.App", "version": CORECLR_VERSION},
            "configProperties": {"System.Globalization.Invariant": True},
        }}
        exe.with_suffix(".runtimeconfig.json").write_text(json.dumps(config, indent=2))
        env["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1"
        command = [str(dotnet_host()), str(exe), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env, cwd=cwd)


# --- the NuGet package ----------------------------------------------------------

PROJECT = """<?xml version="1.0" encoding="utf-8"?>
<!-- A .NET Framework 4.6.2 program as NuGet 2.x leaves a packages.config
     project after `nuget install SmtpBridge`: a Reference to lib/net462 and an
     Import of the package's build/SmtpBridge.targets. -->
<Project ToolsVersion="4.0" DefaultTargets="Build" xmlns="http://schemas.microsoft.com/developer/msbuild/2003">
  <PropertyGroup>
    <Configuration>Release</Configuration>
    <Platform Condition="'$(Platform)' == ''">AnyCPU</Platform>
    <PlatformTarget>$(Platform)</PlatformTarget>
    <OutputType>Exe</OutputType>
    <AssemblyName>SendMail</AssemblyName>
    <TargetFrameworkVersion>v4.6.2</TargetFrameworkVersion>
    <TreatWarningsAsErrors>true</TreatWarningsAsErrors>
  </PropertyGroup>
  <ItemGroup>
    <Reference Include="System" />
    <Reference Include="SmtpBridge.Net"><HintPath>{package}/lib/net462/SmtpBridge.Net.dll</HintPath></Reference>
    <Compile Include="{source}" />
  </ItemGroup>
  <Import Project="$(MSBuildToolsPath)/Microsoft.CSharp.targets" />
  <Import Project="{package}/build/SmtpBridge.targets" />
</Project>
"""


def nuget_install(source: Path, packages: Path, version: str) -> Path:
    """`nuget install SmtpBridge -Source SOURCE` (Debian's NuGet 2.8.7 on
    Mono) into PACKAGES; returns the installed package's folder."""
    if shutil.which("nuget") is None:
        pytest.fail("missing nuget: apt-get install nuget (or run .ci/run)", pytrace=False)
    done = subprocess.run(["nuget", "install", "SmtpBridge", "-Version", version, "-Source", str(source),
                           "-OutputDirectory", str(packages), "-NoCache", "-NonInteractive"],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Successfully installed 'SmtpBridge {version}'" in done.stdout, done.stdout
    return packages / f"SmtpBridge.{version}"


def xbuild(package: Path, source: Path, project_dir: Path, platform: str, *properties: str) -> Path:
    """Builds SOURCE as a .NET Framework program against the installed
    PACKAGE with Mono's xbuild for PLATFORM; returns the output folder."""
    if shutil.which("xbuild") is None:
        pytest.fail("missing xbuild: apt-get install mono-devel (or run .ci/run)", pytrace=False)
    project_dir.mkdir(parents=True, exist_ok=True)
    project = project_dir / "SendMail.csproj"
    project.write_text(PROJECT.format(package=package, source=source))
    out = project_dir / "bin" / platform
    done = subprocess.run(["xbuild", "/nologo", "/verbosity:minimal", f"/p:Platform={platform}",
                           f"/p:OutputPath={out}/", *(f"/p:{p}" for p in properties), str(project)],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr
    return out
