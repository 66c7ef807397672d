"""DKIM signing with SMTPDkimDomain / SMTPDkimSelector / SMTPDkimKeyFile (ABI §5):
the signature must verify for a receiver, and an unusable key is CONFIG when set."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import CONFIG, configure, expect_error, message
from servers import ScriptedServer

dkim = pytest.importorskip("dkim")

DOMAIN, SELECTOR = "firm.example", "mail2026"


def rsa_key(tmp_path, pkcs1: bool):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fmt = serialization.PrivateFormat.TraditionalOpenSSL if pkcs1 else serialization.PrivateFormat.PKCS8
    path = tmp_path / ("rsa-pkcs1.pem" if pkcs1 else "rsa-pkcs8.pem")
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def ed25519_key(tmp_path):
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "ed25519.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return path, b"v=DKIM1; k=ed25519; p=" + base64.b64encode(public)


def send_signed(client, key_path, **fields):
    with ScriptedServer() as server:
        configure(client, server, SMTPDkimDomain=DOMAIN, SMTPDkimSelector=SELECTOR, SMTPDkimKeyFile=str(key_path))
        client.send(message(**fields))
        [m] = server.wait_for(1)
    return m.raw


def verifies(raw: bytes, record: bytes) -> bool:
    expected = f"{SELECTOR}._domainkey.{DOMAIN}.".encode()

    def dns(name, timeout=5):
        return record if name == expected else None

    return dkim.verify(raw, dnsfunc=dns)


@pytest.mark.parametrize("pkcs1", [False, True], ids=["pkcs8", "pkcs1"])
def test_rsa_signature_verifies(client, tmp_path, pkcs1):
    path, record = rsa_key(tmp_path, pkcs1)
    raw = send_signed(client, path)
    assert b"DKIM-Signature:" in raw
    assert verifies(raw, record), "the DKIM signature does not verify"


def test_rsa_signature_verifies_with_non_ascii_subject_and_attachments(client, tmp_path):
    path, record = rsa_key(tmp_path, pkcs1=False)
    raw = send_signed(client, path, subject="Grüße – Rechnung ✓", html="<p>Hallo</p>",
                      attachments=[{"content_base64": base64.b64encode(b"x" * 5000).decode(), "name": "a.pdf"}])
    assert verifies(raw, record), "the DKIM signature does not verify"


def test_ed25519_signature_is_added(client, tmp_path):
    path, record = ed25519_key(tmp_path)
    raw = send_signed(client, path)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"a=ed25519-sha256" in head
    assert f"d={DOMAIN}".encode() in head and f"s={SELECTOR}".encode() in head
    pytest.importorskip("nacl")  # dkimpy verifies Ed25519 through PyNaCl
    assert verifies(raw, record)


def test_unusable_key_file_is_config_error_when_set(client, tmp_path):
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    error = expect_error(CONFIG, client.config_set, "SMTPDkimKeyFile", str(bad))
    assert "SMTPDkimKeyFile" in error.message and str(bad) in error.message, error.message


def test_missing_key_file_is_config_error_when_set(client, tmp_path):
    expect_error(CONFIG, client.config_set, "SMTPDkimKeyFile", str(tmp_path / "missing.pem"))


def test_signature_verifies_over_folded_to_and_cc_of_many_recipients(client, tmp_path):
    """To and Cc are folded between addresses: the signature covers them as sent."""
    path, record = rsa_key(tmp_path, pkcs1=False)
    to = [f"to{i}@example.com" for i in range(150)]
    cc = [{"email": f"cc{i}@example.com", "name": f"Empfänger {i}"} for i in range(50)]
    raw = send_signed(client, path, to=to, cc=cc)
    assert max(len(line) for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")) <= 998
    assert verifies(raw, record), "the DKIM signature does not verify"
