"""Mail merge (ABI §8, §11), proved on what a real server received: one
personalised message per recipient under one batch, HTML-escaped values in
``html`` only, ids aligned with the recipients, and a merge that fails
queues and sends nothing."""

from __future__ import annotations

import base64
import time

import pytest

from conftest import (
    BLOCKED,
    INVALID_ARGUMENT,
    MESSAGE,
    SENDER,
    ULID,
    configure,
    expect_error,
    marker_arrives,
    message,
)

WAIT_S = 10.0
BIG_WAIT_S = 40.0

TEMPLATE = {
    "from": SENDER,
    "subject": "Invoice {{Ref}} for {{Name}}",
    "html": "<p>Dear {{Name}},</p><p>your invoice {{Ref}} is due.</p>",
    "text": "Dear {{Name}},\nyour invoice {{Ref}} is due.",
}


@pytest.fixture
def merging(client, server):
    configure(client, server)
    return client


def person(i: int, **over):
    entry = {"email": f"r{i:03d}@example.com", "name": f"Recipient {i}",
             "fields": {"Name": f"Client {i:03d}", "Ref": f"INV-{i:04d}"}}
    entry.update(over)
    return entry


def by_recipient(messages) -> dict:
    out = {}
    for m in messages:
        assert len(m.rcpt_tos) == 1, m.rcpt_tos
        out[m.rcpt_tos[0]] = m
    return out


def html_of(m) -> str:
    return m.parsed.get_body(("html",)).get_content()


def text_of(m) -> str:
    return m.parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")


def wait_batch(client, batch_id: str, final: int, timeout: float = WAIT_S) -> dict:
    """Poll batch_status until ``final`` messages are sent, failed or cancelled."""
    deadline = time.monotonic() + timeout
    while True:
        counts = client.batch_status(batch_id)
        if counts["sent"] + counts["failed"] + counts["cancelled"] >= final or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def assert_nothing_queued_or_sent(client, server) -> None:
    stats = client.outbox_stats()
    for state in ("queued", "sending", "sent", "deferred", "failed", "cancelled"):
        assert stats[state] == 0, f"outbox_stats {state} = {stats[state]}: {stats}"
    assert client.outbox_list() == []
    assert marker_arrives(client, server) == ["marker"], "a failed merge sent mail"


# --- the big merge -------------------------------------------------------------------------------------


def test_two_hundred_recipients_each_get_their_own_message(merging, server):
    recipients = [person(i) for i in range(200)]
    recipients[7]["fields"]["Name"] = "Tom & <Jerry>"
    recipients[42]["fields"]["Ref"] = ""  # an empty string is a value
    recipients[99]["fields"]["Name"] = 'Quote "Q" \'S\''

    batch = merging.merge(TEMPLATE, recipients)
    assert batch["count"] == 200
    assert len(batch["ids"]) == 200
    assert len(set(batch["ids"])) == 200
    assert all(ULID.match(id) for id in batch["ids"])

    received = by_recipient(server.wait_for(200, BIG_WAIT_S))
    assert len(received) == 200
    assert set(received) == {r["email"] for r in recipients}

    for r in recipients:
        m = received[r["email"]]
        name, ref = r["fields"]["Name"], r["fields"]["Ref"]
        assert m.mail_from == SENDER
        assert m.parsed["Subject"] == f"Invoice {ref} for {name}"
        assert text_of(m).rstrip("\n") == f"Dear {name},\nyour invoice {ref} is due."
        if name == "Tom & <Jerry>":
            assert "<p>Dear Tom &amp; &lt;Jerry&gt;,</p>" in html_of(m)
            assert "Tom & <Jerry>" not in html_of(m)
        elif name.startswith("Quote"):
            assert "Quote &quot;Q&quot;" in html_of(m)
        else:
            assert f"<p>Dear {name},</p><p>your invoice {ref} is due.</p>" in html_of(m)
        # Nobody sees another recipient's data.
        assert m.parsed["To"].addresses[0].addr_spec == r["email"]
        assert m.parsed["To"].addresses[0].display_name == r["name"]

    assert received["r042@example.com"].parsed["Subject"] == "Invoice  for Client 042"

    counts = wait_batch(merging, batch["batch_id"], 200)
    assert counts["batch_id"] == batch["batch_id"]
    assert counts["total"] == 200
    assert counts["sent"] == 200
    assert counts["failed"] == counts["queued"] == counts["deferred"] == counts["cancelled"] == 0

    for id, r in zip(batch["ids"], recipients):
        status = merging.status(id)
        assert status["recipients"] == [r["email"]]
        assert status["batch_id"] == batch["batch_id"]
        assert status["state"] == "sent"


