"""Read the source text of Postfix access tables (``check_sender_access hash:/etc/postfix/x``).

Only file-based tables whose source is text can be read: for ``hash``/``btree``/``lmdb``/``cdb``/
``dbm`` the postmap(1) source file is the path without the ``.db`` suffix; ``texthash``, ``regexp``
and ``pcre`` are read directly; ``inline:{ key=value, ... }`` is parsed in place. Database lookups
(mysql, ldap, socketmap ...) are recorded as unreadable: the rules then say so instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailwarden.audit.config.postfix import SMTPD_RESTRICTION_LISTS, PostfixConfig, split_list

MAX_TABLE_BYTES = 16 * 1024 * 1024
MAX_TABLE_LINE = 64 * 1024
_TEXT_SOURCE_TYPES = frozenset({"hash", "btree", "lmdb", "cdb", "dbm", "sdbm", "texthash"})
_PATTERN_TYPES = frozenset({"regexp", "pcre"})


@dataclass
class TableEntry:
    """One ``key action`` line of a table's source."""

    line: int
    key: str
    action: str
    pattern: bool = False  # a regexp/pcre pattern rather than a literal key

    def evidence(self, source: str) -> str:
        return f"{source}:{self.line}: {self.key} {self.action}"


@dataclass
class AccessTable:
    """A table referenced by a restriction, with its entries when they could be read."""

    reference: str                 # as written: "hash:/etc/postfix/sender_access"
    source: str | None = None      # the file that was read
    entries: list[TableEntry] = field(default_factory=list)
    error: str | None = None       # why the entries could not be read


def _candidates(path: str, config_dir: Path | None) -> list[Path]:
    # The table may be given as on the server (/etc/postfix/x) while the audited copy lives
    # elsewhere: also try the same file name inside the audited directory.
    paths = [Path(path)]
    if config_dir is not None:
        paths.append(config_dir / Path(path).name)
    return paths


def read_table(reference: str, config_dir: Path | None) -> AccessTable:
    """Read one table reference; never raises."""
    table = AccessTable(reference)
    ref = reference.strip()
    while ref.startswith("proxy:"):
        ref = ref[len("proxy:"):]
    kind, sep, rest = ref.partition(":")
    if not sep:
        table.error = "not a type:name table reference"
        return table
    kind = kind.lower()
    if kind == "inline":
        body = rest.strip()
        if body.startswith("{") and body.endswith("}"):
            body = body[1:-1]
        for number, item in enumerate(split_list(body), 1):
            key, _, action = item.partition("=")
            table.entries.append(TableEntry(number, key.strip().lower(), action.strip()))
        table.source = "inline"
        return table
    if kind not in _TEXT_SOURCE_TYPES and kind not in _PATTERN_TYPES:
        table.error = f"{kind}: tables are not files; their contents were not read"
        return table
    for candidate in _candidates(rest, config_dir):
        if candidate.is_file():
            _read_entries(table, candidate, pattern=kind in _PATTERN_TYPES)
            return table
    table.error = f"source file {rest} not found"
    return table


def _read_entries(table: AccessTable, path: Path, *, pattern: bool) -> None:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            text = handle.read(MAX_TABLE_BYTES + 1)
    except OSError as exc:
        table.error = f"cannot read {path}: {exc.strerror or exc}"
        return
    if len(text) > MAX_TABLE_BYTES:
        table.error = f"{path}: larger than {MAX_TABLE_BYTES} bytes, not read"
        return
    table.source = str(path)
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw[:MAX_TABLE_LINE].strip()
        if not line or line.startswith("#"):
            continue
        if pattern:
            # "/@example\.com$/ OK": the pattern runs to the closing delimiter.
            delimiter = line[0]
            end = line.find(delimiter, 1)
            if end < 0:
                continue
            after = line[end + 1:]
            # Pattern flags ("/x/i OK") sit right after the closing delimiter, before any space.
            flags = "" if after[:1].isspace() else after.split(None, 1)[0] if after.strip() else ""
            action = after[len(flags):]
            key = line[: end + 1]
            table.entries.append(TableEntry(number, key + flags, action.strip(), pattern=True))
        else:
            parts = line.split(None, 1)
            table.entries.append(TableEntry(number, parts[0].lower(), parts[1] if len(parts) > 1 else ""))


def referenced_tables(cfg: PostfixConfig, restriction_names: frozenset[str]) -> list[str]:
    """Every table named by one of `restriction_names` in any smtpd service's restriction lists."""
    refs: list[str] = []
    for service in cfg.smtpd_services():
        for list_name in SMTPD_RESTRICTION_LISTS:
            for restriction in cfg.restrictions(list_name, service):
                if restriction.name in restriction_names and restriction.argument and restriction.argument not in refs:
                    refs.append(restriction.argument)
    return refs


SENDER_TABLE_RESTRICTIONS = frozenset({"check_sender_access"})


def attach_access_tables(cfg: PostfixConfig, config_dir: Path | None) -> None:
    """Read every check_sender_access table once, before the rules run (they never open files)."""
    for ref in referenced_tables(cfg, SENDER_TABLE_RESTRICTIONS):
        cfg.tables[ref] = read_table(ref, config_dir)
