"""Diagnostics (ABI.md §15): log callback and log file, transcripts, advice, the probe.

Every server is a loopback server started here; assertions are on what the
server saw and on what the library reported.
"""

from __future__ import annotations

import base64
import logging
import json
import ssl
import socket
import threading
import time
from pathlib import Path

import pytest

import smtpbridge
from conftest import (AUTH, CONNECT, REJECTED, TLS, TRANSIENT, ClosedPort, configure, expect_error, message,
                      timed)
from servers import HANG, RecordingServer, Script, ScriptedServer

USER = "diag-user@firm.example"
PASSWORD = "Diag-Secret-Pw-4711"
BODY = "Confidential body text that must never reach a transcript."


def failed(client, code, msg=None):
    """Send; it must fail with ``code``. Returns (status, error)."""
    error = expect_error(code, client.send, msg or message())
    return error.status, error


def advice_key(status):
    return (status.get("advice") or {}).get("key")


# --- transcripts -------------------------------------------------------------------------


def test_transcript_of_starttls_auth_login_two_recipients_matches_the_server(client, ca):
    script = Script(tls_context=ca.valid().server_context(),
                    ehlo_caps=["PIPELINING", "STARTTLS"], ehlo_caps_tls=["PIPELINING", "AUTH LOGIN"])
    with ScriptedServer(script) as server:
        configure(client, server, ca=ca, encryption="TLS", auth=True, SMTPTranscript="All")
        client.credentials_set(None, USER, PASSWORD)
        status = client.send(message(to=["a@example.com", "b@example.com"], text=BODY))
        server.wait_for(1)
        seen = server.lines
    [attempt] = client.transcript(status["id"])
    assert attempt["attempt"] == 1 and attempt["transport"] == "smtp"
    assert attempt["server"] == f"127.0.0.1:{server.port}"
    sent = [line["text"] for line in attempt["lines"] if line["dir"] == "C"]
    # Line for line what the server saw, with the AUTH LOGIN answers masked.
    expected = [line.text if line.verb is not None else "********" for line in seen]
    assert sent == expected[:len(sent)]
    assert seen[len(sent):] == [], "the session is pooled: no QUIT yet"
    assert sent.count("********") == 2
    assert "AUTH LOGIN" in sent and "RCPT TO:<a@example.com>" in sent and "RCPT TO:<b@example.com>" in sent
    replies = [line["text"] for line in attempt["lines"] if line["dir"] == "S"]
    assert replies[0].startswith("220 ") and any(r.startswith("235") for r in replies)
    notes = [line["text"] for line in attempt["lines"] if line["dir"] == "*"]
    assert any(n.startswith("DATA: ") and n.endswith(" bytes") for n in notes), notes
    assert any("TLSv1." in n and "certificate subject" in n for n in notes), notes
    text = json.dumps(attempt)
    for secret in (PASSWORD, base64.b64encode(PASSWORD.encode()).decode(), base64.b64encode(USER.encode()).decode(),
                   BODY, "Confidential"):
        assert secret not in text
    ms = [line["ms"] for line in attempt["lines"]]
    assert ms == sorted(ms)


def test_transcript_failures_mode_keeps_only_failed_attempts(client):
    with ScriptedServer(Script(replies={"DOT": ["250 2.0.0 OK", "554 5.7.1 rejected by policy"]})) as server:
        configure(client, server)
        ok = client.send(message())
        status, _ = failed(client, REJECTED)
    assert client.transcript(ok["id"]) == []
    [attempt] = client.transcript(status["id"])
    assert any(line["text"].startswith("554 5.7.1") for line in attempt["lines"] if line["dir"] == "S")
    assert any(line["text"].startswith("failed: ") for line in attempt["lines"] if line["dir"] == "*")
    expect_error(smtpbridge.NotFoundError.code, client.transcript, "01JD0000000000000000000000")