def test_values_are_html_escaped_in_html_only(merging, server):
    merging.merge(
        {"from": SENDER, "subject": "S {{V}}", "html": "<b>{{V}}</b>", "text": "T {{V}}"},
        [{"email": "x@example.com", "fields": {"V": "Tom & <Jerry>"}}],
    )
    [m] = server.wait_for(1, WAIT_S)
    assert m.parsed["Subject"] == "S Tom & <Jerry>"
    assert "<b>Tom &amp; &lt;Jerry&gt;</b>" in html_of(m)
    assert text_of(m).rstrip("\n") == "T Tom & <Jerry>"


def test_an_empty_string_is_a_value(merging, server):
    batch = merging.merge(
        {"from": SENDER, "subject": "[{{V}}]", "text": "<{{V}}>"},
        [{"email": "x@example.com", "fields": {"V": ""}}],
    )
    assert batch["count"] == 1
    [m] = server.wait_for(1, WAIT_S)
    assert m.parsed["Subject"] == "[]"
    assert text_of(m).rstrip("\n") == "<>"


# --- per-recipient extras --------------------------------------------------------------------------------


def test_per_recipient_attachments_cc_and_reference(merging, server):
    payload = b"only for the first recipient\x00\xff"
    recipients = [
        {"email": "first@example.com", "fields": {"Name": "First", "Ref": "1"},
         "attachments": [{"content_base64": base64.b64encode(payload).decode(), "name": "first.bin"}],
         "cc": ["first-cc@example.com"], "reference": "REF-FIRST"},
        {"email": "second@example.com", "fields": {"Name": "Second", "Ref": "2"},
         "reference": "REF-SECOND"},
    ]
    batch = merging.merge(TEMPLATE, recipients)
    received = server.wait_for(2, WAIT_S)
    first = next(m for m in received if "first@example.com" in m.rcpt_tos)
    second = next(m for m in received if "second@example.com" in m.rcpt_tos)

    assert sorted(first.rcpt_tos) == ["first-cc@example.com", "first@example.com"]
    assert first.parsed["Cc"].addresses[0].addr_spec == "first-cc@example.com"
    [attachment] = list(first.parsed.iter_attachments())
    assert attachment.get_filename() == "first.bin"
    assert attachment.get_content() == payload

    assert second.rcpt_tos == ["second@example.com"]
    assert second.parsed["Cc"] is None
    assert list(second.parsed.iter_attachments()) == []
    assert b"first-cc@example.com" not in second.raw

    assert merging.status(batch["ids"][0])["reference"] == "REF-FIRST"
    assert merging.status(batch["ids"][1])["reference"] == "REF-SECOND"


def test_a_blacklisted_recipient_becomes_a_failed_message_at_its_index(merging, server):
    merging.blacklist_add("blocked@example.com")
    recipients = [person(0), person(1, email="blocked@example.com"), person(2)]
    batch = merging.merge(TEMPLATE, recipients)
    assert batch["count"] == 3
    assert len(batch["ids"]) == 3

    blocked = merging.status(batch["ids"][1])
    assert blocked["state"] == "failed"
    assert blocked["error_code"] == BLOCKED
    assert blocked["blocked"] == ["blocked@example.com"] and blocked["recipients"] == []

    for index in (0, 2):
        status = merging.wait(batch["ids"][index], 10000)
        assert status["state"] == "sent"
        assert status["recipients"] == [recipients[index]["email"]]

    counts = wait_batch(merging, batch["batch_id"], 3)
    assert counts["total"] == 3 and counts["sent"] == 2 and counts["failed"] == 1
    received = server.wait_for(2, WAIT_S)
    # The blocked one failed before any attempt: a later marker finds two.
    assert marker_arrives(merging, server)[:-1] == [m.parsed["Subject"] for m in received]
    assert all("blocked@example.com" not in m.rcpt_tos for m in server.messages)
    assert sorted(r for m in received for r in m.rcpt_tos) == ["r000@example.com", "r002@example.com"]


# --- failures that queue nothing --------------------------------------------------------------------------


def test_a_missing_field_for_one_recipient_fails_the_whole_merge(merging, server):
    recipients = [person(i) for i in range(200)]
    del recipients[149]["fields"]["Ref"]
    error = expect_error(MESSAGE, merging.merge, TEMPLATE, recipients)
    assert "recipients[149] (r149@example.com): no value for the field {{Ref}}" in error.message, error.message
    assert_nothing_queued_or_sent(merging, server)


def test_a_recipient_without_fields_but_a_placeholder_fails_the_merge(merging, server):
    error = expect_error(MESSAGE, merging.merge, TEMPLATE, [person(0), {"email": "bare@example.com"}])
    # The first placeholder of the template (the subject's {{Ref}}) that it lacks.
    assert "recipients[1] (bare@example.com): no value for the field {{Ref}}" in error.message, error.message
    assert_nothing_queued_or_sent(merging, server)


