"""The C boundary itself: NULLs, bad UTF-8, out-pointers, last_error, names
(ABI §1 Conventions, §2, §3)."""

from __future__ import annotations

import ctypes
import json
import re
import threading
from pathlib import Path

import pytest
from smtpbridge import native

from conftest import ClosedPort, CONFIG, CONNECT, INVALID_ARGUMENT, OK, configure, message
from servers import RecordingServer

NAMES = {
    0: "SMTPB_OK", 1: "SMTPB_ERR_INVALID_ARGUMENT", 2: "SMTPB_ERR_CONFIG", 3: "SMTPB_ERR_CREDENTIALS",
    4: "SMTPB_ERR_CONNECT", 5: "SMTPB_ERR_TLS", 6: "SMTPB_ERR_AUTH", 7: "SMTPB_ERR_REJECTED",
    8: "SMTPB_ERR_TRANSIENT", 9: "SMTPB_ERR_MESSAGE", 10: "SMTPB_ERR_NOT_FOUND", 11: "SMTPB_ERR_LIMIT",
    12: "SMTPB_ERR_BLOCKED", 13: "SMTPB_ERR_IO", 14: "SMTPB_ERR_TIMEOUT", 15: "SMTPB_ERR_STATE",
    16: "SMTPB_ERR_BUSY", 99: "SMTPB_ERR_INTERNAL",
}


def out() -> ctypes.c_void_p:
    return ctypes.c_void_p()


def fail_once(client) -> str:
    """Make a call fail on this thread; return its last error."""
    assert native.call_raw("smtpb_config_set", client, b"NoSuchKey", b"x") == CONFIG
    return native.last_error()


# --- static functions ------------------------------------------------------------------------


def test_abi_version_is_1():
    assert native.lib.smtpb_abi_version() == 1


def test_abi_minor_is_2_and_matches_the_header():
    header = (Path(__file__).resolve().parents[1] / "include" / "smtpbridge.h").read_text()
    assert re.search(r"#define SMTPB_ABI_MINOR 2\b", header)
    assert native.lib.smtpb_abi_minor() == 2


def test_version_is_a_nonempty_static_string():
    version = native.lib.smtpb_version()
    assert re.match(rb"^\d+\.\d+\.\d+", version)


@pytest.mark.parametrize("code, name", sorted(NAMES.items()))
def test_result_names(code, name):
    assert native.lib.smtpb_result_name(code) == name.encode()


@pytest.mark.parametrize("code", [12345, -1, 17, 98, 100, 2**31 - 1, -(2**31)])
def test_unknown_result_code_is_named_unknown(code):
    assert native.lib.smtpb_result_name(code) == b"SMTPB_ERR_UNKNOWN"


def test_string_free_null_is_fine():
    native.lib.smtpb_string_free(None)


# --- NULL arguments ---------------------------------------------------------------------------


def test_null_client_is_invalid_argument_naming_it():
    assert native.call_raw("smtpb_config_set", None, b"SMTPServer", b"x") == INVALID_ARGUMENT
    assert "client" in native.last_error()


@pytest.mark.parametrize("name, args", [
    ("smtpb_config_get", (b"SMTPServer",)),
    ("smtpb_config_export_json", ()),
    ("smtpb_send", (b"{}",)),
    ("smtpb_status", (b"x",)),
    ("smtpb_blacklist_list", ()),
    ("smtpb_credentials_masked", (None,)),
    ("smtpb_test_connection", (None, None)),
])
def test_null_client_with_out_pointer_is_invalid_argument_and_out_is_null(name, args):
    o = ctypes.c_void_p(0x1234)  # garbage: must be set to NULL on entry
    assert native.call_raw(name, None, *args, ctypes.byref(o)) == INVALID_ARGUMENT
    assert o.value is None


def test_null_key_is_invalid_argument_naming_it(client):
    assert native.call_raw("smtpb_config_set", client, None, b"x") == INVALID_ARGUMENT
    assert "key" in native.last_error()
    o = out()
    assert native.call_raw("smtpb_config_get", client, None, ctypes.byref(o)) == INVALID_ARGUMENT
    assert "key" in native.last_error()
    assert o.value is None


def test_null_message_json_is_invalid_argument(client):
    o = out()
    assert native.call_raw("smtpb_send", client, None, ctypes.byref(o)) == INVALID_ARGUMENT
    assert o.value is None


@pytest.mark.parametrize("name, args", [
    ("smtpb_config_import_keys", (None,)),
    ("smtpb_config_load_json", (None,)),
    ("smtpb_blacklist_add", (None,)),
    ("smtpb_blacklist_remove", (None,)),
])
def test_null_required_text_is_invalid_argument(client, name, args):
    assert native.call_raw(name, client, *args) == INVALID_ARGUMENT
    assert native.last_error()


