"""Client: one ``smtpb_client``, with one method per C function."""

from __future__ import annotations

import itertools
import json
import logging
import os
import weakref
from contextlib import contextmanager
from ctypes import byref, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union, cast

from . import _native as native
from ._native import OPEN_DEFAULT, OPEN_PAUSED, OPEN_SHARED, OPEN_SUBMIT_ONLY, OK, client_p, smtpb_event_fn, smtpb_log_fn
from .errors import InternalError, InvalidArgumentError, StateError
from .message import EmailMessage, Span, name_the_field, prepare, serialise
from .types import (
    BatchCancelled,
    BatchStatus,
    Event,
    MaskedCredential,
    LogLine,
    MergeResult,
    OAuth2Flow,
    OutboxStats,
    ProbeReport,
    QueryPage,
    SignedIn,
    Status,
    TestReport,
    TranscriptAttempt,
)

if TYPE_CHECKING:
    from ctypes import _Pointer

    from ._native import smtpb_client

    Handle = _Pointer[smtpb_client]

StrPath = Union[str, "os.PathLike[str]"]
JsonObject = Union[str, Mapping[str, Any]]
"""A JSON object given as a dict (serialised here) or as JSON text."""
ConfigValue = Union[str, bool, int, "os.PathLike[str]", None]
"""A configuration value: bools become ``true``/``false``, ints decimal, None the default."""
Message = Union[str, Mapping[str, Any], EmailMessage]
"""A message: JSON text, a dict (attachment paths may be os.PathLike), or an
``email.message.EmailMessage`` sent as the bytes it renders."""
EventCallback = Callable[[Event], None]

_UINT32_MAX = 0xFFFFFFFF
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _text(value: Optional[str], what: str) -> Optional[bytes]:
    """Encode a string argument as UTF-8; None stays NULL. Raises TypeError, ValueError (NUL)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str or None, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{what} contains a NUL character")
    return value.encode("utf-8")


def _path(value: Optional[StrPath], what: str) -> Optional[bytes]:
    """Encode a path argument (str or os.PathLike) as UTF-8; None stays NULL."""
    return _text(None if value is None else os.fspath(value), what)


def _json_text(value: Union[str, Mapping[str, Any], Sequence[Any]], what: str) -> Optional[bytes]:
    """Encode JSON text as given, or serialise a dict or list (non-ASCII kept as is)."""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False)
    return _text(value, what)


class _Built:
    """JSON the binding serialised for one argument, to name the field of the library's complaint."""

    def __init__(self, what: str, text: str, spans: List[Span]) -> None:
        self.what, self.text, self.spans = what, text, spans


def _built(value: Any, what: str, built: List[_Built]) -> Optional[bytes]:
    """Encode a JSON argument: text as given; else serialised here, remembering each field's span."""
    if isinstance(value, str):
        return _text(value, what)
    text, spans = serialise(value, what)
    built.append(_Built(what, text, spans))
    return _text(text, what)


@contextmanager
def _naming_fields(built: List[_Built]) -> Iterator[None]:
    """Rewrite an InvalidArgumentError that points at a line and column of JSON the binding built."""
    try:
        yield
    except InvalidArgumentError as e:
        for b in built:
            named = name_the_field(e.message, b.what, b.text, b.spans)
            if named is not None:
                e.message = named
                e.args = (e.code, e.name, named)
                break
        raise


def _recipients(recipients: Union[str, Sequence[Mapping[str, Any]]]) -> Any:
    if isinstance(recipients, str):
        return recipients
    return [prepare(r) for r in recipients]


def _config_value(value: ConfigValue, key: str) -> Optional[bytes]:
    """Encode a configuration value: None = default, bool = true/false, int = decimal."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode("ascii")
    return _path(value, f"value of {key}")


def _integer(value: int, what: str, low: int, high: int) -> int:
    """Check an int argument fits its C type (ctypes would wrap it silently)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be in {low}..{high}, not {value}")
    return value


def _ms(value: int, what: str) -> int:
    """Check a uint32_t millisecond count (INFINITE = no limit)."""
    return _integer(value, what, 0, _UINT32_MAX)


