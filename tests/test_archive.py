"""Archive of sent mail (ABI §5 SMTPArchiveDir, §7 status "archive", §10, §11),
proved against what a real server received: message.eml is the exact bytes
sent (DKIM signature included), message.html the HTML body, each attachment
a file under a safe name inside the message's folder, and meta.json."""

from __future__ import annotations

import base64
import html
import json
import os
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import smtpbridge
from conftest import CONFIG, configure, expect_error, message
from servers import RecordingServer

WAIT_S = 5.0
WAIT_MS = 10000
UNSAFE_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def attachment(name: str, data: bytes) -> dict:
    return {"content_base64": base64.b64encode(data).decode(), "name": name}


def same_message(eml: bytes, raw: bytes) -> bool:
    """Byte-for-byte, allowing only a difference in the final CRLF."""
    def without_final_crlf(data: bytes) -> bytes:
        return data[:-2] if data.endswith(b"\r\n") else data

    return eml == raw or without_final_crlf(eml) == without_final_crlf(raw)


def check_archive(status: dict, raw: bytes) -> Path:
    """The status' archive block points at a folder holding the message as sent; returns the folder."""
    archive = status["archive"]
    assert archive is not None, f"no archive in the status: {status}"
    folder = Path(archive["dir"])
    for key in ("dir", "html", "eml"):
        assert os.path.isabs(archive[key]), f"archive {key} is not absolute: {archive[key]}"
    assert folder.is_dir()
    assert Path(archive["eml"]) == folder / "message.eml"
    assert Path(archive["html"]) == folder / "message.html"
    assert isinstance(archive["attachments"], list)
    eml = Path(archive["eml"]).read_bytes()
    assert same_message(eml, raw), "message.eml differs from the bytes the server received"
    meta = folder / "meta.json"
    assert meta.is_file(), "meta.json is missing"
    parsed = json.loads(meta.read_text(encoding="utf-8"))
    assert isinstance(parsed, dict)
    return folder


def inside(path: Path, folder: Path) -> bool:
    return path.resolve().parent == folder.resolve()


# --- a message asking for its archive --------------------------------------------------------------------


def test_archive_true_on_a_data_dir_client_after_wait(dir_client, data_dir, server):
    configure(dir_client, server)
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8
    note = "Notiz für Müller\r\n".encode("utf-8")
    id = dir_client.enqueue(message(
        html="<p>Dear <b>client</b>, your invoice.</p>", text="Dear client, your invoice.",
        attachments=[attachment("Invoice.pdf", pdf), attachment("note.txt", note)], archive=True,
    ))
    status = dir_client.wait(id, WAIT_MS)
    assert status["state"] == "sent"
    [m] = server.wait_for(1, WAIT_S)
    folder = check_archive(status, m.raw)
    assert folder.resolve().is_relative_to((data_dir / "archive").resolve()), folder

    html_body = Path(status["archive"]["html"]).read_text(encoding="utf-8")
    assert "<p>Dear <b>client</b>, your invoice.</p>" in html_body

    files = [Path(p) for p in status["archive"]["attachments"]]
    assert [p.name for p in files] == ["Invoice.pdf", "note.txt"]
    assert files[0].read_bytes() == pdf
    assert files[1].read_bytes() == note
    for p in files:
        assert os.path.isabs(p) and inside(p, folder)

    # The status read later carries the same archive.
    assert dir_client.status(id)["archive"] == status["archive"]


def test_archive_from_a_sync_send(dir_client, server):
    configure(dir_client, server)
    status = dir_client.send(message(html="<p>sync</p>", archive=True))
    [m] = server.wait_for(1, WAIT_S)
    check_archive(status, m.raw)
    assert status["archive"]["attachments"] == []


def test_text_only_message_is_archived_as_escaped_html(dir_client, server):
    configure(dir_client, server)
    text = "Totals: a < b & c > d, AT&amp;T\nsecond line"
    status = dir_client.send(message(text=text, archive=True))
    [m] = server.wait_for(1, WAIT_S)
    check_archive(status, m.raw)
    body = Path(status["archive"]["html"]).read_text(encoding="utf-8")
    assert "a &lt; b &amp; c " in body, body
    assert "AT&amp;amp;T" in body, body  # the text "&amp;" must still read "&amp;" in a browser
    assert "a < b" not in body
    assert "second line" in body


def test_a_message_without_archive_is_not_archived(dir_client, data_dir, server):
    configure(dir_client, server)
    status = dir_client.send(message())
    server.wait_for(1, WAIT_S)
    assert status["archive"] is None
    archive = data_dir / "archive"
    assert not archive.exists()  # made when a message asks for it


