"""Read a Postfix configuration: ``main.cf`` (or ``postconf -n`` output) and ``master.cf``.

Follows postconf(5) and master(5): a logical line starts with non-whitespace text and lines that
start with whitespace continue it; lines whose first non-whitespace character is ``#`` are comments
(there are no comments after a value); a later setting of a name wins. ``$name``, ``${name}`` and
``$(name)`` expand, as do ``${name?text}`` / ``${name:text}``. A master.cf service's ``-o name=value``
(or ``-o { name = value }``) overrides main.cf for that service only.

Hostile input never raises: unreadable lines become `defects`, lines are capped, and expansion has a
depth and size limit. Every value remembers where it came from, so a rule can quote it as evidence.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailwarden.errors import FormatNotRecognised, InputError

MAX_LINE = 64 * 1024          # longer physical lines are cut (and recorded as a defect)
MAX_LOGICAL = 1024 * 1024     # a logical line cannot grow past this through continuations
MAX_EXPANSION_DEPTH = 30
MAX_EXPANDED = 256 * 1024

# Postfix 3.7 defaults (postconf -d) that the rules depend on, where they do not depend on
# compatibility_level. Those that do are computed in `PostfixConfig._default`.
DEFAULTS: dict[str, str] = {
    "compatibility_level": "0",
    "smtpd_recipient_restrictions": "",
    "smtpd_sender_restrictions": "",
    "smtpd_client_restrictions": "",
    "smtpd_helo_restrictions": "",
    "smtpd_data_restrictions": "",
    "smtpd_end_of_data_restrictions": "",
    "smtpd_sasl_auth_enable": "no",
    "smtpd_tls_auth_only": "no",
    "smtpd_tls_security_level": "",
    "smtpd_tls_wrappermode": "no",
    "smtpd_enforce_tls": "no",
    "smtpd_delay_reject": "yes",
    "smtpd_sender_login_maps": "",
    "smtpd_sasl_security_options": "noanonymous",
}

# Restrictions whose next token is their argument (a table, a DNS list, a policy service).
_ARG_TAKING_EXACT = frozenset({
    "reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_sender", "reject_rhsbl_helo",
    "reject_rhsbl_recipient", "reject_rhsbl_reverse_client", "permit_dnswl_client",
    "permit_rhswl_client",
})

SMTPD_RESTRICTION_LISTS = (
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
)


@dataclass
class Setting:
    """One parameter value and where it was set."""

    name: str
    value: str
    source: str    # "main.cf:12", "master.cf:20 (submission -o)", "default"

    def evidence(self) -> str:
        return f"{self.source}: {self.name} = {self.value}"


@dataclass
class Service:
    """One master.cf entry."""

    name: str          # as written: "smtp", "submission", "127.0.0.1:submission", "2525"
    type: str          # inet, unix, unix-dgram, fifo, pass
    command: str       # smtpd, pickup, cleanup ...
    args: list[str]
    overrides: dict[str, Setting] = field(default_factory=dict)
    line: int = 0
    implicit: bool = False   # made up because no master.cf was read

    @property
    def port_name(self) -> str:
        """The service name without a host prefix ("127.0.0.1:submission" -> "submission")."""
        return self.name.rsplit(":", 1)[-1]

    @property
    def is_smtpd(self) -> bool:
        return self.command == "smtpd" and self.type in ("inet", "pass")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.type})" if not self.implicit else "smtp (main.cf only)"

    def evidence(self) -> str:
        if self.implicit:
            return "no master.cf read: main.cf settings apply to the one SMTP service"
        return f"master.cf:{self.line}: {self.name} {self.type} ... {self.command}"


@dataclass
class Restriction:
    """One restriction in a list, with its argument if it takes one."""

    name: str
    argument: str | None = None

    def __str__(self) -> str:
        return f"{self.name} {self.argument}" if self.argument else self.name


@dataclass
class PostfixConfig:
    """A parsed Postfix configuration. `services` is None when no master.cf was read."""

    source: str
    main: dict[str, Setting] = field(default_factory=dict)
    services: list[Service] | None = None
    defects: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # Access tables named in restriction lists, read once by tables.attach_access_tables.
    tables: dict[str, Any] = field(default_factory=dict)

    # -- parameters -------------------------------------------------------------------------
    def setting(self, name: str, service: Service | None = None) -> Setting:
        """The raw (unexpanded) setting in effect for `service`: -o override, main.cf, or default."""
        if service is not None and name in service.overrides:
            return service.overrides[name]
        if name in self.main:
            return self.main[name]
        return Setting(name, self._default(name), "default")

    def get(self, name: str, service: Service | None = None) -> str:
        """The expanded value in effect for `service`."""
        return self.expand(self.setting(name, service).value, service)

    def is_yes(self, name: str, service: Service | None = None) -> bool:
        return self.get(name, service).strip().lower() == "yes"

    def _default(self, name: str) -> str:
        if name in DEFAULTS:
            return DEFAULTS[name]
        level = compatibility_level(self.main["compatibility_level"].value
                                    if "compatibility_level" in self.main else "0")
        if name == "smtpd_relay_restrictions":
            # postconf -d: ${{$compatibility_level} <level {1} ? {} : {permit_mynetworks, ...}}
            return "" if level < (1,) else "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination"
        if name == "mynetworks_style":
            return "subnet" if level < (2,) else "host"
        return ""

    def expand(self, value: str, service: Service | None = None, _depth: int = 0) -> str:
        """Expand $name, ${name}, $(name), ${name?text}, ${name:text}; unknown names become ""."""
        if "$" not in value:
            return value
        if _depth > MAX_EXPANSION_DEPTH:
            self._defect(f"parameter expansion deeper than {MAX_EXPANSION_DEPTH} levels (a loop?): {value[:80]!r}")
            return value
        out: list[str] = []
        size = 0
        i = 0
        n = len(value)
        while i < n:
            ch = value[i]
            if ch != "$" or i + 1 >= n:
                out.append(ch)
                i += 1
                size += 1
                continue
            nxt = value[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt in "{(":
                close = "}" if nxt == "{" else ")"
                end = _matching(value, i + 1, nxt, close)
                if end < 0:
                    self._defect(f"unbalanced {nxt!r} in {value[:80]!r}")
                    out.append(value[i:])
                    break
                inner = value[i + 2:end]
                piece = self._expand_braced(inner, service, _depth)
                i = end + 1
            else:
                j = i + 1
                while j < n and (value[j].isalnum() or value[j] == "_"):
                    j += 1
                if j == i + 1:
                    out.append("$")
                    i += 1
                    continue
                piece = self.expand(self.setting(value[i + 1:j], service).value, service, _depth + 1)
                i = j
            size += len(piece)
            if size > MAX_EXPANDED:
                self._defect(f"expansion of {value[:80]!r} larger than {MAX_EXPANDED} characters")
                break
            out.append(piece)
        return "".join(out)

    def _expand_braced(self, inner: str, service: Service | None, depth: int) -> str:
        # ${name?text}: text if name is non-empty; ${name:text}: text if name is empty.
        # Anything more elaborate (the 3.0 "{a} <level {b} ? ..." forms) is left unexpanded.
        for op in ("?", ":"):
            name, sep, text = inner.partition(op)
            if sep and _is_name(name):
                current = self.expand(self.setting(name, service).value, service, depth + 1)
                if text.startswith("{") and text.endswith("}"):
                    text = text[1:-1]
                chosen = text if (bool(current.strip()) == (op == "?")) else ""
                return self.expand(chosen, service, depth + 1)
        if _is_name(inner):
            return self.expand(self.setting(inner, service).value, service, depth + 1)
        self._defect(f"expression not understood, left as is: ${{{inner[:60]}}}")
        return "${" + inner + "}"

    def _defect(self, text: str) -> None:
        if text not in self.defects and len(self.defects) < 1000:
            self.defects.append(text)

    # -- services and restriction lists -----------------------------------------------------
    def smtpd_services(self) -> list[Service]:
        """Every smtpd service; one implicit ``smtp`` service when no master.cf was read."""
        if self.services is None:
            return [Service("smtp", "inet", "smtpd", ["smtpd"], implicit=True)]
        return [s for s in self.services if s.is_smtpd]

    def restrictions(self, list_name: str, service: Service | None = None) -> list[Restriction]:
        """The expanded restriction list `list_name` in effect for `service`."""
        return parse_restrictions(self.get(list_name, service))


def compatibility_level(text: str) -> tuple[int, ...]:
    """"3.6" -> (3, 6); junk -> (0,)."""
    parts: list[int] = []
    for piece in text.strip().split("."):
        if not piece.isdigit():
            return (0,)
        parts.append(int(piece))
    return tuple(parts) or (0,)


def _is_name(text: str) -> bool:
    return bool(text) and all(c.isalnum() or c == "_" for c in text)


def _matching(text: str, start: int, open_ch: str, close_ch: str) -> int:
    """Index of the bracket closing the one at `start`, or -1."""
    depth = 0
    for k in range(start, len(text)):
        c = text[k]
        if c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return k
    return -1


def split_list(value: str) -> list[str]:
    """Split on whitespace and commas, keeping ``{ ... }`` groups whole (Postfix 3.0 syntax)."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    for c in value:
        if c == "{":
            depth += 1
        elif c == "}" and depth:
            depth -= 1
        if depth == 0 and (c.isspace() or c == ","):
            if current:
                tokens.append("".join(current))
                current = []
            continue
        current.append(c)
    if current:
        tokens.append("".join(current))
    return tokens


