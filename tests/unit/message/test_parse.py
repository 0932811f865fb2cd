"""Input formats and bad input: one clear failure per message, the batch goes on."""

from __future__ import annotations

import io
import mailbox

from mailwarden.message.parse import (
    MAX_HEADER_BYTES,
    RawHeaders,
    ReadFailure,
    read_path,
    read_stream,
)
from tests.conftest import DATA, corpus_path

MSG = (b"Received: from a ([192.0.2.1]) by mx.example.com with ESMTP id Q1; Mon, 1 Jan 2018 10:00:00 +0100\n"
       b"Message-ID: <m1@example.com>\nSubject: hi\n\nbody\n")


def _all(stream_bytes: bytes, source="t"):
    return list(read_stream(io.BytesIO(stream_bytes), source))


def test_single_message_headers_only():
    (item,) = _all(MSG + b"x" * 100_000)
    assert isinstance(item, RawHeaders)
    assert item.data.endswith(b"Subject: hi\n") and b"body" not in item.data


def test_empty_binary_nonmail_and_huge_headers_fail_with_one_line():
    cases = {
        b"": "empty input",
        b"\n\n": "empty message",
        b"\x00\x01\x02binary\xff\xfe": "not a mail message",
        b"Hello there, this is just text\nand more\n": "not a mail message",
        b"Subject: ok\nX-Bin: a\x00b\n\n": "binary data",
        b"X-Big: " + b"a" * 100 + b"\n" + (b"X-Pad: " + b"b" * 1000 + b"\n") * (MAX_HEADER_BYTES // 1000 + 10): "larger than",
    }
    for data, expected in cases.items():
        (item,) = _all(data)
        assert isinstance(item, ReadFailure), data[:30]
        assert expected in item.reason and "\n" not in item.reason


def test_ten_megabyte_header_line_is_refused_quickly():
    for data in (b"Subject: " + b"A" * (10 * 1024 * 1024) + b"\n\nbody\n",
                 b"From: a@b\nSubject: " + b"A" * (10 * 1024 * 1024) + b"\n\nbody\n",
                 b"From: a@b\nX-Folded: x\n" + b" folded continuation\n" * 500_000 + b"\nbody\n"):
        (item,) = _all(data)
        assert isinstance(item, ReadFailure)
        assert item.reason in ("a header line longer than 64 KiB (refused)",
                               "header block larger than 1024 KiB (refused)")


def test_header_without_blank_line_before_body_is_a_defect():
    (item,) = _all(b"Subject: x\nFrom: a@b\nthis is the body\nmore\n")
    assert isinstance(item, RawHeaders) and item.data == b"Subject: x\nFrom: a@b\n"
    assert item.defects == ["header block ended by a non-header line b'this is the body'"]


def test_broken_encodings_are_kept_as_bytes():
    (item,) = _all(b"Subject: =?utf-8?B?////?= \xff\xfe\nFrom: \xc3\x28 <a@b>\n\n")
    assert isinstance(item, RawHeaders)


def test_mbox_yields_every_message(tmp_path):
    box = mailbox.mbox(tmp_path / "box")
    for n in range(3):
        box.add(MSG.replace(b"m1@", f"m{n}@".encode()))
    box.flush()
    items = list(read_path(tmp_path / "box"))
    assert [i.source.rsplit(":", 1)[1] for i in items] == ["1", "2", "3"]
    assert all(isinstance(i, RawHeaders) and b"Message-ID" in i.data for i in items)


def test_maildir_reads_cur_and_new_not_tmp(tmp_path):
    box = mailbox.Maildir(tmp_path / "Maildir")
    box.add(MSG)
    (tmp_path / "Maildir" / "tmp" / "half-written").write_bytes(b"Subject: partial\n")
    (tmp_path / "Maildir" / "dovecot-uidlist").write_bytes(b"3 V1 N2\n")
    items = list(read_path(tmp_path / "Maildir"))
    assert len(items) == 1 and isinstance(items[0], RawHeaders)
    assert "/new/" in items[0].source


def test_mdaemon_folder_with_imap_subfolder(tmp_path):
    inbox = tmp_path / "example.com" / "user"
    (inbox / "Spam.IMAP").mkdir(parents=True)
    (inbox / "md50000000001.msg").write_bytes(MSG)
    (inbox / "Spam.IMAP" / "md50000000002.msg").write_bytes(MSG)
    (inbox / "IMAP.MRK").write_bytes(b"\x01\x00\x00\x00" * 9)
    (inbox / "HIWATER.MRK").write_bytes(b"[IMAPSubscribed]\n")
    items = list(read_path(tmp_path))
    assert [i.source.rsplit("/", 1)[1] for i in items] == ["md50000000001.msg", "md50000000002.msg"]


def test_missing_file():
    (item,) = list(read_path("/nonexistent/x.eml"))
    assert isinstance(item, ReadFailure) and item.reason == "no such file or directory"


def test_outlook_msg_through_extract_msg():
    (item,) = list(read_path(corpus_path("mail-parser", "mail_outlook_1")))
    assert isinstance(item, RawHeaders) and item.container == "outlook-msg"
    assert b"by EX-01.auenland.lkt" in item.data


def test_corrupt_outlook_msg_names_the_format(tmp_path):
    bad = tmp_path / "broken.msg"
    bad.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    (item,) = list(read_path(bad))
    assert isinstance(item, ReadFailure) and item.reason.startswith("Outlook .msg (OLE)")


def test_bundled_messages_read():
    items = list(read_path(DATA / "messages"))
    assert len(items) == 2 and all(isinstance(i, RawHeaders) for i in items)


def test_eight_bit_headers_become_valid_unicode(run_cli, tmp_path):
    path = tmp_path / "8bit.eml"
    path.write_bytes(b"Received: from a ([192.0.2.1]) by mx.example.com with ESMTP id Q1 for <b\xffad@x>;"
                     b" Mon, 1 Jan 2018 10:00:00 +0100\nSubject: caf\xe9 =?utf-8?B?////?=\n"
                     b"From: \xc3\x28 <a@b>\nMessage-ID: <\xfe@x>\n\nbody\n")
    result = run_cli("trace", path, "--json")
    assert result.exit_code == 0
    (msg,) = result.json()["messages"]
    assert msg["subject"].startswith("caf\u00e9")        # Latin-1 line read as cp1252
    assert msg["message_id"] == "\u00fe@x"
    assert msg["from"] == "\u00c3( <a@b>"              # the address survives a broken name
    assert msg["hops"][0]["for"] == "b\u00ffad@x"
    msg_text = result.stdout.encode("utf-8")           # valid UTF-8 JSON
    assert b"\xff" not in msg_text


def test_crlf_message_traces_like_lf(tmp_path):
    from mailwarden.config import SiteConfig
    from mailwarden.message.trace import trace_bytes

    data = (DATA / "messages" / "qmail-bounce.eml").read_bytes().replace(b"\r\n", b"\n")
    site = SiteConfig().with_overrides(server_names=["smtp.customers.net"])
    lf, crlf = trace_bytes(data, site), trace_bytes(data.replace(b"\n", b"\r\n"), site)
    assert lf.to_json() == crlf.to_json()
    assert (crlf.client_ip, crlf.our_hop.date.isoformat()) == ("189.125.104.100", "2016-08-22T09:22:13+00:00")
