#!/usr/bin/env python3
"""Writes the seeds of the fuzz targets added for issue 21 (fuzz/seeds/<target>/).

Run from the repository root with the library built (scripts/env.sh sets
SMTPBRIDGE_LIBRARY): `python fuzz/make_seeds.py`. The credential store seeds
are made by the library through the Python binding; the low-iteration copies
are that store sealed again with the same format (see src/credentials.rs), so
the fuzzer gets past the key check within its time budget. Layouts: see
src/fuzzing.rs.
"""

import base64
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "seeds"
sys.path.insert(0, str(ROOT / "bindings" / "python"))


def write(target: str, name: str, data: bytes) -> None:
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def pieces(sizes: list, stream: bytes) -> bytes:
    """The stream targets' layout: a count, the piece sizes, the stream."""
    assert len(sizes) < 16
    return bytes([len(sizes)] + sizes) + stream


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def jwt(claims: dict) -> str:
    header = {"alg": "RS256", "kid": "nOo3ZDrODXEK1jKWhXslHR_KXEg", "typ": "JWT"}
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()), b64url(b"\x5a" * 256)])


ID_CLAIMS = {
    "aud": "6731de76-14a6-49ae-97bc-6eba6914391e",
    "iss": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
    "iat": 1764867495,
    "nbf": 1764867495,
    "exp": 1764871395,
    "name": "Alice Example",
    "oid": "00000000-0000-0000-66f3-3332eca7ea81",
    "preferred_username": "alice@contoso.example",
    "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
    "tid": "9188040d-6c67-4c5b-b112-36a304b66dad",
    "uti": "AbCdEf12345",
    "ver": "2.0",
}

POSTFIX = (
    b"220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n"
    b"250-mail.example.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    b"250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
    b"250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
)
M365 = (
    b"220 AM0PR10CA0001.outlook.office365.com Microsoft ESMTP MAIL Service ready at "
    b"Fri, 4 Dec 2026 16:58:15 +0000 [08DD1234ABCD5678]\r\n"
    b"250-AM0PR10CA0001.outlook.office365.com Hello [203.0.113.7]\r\n250-SIZE 157286400\r\n"
    b"250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH LOGIN XOAUTH2\r\n"
    b"250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"
    b"535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. "
    b"Visit https://aka.ms/smtp_auth_disabled for more information. "
    b"[AM0PR10CA0001.EURPRD10.PROD.OUTLOOK.COM 2026-12-04T16:58:15.123Z 08DD1234ABCD5678]\r\n"
)
TRANSACTION = (
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
    b"550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in local recipient table\r\n"
    b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4Xk2Lq0Z3Nz9rPd\r\n221 2.0.0 Bye\r\n"
)
TRANSIENT = (
    b"451 4.7.1 <a@example.test>: Recipient address rejected: Greylisted, see "
    b"http://postgrey.schweikert.ch/help/example.test.html\r\n"
    b"452 4.3.1 Insufficient system storage\r\n421 4.4.2 mail.example.test Error: timeout exceeded\r\n"
)


def smtp_seeds() -> None:
    write("smtp_reply", "postfix-ehlo.bin", pieces([1, 7, 0, 13], POSTFIX))
    write("smtp_reply", "m365-ehlo-auth-disabled.bin", pieces([64, 3, 200], M365))
    write("smtp_reply", "postfix-transaction-bytewise.bin", pieces([1], TRANSACTION))
    write("smtp_reply", "transient-lf-only.bin", pieces([5, 0], TRANSIENT.replace(b"\r\n", b"\n")))
    # A line just over the 8192-byte bound whose LF comes with the last
    # piece: refused however the pieces fall (it once passed).
    write("smtp_reply", "long-line-split.bin", pieces([255], b"250 " + b"a" * 8189 + b"\r\n250 ok\r\n"))


def http(status: str, headers: list, body: bytes, chunked: bool = False) -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    if chunked:
        out = b""
        for i in range(0, len(body), 37):
            part = body[i:i + 37]
            out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + out + b"0\r\n\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


GRAPH_ERROR = json.dumps({"error": {
    "code": "ErrorAccessDenied",
    "message": "Access is denied. Check credentials and try again.",
    "innerError": {"date": "2026-12-04T16:58:15", "request-id": "3b6a2f4e-5a4f-4c1e-8f0e-2d9b1c7a6e5d",
                   "client-request-id": "3b6a2f4e-5a4f-4c1e-8f0e-2d9b1c7a6e5d"}}}).encode()
