"""The mailwarden error hierarchy and the process exit codes.

Parsers do not raise on hostile input: they record defects on their results
(as the stdlib ``email`` package does). These exceptions are for conditions
that stop a whole command or one input of a batch.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status of every ``mailwarden`` command (documented in docs/cli.md)."""

    OK = 0
    ERROR = 1          # a bug or an unexpected failure
    USAGE = 2          # bad command line (Click's own value)
    FINDINGS = 3       # audit rule failed, hunt found suspects over the alarm line
    INPUT = 4          # some input could not be read or parsed (the batch went on)
    SERVER = 5         # a server (SMTP, IMAP) could not be reached or misbehaved
    PARTIAL = 6        # a destructive run skipped some messages (prune); nothing lost
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # stdout closed early (`| head`), as 128 + SIGPIPE


class MailwardenError(Exception):
    """Root of every error mailwarden raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR


class InputError(MailwardenError):
    """Raised when an input (file, message, log) cannot be read or is not what it claims."""

    exit_code = ExitCode.INPUT


class FormatNotRecognised(InputError):
    """Raised when the format of an input cannot be detected or is not supported."""


class ConfigError(MailwardenError):
    """Raised when mailwarden.toml or a command-line setting is invalid."""

    exit_code = ExitCode.USAGE


class ServerError(MailwardenError):
    """Raised when a live server (SMTP probe, IMAP store) cannot be reached or fails."""

    exit_code = ExitCode.SERVER


class StoreError(MailwardenError):
    """Raised when a mail store is inconsistent, locked by another run, or cannot be changed safely."""

    exit_code = ExitCode.ERROR


class JournalError(StoreError):
    """Raised when a prune journal is unreadable or belongs to another run that must be resumed first."""