def test_transcripts_persist_in_data_dir_and_keep_the_last_five_attempts(tmp_path):
    with ScriptedServer(Script(replies={"RCPT": ["451 4.3.0 try later"] * 10})) as server:
        with smtpbridge.Client(tmp_path / "data") as c:
            configure(c, server, SMTPRetryInitialMs=1, SMTPRetryMaxMs=1)
            mid = c.enqueue(message())
            deadline = time.monotonic() + 10
            while c.status(mid)["attempts"] < 7 and time.monotonic() < deadline:
                time.sleep(0.05)
            c.outbox_pause(None)
            # The attempt under way when the pause came ends deferred, and
            # the paused outbox starts no other.
            deadline = time.monotonic() + 10
            while c.status(mid)["state"] != "deferred":
                assert time.monotonic() < deadline, c.status(mid)
                time.sleep(0.02)
            attempts = c.transcript(mid)
        assert len(attempts) == 5
        numbers = [a["attempt"] for a in attempts]
        assert numbers == sorted(numbers) and numbers[-1] >= 6
        assert (tmp_path / "data" / "transcripts" / f"{mid}.json").is_file()
        with smtpbridge.Client(tmp_path / "data", paused=True) as again:
            assert [a["attempt"] for a in again.transcript(mid)] == numbers


def test_transcript_off_keeps_nothing(client):
    with ScriptedServer(Script(replies={"DOT": ["554 5.6.0 no"]})) as server:
        configure(client, server, SMTPTranscript="Off")
        status, _ = failed(client, REJECTED)
    assert client.transcript(status["id"]) == []


# --- log lines ------------------------------------------------------------------------------


def test_log_callback_gets_tagged_lines_on_the_event_thread(client, server):
    lines, threads = [], set()
    client.set_log_callback(lambda line: (lines.append(line), threads.add(threading.current_thread().name)), 4)
    configure(client, server)
    status = client.send(message())
    deadline = time.monotonic() + 5
    while not any(line.get("id") == status["id"] and "sent" in line["message"] for line in lines):
        assert time.monotonic() < deadline, lines
        time.sleep(0.02)
    line = next(line for line in lines if line.get("id") == status["id"] and "sent" in line["message"])
    assert set(line) >= {"time", "level", "target", "message", "id", "profile"}
    assert line["level"] == "info" and line["profile"] == "Default" and line["target"].startswith("smtpbridge")
    assert any("session opened" in line["message"] for line in lines)
    assert any("configuration changed" in line["message"] for line in lines)
    assert threading.current_thread().name not in threads
    with pytest.raises(ValueError):
        client.set_log_callback(lambda line: None, 9)


def test_log_lines_go_to_their_own_client_only(server):
    with smtpbridge.Client() as a, smtpbridge.Client() as b:
        got_a, got_b = [], []
        a.set_log_callback(got_a.append, 3)
        b.set_log_callback(got_b.append, 3)
        configure(a, server)
        status = a.send(message())
        # Each client's lines come in order: once b has a line of its own
        # made after the send, a line of a's send would be in before it.
        b.config_set("SMTPHeloName", "marker.example")
        deadline = time.monotonic() + 5
        while not (any(line.get("id") == status["id"] for line in got_a)
                   and any("configuration changed" in line["message"] for line in got_b)):
            assert time.monotonic() < deadline, (got_a, got_b)
            time.sleep(0.02)
    assert not any(line.get("id") == status["id"] for line in got_b)


def test_a_slow_log_callback_does_not_slow_delivery(client, server):
    configure(client, server)
    client.send(message())  # a warm session
    started = time.monotonic()
    for _ in range(5):
        client.send(message())
    quick = time.monotonic() - started

    client.set_log_callback(lambda line: time.sleep(0.5), 5)
    started = time.monotonic()
    for _ in range(5):
        client.send(message())
    with_slow_callback = time.monotonic() - started
    server.wait_for(11)
    # 5 sends log at least 10 lines: waiting for the callback would take 5 s.
    assert with_slow_callback < max(1.0, quick * 5), (quick, with_slow_callback)
    client.set_log_callback(None)


