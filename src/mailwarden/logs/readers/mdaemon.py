"""MDaemon SMTP (in) and "all" logs.

Line shape: ``Www YYYY-MM-DD HH:MM:SS[.mmm]: [NN: ]text`` (milliseconds from v18; the ``NN: ``
id is the "Log ID string in mail session logs" option). A file starts with a banner
(``START Event Log / MDaemon PRO v18.0.1, SMTP (in) log information``, dashes, column header).
A session opens with ``Session N; child N`` and/or ``Accepting SMTP connection from ip:port to
ip:port`` (v18+) or ``[ip:port] to [ip:port]`` (older), and ends with ``SMTP session
successful`` / ``SMTP session terminated`` or a dashes separator. Protocol lines are ``--> ``
(server reply) and ``<-- `` (client command); ``--> 250 Ok, message saved <Message-ID: ...>``
is the acceptance. Sources for every wording: ../shared/reference/mdaemon-formats.md §2.1-2.2.

Lines whose exact MDaemon wording we have NOT seen in a real log (DNS-BL, SPF, DKIM, DMARC,
spam filter score, trusted IP) are recognised by keyword only and kept raw; see docs/logs.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mailwarden.logs.model import EventKind, LogEvent, LogLine
from mailwarden.logs.readers.base import angle, numbered, unparsed
from mailwarden.logs.timestamps import WEEKDAYS, SyslogYear, parse_date_time

DIALECT = "mdaemon"


def split_mdaemon_stamp(text: str):
    """``Thu 2019-03-14 00:00:17.768: [05: ]text`` -> (datetime, id or None, text) or None."""
    if len(text) < 21 or text[3] != " " or text[:3].lower() not in WEEKDAYS:
        return None
    colon = text.find(": ", 15)
    if colon < 0 or colon > 32:
        return None
    ts = parse_date_time(text[4:14], text[15:colon])
    if ts is None:
        return None
    rest = text[colon + 2:]
    ident = None
    head, sep, tail = rest.partition(": ")
    if sep and 1 <= len(head) <= 6 and head.isdigit():
        ident, rest = head, tail
    return ts, ident, rest


def _endpoint(text: str) -> tuple[str | None, int | None]:
    """``10.2.6.35:64407`` / ``[220.137.9.244:2767]`` / ``[2001:db8::1]:25`` -> (ip, port)."""
    text = text.strip().rstrip(",")
    if text.startswith("[") and text.endswith("]") and text.count(":") == 1:
        text = text[1:-1]
    if text.startswith("["):
        close = text.find("]")
        ip = text[1:close]
        port_text = text[close + 2:] if text[close + 1:close + 2] == ":" else ""
    else:
        ip, _, port_text = text.rpartition(":")
        if not ip:
            ip, port_text = text, ""
    port = int(port_text) if port_text.isdigit() and len(port_text) <= 5 else None
    return (ip or None), port


def parse_mdaemon_message(text: str) -> tuple[EventKind, dict[str, str]]:
    """Pure: the text after the timestamp (and id) -> kind, fields."""
    fields: dict[str, str] = {}
    stripped = text.strip()
    if stripped and set(stripped) == {"-"}:
        return EventKind.BANNER, {"separator": "1"}
    if text.startswith("Session ") and "; child " in text:
        number, _, child = text[8:].partition("; child ")
        fields["session_number"] = number.strip()
        fields["child"] = child.strip()
        return EventKind.OTHER, fields
    if text.startswith("Accepting SMTP connection from "):
        client, _, server = text[31:].partition(" to ")
        ip, port = _endpoint(client)
        if ip:
            fields["client_ip"] = ip
        if port is not None:
            fields["client_port"] = str(port)
        sip, sport = _endpoint(server.split(" ", 1)[0])
        if sip:
            fields["server_ip"] = sip
        if sport is not None:
            fields["server_port"] = str(sport)
        return EventKind.CONNECT, fields
    if text.startswith("SMTP session successful") or text.startswith("SMTP session terminated"):
        fields["outcome"] = "successful" if "successful" in text[:24] else "terminated"
        return EventKind.DISCONNECT, fields
    if text.startswith("--> ") or text.startswith("<-- "):
        return _protocol(text[:3], text[4:], fields)
    if text.startswith("First time authenticated SMTP"):
        # "... (ip) ... user@domain's ..." : the script quoted in the reference strips a trailing 's
        for word in text.split():
            word = word.strip("(),;")
            if word.endswith("'s"):
                word = word[:-2]
            if "@" in word and "auth_user" not in fields:
                fields["auth_user"] = angle(word)
            elif word.count(".") == 3 and word.replace(".", "").isdigit():
                fields["client_ip"] = word
        return EventKind.AUTH_OK, fields
    if text.startswith("*  ") and ": " in text:
        # routing records in the "all" log: "*  From: a@b", "*  Message-ID: <123>", "*  Size: ..."
        name, _, value = text[3:].partition(": ")
        key = name.strip().lower()
        if key == "message-id":
            fields["message_id"] = angle(value.strip())
            return EventKind.MESSAGE_ID, fields
        if key in ("from", "to", "subject", "size"):
            fields[key] = value.strip()
        return EventKind.OTHER, fields
    if text.startswith("INBOUND message: ") or text.startswith("OUTBOUND message: "):
        fields["routing"] = text.split(" ", 1)[0].lower()
        return EventKind.OTHER, fields
    lowered = text.lower()
    # Keyword-only recognition (wording unverified; kept raw for the explanation).
    if "spam filter score" in lowered or "spam score" in lowered:
        score = text.rsplit(":", 1)[-1].strip()
        have, _, need = score.partition("/")
        fields["spam_score"], fields["spam_threshold"] = have.strip(), need.strip()
        fields["spam"] = text
        return EventKind.SPAM_SCORE, fields
    if "dns-bl" in lowered or "dnsbl" in lowered:
        fields["dnsbl"] = text
        return EventKind.DNSBL, fields
    if "spf" in lowered.split(" ", 3)[:3] or "spf lookup" in lowered or "spf result" in lowered:
        fields["spf"] = text
        return EventKind.SPF, fields
    if "dkim" in lowered[:40]:
        fields["dkim"] = text
        return EventKind.DKIM, fields
    if "dmarc" in lowered[:40]:
        fields["dmarc"] = text
        return EventKind.DMARC, fields
    if "trusted" in lowered and ("ip" in lowered or "host" in lowered or "domain" in lowered):
        fields["trusted"] = text
        return EventKind.OTHER, fields
    fields["detail"] = text
    return EventKind.OTHER, fields


def _protocol(direction: str, text: str, fields: dict[str, str]) -> tuple[EventKind, dict[str, str]]:
    fields["direction"] = "server" if direction == "-->" else "client"
    if direction == "<--":
        upper = text[:10].upper()
        if upper.startswith("EHLO ") or upper.startswith("HELO "):
            fields["helo"] = text[5:].strip()
            return EventKind.HELO, fields
        if upper.startswith("MAIL FROM:"):
            fields["from"] = angle(text[10:].strip().split(" ", 1)[0])
            return EventKind.MAIL_FROM, fields
        if upper.startswith("RCPT TO:"):
            fields["to"] = angle(text[8:].strip().split(" ", 1)[0])
            return EventKind.RCPT_TO, fields
        if upper.startswith("AUTH "):
            fields["auth_method"] = text[5:].strip().split(" ", 1)[0].upper()
        if upper.startswith("STARTTLS"):
            fields["tls"] = "STARTTLS"
        return EventKind.PROTOCOL, fields
    code = text[:3]
    fields["code"] = code if code.isdigit() else ""
    if code == "250" and "message saved" in text:
        at = text.find("<Message-ID:")
        if at >= 0:
            inner = text[at + 12:].strip()
            if inner.endswith(">"):
                inner = inner[:-1]
            fields["message_id"] = angle(inner.strip())
        return EventKind.ACCEPTED, fields
    if code == "235":
        return EventKind.AUTH_OK, fields
    if code in ("535", "534", "538"):
        fields["reason"] = text
        return EventKind.AUTH_FAIL, fields
    if code == "220" and "TLS" in text.upper() and "ready" in text.lower():
        fields["tls"] = text
        return EventKind.TLS, fields
    if code[:1] == "5" or code[:1] == "4":
        fields["reason"] = text
        return EventKind.REJECT, fields
    return EventKind.PROTOCOL, fields


class MDaemonReader:
    """See `LogReader`."""

    name = "mdaemon"
    dialect = DIALECT

    def sniff(self, head_lines: list[str]) -> bool:
        for text in head_lines:
            if text.startswith("START Event Log / MDaemon"):
                return True
            if split_mdaemon_stamp(text) is not None:
                return True
        return False

    def events(self, lines: Iterable[str | LogLine], source: str, *,
               clock: SyslogYear | None = None) -> Iterator[LogEvent]:
        # Sessions are written as blocks; with the "NN: " id they can interleave. The key is
        # the id when present, else one running session per file. `logs/sessions.py` opens a
        # new session at "Session N" / "Accepting SMTP connection" and closes it at the end line.
        for line in numbered(lines, source):
            yield parse_mdaemon_line(line)


def parse_mdaemon_line(line: LogLine) -> LogEvent:
    text = line.text
    stamped = split_mdaemon_stamp(text)
    if stamped is None:
        stripped = text.strip()
        if not stripped or text.startswith("START Event Log") or set(stripped) == {"-"} \
                or text.startswith("Event Time/Date"):
            return LogEvent(ts=None, dialect=DIALECT, kind=EventKind.BANNER, line=line,
                            fields={"banner": text} if text.startswith("START") else {})
        return unparsed(DIALECT, line, "no MDaemon timestamp")
    ts, ident, rest = stamped
    kind, fields = parse_mdaemon_message(rest)
    key = f"mdaemon:{line.source}:{ident}" if ident else f"mdaemon:{line.source}"
    queue_id = None
    lowered = rest.lower()
    at = lowered.find(".msg")
    if at > 0:
        # "md50000000001.msg" anywhere in the line is MDaemon's message file name (queue id)
        start = at
        while start > 0 and (rest[start - 1].isalnum()):
            start -= 1
        token = rest[start:at + 4]
        if token[:2].lower() in ("md", "pd", "pp") and token[2:-4].isdigit():
            queue_id = token
    if fields.get("routing"):
        # "INBOUND message: pdd666.msg" names the message file whatever its digits look like
        queue_id = rest.split(": ", 1)[1].strip() or queue_id
    return LogEvent(ts=ts, dialect=DIALECT, kind=kind, line=line, session_key=key,
                    queue_id=queue_id, service="mdaemon-smtp-in", fields=fields)
