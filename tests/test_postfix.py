"""The library against a real Postfix 3.7 with Dovecot SASL on 127.0.0.1.

One Postfix instance serves the whole session (the ``postfix`` fixture,
tests/servers/postfix.py); each test uses addresses of its own and reads
what Postfix delivered into its Maildir, parsed with the standard library's
MIME parser. Postfix's own log line for a session (``disconnect from ...
ehlo=2 starttls=1 auth=0/1 quit=1``) shows what the library sent.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from conftest import AUTH, MESSAGE, REJECTED, TLS, configure, expect_error, message
from servers.postfix import DOMAIN, PASSWORD, SMALL_LIMIT, USER


class Port:
    """What `configure` needs: a port."""

    def __init__(self, port: int) -> None:
        self.port = port


def fresh(name: str = "rcpt", domain: str = DOMAIN) -> str:
    """An address no other test uses."""
    return f"{name}-{uuid.uuid4().hex[:10]}@{domain}"


def point(client, postfix, service: str, **keys) -> None:
    configure(client, Port(postfix.port(service)), timeout_ms=10000, **keys)


def session_lines(postfix, since: int) -> list[str]:
    """Postfix's per-session summary lines logged after offset `since`."""
    return [line for line in postfix.log()[since:].splitlines() if "disconnect from" in line]


