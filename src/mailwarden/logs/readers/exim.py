"""Exim mainlog and rejectlog (plain files, syslog'd ``exim[pid]:`` lines, journald copies).

Line shape: ``2016-03-25 15:06:04[.mmm] [+0100] [[pid]] [msgid] text``. Message lines carry the
Exim id (``1ajLoq-0001wC-Pk``, or the 4.97+ ``10HmaX-000000005vi-0000``) and a flag:
``<=`` arrival (``H=name (helo) [ip]:port``, ``I=``, ``P=esmtpa``, ``A=authenticator:user``,
``U=``, ``S=``, ``id=``, ``T="subject"``, ``for a b``), ``=>`` delivery, ``->`` another address
of the same delivery, ``>>`` cut-through, ``*>`` suppressed, ``**`` bounce, ``==`` deferral,
``Completed``. Lines without an id are connections, rejections and authenticator failures
(``H=... [ip]:port F=<a> rejected RCPT <b>: reason``); their session key is the client's
``ip:port``. Rejectlog header dumps (``Envelope-from:``, ``P Received: ...``, indented
continuations) have no timestamp and stay with the reject line above them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator

from mailwarden.logs.model import EventKind, LogEvent, LogLine
from mailwarden.logs.readers.base import angle, numbered, split_host_ip, unparsed
from mailwarden.logs.readers.syslog import parse_tag, split_syslog
from mailwarden.logs.timestamps import SyslogYear, parse_date_time, parse_offset

DIALECT = "exim"
DELIVERY_FLAGS = {"=>": "sent", "->": "sent", ">>": "sent", "*>": "suppressed", "**": "bounced",
                  "==": "deferred"}
ARRIVAL_FLAGS = ("<=", "(=")


def is_exim_id(token: str) -> bool:
    """``1ajLoq-0001wC-Pk`` (6-6-2) or ``10HmaX-000000005vi-0000`` (6-11-4)."""
    parts = token.split("-")
    if len(parts) != 3 or not all(p.isalnum() for p in parts):
        return False
    return tuple(len(p) for p in parts) in ((6, 6, 2), (6, 11, 4))


def tokenize(text: str) -> list[str]:
    """Space-separated tokens; ``KEY="quoted value"`` stays one token (T="subject with spaces")."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        j = i
        while j < n and text[j] != " ":
            if text[j] == '"' and (j == i or text[j - 1] == "="):
                close = j + 1
                while close < n:
                    if text[close] == "\\":
                        close += 2
                        continue
                    if text[close] == '"':
                        break
                    close += 1
                j = close + 1
                continue
            j += 1
        tokens.append(text[i:j])
        i = j
    return tokens


def parse_host_spec(tokens: list[str], start: int, fields: dict[str, str], prefix: str = "") -> int:
    """``H=name (helo) [ip]:port`` spread over tokens; returns the index after the spec."""
    value = tokens[start][2:]
    parts = [value] if value else []
    i = start + 1
    while i < len(tokens) and (tokens[i].startswith("(") or tokens[i].startswith("[")):
        parts.append(tokens[i])
        i += 1
    for part in parts:
        if part.startswith("(") and part.endswith(")"):
            fields[prefix + "helo"] = part[1:-1]
        elif part.startswith("["):
            _, ip, port = split_host_ip(part)
            if ip:
                fields[prefix + "client_ip"] = ip
            if port is not None:
                fields[prefix + "client_port"] = str(port)
        elif part:
            fields[prefix + "client_name"] = part
    return i


def _host_fields(tokens: list[str], fields: dict[str, str]) -> None:
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("H=") and "client_ip" not in fields:
            i = parse_host_spec(tokens, i, fields)
            continue
        if token.startswith("I="):
            _, ip, port = split_host_ip(token[2:])
            if ip:
                fields["server_ip"] = ip
            if port is not None:
                fields["server_port"] = str(port)
        elif token.startswith("U="):
            fields["ident"] = token[2:]
        elif token.startswith("F=<"):
            fields["from"] = angle(token[2:])
        elif token.startswith("X="):
            fields["tls"] = token[2:]
        elif token.startswith("A=") and "auth" not in fields:
            fields["auth"] = token[2:]
        i += 1


