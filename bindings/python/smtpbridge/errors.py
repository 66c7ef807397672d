"""Exceptions: one class per result code of the C ABI, plus loading errors.

A failed ``smtpb_`` call raises the subclass of :class:`SmtpBridgeError` for
its code; a code these bindings do not know raises the base class.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type


class SmtpBridgeError(Exception):
    """A ``smtpb_`` call returned a result code other than ``SMTPB_OK``.

    ``code`` is the result code, ``name`` its name from
    ``smtpb_result_name`` and ``message`` the text of ``smtpb_last_error``,
    read right after the failing call on the calling thread.
    ``status`` (set by :meth:`Client.send`) and ``report`` (set by
    :meth:`Client.test_connection`) hold the JSON the library wrote despite
    the failure, or None when it wrote none.
    """

    code: int
    status: Optional[Dict[str, Any]] = None
    report: Optional[Dict[str, Any]] = None

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(code, name, message)
        self.code = code
        self.name = name
        self.message = message

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


class InvalidArgumentError(SmtpBridgeError):
    """SMTPB_ERR_INVALID_ARGUMENT: NULL, invalid UTF-8, malformed JSON, unknown field, wrong JSON type."""

    code = 1


class ConfigError(SmtpBridgeError):
    """SMTPB_ERR_CONFIG: unknown key, bad value, conflicting or incomplete configuration, no profile fits."""

    code = 2


class CredentialsError(SmtpBridgeError):
    """SMTPB_ERR_CREDENTIALS: no credentials for the user, wrong master secret, tampered store."""

    code = 3


class ConnectError(SmtpBridgeError):
    """SMTPB_ERR_CONNECT: no session (DNS, TCP, greeting or EHLO failed or stalled)."""

    code = 4


class TlsError(SmtpBridgeError):
    """SMTPB_ERR_TLS: handshake or certificate failure, or STARTTLS required but not available."""

    code = 5


class AuthError(SmtpBridgeError):
    """SMTPB_ERR_AUTH: the server refused authentication, or AUTH would go over plaintext."""

    code = 6


class RejectedError(SmtpBridgeError):
    """SMTPB_ERR_REJECTED: a permanent 5xx for the message (or for every recipient)."""

    code = 7


class TransientError(SmtpBridgeError):
    """SMTPB_ERR_TRANSIENT: a 4xx, or an established session that broke or stalled."""

    code = 8


class MessageError(SmtpBridgeError):
    """SMTPB_ERR_MESSAGE: the message is invalid (address, header, attachment, body, size)."""

    code = 9


class NotFoundError(SmtpBridgeError):
    """SMTPB_ERR_NOT_FOUND: unknown message id, batch, profile or user."""

    code = 10


class LimitError(SmtpBridgeError):
    """SMTPB_ERR_LIMIT: a send limit is reached."""

    code = 11


class BlockedError(SmtpBridgeError):
    """SMTPB_ERR_BLOCKED: every recipient is on the blacklist."""

    code = 12


class SmtpIOError(SmtpBridgeError):
    """SMTPB_ERR_IO: data directory, spool, archive or file I/O failed (or a newer format)."""

    code = 13


class WaitTimeoutError(SmtpBridgeError):
    """SMTPB_ERR_TIMEOUT: a wait, flush or shutdown ran out of time; the work itself goes on."""

    code = 14


class StateError(SmtpBridgeError):
    """SMTPB_ERR_STATE: not possible in the current state (also: a call on a closed Client)."""

    code = 15


class BusyError(SmtpBridgeError):
    """SMTPB_ERR_BUSY: the data directory is held by another client."""

    code = 16


class InternalError(SmtpBridgeError):
    """SMTPB_ERR_INTERNAL: a bug in the library (a caught panic or broken invariant)."""

    code = 99


_BY_CODE: Dict[int, Type[SmtpBridgeError]] = {
    cls.code: cls
    for cls in (
        InvalidArgumentError, ConfigError, CredentialsError, ConnectError, TlsError,
        AuthError, RejectedError, TransientError, MessageError, NotFoundError, LimitError,
        BlockedError, SmtpIOError, WaitTimeoutError, StateError, BusyError, InternalError,
    )
}


def error_class(code: int) -> Type[SmtpBridgeError]:
    """Return the exception class for a result code; SmtpBridgeError if the code is unknown."""
    return _BY_CODE.get(code, SmtpBridgeError)


class LibraryLoadError(ImportError):
    """libsmtpbridge could not be loaded, or is not ABI version 1.

    ``tried`` lists each place looked at with the reason it failed.
    """

    def __init__(self, message: str, tried: Tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.tried = tried


class MissingFunctionError(AttributeError):
    """The loaded library lacks a function of these bindings (it is older than they are)."""
