"""A loopback Microsoft Graph mail endpoint, written from Graph's published API reference.

There is no offline Graph, so the tests talk to this: HTTPS on 127.0.0.1
(a certificate of the test `CertAuthority`), HTTP/1.1 with keep-alive,
under the base path ``/v1.0``. It implements what the library uses:

- ``POST /me/sendMail`` and ``POST /users/{id}/sendMail`` with a MIME body
  (``Content-Type: text/plain``, the MIME base64-encoded): 202 Accepted,
  no body. Bad base64: 400 ``ErrorMimeContentInvalidBase64String``.
- ``POST /me/messages`` (and ``/users/{id}/messages``) with a MIME body:
  201 Created and the draft ``message`` (``id``, ``isDraft``).
- ``PATCH /me/messages/{id}`` (``singleValueExtendedProperties``).
- ``POST /me/messages/{id}/attachments`` (a ``fileAttachment`` with
  ``contentBytes``): 201.
- ``POST /me/messages/{id}/attachments/createUploadSession`` with
  ``{"AttachmentItem": {"attachmentType": "file", "name", "size", ...}}``:
  201 and an ``uploadSession`` (``uploadUrl``, ``expirationDateTime``,
  ``nextExpectedRanges: ["0-"]``). ``PUT {uploadUrl}`` with
  ``Content-Range: bytes a-b/size`` and no ``Authorization`` (the URL is
  pre-authenticated): 200 with ``nextExpectedRanges`` until the last
  range, then 201 with a ``Location``. Ranges must come in order; every
  range but the last must be a multiple of 320 KiB, none over 4 MB.
- ``POST /me/messages/{id}/send``: 202; the draft, with its uploaded
  attachments, is what was sent.
- ``DELETE /me/messages/{id}``: 204.
- ``GET /me`` and ``GET /users/{id}``: 200 and a ``user``.

Every request but the upload PUTs needs ``Authorization: Bearer <token>``;
the token is checked by ``check_token`` (e.g. RFC 7662 introspection at
the test authorization server), else 401 ``InvalidAuthenticationToken``.
Errors have Graph's shape: ``{"error": {"code", "message"}}``.

Faults on cue: ``fail_next(kind)`` makes the next sending request
(``sendMail`` or ``/send``) answer ``401``, ``403`` (ErrorSendAsDenied),
``400``, ``429`` (with Retry-After), ``503``, or ``drop`` (read the whole
request, then close the connection without an answer).

Every message sent is kept as a `GraphMessage`: the mailbox it was sent
from, the MIME bytes as received (decoded from base64) parsed with the
standard library's MIME parser, and saveToSentItems.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import email.parser
import email.policy
import http.server
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Callable, Optional
from urllib.parse import unquote

from .certs import ServerCert

HOST = "127.0.0.1"
BASE = "/v1.0"
#: Upload ranges are multiples of this (the documented 320 KiB).
RANGE_UNIT = 320 * 1024
#: The largest range one PUT may carry.
MAX_RANGE = 4 * 1024 * 1024
#: The property that tells Exchange not to keep a sent copy (PidTagDeleteAfterSubmit).
DELETE_AFTER_SUBMIT = "Boolean 0x0E01"

_SENDING = re.compile(r"^/(me|users/[^/]+)/(sendMail|messages/[^/]+/send)$")


def parse_mime(raw: bytes) -> EmailMessage:
    """Parses MIME bytes with the standard library's parser (policy.default)."""
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)


@dataclass
class Attachment:
    """An attachment added to a draft: by an upload session or a POST."""

    name: str
    content_type: str
    size: int
    is_inline: bool
    content_id: Optional[str]
    data: bytearray = field(default_factory=bytearray)
    via: str = "upload"