THROTTLED = json.dumps({"error": {
    "code": "ApplicationThrottled", "message": "Application is over its MailboxConcurrency limit."}}).encode()
TOKEN = json.dumps({
    "token_type": "Bearer",
    "scope": "https://outlook.office.com/SMTP.Send offline_access openid profile email",
    "expires_in": 4441, "ext_expires_in": 4441,
    "access_token": "eyJ0eXAiOiJKV1QiLCJub25jZSI6IkFRQUJBQUFBQUFC" + "x" * 600,
    "refresh_token": "0.AXEAyWdBnF2kw0-" + "r" * 400,
    "id_token": jwt(ID_CLAIMS),
}).encode()
TOKEN_ERROR = json.dumps({
    "error": "invalid_grant",
    "error_description": "AADSTS70000: The provided value for the 'refresh_token' is not valid.\r\n"
                         "Trace ID: 0a1b2c3d-0000-4000-8000-000000000000\r\nTimestamp: 2026-12-04 16:58:15Z",
    "error_codes": [70000], "timestamp": "2026-12-04 16:58:15Z",
    "trace_id": "0a1b2c3d-0000-4000-8000-000000000000", "error_uri": "https://login.microsoftonline.com/error?code=70000",
}).encode()
GOOGLE_TOKEN = json.dumps({
    "access_token": "ya29.a0AfB_byC" + "g" * 150, "expires_in": "3599", "scope": "https://mail.google.com/",
    "token_type": "Bearer", "id_token": jwt({"iss": "https://accounts.google.com", "email": "bob@gmail.example",
                                              "email_verified": True, "sub": "110169484474386276334"}),
}).encode()
DISCOVERY = {
    "token_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
    "jwks_uri": "https://login.microsoftonline.com/common/discovery/v2.0/keys",
    "response_modes_supported": ["query", "fragment", "form_post"],
    "subject_types_supported": ["pairwise"],
    "id_token_signing_alg_values_supported": ["RS256"],
    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
    "scopes_supported": ["openid", "profile", "email", "offline_access"],
    "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
    "request_uri_parameter_supported": False,
    "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
    "authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "device_authorization_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
    "http_logout_supported": True, "frontchannel_logout_supported": True,
    "end_session_endpoint": "https://login.microsoftonline.com/common/oauth2/v2.0/logout",
    "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                         "name", "tid", "ver", "at_hash", "c_hash", "email"],
    "kerberos_endpoint": "https://login.microsoftonline.com/common/kerberos",
    "tenant_region_scope": None, "cloud_instance_name": "microsoftonline.com",
    "cloud_graph_host_name": "graph.windows.net", "msgraph_host": "graph.microsoft.com",
    "rbac_url": "https://pas.windows.net",
}
JSON_HEADERS = [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store, no-cache"),
                ("Pragma", "no-cache"), ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
                ("x-ms-request-id", "0a1b2c3d-0000-4000-8000-000000000000")]


def framed(*answers: tuple) -> bytes:
    """The framed layout of the OAuth2 and Graph targets (bit 7 of byte 0 clear)."""
    return b"\n===\n".join(status.encode() + body for status, body in answers)


