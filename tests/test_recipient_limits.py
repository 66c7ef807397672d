"""452 to a RCPT after others were accepted (RFC 5321 §4.5.3.1.10, Postfix's
``452 4.5.3 Too many recipients``): the accepted recipients get the message,
the rest go in further transactions on the same session, one status for the
message. A later transaction's failure is reported per recipient. (The same
against a real Postfix: tests/test_postfix.py.)
"""

from __future__ import annotations

from conftest import TRANSIENT, configure, expect_error, message
from servers import Script, ScriptedServer

TOO_MANY = "452 4.5.3 Error: too many recipients"


def recipients(n: int) -> list[str]:
    return [f"r{i}@example.com" for i in range(n)]


def test_the_rest_go_in_further_transactions_on_one_session(client):
    # A limit of 2: the server's RCPT replies over its life, in order.
    rcpt = ["250 OK", "250 OK", TOO_MANY, TOO_MANY, TOO_MANY, "250 OK", "250 OK", TOO_MANY, "250 OK"]
    with ScriptedServer(Script(replies={"RCPT": rcpt})) as server:
        configure(client, server)
        to = recipients(5)
        status = client.send(message(to=to))
        assert status["state"] == "sent" and status["partial"] is False and status["rejected"] == []
        got = server.wait_for(3)
        assert [m.rcpt_tos for m in got] == [to[:2], to[2:4], to[4:]]
        assert {m.connection for m in got} == {1}
        assert len({m.raw for m in got}) == 1  # the same bytes each time
        assert server.commands(1).count("MAIL") == 3
        assert "RSET" not in server.commands(1)


def test_pipelining_stays_two_round_trips_for_a_message_within_the_limit(client):
    with ScriptedServer(Script()) as server:
        configure(client, server)
        client.send(message(to=recipients(3)))
        lines = [line for line in server.lines if line.verb in ("MAIL", "RCPT", "DATA")]
        assert [line.verb for line in lines] == ["MAIL", "RCPT", "RCPT", "RCPT", "DATA"]
        assert server.commands(1).count("MAIL") == 1


def test_a_later_transactions_refusal_is_reported_per_recipient(client):
    rcpt = ["250 OK", TOO_MANY, TOO_MANY]
    dot = ["250 2.0.0 queued as A1", "554 5.6.0 message refused the second time"]
    with ScriptedServer(Script(replies={"RCPT": rcpt, "DOT": dot})) as server:
        configure(client, server)
        to = recipients(3)
        status = client.send(message(to=to))
        assert status["state"] == "sent" and status["partial"] is True
        assert status["smtp_code"] == 250 and "A1" in status["smtp_response"]
        assert [r["address"] for r in status["rejected"]] == to[1:]
        for refusal in status["rejected"]:
            assert (refusal["smtp_code"], refusal["enhanced_code"]) == (554, "5.6.0")
            assert "refused" in refusal["error"]
        assert [m.rcpt_tos for m in server.messages] == [to[:1], to[1:]]


def test_a_later_transactions_5xx_recipient_is_rejected_and_the_rest_delivered(client):
    rcpt = ["250 OK", TOO_MANY, TOO_MANY, "550 5.1.1 no such user", "250 OK"]
    with ScriptedServer(Script(replies={"RCPT": rcpt})) as server:
        configure(client, server)
        to = recipients(3)
        status = client.send(message(to=to))
        assert status["state"] == "sent" and status["partial"] is True
        [refusal] = status["rejected"]
        assert refusal["address"] == to[1] and refusal["smtp_code"] == 550
        assert "error" not in refusal
        assert [m.rcpt_tos for m in server.wait_for(2)] == [to[:1], to[2:]]


def test_452_before_any_recipient_was_accepted_defers_the_message(client):
    with ScriptedServer(Script(replies={"RCPT": ["452 4.3.1 insufficient system storage"]})) as server:
        configure(client, server)
        error = expect_error(TRANSIENT, client.send, message(to=recipients(2)))
        assert error.status["smtp_code"] == 452
        assert server.messages == []


def test_another_4xx_beside_452_defers_the_whole_message(client):
    rcpt = ["250 OK", "451 4.3.0 try later", TOO_MANY]
    with ScriptedServer(Script(replies={"RCPT": rcpt})) as server:
        configure(client, server)
        expect_error(TRANSIENT, client.send, message(to=recipients(3)))
        assert server.messages == []
