"""International addresses and the library's own refusals, against Python servers
(the same against a real Postfix: tests/test_postfix.py).

- An IDN domain goes out as its A-labels (UTS #46) in the envelope and the
  headers when the server does not offer SMTPUTF8.
- A non-ASCII local part without SMTPUTF8 is SMTPB_ERR_MESSAGE naming the
  address; the check needs EHLO, so the status is written (``failed``).
- A message over the server's SIZE is refused by the library: no server
  reply is invented for it, and no MAIL goes out.
"""

from __future__ import annotations

from conftest import MESSAGE, REJECTED, configure, expect_error, message
from servers import Script, ScriptedServer

NO_UTF8 = ["PIPELINING", "8BITMIME", "SIZE 5000"]


def test_idn_domain_goes_out_as_a_labels_in_envelope_and_headers(client):
    with ScriptedServer(Script(ehlo_caps=NO_UTF8)) as server:
        configure(client, server)
        status = client.send(message(**{"from": {"email": "anna@müller.example", "name": "Anna Müller"}},
                                     to=[{"email": "kunde@bücher.example", "name": "Kunde"}],
                                     cc=["info@MÜNCHEN.example"]))
        assert status["state"] == "sent"
        assert status["recipients"] == ["kunde@bücher.example", "info@MÜNCHEN.example"]
        [m] = server.wait_for(1)
        assert m.mail_from == "anna@xn--mller-kva.example"
        assert m.rcpt_tos == ["kunde@xn--bcher-kva.example", "info@xn--mnchen-3ya.example"]
        assert "SMTPUTF8" not in m.mail_options
        head = m.raw.split(b"\r\n\r\n", 1)[0]
        assert all(b < 0x80 for b in head), head
        parsed = m.parsed
        assert parsed["To"].addresses[0].addr_spec == "kunde@xn--bcher-kva.example"
        assert parsed["From"].addresses[0].display_name == "Anna Müller"
        assert parsed["Message-ID"].endswith("@xn--mller-kva.example>")


def test_invalid_idn_domain_is_message_error_at_the_call(client):
    with ScriptedServer(Script(ehlo_caps=NO_UTF8)) as server:
        configure(client, server)
        error = expect_error(MESSAGE, client.send, message(to=["a@xn--bcher-kva\u00df\u200d.example"]))
        assert error.status is None
        assert server.connections == 0


def test_non_ascii_local_part_without_smtputf8_is_message_error_with_a_status(client):
    with ScriptedServer(Script(ehlo_caps=NO_UTF8)) as server:
        configure(client, server)
        error = expect_error(MESSAGE, client.send, message(to=["ok@example.com", "jörg@bücher.example"]))
        assert "jörg@xn--bcher-kva.example" in error.message and "SMTPUTF8" in error.message
        assert error.status["state"] == "failed" and error.status["error_code"] == MESSAGE
        assert error.status["smtp_code"] is None
        assert "MAIL" not in server.commands()
        assert server.messages == []


def test_non_ascii_local_part_goes_out_with_smtputf8(client):
    with ScriptedServer(Script()) as server:  # offers SMTPUTF8
        configure(client, server)
        assert client.send(message(to=["jörg@example.com"]))["state"] == "sent"
        [m] = server.wait_for(1)
        assert m.rcpt_tos == ["jörg@example.com"] and "SMTPUTF8" in m.mail_options


def test_over_the_servers_size_is_the_librarys_refusal_not_a_server_reply(client):
    with ScriptedServer(Script(ehlo_caps=NO_UTF8)) as server:
        configure(client, server)
        error = expect_error(REJECTED, client.send, message(text="x" * 6000))
        status = error.status
        assert status["smtp_code"] is None and status["enhanced_code"] is None
        assert status["smtp_response"] is None
        assert "SIZE 5000" in status["error"] and "not sent" in status["error"]
        assert "MAIL" not in server.commands()
        # The session is still good: a small message goes out on it.
        assert client.send(message())["state"] == "sent"
        assert server.connections == 1