def parse_restrictions(value: str) -> list[Restriction]:
    """"permit_mynetworks, check_sender_access hash:/x, reject" -> Restriction list."""
    result: list[Restriction] = []
    tokens = split_list(value)
    i = 0
    while i < len(tokens):
        name = tokens[i].lower()
        takes_arg = name.startswith("check_") or name in _ARG_TAKING_EXACT
        if takes_arg and i + 1 < len(tokens):
            result.append(Restriction(name, tokens[i + 1]))
            i += 2
        else:
            result.append(Restriction(name))
            i += 1
    return result


# -- readers -------------------------------------------------------------------------------------

def _logical_lines(lines: Iterable[str], defects: list[str], label: str) -> Iterator[tuple[int, str]]:
    """(first line number, logical line) per postconf(5)/master(5) continuation rules."""
    current: list[str] = []
    start = 0
    size = 0
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if len(line) > MAX_LINE:
            defects.append(f"{label}:{number}: line longer than {MAX_LINE} characters, cut")
            line = line[:MAX_LINE]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            if current:
                if size + len(stripped) > MAX_LOGICAL:
                    defects.append(f"{label}:{number}: logical line longer than {MAX_LOGICAL} characters, cut")
                    continue
                current.append(stripped)
                size += len(stripped) + 1
            else:
                defects.append(f"{label}:{number}: continuation line with nothing to continue: {stripped[:60]!r}")
            continue
        if current:
            yield start, " ".join(current)
        current = [stripped]
        start = number
        size = len(stripped)
    if current:
        yield start, " ".join(current)


