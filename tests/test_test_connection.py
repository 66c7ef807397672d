"""smtpb_test_connection: EHLO, TLS and AUTH, then QUIT, no mail; a report whatever
the result (ABI §9, §11)."""

from __future__ import annotations

import ctypes

import pytest
from smtpbridge import native

from conftest import ClosedPort, CONFIG, CONNECT, CREDENTIALS, NOT_FOUND, configure, expect_error
from servers import HANG, RecordingServer, Script, ScriptedServer

REPORT_FIELDS = {"ok", "stage", "banner", "capabilities", "tls", "auth_mechanisms", "error_code", "error"}


def test_successful_report_shape_and_no_mail_sent(client):
    with ScriptedServer(Script(greeting="220 mx.test ESMTP ready")) as server:
        configure(client, server)
        report = client.test_connection()
        commands = server.commands()
    assert set(report) >= REPORT_FIELDS
    assert report["ok"] is True
    assert report["stage"] == "done"
    assert "mx.test" in report["banner"]
    assert "PIPELINING" in report["capabilities"]
    assert report["tls"] is None
    assert report["error_code"] == 0 and report["error"] is None
    assert "MAIL" not in commands and "DATA" not in commands
    assert commands[0] == "EHLO" and commands[-1] == "QUIT"


def test_null_profile_uses_the_default_profile(client):
    with RecordingServer() as main, RecordingServer() as other:
        configure(client, main)
        configure(client, other, profile="Other")
        assert client.test_connection()["ok"] is True
        assert (main.connections, other.connections) == (1, 0)
        assert client.test_connection("Other")["ok"] is True
        assert other.connections == 1


def test_unknown_profile_is_not_found_without_a_report(client):
    with RecordingServer() as server:
        configure(client, server)
        error = expect_error(NOT_FOUND, client.test_connection, "Nope")
    assert error.report is None
    assert "Nope" in error.message


def test_no_server_configured_is_config_error_without_a_report(client):
    error = expect_error(CONFIG, client.test_connection)
    assert error.report is None


def test_connection_refused_reports_stage_connect(client):
    configure(client, ClosedPort(), timeout_ms=1000)
    error = expect_error(CONNECT, client.test_connection)
    assert error.report["ok"] is False
    assert error.report["stage"] == "connect"
    assert error.report["error_code"] == CONNECT
    assert error.report["error"]


@pytest.mark.parametrize("greeting", ["554 5.7.1 go away", HANG])
def test_bad_greeting_reports_stage_greeting(client, greeting):
    with ScriptedServer(Script(greeting=greeting)) as server:
        configure(client, server, timeout_ms=1000)
        error = expect_error(CONNECT, client.test_connection)
    assert error.report["stage"] == "greeting"
    assert error.report["ok"] is False


def test_ehlo_and_helo_refused_reports_stage_ehlo(client):
    script = Script(replies={"EHLO": ["554 5.5.1 no"], "HELO": ["554 5.5.1 no"]})
    with ScriptedServer(script) as server:
        configure(client, server)
        error = expect_error(CONNECT, client.test_connection)
    assert error.report["stage"] == "ehlo"
    assert error.report["ok"] is False


def test_missing_credential_reports_stage_auth(client):
    with RecordingServer() as server:
        configure(client, server, auth=True)
        error = expect_error(CREDENTIALS, client.test_connection, None, "emp-404")
    assert error.report is not None
    assert error.report["ok"] is False and error.report["stage"] == "auth"
    assert "emp-404" in error.message


def test_report_is_written_through_the_raw_out_pointer_on_failure(client):
    configure(client, ClosedPort(), timeout_ms=1000)
    out = ctypes.c_void_p()
    code = native.call_raw("smtpb_test_connection", client, None, None, ctypes.byref(out))
    assert code == CONNECT
    assert native.take_string(out) is not None
