"""Encryption: plain, STARTTLS, implicit TLS, and every way TLS must fail (ABI §2, §5;
security-anchors §0.1, §1.2, §1.3)."""

from __future__ import annotations

import base64
import os
import ssl

import pytest

from conftest import TLS, configure, expect_error, message
from servers import RecordingServer, Script, ScriptedServer, self_signed

USER, PASSWORD = "alice", "s3cret-pw"


def cert_for(ca, which: str, tmp_path):
    return self_signed(tmp_path) if which == "self_signed" else getattr(ca, which)()


def capped_tls12(cert) -> ssl.SSLContext:
    context = cert.server_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context


# --- working encryption -------------------------------------------------------------


def test_plain_connection_is_not_tls(client):
    with RecordingServer() as server:
        configure(client, server)
        client.send(message())
        [m] = server.wait_for(1)
    assert m.tls is False


@pytest.mark.parametrize("encryption", ["TLS", "STARTTLS", "starttls"])
def test_starttls_with_the_test_ca(client, ca, encryption):
    with RecordingServer(tls_context=ca.valid().server_context(), require_starttls=True) as server:
        configure(client, server, ca=ca, encryption=encryption)
        status = client.send(message())
        [m] = server.wait_for(1)
    assert m.tls is True
    assert m.tls_version == "TLSv1.3"  # both sides offer 1.3
    assert status["state"] == "sent"


@pytest.mark.parametrize("encryption", ["SSL", "ssl"])
def test_implicit_tls_with_the_test_ca(client, ca, encryption):
    with RecordingServer(ssl_context=ca.valid().server_context()) as server:
        configure(client, server, ca=ca, encryption=encryption)
        client.send(message())
        [m] = server.wait_for(1)
    assert m.tls is True


@pytest.mark.parametrize("encryption", ["SSL", "TLS"])
def test_a_large_attachment_goes_through_tls_intact(client, ca, encryption):
    # Several MiB: far more than one TLS record buffer of the client.
    data = os.urandom(3 * 1024 * 1024 + 17)
    server_tls = {"ssl_context": ca.valid().server_context()} if encryption == "SSL" else {
        "tls_context": ca.valid().server_context(), "require_starttls": True}
    with RecordingServer(**server_tls) as server:
        configure(client, server, ca=ca, encryption=encryption)
        client.send(message(attachments=[{"content_base64": base64.b64encode(data).decode(), "name": "big.bin"}]))
        [m] = server.wait_for(1, 20)
    [part] = [p for p in m.parsed.iter_attachments()]
    assert part.get_content() == data


def test_tls_server_name_is_verified_instead_of_the_ip(client, ca):
    with RecordingServer(ssl_context=ca.valid().server_context()) as server:
        configure(client, server, ca=ca, encryption="SSL", SMTPTlsServerName="localhost")
        client.send(message())
        assert server.wait_for(1)[0].tls


def test_connection_test_reports_the_tls_version_for_starttls(client, ca):
    with RecordingServer(tls_context=ca.valid().server_context(), require_starttls=True) as server:
        configure(client, server, ca=ca, encryption="STARTTLS")
        report = client.test_connection()
    assert report["ok"] is True
    assert report["tls"] == "TLSv1.3"
    assert report["stage"] == "done"


def test_connection_test_reports_tls_12_when_the_server_caps_it(client, ca):
    with RecordingServer(ssl_context=capped_tls12(ca.valid())) as server:
        configure(client, server, ca=ca, encryption="SSL")
        report = client.test_connection()
    assert report["ok"] is True
    assert report["tls"] == "TLSv1.2"


def test_connection_test_reports_no_tls_for_a_plain_server(client):
    with RecordingServer() as server:
        configure(client, server)
        report = client.test_connection()
    assert report["ok"] is True and report["tls"] is None


# --- STARTTLS that must not be trusted ---------------------------------------------------


def starttls_client(client, server, ca, **extra):
    """STARTTLS required, with AUTH and a credential, so an AUTH leak would show."""
    configure(client, server, ca=ca, encryption="STARTTLS", auth=True, **extra)
    client.credentials_set(None, USER, PASSWORD)


def assert_nothing_after_tls_failure(server):
    commands = server.commands()
    assert "AUTH" not in commands, commands
    assert "MAIL" not in commands, commands
    assert server.messages == []
    assert not any(PASSWORD in line.text for line in server.lines)


