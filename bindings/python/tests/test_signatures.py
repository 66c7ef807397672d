"""The signature table in _native.py against the generated C header.

Reads both as text, so it runs without the library: every function the
header declares has an entry with the same parameter and return types.
"""

import ast
import os
import re
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "smtpbridge"
ROOT = Path(__file__).resolve().parents[3]

# C type in the header -> the name SIGNATURES uses for it.
CTYPES = {
    "void": "None",
    "uint32_t": "c_uint32",
    "int32_t": "c_int32",
    "int64_t": "c_int64",
    "const char*": "c_char_p",
    "char*": "c_void_p",  # smtpb_string_free's argument: an owned string
    "char**": "char_pp",
    "void*": "c_void_p",
    "smtpb_client*": "client_p",
    "smtpb_client**": "client_pp",
    "smtpb_result": "smtpb_result",
    "smtpb_event_fn": "smtpb_event_fn",
    "smtpb_log_fn": "smtpb_log_fn",
}


HEADER = ROOT / "include" / "smtpbridge.h"


def c_type(declaration: str) -> str:
    """'const char  *key' -> 'const char*'; 'uint32_t flags' -> 'uint32_t'."""
    declaration = re.sub(r"\s*\*\s*", "*", declaration.strip())
    return re.sub(r"\w+$", "", declaration).strip()


def contract() -> Dict[str, Tuple[List[str], str]]:
    """{name: ([param types], return type)} from include/smtpbridge.h."""
    code = HEADER.read_text(encoding="utf-8")
    code = re.sub(r"/\*.*?\*/", "", code, flags=re.S)
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    code = code.replace("SMTPB_CALL", "").replace('extern "C" {', "").replace("}", "")
    functions: Dict[str, Tuple[List[str], str]] = {}
    for statement in code.split(";"):
        statement = " ".join(statement.split())
        match = re.fullmatch(r"(.+?)\s*\b(smtpb_\w+)\s*\((.*)\)", statement)
        if not match or statement.startswith("typedef"):
            continue
        returns, name, params = match.groups()
        params = [] if params.strip() == "void" else [c_type(p) for p in params.split(",")]
        functions[name] = (params, re.sub(r"\s*\*", "*", returns.strip()))
    return functions


def table() -> Dict[str, Tuple[List[str], str]]:
    """{name: ([argtype names], restype name)} from SIGNATURES in _native.py."""
    source = (PACKAGE / "_native.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "SIGNATURES":
            return {
                row.elts[0].value: (
                    [ast.get_source_segment(source, arg) for arg in row.elts[1].elts],
                    ast.get_source_segment(source, row.elts[2]),
                )
                for row in node.value.elts
            }
    raise AssertionError("SIGNATURES not found in _native.py")


def test_table_covers_exactly_the_abi_functions() -> None:
    expected, actual = contract(), table()
    assert len(expected) >= 37  # ABI 1.0 has 37; the parser must not come back empty
    assert sorted(actual) == sorted(expected)


def test_every_signature_matches_its_c_declaration() -> None:
    actual = table()
    for name, (params, returns) in contract().items():
        assert actual[name] == ([CTYPES[p] for p in params], CTYPES[returns]), name


def test_every_client_function_is_called_by_client_py() -> None:
    source = (PACKAGE / "client.py").read_text(encoding="utf-8")
    called = set(re.findall(r'"(smtpb_\w+)"', source)) | set(re.findall(r"lib\.(smtpb_\w+)", source))
    library_wide = {  # wrapped in _native.py
        "smtpb_abi_version", "smtpb_abi_minor", "smtpb_version", "smtpb_result_name", "smtpb_last_error",
        "smtpb_string_free",
    }
    assert called | library_wide == set(contract())