def parse_exim_message(text: str) -> tuple[EventKind, str | None, dict[str, str]]:
    """Pure: the text after the timestamp (and pid) -> kind, Exim id, fields."""
    fields: dict[str, str] = {}
    first, _, rest = text.partition(" ")
    if is_exim_id(first):
        msgid = first
        flag, _, body = rest.partition(" ")
        if flag in ARRIVAL_FLAGS:
            tokens = tokenize(body)
            fields["from"] = tokens[0] if tokens else ""
            if fields["from"] == "<>":
                fields["from"] = ""
            i = 1
            while i < len(tokens):
                token = tokens[i]
                if token.startswith("H="):
                    i = parse_host_spec(tokens, i, fields)
                    continue
                if token == "for":
                    fields["for"] = " ".join(tokens[i + 1:])
                    break
                key, sep, value = token.partition("=")
                if sep and key in ("P", "A", "U", "S", "id", "T", "I", "X", "CV", "R", "DN", "K",
                                   "L", "M8S", "RT", "QT", "SNI", "PRX", "DS", "Ci"):
                    if key == "T" and value.startswith('"') and value.endswith('"'):
                        value = value[1:-1]
                    if key == "I":
                        _, ip, port = split_host_ip(value)
                        fields["server_ip"] = ip or ""
                        if port is not None:
                            fields["server_port"] = str(port)
                    fields[key] = value
                i += 1
            if "A" in fields:
                authenticator, _, user = fields["A"].partition(":")
                fields["auth_method"] = authenticator
                # A=authenticator:id[:sender]; with no id Exim logs only the authenticator name.
                fields["auth_user"] = user.split(":", 1)[0] if user else ""
            if "id" in fields:
                fields["message_id"] = angle(fields["id"])
            fields["flag"] = flag
            return EventKind.QUEUED, msgid, fields
        if flag in DELIVERY_FLAGS:
            tokens = tokenize(body)
            to = tokens[0] if tokens else ""
            i = 1
            if i < len(tokens) and tokens[i].startswith("<") and tokens[i].endswith(">"):
                fields["orig_to"] = to
                to = angle(tokens[i])
                i += 1
            elif i < len(tokens) and tokens[i].startswith("("):
                # "=> alias (orig@x) <real@y>" and similar: keep the first address
                i += 1
            fields["to"] = to.rstrip(":")
            fields["status"] = DELIVERY_FLAGS[flag]
            fields["flag"] = flag
            detail_at = body.find(": ")
            while i < len(tokens):
                token = tokens[i]
                if token.startswith("H="):
                    host: dict[str, str] = {}
                    i = parse_host_spec(tokens, i, host)
                    fields["relay"] = host.get("client_name", "") or host.get("client_ip", "")
                    if "client_ip" in host:
                        fields["relay_ip"] = host["client_ip"]
                    continue
                key, sep, value = token.partition("=")
                if sep and key in ("R", "T", "C", "QT", "DT", "S"):
                    fields[key] = value.strip('"')
                i += 1
            if flag in ("**", "==") and detail_at >= 0:
                fields["detail"] = body[detail_at + 2:]
            elif "C" in fields:
                fields["detail"] = fields["C"]
            return EventKind.DELIVERY, msgid, fields
        if rest.startswith("Completed"):
            return EventKind.REMOVED, msgid, fields
        if " rejected " in rest or rest.startswith("rejected") or "rejected after DATA" in rest:
            _host_fields(tokenize(rest.split(": ", 1)[0]), fields)
            fields["reason"] = rest.split(": ", 1)[1] if ": " in rest else rest
            return EventKind.REJECT, msgid, fields
        fields["detail"] = rest
        return EventKind.OTHER, msgid, fields
    # Lines with no message id.
    if text.startswith("SMTP connection from "):
        rest = text[21:]
        tokens = tokenize(rest)
        _host_spec_loose(tokens, fields)
        if " closed " in rest or " lost" in rest or "D=" in rest or "timeout" in rest:
            fields["detail"] = rest
            return EventKind.DISCONNECT, None, fields
        return EventKind.CONNECT, None, fields
    if " authenticator failed for " in text:
        authenticator, _, rest = text.partition(" authenticator failed for ")
        fields["auth_method"] = authenticator
        where, _, reply = rest.partition(": ")
        where_tokens = tokenize(where)
        if where_tokens and where_tokens[0].startswith("H="):
            _host_fields(where_tokens, fields)
        else:
            _host_spec_loose(where_tokens, fields)
        if "(set_id=" in reply:
            fields["auth_user"] = reply.split("(set_id=", 1)[1].split(")", 1)[0]
        fields["reason"] = reply
        return EventKind.AUTH_FAIL, None, fields
    if text.startswith("H=") or text.startswith("U=") or text.startswith("F=<"):
        head, _, reason = text.partition(": ")
        tokens = tokenize(head)
        _host_fields(tokens, fields)
        if " rejected " in head or "rejected connection" in head or " refused" in head \
                or "sender verify fail" in head or "recipient verify fail" in head:
            at = head.find(" rejected RCPT ")
            if at >= 0:
                fields["to"] = angle(head[at + 15:].split(" ", 1)[0])
                fields["stage"] = "RCPT"
            elif " rejected MAIL " in head:
                fields["stage"] = "MAIL"
            fields["reason"] = reason.strip('"')
            lowered = reason.lower()
            if " rbl" in lowered or "blacklist" in lowered or "blocklist" in lowered \
                    or "spamhaus" in lowered or "dnsbl" in lowered:
                fields["dnsbl"] = reason.strip('"')
            return EventKind.REJECT, None, fields
        fields["detail"] = text
        return EventKind.OTHER, None, fields
    if text.startswith("no host name found") or text.startswith("no IP address found") \
            or text.startswith("Start queue run") or text.startswith("End queue run") \
            or text.startswith("exim ") or text.startswith("ignoring ") or text.startswith("SMTP ") \
            or text.startswith("TLS error") or text.startswith("acl_") or text.startswith("+++") \
            or text.startswith("==="):
        fields["detail"] = text
        return EventKind.OTHER, None, fields
    if "=" in text.split(" ", 1)[0]:
        fields["detail"] = text  # expansion test output (key=value) in the test suite's logs
        return EventKind.OTHER, None, fields
    fields["detail"] = text
    return EventKind.OTHER, None, fields