def test_log_file_gets_lines_and_rotates(client, server, tmp_path):
    log = tmp_path / "logs" / "smtpbridge.log"
    log.parent.mkdir()
    configure(client, server)
    client.configure(SMTPLogFile=str(log), SMTPLogLevel="Debug", SMTPLogMaxBytes=4096)
    for _ in range(39):
        client.send(message())
    last = client.send(message())["id"]
    deadline = time.monotonic() + 5
    while f"[{last} Default]: sent (attempt 1)" not in log.read_text():
        assert time.monotonic() < deadline, "the last send's line never reached the log file"
        time.sleep(0.02)
    text = "\n".join(p.read_text() for p in log.parent.iterdir())
    assert "reusing a session" in text  # Debug: every send after the first, on the pooled session
    assert " INFO " in text and "sent (attempt 1)" in text
    old = sorted(p.name for p in log.parent.iterdir() if p.name != log.name)
    assert old and all(name.startswith("smtpbridge.log.") for name in old) and len(old) <= 5, old
    assert log.stat().st_size < 4096 + 1024


def test_an_unwritable_log_file_never_fails_a_send(client, server, tmp_path):
    """Setting a log file that cannot be opened is CONFIG (tests/test_honest_failures.py);
    one that stops being writable later costs its lines, never a send."""
    folder = tmp_path / "logs"
    folder.mkdir()
    configure(client, server, SMTPLogFile=str(folder / "smtpbridge.log"), SMTPLogLevel="Trace")
    for entry in folder.iterdir():
        entry.unlink()
    folder.rmdir()
    folder.write_text("a file where the log's folder should be")
    for _ in range(3):
        assert client.send(message())["state"] == "sent"
    server.wait_for(3)


def test_log_level_and_transcript_keys_are_checked(client):
    for key, bad in (("SMTPLogLevel", "Loud"), ("SMTPTranscript", "Some"), ("SMTPLogFile", "relative.log"),
                     ("SMTPLogMaxBytes", "10")):
        error = expect_error(smtpbridge.ConfigError.code, client.config_set, key, bad)
        assert key in error.message
    assert client.config_get("SMTPTranscript") == "Failures"
    assert client.config_get("SMTPLogLevel") == "Info"


# --- advice -----------------------------------------------------------------------------


REPLY_ADVICE = [
    ("AUTH", "535 5.7.139 Authentication unsuccessful, basic authentication is disabled", AUTH, "basic_auth_disabled"),
    ("AUTH", "535 5.7.8 Authentication credentials invalid", AUTH, "auth_failed"),
    ("AUTH", "504 5.7.4 Unrecognized authentication type", AUTH, "auth_mechanism_unsupported"),
    ("RCPT", "550 5.7.1 Relaying denied", REJECTED, "relay_denied"),
    ("MAIL", "550 5.7.57 Client not authenticated to send mail", REJECTED, "relay_denied"),
    ("MAIL", "550 5.7.60 SMTP; Client does not have permissions to send as this sender", REJECTED,
     "sender_not_allowed"),
    ("RCPT", "550 5.1.1 No such user", REJECTED, "recipient_unknown"),
    ("RCPT", "550 5.1.10 Recipient not found", REJECTED, "recipient_unknown"),
    ("DOT", "552 5.2.2 Mailbox full", REJECTED, "mailbox_full"),
    ("RCPT", "452 4.2.2 Mailbox full", TRANSIENT, "mailbox_full"),
    ("DOT", "552 5.3.4 Message size exceeds fixed limit", REJECTED, "message_too_large"),
    ("MAIL", "421 4.7.0 Too many messages, slow down", TRANSIENT, "throttled"),
    ("RCPT", "452 4.3.1 Insufficient system storage", TRANSIENT, "throttled"),
    ("RCPT", "452 4.5.3 Too many recipients", TRANSIENT, "too_many_recipients"),
]


