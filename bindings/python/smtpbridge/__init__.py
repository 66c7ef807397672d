"""smtpbridge: send mail by SMTP through libsmtpbridge, on ctypes alone.

A thin mirror of the C ABI (version 1): :class:`Client` has one method per
``smtpb_`` function, failures raise a :class:`SmtpBridgeError` subclass per
result code, and JSON comes and goes as dicts (their shapes are the
TypedDicts of :mod:`smtpbridge.types`). Importing loads the library
(see :mod:`smtpbridge.native`) and raises :class:`LibraryLoadError` if it
cannot be found or is not ABI version 1.
"""

from . import native, types
from ._native import ABI_VERSION, INFINITE, abi_minor, abi_version, result_name, version
from .client import Client, Message
from .errors import (
    AuthError,
    BlockedError,
    BusyError,
    ConfigError,
    ConnectError,
    CredentialsError,
    InternalError,
    InvalidArgumentError,
    LibraryLoadError,
    LimitError,
    MessageError,
    MissingFunctionError,
    NotFoundError,
    RejectedError,
    SmtpBridgeError,
    SmtpIOError,
    StateError,
    TlsError,
    TransientError,
    WaitTimeoutError,
)

from .message import mime_message

__version__ = "1.2.0"

__all__ = [
    "ABI_VERSION",
    "INFINITE",
    "AuthError",
    "BlockedError",
    "BusyError",
    "Client",
    "ConfigError",
    "ConnectError",
    "CredentialsError",
    "InternalError",
    "InvalidArgumentError",
    "LibraryLoadError",
    "LimitError",
    "Message",
    "MessageError",
    "MissingFunctionError",
    "NotFoundError",
    "RejectedError",
    "SmtpBridgeError",
    "SmtpIOError",
    "StateError",
    "TlsError",
    "TransientError",
    "WaitTimeoutError",
    "__version__",
    "abi_minor",
    "abi_version",
    "mime_message",
    "native",
    "result_name",
    "types",
    "version",
]