def test_an_unknown_field_in_a_recipient_is_invalid_argument_naming_it(merging, server):
    recipients = [person(0), dict(person(1), emial="typo@example.com")]
    error = expect_error(INVALID_ARGUMENT, merging.merge, TEMPLATE, recipients)
    assert "emial" in error.message
    assert_nothing_queued_or_sent(merging, server)


def test_an_unknown_field_in_the_template_is_invalid_argument_naming_it(merging, server):
    error = expect_error(INVALID_ARGUMENT, merging.merge, dict(TEMPLATE, subjcet="x"), [person(0)])
    assert "subjcet" in error.message
    assert_nothing_queued_or_sent(merging, server)


@pytest.mark.parametrize("recipients", [
    '["a@example.com", "b@example.com"]',
    '[1, 2]',
    '[[{"email": "a@example.com"}]]',
    '{"email": "a@example.com"}',
    '[{"email": "a@example.com"}, null]',
], ids=["strings", "numbers", "nested-array", "object-not-array", "null-entry"])
def test_recipients_that_are_not_an_array_of_objects_are_invalid_argument(merging, server, recipients):
    expect_error(INVALID_ARGUMENT, merging.merge, {"from": SENDER, "subject": "s", "text": "t"}, recipients)
    assert_nothing_queued_or_sent(merging, server)


TWO = '[\n  {"email": "a@example.com", "fields": {"N": 1}},\n  {"email": "b@example.com"%s}\n]'


@pytest.mark.parametrize("recipients, expected", [
    (TWO % ', "emial": "x"', "unknown field `emial`, expected one of `email`, `name`, `fields`, `attachments`, "
                             "`cc`, `reference` at line 3 column 36"),
    (TWO % ', "fields": {"N": 1, "N": 2}', "duplicate key `N` at line 3 column 51"),
    (TWO % ', "cc": 5', "invalid type: integer `5`, expected an array of addresses, or one string of addresses "
                        "separated by ; or , at line 3 column 36"),
    (TWO.replace('{"email": "b@example.com"%s}', '["b@example.com"]'),
     "invalid type: sequence, expected a JSON object at line 3 column 2"),
    (TWO % "" + " x", "trailing characters at line 4 column 3"),
    (TWO % "" + "\n" + TWO % "", "trailing characters at line 5 column 1"),
    ((TWO % "")[:-2], "EOF while parsing a list at line 3 column 28"),
    ('{"email": "a@example.com"}', "invalid type: map, expected a sequence at line 1 column 0"),
], ids=["unknown-field", "duplicate-key", "bad-cc", "array-entry", "trailing", "two-arrays", "cut-short", "object"])
def test_bad_recipients_json_is_named_with_its_line_and_column(merging, server, recipients, expected):
    """Every recipient is checked before the merge: serde's message with the line and column in the whole
    recipients JSON, however far down the bad recipient is."""
    template = '{"from": "%s", "subject": "Hello {{N}}", "text": "t"}' % SENDER
    error = expect_error(INVALID_ARGUMENT, merging.merge, template, recipients)
    assert error.message == f"recipients JSON: {expected}", error.message
    assert_nothing_queued_or_sent(merging, server)


@pytest.mark.parametrize("value", ["x\r\nBcc: evil@attacker.example", "x\nX-Injected: 1", "x\rY"],
                         ids=["crlf", "lf", "cr"])
def test_cr_or_lf_brought_into_the_subject_by_a_value_fails_and_sends_nothing(merging, server, value):
    recipients = [person(i) for i in range(200)]
    recipients[150]["fields"]["Name"] = value
    error = expect_error(MESSAGE, merging.merge, TEMPLATE, recipients)
    assert error.message
    stats = merging.outbox_stats()
    assert stats["sent"] == 0 and stats["queued"] == 0 and stats["sending"] == 0, stats
    assert merging.outbox_list() == []
    assert marker_arrives(merging, server) == ["marker"], "a failed merge sent mail"


def test_cr_or_lf_in_a_value_used_only_in_the_body_is_fine(merging, server):
    merging.merge({"from": SENDER, "subject": "Note", "text": "Lines:\n{{V}}"},
                  [{"email": "x@example.com", "fields": {"V": "one\ntwo"}}])
    [m] = server.wait_for(1, WAIT_S)
    assert text_of(m).rstrip("\n") == "Lines:\none\ntwo"


def test_a_bad_recipient_address_is_message_error_and_nothing_is_sent(merging, server):
    recipients = [person(0), person(1, email="not an address")]
    error = expect_error(MESSAGE, merging.merge, TEMPLATE, recipients)
    assert "not an address" in error.message
    assert marker_arrives(merging, server) == ["marker"], "a failed merge sent mail"
