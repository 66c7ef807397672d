"""The bindings' typed layers against docs/schema/ (the JSON Schemas the
library's output types generate; a unit test keeps them current): every
TypedDict of bindings/python and every typed class of
bindings/csharp/SmtpBridge.Typed.cs has exactly the fields of its shape,
each required when the shape always has it, each of its type, nullable
exactly when the shape allows null."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from smtpbridge import types as py

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "docs" / "schema"
TYPED_CS = ROOT / "bindings" / "csharp" / "SmtpBridge.Typed.cs"

# TypedDict -> (schema file, path inside it: "items" for an array's element).
PYTHON = {
    "Status": ("status", ""),
    "QueryPage": ("query_page", ""),
    "OutboxStats": ("outbox_stats", ""),
    "BatchStatus": ("batch_status", ""),
    "BatchCancelled": ("batch_cancel", ""),
    "MergeResult": ("merge", ""),
    "TestReport": ("test_report", ""),
    "ProbeReport": ("probe_report", ""),
    "TranscriptAttempt": ("transcript", "items"),
    "MaskedCredential": ("credentials_masked", ""),
    "OAuth2Flow": ("oauth2_begin", ""),
    "SignedIn": ("oauth2_complete", ""),
    "Event": ("event", ""),
    "LogLine": ("log_line", ""),
}

CSHARP = {
    "MessageStatus": "status",
    "BatchResult": "merge",
    "TestReport": "test_report",
    "MessageEvent": "event",
}


class Shape:
    """An object schema: its fields, whether each is always there, and
    each field's schema (references resolved against the file's $defs)."""

    def __init__(self, schema: Dict[str, Any], defs: Dict[str, Any]) -> None:
        self.defs = defs
        schema = self.resolve(schema)
        self.fields: Dict[str, Dict[str, Any]] = dict(schema.get("properties", {}))
        self.required = set(schema.get("required", []))
        variants = [self.resolve(v) for v in schema.get("oneOf", schema.get("anyOf", []))]
        if variants:
            # A tagged union: a field is always there when every variant has it.
            for variant in variants:
                self.fields.update(variant.get("properties", {}))
            self.required |= set.intersection(*(set(v.get("required", [])) for v in variants))

    def resolve(self, schema: Dict[str, Any]) -> Dict[str, Any]:
        while "$ref" in schema:
            schema = self.defs[schema["$ref"].split("/")[-1]]
        return schema

    def split_null(self, schema: Dict[str, Any]) -> Tuple[Dict[str, Any], bool]:
        """The schema without null, and whether it allowed null."""
        schema = self.resolve(schema)
        kinds = schema.get("type")
        if isinstance(kinds, list) and "null" in kinds:
            rest = [k for k in kinds if k != "null"]
            return dict(schema, type=rest[0] if len(rest) == 1 else rest), True
        options = schema.get("anyOf") or schema.get("oneOf") or []
        if any(self.resolve(o).get("type") == "null" for o in options):
            rest = [o for o in options if self.resolve(o).get("type") != "null"]
            return (self.resolve(rest[0]) if len(rest) == 1 else {"anyOf": rest}), True
        return schema, False


def load(name: str, path: str = "") -> Shape:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text(encoding="utf-8"))
    shape = Shape(schema, schema.get("$defs", {}))
    node = schema
    for step in filter(None, path.split("/")):
        node = node[step]
    return Shape(node, schema.get("$defs", {}))


# --- Python -----------------------------------------------------------------

def is_typeddict(hint: Any) -> bool:
    return isinstance(hint, type) and hasattr(hint, "__required_keys__")


def python_problems(cls: Any, shape: Shape, where: str) -> List[str]:
    hints = typing.get_type_hints(cls, vars(py))
    problems = []
    if set(hints) != set(shape.fields):
        problems.append(f"{where}: missing {sorted(set(shape.fields) - set(hints))}, "
                        f"not in the shape {sorted(set(hints) - set(shape.fields))}")
    for name in sorted(set(hints) & set(shape.fields)):
        required = name in cls.__required_keys__
        if required != (name in shape.required):
            problems.append(f"{where}.{name}: {'required' if required else 'not required'} in the TypedDict, "
                            f"{'always' if name in shape.required else 'not always'} in the shape")
        problems += python_type_problems(hints[name], shape.fields[name], shape, f"{where}.{name}")
    return problems


def python_type_problems(hint: Any, schema: Dict[str, Any], shape: Shape, where: str) -> List[str]:
    schema, nullable = shape.split_null(schema)
    args = typing.get_args(hint)
    optional = typing.get_origin(hint) is typing.Union and type(None) in args
    if optional != nullable:
        return [f"{where}: {hint} but the shape {'allows' if nullable else 'never has'} null"]
    if optional:
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]
    kind = schema.get("type")
    origin = typing.get_origin(hint)
    if kind == "string":
        values = schema.get("enum") or ([schema["const"]] if "const" in schema else None)
        if origin is typing.Literal:
            ok = values is not None and set(typing.get_args(hint)) == set(values)
        else:
            ok = hint is str
    elif kind == "integer":
        ok = hint is int
    elif kind == "boolean":
        ok = hint is bool
    elif kind == "array":
        if origin is not list:
            return [f"{where}: {hint} for an array"]
        return python_type_problems(typing.get_args(hint)[0], schema["items"], shape, f"{where}[]")
    elif kind == "object" and "properties" in schema or "oneOf" in schema:
        if not is_typeddict(hint):
            return [f"{where}: {hint} for an object of fields {sorted(schema.get('properties', {}))}"]
        return python_problems(hint, Shape(schema, shape.defs), f"{where}")
    elif kind == "object":
        if origin is not dict:
            return [f"{where}: {hint} for a map"]
        value = schema.get("additionalProperties", {})
        return python_type_problems(typing.get_args(hint)[1], value, shape, f"{where}{{}}") if value else []
    else:
        ok = hint is object
    return [] if ok else [f"{where}: {hint} for {json.dumps(schema)[:120]}"]


@pytest.mark.parametrize("name", sorted(PYTHON))
def test_python_typeddict_matches_the_schema(name: str) -> None:
    file, path = PYTHON[name]
    assert python_problems(getattr(py, name), load(file, path), name) == []


# --- C# ---------------------------------------------------------------------

def csharp_classes() -> Dict[str, Dict[str, str]]:
    """Each [DataContract] class of the typed layer: JSON name -> C# type."""
    text = TYPED_CS.read_text(encoding="utf-8")
    classes = {}
    for match in re.finditer(r"\[DataContract\]\s*public sealed class (\w+)\s*\{(.*?)\n    \}", text, re.S):
        members = re.findall(r'\[DataMember\(Name = "(\w+)"\)\]\s*public ([\w<>?]+) \w+', match.group(2))
        classes[match.group(1)] = dict(members)
    return classes


