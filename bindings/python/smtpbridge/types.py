"""The shapes of the library's JSON output (docs/REFERENCE.md), as TypedDicts.

The Client's methods return plain dicts parsed from the library's JSON; these
types say what they hold, for type checkers and editors. Fields the library
adds in later versions appear in the dicts too (and in these types, as
optional keys, once they are documented); an unknown ``state`` is not final.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict

State = Literal["queued", "sending", "sent", "deferred", "failed", "cancelled"]
"""A message's state; ``sent``, ``failed`` and ``cancelled`` are final."""

FINAL_STATES = frozenset({"sent", "failed", "cancelled"})


class Rejected(TypedDict):
    """A recipient the server refused while others were accepted."""

    address: str
    smtp_code: Optional[int]
    enhanced_code: Optional[str]
    smtp_response: Optional[str]


class Archive(TypedDict):
    """Where the sent copy was filed (absolute paths)."""

    dir: str
    html: str
    eml: str
    attachments: List[str]


class Advice(TypedDict):
    """The cause the library recognised (diagnostics): a stable key and English text."""

    key: str
    text: str


class Redirection(TypedDict):
    """Where test mode sent a message instead of its own recipients."""

    redirected_to: List[str]
    original: List[str]


class _StatusAdditions(TypedDict, total=False):
    advice: Advice
    transport: str
    http_status: int
    test_mode: Optional[Redirection]
    """1.2: test mode's redirection; None when test mode was off."""


class Status(_StatusAdditions):
    """The status of a message (``send``, ``status``, ``wait``, ``outbox_list``)."""

    id: str
    reference: Optional[str]
    batch_id: Optional[str]
    profile: str
    state: str
    attempts: int
    message_id: Optional[str]
    smtp_code: Optional[int]
    enhanced_code: Optional[str]
    smtp_response: Optional[str]
    error_code: int
    error: Optional[str]
    needs: Optional[str]
    recipients: List[str]
    blocked: List[str]
    rejected: List[Rejected]
    partial: bool
    possible_duplicate: bool
    created_at: Optional[str]
    sent_at: Optional[str]
    next_attempt_at: Optional[str]
    archive: Optional[Archive]


class _EventAdditions(TypedDict, total=False):
    type: str
    """``credentials_needed`` (with ``user_id`` and ``profile``); absent for a state change."""
    dropped: int
    user_id: Optional[str]
    profile: Optional[str]


class Event(_EventAdditions, total=False):
    """An event given to the event callback. A ``credentials_needed`` event
    carries ``type``, ``user_id`` and ``profile``; a state change the rest."""

    seq: int
    time: Optional[str]
    id: str
    batch_id: Optional[str]
    reference: Optional[str]
    state: str
    attempts: int
    error_code: int
    error: Optional[str]
    possible_duplicate: bool
    rejected_count: int


class MergeResult(TypedDict):
    """What ``merge`` returns: ``ids`` is aligned with the recipients."""

    batch_id: str
    ids: List[str]
    count: int


class BatchStatus(TypedDict):
    """The state counts of a batch (``batch_status``)."""

    batch_id: str
    total: int
    queued: int
    sending: int
    sent: int
    deferred: int
    failed: int
    cancelled: int


class BatchCancelled(TypedDict):
    cancelled: int
    sending: int
    sent: int


class ProfileLimit(TypedDict):
    sent_in_period: int
    limit: int
    period: str
    resets_at: Optional[str]


class OutboxStats(TypedDict):
    """Counts per state, paused profiles (``"*"`` = all) and send limits."""

    queued: int
    sending: int
    sent: int
    deferred: int
    failed: int
    cancelled: int
    paused: List[str]
    profiles: Dict[str, ProfileLimit]


class _ReportAdditions(TypedDict, total=False):
    advice: Advice


class TestReport(_ReportAdditions):
    """The report of ``test_connection``."""

    ok: bool
    profile: str
    stage: str
    banner: Optional[str]
    capabilities: List[str]
    tls: Optional[str]
    auth_mechanisms: List[str]
    error_code: int
    error: Optional[str]


class MaskedCredential(TypedDict, total=False):
    """A credential with its secret masked (``credentials_masked``)."""

    user_id: Optional[str]
    username: str
    kind: str
    has_secret: bool
    password: str
    expires_at: Optional[str]
    updated_at: Optional[str]
    refreshable: bool
    provider: Optional[str]


class SignedIn(MaskedCredential, total=False):
    """``oauth2_complete``'s result: the masked credential and ``advice``
    (None, or ``not_refreshable`` when the provider gave no refresh token)."""

    advice: Optional[Advice]


class TranscriptLine(TypedDict):
    """One line of a transcript: ``dir`` is "C" (client), "S" (server) or "*" (a note)."""

    ms: int
    dir: str
    text: str


class TranscriptAttempt(TypedDict):
    """One attempt's redacted dialogue (``smtpb_transcript``)."""

    attempt: int
    started_at: Optional[str]
    transport: str
    server: Optional[str]
    lines: List[TranscriptLine]


class ProbeResult(TypedDict, total=False):
    """One port tried by ``smtpb_probe``."""

    port: int
    encryption: str
    ok: bool
    stage: str
    banner: Optional[str]
    tls: Optional[str]
    auth_mechanisms: List[str]
    error: Optional[str]
    advice: Optional[Advice]


class ProbeReport(TypedDict):
    """``smtpb_probe``: every port tried and the keys to set (``suggested``)."""

    host: str
    results: List[ProbeResult]
    suggested: Optional[Dict[str, object]]


class QueryPage(TypedDict):
    """One page of ``smtpb_outbox_query``, newest first."""

    items: List[Status]
    next_cursor: Optional[str]


class LogLine(TypedDict):
    """One library log line (``smtpb_set_log_callback``)."""

    time: str
    level: str
    target: str
    message: str
    id: Optional[str]
    profile: Optional[str]


class OAuth2Flow(TypedDict):
    """A sign-in under way (``smtpb_oauth2_begin``): open ``authorize_url``
    (browser), or show ``verification_uri`` and ``user_code`` (device)."""

    flow_id: str
    kind: str
    authorize_url: Optional[str]
    verification_uri: Optional[str]
    user_code: Optional[str]
    expires_at: Optional[str]
    interval: Optional[int]