def test_starttls_required_but_not_offered_is_tls_error(client, ca):
    script = Script(ehlo_caps=["PIPELINING", "8BITMIME", "AUTH PLAIN LOGIN"])
    with ScriptedServer(script) as server:
        starttls_client(client, server, ca)
        error = expect_error(TLS, client.send, message())
        assert_nothing_after_tls_failure(server)
    assert "STARTTLS" in error.message
    assert error.status["state"] == "failed" and error.status["error_code"] == TLS


def test_starttls_refused_is_tls_error(client, ca):
    script = Script(tls_context=ca.valid().server_context(),
                    replies={"STARTTLS": ["454 4.7.0 TLS not available due to temporary reason"]})
    with ScriptedServer(script) as server:
        starttls_client(client, server, ca)
        expect_error(TLS, client.send, message())
        assert "STARTTLS" in server.commands()
        assert_nothing_after_tls_failure(server)


def test_bytes_injected_after_the_starttls_220_are_a_tls_error(client, ca):
    injected = (b"250 injected-ehlo\r\n250 injected-mail\r\n250 injected-rcpt\r\n"
                b"354 injected-data\r\n250 injected-queued\r\n")
    script = Script(tls_context=ca.valid().server_context(), starttls_inject=injected)
    with ScriptedServer(script) as server:
        starttls_client(client, server, ca)
        error = expect_error(TLS, client.send, message())
        assert_nothing_after_tls_failure(server)
    assert error.status["state"] == "failed"


def test_starttls_not_offered_fails_the_connection_test_at_tls(client, ca):
    with ScriptedServer(Script(ehlo_caps=["PIPELINING"])) as server:
        configure(client, server, ca=ca, encryption="TLS")
        error = expect_error(TLS, client.test_connection)
    assert error.report["ok"] is False
    assert error.report["stage"] == "tls"
    assert error.report["error_code"] == TLS


# --- certificates that must be refused ------------------------------------------------------


@pytest.mark.parametrize("which", ["self_signed", "expired", "wrong_host"])
@pytest.mark.parametrize("encryption", ["SSL", "STARTTLS"])
def test_untrusted_certificate_is_tls_error(client, ca, tmp_path, which, encryption):
    context = cert_for(ca, which, tmp_path).server_context()
    options = {"ssl_context": context} if encryption == "SSL" else {"tls_context": context}
    with RecordingServer(**options) as server:
        configure(client, server, ca=ca, encryption=encryption)
        error = expect_error(TLS, client.send, message())
        assert server.messages == []
    assert error.status["state"] == "failed"


def test_wrong_tls_server_name_is_tls_error(client, ca):
    with RecordingServer(ssl_context=ca.valid().server_context()) as server:
        configure(client, server, ca=ca, encryption="SSL", SMTPTlsServerName="other.example")
        expect_error(TLS, client.send, message())


def test_without_the_test_ca_the_server_is_not_trusted(client, ca):
    with RecordingServer(ssl_context=ca.valid().server_context()) as server:
        configure(client, server, encryption="SSL")  # no SMTPCaFile
        expect_error(TLS, client.send, message())


def test_accept_invalid_certificates_makes_a_self_signed_one_work(client, tmp_path):
    with RecordingServer(ssl_context=self_signed(tmp_path).server_context()) as server:
        configure(client, server, encryption="SSL", SMTPAcceptInvalidCertificates=True)
        client.send(message())
        assert server.wait_for(1)[0].tls


def test_min_tls_13_against_a_tls_12_server_is_tls_error(client, ca):
    with RecordingServer(ssl_context=capped_tls12(ca.valid())) as server:
        configure(client, server, ca=ca, encryption="SSL", SMTPMinTlsVersion="1.3")
        expect_error(TLS, client.send, message())
        assert server.messages == []


def test_min_tls_13_against_a_tls_12_starttls_server_is_tls_error(client, ca):
    with RecordingServer(tls_context=capped_tls12(ca.valid())) as server:
        configure(client, server, ca=ca, encryption="STARTTLS", SMTPMinTlsVersion="1.3")
        expect_error(TLS, client.send, message())
        assert server.messages == []


def test_min_tls_12_accepts_a_tls_12_server(client, ca):
    with RecordingServer(ssl_context=capped_tls12(ca.valid())) as server:
        configure(client, server, ca=ca, encryption="SSL", SMTPMinTlsVersion="1.2")
        client.send(message())
        assert server.wait_for(1)[0].tls_version == "TLSv1.2"
