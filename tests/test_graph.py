"""Microsoft Graph sendMail as a transport (ABI §14), against the loopback
Graph server of tests/servers/graph.py: what it received (the MIME, parsed
with the standard library's parser), every outcome, the upload-session path
and the same merge through SMTP and Graph."""

from __future__ import annotations

import base64
import os
import threading
import time
from datetime import datetime, timezone

import pytest
import smtpbridge

from conftest import (
    AUTH,
    CONFIG,
    CONNECT,
    OK,
    RECIPIENT,
    REJECTED,
    SENDER,
    TLS,
    TRANSIENT,
    configure,
    expect_error,
    message,
)
from servers.graph import RANGE_UNIT, GraphServer
from servers.oidc import APP_CLIENT, APP_SECRET, OidcProvider

USER = "anna"
TOKEN_TTL = 3600


class Tokens:
    """Access tokens from the test authorization server (oidc-provider, client
    credentials); the Graph server checks them by the server's introspection."""

    def __init__(self, oidc: OidcProvider) -> None:
        self.oidc = oidc

    def issue(self) -> str:
        status, body = self.oidc.token_request({
            "grant_type": "client_credentials", "client_id": APP_CLIENT,
            "client_secret": APP_SECRET, "scope": "mail.send",
        })
        assert status == 200, body
        return body["access_token"]

    def check(self, token: str) -> dict:
        return self.oidc.introspect(token)


@pytest.fixture(scope="module")
def oidc():
    with OidcProvider() as provider:
        yield provider


@pytest.fixture
def tokens(oidc) -> Tokens:
    return Tokens(oidc)


@pytest.fixture
def graph(ca, tokens):
    users = {"me": {"id": "1", "mail": SENDER, "userPrincipalName": SENDER},
             "office@firm.example": {"id": "2", "mail": "office@firm.example"}}
    with GraphServer(ca.valid(), tokens.check, users) as g:
        yield g


def has_oauth2_keys(client) -> bool:
    """Whether this build has the library-run OAuth2 keys (ABI §13)."""
    try:
        client.config_get("SMTPOAuth2Provider")
        return True
    except smtpbridge.SmtpBridgeError as error:
        assert error.code == CONFIG and "unknown configuration key" in error.message, error.message
        return False


def graph_profile(client, graph, ca, tokens, profile=None, **extra):
    """Points ``client`` (or ``profile``) at the Graph server with a token for USER.

    With the ABI §13 keys present, the profile names the test authorization
    server as its OpenID provider, as §14 asks of a Graph profile.
    """
    prefix = f"{profile}." if profile else ""
    if has_oauth2_keys(client):
        for k, v in {"SMTPOAuth2Provider": "OpenID", "SMTPOAuth2Issuer": tokens.oidc.issuer,
                     "SMTPOAuth2ClientId": APP_CLIENT}.items():
            client.config_set(prefix + k, v)
    keys = {
        "SMTPTransport": "Graph",
        "SMTPGraphUrl": graph.url,
        "SMTPAuthModel": "OAuth2",
        "SMTPCaFile": str(ca.ca_pem_path),
        "SMTPConnectionTimeout": 5000,
    }
    keys.update(extra)
    for k, v in keys.items():
        client.config_set(prefix + k, v)
    client.credentials_set_oauth2(USER, SENDER, tokens.issue(), int(time.time()) + TOKEN_TTL)


@pytest.fixture
def sending(client, graph, ca, tokens):
    graph_profile(client, graph, ca, tokens)
    client.config_set("SMTPRetryInitialMs", 50)
    return client


def mail(**fields):
    return message(user=USER, **fields)


# --- configuration -------------------------------------------------------------


def test_keys_have_their_defaults_and_graph_url_is_checked(client):
    assert client.config_get("SMTPTransport") == "SMTP"
    assert client.config_get("SMTPGraphUrl") == "https://graph.microsoft.com/v1.0"
    assert client.config_get("SMTPGraphSaveToSentItems") == "true"
    client.config_set("SMTPTransport", "graph")
    assert client.config_get("SMTPTransport") == "Graph"
    client.config_set("SMTPGraphUrl", "http://127.0.0.1:9/v1.0/")
    assert client.config_get("SMTPGraphUrl") == "http://127.0.0.1:9/v1.0"
    error = expect_error(CONFIG, client.config_set, "SMTPGraphUrl", "http://graph.example.com/v1.0")
    assert "SMTPGraphUrl" in error.message and "loopback" in error.message
    error = expect_error(CONFIG, client.config_set, "SMTPTransport", "EWS")
    assert "SMTPTransport" in error.message and "Graph" in error.message
    error = expect_error(CONFIG, client.config_set, "SMTPGraphMailbox", "not an address")
    assert "SMTPGraphMailbox" in error.message