def csharp_problems(cls: str, shape: Shape, classes: Dict[str, Dict[str, str]], where: str) -> List[str]:
    members = classes[cls]
    problems = []
    if set(members) != set(shape.fields):
        problems.append(f"{where}: missing {sorted(set(shape.fields) - set(members))}, "
                        f"not in the shape {sorted(set(members) - set(shape.fields))}")
    for name in sorted(set(members) & set(shape.fields)):
        problems += csharp_type_problems(members[name], shape.fields[name], shape, classes, f"{where}.{name}")
    return problems


def csharp_type_problems(cs: str, schema: Dict[str, Any], shape: Shape, classes: Dict[str, Dict[str, str]],
                         where: str) -> List[str]:
    schema, nullable = shape.split_null(schema)
    kind = schema.get("type")
    value_type = cs.rstrip("?")
    if value_type in ("int", "long", "bool") and cs.endswith("?") != nullable:
        return [f"{where}: {cs} but the shape {'allows' if nullable else 'never has'} null"]
    if kind == "string":
        ok = cs == "string"
    elif kind == "integer":
        ok = value_type in ("int", "long")
    elif kind == "boolean":
        ok = value_type == "bool"
    elif kind == "array":
        inner = re.fullmatch(r"List<(\w+)>", cs)
        if not inner:
            return [f"{where}: {cs} for an array"]
        return csharp_type_problems(inner.group(1), schema["items"], shape, classes, f"{where}[]")
    elif kind == "object" and "properties" in schema:
        if cs not in classes:
            return [f"{where}: {cs} is not a [DataContract] class of the typed layer"]
        return csharp_problems(cs, Shape(schema, shape.defs), classes, where)
    else:
        ok = False
    return [] if ok else [f"{where}: {cs} for {json.dumps(schema)[:120]}"]


@pytest.mark.parametrize("name", sorted(CSHARP))
def test_csharp_class_matches_the_schema(name: str) -> None:
    classes = csharp_classes()
    assert name in classes, f"SmtpBridge.Typed.cs has no [DataContract] class {name}"
    assert csharp_problems(name, load(CSHARP[name]), classes, name) == []


def test_every_schema_file_is_a_shape_of_the_library() -> None:
    """docs/schema holds the files the unit test writes, and nothing else
    names one that is not there."""
    files = {p.stem for p in SCHEMAS.glob("*.json")}
    used = {file for file, _ in PYTHON.values()} | set(CSHARP.values())
    assert used <= files
