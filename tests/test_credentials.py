"""The encrypted credential store (ABI §3 credentials, §4 "format version",
§7 masked credentials, §11)."""

from __future__ import annotations

import base64
import ctypes
import json
import stat
import sys

import pytest
import smtpbridge
from smtpbridge import native

from conftest import (
    CREDENTIALS,
    INVALID_ARGUMENT,
    IO,
    NOT_FOUND,
    RFC3339_UTC,
    configure,
    expect_error,
    files_under,
    message,
)
from servers import RecordingServer

PASSWORD = "Pässwörd-Unique-4711"
SHARED_PASSWORD = "Shared-Secret-0815"
TOKEN = "ya29.A0-unique-token-value"


def secret_forms(secret: str) -> list:
    """The plaintext, and the encodings a careless store would leave it in."""
    raw = secret.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode(), json.dumps(secret).encode()]


def store_path(data_dir):
    return data_dir / "credentials.json"


def flip_one_ciphertext_byte(path, user_id):
    store = json.loads(path.read_text())
    [entry] = [e for e in store["entries"] if e.get("user_id") == user_id]
    field = next(k for k in entry if "cipher" in k)
    blob = bytearray(base64.b64decode(entry[field]))
    blob[len(blob) // 2] ^= 0x01
    entry[field] = base64.b64encode(bytes(blob)).decode()
    path.write_text(json.dumps(store, indent=2))


# --- nothing in plaintext --------------------------------------------------------------------


def test_no_secret_is_stored_in_plaintext_anywhere_in_the_data_dir(dir_client, data_dir):
    dir_client.credentials_set("emp-42", "anna", PASSWORD)
    dir_client.credentials_set_oauth2("emp-7", "bob@firm.example", TOKEN)
    dir_client.configure(SMTPUsername="office", SMTPPassword=SHARED_PASSWORD, SMTPServer="mail.example")
    files = list(files_under(data_dir))
    assert store_path(data_dir) in files
    for path in files:
        content = path.read_bytes()
        for secret in (PASSWORD, TOKEN, SHARED_PASSWORD):
            for form in secret_forms(secret):
                assert form not in content, f"{secret!r} is readable in {path.name}"


def test_usernames_survive_a_reopen_and_secrets_still_work(data_dir):
    with smtpbridge.Client(data_dir, secret="master-1") as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
    with smtpbridge.Client(data_dir, secret="master-1") as second:
        masked = second.credentials_masked("emp-42")
    assert masked["username"] == "anna" and masked["has_secret"] is True


# --- master secret ------------------------------------------------------------------------------


def test_wrong_master_secret_on_reopen_is_credentials_error(data_dir):
    with smtpbridge.Client(data_dir, secret="right-master") as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
    before = store_path(data_dir).read_bytes()
    error = expect_error(CREDENTIALS, smtpbridge.Client, data_dir, secret="wrong-master")
    assert "right-master" not in error.message and "wrong-master" not in error.message
    assert store_path(data_dir).read_bytes() == before
    with smtpbridge.Client(data_dir, secret="right-master") as again:  # the lock was released
        assert again.credentials_masked("emp-42")["username"] == "anna"


def test_null_secret_creates_an_owner_only_key_file_and_reopening_works(data_dir):
    with smtpbridge.Client(data_dir) as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
    key_file = data_dir / "master.key"
    assert key_file.is_file()
    if sys.platform != "win32":
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    with smtpbridge.Client(data_dir) as second:
        assert second.credentials_masked("emp-42")["username"] == "anna"
    assert key_file.read_bytes() == key


def test_data_dir_files_are_not_world_readable(dir_client, data_dir):
    dir_client.credentials_set("emp-42", "anna", PASSWORD)
    if sys.platform == "win32":
        pytest.skip("POSIX modes")
    mode = stat.S_IMODE(store_path(data_dir).stat().st_mode)
    assert mode & 0o077 == 0, oct(mode)


# --- tampering and formats ------------------------------------------------------------------------


def test_flipped_ciphertext_byte_is_credentials_error_on_use_and_masked(data_dir):
    with smtpbridge.Client(data_dir, secret="m") as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
        first.credentials_set("emp-7", "bob", "other-pw-1")
    flip_one_ciphertext_byte(store_path(data_dir), "emp-42")
    tampered = store_path(data_dir).read_bytes()
    with smtpbridge.Client(data_dir, secret="m") as c, RecordingServer() as server:
        error = expect_error(CREDENTIALS, c.credentials_masked, "emp-42")
        assert "emp-42" in error.message
        configure(c, server, auth=True, SMTPAllowPlaintextAuth=True)
        error = expect_error(CREDENTIALS, c.send, message(user="emp-42"))
        assert "emp-42" in error.message
        assert server.connections == 0
        assert c.credentials_masked("emp-7")["username"] == "bob"  # the others are intact
    assert store_path(data_dir).read_bytes() == tampered  # a failure never rewrites the store


def test_edited_username_is_credentials_error(data_dir):
    with smtpbridge.Client(data_dir, secret="m") as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
    path = store_path(data_dir)
    path.write_text(path.read_text().replace('"anna"', '"mallory"'))
    with smtpbridge.Client(data_dir, secret="m") as c:
        expect_error(CREDENTIALS, c.credentials_masked, "emp-42")


def test_newer_store_format_is_io_error_naming_both_versions_and_file_unchanged(data_dir):
    with smtpbridge.Client(data_dir, secret="m") as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
    path = store_path(data_dir)
    store = json.loads(path.read_text())
    current = store["format"]
    store["format"] = current + 98
    path.write_text(json.dumps(store))
    before = path.read_bytes()
    error = expect_error(IO, smtpbridge.Client, data_dir, secret="m")
    assert str(current + 98) in error.message
    assert str(current) in error.message.replace(str(current + 98), "")
    assert path.read_bytes() == before
    expect_error(IO, smtpbridge.Client, data_dir, secret="m")  # still refused, still unchanged
    assert path.read_bytes() == before


def test_garbage_credential_store_is_credentials_error_and_not_rewritten(data_dir):
    with smtpbridge.Client(data_dir, secret="m") as first:
        first.credentials_set("emp-42", "anna", PASSWORD)
    path = store_path(data_dir)
    path.write_bytes(b"{ this is not json")
    with pytest.raises(smtpbridge.SmtpBridgeError) as info:
        smtpbridge.Client(data_dir, secret="m")
    assert info.value.code == CREDENTIALS  # a tampered store (ABI §2)
    assert path.read_bytes() == b"{ this is not json"


# --- masked view and the API ----------------------------------------------------------------------


def test_masked_password_credential_shape(client):
    client.credentials_set("emp-42", "anna", PASSWORD)
    masked = client.credentials_masked("emp-42")
    assert set(masked) >= {"user_id", "username", "kind", "has_secret", "password", "expires_at", "updated_at"}
    assert masked["user_id"] == "emp-42"
    assert masked["username"] == "anna"
    assert masked["kind"] == "password"
    assert masked["has_secret"] is True
    assert masked["password"] == "********"
    assert masked["expires_at"] is None
    assert RFC3339_UTC.match(masked["updated_at"])
    assert PASSWORD not in json.dumps(masked, ensure_ascii=False)


def test_masked_oauth2_credential_shape(client):
    client.credentials_set_oauth2("emp-7", "bob@firm.example", TOKEN, 1900000000)
    masked = client.credentials_masked("emp-7")
    assert masked["kind"] == "oauth2"
    assert masked["expires_at"] == "2030-03-17T17:46:40Z"
    assert masked["password"] == "********"
    assert TOKEN not in json.dumps(masked)


def test_masked_shared_credential_has_null_user(client):
    client.credentials_set(None, "office", SHARED_PASSWORD)
    masked = client.credentials_masked(None)
    assert masked["user_id"] is None and masked["username"] == "office"


def test_masked_empty_password_has_no_secret(client):
    client.credentials_set("emp-1", "anna", "")
    assert client.credentials_masked("emp-1")["has_secret"] is False


def test_masked_unknown_user_is_not_found(client):
    error = expect_error(NOT_FOUND, client.credentials_masked, "emp-404")
    assert "emp-404" in error.message


def test_remove_forgets_the_credential(client):
    client.credentials_set("emp-42", "anna", PASSWORD)
    client.credentials_remove("emp-42")
    expect_error(NOT_FOUND, client.credentials_masked, "emp-42")
    expect_error(NOT_FOUND, client.credentials_remove, "emp-42")


def test_null_password_is_invalid_argument(client):
    code = native.call_raw("smtpb_credentials_set", client, b"emp-42", b"anna", None)
    assert code == INVALID_ARGUMENT
    assert "password" in native.last_error()


def test_null_oauth2_token_is_invalid_argument(client):
    code = native.call_raw("smtpb_credentials_set_oauth2", client, b"emp-42", b"anna", None, 0)
    assert code == INVALID_ARGUMENT


def test_masked_null_out_is_invalid_argument(client):
    client.credentials_set("emp-42", "anna", PASSWORD)
    assert native.call_raw("smtpb_credentials_masked", client, b"emp-42", None) == INVALID_ARGUMENT


def test_credentials_set_replaces_the_previous_one(client):
    client.credentials_set("emp-42", "anna", PASSWORD)
    client.credentials_set("emp-42", "anna.new", "new-pw-1")
    assert client.credentials_masked("emp-42")["username"] == "anna.new"


def test_masked_is_written_to_a_raw_out_pointer(client):
    client.credentials_set("emp-42", "anna", PASSWORD)
    out = ctypes.c_void_p()
    assert native.call_raw("smtpb_credentials_masked", client, b"emp-42", ctypes.byref(out)) == 0
    assert json.loads(native.take_string(out))["username"] == "anna"


@pytest.mark.parametrize("user_id", [b"", b"emp\x01", b"emp\n42"], ids=["empty", "control", "newline"])
def test_bad_user_id_is_invalid_argument(client, user_id):
    assert native.call_raw("smtpb_credentials_set", client, user_id, b"anna", b"pw") == INVALID_ARGUMENT
    assert "user_id" in native.last_error()


@pytest.mark.parametrize("expires_at", [-1, 1_795_000_000_000, 2**63 - 1], ids=["negative", "milliseconds", "max"])
def test_an_oauth2_expiry_that_is_not_unix_seconds_is_refused(client, expires_at):
    error = expect_error(INVALID_ARGUMENT, client.credentials_set_oauth2, "emp-1", "anna@firm.example", "tok", expires_at)
    assert "expires_at" in error.message