def test_a_whole_configuration_with_a_graph_profile_needs_oauth2(client):
    error = expect_error(CONFIG, client.config_load_json,
                         {"profiles": [{"name": "M365", "SMTPTransport": "Graph"}]})
    assert "SMTPAuthModel" in error.message and "M365" in error.message
    error = expect_error(CONFIG, client.config_import_keys, "SMTPTransport=Graph\nSMTPAuthentication=None\n")
    assert "SMTPAuthModel" in error.message
    profile = {"name": "M365", "SMTPTransport": "Graph", "SMTPAuthModel": "OAuth2"}
    if has_oauth2_keys(client):
        # Host-supplied tokens (provider None) are not enough for Graph.
        error = expect_error(CONFIG, client.config_load_json, {"profiles": [profile]})
        assert "SMTPOAuth2Provider" in error.message
        profile["SMTPOAuth2Provider"] = "Microsoft"
    # SMTPServer is not needed.
    client.config_load_json({"profiles": [profile]})
    exported = client.config_export_json()
    assert exported["profiles"][0]["SMTPTransport"] == "Graph"


def test_send_checks_the_graph_profile_naming_the_key(client, graph, ca, tokens):
    graph_profile(client, graph, ca, tokens, SMTPAuthModel="Basic")
    error = expect_error(CONFIG, client.send, mail())
    assert "SMTPAuthModel" in error.message
    assert graph.requests == []


# --- sending -------------------------------------------------------------------


def test_sends_the_mime_base64_to_me_sendmail(sending, graph):
    status = sending.send(mail(subject="Graph hello", cc=["cc@example.com"], bcc=["hidden@example.com"],
                               attachments=[{"content_base64": base64.b64encode(b"%PDF-1.4 x").decode(),
                                             "name": "inv.pdf"}]))
    assert status["state"] == "sent"
    assert status["transport"] == "graph"
    assert status["http_status"] == 202
    assert status["smtp_code"] is None and status["error_code"] == OK
    [sent] = graph.messages
    assert sent.via == "sendMail" and sent.mailbox == "me" and sent.save_to_sent_items
    request = [r for r in graph.requests if r["path"] == "/me/sendMail"][0]
    assert request["content_type"] == "text/plain"
    m = sent.message
    assert m["Subject"] == "Graph hello"
    assert m["Message-ID"] == status["message_id"]
    assert str(m["To"]) == RECIPIENT and str(m["Cc"]) == "cc@example.com"
    # Graph takes the recipients from the headers: the Bcc goes as Bcc.
    assert sorted(sent.recipients()) == sorted([RECIPIENT, "cc@example.com", "hidden@example.com"])
    assert m.get_body(("plain",)).get_content().strip() == "Hello from the smtpbridge tests."
    [att] = list(m.iter_attachments())
    assert att.get_filename() == "inv.pdf" and att.get_content() == b"%PDF-1.4 x"
    assert "DKIM-Signature" not in m


