"""The shapes of the library's JSON output (docs/REFERENCE.md), as TypedDicts.

The Client's methods return plain dicts parsed from the library's JSON; these
types say what they hold, for type checkers and editors. Each is exactly its
shape in docs/schema/ (generated from the library's types; checked by
tests/test_schemas.py): a key that is always there is required, a key that
may be left out is not, and a value that may be null is Optional. Fields a
later library adds appear in the dicts too; an unknown ``state`` is not
final.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Optional, TypedDict

State = Literal["queued", "sending", "sent", "deferred", "failed", "cancelled"]
"""A message's state; ``sent``, ``failed`` and ``cancelled`` are final."""

FINAL_STATES = frozenset({"sent", "failed", "cancelled"})


class _RejectedAdditions(TypedDict, total=False):
    error: str
    """The library's own account of the refusal, when it has one."""


class Rejected(_RejectedAdditions):
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
    meta: str
    attachments: List[str]


class Advice(TypedDict):
    """The cause the library recognised (diagnostics): a stable key and English text."""

    key: str
    text: str


class Redirection(TypedDict):
    """Where test mode sent a message instead of its own recipients."""

    redirected_to: List[str]
    original: List[str]


class Status(TypedDict):
    """The status of a message (``send``, ``status``, ``wait``, ``outbox_list``)."""

    id: str
    reference: Optional[str]
    batch_id: Optional[str]
    profile: str
    state: str
    attempts: int
    message_id: str
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
    created_at: str
    sent_at: Optional[str]
    next_attempt_at: Optional[str]
    archive: Optional[Archive]
    advice: Optional[Advice]
    """Only while the message is failed or deferred."""
    transport: Optional[str]
    http_status: Optional[int]
    test_mode: Optional[Redirection]
    """Test mode's redirection; None when test mode was off."""


class _EventFields(TypedDict, total=False):
    dropped: int
    """Events dropped (the host was slow) since the one before; absent when none."""
    # "state" events
    id: str
    batch_id: Optional[str]
    reference: Optional[str]
    state: str
    attempts: int
    error_code: int
    error: Optional[str]
    possible_duplicate: bool
    rejected_count: int
    # "credentials_needed" events
    user_id: Optional[str]
    profile: str


class Event(_EventFields):
    """An event given to the event callback: ``type`` is ``state`` (a
    message's new state: ``id`` … ``rejected_count``) or
    ``credentials_needed`` (``user_id`` and ``profile``)."""

    type: str
    seq: int
    time: str


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


class DeliveryHolder(TypedDict):
    """The process that delivers the outbox."""

    pid: int
    host: str
    user: str
    since: str


class Delivery(TypedDict):
    """Who delivers the outbox: this client (exclusive), the holder of a
    shared data_dir's delivery lease, or nobody (``None``)."""

    holder: Optional[DeliveryHolder]


class OutboxStats(TypedDict):
    """Counts per state, paused profiles (``"*"`` = all), send limits, and
    the records lost to damage found at open."""

    queued: int
    sending: int
    sent: int
    deferred: int
    failed: int
    cancelled: int
    damaged_records: int
    paused: List[str]
    profiles: Dict[str, ProfileLimit]
    delivery: Delivery
    # Further keys of smtpb_outbox_stats go here, as in docs/schema/outbox_stats.json.


class OAuth2Check(TypedDict):
    """The token a connection test of an OAuth2 profile used."""

    expires_at: Optional[str]
    refreshed: bool
    """The test refreshed it first."""


class _ReportAdditions(TypedDict, total=False):
    oauth2: OAuth2Check
    """An OAuth2 profile's token; absent for other profiles."""
    # Microsoft Graph profiles only:
    http_status: Optional[int]
    mailbox: Optional[str]
    transport: str


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
    advice: Optional[Advice]


class MaskedCredential(TypedDict):
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


class SignedIn(MaskedCredential):
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
    started_at: str
    transport: str
    server: Optional[str]
    lines: List[TranscriptLine]


class ProbeResult(TypedDict):
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


Suggested = TypedDict("Suggested", {"SMTPServer": str, "SMTPServerEncryption": str, "SMTPServerPort": int})
"""The keys a probe suggests, by their configuration names."""


class ProbeReport(TypedDict):
    """``smtpb_probe``: every port tried and the keys to set (``suggested``)."""

    host: str
    results: List[ProbeResult]
    suggested: Optional[Suggested]


class QueryPage(TypedDict):
    """One page of ``smtpb_outbox_query``, newest first."""

    items: List[Status]
    next_cursor: Optional[str]


class _LogLineAdditions(TypedDict, total=False):
    dropped: int
    """Lines dropped (the host was slow) since the one before; absent when none."""


class LogLine(_LogLineAdditions):
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
    verification_uri_complete: Optional[str]
    user_code: Optional[str]
    expires_at: Optional[str]
    interval: Optional[int]
