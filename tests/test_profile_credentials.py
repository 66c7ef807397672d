"""Credentials per profile (ABI §20): ``Name.SMTPUsername``/``Name.SMTPPassword``
are a profile's own shared credential, ``"profile:user_id"`` a user's credential
for one profile; a profile without its own uses the global one. Proved on the
login each real server's AUTH saw, and on the files the data_dir holds."""

from __future__ import annotations

import json

import pytest
import smtpbridge

from conftest import CONFIG, CREDENTIALS, NOT_FOUND, configure, expect_error, files_under, message
from servers import RecordingServer

WAIT_S = 5.0
MAIN_USERS = {"office": "Main-Secret-1111", "anna": "Anna-Main-2222"}
BACKUP_USERS = {"club-office": "Backup-Secret-3333", "anna-club": "Anna-Backup-4444"}
SECRETS = [*MAIN_USERS.values(), *BACKUP_USERS.values()]


def auth_server(users):
    return RecordingServer(users=users, auth_require_tls=False, auth_required=True)


@pytest.fixture
def main_auth():
    with auth_server(MAIN_USERS) as s:
        yield s


@pytest.fixture
def backup_auth():
    with auth_server({**BACKUP_USERS, **MAIN_USERS}) as s:
        yield s


def two_profiles(client, main_auth, backup_auth, credentials="Shared"):
    configure(client, main_auth, auth=True, SMTPAllowPlaintextAuth=True, SMTPCredentials=credentials)
    configure(client, backup_auth, profile="Backup", auth=True, SMTPAllowPlaintextAuth=True,
              SMTPCredentials=credentials)


def test_each_profile_logs_in_with_its_own_shared_credential(client, main_auth, backup_auth):
    two_profiles(client, main_auth, backup_auth)
    client.config_import_keys(
        "SMTPUsername=office\nSMTPPassword=Main-Secret-1111\n"
        "Backup.SMTPUsername=club-office\nBackup.SMTPPassword=Backup-Secret-3333\n"
    )
    assert client.send(message(subject="main"))["profile"] == "Default"
    assert client.send(message(profile="backup", subject="backup"))["profile"] == "Backup"
    [m] = main_auth.wait_for(1, WAIT_S)
    [b] = backup_auth.wait_for(1, WAIT_S)
    assert (m.auth_user, m.parsed["Subject"]) == ("office", "main")
    assert (b.auth_user, b.parsed["Subject"]) == ("club-office", "backup")
    assert client.config_get("SMTPUsername") == "office"
    assert client.config_get("Backup.SMTPUsername") == "club-office"
    masked = client.credentials_masked("Backup:")
    assert masked["username"] == "club-office" and masked["has_secret"] is True


def test_a_profile_without_its_own_uses_the_global_shared_credential(client, main_auth, backup_auth):
    two_profiles(client, main_auth, backup_auth)
    client.configure(SMTPUsername="office", SMTPPassword="Main-Secret-1111")
    assert client.config_get("Backup.SMTPUsername") == "office"
    client.send(message(profile="Backup"))
    assert backup_auth.wait_for(1, WAIT_S)[0].auth_user == "office"
    # Its own password alone makes it use its own credential whole: no username yet.
    client.config_set("Backup.SMTPPassword", "Backup-Secret-3333")
    error = expect_error(CREDENTIALS, client.send, message(profile="Backup"))
    assert "Backup.SMTPUsername" in error.message
    client.config_set("Backup.SMTPUsername", "club-office")
    client.send(message(profile="Backup"))
    assert backup_auth.wait_for(2, WAIT_S)[1].auth_user == "club-office"
    # Removing its own brings the global one back.
    client.credentials_remove("Backup:")
    client.send(message(profile="Backup"))
    assert backup_auth.wait_for(3, WAIT_S)[2].auth_user == "office"


def test_a_users_credential_may_be_per_profile(client, main_auth, backup_auth):
    two_profiles(client, main_auth, backup_auth, credentials="PerUser")
    client.credentials_set("emp-42", "anna", "Anna-Main-2222")
    client.credentials_set("BACKUP:emp-42", "anna-club", "Anna-Backup-4444")
    client.send(message(user="emp-42"))
    client.send(message(user="emp-42", profile="Backup"))
    assert main_auth.wait_for(1, WAIT_S)[0].auth_user == "anna"
    assert backup_auth.wait_for(1, WAIT_S)[0].auth_user == "anna-club"
    # Replaced in any letter case of the profile, and removed the same way.
    client.credentials_set("backup:emp-42", "anna", "Anna-Main-2222")
    assert client.credentials_masked("Backup:emp-42")["username"] == "anna"
    client.credentials_remove("backup:emp-42")
    expect_error(NOT_FOUND, client.credentials_masked, "Backup:emp-42")
    # Without its own, the profile uses the user's general credential.
    client.send(message(user="emp-42", profile="Backup"))
    assert backup_auth.wait_for(2, WAIT_S)[1].auth_user == "anna"


def test_profile_usernames_export_and_load_back_but_no_password_does(dir_client, data_dir,
                                                                      main_auth, backup_auth):
    two_profiles(dir_client, main_auth, backup_auth)
    dir_client.configure({"SMTPUsername": "office", "SMTPPassword": "Main-Secret-1111",
                          "Backup.SMTPUsername": "club-office", "Backup.SMTPPassword": "Backup-Secret-3333"})
    exported = dir_client.config_export_json()
    [backup] = [p for p in exported["profiles"] if p["name"] == "Backup"]
    assert backup["SMTPUsername"] == "club-office" and "SMTPPassword" not in backup
    assert exported["global"]["SMTPUsername"] == "office"
    text = json.dumps(exported)
    for path in files_under(data_dir):
        content = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in content, f"{secret} in {path.name}"
            assert secret not in text
    assert b"club-office" not in (data_dir / "config.json").read_bytes()
    # Loading the export again keeps both logins working.
    dir_client.config_load_json(exported)
    dir_client.send(message(profile="Backup"))
    dir_client.send(message())
    assert backup_auth.wait_for(1, WAIT_S)[0].auth_user == "club-office"
    assert main_auth.wait_for(1, WAIT_S)[0].auth_user == "office"


def test_profile_credentials_survive_a_reopen(data_dir, main_auth, backup_auth):
    with smtpbridge.Client(data_dir, secret="master-1") as first:
        two_profiles(first, main_auth, backup_auth)
        first.configure({"Backup.SMTPUsername": "club-office", "Backup.SMTPPassword": "Backup-Secret-3333"})
    with smtpbridge.Client(data_dir, secret="master-1") as second:
        assert second.config_get("Backup.SMTPUsername") == "club-office"
        second.send(message(profile="Backup"))
    assert backup_auth.wait_for(1, WAIT_S)[0].auth_user == "club-office"


def test_a_prefix_on_other_global_keys_is_still_config_error(client):
    error = expect_error(CONFIG, client.config_set, "Backup.SMTPTestMode", "true")
    assert "SMTPTestMode" in error.message
    error = expect_error(CONFIG, client.config_set, "bad name.SMTPPassword", "x")
    assert "bad name" in error.message
    expect_error(CONFIG, client.config_get, "Backup.SMTPPassword")