def test_dkim_does_not_apply_to_graph(client, graph, ca, tokens, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    key = tmp_path / "dkim.pem"
    key.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    graph_profile(client, graph, ca, tokens, SMTPDkimDomain="firm.example", SMTPDkimSelector="s1",
                  SMTPDkimKeyFile=str(key))
    assert client.send(mail())["state"] == "sent"
    assert "DKIM-Signature" not in graph.messages[0].message


def test_one_keep_alive_connection_carries_many_messages(sending, graph):
    for i in range(5):
        assert sending.send(mail(subject=f"n{i}"))["state"] == "sent"
    assert len(graph.messages) == 5
    assert graph.connections == 1


def test_blacklist_and_test_mode_apply_to_the_recipients_graph_sees(sending, graph):
    sending.blacklist_add("gone@example.com")
    sending.send(mail(to=[RECIPIENT, "gone@example.com"]))
    assert graph.messages[-1].recipients() == [RECIPIENT]
    sending.config_set("SMTPTestMode", True)
    sending.config_set("SMTPTestAddresses", "qa@firm.example")
    sending.send(mail(to=[RECIPIENT], cc=["cc@example.com"]))
    sent = graph.messages[-1]
    assert sent.recipients() == ["qa@firm.example"]
    assert RECIPIENT in sent.message["X-Original-To"]


def test_save_to_sent_items_false_goes_as_a_draft_kept_nowhere(sending, graph):
    sending.config_set("SMTPGraphSaveToSentItems", False)
    status = sending.send(mail(subject="no copy"))
    assert status["state"] == "sent" and status["http_status"] == 202
    [sent] = graph.messages
    assert sent.via == "draft" and not sent.save_to_sent_items
    assert sent.message["Subject"] == "no copy"


def test_save_to_sent_items_false_carries_bcc_in_the_drafts_mime(sending, graph):
    """The draft path (ABI §20): Graph takes the recipients from the MIME's
    headers, so a Bcc recipient is carried in a Bcc header of the draft."""
    sending.config_set("SMTPGraphSaveToSentItems", False)
    status = sending.send(mail(subject="hidden copy", cc=["cc@example.com"], bcc=["hidden@example.com"]))
    assert status["state"] == "sent" and status["http_status"] == 202
    [sent] = graph.messages
    assert sent.via == "draft" and not sent.save_to_sent_items
    m = sent.message
    assert str(m["To"]) == RECIPIENT and str(m["Cc"]) == "cc@example.com"
    assert str(m["Bcc"]) == "hidden@example.com"
    assert sorted(sent.recipients()) == sorted([RECIPIENT, "cc@example.com", "hidden@example.com"])
    posts = [r["path"] for r in graph.requests if r["method"] == "POST"]
    assert len(posts) == 2 and posts[0] == "/me/messages"
    assert posts[1].startswith("/me/messages/") and posts[1].endswith("/send")


def test_a_10_mb_attachment_goes_by_upload_session_byte_for_byte(sending, graph, tmp_path):
    data = os.urandom(10 * 1024 * 1024)
    path = tmp_path / "scan.bin"
    path.write_bytes(data)
    status = sending.send(mail(subject="big", attachments=[{"path": str(path), "name": "scan.bin"}]))
    assert status["state"] == "sent", status
    [sent] = graph.messages
    assert sent.via == "draft" and sent.save_to_sent_items
    assert len(sent.mime) < 3_000_000
    assert sent.message["Subject"] == "big"
    [att] = sent.attachments
    assert att.via == "upload" and att.name == "scan.bin" and att.size == len(data)
    assert bytes(att.data) == data
    ranges = graph.upload_ranges
    assert len(ranges) == 4
    for start, end, total in ranges[:-1]:
        assert (end - start + 1) % RANGE_UNIT == 0 and total == len(data)
    assert ranges[-1][1] == len(data) - 1
    puts = [r for r in graph.requests if r["method"] == "PUT"]
    assert puts and not any(r["authorization"] for r in puts)
    assert graph.drafts == {}


def test_archive_and_limits_apply_as_for_smtp(client, graph, ca, tokens, tmp_path):
    graph_profile(client, graph, ca, tokens, SMTPArchiveDir=str(tmp_path / "archive"),
                  SMTPSendLimit=2, SMTPSendLimitPeriod="Day")
    status = client.send(mail(subject="archived"))
    assert status["archive"] and os.path.isfile(status["archive"]["eml"])
    with open(status["archive"]["eml"], "rb") as f:
        assert f.read() == graph.messages[0].mime
    client.send(mail())
    from conftest import LIMIT
    expect_error(LIMIT, client.send, mail())
    assert len(graph.messages) == 2


def app_only(client, graph, ca, tokens, username=True):
    """A profile with SMTPOAuth2Flow=ClientCredentials: the library gets app
    tokens from the test authorization server itself."""
    graph_profile(client, graph, ca, tokens, SMTPOAuth2Flow="ClientCredentials", SMTPCredentials="Shared",
                  SMTPOAuth2ClientSecret=APP_SECRET, SMTPGraphMailbox="office@firm.example",
                  SMTPOAuth2Scopes="mail.send")
    if username:
        client.config_set("SMTPUsername", "office@firm.example")
    client.credentials_remove(USER)


def test_app_only_tokens_from_the_authorization_server_send_as_the_mailbox(client, graph, ca, tokens):
    """SMTPOAuth2Flow=ClientCredentials: /users/{SMTPGraphMailbox}."""
    if not has_oauth2_keys(client):
        pytest.skip("this build has no SMTPOAuth2Provider/SMTPOAuth2Flow (ABI §13 keys)")
    app_only(client, graph, ca, tokens)
    status = client.send(message())
    assert status["state"] == "sent"
    assert graph.messages[0].mailbox == "office@firm.example"
    report = client.test_connection(None, None)
    assert report["ok"] and report["mailbox"] == "office@firm.example"


def test_app_only_needs_no_smtpusername_the_mailbox_is_graphmailbox_else_the_sender(client, graph, ca, tokens):
    """ABI §20: over Graph the app token's mailbox is SMTPGraphMailbox, else
    the message's sender; SMTPUsername is not needed to send or to test."""
    app_only(client, graph, ca, tokens, username=False)
    assert client.send(message(subject="as the mailbox"))["state"] == "sent"
    report = client.test_connection(None, None)
    assert report["ok"] and report["mailbox"] == "office@firm.example"
    client.config_set("SMTPGraphMailbox", "")
    assert client.send(message(subject="as the sender"))["state"] == "sent"
    first, second = graph.messages
    assert (first.mailbox, first.message["Subject"]) == ("office@firm.example", "as the mailbox")
    assert (second.mailbox, second.message["Subject"]) == (SENDER, "as the sender")
    assert [r["path"] for r in graph.requests if r["method"] == "POST"] == [
        "/users/office@firm.example/sendMail", f"/users/{SENDER}/sendMail"]


# --- outcomes --------------------------------------------------------------------


def test_403_send_as_denied_is_rejected_with_graphs_code_and_message(sending, graph):
    graph.fail_next("403")
    error = expect_error(REJECTED, sending.send, mail())
    assert "ErrorSendAsDenied" in error.message
    status = error.status
    assert status["state"] == "failed" and status["http_status"] == 403
    assert "ErrorSendAsDenied" in status["error"] and "does not have the right" in status["error"]
    assert graph.messages == []


def test_400_is_rejected(sending, graph):
    graph.fail_next("400")
    error = expect_error(REJECTED, sending.send, mail())
    assert "ErrorInvalidRecipients" in error.message and "not valid" in error.message


def test_401_refreshes_once_then_auth_and_needs_credentials(sending, graph, tokens):
    events = []
    sending.set_event_callback(events.append)
    # A host-supplied token cannot be refreshed: the credential is read
    # again, and the same token is not tried twice.
    graph.fail_next("401")
    error = expect_error(AUTH, sending.send, mail())
    assert error.status["needs"] == "credentials" and error.status["http_status"] == 401
    assert graph.messages == []
    # In the outbox: deferred until new credentials, which release it at once.
    graph.fail_next("401")
    sending.config_set("SMTPRetryInitialMs", 600000)
    mid = sending.enqueue(mail(subject="after new token"))
    deadline = time.time() + 10
    while sending.status(mid)["state"] != "deferred" and time.time() < deadline:
        time.sleep(0.05)
    status = sending.status(mid)
    assert status["state"] == "deferred" and status["needs"] == "credentials" and status["error_code"] == AUTH
    sending.credentials_set_oauth2(USER, SENDER, tokens.issue(), int(time.time()) + TOKEN_TTL)
    assert sending.wait(mid, 10000)["state"] == "sent"
    assert [m.message["Subject"] for m in graph.messages] == ["after new token"]
    deadline = time.time() + 5
    while not any(e.get("type") == "credentials_needed" for e in events) and time.time() < deadline:
        time.sleep(0.05)
    assert any(e.get("type") == "credentials_needed" and e["user_id"] == USER for e in events)


def test_a_token_refused_once_is_replaced_and_the_message_sent(client, graph, ca, tokens):
    """401 once: the next token is used (a library-managed token is refreshed;
    a host-supplied one is read again, here stored by the host meanwhile)."""
    seen = []
    managed = has_oauth2_keys(client)
    if managed:
        app_only(client, graph, ca, tokens)
    else:
        graph_profile(client, graph, ca, tokens)

    def check(token):
        claims = tokens.check(token)
        if claims.get("active") and token not in seen:
            seen.append(token)
            if len(seen) == 1:  # the first token is refused once, as if revoked
                if not managed:
                    client.credentials_set_oauth2(USER, SENDER, tokens.issue(), int(time.time()) + TOKEN_TTL)
                return {"active": False}
        return claims

    graph.check_token = check
    assert client.send(mail())["state"] == "sent"
    assert len(seen) == 2 and len(graph.messages) == 1


@pytest.mark.parametrize("fault", ["429", "503", "504"])
def test_throttling_defers_no_earlier_than_retry_after(sending, graph, fault):
    graph.retry_after = 30
    graph.fail_next(fault)
    error = expect_error(TRANSIENT, sending.send, mail())
    assert error.status["http_status"] == int(fault)
    graph.fail_next(fault)
    before = time.time()
    mid = sending.enqueue(mail())
    deadline = time.time() + 10
    while sending.status(mid)["state"] != "deferred" and time.time() < deadline:
        time.sleep(0.05)
    status = sending.status(mid)
    assert status["state"] == "deferred" and status["error_code"] == TRANSIENT
    due = datetime.strptime(status["next_attempt_at"].split(".")[0].rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
    due = due.replace(tzinfo=timezone.utc).timestamp()
    assert due >= before + 29, (due - before)
    sending.retry(mid)
    assert sending.wait(mid, 10000)["state"] == "sent"


def test_a_dropped_connection_after_the_request_is_a_possible_duplicate(sending, graph):
    graph.fail_next("drop")
    error = expect_error(TRANSIENT, sending.send, mail())
    assert error.status["possible_duplicate"] is True
    # A new connection carries the next message.
    assert sending.send(mail())["state"] == "sent"
    assert graph.connections == 2


def test_connect_failure_is_connect(sending):
    from conftest import ClosedPort
    sending.config_set("SMTPGraphUrl", f"https://127.0.0.1:{ClosedPort().port}/v1.0")
    error = expect_error(CONNECT, sending.send, mail())
    assert error.status["possible_duplicate"] is False


# --- test_connection --------------------------------------------------------------


def test_connection_reads_the_mailbox(sending, graph):
    report = sending.test_connection(None, USER)
    assert report["ok"] is True and report["stage"] == "done"
    assert report["mailbox"] == SENDER and report["http_status"] == 200
    assert [r["path"] for r in graph.requests] == ["/me"]
    assert graph.messages == []


def test_connection_stages_on_failure(sending, graph, tokens, ca, tmp_path):
    # A token the authorization server never issued: introspection says inactive.
    sending.credentials_set_oauth2(USER, SENDER, "not-a-token-" + os.urandom(8).hex(), int(time.time()) + 60)
    error = expect_error(AUTH, sending.test_connection, None, USER)
    assert error.report["stage"] == "auth" and error.report["ok"] is False
    from servers import CertAuthority
    other = CertAuthority(tmp_path / "other")
    sending.config_set("SMTPCaFile", str(other.ca_pem_path))
    error = expect_error(TLS, sending.test_connection, None, USER)
    assert error.report["stage"] == "tls"
    from conftest import ClosedPort
    sending.config_set("SMTPGraphUrl", f"https://127.0.0.1:{ClosedPort().port}/v1.0")
    error = expect_error(CONNECT, sending.test_connection, None, USER)
    assert error.report["stage"] == "connect"


# --- merge through SMTP and Graph ---------------------------------------------------


def test_the_same_merge_through_smtp_and_graph_gives_the_same_messages(client, server, graph, ca, tokens):
    configure(client, server, profile="Relay")
    graph_profile(client, graph, ca, tokens, profile="M365")
    template = {"from": SENDER, "user": USER, "subject": "Invoice {{Ref}}",
                "html": "<p>Dear {{Name}},</p><p>invoice {{Ref}}</p>", "text": "Dear {{Name}}, invoice {{Ref}}"}
    people = [{"email": f"r{i:03d}@example.com", "name": f"R {i}",
               "fields": {"Name": f"Client <{i}>", "Ref": f"INV-{i:04d}"}} for i in range(200)]
    smtp_batch = client.merge({**template, "profile": "Relay"}, people)
    graph_batch = client.merge({**template, "profile": "M365"}, people)
    client.flush(60000)
    for batch in (smtp_batch, graph_batch):
        assert client.batch_status(batch["batch_id"])["sent"] == 200
    smtp_msgs = server.wait_for(200) if hasattr(server, "wait_for") else server.messages
    graph_msgs = graph.wait_for(200)

    def key(m):
        return (str(m["To"]), str(m["Subject"]), m.get_body(("html",)).get_content(),
                m.get_body(("plain",)).get_content())

    smtp_set = sorted(key(m.parsed) for m in smtp_msgs)
    graph_set = sorted(key(m.message) for m in graph_msgs)
    assert len(smtp_set) == len(graph_set) == 200
    assert smtp_set == graph_set
    assert all(m.recipients() == [str(m.message["To"]).split("<")[-1].rstrip(">")] for m in graph_msgs)
    assert graph.connections <= 2