def test_unsafe_attachment_names_are_made_safe_inside_the_folder(dir_client, tmp_path, server):
    configure(dir_client, server)
    names = ["../../evil.txt", "CON.txt", "a:b?.pdf", "L" * 296 + ".txt", "a.pdf", "a.pdf",
             "..\\..\\win.txt", "trailing. ", "p<i>p|e*.doc", "nul", "com1.log"]
    contents = [f"content {i} of {name!r}".encode() for i, name in enumerate(names)]
    status = dir_client.send(message(
        html="<p>attachments</p>", archive=True,
        attachments=[attachment(n, c) for n, c in zip(names, contents)],
    ))
    [m] = server.wait_for(1, WAIT_S)
    folder = check_archive(status, m.raw)
    files = [Path(p) for p in status["archive"]["attachments"]]
    assert len(files) == len(names)
    assert len({p.name for p in files}) == len(files), "two attachments share a file"

    for path, data, original in zip(files, contents, names):
        name = path.name
        assert inside(path, folder), f"{original!r} escaped the folder: {path}"
        assert path.read_bytes() == data, f"{original!r}: wrong bytes in {path}"
        assert not UNSAFE_CHARS.search(name), f"{original!r} kept an unsafe character: {name!r}"
        assert not name.endswith((".", " ")), f"{original!r}: trailing dot or space: {name!r}"
        assert name.split(".")[0].strip().upper() not in RESERVED, f"{original!r}: reserved name {name!r}"
        assert name not in ("", ".", ".."), original
        assert len(str(path).encode("utf-16-le")) // 2 < 260, f"{original!r}: path too long ({len(str(path))})"
        assert name not in ("message.eml", "message.html", "meta.json")

    by_original = dict(zip(names[:4], files[:4]))
    assert by_original["L" * 296 + ".txt"].suffix == ".txt"
    assert files[4].name == "a.pdf"
    assert files[5].name == "a (2).pdf"

    # Nothing was written outside the folder.
    stray = [p for p in tmp_path.rglob("*") if p.is_file() and "evil" in p.name and not inside(p, folder)]
    assert stray == []
    assert not (folder.parent.parent / "evil.txt").exists()
    assert not (folder.parent / "evil.txt").exists()


def test_attachment_names_that_collide_with_the_archive_files_do_not_overwrite_them(dir_client, server):
    configure(dir_client, server)
    status = dir_client.send(message(
        html="<p>real body</p>", archive=True,
        attachments=[attachment("message.html", b"not the body"),
                     dict(attachment("message.eml", b"not the eml"), content_type="application/octet-stream"),
                     attachment("meta.json", b"not json")],
    ))
    [m] = server.wait_for(1, WAIT_S)
    check_archive(status, m.raw)
    assert "real body" in Path(status["archive"]["html"]).read_text(encoding="utf-8")
    files = [Path(p) for p in status["archive"]["attachments"]]
    assert [p.read_bytes() for p in files] == [b"not the body", b"not the eml", b"not json"]


def test_a_double_quote_in_an_attachment_name_is_sent_and_archived_under_a_safe_name(dir_client, server):
    # '"' is one of the characters §10 removes from archived names; it is not a
    # control character, so the message itself is valid (§6).
    configure(dir_client, server)
    status = dir_client.send(message(text="quoted", archive=True,
                                     attachments=[attachment('say "hi".txt', b"hi")]))
    [m] = server.wait_for(1, WAIT_S)
    [part] = list(m.parsed.iter_attachments())
    assert part.get_filename() == 'say "hi".txt'
    folder = check_archive(status, m.raw)
    [path] = [Path(p) for p in status["archive"]["attachments"]]
    assert inside(path, folder) and '"' not in path.name
    assert path.read_bytes() == b"hi"


def test_an_eml_attachment_is_archived_with_its_own_bytes_only(dir_client, server):
    # A forwarded message without a final line break: it is sent (and so
    # archived) ending with CRLF, as every message ends; nothing of the
    # attachment after it leaks into it, and that attachment is archived too.
    forwarded = b"Subject: earlier\r\n\r\nhello"
    configure(dir_client, server)
    status = dir_client.send(message(
        text="forwarding", archive=True,
        attachments=[attachment("forwarded.eml", forwarded), attachment("after.txt", b"after")],
    ))
    [m] = server.wait_for(1, WAIT_S)
    check_archive(status, m.raw)
    files = [Path(p) for p in status["archive"]["attachments"]]
    assert [p.name for p in files] == ["forwarded.eml", "after.txt"]
    assert [p.read_bytes() for p in files] == [forwarded + b"\r\n", b"after"]


def test_a_path_attachment_is_archived_with_its_bytes(dir_client, tmp_path, server):
    configure(dir_client, server)
    source = tmp_path / "Rechnung März.pdf"
    data = os.urandom(40000)
    source.write_bytes(data)
    status = dir_client.send(message(text="see attached", archive=True,
                                     attachments=[{"path": str(source)}]))
    [m] = server.wait_for(1, WAIT_S)
    check_archive(status, m.raw)
    [path] = [Path(p) for p in status["archive"]["attachments"]]
    assert path.name == "Rechnung März.pdf"
    assert path.read_bytes() == data