@pytest.mark.parametrize("point,reply,code,key", REPLY_ADVICE, ids=[r[3] + "-" + r[1][:9] for r in REPLY_ADVICE])
def test_advice_for_server_replies(client, point, reply, code, key):
    auth = point == "AUTH"
    script = Script(replies={point: [reply] * 5}, ehlo_caps=["AUTH PLAIN LOGIN"])
    with ScriptedServer(script) as server:
        configure(client, server, auth=auth, SMTPAllowPlaintextAuth=True)
        if auth:
            client.credentials_set(None, USER, PASSWORD)
        status, error = failed(client, code)
    assert status["state"] == "failed"
    assert advice_key(status) == key, status
    assert f"Advice ({key}): " in error.message and status["advice"]["text"] in error.message


def test_advice_in_deferred_status_of_the_outbox(client):
    with ScriptedServer(Script(replies={"RCPT": ["452 4.5.3 Too many recipients"] * 20})) as server:
        configure(client, server)
        mid = client.enqueue(message())
        deadline = time.monotonic() + 5
        while client.status(mid)["state"] != "deferred":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        status = client.status(mid)
    assert advice_key(status) == "too_many_recipients"


def test_advice_starttls_unavailable(client):
    with ScriptedServer(Script(ehlo_caps=["PIPELINING"])) as server:
        configure(client, server, encryption="TLS")
        status, _ = failed(client, TLS)
    assert advice_key(status) == "starttls_unavailable"


def test_advice_no_common_auth_mechanism(client):
    with ScriptedServer(Script(ehlo_caps=["AUTH CRAM-MD5"])) as server:
        configure(client, server, auth=True, SMTPAllowPlaintextAuth=True)
        client.credentials_set(None, USER, PASSWORD)
        status, _ = failed(client, AUTH)
    assert advice_key(status) == "auth_mechanism_unsupported"


def test_encryption_mismatch_ssl_against_a_starttls_port(client, ca):
    with ScriptedServer(Script(tls_context=ca.valid().server_context())) as server:
        configure(client, server, ca=ca, encryption="SSL")
        status, error = failed(client, TLS)
    assert advice_key(status) == "encryption_mismatch"
    assert "SMTPServerEncryption=TLS" in status["advice"]["text"]
    assert str(server.port) in status["advice"]["text"]


def test_encryption_mismatch_tls_against_an_implicit_tls_port_is_found_within_2_s(client, ca):
    # A server waiting for a TLS ClientHello says nothing. The 2 s rule is
    # for port 465; SMTPProbePorts makes the server's ephemeral port stand
    # for 465, as it does for smtpb_probe.
    script = Script(tls_context=ca.valid().server_context(), implicit_tls=True)
    with ScriptedServer(script) as server:
        client.config_set("SMTPProbePorts", f"465={server.port}")
        configure(client, server, ca=ca, encryption="TLS", timeout_ms=20000)
        outcome, elapsed = timed(client.send, message())
        assert server.connections == 1 and server.commands() == []  # it waited for a greeting, sent nothing
    assert getattr(outcome, "code", None) == CONNECT, outcome
    assert elapsed < 3.0, elapsed
    status = outcome.status
    assert advice_key(status) == "encryption_mismatch"
    where = f"127.0.0.1:{server.port}"
    assert "SMTPServerEncryption=SSL" in status["advice"]["text"] and where in status["advice"]["text"]
    assert where in outcome.message and "SMTPServerEncryption=SSL" in outcome.message


def test_advice_certificate_untrusted(client, ca):
    with ScriptedServer(Script(tls_context=ca.valid().server_context())) as server:
        configure(client, server, encryption="TLS")  # no SMTPCaFile: the test CA is not trusted
        status, _ = failed(client, TLS)
    assert advice_key(status) == "certificate_untrusted"
    assert "SMTPCaFile" in status["advice"]["text"] and "CN=" in status["advice"]["text"]


