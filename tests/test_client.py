"""Opening, locking and shutting down a client (ABI §3 client lifecycle, §4, §11)."""

from __future__ import annotations

import ctypes
import os
import socket

import smtpbridge
from smtpbridge import native

from conftest import BUSY, INVALID_ARGUMENT, OK, STATE, configure, expect_error, message
from servers import RecordingServer


def raw_open(data_dir, secret, flags):
    handle = native.client_p()
    code = native.call_raw("smtpb_client_open", data_dir, secret, flags, ctypes.byref(handle))
    return code, handle


def test_in_memory_client_opens_and_closes():
    with smtpbridge.Client() as c:
        assert c.config_get("SMTPEnabled") == "true"
    assert c.closed


def test_data_dir_is_created_if_missing(tmp_path):
    data_dir = tmp_path / "deep" / "er" / "data"
    with smtpbridge.Client(data_dir):
        assert data_dir.is_dir()


def test_non_ascii_data_dir_works(tmp_path):
    data_dir = tmp_path / "Müller Daten ✓"
    with smtpbridge.Client(data_dir) as c:
        c.config_set("SMTPServer", "mail.example")
    with smtpbridge.Client(data_dir) as c:
        assert c.config_get("SMTPServer") == "mail.example"


def test_second_open_of_the_same_data_dir_is_busy_naming_the_pid(dir_client, data_dir):
    error = expect_error(BUSY, smtpbridge.Client, data_dir)
    assert "pid" in error.message
    assert str(os.getpid()) in error.message
    assert socket.gethostname() in error.message


def test_data_dir_is_free_again_after_close(data_dir):
    smtpbridge.Client(data_dir).close()
    smtpbridge.Client(data_dir).close()


def test_relative_data_dir_is_invalid_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    error = expect_error(INVALID_ARGUMENT, smtpbridge.Client, "relative/data")
    assert "data_dir" in error.message
    assert not (tmp_path / "relative").exists()


def test_unknown_open_flag_is_invalid_argument_and_out_stays_null():
    code, handle = raw_open(None, None, 4)
    assert code == INVALID_ARGUMENT
    assert "flag" in native.last_error()
    assert not handle


def test_open_with_paused_flag_works():
    code, handle = raw_open(None, None, native.OPEN_PAUSED)
    assert code == OK and handle
    native.lib.smtpb_client_close(handle)


def test_invalid_utf8_data_dir_is_invalid_argument():
    code, handle = raw_open(b"/tmp/\xff\xfe", None, 0)
    assert code == INVALID_ARGUMENT
    assert "UTF-8" in native.last_error()
    assert not handle


def test_null_out_pointer_is_invalid_argument():
    code = native.call_raw("smtpb_client_open", None, None, 0, None)
    assert code == INVALID_ARGUMENT


def test_close_null_is_harmless():
    native.lib.smtpb_client_close(None)


# --- shutdown -------------------------------------------------------------------------------


def test_calls_after_shutdown_are_state_and_a_second_shutdown_is_ok(client):
    assert native.call_raw("smtpb_client_shutdown", client, 0) == OK
    assert native.call_raw("smtpb_config_set", client, b"SMTPServer", b"x") == STATE
    out = ctypes.c_void_p()
    assert native.call_raw("smtpb_config_get", client, b"SMTPServer", ctypes.byref(out)) == STATE
    assert out.value is None
    assert native.call_raw("smtpb_send", client, b'{"to":["a@example.com"],"text":"x"}', ctypes.byref(out)) == STATE
    assert out.value is None
    assert native.call_raw("smtpb_status", client, b"01JD0000000000000000000000", ctypes.byref(out)) == STATE
    assert native.call_raw("smtpb_credentials_set", client, None, b"u", b"p") == STATE
    assert native.call_raw("smtpb_blacklist_add", client, b"@x.example") == STATE
    assert native.call_raw("smtpb_test_connection", client, None, None, ctypes.byref(out)) == STATE
    assert out.value is None
    assert native.call_raw("smtpb_client_shutdown", client, 0) == OK


def test_shutdown_message_says_why(client):
    client.shutdown(0)
    error = expect_error(STATE, client.config_get, "SMTPServer")
    assert "shut" in error.message


def test_send_after_shutdown_is_state_and_sends_nothing(client):
    with RecordingServer() as server:
        configure(client, server)
        client.send(message())
        client.shutdown(1000)
        expect_error(STATE, client.send, message())
        assert len(server.messages) == 1