def http_seeds() -> None:
    write("http_response", "token-chunked.bin", pieces([], http("200 OK", JSON_HEADERS, TOKEN, chunked=True)))
    write("http_response", "graph-429-retry-after.bin",
          pieces([9, 0, 200], http("429 Too Many Requests", JSON_HEADERS + [("Retry-After", "17")], THROTTLED)))
    write("http_response", "graph-202-empty.bin",
          pieces([], b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nrequest-id: 1f2e\r\n\r\n"))
    write("http_response", "close-delimited.bin",
          pieces([3], b"HTTP/1.0 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                 + TOKEN_ERROR))


def oauth_seeds() -> None:
    write("oauth2_token", "entra-token.bin", b"\x00" + framed(("200", TOKEN)))
    write("oauth2_token", "google-token.bin", b"\x00" + framed(("200", GOOGLE_TOKEN)))
    write("oauth2_token", "entra-invalid_grant-error.bin", b"\x00" + framed(("400", TOKEN_ERROR)))
    write("oauth2_token", "raw-chunked-token.bin",
          b"\x80" + pieces([17, 0], http("200 OK", JSON_HEADERS, TOKEN, chunked=True)))
    write("oauth2_discovery", "entra-common.bin", b"\x00" + framed(("200", json.dumps(DISCOVERY).encode())))
    loopback = {"issuer": "http://127.0.0.1:9", "token_endpoint": "http://127.0.0.1:9/token",
                "authorization_endpoint": "http://127.0.0.1:9/auth",
                "device_authorization_endpoint": "http://localhost:9/device/code",
                "jwks_uri": "http://127.0.0.1:9/jwks", "grant_types_supported": ["authorization_code",
                                                                             "refresh_token"]}
    write("oauth2_discovery", "oidc-provider-loopback.bin",
          b"\x80" + pieces([], http("200 OK", JSON_HEADERS, json.dumps(loopback).encode(), chunked=True)))
    write("id_token", "entra-v2.txt", jwt(ID_CLAIMS).encode())
    write("id_token", "google-email.txt",
          jwt({"iss": "https://accounts.google.com", "email": "bob@gmail.example", "sub": "1101694"}).encode())
    write("id_token", "padded-no-username.txt", (b64url(b"{}") + "." + b64url(b'{"sub":"x"}') + "==.sig").encode())


def graph_seeds() -> None:
    created = json.dumps({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('x')/messages/$entity",
                          "@odata.etag": "W/\"CQAAABYAAAD\"",
                          "id": "AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5e-T7KzowPTAAAAAAEMAAAiIsqMbYjsT5e-T7KzowPTAAAYbvZDAAA=",
                          "subject": "fuzz", "isDraft": True}).encode()
    write("graph", "sendmail-202.bin", b"\x01" + framed(("202", b"")))
    write("graph", "sendmail-403-access-denied.bin", b"\x01" + framed(("403", GRAPH_ERROR)))
    write("graph", "sendmail-429-throttled.bin", b"\x81" + pieces(
        [], http("429 Too Many Requests", JSON_HEADERS + [("Retry-After", "30")], THROTTLED)))
    write("graph", "draft-create-patch-send.bin",
          b"\x00" + framed(("201", created), ("200", created), ("202", b"")))
    write("graph", "draft-no-id-then-delete.bin", b"\x00" + framed(("201", b'{"subject":"x"}'), ("204", b"")))
    write("graph", "draft-401.bin", b"\x00" + framed(("401", json.dumps({"error": {
        "code": "InvalidAuthenticationToken", "message": "Lifetime validation failed, the token is expired."}})
        .encode())))


def outbox_seeds() -> None:
    write("outbox_query", "all-filters.json", json.dumps({
        "state": ["queued", "failed", "sent"], "batch_id": "b-01HZX", "reference": "INV-2026-0042",
        "reference_prefix": "INV-", "profile": "Default", "since": "2026-01-01T00:00:00Z",
        "until": "2026-12-31T23:59:59+01:00", "limit": 50, "cursor": None}).encode())
    write("outbox_query", "empty.json", b"{}")
    write("outbox_purge", "before-and-states.txt", b"2026-12-01T00:00:00Z\0[\"sent\",\"cancelled\",\"failed\"]")
    write("outbox_purge", "before-only.txt", b"2026-12-04T16:58:15.123+02:00")
    template = {"subject": "Invoice {{Number}} for {{Name}}", "text": "Dear {{Name}},\nyour invoice {{Number}}.",
                "html": "<p>Dear {{Name}},</p><p>Total: {{Total}} &euro;</p>", "reference": "merge-1",
                "idempotency_key": "merge-1"}
    recipients = [
        {"email": "anna@example.test", "name": "Anna Müller", "fields": {"Name": "Anna", "Number": 1, "Total": 9.5},
         "reference": "INV-1"},
        {"email": "bo@example.test", "fields": {"Name": "<Bo & Co>", "Number": "2", "Total": True},
         "cc": [{"email": "acct@example.test"}],
         "attachments": [{"name": "a.txt", "content_type": "text/plain",
                          "content_base64": base64.b64encode(b"hello").decode()}]},
    ]
    write("merge", "invoices.txt", json.dumps(template).encode() + b"\0" + json.dumps(recipients).encode())


def dkim_seeds() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    for name, fmt in [("rsa1024-pkcs1.pem", serialization.PrivateFormat.TraditionalOpenSSL),
                      ("rsa1024-pkcs8.pem", serialization.PrivateFormat.PKCS8)]:
        write("dkim_pem", name, key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    ed = ed25519.Ed25519PrivateKey.generate()
    write("dkim_pem", "ed25519-pkcs8.pem", ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


SECRET = "fuzz-master-secret"  # fuzzing::CREDENTIALS_SECRET


def reseal(store: dict, iterations: int) -> dict:
    """The store sealed again under a key of `iterations` PBKDF2 rounds."""
    salt = base64.b64decode(store["salt"])
    old = AESGCM(hashlib.pbkdf2_hmac("sha256", SECRET.encode(), salt, store["iterations"], 32))
    new = AESGCM(hashlib.pbkdf2_hmac("sha256", SECRET.encode(), salt, iterations, 32))

    def again(sealed: dict, aad: bytes) -> dict:
        nonce = base64.b64decode(sealed["nonce"])
        plain = old.decrypt(nonce, base64.b64decode(sealed["ciphertext"]), aad)
        return {"nonce": sealed["nonce"], "ciphertext": base64.b64encode(new.encrypt(nonce, plain, aad)).decode()}

    out = dict(store, iterations=iterations)
    out["check"] = again(store["check"], b"check")
    entries = []
    for e in store["entries"]:
        user = f"user:{e['user_id']}" if e["user_id"] is not None else "shared"
        kind = {"password": "Password", "oauth2": "Oauth2"}[e["kind"]]
        aad = f"smtpbridge-credential-v1\0{user}\0{e['username']}\0{kind}\0{e['expires_at']}".encode()
        sealed = again({"nonce": e["nonce"], "ciphertext": e["ciphertext"]}, aad)
        entries.append(dict(e, **sealed))
    out["entries"] = entries
    return out


def add_refresh(store: dict, iterations: int) -> dict:
    """A refresh token and a client secret, sealed as the library seals them."""
    salt = base64.b64decode(store["salt"])
    key = AESGCM(hashlib.pbkdf2_hmac("sha256", SECRET.encode(), salt, iterations, 32))

    def seal(plain: bytes, aad: bytes, nonce: bytes) -> dict:
        return {"nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(key.encrypt(nonce, plain, aad)).decode()}

    out = json.loads(json.dumps(store))
    for e in out["entries"]:
        if e["kind"] == "oauth2":
            e["provider"] = "Microsoft"
            e["refresh"] = seal(b"0.AXEA-refresh", f"smtpbridge-refresh-v1\0user:{e['user_id']}\0Microsoft".encode(),
                                b"\x01" * 12)
    out["client_secrets"] = [dict(profile="Default", **seal(b"app-secret", b"smtpbridge-client-secret-v1\0default",
                                                             b"\x02" * 12))]
    return out


def credential_seeds() -> None:
    import smtpbridge  # the binding, over SMTPBRIDGE_LIBRARY

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        client = smtpbridge.Client(data_dir, secret=SECRET)
        client.credentials_set(None, "shared@example.test", "shared password")
        client.credentials_set("alice", "alice@example.test", "p\u00e4ssw\u00f6rd")
        client.credentials_set_oauth2("bob", "bob@contoso.example", "eyJ0eXAiOiJKV1Qi.access", 1764871395)
        client.close()
        made = json.loads((data_dir / "credentials.json").read_text())
    write("credentials", "library-made.json", json.dumps(made, indent=2).encode())
    low = reseal(made, 100)
    write("credentials", "library-made-100-iterations.json", json.dumps(low, indent=2).encode())
    write("credentials", "refresh-and-client-secret-100-iterations.json",
          json.dumps(add_refresh(low, 100), indent=2).encode())
    v1 = dict(reseal(made, 1), format=1)
    write("credentials", "format-1-one-iteration.json", json.dumps(v1).encode())


if __name__ == "__main__":
    os.chdir(ROOT)
    smtp_seeds()
    http_seeds()
    oauth_seeds()
    graph_seeds()
    outbox_seeds()
    dkim_seeds()
    credential_seeds()
