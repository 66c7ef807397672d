"""The low-level escape hatch: the C functions as they are, for tests and odd needs.

``lib`` is the loaded CDLL with every signature of ``SIGNATURES`` applied on
first use; :func:`call_raw` calls a function by name with raw arguments
(bytes, None for NULL, invalid UTF-8, ``byref`` out-pointers, a Client for
its handle) and returns the raw result code without raising. Read
:func:`last_error` right after a failing call, and free owned strings with
:func:`take_string`::

    out = ctypes.c_void_p()
    code = native.call_raw("smtpb_config_get", client, b"\\xff", ctypes.byref(out))
    assert native.result_name(code) == "SMTPB_ERR_INVALID_ARGUMENT"
    print(native.last_error(), native.take_string(out))
"""

from ._native import (
    ABI_VERSION,
    ENV_VAR,
    INFINITE,
    LIBRARY_FILE,
    OK,
    OPEN_DEFAULT,
    OPEN_PAUSED,
    OPEN_SHARED,
    OPEN_SUBMIT_ONLY,
    SIGNATURES,
    Library,
    abi_version,
    call_raw,
    char_pp,
    check,
    client_p,
    client_pp,
    error,
    last_error,
    lib,
    path,
    result_name,
    smtpb_client,
    smtpb_event_fn,
    smtpb_result,
    take_string,
    version,
)

__all__ = [
    "ABI_VERSION",
    "ENV_VAR",
    "INFINITE",
    "LIBRARY_FILE",
    "OK",
    "OPEN_DEFAULT",
    "OPEN_PAUSED",
    "OPEN_SHARED",
    "OPEN_SUBMIT_ONLY",
    "SIGNATURES",
    "Library",
    "abi_version",
    "call_raw",
    "char_pp",
    "check",
    "client_p",
    "client_pp",
    "error",
    "last_error",
    "lib",
    "path",
    "result_name",
    "smtpb_client",
    "smtpb_event_fn",
    "smtpb_result",
    "take_string",
    "version",
]
