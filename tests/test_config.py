"""Configuration keys, profiles, import and JSON (ABI §5, §11)."""

from __future__ import annotations

import json

import pytest

from conftest import CONFIG, INVALID_ARGUMENT, NOT_FOUND, configure, expect_error, message
from servers import RecordingServer

# --- single keys ---------------------------------------------------------------------


def test_unknown_key_is_config_error_naming_it(client):
    error = expect_error(CONFIG, client.config_set, "SMTPServr", "mail.example")
    assert "SMTPServr" in error.message


def test_unknown_key_cannot_be_read_either(client):
    error = expect_error(CONFIG, client.config_get, "SMTPPort")
    assert "SMTPPort" in error.message


@pytest.mark.parametrize("key, value, accepted", [
    ("SMTPServerEncryption", "TLS1", ["None", "SSL", "TLS"]),
    ("SMTPAuthentication", "Maybe", ["None", "Required", "Optional"]),
    ("SMTPAuthModel", "Kerberos", ["Basic", "OAuth2"]),
    ("SMTPCredentials", "Everyone", ["PerUser", "Shared"]),
    ("SMTPMinTlsVersion", "1.1", ["1.2", "1.3"]),
    ("SMTPSendLimitPeriod", "Month", ["None", "Hour", "Day", "Week"]),
    ("SMTPEnabled", "yes", ["true", "false"]),
])
def test_bad_enum_value_is_config_error_naming_key_and_accepted_values(client, key, value, accepted):
    error = expect_error(CONFIG, client.config_set, key, value)
    assert key in error.message
    assert value in error.message
    for name in accepted:
        assert name in error.message, f"{name} missing from: {error.message}"


@pytest.mark.parametrize("key, value", [
    ("SMTPServerPort", "70000"),
    ("SMTPServerPort", "0"),
    ("SMTPServerPort", "twenty-five"),
    ("SMTPConnectionTimeout", "-1"),
    ("SMTPServer", "bad host name"),
    ("SMTPSenderEmail", "not an address"),
    ("SMTPCaFile", "relative/ca.pem"),
    ("SMTPArchiveDir", "relative/archive"),
])
def test_bad_value_is_config_error_naming_the_key(client, key, value):
    error = expect_error(CONFIG, client.config_set, key, value)
    assert key in error.message


def test_a_bad_value_leaves_the_old_one(client):
    client.config_set("SMTPServerPort", "2525")
    expect_error(CONFIG, client.config_set, "SMTPServerPort", "70000")
    assert client.config_get("SMTPServerPort") == "2525"


def test_ca_file_that_does_not_exist_is_config_error(client, tmp_path):
    missing = tmp_path / "missing-ca.pem"
    error = expect_error(CONFIG, client.config_set, "SMTPCaFile", str(missing))
    assert "SMTPCaFile" in error.message


def test_keys_and_enum_values_match_in_any_letter_case(client):
    client.config_set("smtpserverencryption", "starttls")
    assert client.config_get("SMTPServerEncryption") == "TLS"  # STARTTLS is another name of TLS
    client.config_set("SMTPENABLED", "TRUE")
    assert client.config_get("smtpEnabled") == "true"
    client.config_set("SMTPAuthentication", "oPtIoNaL")
    assert client.config_get("SMTPAuthentication") == "Optional"


def test_null_value_restores_the_default(client):
    client.config_set("SMTPConnectionTimeout", "1234")
    client.config_set("SMTPConnectionTimeout", None)
    assert client.config_get("SMTPConnectionTimeout") == "30000"


# --- defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize("encryption, port", [("SSL", "465"), ("TLS", "587"), ("STARTTLS", "587"),
                                              ("None", "25"), ("", "25")])
def test_default_port_follows_the_encryption(client, encryption, port):
    client.config_set("SMTPServerEncryption", encryption)
    assert client.config_get("SMTPServerPort") == port


def test_explicit_port_wins_over_the_encryption_default(client):
    client.configure(SMTPServerEncryption="SSL", SMTPServerPort=2465)
    assert client.config_get("SMTPServerPort") == "2465"