def read_main_cf(lines: Iterable[str], cfg: PostfixConfig, label: str = "main.cf") -> None:
    """Add the ``name = value`` lines of a main.cf or of ``postconf -n`` output to `cfg.main`."""
    for number, text in _logical_lines(lines, cfg.defects, label):
        if text.startswith("postconf:"):
            continue  # postconf's own warnings mixed into saved `postconf -n` output
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not _is_name(name):
            cfg.defects.append(f"{label}:{number}: not a 'name = value' line: {text[:80]!r}")
            continue
        cfg.main[name] = Setting(name, value.strip(), f"{label}:{number}")


def _master_tokens(text: str) -> list[str]:
    """master.cf fields: whitespace-separated, with ``{ ... }`` grouping (braces removed)."""
    tokens: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            end = _matching(text, i, "{", "}")
            if end < 0:
                tokens.append(text[i + 1:].strip())
                break
            tokens.append(text[i + 1:end].strip())
            i = end + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def read_master_cf(lines: Iterable[str], cfg: PostfixConfig, label: str = "master.cf") -> None:
    """Parse master.cf entries (with their ``-o`` overrides) into `cfg.services`."""
    services: list[Service] = []
    lines = list(lines)
    for number, text in _logical_lines(lines, cfg.defects, label):
        fields = _master_tokens(text)
        if len(fields) < 8:
            cfg.defects.append(f"{label}:{number}: fewer than 8 fields: {text[:80]!r}")
            continue
        name, stype = fields[0], fields[1]
        args = fields[7:]
        service = Service(name, stype, args[0].rsplit("/", 1)[-1], args, line=number)
        k = 1
        while k < len(args):
            if args[k] == "-o" and k + 1 < len(args):
                pname, sep, pvalue = args[k + 1].partition("=")
                pname = pname.strip()
                if sep and _is_name(pname):
                    where = _override_line(lines, number, pname)
                    service.overrides[pname] = Setting(
                        pname, pvalue.strip(), f"{label}:{where} ({name} -o)")
                else:
                    cfg.defects.append(f"{label}:{number}: bad -o argument {args[k + 1][:60]!r}")
                k += 2
            else:
                k += 1
        services.append(service)
    cfg.services = services