def test_advice_certificate_name_mismatch(client, ca):
    with ScriptedServer(Script(tls_context=ca.wrong_host().server_context())) as server:
        configure(client, server, ca=ca, encryption="TLS")
        status, _ = failed(client, TLS)
    assert advice_key(status) == "certificate_name_mismatch"
    assert '"127.0.0.1"' in status["advice"]["text"] and "CN=" in status["advice"]["text"]


def test_advice_certificate_expired(client, ca):
    with ScriptedServer(Script(tls_context=ca.expired().server_context())) as server:
        configure(client, server, ca=ca, encryption="TLS")
        status, _ = failed(client, TLS)
    assert advice_key(status) == "certificate_expired"


def test_advice_tls_version_too_old(client, ca):
    context = ca.valid().server_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with ScriptedServer(Script(tls_context=context)) as server:
        configure(client, server, ca=ca, encryption="TLS", SMTPMinTlsVersion="1.3")
        status, _ = failed(client, TLS)
    assert advice_key(status) == "tls_version_too_old"
    assert "SMTPMinTlsVersion" in status["advice"]["text"]


def test_advice_connection_refused(client):
    configure(client, ClosedPort())
    status, _ = failed(client, CONNECT)
    assert advice_key(status) == "connection_refused"


def test_advice_host_not_found(client):
    configure(client, ClosedPort(), SMTPServer="no-such-host.invalid")
    status, _ = failed(client, CONNECT)
    assert advice_key(status) == "host_not_found"
    assert "no-such-host.invalid" in status["advice"]["text"]


def test_advice_connection_timed_out(client):
    # A loopback listener whose backlog is full and never accepted: Linux
    # drops further SYNs, so the library's connect runs out of time.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        fillers = [socket.socket() for _ in range(4)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                filler.connect_ex(address)
            configure(client, ClosedPort(), SMTPServerPort=address[1], timeout_ms=500)
            status, _ = failed(client, CONNECT)
        finally:
            for filler in fillers:
                filler.close()
    assert advice_key(status) == "connection_timed_out"


def test_test_connection_report_carries_advice(client):
    with ScriptedServer(Script(replies={"AUTH": ["535 5.7.139 basic authentication is disabled"]},
                               ehlo_caps=["AUTH PLAIN"])) as server:
        configure(client, server, auth=True, SMTPAllowPlaintextAuth=True)
        client.credentials_set(None, USER, PASSWORD)
        error = expect_error(AUTH, client.test_connection)
    assert error.report["advice"]["key"] == "basic_auth_disabled"
    assert "SMTPAuthModel=OAuth2" in error.report["advice"]["text"]


SMTP_AUTH_OFF = [
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
    "550 5.7.30 Basic authentication is not supported for Client Submission.",
    "535 5.7.3 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox.",
]


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
@pytest.mark.parametrize("reply", SMTP_AUTH_OFF, ids=["5.7.139", "5.7.30", "text"])
def test_smtp_auth_off_answered_to_a_token_is_smtp_auth_disabled_without_needs(client, mechanism, reply):
    with ScriptedServer(Script(replies={"AUTH": [reply] * 5}, ehlo_caps=[f"AUTH {mechanism}"])) as server:
        configure(client, server, auth=True, SMTPAllowPlaintextAuth=True, SMTPAuthModel="OAuth2",
                  SMTPRetryInitialMs=60_000)
        client.credentials_set_oauth2(None, USER, "host-held-access-token", int(time.time()) + 3600)
        status, error = failed(client, AUTH)
        auths = [line.text for line in server.lines if line.verb == "AUTH"]
        queued = client.enqueue(message())
        final = client.wait(queued, 10_000)
    assert advice_key(status) == "smtp_auth_disabled", status
    assert "SMTPTransport=Graph" in status["advice"]["text"]
    assert "Advice (smtp_auth_disabled)" in error.message
    # Signing in again cannot help: no "needs", and the outbox does not
    # hold the message for new credentials.
    assert status["needs"] is None
    assert final["state"] == "failed" and final["needs"] is None, final
    assert advice_key(final) == "smtp_auth_disabled"
    assert len(auths) == 1 and auths[0].startswith(f"AUTH {mechanism} ")


