"""Message JSON from Python values: dicts, ``email.message.EmailMessage``,
``os.PathLike`` attachment paths; and errors that name the field.

The binding serialises the dicts it is given, so a line and column in that
JSON mean nothing to the caller: a value that cannot be serialised raises
TypeError or ValueError naming its field (``attachments[0].path``), and
the library's complaint about JSON the binding built is rewritten to name
the field at that position instead of the column.
"""

from __future__ import annotations

import base64
import email.message
import json
import os
import re
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

EmailMessage = email.message.Message
"""``email.message.EmailMessage`` (and the older ``Message``), sent as the bytes it renders."""

Span = Tuple[int, int, str]
"""A value's (start byte, end byte, field path) in serialised JSON."""

_POSITION = re.compile(r" at line (\d+) column (\d+)$")
_PART_LISTS = ("attachments", "inline")


def mime_message(message: EmailMessage, **fields: Any) -> "dict[str, Any]":
    """The message JSON for a complete RFC 5322 message: ``{"mime_base64", **fields}``.

    The library sends the bytes as they are (CRLF line ends), taking
    ``from``/``to``/``cc``/``bcc`` from the headers unless ``fields`` gives
    them, and strips Bcc from the bytes. ``fields`` may be ``user``,
    ``profile``, ``reference``, ``idempotency_key``, ``archive``, ``from``,
    ``to``, ``cc``, ``bcc``; a body, attachments or headers beside it are
    refused by the library.
    """
    rendered = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return {"mime_base64": base64.b64encode(rendered).decode("ascii"), **fields}


def _part(item: Any) -> Any:
    """An attachment or inline entry: a bare path becomes {"path": ...}; a PathLike path is made absolute."""
    if isinstance(item, os.PathLike):
        return {"path": os.path.abspath(os.fspath(item))}
    if isinstance(item, Mapping) and isinstance(item.get("path"), os.PathLike):
        return {**item, "path": os.path.abspath(os.fspath(item["path"]))}
    return item


def prepare(message: Any) -> Any:
    """The message as JSON-ready values: an EmailMessage as ``mime_message``,
    PathLike attachment and inline paths as absolute strings."""
    if isinstance(message, email.message.Message):
        return mime_message(message)
    if not isinstance(message, Mapping):
        return message  # not an object: the library says so
    prepared = dict(message)
    for field in _PART_LISTS:
        parts = prepared.get(field)
        if isinstance(parts, Sequence) and not isinstance(parts, (str, bytes)):
            prepared[field] = [_part(item) for item in parts]
    return prepared


def _path(parent: str, key: Union[str, int]) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def serialise(value: Any, what: str) -> Tuple[str, List[Span]]:
    """Compact JSON of ``value`` (non-ASCII kept) and the byte span of every field.

    Raises TypeError (a value JSON has no type for) or ValueError (NaN,
    infinity, a non-string key) naming ``what`` and the field.
    """
    spans: List[Span] = []
    pieces: List[str] = []
    offset = 0

    def emit(text: str) -> None:
        nonlocal offset
        pieces.append(text)
        offset += len(text.encode("utf-8", "surrogatepass"))

    def walk(item: Any, path: str) -> None:
        start = offset
        where = f"{what} field {path}" if path else what
        if isinstance(item, Mapping):
            emit("{")
            for index, (key, child) in enumerate(item.items()):
                if not isinstance(key, str):
                    raise TypeError(f"{where}: keys must be str, not {type(key).__name__} ({key!r})")
                emit(("," if index else "") + json.dumps(key, ensure_ascii=False) + ":")
                walk(child, _path(path, key))
            emit("}")
        elif isinstance(item, (list, tuple)):
            emit("[")
            for index, child in enumerate(item):
                if index:
                    emit(",")
                walk(child, _path(path, index))
            emit("]")
        elif isinstance(item, os.PathLike):
            emit(json.dumps(os.fspath(item), ensure_ascii=False))
        elif item is None or isinstance(item, (str, bool, int, float)):
            try:
                emit(json.dumps(item, ensure_ascii=False, allow_nan=False))
            except ValueError:
                raise ValueError(f"{where}: {item!r} has no JSON form") from None
        else:
            raise TypeError(
                f"{where}: {type(item).__name__} is not JSON serialisable "
                "(use str, int, float, bool, None, list, dict or os.PathLike)"
            )
        spans.append((start, offset, path))

    walk(value, "")
    return "".join(pieces), spans


def field_at(spans: Sequence[Span], text: str, line: int, column: int) -> Optional[str]:
    """The innermost field whose JSON holds ``line``/``column`` of ``text``.

    serde_json counts lines from 1 and columns in bytes, and reports the
    last byte it consumed: the byte after it (``at``) is where the faulty
    value starts (a sequence or map it had not entered) or the byte just
    past a scalar it read; spans include their end, so both find the value.
    """
    lines = text.encode("utf-8", "surrogatepass").split(b"\n")
    if not 1 <= line <= len(lines):
        return None
    at = sum(len(earlier) + 1 for earlier in lines[: line - 1]) + column
    best: Optional[Span] = None
    for start, end, path in spans:
        if path and start <= at <= end and (best is None or end - start < best[1] - best[0]):
            best = (start, end, path)
    return best[2] if best else None


def name_the_field(message: str, what: str, text: str, spans: Sequence[Span]) -> Optional[str]:
    """The library's error about JSON the binding built, naming the field instead of the position.

    Only an error about this text (it starts "<what> JSON: "): a merge builds
    two, and a position in one says nothing about the other.
    """
    prefix = f"{what} JSON: "
    found = _POSITION.search(message)
    if not message.startswith(prefix) or not found:
        return None
    field = field_at(spans, text, int(found.group(1)), int(found.group(2)))
    if field is None:
        return None
    return f"{what} field {field}: {message[len(prefix): found.start()]}"