# --- SMTPArchiveDir ----------------------------------------------------------------------------------------


def test_archive_dir_on_a_profile_archives_every_message_of_that_profile(client, tmp_path, server):
    archive_dir = tmp_path / "sent-copies"
    with RecordingServer() as other:
        configure(client, server, SMTPArchiveDir=str(archive_dir))
        configure(client, other, profile="Plain")
        assert Path(client.config_get("SMTPArchiveDir")) == archive_dir
        first = client.send(message(subject="one", html="<p>one</p>"))
        second_id = client.enqueue(message(subject="two", text="two"))
        second = client.wait(second_id, WAIT_MS)
        third = client.send(message(subject="three", profile="Plain", archive=False))
        received = {m.parsed["Subject"]: m for m in server.wait_for(2, WAIT_S)}
        other.wait_for(1, WAIT_S)

    folders = []
    for status, subject in ((first, "one"), (second, "two")):
        folder = check_archive(status, received[subject].raw)
        assert folder.resolve().parent == archive_dir.resolve()
        folders.append(folder)
    assert folders[0] != folders[1]
    assert third["archive"] is None
    assert sorted(p for p in archive_dir.iterdir()) == sorted(folders)


def test_relative_archive_dir_is_config_error(client):
    for value in ("archive", "./sent", "../x/y"):
        error = expect_error(CONFIG, client.config_set, "SMTPArchiveDir", value)
        assert "SMTPArchiveDir" in error.message
        expect_error(CONFIG, client.config_set, "Backup.SMTPArchiveDir", value)
    expect_error(CONFIG, client.config_load_json,
                 {"profiles": [{"name": "Default", "SMTPServer": "x.example", "SMTPArchiveDir": "rel"}]})


def test_in_memory_client_asking_for_an_archive_without_a_folder_is_config_error(client, server):
    configure(client, server)
    error = expect_error(CONFIG, client.send, message(archive=True))
    assert error.status is None
    assert "SMTPArchiveDir" in error.message, error.message
    expect_error(CONFIG, client.enqueue, message(archive=True))
    expect_error(CONFIG, client.merge, {"from": "anna@firm.example", "subject": "s", "text": "t",
                                        "archive": True}, [{"email": "x@example.com"}])
    client.flush(2000)
    assert server.messages == [] and server.connections == 0
    assert client.outbox_list() == []


def test_in_memory_client_with_an_archive_dir_honours_archive_true(client, tmp_path, server):
    archive_dir = tmp_path / "mem-archive"
    with RecordingServer() as other:
        configure(client, other)
        configure(client, server, profile="Arch", SMTPArchiveDir=str(archive_dir))
        # The Default profile has no SMTPArchiveDir: asking it for an archive is CONFIG.
        expect_error(CONFIG, client.send, message(archive=True))
        status = client.send(message(profile="Arch", archive=True))
        [m] = server.wait_for(1, WAIT_S)
        folder = check_archive(status, m.raw)
        assert folder.resolve().parent == archive_dir.resolve()
        assert other.messages == []


# --- DKIM ----------------------------------------------------------------------------------------------------


def test_archived_eml_carries_the_dkim_signature_as_sent(dir_client, tmp_path, server):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    configure(dir_client, server, SMTPDkimDomain="firm.example", SMTPDkimSelector="arch2026",
              SMTPDkimKeyFile=str(key_file))
    status = dir_client.send(message(html="<p>signed</p>", archive=True,
                                     attachments=[attachment("a.bin", b"\x00\x01\x02")]))
    [m] = server.wait_for(1, WAIT_S)
    assert b"DKIM-Signature:" in m.raw
    check_archive(status, m.raw)
    eml = Path(status["archive"]["eml"]).read_bytes()
    assert b"\r\nDKIM-Signature:" in eml
    signature = re.search(rb"DKIM-Signature:.*?(?=\r\n[^ \t])", eml, re.S).group(0)
    assert signature in m.raw

    dkim = pytest.importorskip("dkim")
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(eml, dnsfunc=lambda name, timeout=5: record
                       if name == b"arch2026._domainkey.firm.example." else None)


def test_the_html_file_is_the_html_body_exactly(dir_client, server):
    configure(dir_client, server)
    body = "<html><body><p>Grüße &amp; thanks</p><img src=\"cid:none\"></body></html>"
    status = dir_client.send(message(html=body, text=None, archive=True))
    [m] = server.wait_for(1, WAIT_S)
    check_archive(status, m.raw)
    archived = Path(status["archive"]["html"]).read_text(encoding="utf-8")
    assert body in archived
    assert html.unescape(archived) != archived  # the entity is kept, not decoded