@dataclass
class GraphMessage:
    """One message Graph accepted for sending.

    ``mime`` is the MIME as posted (for a draft, as created), ``message``
    it parsed; ``attachments`` are those added to a draft afterwards.
    """

    mailbox: str
    mime: bytes
    save_to_sent_items: bool
    via: str
    connection: int
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def message(self) -> EmailMessage:
        return parse_mime(self.mime)

    def recipients(self) -> list[str]:
        """Graph's recipients: the To, Cc and Bcc headers of the MIME."""
        m = self.message
        out: list[str] = []
        for name in ("To", "Cc", "Bcc"):
            header = m.get(name)
            if header is not None:
                out += [a.addr_spec for a in header.addresses]
        return out


@dataclass
class Draft:
    mailbox: str
    mime: bytes
    attachments: list[Attachment] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class UploadSession:
    draft_id: str
    attachment: Attachment
    next_offset: int = 0


class GraphServer:
    """The loopback Graph server: starts in the constructor, stops on `stop()` or ``with``.

    ``check_token(token)`` returns the token's claims (a dict with at least
    ``active``) or None; a token is accepted when it is active and, if
    ``scope`` is in the claims, the scope names Mail.Send.
    """

    def __init__(self, cert: ServerCert, check_token: Callable[[str], Optional[dict]],
                 users: Optional[dict[str, dict]] = None) -> None:
        self.check_token = check_token
        self.users = users or {}
        self.messages: list[GraphMessage] = []
        self.requests: list[dict[str, Any]] = []
        self.drafts: dict[str, Draft] = {}
        self.deleted_drafts: list[str] = []
        self.uploads: dict[str, UploadSession] = {}
        self.upload_ranges: list[tuple[int, int, int]] = []
        self.connections = 0
        self.retry_after = 2
        self._faults: list[str] = []
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        server = self

        class Handler(_Handler):
            graph = server

        self._httpd = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self._httpd.daemon_threads = True
        context = cert.server_context()
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)
        self.port: int = self._httpd.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}{BASE}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="graph-server", daemon=True)
        self._thread.start()

    def fail_next(self, *kinds: str) -> None:
        """Queue faults for the next sending requests: 401, 403, 400, 429, 503, 504, drop."""
        with self._lock:
            self._faults.extend(kinds)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[GraphMessage]:
        """Waits until ``count`` messages were sent; returns them."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "GraphServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _take_fault(self) -> Optional[str]:
        with self._lock:
            return self._faults.pop(0) if self._faults else None


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message,
                      "innerError": {"request-id": str(uuid.uuid4()),
                                     "date": datetime.datetime.now(datetime.timezone.utc)
                                     .strftime("%Y-%m-%dT%H:%M:%S")}}}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    graph: GraphServer

    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()
        with self.graph._lock:
            self.graph.connections += 1
            self.connection_number = self.graph.connections

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (quiet)
        pass

    # -- plumbing ------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Optional[dict] = None, headers: Optional[dict] = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fail(self, status: int, code: str, message: str, headers: Optional[dict] = None) -> None:
        self._send(status, _error(code, message), headers)

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else ""
        claims = self.graph.check_token(token) if token else None
        ok = bool(claims and claims.get("active"))
        if ok and "scope" in claims:
            ok = "mail.send" in str(claims["scope"]).lower()
        if not ok:
            self._fail(401, "InvalidAuthenticationToken",
                       "Access token is empty." if not token else "Access token validation failure.",
                       {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})
        return ok

    def _mailbox(self, who: str) -> str:
        return "me" if who == "me" else unquote(who.split("/", 1)[1])

    def _record(self, path: str, body_len: int) -> None:
        with self.graph._lock:
            self.graph.requests.append({
                "method": self.command, "path": path, "connection": self.connection_number,
                "content_type": self.headers.get("Content-Type"), "length": body_len,
                "authorization": bool(self.headers.get("Authorization")),
            })

    def _path(self) -> Optional[str]:
        path = self.path.split("?", 1)[0]
        if path.startswith("/upload/"):
            return path
        if not path.startswith(BASE + "/"):
            self._fail(404, "ResourceNotFound", f"Resource not found for the segment '{path}'.")
            return None
        return path[len(BASE):]

    def _fault(self, path: str) -> bool:
        """Applies a queued fault to a sending request; True when it answered."""
        if not _SENDING.match(path):
            return False
        fault = self.graph._take_fault()
        if fault is None:
            return False
        if fault == "drop":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return True
        status = int(fault)
        if status == 401:
            self._fail(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        elif status == 403:
            self._fail(403, "ErrorSendAsDenied",
                       "The user account which was used to submit this request does not have the right "
                       "to send mail on behalf of the specified sending account.")
        elif status == 400:
            self._fail(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        elif status == 429:
            self._fail(429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                       {"Retry-After": self.graph.retry_after})
        else:
            self._fail(status, "ServiceUnavailable" if status == 503 else "GatewayTimeout",
                       "The service is temporarily unavailable.", {"Retry-After": self.graph.retry_after})
        return True

    def _mime(self, body: bytes) -> Optional[bytes]:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "text/plain":
            self._fail(400, "RequestBodyRead", "A MIME message is posted as text/plain (base64).")
            return None
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            self._fail(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
            return None

    # -- verbs ---------------------------------------------------------------

    def do_GET(self) -> None:
        path = self._path()
        if path is None:
            return
        body = self._body()
        self._record(path, len(body))
        if not self._authorized():
            return
        m = re.match(r"^/(me|users/[^/]+)$", path)
        if not m:
            self._fail(404, "ResourceNotFound", "Resource not found.")
            return
        who = self._mailbox(m.group(1))
        user = self.graph.users.get(who.lower())
        if user is None:
            self._fail(404, "Request_ResourceNotFound", f"Resource '{who}' does not exist.")
            return
        self._send(200, {"@odata.context": f"https://graph.microsoft.com{BASE}/$metadata#users/$entity", **user})

    def do_DELETE(self) -> None:
        path = self._path()
        if path is None:
            return
        self._body()
        self._record(path, 0)
        if not self._authorized():
            return
        m = re.match(r"^/(me|users/[^/]+)/messages/([^/]+)$", path)
        with self.graph._lock:
            draft = self.graph.drafts.pop(m.group(2), None) if m else None
            if draft is not None:
                self.graph.deleted_drafts.append(m.group(2))
        if draft is None:
            self._fail(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        else:
            self._send(204)

    def do_PATCH(self) -> None:
        path = self._path()
        if path is None:
            return
        body = self._body()
        self._record(path, len(body))
        if not self._authorized():
            return
        m = re.match(r"^/(me|users/[^/]+)/messages/([^/]+)$", path)
        draft = self.graph.drafts.get(m.group(2)) if m else None
        if draft is None:
            self._fail(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return
        patch = json.loads(body or b"{}")
        for prop in patch.get("singleValueExtendedProperties", []):
            draft.properties[prop["id"]] = prop["value"]
        self._send(200, {"id": m.group(2), "isDraft": True})

    def do_PUT(self) -> None:
        path = self._path()
        if path is None:
            return
        body = self._body()
        self._record(path, len(body))
        m = re.match(r"^/upload/([^/]+)$", path)
        session = self.graph.uploads.get(m.group(1)) if m else None
        if session is None:
            self._fail(404, "ErrorItemNotFound", "No such upload session.")
            return
        if self.headers.get("Authorization"):
            # The upload URL carries its own authorization; Graph refuses a second one.
            self._fail(401, "InvalidAuthenticationToken", "Do not send an Authorization header to the upload URL.")
            return
        r = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", self.headers.get("Content-Range") or "")
        att = session.attachment
        if not r:
            self._fail(400, "InvalidContentRange", "Content-Range: bytes a-b/size expected.")
            return
        start, end, total = (int(x) for x in r.groups())
        length = end - start + 1
        last = end + 1 == att.size
        if (total != att.size or start != session.next_offset or length != len(body)
                or length > MAX_RANGE or (not last and length % RANGE_UNIT != 0)):
            self._fail(400, "InvalidContentRange",
                       f"Range {start}-{end}/{total} of {len(body)} bytes: expected from {session.next_offset} "
                       f"of {att.size}, a multiple of {RANGE_UNIT} bytes up to {MAX_RANGE} unless last.")
            return
        att.data += body
        session.next_offset = end + 1
        with self.graph._lock:
            self.graph.upload_ranges.append((start, end, total))
        if last:
            draft = self.graph.drafts[session.draft_id]
            draft.attachments.append(att)
            del self.graph.uploads[m.group(1)]
            self._send(201, None, {"Location": f"{self.graph.url}/me/messages('{session.draft_id}')"
                                               f"/attachments('{uuid.uuid4()}')"})
        else:
            self._send(200, {"expirationDateTime": _expiry(), "nextExpectedRanges": [f"{end + 1}-"]})

    def do_POST(self) -> None:
        path = self._path()
        if path is None:
            return
        body = self._body()
        self._record(path, len(body))
        if not self._authorized():
            return
        if self._fault(path):
            return
        m = re.match(r"^/(me|users/[^/]+)/sendMail$", path)
        if m:
            mime = self._mime(body)
            if mime is None:
                return
            self._sent(GraphMessage(self._mailbox(m.group(1)), mime, True, "sendMail", self.connection_number))
            self._send(202)
            return
        m = re.match(r"^/(me|users/[^/]+)/messages$", path)
        if m:
            mime = self._mime(body)
            if mime is None:
                return
            draft_id = "AAMk" + uuid.uuid4().hex
            with self.graph._lock:
                self.graph.drafts[draft_id] = Draft(self._mailbox(m.group(1)), mime)
            self._send(201, {"id": draft_id, "isDraft": True,
                             "subject": str(parse_mime(mime).get("Subject", ""))})
            return
        m = re.match(r"^/(me|users/[^/]+)/messages/([^/]+)/(send|attachments|attachments/createUploadSession)$",
                     path)
        draft = self.graph.drafts.get(m.group(2)) if m else None
        if draft is None:
            self._fail(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return
        action = m.group(3)
        if action == "send":
            with self.graph._lock:
                del self.graph.drafts[m.group(2)]
            keep = draft.properties.get(DELETE_AFTER_SUBMIT, "false").lower() != "true"
            sent = GraphMessage(draft.mailbox, draft.mime, keep, "draft", self.connection_number,
                                draft.attachments)
            self._sent(sent)
            self._send(202)
            return
        request = json.loads(body or b"{}")
        if action == "attachments":
            if request.get("@odata.type") != "#microsoft.graph.fileAttachment":
                self._fail(400, "ErrorInvalidRequest", "A fileAttachment is expected.")
                return
            data = base64.b64decode(request["contentBytes"])
            draft.attachments.append(Attachment(request["name"], request.get("contentType", ""), len(data),
                                                bool(request.get("isInline")), request.get("contentId"),
                                                bytearray(data), via="post"))
            self._send(201, {"id": str(uuid.uuid4()), "name": request["name"], "size": len(data)})
            return
        item = request.get("AttachmentItem")
        if not isinstance(item, dict) or item.get("attachmentType") != "file" or "name" not in item \
                or not isinstance(item.get("size"), int):
            self._fail(400, "ErrorInvalidRequest", "AttachmentItem with attachmentType file, name and size expected.")
            return
        session_id = uuid.uuid4().hex
        att = Attachment(item["name"], item.get("contentType", "application/octet-stream"), item["size"],
                         bool(item.get("isInline")), item.get("contentId"))
        with self.graph._lock:
            self.graph.uploads[session_id] = UploadSession(m.group(2), att)
        self._send(201, {
            "@odata.context": f"https://graph.microsoft.com{BASE}/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": f"https://127.0.0.1:{self.graph.port}/upload/{session_id}",
            "expirationDateTime": _expiry(),
            "nextExpectedRanges": ["0-"],
        })

    def _sent(self, message: GraphMessage) -> None:
        parse_mime(message.mime)  # a real parse: a garbled MIME fails the request here
        with self.graph.changed:
            self.graph.messages.append(message)
            self.graph.changed.notify_all()


def _expiry() -> str:
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    return t.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