def wait_session_end(postfix, since: int, count: int = 1, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = session_lines(postfix, since)
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    raise AssertionError(f"Postfix logged {len(session_lines(postfix, since))} of {count} session ends")


def test_plain_send_is_delivered_as_sent(client, postfix):
    point(client, postfix, "plain")
    to = fresh()
    status = client.send(message(to=[to], subject="Grüße aus Köln", text="Zeile eins\nZeile zwei"))
    assert status["state"] == "sent" and status["smtp_code"] == 250
    assert status["smtp_response"].startswith("Ok: queued as")
    [copy] = postfix.wait_for(to)
    parsed = copy.parsed
    assert parsed["Subject"] == "Grüße aus Köln"
    assert parsed.get_content().replace("\r\n", "\n").strip() == "Zeile eins\nZeile zwei"
    assert parsed["Message-ID"] == status["message_id"]


def test_starttls_and_sasl_through_dovecot(client, postfix, ca):
    point(client, postfix, "starttls", ca=ca, encryption="TLS", auth=True, SMTPUsername=USER, SMTPPassword=PASSWORD)
    to = fresh()
    assert client.send(message(to=[to]))["state"] == "sent"
    [copy] = postfix.wait_for(to)
    received = copy.parsed.get_all("Received")[0]
    assert "using TLSv1.3" in received, received
    assert f"(Authenticated sender: {USER})" in received, received


def test_implicit_tls_and_sasl(client, postfix, ca):
    point(client, postfix, "smtps", ca=ca, encryption="SSL", auth=True, SMTPUsername=USER, SMTPPassword=PASSWORD)
    to = fresh()
    assert client.send(message(to=[to]))["state"] == "sent"
    [copy] = postfix.wait_for(to)
    assert "using TLS" in copy.parsed.get_all("Received")[0]


def test_tls_12_only_server_is_reached_with_tls_12(client, postfix, ca):
    point(client, postfix, "tls12", ca=ca, encryption="TLS")
    report = client.test_connection()
    assert report["ok"] and report["tls"] == "TLSv1.2"
    to = fresh()
    assert client.send(message(to=[to]))["state"] == "sent"
    postfix.wait_for(to)


def test_tls_12_only_server_with_min_tls_13_is_a_tls_error(client, postfix, ca):
    point(client, postfix, "tls12", ca=ca, encryption="TLS", SMTPMinTlsVersion="1.3")
    error = expect_error(TLS, client.send, message(to=[fresh()]))
    assert error.status["state"] == "failed"


def test_wrong_password_is_auth_error_and_the_session_ends_with_quit(client, postfix, ca):
    since = len(postfix.log())
    point(client, postfix, "starttls", ca=ca, encryption="TLS", auth=True, SMTPUsername=USER, SMTPPassword="wrong-pw")
    error = expect_error(AUTH, client.send, message(to=[fresh()]))
    assert "wrong-pw" not in error.message and "535" in error.message
    assert error.status["smtp_code"] == 535
    [line] = wait_session_end(postfix, since)
    assert "auth=0/1" in line and "quit=1" in line, line


def test_missing_starttls_is_tls_error_and_the_session_ends_with_quit(client, postfix, ca):
    since = len(postfix.log())
    point(client, postfix, "notls", ca=ca, encryption="TLS")
    error = expect_error(TLS, client.send, message(to=[fresh()]))
    assert "does not offer STARTTLS" in error.message
    assert error.status["smtp_code"] is None
    [line] = wait_session_end(postfix, since)
    assert "ehlo=1" in line and "quit=1" in line and "mail=" not in line, line


def test_partial_rejection_by_an_access_map(client, postfix):
    point(client, postfix, "plain")
    good = fresh()
    status = client.send(message(to=[good, "rejected@example.test"]))
    assert status["state"] == "sent" and status["partial"] is True
    [refusal] = status["rejected"]
    assert refusal["address"] == "rejected@example.test"
    assert (refusal["smtp_code"], refusal["enhanced_code"]) == (550, "5.1.1")
    assert len(postfix.wait_for(good)) == 1


def test_message_over_the_servers_size_is_refused_by_the_library_without_mail(client, postfix):
    since = len(postfix.log())
    point(client, postfix, "small")
    text = "x" * (SMALL_LIMIT + 5000)
    error = expect_error(REJECTED, client.send, message(to=[fresh()], text=text))
    status = error.status
    assert f"SIZE {SMALL_LIMIT}" in status["error"]
    # The library's own refusal is not dressed as a server reply.
    assert status["smtp_code"] is None and status["enhanced_code"] is None and status["smtp_response"] is None
    # A message that fits still goes out on the same session.
    to = fresh()
    assert client.send(message(to=[to]))["state"] == "sent"
    postfix.wait_for(to)
    client.close()
    [line] = wait_session_end(postfix, since)
    assert "mail=1" in line and "quit=1" in line, line


def test_ten_recipients_past_a_limit_of_three_each_get_one_copy(client, postfix):
    since = len(postfix.log())
    point(client, postfix, "limit3")
    recipients = [fresh(f"r{i}") for i in range(10)]
    status = client.send(message(to=recipients[:4], cc=recipients[4:7], bcc=recipients[7:]))
    assert status["state"] == "sent", status
    assert status["partial"] is False and status["rejected"] == []
    postfix.settle(5)
    for address in recipients:
        copies = postfix.wait_for(address)
        assert copies[0].parsed["Message-ID"] == status["message_id"]
        assert "Bcc" not in copies[0].parsed
    client.close()
    [line] = wait_session_end(postfix, since)
    # One session, four transactions of at most three recipients.
    assert "mail=4" in line and "data=4" in line and "quit=1" in line, line
    # The session is over and Postfix's queue is empty: every copy is in.
    postfix.settle(5)
    assert all(len(postfix.delivered(address)) == 1 for address in recipients)


def test_limit_with_a_rejected_recipient_among_them(client, postfix):
    point(client, postfix, "limit3")
    recipients = [fresh(f"r{i}") for i in range(5)]
    status = client.send(message(to=recipients[:2] + ["rejected@example.test"] + recipients[2:]))
    assert status["state"] == "sent" and status["partial"] is True
    assert [r["address"] for r in status["rejected"]] == ["rejected@example.test"]
    for address in recipients:
        assert len(postfix.wait_for(address)) == 1


def test_international_domain_goes_out_as_its_a_label(client, postfix):
    point(client, postfix, "noutf8")
    local = f"idn-{uuid.uuid4().hex[:8]}"
    status = client.send(message(to=[{"email": f"{local}@bücher.example", "name": "Bücher Müller"}],
                                 cc=[f"{local}-cc@bücher.example"]))
    assert status["state"] == "sent"
    assert status["recipients"] == [f"{local}@bücher.example", f"{local}-cc@bücher.example"]
    [copy] = postfix.wait_for(f"{local}@xn--bcher-kva.example")
    postfix.wait_for(f"{local}-cc@xn--bcher-kva.example")
    parsed = copy.parsed
    assert f"{local}@xn--bcher-kva.example" in str(parsed["To"])
    assert parsed["To"].addresses[0].display_name == "Bücher Müller"
    raw_head = copy.data.split(b"\n\n", 1)[0]
    assert all(b < 0x80 for b in raw_head), "a header went out with 8-bit bytes"


def test_non_ascii_local_part_without_smtputf8_is_message_error_naming_it(client, postfix):
    since = len(postfix.log())
    point(client, postfix, "noutf8")
    address = "jörg@example.test"
    error = expect_error(MESSAGE, client.send, message(to=[address]))
    assert address in error.message and "SMTPUTF8" in error.message
    # The check needs the server's EHLO: the message was recorded (header doc).
    assert error.status["state"] == "failed" and error.status["error_code"] == MESSAGE
    assert error.status["smtp_code"] is None
    client.close()
    [line] = wait_session_end(postfix, since)
    assert "mail=" not in line and "quit=1" in line, line


def test_non_ascii_local_part_goes_out_where_the_server_offers_smtputf8(client, postfix):
    point(client, postfix, "plain")
    local = f"jörg-{uuid.uuid4().hex[:6]}"
    status = client.send(message(to=[f"{local}@bücher.example"]))
    assert status["state"] == "sent"
    [copy] = postfix.wait_for(f"{local}@xn--bcher-kva.example")
    assert copy.parsed["Message-ID"] == status["message_id"]


@pytest.mark.parametrize("service", ["plain", "starttls"])
def test_connection_test_reports_the_real_servers_capabilities(client, postfix, ca, service):
    keys = {"encryption": "TLS", "ca": ca} if service == "starttls" else {}
    point(client, postfix, service, **keys)
    report = client.test_connection()
    assert report["ok"] is True and report["stage"] == "done"
    assert "PIPELINING" in report["capabilities"]
    if service == "starttls":
        assert report["tls"] == "TLSv1.3" and report["auth_mechanisms"] == ["PLAIN", "LOGIN"]
    else:
        assert report["auth_mechanisms"] == []
    assert re.search(r"ESMTP Postfix", report["banner"])