def _override_line(lines: list[str], start: int, name: str) -> int:
    """The physical line of ``-o name=...`` within the entry starting at `start` (for evidence)."""
    for offset, raw in enumerate(lines[start - 1:start + 199]):
        stripped = raw.strip()
        if offset and raw[:1] not in (" ", "\t") and stripped and not stripped.startswith("#"):
            break  # the next entry begins
        if not stripped.startswith("#") and "-o" in stripped and name in stripped:
            return start + offset
    return start


def _read_lines(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8", errors="replace", newline="") as handle:
            # Config files are small; a cap keeps a wrongly given huge file from eating memory.
            text = handle.read(16 * 1024 * 1024 + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(text) > 16 * 1024 * 1024:
        raise InputError(f"{path}: larger than 16 MB, not a Postfix configuration file")
    return text.splitlines()


def looks_like_master_cf(lines: list[str]) -> bool:
    """True when most entries have master.cf's 8 columns with a service type in column 2."""
    entries = [t for _, t in _logical_lines(lines, [], "?")]
    typed = [e for e in entries if len(e.split()) >= 8
             and e.split()[1] in ("inet", "unix", "unix-dgram", "fifo", "pass")]
    return bool(entries) and len(typed) * 2 >= len(entries)


def load_postfix(path: str | Path) -> PostfixConfig:
    """Read a config directory (main.cf + master.cf), one main.cf/master.cf, or saved `postconf -n`."""
    path = Path(path)
    cfg = PostfixConfig(source=str(path))
    if path.is_dir():
        main, master = path / "main.cf", path / "master.cf"
        if not main.exists():
            if (path / "MDaemon.ini").exists() or (path / "App" / "MDaemon.ini").exists():
                raise FormatNotRecognised(
                    f"{path} is an MDaemon directory: the MDaemon.ini key names of the SMTP-authentication "
                    "settings are not documented, so MDaemon is checked by the live probe "
                    "(`mailwarden audit smtp HOST`), see docs/audit.md")
            raise FormatNotRecognised(f"{path}: no main.cf here; give a Postfix config directory or file")
        read_main_cf(_read_lines(main), cfg, "main.cf")
        cfg.files.append(str(main))
        if master.exists():
            read_master_cf(_read_lines(master), cfg, "master.cf")
            cfg.files.append(str(master))
        _attach_tables(cfg, path)
        return cfg
    if not path.exists():
        raise InputError(f"no such file or directory: {path}")
    if path.name.lower() == "mdaemon.ini":
        raise FormatNotRecognised(
            f"{path}: the MDaemon.ini key names of the SMTP-authentication settings are not documented, "
            "so MDaemon is checked by the live probe (`mailwarden audit smtp HOST`), see docs/audit.md")
    lines = _read_lines(path)
    if path.name == "master.cf" or (path.name != "main.cf" and looks_like_master_cf(lines)):
        read_master_cf(lines, cfg, path.name)
        # master.cf alone: its -o settings are checked against Postfix's defaults.
    else:
        read_main_cf(lines, cfg, path.name)
        sibling = path.with_name("master.cf")
        if path.name == "main.cf" and sibling.exists():
            read_master_cf(_read_lines(sibling), cfg, "master.cf")
            cfg.files.append(str(sibling))
    cfg.files.insert(0, str(path))
    if not cfg.main and cfg.services is None:
        raise FormatNotRecognised(f"{path}: no Postfix settings found (not main.cf, master.cf or postconf -n output)")
    _attach_tables(cfg, path.parent)
    return cfg


def load_postfix_text(text: str, label: str = "stdin") -> PostfixConfig:
    """Parse text given on stdin (``postconf -n | mailwarden audit config -``)."""
    cfg = PostfixConfig(source=label)
    lines = text.splitlines()
    if looks_like_master_cf(lines):
        read_master_cf(lines, cfg, label)
    else:
        read_main_cf(lines, cfg, label)
    if not cfg.main and cfg.services is None:
        raise FormatNotRecognised(f"{label}: no Postfix settings found")
    _attach_tables(cfg, None)
    return cfg


def _attach_tables(cfg: PostfixConfig, config_dir: Path | None) -> None:
    # Imported here: tables.py builds on this module.
    from mailwarden.audit.config.tables import attach_access_tables

    attach_access_tables(cfg, config_dir)