def test_smtp_auth_off_answered_to_a_password_stays_basic_auth_disabled(client):
    reply = SMTP_AUTH_OFF[0]
    with ScriptedServer(Script(replies={"AUTH": [reply] * 5}, ehlo_caps=["AUTH PLAIN"])) as server:
        configure(client, server, auth=True, SMTPAllowPlaintextAuth=True)
        client.credentials_set(None, USER, PASSWORD)
        status, _ = failed(client, AUTH)
        assert server.commands().count("AUTH") == 1
    assert advice_key(status) == "basic_auth_disabled"


def test_plaintext_auth_refused_where_starttls_is_offered_advises_tls_not_plaintext(client, ca):
    with ScriptedServer(Script(tls_context=ca.valid().server_context())) as server:
        configure(client, server, auth=True)  # blank/None encryption, as on port 587 by mistake
        client.credentials_set(None, USER, PASSWORD)
        status, error = failed(client, AUTH)
        report = expect_error(AUTH, client.test_connection).report
        assert server.commands()[0] == "EHLO"
        assert "AUTH" not in server.commands()  # the password never went out
    assert advice_key(status) == "encryption_mismatch"
    assert "SMTPServerEncryption=TLS" in status["advice"]["text"]
    assert "SMTPServerEncryption=TLS" in error.message
    assert "SMTPAllowPlaintextAuth" not in error.message
    assert report["advice"]["key"] == "encryption_mismatch"


def test_plaintext_auth_without_starttls_still_names_the_plaintext_switch(client):
    with ScriptedServer(Script(ehlo_caps=["AUTH PLAIN"])) as server:
        configure(client, server, auth=True)
        client.credentials_set(None, USER, PASSWORD)
        status, error = failed(client, AUTH)
        assert "AUTH" not in server.commands()
    assert "SMTPAllowPlaintextAuth=true" in error.message
    assert advice_key(status) is None


def test_the_librarys_own_size_refusal_carries_message_too_large(client):
    with ScriptedServer(Script(ehlo_caps=["PIPELINING", "SIZE 1000"])) as server:
        configure(client, server)
        status, error = failed(client, REJECTED, message(text="x" * 5000))
        assert "MAIL" not in server.commands() and server.messages == []
    assert status["smtp_code"] is None
    assert advice_key(status) == "message_too_large"
    assert "SIZE 1000" in status["advice"]["text"] and "Advice (message_too_large)" in error.message


def test_every_attempt_names_its_server_also_on_a_reused_session(client):
    with ScriptedServer(Script()) as server:
        configure(client, server, SMTPTranscript="All")
        first = client.send(message(subject="one"))
        second = client.send(message(subject="two"))
        server.wait_for(2)
        assert server.connections == 1  # the second went over the pooled session
    [a] = client.transcript(first["id"])
    [b] = client.transcript(second["id"])
    assert a["server"] == b["server"] == f"127.0.0.1:{server.port}"
    assert any("reusing the session" in line["text"] for line in b["lines"] if line["dir"] == "*")


# --- probe ------------------------------------------------------------------------------