@pytest.mark.parametrize("key, default", [
    ("SMTPAuthentication", "Required"),
    ("SMTPAuthModel", "Basic"),
    ("SMTPCredentials", "PerUser"),
    ("SMTPConnectionTimeout", "30000"),
    ("SMTPBatchPerMinute", "0"),
    ("SMTPSendLimit", "0"),
    ("SMTPSendLimitPeriod", "None"),
    ("SMTPEnabled", "true"),
    ("SMTPMinTlsVersion", "1.2"),
    ("SMTPAcceptInvalidCertificates", "false"),
    ("SMTPAllowPlaintextAuth", "false"),
    ("SMTPMaxMessageBytes", "36700160"),
    ("SMTPTestMode", "false"),
    ("SMTPRetryInitialMs", "60000"),
    ("SMTPRetryMaxMs", "3600000"),
    ("SMTPRetryMaxAgeMs", "172800000"),
    ("SMTPDeliveryThreads", "2"),
    ("SMTPShutdownGraceMs", "3000"),
])
def test_config_get_returns_defaults(client, key, default):
    assert client.config_get(key) == default


def test_tls_server_name_defaults_to_the_server(client):
    client.config_set("SMTPServer", "mail.example")
    assert client.config_get("SMTPTlsServerName") == "mail.example"


# --- profiles ----------------------------------------------------------------------------------


def test_prefixed_keys_set_their_own_profile(client):
    client.config_set("SMTPServer", "main.example")
    client.config_set("Backup.SMTPServer", "backup.example")
    client.config_set("Backup.SMTPServerEncryption", "SSL")
    assert client.config_get("SMTPServer") == "main.example"
    assert client.config_get("Default.SMTPServer") == "main.example"
    assert client.config_get("Backup.SMTPServer") == "backup.example"
    assert client.config_get("backup.smtpserver") == "backup.example"
    assert client.config_get("Backup.SMTPServerPort") == "465"
    assert client.config_get("SMTPServerPort") == "25"


def test_global_key_with_a_prefix_is_config_error(client):
    # SMTPUsername and SMTPPassword take a prefix since 1.2 (a profile's own shared credential).
    for key in ("Backup.SMTPTestMode", "Default.SMTPTestAddresses", "X.SMTPDeliveryThreads"):
        error = expect_error(CONFIG, client.config_set, key, "true")
        assert key.split(".")[1] in error.message


@pytest.mark.parametrize("name", ["bad name", "a/b", "x" * 65, ""])
def test_bad_profile_name_is_config_error(client, name):
    expect_error(CONFIG, client.config_set, f"{name}.SMTPServer", "mail.example")


def test_message_profile_chooses_the_server(client):
    with RecordingServer() as main, RecordingServer() as backup:
        configure(client, main)
        configure(client, backup, profile="Backup")
        status = client.send(message(profile="Backup"))
        assert status["profile"] == "Backup"
        assert len(backup.wait_for(1)) == 1
        assert main.connections == 0
        assert client.send(message())["profile"] == "Default"
        assert len(main.wait_for(1)) == 1


def test_sender_filter_chooses_the_profile(client):
    with RecordingServer() as main, RecordingServer() as other:
        configure(client, main)
        configure(client, other, profile="Other", SMTPFilter="other.example")
        assert client.send(message(**{"from": "x@other.example"}))["profile"] == "Other"
        assert client.send(message())["profile"] == "Default"
        assert len(other.wait_for(1)) == 1 and len(main.wait_for(1)) == 1


def test_unknown_message_profile_is_not_found(client):
    with RecordingServer() as server:
        configure(client, server)
        error = expect_error(NOT_FOUND, client.send, message(profile="Nope"))
        assert "Nope" in error.message
        assert error.status is None
        assert server.connections == 0


def test_send_without_a_server_is_config_error(client):
    error = expect_error(CONFIG, client.send, message())
    assert error.status is None


def test_setting_default_on_one_profile_clears_it_elsewhere(client):
    client.config_set("A.SMTPServer", "a.example")
    client.config_set("B.SMTPServer", "b.example")
    client.config_set("A.SMTPDefault", True)
    client.config_set("B.SMTPDefault", True)
    assert client.config_get("B.SMTPDefault") == "true"
    assert client.config_get("A.SMTPDefault") == "false"