def test_null_out_pointer_where_required_is_invalid_argument(client):
    assert native.call_raw("smtpb_config_get", client, b"SMTPServer", None) == INVALID_ARGUMENT
    assert native.call_raw("smtpb_config_export_json", client, None) == INVALID_ARGUMENT


def test_out_pointer_is_set_to_null_on_entry_even_on_failure(client):
    o = ctypes.c_void_p(0x1234)
    assert native.call_raw("smtpb_config_get", client, b"NoSuchKey", ctypes.byref(o)) == CONFIG
    assert o.value is None


# --- invalid UTF-8 ------------------------------------------------------------------------------


def test_invalid_utf8_key_is_invalid_argument_with_offset(client):
    assert native.call_raw("smtpb_config_set", client, b"\xff\xfe", b"x") == INVALID_ARGUMENT
    error = native.last_error()
    assert "UTF-8" in error and "key" in error
    assert re.search(r"\b0\b", error), error


def test_invalid_utf8_key_offset_is_the_first_bad_byte(client):
    assert native.call_raw("smtpb_config_set", client, b"SMTP\xffServer", b"x") == INVALID_ARGUMENT
    error = native.last_error()
    assert "UTF-8" in error and re.search(r"\b4\b", error), error


def test_invalid_utf8_value_is_invalid_argument(client):
    assert native.call_raw("smtpb_config_set", client, b"SMTPServer", b"m\xe4il.example") == INVALID_ARGUMENT
    error = native.last_error()
    assert "UTF-8" in error and "value" in error and re.search(r"\b1\b", error), error


def test_invalid_utf8_in_message_json_is_invalid_argument_with_offset(client):
    text = b'{"to":["a@example.com"],"text":"Gr\xfc\xdfe"}'
    o = out()
    assert native.call_raw("smtpb_send", client, text, ctypes.byref(o)) == INVALID_ARGUMENT
    error = native.last_error()
    assert "UTF-8" in error
    offset = text.index(b"\xfc")
    assert re.search(rf"\b{offset}\b", error), error
    assert o.value is None


def test_ansi_text_is_refused_as_invalid_utf8(client):
    # "Müller" in Windows-1252: a lone 0xFC byte.
    value = "Müller GmbH".encode("cp1252")
    assert native.call_raw("smtpb_config_set", client, b"SMTPSenderName", value) == INVALID_ARGUMENT
    assert "UTF-8" in native.last_error()


# --- last_error -----------------------------------------------------------------------------------


def test_last_error_is_empty_after_a_success(client):
    assert fail_once(client)
    assert native.call_raw("smtpb_config_set", client, b"SMTPServer", b"mail.example") == OK
    assert native.last_error() == ""


def test_last_error_is_not_changed_by_the_static_functions(client):
    message_text = fail_once(client)
    native.lib.smtpb_result_name(3)
    native.lib.smtpb_version()
    native.lib.smtpb_abi_version()
    native.lib.smtpb_abi_minor()
    native.lib.smtpb_string_free(None)
    assert native.last_error() == message_text
    assert native.last_error() == message_text  # reading it does not change it


def test_last_error_is_per_thread(client):
    message_text = fail_once(client)
    seen = {}

    def other():
        seen["before"] = native.last_error()
        native.call_raw("smtpb_config_set", client, b"SMTPServer", b"ok.example")
        seen["after"] = native.last_error()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == {"before": "", "after": ""}
    assert native.last_error() == message_text


def test_last_error_is_never_null():
    assert native.lib.smtpb_last_error() is not None


# --- out strings --------------------------------------------------------------------------------


def test_send_with_null_out_status_is_allowed(client):
    with RecordingServer() as server:
        configure(client, server)
        assert native.call_raw("smtpb_send", client, json.dumps(message()).encode(), None) == OK
        assert len(server.wait_for(1)) == 1


def test_send_failure_writes_the_status_through_the_out_pointer(client):
    configure(client, ClosedPort(), timeout_ms=1000)
    o = out()
    code = native.call_raw("smtpb_send", client, json.dumps(message()).encode(), ctypes.byref(o))
    assert code == CONNECT
    status = json.loads(native.take_string(o))
    assert status["state"] == "failed" and status["error_code"] == CONNECT


def test_returned_strings_outlive_the_client():
    import smtpbridge

    c = smtpbridge.Client()
    c.config_set("SMTPServer", "mail.example")
    o = out()
    assert native.call_raw("smtpb_config_export_json", c, ctypes.byref(o)) == OK
    c.close()
    assert json.loads(native.take_string(o))["profiles"][0]["SMTPServer"] == "mail.example"
