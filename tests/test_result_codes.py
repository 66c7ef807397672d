"""The bindings' result codes match the one list.

src/error.rs holds the one list of result codes; const assertions in
src/ffi/mod.rs tie the header's SMTPB_* constants to it, and
docs/REFERENCE.md's table is generated from it. The C++ binding uses the
header's constants. The Python exception classes and C#'s ResultCode are
written by hand, so they are checked here against the header.
"""

from __future__ import annotations

import re

from conftest import ROOT

from smtpbridge import errors


def header_codes() -> dict[str, int]:
    text = (ROOT / "include" / "smtpbridge.h").read_text(encoding="utf-8")
    codes = {name: int(value) for name, value in re.findall(r"#define (SMTPB_(?:OK|ERR_\w+)) (\d+)", text)}
    assert codes["SMTPB_OK"] == 0 and len(codes) > 10, codes
    return codes


def rust_codes() -> dict[str, int]:
    text = (ROOT / "src" / "error.rs").read_text(encoding="utf-8")
    block = text[text.index("result_codes! {") :]
    return {name: int(value) for value, name in re.findall(r"= (\d+), \"(SMTPB_\w+)\"", block)}


def test_the_header_is_the_one_list():
    assert header_codes() == rust_codes()


def test_python_has_one_exception_class_per_code():
    expected = {value: name for name, value in header_codes().items() if value != 0}
    classes = {}
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.SmtpBridgeError) and "code" in vars(cls):
            classes[cls.code] = cls
    assert sorted(classes) == sorted(expected)
    for value, cls in classes.items():
        assert (cls.__doc__ or "").startswith(expected[value] + ":"), (cls.__name__, expected[value])
        assert errors.error_class(value) is cls


def test_csharp_result_code_constants_match():
    text = (ROOT / "bindings" / "csharp" / "SmtpBridge.cs").read_text(encoding="utf-8")
    block = re.search(r"public static class ResultCode\s*\{(.*?)\}", text, re.S)
    assert block, "SmtpBridge.cs has no ResultCode class"
    csharp = {name.lower(): int(value) for name, value in re.findall(r"public const int (\w+) = (\d+);", block.group(1))}
    header = {re.sub(r"^SMTPB_(ERR_)?", "", name).replace("_", "").lower(): value for name, value in header_codes().items()}
    assert csharp == header
