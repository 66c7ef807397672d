"""Bounded inputs (ABI §20 "Bounded inputs"): files the host names are
regular files read to a bound, a header line never passes 998 octets on
the wire, and building a message is linear in its recipients.

Every refusal is asserted by its code, by a last_error naming the field or
key and the file, and by nothing reaching the server; every message that
must still go is parsed as the server received it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Callable

import pytest

import smtpbridge
from conftest import CONFIG, MESSAGE, configure, expect_error, message

GIB = 1 << 30
#: A call that must not read what it refuses answers well within this.
QUICK_S = 2.0


def within(seconds: float, call: Callable[..., Any], *args: Any) -> Any:
    """Run ``call(*args)`` on a thread and return its result or raise its
    exception; fail (instead of hanging the suite) if it blocks longer."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args)
        except BaseException as error:  # handed to the test below
            outcome["error"] = error

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{getattr(call, '__name__', call)} blocked for more than {seconds} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def peak_rss_growth_mib(call: Callable[[], Any]) -> float:
    """Run ``call``; how far this process's peak resident size rose above
    its size before, in MiB (Linux: /proc/self/clear_refs resets the peak)."""
    def kib(field: str) -> int:
        return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text())[1])

    Path("/proc/self/clear_refs").write_text("5")
    before = kib("VmRSS")
    call()
    return (kib("VmHWM") - before) / 1024


@pytest.fixture
def sparse_2gib(tmp_path: Path) -> Path:
    """A 2 GiB file that takes no disk space (``truncate -s 2G``)."""
    path = tmp_path / "sparse-2GiB.bin"
    with open(path, "wb") as f:
        f.truncate(2 * GIB)
    return path


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "report.pdf"
    os.mkfifo(path)
    return path


def header_section(raw: bytes) -> list[bytes]:
    return raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


# --- attachments ---------------------------------------------------------------


def test_a_2gib_sparse_attachment_is_refused_by_its_size_unread(sending, server, sparse_2gib):
    msg = message(attachments=[{"path": str(sparse_2gib)}])
    errors: list[smtpbridge.SmtpBridgeError] = []
    started = time.monotonic()
    growth = peak_rss_growth_mib(lambda: errors.append(expect_error(MESSAGE, within, QUICK_S, sending.send, msg)))
    assert time.monotonic() - started < QUICK_S
    text = errors[0].message
    assert text.startswith("attachments[0]: "), text
    assert str(sparse_2gib) in text and "2147483648 bytes" in text and "SMTPMaxMessageBytes" in text, text
    assert errors[0].status is None, "refused at the call: nothing is recorded"
    assert growth < 64, f"the refusal grew the peak RSS by {growth:.0f} MiB: the file was read"
    assert server.messages == []


def test_enqueue_of_a_fifo_attachment_is_refused_at_once(sending, server, fifo):
    e = expect_error(MESSAGE, within, QUICK_S, sending.enqueue, message(attachments=[{"path": str(fifo)}]))
    assert e.message == f"attachments[0]: cannot read {fifo}: not a regular file (a FIFO)"
    assert sending.outbox_stats()["queued"] == 0


@pytest.mark.parametrize("special,words", [("/dev/zero", "a character device"), ("folder", "a folder")])
def test_a_device_or_folder_attachment_is_refused_unread(sending, server, tmp_path, special, words):
    path = str(tmp_path) if special == "folder" else special
    e = expect_error(MESSAGE, within, QUICK_S, sending.send, message(inline=[{"path": path, "cid": "x"}],
                                                                     html='<img src="cid:x">'))
    assert e.message == f"inline[0]: cannot read {path}: not a regular file ({words})"
    assert server.messages == []


