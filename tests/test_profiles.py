"""Profiles and routing (ABI §4 "Profile choice", §5, §11), proved on what two
real servers received.

The cascade: an explicit ``profile`` (unknown: NOT_FOUND); else the first
enabled profile, in creation order, whose SMTPFilter matches the sender
domain, ``@domain`` or the full address; else the enabled default; else the
first enabled; else CONFIG.
"""

from __future__ import annotations

import pytest

import smtpbridge
from conftest import CONFIG, NOT_FOUND, SENDER, configure, expect_error, message
from servers import RecordingServer

WAIT_S = 5.0


def send_from(client, sender: str, **fields):
    return client.send(message(**{"from": sender}, **fields))


def landed_on(server, count: int = 1):
    """The messages ``server`` received, once it has ``count`` of them."""
    return server.wait_for(count, WAIT_S)


def nothing_on(*servers) -> None:
    for server in servers:
        assert server.messages == [], f"server on port {server.port} received mail"
        assert server.connections == 0, f"server on port {server.port} was connected to"


# --- Name.Key and an explicit profile ------------------------------------------------------------


def test_prefixed_keys_configure_a_second_profile_on_its_own_server(client, main, backup):
    configure(client, main)
    for key, value in (
        ("Backup.SMTPServer", "127.0.0.1"),
        ("Backup.SMTPServerPort", backup.port),
        ("Backup.SMTPServerEncryption", "None"),
        ("Backup.SMTPAuthentication", "None"),
        ("Backup.SMTPConnectionTimeout", 5000),
    ):
        client.config_set(key, value)
    assert client.config_get("Backup.SMTPServerPort") == str(backup.port)
    assert client.config_get("SMTPServerPort") == str(main.port)

    status = client.send(message(profile="Backup", subject="via backup"))
    assert status["profile"] == "Backup"
    [m] = landed_on(backup)
    assert m.parsed["Subject"] == "via backup"
    nothing_on(main)


def test_explicit_profile_wins_over_a_matching_filter(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="firm.example")
    status = send_from(client, SENDER, profile="Default", subject="explicit")
    assert status["profile"] == "Default"
    [m] = landed_on(main)
    assert m.parsed["Subject"] == "explicit"
    nothing_on(backup)


def test_explicit_profile_wins_over_the_default(client, main, backup):
    configure(client, main, SMTPDefault=True)
    configure(client, backup, profile="Backup")
    assert client.send(message(profile="Backup"))["profile"] == "Backup"
    landed_on(backup)
    nothing_on(main)


def test_unknown_explicit_profile_is_not_found_and_never_falls_back(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="firm.example")
    error = expect_error(NOT_FOUND, client.send, message(profile="Nowhere"))
    assert "Nowhere" in error.message
    assert error.status is None
    expect_error(NOT_FOUND, client.enqueue, message(profile="Nowhere"))
    client.flush(2000)
    nothing_on(main, backup)
    assert client.outbox_list() == []


# --- SMTPFilter ------------------------------------------------------------------------------------


@pytest.mark.parametrize("flt", ["firm.example", "@firm.example", "anna@firm.example"],
                         ids=["domain", "at-domain", "address"])
def test_filter_matching_the_sender_routes_to_its_profile(client, main, backup, flt):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter=flt)
    status = send_from(client, "anna@firm.example", subject="filtered")
    assert status["profile"] == "Backup"
    [m] = landed_on(backup)
    assert m.mail_from == "anna@firm.example"
    assert m.parsed["Subject"] == "filtered"
    nothing_on(main)


@pytest.mark.parametrize("flt", ["firm.example", "@firm.example", "anna@firm.example"],
                         ids=["domain", "at-domain", "address"])
def test_filter_not_matching_the_sender_leaves_it_to_the_default(client, main, backup, flt):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter=flt)
    # A sender of another domain, and a domain that merely ends the same way.
    for sender in ("anna@other.example", "anna@notfirm.example"):
        assert send_from(client, sender)["profile"] == "Default"
    landed_on(main, 2)
    assert backup.messages == []


def test_filter_matches_domains_in_any_letter_case(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="Firm.Example")
    assert send_from(client, "Anna@FIRM.example")["profile"] == "Backup"
    landed_on(backup)
    nothing_on(main)


def test_address_filter_does_not_match_another_user_of_the_domain(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="anna@firm.example")
    assert send_from(client, "bob@firm.example")["profile"] == "Default"
    assert send_from(client, "anna@firm.example")["profile"] == "Backup"
    [m] = landed_on(main)
    assert m.mail_from == "bob@firm.example"
    [m] = landed_on(backup)
    assert m.mail_from == "anna@firm.example"


