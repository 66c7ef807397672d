"""The native boundary: finding libsmtpbridge, its C signatures, raw calls.

The one place that declares the C types and signatures. The library is
looked for, in order:

1. ``SMTPBRIDGE_LIBRARY``, the library's full path. When it is set it is the
   only place looked at, so a test never runs a stale copy by mistake;
2. the library file beside this package (``libsmtpbridge.so``,
   ``smtpbridge.dll`` or ``libsmtpbridge.dylib``);
3. ``ctypes.util.find_library("smtpbridge")``.

Importing fails with :class:`LibraryLoadError`, listing each place tried
and why it failed, or naming the library whose ``smtpb_abi_version()`` is
not 1. Functions are bound on first use from :data:`SIGNATURES`, so a
library that lacks a newer function still loads; using that function raises
:class:`MissingFunctionError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from ctypes import CFUNCTYPE, POINTER, c_char_p, c_int32, c_int64, c_uint32, c_void_p
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .errors import LibraryLoadError, MissingFunctionError, SmtpBridgeError, error_class

ABI_VERSION = 1
"""The ABI version these bindings are written against (``smtpb_abi_version()``)."""

OK = 0
"""``SMTPB_OK``."""

OPEN_DEFAULT = 0
"""``SMTPB_OPEN_DEFAULT``: resume delivery of what the spool holds."""

OPEN_PAUSED = 1
"""``SMTPB_OPEN_PAUSED``: open with the outbox paused until ``smtpb_outbox_resume``."""

OPEN_SHARED = 2
"""``SMTPB_OPEN_SHARED``: other processes of this machine may open the same data_dir (ABI §17)."""

OPEN_SUBMIT_ONLY = 4
"""``SMTPB_OPEN_SUBMIT_ONLY``: this client never delivers; it queues, reads and manages."""

INFINITE = 0xFFFFFFFF
"""A timeout of ``UINT32_MAX`` milliseconds: no limit."""

ENV_VAR = "SMTPBRIDGE_LIBRARY"
"""The environment variable holding the library's full path."""

LIBRARY_FILE = {"win32": "smtpbridge.dll", "darwin": "libsmtpbridge.dylib"}.get(
    sys.platform, "libsmtpbridge.so"
)
"""The library's file name on this platform."""


class smtpb_client(ctypes.Structure):
    """The opaque ``smtpb_client``; only ever handled through a pointer."""


client_p = POINTER(smtpb_client)
client_pp = POINTER(client_p)
smtpb_result = c_int32
# An owned string comes back through `char **` received as `void *`: a
# c_char_p would copy the text and drop the pointer, which then leaks.
char_pp = POINTER(c_void_p)
smtpb_event_fn = CFUNCTYPE(None, c_char_p, c_void_p)
"""``void (*)(const char *event_json, void *user_data)``, cdecl; NULL is ``smtpb_event_fn()``."""
smtpb_log_fn = CFUNCTYPE(None, c_char_p, c_void_p)
"""``void (*)(const char *line_json, void *user_data)``, cdecl; NULL is ``smtpb_log_fn()``."""

