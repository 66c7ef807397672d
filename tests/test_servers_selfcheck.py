"""The test servers, proven with Python's smtplib and raw sockets.

If these fail, every test that uses the servers is suspect; fix them first.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import time

import pytest

from servers import (
    DROP,
    HANG,
    XOAUTH2_ERROR,
    CertAuthority,
    RecordingServer,
    Script,
    ScriptedServer,
    self_signed,
)

TIMEOUT = 3.0  # every client socket; no test should come near it
MESSAGE = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\n.leading dot\r\nbody\r\n"


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return CertAuthority(tmp_path_factory.mktemp("ca"))


def xoauth2(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


def read_reply(reader) -> list[bytes]:
    """Read one (possibly multi-line) SMTP reply from a socket file."""
    lines = [reader.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(reader.readline())
    return lines


# --- certificates -------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_valid_cert_is_trusted_for_both_loopback_names(ca: CertAuthority, host: str) -> None:
    with RecordingServer(ssl_context=ca.valid().server_context()) as server:
        with smtplib.SMTP_SSL(host, server.port, timeout=TIMEOUT, context=ca.client_context()) as client:
            assert client.noop()[0] == 250


@pytest.mark.parametrize("which", ["expired", "wrong_host", "self_signed"])
def test_bad_certs_are_refused(ca: CertAuthority, tmp_path, which: str) -> None:
    cert = self_signed(tmp_path) if which == "self_signed" else getattr(ca, which)()
    with RecordingServer(ssl_context=cert.server_context()) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            smtplib.SMTP_SSL("localhost", server.port, timeout=TIMEOUT, context=ca.client_context())


# --- RecordingServer ----------------------------------------------------

def test_plain_records_envelope_raw_bytes_and_parsed_message() -> None:
    with RecordingServer() as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.has_extn("smtputf8") and client.has_extn("size")
            assert not client.has_extn("auth")
            client.sendmail("a@example.test", ["b@example.test", "c@example.test"], MESSAGE)
        [message] = server.wait_for(1, TIMEOUT)
    assert message.mail_from == "a@example.test"
    assert message.rcpt_tos == ["b@example.test", "c@example.test"]
    assert message.raw == MESSAGE  # dot-stuffing undone
    assert message.parsed["Subject"] == "hello"
    assert (message.tls, message.auth_user, message.connection) == (False, None, 1)


def test_greeting_carries_ident() -> None:
    with RecordingServer(hostname="mx.test", ident="banner-x") as server:
        with socket.create_connection((server.host, server.port), TIMEOUT) as sock:
            assert sock.makefile("rb").readline() == b"220 mx.test banner-x\r\n"


def test_connections_are_counted_and_reused() -> None:
    with RecordingServer() as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        messages = server.wait_for(2, TIMEOUT)
        assert server.connections == 1
    assert [m.connection for m in messages] == [1, 1]


def test_required_starttls(ca: CertAuthority) -> None:
    with RecordingServer(tls_context=ca.valid().server_context(), require_starttls=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.mail("a@example.test")[0] == 530
            client.starttls(context=ca.client_context())
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        [message] = server.wait_for(1, TIMEOUT)
    assert message.tls and message.tls_version.startswith("TLSv1.")


def test_implicit_tls(ca: CertAuthority) -> None:
    with RecordingServer(ssl_context=ca.valid().server_context()) as server:
        with smtplib.SMTP_SSL(server.host, server.port, timeout=TIMEOUT, context=ca.client_context()) as client:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert server.wait_for(1, TIMEOUT)[0].tls


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_over_plaintext_when_allowed(mechanism: str) -> None:
    with RecordingServer(users={"alice": "s3cret"}, auth_require_tls=False, auth_required=True) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
            assert client.mail("a@example.test")[0] == 530
            client.rset()
            authobject = client.auth_plain if mechanism == "PLAIN" else client.auth_login
            client.user, client.password = "alice", "wrong"
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.auth(mechanism, authobject)
            assert refused.value.smtp_code == 535
            client.user, client.password = "alice", "s3cret"
            assert client.auth(mechanism, authobject)[0] == 235
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert server.wait_for(1, TIMEOUT)[0].auth_user == "alice"


def test_auth_needs_tls_by_default(ca: CertAuthority) -> None:
    with RecordingServer(tls_context=ca.valid().server_context(), users={"alice": "s3cret"}) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert not client.has_extn("auth")
            client.starttls(context=ca.client_context())
            client.ehlo()
            assert client.has_extn("auth")
            client.login("alice", "s3cret")


def test_xoauth2_good_and_bad_token() -> None:
    with RecordingServer(oauth=("alice@example.test", "tok-1"), auth_require_tls=False) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.esmtp_features["auth"].split() == ["XOAUTH2"]
            code, challenge = client.docmd("AUTH", "XOAUTH2 " + xoauth2("alice@example.test", "expired"))
            assert code == 334
            assert json.loads(base64.b64decode(challenge)) == XOAUTH2_ERROR
            assert client.docmd("")[0] == 535
            assert client.docmd("AUTH", "XOAUTH2 " + xoauth2("alice@example.test", "tok-1"))[0] == 235
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert server.wait_for(1, TIMEOUT)[0].auth_user == "alice@example.test"


def test_size_limit() -> None:
    with RecordingServer(data_size_limit=1000) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.esmtp_features["size"] == "1000"
            client.mail("a@example.test")
            client.rcpt("b@example.test")
            assert client.data(b"x" * 900 + b"\r\n" + b"y" * 900)[0] == 552
        assert server.messages == []


def test_wait_for_times_out() -> None:
    with RecordingServer() as server:
        with pytest.raises(TimeoutError, match="got 0"):
            server.wait_for(1, 0.1)


def test_stop_disconnects_clients() -> None:
    server = RecordingServer()
    client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
    client.ehlo()
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(smtplib.SMTPServerDisconnected):
        client.noop()
    client.close()


# --- ScriptedServer -----------------------------------------------------

def test_scripted_defaults_accept_mail_and_record_transcript() -> None:
    with ScriptedServer() as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.login("alice", "s3cret")
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        [message] = server.wait_for(1, TIMEOUT)
        assert server.commands() == ["EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]
        auth = server.lines[1]
        assert base64.b64decode(auth.text.split()[2]) == b"\0alice\0s3cret"
    assert message.raw == MESSAGE and message.reply.startswith("250")


def test_scripted_auth_login_records_challenge_answers() -> None:
    with ScriptedServer(Script(replies={"AUTH": ["535 5.7.8 no"]})) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            client.user, client.password = "alice", "s3cret"
            with pytest.raises(smtplib.SMTPAuthenticationError):
                client.auth("LOGIN", client.auth_login)
    answers = [line.text for line in server.lines if line.verb is None]
    assert [base64.b64decode(a) for a in answers] == [b"s3cret"]  # user went in AUTH LOGIN <b64>


def test_scripted_xoauth2_error_challenge() -> None:
    error = base64.b64encode(json.dumps(XOAUTH2_ERROR).encode()).decode()
    script = Script(replies={"AUTH": [f"334 {error}", "535 5.7.3 Authentication unsuccessful"]})
    with ScriptedServer(script) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.docmd("AUTH", "XOAUTH2 " + xoauth2("u", "t")) == (334, error.encode())
            assert client.docmd("")[0] == 535
        assert server.commands() == ["EHLO", "AUTH", "QUIT"]
        assert server.lines[2].verb is None and server.lines[2].text == ""


def test_scripted_per_recipient_replies() -> None:
    script = Script(rcpt_replies={"b@example.test": "550 5.1.1 no such user",
                                  "c@example.test": "451 4.3.0 try later"})
    with ScriptedServer(script) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            refused = client.sendmail("a@example.test",
                                      ["b@example.test", "c@example.test", "d@example.test"], MESSAGE)
        assert refused == {"b@example.test": (550, b"5.1.1 no such user"),
                           "c@example.test": (451, b"4.3.0 try later")}
        assert server.wait_for(1, TIMEOUT)[0].rcpt_tos == ["d@example.test"]


def test_scripted_reply_sequence_across_connections() -> None:
    with ScriptedServer(Script(replies={"DOT": ["451 4.3.0 busy", "451 4.3.0 busy"]})) as server:
        codes = []
        for _ in range(3):
            with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
                try:
                    client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
                    codes.append(250)
                except smtplib.SMTPDataError as error:
                    codes.append(error.smtp_code)
        assert codes == [451, 451, 250]
        assert [m.connection for m in server.messages] == [1, 2, 3]


def test_scripted_drop_after_final_dot_then_accept() -> None:
    with ScriptedServer(Script(replies={"DOT": [DROP]})) as server:
        client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        client.close()
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        first, second = server.wait_for(2, TIMEOUT)
    assert (first.reply, first.raw) == (DROP, MESSAGE)
    assert second.reply.startswith("250")


def test_scripted_hang_at_final_dot() -> None:
    with ScriptedServer(Script(replies={"DOT": [HANG]})) as server:
        with smtplib.SMTP(server.host, server.port, timeout=0.5) as client:
            started = time.monotonic()
            with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
                client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
            assert time.monotonic() - started < 2
            client.close()
        assert server.messages[0].reply == HANG


def test_scripted_silent_greeting() -> None:
    with ScriptedServer(Script(greeting=HANG)) as server:
        with pytest.raises(smtplib.SMTPServerDisconnected, match="timed out"):
            smtplib.SMTP(server.host, server.port, timeout=0.3)


def test_scripted_dripped_greeting() -> None:
    with ScriptedServer(Script(greeting="220 slow", drip_ms=40, drip_at={"GREETING"})) as server:
        started = time.monotonic()
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            elapsed = time.monotonic() - started
            assert client.noop()[0] == 250
    assert 0.3 < elapsed < TIMEOUT  # 10 bytes at 40 ms


def test_scripted_ehlo_refused_falls_back_to_helo() -> None:
    with ScriptedServer(Script(replies={"EHLO": ["502 5.5.2 EHLO not supported"]})) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert server.commands()[:3] == ["EHLO", "HELO", "MAIL"]


def test_scripted_starttls_refused(ca: CertAuthority) -> None:
    script = Script(tls_context=ca.valid().server_context(),
                    replies={"STARTTLS": ["454 4.7.0 TLS not available"]})
    with ScriptedServer(script) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            with pytest.raises(smtplib.SMTPResponseException) as refused:
                client.starttls(context=ca.client_context())
            assert refused.value.smtp_code == 454


def test_scripted_starttls_injection_arrives_with_the_220(ca: CertAuthority) -> None:
    script = Script(tls_context=ca.valid().server_context(), starttls_inject=b"250 injected\r\n")
    with ScriptedServer(script) as server:
        with socket.create_connection((server.host, server.port), TIMEOUT) as sock:
            reader = sock.makefile("rb")
            read_reply(reader)
            sock.sendall(b"EHLO me\r\n")
            assert b"250 STARTTLS\r\n" in read_reply(reader)
            sock.sendall(b"STARTTLS\r\n")
            assert reader.readline() == b"220 2.0.0 Ready to start TLS\r\n"
            assert reader.readline() == b"250 injected\r\n"


def test_scripted_starttls_then_tls_session(ca: CertAuthority) -> None:
    with ScriptedServer(Script(tls_context=ca.valid().server_context())) as server:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as client:
            client.starttls(context=ca.client_context())
            client.ehlo()
            assert not client.has_extn("starttls")
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert server.wait_for(1, TIMEOUT)[0].tls
        assert [(line.verb, line.tls) for line in server.lines] == [
            ("EHLO", False), ("STARTTLS", False),
            ("EHLO", True), ("MAIL", True), ("RCPT", True), ("DATA", True), ("QUIT", True),
        ]


def test_scripted_implicit_tls(ca: CertAuthority) -> None:
    with ScriptedServer(Script(tls_context=ca.valid().server_context(), implicit_tls=True)) as server:
        with smtplib.SMTP_SSL(server.host, server.port, timeout=TIMEOUT, context=ca.client_context()) as client:
            client.sendmail("a@example.test", ["b@example.test"], MESSAGE)
        assert server.wait_for(1, TIMEOUT)[0].tls


def test_scripted_pipelined_commands_in_one_packet() -> None:
    with ScriptedServer(Script(rcpt_replies={"c@example.test": "550 no"})) as server:
        with socket.create_connection((server.host, server.port), TIMEOUT) as sock:
            reader = sock.makefile("rb")
            read_reply(reader)
            sock.sendall(b"EHLO me\r\n")
            read_reply(reader)
            sock.sendall(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                         b"RCPT TO:<c@example.test>\r\nDATA\r\n")
            codes = [read_reply(reader)[0][:3] for _ in range(4)]
            sock.sendall(b"Subject: x\r\n\r\n..two dots\r\n.\r\nQUIT\r\n")
            codes += [read_reply(reader)[0][:3] for _ in range(2)]
        assert codes == [b"250", b"250", b"550", b"354", b"250", b"221"]
        [message] = server.wait_for(1, TIMEOUT)
    assert message.raw == b"Subject: x\r\n\r\n.two dots\r\n"
    assert message.rcpt_tos == ["b@example.test"]


def test_scripted_idle_close() -> None:
    with ScriptedServer(Script(idle_close_ms=200)) as server:
        with socket.create_connection((server.host, server.port), TIMEOUT) as sock:
            reader = sock.makefile("rb")
            read_reply(reader)
            assert reader.readline() == b"421 4.4.2 scripted.test idle timeout\r\n"
            assert reader.readline() == b""


def test_scripted_stop_ends_hung_connections() -> None:
    server = ScriptedServer(Script(greeting=HANG))
    sock = socket.create_connection((server.host, server.port), TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while server.connections < 1:  # accepted, and hung in its greeting
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    assert sock.recv(10) == b""
    sock.close()