def test_a_message_without_from_skips_the_filters_and_takes_the_default(client, main, backup):
    # ABI §11: the cascade for a message without "from" gives the default, else
    # the first enabled; a filter has no sender to match.
    configure(client, main, SMTPSenderEmail="office@main.example")
    configure(client, backup, profile="Backup", SMTPFilter="firm.example",
              SMTPSenderEmail="office@firm.example")
    msg = message()
    del msg["from"]
    status = client.send(msg)
    assert status["profile"] == "Default"
    [m] = landed_on(main)
    assert m.mail_from == "office@main.example"
    nothing_on(backup)


@pytest.mark.parametrize("order", [("First", "Second"), ("Second", "First")])
def test_first_matching_profile_in_creation_order_wins(client, main, backup, order):
    servers = {"First": main, "Second": backup}
    for name in order:
        configure(client, servers[name], profile=name, SMTPFilter="firm.example")
    assert send_from(client, SENDER)["profile"] == order[0]
    landed_on(servers[order[0]])
    nothing_on(servers[order[1]])


def test_a_disabled_profile_is_skipped_even_when_its_filter_matches(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="firm.example", SMTPEnabled=False)
    assert client.config_get("Backup.SMTPEnabled") == "false"
    assert send_from(client, SENDER)["profile"] == "Default"
    landed_on(main)
    nothing_on(backup)

    client.config_set("Backup.SMTPEnabled", True)
    assert send_from(client, SENDER)["profile"] == "Backup"
    landed_on(backup)


def test_first_enabled_filter_match_wins_over_a_later_one(client, main, backup):
    with RecordingServer() as third:
        configure(client, third, profile="Early", SMTPFilter="firm.example", SMTPEnabled=False)
        configure(client, main, profile="Middle", SMTPFilter="other.example")
        configure(client, backup, profile="Late", SMTPFilter="@firm.example")
        assert send_from(client, SENDER)["profile"] == "Late"
        landed_on(backup)
        nothing_on(main, third)


# --- the default, then the first enabled ------------------------------------------------------------


def test_the_first_profile_is_the_default_until_another_is_made_default(client):
    client.config_set("First.SMTPServer", "first.example")
    client.config_set("Second.SMTPServer", "second.example")
    assert client.config_get("First.SMTPDefault") == "true"
    assert client.config_get("Second.SMTPDefault") == "false"
    client.config_set("second.SMTPDefault", True)
    assert client.config_get("Second.SMTPDefault") == "true"
    assert client.config_get("First.SMTPDefault") == "false"
    exported = {p["name"]: p for p in client.config_export_json()["profiles"]}
    assert [name for name, p in exported.items() if p.get("SMTPDefault") is True] == ["Second"]


def test_the_enabled_default_takes_a_sender_no_filter_matches(client, main, backup):
    configure(client, main, profile="First", SMTPFilter="first.example")
    configure(client, backup, profile="Second", SMTPDefault=True)
    assert client.config_get("First.SMTPDefault") == "false"
    assert send_from(client, SENDER)["profile"] == "Second"
    landed_on(backup)
    nothing_on(main)
    # The filter still wins over the default.
    assert send_from(client, "x@first.example")["profile"] == "First"
    landed_on(main)


def test_a_disabled_default_falls_to_the_first_enabled_profile(client, main, backup):
    with RecordingServer() as third:
        configure(client, third, profile="Chosen", SMTPDefault=True, SMTPEnabled=False)
        configure(client, main, profile="Next")
        configure(client, backup, profile="Last")
        assert client.config_get("Chosen.SMTPDefault") == "true"
        assert send_from(client, SENDER)["profile"] == "Next"
        landed_on(main)
        nothing_on(backup, third)


def test_without_a_default_the_first_enabled_profile_is_used(client, main, backup):
    with RecordingServer() as third:
        configure(client, third, profile="Off", SMTPEnabled=False)
        configure(client, main, profile="On")
        configure(client, backup, profile="Later")
        # "Off" was the first profile, hence the default; it is disabled.
        assert send_from(client, SENDER)["profile"] == "On"
        landed_on(main)
        nothing_on(backup, third)


def test_no_enabled_profile_is_config_error_and_nothing_is_recorded(client, main, backup):
    configure(client, main, SMTPEnabled=False)
    configure(client, backup, profile="Backup", SMTPEnabled=False, SMTPFilter="firm.example")
    error = expect_error(CONFIG, client.send, message())
    assert error.status is None
    expect_error(CONFIG, client.enqueue, message())
    client.flush(2000)
    assert client.outbox_list() == []
    nothing_on(main, backup)


# --- names ----------------------------------------------------------------------------------------------


def test_profile_names_match_in_any_letter_case(client, main, backup):
    configure(client, main)
    client.config_set("Backup.SMTPServer", "127.0.0.1")
    client.config_set("BACKUP.SMTPServerPort", backup.port)
    client.config_set("backup.SMTPServerEncryption", "None")
    client.config_set("bAcKuP.SMTPAuthentication", "None")
    assert client.config_get("BaCkUp.SMTPServerPort") == str(backup.port)
    names = [p["name"] for p in client.config_export_json()["profiles"]]
    assert len(names) == 2, names
    assert names[1].lower() == "backup"

    status = client.send(message(profile="BACKUP"))
    assert status["profile"].lower() == "backup"
    landed_on(backup)
    # The default profile, too, answers to any case.
    assert client.send(message(profile="dEfAuLt"))["profile"].lower() == "default"
    landed_on(main)