def test_the_limit_counts_every_part_and_a_file_that_fits_still_goes(sending, server, tmp_path):
    """SMTPMaxMessageBytes 20,000: each 6,000-byte file is 8,210 bytes of
    base64; two fit, a third (24,630 bytes of MIME in all) is refused by its
    size before it is read, naming it and the parts before it."""
    sending.config_set("SMTPMaxMessageBytes", 20000)
    files = []
    for n in range(3):
        path = tmp_path / f"part{n}.bin"
        path.write_bytes(os.urandom(6000))
        files.append(path)
    e = expect_error(MESSAGE, sending.send, message(attachments=[{"path": str(p)} for p in files]))
    assert e.message.startswith(f"attachments[2]: {files[2]} is 6000 bytes, at least 8210 bytes of MIME "
                                "beside 16420 bytes of the parts before it; SMTPMaxMessageBytes of profile "
                                "Default allows 20000"), e.message
    assert server.messages == []
    status = sending.send(message(attachments=[{"path": str(p)} for p in files[:2]]))
    assert status["state"] == "sent"
    parsed = BytesParser(policy=policy.default).parsebytes(server.wait_for(1)[0].raw)
    assert [a.get_content() for a in parsed.iter_attachments()] == [files[0].read_bytes(), files[1].read_bytes()]


def test_content_base64_counts_against_the_limit_of_a_file_after_it(sending, server, tmp_path):
    """6,000 bytes of content_base64 (8,210 bytes of MIME) leave too little
    of 10,000 for a 2,000-byte file (2,738 bytes of MIME)."""
    sending.config_set("SMTPMaxMessageBytes", 10000)
    path = tmp_path / "notes.txt"
    path.write_bytes(b"n" * 2000)
    inline = {"content_base64": "QUFB" * 2000, "name": "a.bin"}
    e = expect_error(MESSAGE, sending.send, message(attachments=[inline, {"path": str(path)}]))
    assert e.message == (f"attachments[1]: {path} is 2000 bytes, at least 2738 bytes of MIME beside 8210 bytes "
                         "of the parts before it; SMTPMaxMessageBytes of profile Default allows 10000")
    assert server.messages == []


# --- SMTPCaFile, SMTPDkimKeyFile ----------------------------------------------------


@pytest.mark.parametrize("key", ["SMTPCaFile", "SMTPDkimKeyFile"])
def test_key_files_must_be_regular_files_read_to_a_bound(client, tmp_path, fifo, sparse_2gib, key):
    cases = {
        "/dev/zero": "not a regular file (a character device)",
        str(fifo): "not a regular file (a FIFO)",
        str(tmp_path): "not a regular file (a folder)",
        str(sparse_2gib): "2147483648 bytes, larger than the",
    }
    for path, why in cases.items():
        e = expect_error(CONFIG, within, QUICK_S, client.config_set, key, path)
        assert e.message.startswith(f"{key}: cannot read {path}: {why}"), e.message
        assert client.config_get(key) == "", f"{key} was kept at {path}"


def test_a_huge_ca_file_is_refused_without_being_read(client, sparse_2gib):
    growth = peak_rss_growth_mib(lambda: expect_error(CONFIG, client.config_set, "SMTPCaFile", str(sparse_2gib)))
    assert growth < 64, f"the refusal grew the peak RSS by {growth:.0f} MiB"


# --- header lines -------------------------------------------------------------------


@pytest.mark.parametrize("field,fields", [
    ("subject", {"subject": "x" * 2000}),
    ("headers.X-Ticket", {"headers": {"X-Ticket": "T" * 1200}}),
    ("to[1]", {"to": ["a@example.com", {"email": "b@example.com", "name": "N" * 1000}]}),
    ("attachments[0]", {"attachments": [{"content_base64": "aGk=", "name": "f" * 1000 + ".txt"}]}),
])
def test_a_header_line_over_998_octets_is_message_at_the_call(sending, server, field, fields):
    e = expect_error(MESSAGE, sending.send, message(**fields))
    assert e.message.startswith(f"{field}: the "), e.message
    assert "at most 998 are allowed (RFC 5322)" in e.message
    assert e.status is None
    assert server.messages == []