def test_probe_reports_each_port_and_suggests_the_first_with_tls(client, ca):
    ssl_server = ScriptedServer(Script(tls_context=ca.valid().server_context(), implicit_tls=True,
                                       ehlo_caps=["AUTH PLAIN LOGIN"]))
    starttls = ScriptedServer(Script(tls_context=ca.valid().server_context(), ehlo_caps_tls=["AUTH LOGIN"]))
    plain = ScriptedServer(Script(ehlo_caps=["PIPELINING"]))
    with ssl_server, starttls, plain:
        client.config_set("SMTPCaFile", str(ca.ca_pem_path))
        client.config_set("SMTPProbePorts", f"465={ClosedPort().port},587={starttls.port},25={plain.port}")
        report = client.probe("127.0.0.1")
        by = {(r["port"], r["encryption"]): r for r in report["results"]}
        assert by[(starttls.port, "TLS")]["ok"] is True
        assert by[(starttls.port, "TLS")]["tls"].startswith("TLSv1.")
        assert by[(starttls.port, "TLS")]["auth_mechanisms"] == ["LOGIN"]
        assert by[(plain.port, "TLS")]["ok"] is False
        assert by[(plain.port, "TLS")]["advice"]["key"] == "starttls_unavailable"
        assert by[(plain.port, "None")]["ok"] is True
        refused = next(r for r in report["results"] if r["encryption"] == "SSL")
        assert refused["ok"] is False and refused["advice"]["key"] == "connection_refused"
        assert report["suggested"] == {"SMTPServer": "127.0.0.1", "SMTPServerPort": starttls.port,
                                       "SMTPServerEncryption": "TLS"}

        client.config_set("SMTPProbePorts", f"465={ssl_server.port},587={starttls.port},25={plain.port}")
        report = client.probe("127.0.0.1")
        assert report["suggested"]["SMTPServerPort"] == ssl_server.port
        assert report["suggested"]["SMTPServerEncryption"] == "SSL"
        assert ssl_server.commands()[-2:] == ["EHLO", "QUIT"] and "MAIL" not in ssl_server.commands()


def test_probe_with_nothing_listening_is_connect_with_a_report(client):
    closed = [ClosedPort().port for _ in range(3)]
    client.config_set("SMTPProbePorts", f"465={closed[0]},587={closed[1]},25={closed[2]}")
    error = expect_error(CONNECT, client.probe, "127.0.0.1")
    assert error.report["suggested"] is None
    assert all(r["ok"] is False for r in error.report["results"])


def test_probe_checks_its_arguments(client):
    expect_error(smtpbridge.InvalidArgumentError.code, client.probe, "not a host")
    # An empty host is no host: INVALID_ARGUMENT and no report, nothing tried.
    with ScriptedServer(Script()) as server:
        client.config_set("SMTPProbePorts", f"465={server.port},587={server.port},25={server.port}")
        for empty in ("", "   "):
            error = expect_error(smtpbridge.InvalidArgumentError.code, client.probe, empty)
            assert error.report is None and "host" in error.message
        assert server.connections == 0
    client.config_set("SMTPProbePorts", "")
    client.config_set("SMTPProbePorts", "466=1")
    error = expect_error(smtpbridge.ConfigError.code, client.probe, "127.0.0.1")
    assert "SMTPProbePorts" in error.message


def test_python_logging_bridge(client, server, caplog):
    caplog.set_level(logging.DEBUG, logger="smtpbridge")
    client.log_to_logging(level=logging.INFO)
    configure(client, server)
    status = client.send(message())
    deadline = time.monotonic() + 5
    while not any(getattr(r, "smtpbridge_id", None) == status["id"] for r in caplog.records):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    record = next(r for r in caplog.records if getattr(r, "smtpbridge_id", None) == status["id"])
    assert record.name == "smtpbridge" and record.levelno == logging.INFO
    assert record.smtpbridge_profile == "Default" and record.smtpbridge_target.startswith("smtpbridge")


def test_the_suite_wide_secret_scan_sees_a_planted_secret():
    import secret_scan
    before = len(secret_scan._hits)
    secret_scan.scan("planted", "AUTH LOGIN " + base64.b64encode(b"pw-anna-111").decode())
    secret_scan.scan("clean", "AUTH LOGIN ********")
    planted = secret_scan._hits[before:]
    del secret_scan._hits[before:]  # planted on purpose: not a leak
    assert planted == [("planted", base64.b64encode(b"pw-anna-111").decode())]