def _event_thunk(client: "weakref.ref[Client]") -> Any:
    """Make the C event callback of a Client: it calls the Client's current Python callback.

    It holds the Client weakly, so a callback that refers to its Client does
    not keep it alive. An exception from the Python callback goes to ctypes,
    which reports it through ``sys.unraisablehook`` and returns normally to C.
    """

    def dispatch(event_json: bytes, _user_data: Optional[int]) -> None:
        owner = client()
        handler = owner._on_event if owner is not None else None
        if handler is not None:
            handler(cast(Event, json.loads(event_json)))

    return smtpb_event_fn(dispatch)


def _log_thunk(client: "weakref.ref[Client]") -> Any:
    """Make the C log callback of a Client: it calls the Client's current log handler."""

    def dispatch(line_json: bytes, _user_data: Optional[int]) -> None:
        owner = client()
        handler = owner._on_log if owner is not None else None
        if handler is not None:
            handler(json.loads(line_json))

    return smtpb_log_fn(dispatch)


#: smtpbridge's levels (1 error ... 5 trace) as ``logging`` levels.
_LOGGING_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
                   "debug": logging.DEBUG, "trace": 5}


def _level_number(level: int) -> int:
    """A ``logging`` level as the library's min_level (1 error ... 5 trace)."""
    if level >= logging.ERROR:
        return 1
    if level >= logging.WARNING:
        return 2
    if level >= logging.INFO:
        return 3
    if level >= logging.DEBUG:
        return 4
    return 5


def _close(handle: Handle, thunk: Any) -> None:
    """Finalizer: ``smtpb_client_close``. It holds ``thunk`` so the C callback outlives the close."""
    native.lib.smtpb_client_close(handle)