def test_a_subject_of_exactly_998_octets_on_its_line_goes(sending, server):
    subject = "y" * (998 - len("Subject: "))
    sending.send(message(subject=subject))
    raw = server.wait_for(1)[0].raw
    assert b"Subject: " + subject.encode() in header_section(raw)
    expect_error(MESSAGE, sending.send, message(subject=subject + "y"))


def test_long_values_that_fold_are_sent_whole(sending, server):
    """What lettre can fold (words, encoded words) goes, however long."""
    long_words = " ".join(f"word{i}" for i in range(1500))  # about 13,000 characters
    long_umlauts = "Ä" * 3000  # one word, but encoded words can be folded
    name = "Dateiname mit Umlauten äöü " * 60 + "ö" * 600 + ".pdf"
    sending.send(message(subject=long_words, headers={"X-Note": long_words},
                         to=[{"email": "a@example.com", "name": "Ö" * 700}],
                         attachments=[{"content_base64": "aGVsbG8=", "name": name}]))
    sending.send(message(subject=long_umlauts))
    first, second = server.wait_for(2)
    for received in (first, second):
        longest = max(len(line) for line in header_section(received.raw))
        assert longest <= 998
    parsed = first.parsed
    assert parsed["subject"] == long_words
    assert parsed["x-note"] == long_words
    assert parsed["to"].addresses[0].addr_spec == "a@example.com"
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == name and attachment.get_content() == b"hello"
    # The old-style Content-Type name= carries it too, as encoded words.
    assert attachment.get_param("name") == name
    assert second.parsed["subject"] == long_umlauts


def test_a_raw_message_with_a_long_header_line_is_refused(sending, server):
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nX-Long: " + b"z" * 1000 + b"\r\n\r\nbody\r\n"
    import base64
    e = expect_error(MESSAGE, sending.send, {"mime_base64": base64.b64encode(raw).decode()})
    assert e.message == "mime_base64: the X-Long header has a line of 1008 octets; at most 998 are allowed (RFC 5322)"
    assert server.messages == []


# --- recipients ---------------------------------------------------------------------


def test_building_is_linear_in_recipients(sending, server):
    """3,000 recipients in To and Cc: every one in its header as the server
    parsed it (quadratic building took about 12 s for this many)."""
    to = [f"to{i}@example.com" for i in range(2000)]
    cc = [{"email": f"cc{i}@example.com", "name": f"Empfänger {i}"} for i in range(1000)]
    started = time.monotonic()
    status = sending.send(message(to=to, cc=cc))
    assert status["state"] == "sent"
    assert time.monotonic() - started < 5
    received = server.wait_for(1)[0]
    assert len(received.rcpt_tos) == 3000
    parsed = received.parsed
    assert [a.addr_spec for a in parsed["to"].addresses] == to
    assert [a.addr_spec for a in parsed["cc"].addresses] == [c["email"] for c in cc]
    assert parsed["cc"].addresses[999].display_name == "Empfänger 999"


def test_100000_recipients_are_queued_in_seconds_and_one_more_is_refused():
    """The bound: 100,000 recipients per message (to, cc and bcc). At the
    bound, enqueue takes well under a second on the benchmark machine
    (docs/PERFORMANCE.md); 5 s here leaves room for a loaded test machine
    (quadratic building took hours)."""
    with smtpbridge.Client(paused=True) as client:
        client.configure(SMTPServer="127.0.0.1", SMTPAuthentication="None")
        to = [f"r{i}@example.com" for i in range(60000)]
        cc = [f"c{i}@example.com" for i in range(40000)]
        started = time.monotonic()
        id = client.enqueue(message(to=to, cc=cc))
        elapsed = time.monotonic() - started
        assert len(client.status(id)["recipients"]) == 100000
        assert elapsed < 5, f"100,000 recipients took {elapsed:.1f} s"
        e = expect_error(MESSAGE, client.enqueue, message(to=to, cc=cc, bcc=["one-more@example.com"]))
        assert e.message == ("bcc: the message has 100001 recipients in to, cc, bcc; "
                             "at most 100000 are allowed per message")
