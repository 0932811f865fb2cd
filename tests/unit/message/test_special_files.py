"""Inputs that are not regular files must be refused, not read: a FIFO blocks, a device never ends."""

from __future__ import annotations

import io
import os
import shutil

from mailwarden.errors import ExitCode
from mailwarden.message.parse import MAX_LINE, read_path, read_stream
from tests.conftest import REPO


def test_fifo_in_a_directory_is_skipped_and_named_fifo_is_refused(tmp_path, run_cli):
    shutil.copy(REPO / "samples" / "external-spam.eml", tmp_path / "spam.eml")
    os.mkfifo(tmp_path / "pipe")
    # The directory walk skips the FIFO (opening it would block forever) ...
    assert [r.source for r in read_path(tmp_path)] == [str(tmp_path / "spam.eml")]
    # ... and naming it explicitly is a clear one-line error, exit 4, not a hang.
    result = run_cli("trace", str(tmp_path / "pipe"))
    assert result.exit_code == ExitCode.INPUT
    assert "not a regular file" in result.stderr


def test_device_behind_a_symlink_is_refused(tmp_path):
    (tmp_path / "zero.eml").symlink_to("/dev/zero")
    [failure] = list(read_path(tmp_path / "zero.eml"))
    assert "not a regular file" in failure.reason


def test_endless_line_on_a_stream_stops(tmp_path):
    class Endless(io.RawIOBase):
        """A stream of 'A' with no newline, ever (like /dev/zero through a pipe)."""

        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = b"A" * len(buffer)
            return len(buffer)

    [failure] = list(read_stream(io.BufferedReader(Endless()), "endless"))
    assert "longer than" in failure.reason and str(MAX_LINE // 1024) in failure.reason