class Client:
    """A client of libsmtpbridge: one ``smtpb_client`` and its data directory.

    Each method mirrors one C function and raises the SmtpBridgeError
    subclass of its result code; any method of a closed client raises
    StateError. Safe to use from many threads, but not to close while other
    threads still use it. Closed by :meth:`close`, a ``with`` block, garbage
    collection or interpreter exit, whichever comes first.
    """

    def __init__(
        self,
        data_dir: Optional[StrPath] = None,
        secret: Optional[str] = None,
        paused: bool = False,
        shared: bool = False,
        submit_only: bool = False,
    ) -> None:
        """``smtpb_client_open``: open the client whose state lives in ``data_dir``.

        ``data_dir`` is an absolute path, created if missing and locked for
        the client's life; None keeps everything in memory. ``secret`` is the
        credential store's master secret; None uses a random key file in
        ``data_dir``. ``paused`` opens with the outbox paused until
        :meth:`outbox_resume`, so the callback and settings can be set first.
        ``shared`` (``SMTPB_OPEN_SHARED``) lets other processes of this machine
        open the same ``data_dir``; ``submit_only`` (``SMTPB_OPEN_SUBMIT_ONLY``)
        makes a client that never delivers.
        Raises InvalidArgumentError (e.g. a relative path), BusyError (the
        directory is held by another client), SmtpIOError, CredentialsError.
        """
        self._on_event: Optional[EventCallback] = None
        self._thunk = _event_thunk(weakref.ref(self))
        self._on_log: Optional[Callable[[LogLine], None]] = None
        self._log_thunk = _log_thunk(weakref.ref(self))
        handle = client_p()
        flags = (
            (OPEN_PAUSED if paused else OPEN_DEFAULT)
            | (OPEN_SHARED if shared else 0)
            | (OPEN_SUBMIT_ONLY if submit_only else 0)
        )
        native.check(
            native.lib.smtpb_client_open(
                _path(data_dir, "data_dir"), _text(secret, "secret"), flags, byref(handle)
            )
        )
        # Damage recovered past at open: a warning, not an error.
        warning = native.last_error()
        self.open_warning: str = warning if warning.startswith("warning:") else ""
        self._handle_p = handle
        self._finalizer = weakref.finalize(self, _close, handle, (self._thunk, self._log_thunk))

    # -- lifecycle ---------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return not self._finalizer.alive

    @property
    def _as_parameter_(self) -> Handle:
        """The ``smtpb_client *``, so a Client can be passed to ``native.call_raw``."""
        return self._handle()

    def _handle(self) -> Handle:
        """Return the handle; raise StateError if the client is closed."""
        if not self._finalizer.alive:
            raise native.error(StateError.code, "the client is closed")
        return self._handle_p

    def close(self) -> None:
        """``smtpb_client_close``: shut down with SMTPShutdownGraceMs, wait for calls inside, free.

        Idempotent. Queued mail stays in the spool. Called from this
        client's event callback, it returns at once and completes when the
        callback returns; once it returns elsewhere, no callback runs.
        """
        self._finalizer()

    def shutdown(self, grace_ms: int = 3000) -> None:
        """``smtpb_client_shutdown``: stop the client, letting a transaction past MAIL finish within ``grace_ms``.

        Idempotent; later calls raise StateError (except close). Raises
        WaitTimeoutError if the grace ran out (the client is shut down anyway).
        """
        native.check(native.lib.smtpb_client_shutdown(self._handle(), _ms(grace_ms, "grace_ms")))

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<smtpbridge.Client {'closed' if self.closed else 'open'}>"

    # -- calls ---------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> None:
        """Call ``name(handle, *args)``; raise for a failed result."""
        native.check(native.call_raw(name, self._handle(), *args))

    def _call_out(self, name: str, *args: Any, attach: Optional[str] = None) -> str:
        """Call ``name(handle, *args, &out)`` and return ``out`` as str.

        The out-string is taken (and freed) whatever the result. On failure
        it is parsed as JSON onto the exception's ``attach`` attribute, if given.
        """
        out = c_void_p()
        code = native.call_raw(name, self._handle(), *args, byref(out))
        failure = native.error(code) if code != OK else None  # before any other smtpb_ call
        text = native.take_string(out)
        if failure is not None:
            if attach is not None:
                setattr(failure, attach, None if text is None else json.loads(text))
            raise failure
        if text is None:
            raise native.error(InternalError.code, f"{name} returned SMTPB_OK without its output")
        return text

    def _call_json(self, name: str, *args: Any, attach: Optional[str] = None) -> Any:
        """Like _call_out, with the output parsed as JSON."""
        return json.loads(self._call_out(name, *args, attach=attach))

    # -- configuration ---------------------------------------------------------

    def config_set(self, key: str, value: ConfigValue) -> None:
        """``smtpb_config_set``: set ``key`` (``Name.Key`` for profile Name) to ``value``; None = default.

        Raises ConfigError naming the key (unknown key, bad value).
        """
        self._call("smtpb_config_set", _text(key, "key"), _config_value(value, key))

    def config_get(self, key: str) -> str:
        """``smtpb_config_get``: the effective value of ``key``, defaults included. Raises ConfigError."""
        return self._call_out("smtpb_config_get", _text(key, "key"))

    def configure(self, mapping: Optional[Mapping[str, ConfigValue]] = None, **keys: ConfigValue) -> None:
        """Call :meth:`config_set` for each key of ``mapping``, then of ``keys``, in order.

        Not atomic: the first failure raises and earlier keys stay set
        (:meth:`config_import_keys` applies all or nothing).
        """
        for key, value in itertools.chain((mapping or {}).items(), keys.items()):
            self.config_set(key, value)

    def config_import_keys(self, lines: str) -> None:
        """``smtpb_config_import_keys``: apply ``Key=Value`` lines, all or nothing.

        Raises ConfigError naming the line (unknown or repeated key, bad value).
        """
        self._call("smtpb_config_import_keys", _text(lines, "lines"))

    def config_load_json(self, config: JsonObject) -> None:
        """``smtpb_config_load_json``: replace the whole configuration (a dict or JSON text).

        Raises InvalidArgumentError (malformed JSON), ConfigError (unknown or misplaced key).
        """
        self._call("smtpb_config_load_json", _json_text(config, "config"))

    def config_export_json(self) -> Dict[str, Any]:
        """``smtpb_config_export_json``: the whole configuration, without secrets."""
        return cast(Dict[str, Any], self._call_json("smtpb_config_export_json"))

    # -- credentials -------------------------------------------------------------

    def credentials_set(self, user_id: Optional[str], username: str, password: str) -> None:
        """``smtpb_credentials_set``: store a password for ``user_id`` (None = the shared credential).

        Raises InvalidArgumentError, SmtpIOError.
        """
        self._call(
            "smtpb_credentials_set",
            _text(user_id, "user_id"),
            _text(username, "username"),
            _text(password, "password"),
        )

    def credentials_set_oauth2(
        self, user_id: Optional[str], username: str, access_token: str, expires_at: int = 0
    ) -> None:
        """``smtpb_credentials_set_oauth2``: store an OAuth2 access token for ``user_id``.

        ``expires_at`` is Unix seconds, 0 = unknown. Raises
        InvalidArgumentError, SmtpIOError.
        """
        self._call(
            "smtpb_credentials_set_oauth2",
            _text(user_id, "user_id"),
            _text(username, "username"),
            _text(access_token, "access_token"),
            _integer(expires_at, "expires_at", _INT64_MIN, _INT64_MAX),
        )

    def credentials_remove(self, user_id: Optional[str]) -> None:
        """``smtpb_credentials_remove``: forget the credential of ``user_id``. Raises NotFoundError."""
        self._call("smtpb_credentials_remove", _text(user_id, "user_id"))

    def credentials_masked(self, user_id: Optional[str]) -> MaskedCredential:
        """``smtpb_credentials_masked``: the credential of ``user_id`` with its secret masked.

        Raises NotFoundError.
        """
        return cast(MaskedCredential, self._call_json("smtpb_credentials_masked", _text(user_id, "user_id")))

    # -- OAuth2 done by the library (1.1) -------------------------------------------

    def oauth2_begin(self, profile: Optional[str], user_id: Optional[str], kind: str = "browser") -> OAuth2Flow:
        """``smtpb_oauth2_begin``: start a sign-in of ``user_id`` (None = shared).

        ``kind`` is ``"browser"`` (open ``authorize_url``) or ``"device"``
        (show ``verification_uri`` and ``user_code``). Returns
        ``{"flow_id", "kind", "authorize_url", "verification_uri",
        "user_code", "expires_at", "interval"}``. Raises ConfigError,
        ConnectError, TlsError, AuthError; MissingFunctionError on a 1.0 library.
        """
        return cast(OAuth2Flow, self._call_json(
            "smtpb_oauth2_begin", _text(profile, "profile"), _text(user_id, "user_id"), _text(kind, "kind")
        ))

    def oauth2_complete(self, flow_id: str, timeout_ms: int = 0) -> SignedIn:
        """``smtpb_oauth2_complete``: wait up to ``timeout_ms`` for a sign-in; the masked credential
        plus ``advice`` (``not_refreshable`` when no refresh token came).

        Raises WaitTimeoutError (not finished: call again), AuthError (refused
        or expired), NotFoundError (unknown or finished flow).
        """
        return cast(SignedIn, self._call_json(
            "smtpb_oauth2_complete", _text(flow_id, "flow_id"), _integer(timeout_ms, "timeout_ms", 0, _UINT32_MAX)
        ))

    def oauth2_cancel(self, flow_id: str) -> None:
        """``smtpb_oauth2_cancel``: stop a sign-in. Raises NotFoundError."""
        self._call("smtpb_oauth2_cancel", _text(flow_id, "flow_id"))

    def credentials_set_oauth2_refresh(self, user_id: Optional[str], username: str, refresh_token: str) -> None:
        """``smtpb_credentials_set_oauth2_refresh``: store a refresh token the host obtained itself.

        ``username`` may be "" (taken from the ID token). Raises InvalidArgumentError.
        """
        self._call(
            "smtpb_credentials_set_oauth2_refresh",
            _text(user_id, "user_id"),
            _text(username, "username"),
            _text(refresh_token, "refresh_token"),
        )

    # -- sending -------------------------------------------------------------------

    def send(self, message: Message) -> Status:
        """``smtpb_send``: send ``message`` now and return its status.

        ``message`` is a dict (attachment and inline paths may be
        ``os.PathLike``, made absolute here), JSON text, or an
        ``email.message.EmailMessage`` (sent as the bytes it renders, the
        envelope from its headers; :func:`smtpbridge.mime_message` adds
        ``user``, ``profile``, ``reference`` ...). Raises the error of the
        outcome. Once the message was recorded the error's ``status`` holds
        its status (``failed``; ``retry(status["id"])`` hands it to the
        outbox), else None. A value that cannot be serialised raises
        TypeError or ValueError naming its field.
        """
        built: List[_Built] = []
        text = _built(prepare(message) if not isinstance(message, str) else message, "message", built)
        with _naming_fields(built):
            return cast(Status, self._call_json("smtpb_send", text, attach="status"))

    def enqueue(self, message: Message) -> str:
        """``smtpb_enqueue``: make ``message`` (as for :meth:`send`) durable in the outbox; return its id.

        Attachment files are read before it returns. Raises
        InvalidArgumentError, MessageError, ConfigError, BlockedError, SmtpIOError.
        """
        built: List[_Built] = []
        text = _built(prepare(message) if not isinstance(message, str) else message, "message", built)
        with _naming_fields(built):
            return self._call_out("smtpb_enqueue", text)

    def render(self, message: Message) -> str:
        """``smtpb_render``: the MIME (``.eml`` text, CRLF line ends) ``message`` would be sent as.

        After profile choice, the blacklist, test mode and DKIM, as
        :meth:`send` would build it; nothing is sent or recorded. Raises
        MessageError, ConfigError, NotFoundError, BlockedError.
        """
        built: List[_Built] = []
        text = _built(prepare(message) if not isinstance(message, str) else message, "message", built)
        with _naming_fields(built):
            return self._call_out("smtpb_render", text)

    def validate(self, message: Message) -> None:
        """``smtpb_validate``: check ``message`` and the settings it would use, sending nothing.

        Returns None when :meth:`send` would get as far as the server.
        Raises MessageError, ConfigError, NotFoundError, BlockedError,
        CredentialsError (no usable credential for the message's user).
        """
        built: List[_Built] = []
        text = _built(prepare(message) if not isinstance(message, str) else message, "message", built)
        with _naming_fields(built):
            self._call("smtpb_validate", text)

    def merge(self, template: JsonObject, recipients: Union[str, Sequence[Mapping[str, Any]]]) -> MergeResult:
        """``smtpb_merge``: queue one message per recipient from ``template``, as one batch.

        Returns ``{"batch_id", "ids", "count"}``; ``ids`` is aligned with
        ``recipients``. Raises MessageError (e.g. a placeholder without a
        value) before anything is queued.
        """
        built: List[_Built] = []
        template_text = _built(prepare(template) if not isinstance(template, str) else template, "template", built)
        recipients_text = _built(_recipients(recipients), "recipients", built)
        with _naming_fields(built):
            return cast(MergeResult, self._call_json("smtpb_merge", template_text, recipients_text))

    def transcript(self, id: str) -> List[TranscriptAttempt]:
        """``smtpb_transcript``: the redacted dialogue of message ``id``'s attempts, oldest first.

        Each attempt is ``{"attempt", "started_at", "transport", "server",
        "lines": [{"ms", "dir", "text"}]}``. Raises NotFoundError.
        """
        return cast(List[TranscriptAttempt], self._call_json("smtpb_transcript", _text(id, "id")))

    def probe(self, host: str) -> ProbeReport:
        """``smtpb_probe``: try ``host`` on 465 (SSL), 587 (TLS) and 25 (TLS, then plain); no mail.

        Returns ``{"host", "results": [...], "suggested"}``. Raises
        ConnectError when nothing worked, with the report as its ``report``.
        """
        return cast(ProbeReport, self._call_json("smtpb_probe", _text(host, "host"), attach="report"))

    def test_connection(self, profile: Optional[str] = None, user_id: Optional[str] = None) -> TestReport:
        """``smtpb_test_connection``: connect, EHLO, TLS and AUTH with a profile, then QUIT; no mail.

        Returns the report (``ok`` true). Raises the error of the failed
        stage with the report as its ``report`` (None for argument or
        lookup errors).
        """
        return cast(TestReport, self._call_json(
            "smtpb_test_connection", _text(profile, "profile"), _text(user_id, "user_id"), attach="report"
        ))

    # -- status and outbox ----------------------------------------------------------

    def status(self, id: str) -> Status:
        """``smtpb_status``: the status of message ``id``. Raises NotFoundError."""
        return cast(Status, self._call_json("smtpb_status", _text(id, "id")))

    def batch_status(self, batch_id: str) -> BatchStatus:
        """``smtpb_batch_status``: the state counts of a merge batch. Raises NotFoundError."""
        return cast(BatchStatus, self._call_json("smtpb_batch_status", _text(batch_id, "batch_id")))

    def outbox_list(self, state: Optional[str] = None) -> List[Status]:
        """``smtpb_outbox_list``: the statuses of the messages in ``state`` (None = all)."""
        return cast(List[Status], self._call_json("smtpb_outbox_list", _text(state, "state")))

    def outbox_query(self, query: Optional[Mapping[str, Any]] = None, **filters: Any) -> QueryPage:
        """``smtpb_outbox_query``: one page of statuses, newest first.

        Filters (all optional, as a mapping and/or keywords): ``state`` (list
        of state names), ``batch_id``, ``reference``, ``reference_prefix``,
        ``profile``, ``since``/``until`` (RFC 3339 UTC, by created_at),
        ``limit`` (1-1000, default 100), ``cursor`` (``next_cursor`` of the
        page before). Returns ``{"items": [...], "next_cursor": str | None}``.
        Raises InvalidArgumentError naming a bad field.
        """
        fields = {**(query or {}), **filters}
        return cast(QueryPage, self._call_json("smtpb_outbox_query", _text(json.dumps(fields), "query")))

    def iter_outbox(self, query: Optional[Mapping[str, Any]] = None, **filters: Any) -> Iterator[Status]:
        """Every status matching the filters of :meth:`outbox_query`, newest first, page by page."""
        fields = {**(query or {}), **filters}
        while True:
            page = self.outbox_query(fields)
            yield from page["items"]
            if not page["next_cursor"]:
                return
            fields["cursor"] = page["next_cursor"]

    def outbox_purge(self, before: str, states: Optional[Sequence[str]] = None) -> int:
        """``smtpb_outbox_purge``: purge final statuses created before ``before`` (RFC 3339 UTC).

        ``states``: some of "sent", "cancelled", "failed" (None = all three).
        Returns how many were purged.
        """
        states_json = None if states is None else json.dumps(list(states))
        result = self._call_json("smtpb_outbox_purge", _text(before, "before"), _text(states_json, "states"))
        return int(result["purged"])

    def outbox_stats(self) -> OutboxStats:
        """``smtpb_outbox_stats``: counts per state, paused profiles and send limits."""
        return cast(OutboxStats, self._call_json("smtpb_outbox_stats"))

    def wait(self, id: str, timeout_ms: int) -> Status:
        """``smtpb_wait``: wait until message ``id`` is sent, failed or cancelled; return its status.

        ``timeout_ms``: 0 = do not wait, INFINITE = no limit. Raises
        WaitTimeoutError, NotFoundError, StateError (shut down meanwhile).
        """
        return cast(Status, self._call_json("smtpb_wait", _text(id, "id"), _ms(timeout_ms, "timeout_ms")))

    def flush(self, timeout_ms: int) -> None:
        """``smtpb_flush``: wait until nothing is queued or sending (deferred and paused mail aside).

        Raises WaitTimeoutError, StateError.
        """
        self._call("smtpb_flush", _ms(timeout_ms, "timeout_ms"))

    def cancel(self, id: str) -> None:
        """``smtpb_cancel``: cancel a queued or deferred message. Raises NotFoundError, StateError."""
        self._call("smtpb_cancel", _text(id, "id"))

    def batch_cancel(self, batch_id: str) -> BatchCancelled:
        """``smtpb_batch_cancel``: cancel what can be; return ``{"cancelled", "sending", "sent"}``.

        Raises NotFoundError.
        """
        return cast(BatchCancelled, self._call_json("smtpb_batch_cancel", _text(batch_id, "batch_id")))

    def retry(self, id: str) -> None:
        """``smtpb_retry``: requeue a failed message, or send a deferred one now.

        Raises NotFoundError, StateError (sent or cancelled).
        """
        self._call("smtpb_retry", _text(id, "id"))

    def outbox_pause(self, profile: Optional[str] = None) -> None:
        """``smtpb_outbox_pause``: hold delivery for ``profile`` (None = all); persisted."""
        self._call("smtpb_outbox_pause", _text(profile, "profile"))

    def outbox_resume(self, profile: Optional[str] = None) -> None:
        """``smtpb_outbox_resume``: resume delivery for ``profile`` (None = all, and the paused open)."""
        self._call("smtpb_outbox_resume", _text(profile, "profile"))

    def limits_reset(self, profile: Optional[str] = None) -> None:
        """``smtpb_limits_reset``: reset the send-limit counters of ``profile`` (None = all)."""
        self._call("smtpb_limits_reset", _text(profile, "profile"))

    # -- blacklist ----------------------------------------------------------------------

    def blacklist_add(self, entry: str) -> None:
        """``smtpb_blacklist_add``: block an address, or a domain as ``"@example.com"``."""
        self._call("smtpb_blacklist_add", _text(entry, "entry"))

    def blacklist_remove(self, entry: str) -> None:
        """``smtpb_blacklist_remove``: unblock an address or ``"@domain"``."""
        self._call("smtpb_blacklist_remove", _text(entry, "entry"))

    def blacklist_list(self) -> List[str]:
        """``smtpb_blacklist_list``: the blocked addresses and ``"@domain"`` entries."""
        return cast(List[str], self._call_json("smtpb_blacklist_list"))

    # -- events ---------------------------------------------------------------------------

    def set_log_callback(self, fn: Optional[Callable[[LogLine], None]], min_level: int = 3) -> None:
        """``smtpb_set_log_callback``: call ``fn(line)`` with each log line at or above ``min_level``.

        ``min_level``: 1 error, 2 warn, 3 info, 4 debug, 5 trace. A line is
        ``{"time", "level", "target", "message", "id", "profile"}``. ``fn``
        runs on the client's event thread, like the event callback; None
        stops the lines. When this returns, the previous ``fn`` is not
        running and never runs again.
        """
        handle = self._handle()
        previous, self._on_log = self._on_log, fn
        try:
            thunk = self._log_thunk if fn is not None else smtpb_log_fn()
            native.check(native.lib.smtpb_set_log_callback(handle, thunk, _integer(min_level, "min_level", 1, 5), None))
        except BaseException:
            self._on_log = previous
            raise

    def log_to_logging(self, logger: Optional[logging.Logger] = None, level: int = logging.INFO) -> None:
        """Bridge the library's log lines to the ``logging`` module.

        Each line goes to ``logger`` (default: ``logging.getLogger("smtpbridge")``)
        at the matching level (trace as level 5), with ``smtpbridge_target``,
        ``smtpbridge_id`` and ``smtpbridge_profile`` as record attributes. ``level``
        is the lowest ``logging`` level asked of the library.
        """
        target = logger if logger is not None else logging.getLogger("smtpbridge")

        def emit(line: LogLine) -> None:
            target.log(
                _LOGGING_LEVELS.get(line.get("level", ""), logging.INFO),
                "%s", line.get("message", ""),
                extra={"smtpbridge_target": line.get("target"), "smtpbridge_id": line.get("id"),
                       "smtpbridge_profile": line.get("profile"), "smtpbridge_time": line.get("time")},
            )

        self.set_log_callback(emit, _level_number(level))

    def set_event_callback(self, fn: Optional[EventCallback]) -> None:
        """``smtpb_set_event_callback``: call ``fn(event)`` with each event as a dict; None stops events.

        ``fn`` runs on the client's event thread, one event at a time, and
        may call this client (close included). An exception it raises is
        reported through ``sys.unraisablehook`` and never reaches the
        library. When this returns, the previous ``fn`` is not running and
        never runs again.
        """
        self._set_event_callback(native.lib.smtpb_set_event_callback, fn)

    def set_event_callback_all(self, fn: Optional[EventCallback]) -> None:
        """``smtpb_set_event_callback_all``: like :meth:`set_event_callback`, for every message of
        the data_dir, also those other clients and processes queued (a shared data_dir)."""
        self._set_event_callback(native.lib.smtpb_set_event_callback_all, fn)

    def _set_event_callback(self, setter: Any, fn: Optional[EventCallback]) -> None:
        handle = self._handle()
        previous, self._on_event = self._on_event, fn
        try:
            # The C callback is one thunk for the client's whole life, so
            # replacing or clearing from inside a callback never frees the
            # thunk that is running.
            thunk = self._thunk if fn is not None else smtpb_event_fn()
            native.check(setter(handle, thunk, None))
        except BaseException:
            self._on_event = previous
            raise