# fmt: off
SIGNATURES: Tuple[Tuple[str, Tuple[Any, ...], Any], ...] = (
    # name                          argtypes                                           restype
    ("smtpb_abi_version",           (),                                                c_uint32),
    ("smtpb_abi_minor",             (),                                                c_uint32),
    ("smtpb_version",               (),                                                c_char_p),
    ("smtpb_result_name",           (smtpb_result,),                                   c_char_p),
    ("smtpb_last_error",            (),                                                c_char_p),
    ("smtpb_string_free",           (c_void_p,),                                       None),
    ("smtpb_client_open",           (c_char_p, c_char_p, c_uint32, client_pp),         smtpb_result),
    ("smtpb_client_shutdown",       (client_p, c_uint32),                              smtpb_result),
    ("smtpb_client_close",          (client_p,),                                       None),
    ("smtpb_config_set",            (client_p, c_char_p, c_char_p),                    smtpb_result),
    ("smtpb_config_get",            (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_config_import_keys",    (client_p, c_char_p),                              smtpb_result),
    ("smtpb_config_load_json",      (client_p, c_char_p),                              smtpb_result),
    ("smtpb_config_export_json",    (client_p, char_pp),                               smtpb_result),
    ("smtpb_credentials_set",       (client_p, c_char_p, c_char_p, c_char_p),          smtpb_result),
    ("smtpb_credentials_set_oauth2", (client_p, c_char_p, c_char_p, c_char_p, c_int64), smtpb_result),
    ("smtpb_credentials_remove",    (client_p, c_char_p),                              smtpb_result),
    ("smtpb_credentials_masked",    (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_send",                  (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_enqueue",               (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_merge",                 (client_p, c_char_p, c_char_p, char_pp),           smtpb_result),
    ("smtpb_test_connection",       (client_p, c_char_p, c_char_p, char_pp),           smtpb_result),
    ("smtpb_status",                (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_batch_status",          (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_outbox_list",           (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_outbox_stats",          (client_p, char_pp),                               smtpb_result),
    ("smtpb_outbox_query",          (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_outbox_purge",          (client_p, c_char_p, c_char_p, char_pp),           smtpb_result),
    ("smtpb_wait",                  (client_p, c_char_p, c_uint32, char_pp),           smtpb_result),
    ("smtpb_flush",                 (client_p, c_uint32),                              smtpb_result),
    ("smtpb_cancel",                (client_p, c_char_p),                              smtpb_result),
    ("smtpb_batch_cancel",          (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_retry",                 (client_p, c_char_p),                              smtpb_result),
    ("smtpb_outbox_pause",          (client_p, c_char_p),                              smtpb_result),
    ("smtpb_outbox_resume",         (client_p, c_char_p),                              smtpb_result),
    ("smtpb_limits_reset",          (client_p, c_char_p),                              smtpb_result),
    ("smtpb_blacklist_add",         (client_p, c_char_p),                              smtpb_result),
    ("smtpb_blacklist_remove",      (client_p, c_char_p),                              smtpb_result),
    ("smtpb_blacklist_list",        (client_p, char_pp),                               smtpb_result),
    ("smtpb_set_event_callback",    (client_p, smtpb_event_fn, c_void_p),              smtpb_result),
    ("smtpb_set_event_callback_all", (client_p, smtpb_event_fn, c_void_p),             smtpb_result),
    # 1.1: diagnostics
    ("smtpb_set_log_callback",      (client_p, smtpb_log_fn, c_int32, c_void_p),       smtpb_result),
    ("smtpb_transcript",            (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_probe",                 (client_p, c_char_p, char_pp),                     smtpb_result),
    # 1.1: OAuth2 sign-in
    ("smtpb_oauth2_begin",          (client_p, c_char_p, c_char_p, c_char_p, char_pp), smtpb_result),
    ("smtpb_oauth2_complete",       (client_p, c_char_p, c_uint32, char_pp),           smtpb_result),
    ("smtpb_oauth2_cancel",         (client_p, c_char_p),                              smtpb_result),
    ("smtpb_credentials_set_oauth2_refresh", (client_p, c_char_p, c_char_p, c_char_p), smtpb_result),
    # 1.2: looking before sending
    ("smtpb_render",                (client_p, c_char_p, char_pp),                     smtpb_result),
    ("smtpb_validate",              (client_p, c_char_p),                              smtpb_result),
)
"""Every function of the C ABI as ``(name, argtypes, restype)``, in the order of include/smtpbridge.h."""
# fmt: on

_SIGNATURE: Dict[str, Tuple[Tuple[Any, ...], Any]] = {
    name: (argtypes, restype) for name, argtypes, restype in SIGNATURES
}


class Library(ctypes.CDLL):
    """libsmtpbridge as a CDLL whose functions take their signature from SIGNATURES.

    A function is looked up and typed on first attribute access, then cached.
    Names outside SIGNATURES raise AttributeError, so no call goes out with
    ctypes' default ``int`` types; a function the library lacks raises
    MissingFunctionError (an AttributeError, so ``hasattr`` works).
    """

    def __getattr__(self, name: str) -> Any:
        try:
            argtypes, restype = _SIGNATURE[name]
        except KeyError:
            raise AttributeError(f"{name} is not a function of the smtpbridge ABI") from None
        try:
            function = self[name]
        except AttributeError:
            raise MissingFunctionError(
                f"{self._name} has no {name}: the library is older than these bindings"
            ) from None
        function.argtypes = argtypes
        function.restype = restype
        setattr(self, name, function)
        return function


def _candidates() -> Iterator[Tuple[str, Optional[str]]]:
    """Yield (description, path or name to load, None if none) for each place, in order."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        yield f"{ENV_VAR}={explicit}", explicit
        return
    beside = str(Path(__file__).resolve().parent / LIBRARY_FILE)
    yield beside, beside
    found = ctypes.util.find_library("smtpbridge")
    yield f'ctypes.util.find_library("smtpbridge") = {found}', found


def _load() -> Tuple[Library, str]:
    """Load the library and check its ABI version; raise LibraryLoadError otherwise."""
    tried: List[str] = []
    for place, path in _candidates():
        if path is None:
            tried.append(place)
            continue
        if os.path.dirname(path) and not os.path.isfile(path):
            tried.append(f"{place}: no such file")
            continue
        try:
            library = Library(path)
        except OSError as exc:
            tried.append(f"{place}: {exc}")
            continue
        try:
            found = library.smtpb_abi_version()
        except MissingFunctionError:
            raise LibraryLoadError(f"{path} is not libsmtpbridge: no smtpb_abi_version", (place,)) from None
        if found != ABI_VERSION:
            raise LibraryLoadError(
                f"{path} has ABI version {found}; these bindings need {ABI_VERSION}", (place,)
            )
        return library, path
    hint = (
        f"{ENV_VAR} is set, so nothing else was tried."
        if os.environ.get(ENV_VAR)
        else f"Set {ENV_VAR} to the library's full path, or put {LIBRARY_FILE} beside the package."
    )
    raise LibraryLoadError(
        "libsmtpbridge not found; tried:\n  " + "\n  ".join(tried) + "\n" + hint, tuple(tried)
    )


lib, path = _load()
"""The loaded :class:`Library`, and the path (or, from find_library, the name) it came from."""


def call_raw(name: str, *args: Any) -> Any:
    """Call the C function ``name`` with exactly ``args`` and return its result.

    No conversion and no check: pass bytes or None for ``const char *``,
    ``ctypes.byref(ctypes.c_void_p())`` for ``char **`` (then
    :func:`take_string`), a Client for ``smtpb_client *``. Raises
    AttributeError for a name outside SIGNATURES, MissingFunctionError if
    the library lacks it, ctypes.ArgumentError for arguments of the wrong type.
    """
    return getattr(lib, name)(*args)


def take_string(out: c_void_p) -> Optional[str]:
    """Copy an owned returned string, free it with ``smtpb_string_free``, and set ``out`` to NULL.

    Returns None for NULL. Raises UnicodeDecodeError (after freeing) if the
    text is not UTF-8.
    """
    if not out.value:
        return None
    try:
        data = ctypes.string_at(out.value)
    finally:
        lib.smtpb_string_free(out.value)
        out.value = None
    return data.decode("utf-8")


def last_error() -> str:
    """``smtpb_last_error()``: the message of the most recent failed call on this thread."""
    return (lib.smtpb_last_error() or b"").decode("utf-8", "replace")


def result_name(code: int) -> str:
    """``smtpb_result_name(code)``: ``"SMTPB_ERR_TLS"``; ``"SMTPB_ERR_UNKNOWN"`` for unknown codes."""
    name: str = lib.smtpb_result_name(code).decode("utf-8")
    return name


def version() -> str:
    """``smtpb_version()``: the library's crate version."""
    text: str = lib.smtpb_version().decode("utf-8")
    return text


def abi_version() -> int:
    """``smtpb_abi_version()``: 1 for every library these bindings load."""
    return int(lib.smtpb_abi_version())


def abi_minor() -> int:
    """``smtpb_abi_minor()``: 2 when the version 1.2 functions exist, 1 for a 1.1 library, 0 for a 1.0 one (which lacks it)."""
    try:
        return int(lib.smtpb_abi_minor())
    except MissingFunctionError:
        return 0


def error(code: int, message: Optional[str] = None) -> SmtpBridgeError:
    """Build the exception for a failed call's result code.

    The message is ``smtpb_last_error()`` unless given, so call this right
    after the failing call, on the same thread, before any other ``smtpb_``
    call.
    """
    text = last_error() if message is None else message
    return error_class(code)(code, result_name(code), text)


def check(code: int) -> None:
    """Raise the exception for ``code`` unless it is SMTPB_OK."""
    if code != OK:
        raise error(code)