# --- import_keys ---------------------------------------------------------------------------------


def test_import_keys_applies_lines_ignoring_comments_and_blank_lines(client):
    client.config_import_keys(
        "# host settings\r\n"
        "; another comment\r\n"
        "\r\n"
        "SMTPServer=mail.example\r\n"
        "SMTPServerEncryption = SSL\n"
        "Backup.SMTPServer=backup.example\n"
    )
    assert client.config_get("SMTPServer") == "mail.example"
    assert client.config_get("SMTPServerEncryption") == "SSL"
    assert client.config_get("Backup.SMTPServer") == "backup.example"


def test_import_keys_with_a_duplicate_key_in_another_case_changes_nothing(client):
    client.config_set("SMTPServer", "before.example")
    error = expect_error(CONFIG, client.config_import_keys,
                         "SMTPServer=after.example\nSMTPServerEncryption=SSL\nsmtpserverencryption=TLS\n")
    assert "line 3" in error.message
    assert client.config_get("SMTPServer") == "before.example"
    assert client.config_get("SMTPServerEncryption") == "None"  # the blank default, as read back


@pytest.mark.parametrize("bad_line", ["SMTPServr=x", "SMTPServerPort=99999", "no equals sign here"])
def test_import_keys_with_a_bad_line_changes_nothing_and_names_the_line(client, bad_line):
    client.config_set("SMTPServer", "before.example")
    error = expect_error(CONFIG, client.config_import_keys, f"SMTPServer=after.example\r\n# c\r\n{bad_line}\r\n")
    assert "line 3" in error.message
    assert client.config_get("SMTPServer") == "before.example"


@pytest.mark.parametrize("lines", [
    "SMTPServer=mail.example\nSMTPPassword: Secret-Pw-8812\n",
    "SMTPServer=mail.example\nSMTPPassword Secret-Pw-8812\n",
    "SMTPPassword=Secret-Pw-8812\nSMTPPassword=Secret-Pw-8812\n",
], ids=["colon-for-equals", "space-for-equals", "given-twice"])
def test_import_keys_error_never_echoes_a_password(client, lines):
    error = expect_error(CONFIG, client.config_import_keys, lines)
    assert "line 2" in error.message
    assert "Secret-Pw-8812" not in error.message


# --- load_json / export_json ---------------------------------------------------------------------


def test_export_load_round_trip_without_the_password(client, dir_client, data_dir):
    password = "Pw-Never-Exported-7731"
    dir_client.configure(
        SMTPServer="mail.example", SMTPServerEncryption="SSL", SMTPConnectionTimeout=4000,
        SMTPUsername="office", SMTPPassword=password, SMTPTestMode=False,
        SMTPSenderEmail="office@firm.example",
    )
    dir_client.config_set("Backup.SMTPServer", "backup.example")
    dir_client.config_set("Backup.SMTPEnabled", False)
    dir_client.blacklist_add("@spam.example")
    dir_client.blacklist_add("nobody@example.com")
    exported = dir_client.config_export_json()
    text = json.dumps(exported, ensure_ascii=False)
    assert password not in text
    assert "SMTPPassword" not in text
    assert [p["name"] for p in exported["profiles"]] == ["Default", "Backup"]
    assert sorted(exported["blacklist"]) == ["@spam.example", "nobody@example.com"]

    client.config_load_json(exported)
    assert client.config_export_json() == exported
    assert client.config_get("Backup.SMTPServer") == "backup.example"
    assert client.config_get("SMTPConnectionTimeout") == "4000"

    for path in (p for p in data_dir.rglob("*") if p.is_file()):
        assert password.encode() not in path.read_bytes(), f"the password is in {path}"


def test_export_uses_natural_json_types(client):
    client.configure(SMTPServer="mail.example", SMTPServerPort=2525, SMTPEnabled=True, SMTPTestMode=True)
    exported = client.config_export_json()
    default = exported["profiles"][0]
    assert default["SMTPServerPort"] == 2525
    assert default["SMTPEnabled"] is True
    assert exported["global"]["SMTPTestMode"] is True