def test_status_names_the_profile_used_in_its_created_spelling(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="firm.example")
    status = client.send(message(profile="backup"))
    assert status["profile"] == "Backup"
    assert client.status(status["id"])["profile"] == "Backup"
    other = send_from(client, "x@other.example")
    assert client.status(other["id"])["profile"] == "Default"
    landed_on(backup)
    landed_on(main)


def test_status_names_the_profile_of_queued_mail(client, main, backup):
    configure(client, main)
    configure(client, backup, profile="Backup", SMTPFilter="firm.example")
    routed = client.enqueue(message())
    unrouted = client.enqueue(message(**{"from": "x@other.example"}))
    assert client.wait(routed, 10000)["profile"] == "Backup"
    assert client.wait(unrouted, 10000)["profile"] == "Default"
    [m] = landed_on(backup)
    assert m.mail_from == SENDER
    [m] = landed_on(main)
    assert m.mail_from == "x@other.example"


@pytest.mark.parametrize("name", ["bad name", "x" * 65, "a.b", "ümlaut", "semi;colon"],
                         ids=["space", "65-chars", "dot", "non-ascii", "semicolon"])
def test_bad_profile_name_is_config_error_everywhere(client, name):
    expect_error(CONFIG, client.config_set, f"{name}.SMTPServer", "mail.example")
    expect_error(CONFIG, client.config_load_json,
                 {"profiles": [{"name": name, "SMTPServer": "mail.example"}]})
    expect_error(CONFIG, client.config_import_keys, f"{name}.SMTPServer=mail.example\n")
    assert all(p["name"] != name for p in client.config_export_json()["profiles"])


def test_longest_and_widest_profile_name_is_accepted(client):
    name = "Az09_-" + "x" * 58
    assert len(name) == 64
    client.config_set(f"{name}.SMTPServer", "mail.example")
    assert client.config_get(f"{name.upper()}.SMTPServer") == "mail.example"


# --- export / load -------------------------------------------------------------------------------------


def test_export_and_load_carry_every_profile_in_creation_order(client, main, backup):
    configure(client, backup, profile="Zeta", SMTPFilter="firm.example")
    configure(client, main, profile="Alpha", SMTPDefault=True)
    client.config_set("Mid.SMTPServer", "mid.example")
    client.config_set("Mid.SMTPEnabled", False)
    exported = client.config_export_json()
    assert [p["name"] for p in exported["profiles"]] == ["Zeta", "Alpha", "Mid"]
    by_name = {p["name"]: p for p in exported["profiles"]}
    assert by_name["Zeta"]["SMTPFilter"] == "firm.example"
    assert by_name["Zeta"]["SMTPServerPort"] == backup.port
    assert by_name["Alpha"]["SMTPServerPort"] == main.port
    assert by_name["Mid"]["SMTPEnabled"] is False

    with smtpbridge.Client() as other:
        other.config_load_json(exported)
        assert other.config_export_json() == exported
        assert other.config_get("Alpha.SMTPDefault") == "true"
        assert other.config_get("Zeta.SMTPDefault") == "false"
        # The loaded configuration routes the same way.
        assert send_from(other, SENDER)["profile"] == "Zeta"
        assert send_from(other, "x@other.example")["profile"] == "Alpha"
        [m] = landed_on(backup)
        assert m.mail_from == SENDER
        [m] = landed_on(main)
        assert m.mail_from == "x@other.example"


def test_load_json_order_is_the_creation_order_for_routing(client, main, backup):
    def profile(name, server):
        return {"name": name, "SMTPServer": "127.0.0.1", "SMTPServerPort": server.port,
                "SMTPServerEncryption": "None", "SMTPAuthentication": "None",
                "SMTPConnectionTimeout": 5000, "SMTPFilter": "firm.example"}

    client.config_load_json({"profiles": [profile("Later", backup), profile("Earlier", main)]})
    assert [p["name"] for p in client.config_export_json()["profiles"]] == ["Later", "Earlier"]
    assert send_from(client, SENDER)["profile"] == "Later"
    landed_on(backup)
    nothing_on(main)


def test_profiles_survive_reopening_the_data_dir_in_order(data_dir, main, backup):
    with smtpbridge.Client(data_dir) as first:
        configure(first, backup, profile="Zeta", SMTPFilter="firm.example")
        configure(first, main, profile="Alpha", SMTPDefault=True)
        exported = first.config_export_json()
    with smtpbridge.Client(data_dir) as second:
        assert second.config_export_json() == exported
        assert send_from(second, SENDER)["profile"] == "Zeta"
        landed_on(backup)
        nothing_on(main)