def _host_spec_loose(tokens: list[str], fields: dict[str, str]) -> None:
    """``name (helo) [ip]:port`` without the ``H=`` (authenticator lines, connection lines)."""
    for token in tokens:
        if token.startswith("(") and token.endswith(")") and "helo" not in fields:
            fields["helo"] = token[1:-1]
        elif token.startswith("[") and "client_ip" not in fields:
            _, ip, port = split_host_ip(token.rstrip(":"))
            if ip:
                fields["client_ip"] = ip
            if port is not None:
                fields["client_port"] = str(port)
        elif token.startswith("I=["):
            _, ip, port = split_host_ip(token[2:])
            fields["server_ip"] = ip or ""
            if port is not None:
                fields["server_port"] = str(port)
        elif "client_ip" not in fields and "client_name" not in fields and not token.startswith("(") \
                and "=" not in token and "." in token:
            fields["client_name"] = token


def split_exim_stamp(text: str) -> tuple[dt.datetime, str] | None:
    """``2022-06-29 16:04:05[.345] [+0200] [[pid]] rest`` -> (datetime, rest)."""
    if len(text) < 20 or text[4] != "-" or text[10] != " ":
        return None
    clock_end = text.find(" ", 11)
    if clock_end < 0:
        return None
    rest = text[clock_end + 1:]
    zone = None
    if rest[:1] in "+-" and len(rest) > 5 and rest[1:5].isdigit():
        zone, _, rest = rest.partition(" ")
        if parse_offset(zone) is None:
            return None
    ts = parse_date_time(text[:10], text[11:clock_end], zone)
    if ts is None:
        return None
    if rest.startswith("[") and "] " in rest[:14] and rest[1:rest.find("]")].isdigit():
        rest = rest[rest.find("] ") + 2:]
    return ts, rest


def _session_key(fields: dict[str, str]) -> str | None:
    ip = fields.get("client_ip")
    if not ip:
        return None
    port = fields.get("client_port")
    return f"exim:[{ip}]:{port}" if port else f"exim:[{ip}]"


