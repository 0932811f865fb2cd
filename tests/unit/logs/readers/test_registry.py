"""The reader registry: every dialect registered once, selectable by name, with annotated fixtures."""

from __future__ import annotations

import pytest

from mailwarden.errors import FormatNotRecognised
from mailwarden.logs.readers import FORMAT_NAMES, READERS, get_reader
from mailwarden.logs.readers.base import LogReader
from tests.conftest import DATA


def test_every_reader_is_registered_with_fixtures():
    assert READERS.names() == ["mdaemon", "exim", "postfix"]
    assert FORMAT_NAMES == ["auto", "mdaemon", "exim", "postfix"]
    for reader in READERS:
        assert isinstance(reader, LogReader)
        assert reader.name == reader.dialect
        annotated = [p for p in (DATA / "logs" / reader.name).glob("*.log") if "# expect:" in p.read_text()]
        assert annotated, f"no annotated fixture for {reader.name} under tests/data/logs/{reader.name}/"


def test_unknown_format_name():
    with pytest.raises(FormatNotRecognised):
        get_reader("sendmail")