def test_load_json_accepts_values_as_strings(client):
    client.config_load_json({"global": {"SMTPTestMode": "false"},
                             "profiles": [{"name": "Default", "SMTPServer": "m.example", "SMTPServerPort": "2525"}]})
    assert client.config_get("SMTPServerPort") == "2525"


def test_load_json_replaces_the_whole_configuration(client):
    client.config_set("Old.SMTPServer", "old.example")
    client.blacklist_add("@old.example")
    client.config_load_json({"profiles": [{"name": "Default", "SMTPServer": "new.example"}]})
    assert client.blacklist_list() == []
    assert [p["name"] for p in client.config_export_json()["profiles"]] == ["Default"]


@pytest.mark.parametrize("config, named", [
    ({"profiles": [{"name": "Default", "SMTPServr": "x"}]}, "SMTPServr"),
    ({"global": {"SMTPServer": "x"}}, "SMTPServer"),
    ({"profiles": [{"name": "Default", "SMTPTestMode": True}]}, "SMTPTestMode"),
    ({"profiles": [{"name": "bad name", "SMTPServer": "x"}]}, "bad name"),
    ({"profiles": [{"name": "Default", "SMTPServerEncryption": "TLS1"}]}, "SMTPServerEncryption"),
])
def test_load_json_refuses_bad_configuration_naming_it_and_changes_nothing(client, config, named):
    client.config_set("SMTPServer", "before.example")
    error = expect_error(CONFIG, client.config_load_json, config)
    assert named in error.message
    assert client.config_get("SMTPServer") == "before.example"


@pytest.mark.parametrize("value", [73914682, ["Secret-Pw-8812"], {"pw": "Secret-Pw-8812"}],
                         ids=["number", "array", "object"])
def test_load_json_error_never_echoes_a_password(client, value):
    try:
        client.config_load_json({"global": {"SMTPPassword": value}})
    except Exception as error:
        assert "73914682" not in str(error) and "Secret-Pw-8812" not in str(error), str(error)


def test_load_json_malformed_is_invalid_argument_with_line_and_column(client):
    error = expect_error(INVALID_ARGUMENT, client.config_load_json, '{"profiles": [\n  {"name": }\n]}')
    assert "line 2" in error.message
    assert "column" in error.message


def test_load_json_array_instead_of_an_object_is_refused(client):
    client.config_set("SMTPServer", "before.example")
    error = expect_error(INVALID_ARGUMENT, client.config_load_json, '[{}, [{"name": "Default"}], []]')
    assert error.message
    assert client.config_get("SMTPServer") == "before.example"


def test_load_json_duplicate_keys_are_refused(client):
    error = expect_error(INVALID_ARGUMENT, client.config_load_json,
                         '{"profiles": [{"name": "Default", "SMTPServer": "a", "SMTPServer": "b"}]}')
    assert "SMTPServer" in error.message


# --- persistence -------------------------------------------------------------------------------------


def test_configuration_persists_in_the_data_dir(data_dir):
    import smtpbridge

    with smtpbridge.Client(data_dir) as first:
        first.configure(SMTPServer="mail.example", SMTPServerEncryption="SSL", SMTPUsername="office")
        first.config_set("Backup.SMTPServer", "backup.example")
        first.blacklist_add("@spam.example")
    with smtpbridge.Client(data_dir) as second:
        assert second.config_get("SMTPServer") == "mail.example"
        assert second.config_get("SMTPServerPort") == "465"
        assert second.config_get("Backup.SMTPServer") == "backup.example"
        assert second.config_get("SMTPUsername") == "office"
        assert second.blacklist_list() == ["@spam.example"]


def test_repeated_config_writes_leave_no_temporary_files(dir_client, data_dir):
    for port in range(2000, 2020):
        dir_client.config_set("SMTPServerPort", port)
    leftovers = [p.name for p in data_dir.rglob("*") if p.is_file() and "tmp" in p.name.lower()]
    assert leftovers == []