class EximReader:
    """See `LogReader`."""

    name = "exim"
    dialect = DIALECT

    # Lines with no message id that still only Exim writes after its "YYYY-MM-DD HH:MM:SS"
    # stamp: mainlogs holding only rejects or syntax errors (exim-testsuite/log/0019, 0029, 0147).
    def sniff(self, head_lines: list[str]) -> bool:
        for text in head_lines:
            stamped = split_exim_stamp(text)
            if stamped is not None:
                first = stamped[1].split(" ", 2)
                if is_exim_id(first[0]) or stamped[1].startswith(_SNIFF_STARTS) \
                        or any(phrase in stamped[1] for phrase in _SNIFF_PHRASES):
                    return True
                continue
            prefix = split_syslog(text, SyslogYear(2000))
            if prefix is not None and prefix.program.rsplit("/", 1)[-1].startswith("exim"):
                return True
        return False

    def events(self, lines: Iterable[str | LogLine], source: str, *,
               clock: SyslogYear | None = None) -> Iterator[LogEvent]:
        clock = clock if clock is not None else SyslogYear()
        previous: LogEvent | None = None
        for line in numbered(lines, source):
            event = parse_exim_line(line, clock, previous)
            if event.kind is not EventKind.UNPARSED and "continuation" not in event.fields:
                previous = event
            yield event


_SNIFF_STARTS = ("H=", "U=", "F=", "SMTP connection from", "SMTP syntax error", "SMTP command timeout",
                 "SMTP protocol", "rejected ", "Start queue run", "End queue run", "no host name found",
                 "TLS error", "cwd=", "exim ", "SMTP call from", "ETRN ")
_SNIFF_PHRASES = (" authenticator failed for ", " rejected RCPT ", " rejected MAIL ", " rejected EHLO ",
                  " rejected HELO ", " rejected after DATA", " sender verify fail", " U=")


def parse_exim_line(line: LogLine, clock: SyslogYear, previous: LogEvent | None = None) -> LogEvent:
    """One raw line -> event; ``previous`` lets rejectlog header lines join their reject line."""
    text = line.text
    if not text.strip():
        return LogEvent(ts=None, dialect=DIALECT, kind=EventKind.BANNER, line=line)
    host = service = None
    pid = None
    stamped = split_exim_stamp(text)
    if stamped is not None:
        inner = stamped[1]
        # fail2ban's "2019-10-22 03:39:17 mx1.fqdn.local exim[29786]: text" form
        parts = inner.split(" ", 2)
        if len(parts) == 3 and parse_tag(parts[1]) and parts[1].startswith("exim"):
            host, (service, pid) = parts[0], parse_tag(parts[1])  # type: ignore[misc]
            inner = parts[2]
        ts: dt.datetime | None = stamped[0]
    else:
        prefix = split_syslog(text, clock)
        if prefix is not None and prefix.program.rsplit("/", 1)[-1].startswith("exim"):
            host, service, pid = prefix.host, prefix.program, prefix.pid
            ts, inner = prefix.ts, prefix.message
            nested = split_exim_stamp(inner)
            if nested is not None:
                ts, inner = nested
        else:
            words = text.split(" ", 2)
            tagged = parse_tag(words[1]) if len(words) == 3 else None
            if tagged and tagged[0].startswith("exim"):
                # journald "host exim[pid]: 2021-07-17 23:20:49 text" (no syslog stamp)
                nested = split_exim_stamp(words[2])
                if nested is not None:
                    host, service, pid = words[0], tagged[0], tagged[1]
                    ts, inner = nested
                else:
                    return unparsed(DIALECT, line, "no timestamp")
            elif text.startswith("*****") or text.startswith("-----"):
                return LogEvent(ts=None, dialect=DIALECT, kind=EventKind.BANNER, line=line)
            elif previous is not None and (text[0] in " \t" or (len(text) > 1 and text[1] == " ")
                                           or text.startswith(("Envelope-", "Recipients:"))):
                # rejectlog: the header dump that follows a reject line
                fields = {"continuation": "1"}
                kind = EventKind.OTHER
                at = text.lower().find("message-id:")
                if 0 <= at <= 4:
                    fields["message_id"] = angle(text[at + 11:].strip())
                    kind = EventKind.MESSAGE_ID
                elif text.startswith("Envelope-from: "):
                    fields["from"] = angle(text[15:].strip())
                return LogEvent(ts=previous.ts, dialect=DIALECT, kind=kind, line=line,
                                session_key=previous.session_key, queue_id=previous.queue_id,
                                host=previous.host, service=previous.service, fields=fields)
            else:
                return unparsed(DIALECT, line, "no timestamp")
    kind, msgid, fields = parse_exim_message(inner)
    return LogEvent(ts=ts, dialect=DIALECT, kind=kind, line=line, session_key=_session_key(fields),
                    queue_id=msgid, host=host, service=service or "exim", pid=pid, fields=fields)
