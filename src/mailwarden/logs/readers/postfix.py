"""Postfix logs (syslog, RFC 3339, journald, ``maillog_file``), plus the filters that log beside it.

`parse_postfix_message(daemon, message)` is the pure per-line parser: it knows smtpd (also
``postfix/submission/smtpd``, ``postfix/smtps/smtpd``, ``postfix-smo/...``), cleanup, qmgr,
pickup, the delivery agents (smtp, lmtp, local, virtual, pipe, error, discard, retry), bounce,
postscreen, dnsblog, postsuper, anvil and master. Programs that log next to Postfix in the same
mail.log and say something about one message are read too: spamd (``result: ... mid=<>``),
amavis (``Queue-ID: ..., Message-ID: ..., Hits: ...``), policyd-spf, opendkim, opendmarc.

Session keys: smtpd lines are keyed ``host/service[pid]`` (a reused pid is told apart by
``connect``/``disconnect`` in `logs/sessions.py`); postscreen lines by ``postscreen:ip:port``.
Queue-id lines carry ``queue_id`` and no session key: the assembler follows the queue id.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from mailwarden.logs.model import EventKind, LogEvent, LogLine
from mailwarden.logs.readers.base import (
    angle,
    numbered,
    parse_space_kv,
    split_host_ip,
    unparsed,
)
from mailwarden.logs.readers.syslog import split_syslog
from mailwarden.logs.timestamps import SyslogYear

DIALECT = "postfix"

SMTPD_DAEMONS = frozenset({"smtpd"})
DELIVERY_DAEMONS = frozenset({"smtp", "lmtp", "local", "virtual", "pipe", "error", "discard",
                              "retry", "relay"})
# Postfix's own actions in reject-style lines ("NOQUEUE: reject: RCPT from ...").
REJECT_ACTIONS = frozenset({"reject", "milter-reject", "discard", "milter-discard"})
OTHER_ACTIONS = frozenset({"reject_warning", "hold", "milter-hold", "filter", "redirect", "warn",
                           "info", "warning", "prepend", "replace", "milter-header-redirect",
                           "proxy-accept", "proxy-reject", "bcc"})
LOST_CONNECTION_PREFIXES = ("lost connection after ", "timeout after ", "too many errors after ",
                            "improper command pipelining after ", "bare <LF> received after ",
                            "SSL_accept error from ")
TLS_TRUST = ("Anonymous", "Untrusted", "Trusted", "Verified")
POSTSCREEN_VERDICTS = ("PASS NEW", "PASS OLD", "WHITELISTED", "BLACKLISTED", "WHITELIST VETO",
                       "ALLOWLISTED", "DENYLISTED", "ALLOWLIST VETO", "DNSBL rank", "PREGREET",
                       "HANGUP", "COMMAND TIME LIMIT", "COMMAND COUNT LIMIT",
                       "COMMAND LENGTH LIMIT", "NON-SMTP COMMAND", "COMMAND PIPELINING",
                       "BARE NEWLINE", "BDAT without", "CONNECT from", "DISCONNECT")
HEX_UPPER = frozenset("0123456789ABCDEF")


@dataclass(slots=True)
class ParsedMessage:
    """What one Postfix message text says (no timestamp, no host)."""

    kind: EventKind
    queue_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    postscreen_key: str | None = None


def is_queue_id(token: str) -> bool:
    """Short (hex, upper case) or long (``enable_long_queue_ids``: base-52 with a 'z') queue ids."""
    n = len(token)
    if 5 <= n <= 24 and all(c in HEX_UPPER for c in token):
        return True
    return 12 <= n <= 24 and token.isalnum() and "z" in token and any(c.isdigit() for c in token) \
        and any(c.isupper() for c in token)


def split_queue_id(message: str) -> tuple[str | None, str]:
    """``4104E3D: rest`` -> ("4104E3D", "rest"); ``warning: 9BE..: rest`` keeps the warning level."""
    colon = message.find(": ")
    if 0 < colon <= 24:
        token = message[:colon]
        if is_queue_id(token):
            return token, message[colon + 2:]
        if token in ("warning", "info") and len(message) > colon + 2:
            inner_colon = message.find(": ", colon + 2)
            inner = message[colon + 2:inner_colon] if inner_colon > 0 else ""
            if inner and is_queue_id(inner):
                return inner, f"{token}: {message[inner_colon + 2:]}"
    return None, message


def parse_command_counters(text: str) -> dict[str, str]:
    """``ehlo=2 starttls=1 rcpt=0/1 commands=5/7`` -> {"ehlo": "2", "rcpt": "0/1", ...}."""
    out: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key.isalpha() and value.replace("/", "").isdigit():
            out[key] = value
    return out


def parse_delays(text: str) -> dict[str, float] | None:
    """``0.2/0.02/0.04/3.3`` -> before_qmgr, in_qmgr, conn_setup, transmission (seconds)."""
    parts = text.split("/")
    if len(parts) != 4:
        return None
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return None
    return dict(zip(("before_qmgr", "in_qmgr", "conn_setup", "transmission"), values, strict=True))


def parse_tls_policy(text: str) -> dict[str, str]:
    """Delivery ``tls=`` values: ``dane``, ``may:none``, ``may?``, ``dane/!requiretls:nostarttls``."""
    out: dict[str, str] = {}
    level, _, require = text.partition("/")
    if level.endswith("?"):
        level, out["tls_policy_undecided"] = level[:-1], "?"
    level, _, downgrade = level.partition(":")
    out["tls_security_level"] = level
    if downgrade:
        out["tls_downgrade_level"] = downgrade
    if require:
        if require.startswith("!"):
            out["requiretls_policy_violation"] = "!"
            require = require[1:]
        require, _, require_downgrade = require.partition(":")
        if require.endswith("?"):
            require, out["requiretls_policy_undecided"] = require[:-1], "?"
        out["requiretls"] = require
        if require_downgrade:
            out["requiretls_downgrade_level"] = require_downgrade
    return out


def parse_relay(text: str) -> dict[str, str]:
    """``mx.example.com[1.2.3.4]:25`` / ``host[private/dovecot-lmtp]`` / ``local`` / ``none``."""
    name, inside, port = split_host_ip(text)
    if name is None and inside is None:
        return {"relay_name": text}
    out = {"relay_name": name or ""}
    if inside and ("/" in inside and "." not in inside.split("/")[0] or inside.startswith("private/")
                   or inside.startswith("public/")):
        out["relay_service"] = inside
    elif inside:
        out["relay_ip"] = inside
    if port is not None:
        out["relay_port"] = str(port)
    return out


def _client(fields: dict[str, str], text: str) -> None:
    name, ip, port = split_host_ip(text)
    if name is not None:
        fields["client_name"] = name
    if ip is not None:
        fields["client_ip"] = ip
    if port is not None:
        fields["client_port"] = str(port)


def _kv_tail(text: str) -> tuple[str, dict[str, str]]:
    """Split ``reason text; from=<a> to=<b> proto=ESMTP helo=<h>`` at the last envelope part."""
    for marker in ("; from=<", "; to=<", "; proto="):
        at = text.rfind(marker)
        if at >= 0:
            return text[:at], parse_space_kv(text[at + 2:])
    return text, {}


def _reply(fields: dict[str, str], text: str) -> None:
    """``554 5.7.1 <x@y>: Recipient address rejected: ...`` -> code, dsn, reason."""
    parts = text.split(" ", 2)
    if parts and len(parts[0]) == 3 and parts[0].isdigit():
        fields["code"] = parts[0]
        rest = " ".join(parts[1:])
        if len(parts) > 1 and parts[1][:1] in "245" and parts[1].count(".") == 2:
            fields["dsn"] = parts[1]
            rest = parts[2] if len(parts) > 2 else ""
    else:
        rest = text
    if rest.startswith("<"):
        close = rest.find(">: ")
        if close > 0:
            fields["reply_data"] = rest[1:close]
            rest = rest[close + 3:]
    fields["reason"] = rest
    lowered = rest.lower()
    at = lowered.find("blocked using ")
    if at >= 0:
        fields["dnsbl"] = rest[at + 14:].split(";", 1)[0].split(",", 1)[0].split()[0]


def _action_line(rest: str, fields: dict[str, str]) -> EventKind | None:
    """``reject: RCPT from name[ip]: 554 ...; from=<> to=<>`` (smtpd/cleanup/postscreen)."""
    colon = rest.find(": ")
    if colon <= 0 or colon > 32:
        return None
    action = rest[:colon]
    if action not in REJECT_ACTIONS and action not in OTHER_ACTIONS:
        return None
    fields["action"] = action
    body = rest[colon + 2:]
    if action.startswith("proxy-"):
        stage, _, tail = body.partition(": ")
        fields["stage"] = stage
        text, kv = _kv_tail(tail)
        fields.update(kv)
        if text:
            _reply(fields, text)
        return EventKind.REJECT if action == "proxy-reject" else EventKind.OTHER
    if body.startswith("header ") or body.startswith("body "):
        # cleanup header/body checks: "header Subject: x from name[ip]; from=<> to=<>"
        text, kv = _kv_tail(body)
        fields.update(kv)
        what, _, rest_text = text.partition(" ")
        fields["check"] = what
        from_at = rest_text.rfind(" from ")
        content = rest_text[:from_at] if from_at >= 0 else rest_text
        if from_at >= 0:
            _client(fields, rest_text[from_at + 6:])
        if what == "header":
            name, _, value = content.partition(": ")
            fields["header"] = name
            fields["header_value"] = value
            if name.lower() == "subject":
                fields["subject"] = value
            if name.lower() in ("x-spam-status", "x-spam-score", "x-spam-flag"):
                _spam_status(fields, value)
                return EventKind.SPAM_SCORE
        return EventKind.REJECT if action in REJECT_ACTIONS else EventKind.OTHER
    # "<STAGE> from name[ip]: reply; kv"  (stage: RCPT, MAIL, DATA, END-OF-MESSAGE, CONNECT ...)
    from_at = body.find(" from ")
    if from_at <= 0 or from_at > 40:
        fields["reason"] = body
        return EventKind.REJECT if action in REJECT_ACTIONS else EventKind.OTHER
    fields["stage"] = body[:from_at]
    after = body[from_at + 6:]
    close = after.find("]")
    client_end = after.find(": ", close if close > 0 else 0)
    if client_end < 0:
        _client(fields, after)
        return EventKind.REJECT if action in REJECT_ACTIONS else EventKind.OTHER
    _client(fields, after[:client_end])
    text, kv = _kv_tail(after[client_end + 2:])
    fields.update(kv)
    _reply(fields, text)
    return EventKind.REJECT if action in REJECT_ACTIONS else EventKind.OTHER


def _spam_status(fields: dict[str, str], value: str) -> None:
    """``Yes, score=39.3 required=5.0 tests=...`` -> spam_score, spam_threshold."""
    for token in value.replace(",", " ").split():
        key, sep, number = token.partition("=")
        if sep and key in ("score", "hits"):
            fields["spam_score"] = number
        elif sep and key == "required":
            fields["spam_threshold"] = number
    fields["spam"] = value


def _smtpd(message: str, fields: dict[str, str]) -> EventKind:
    if message.startswith("connect from "):
        _client(fields, message[13:])
        return EventKind.CONNECT
    if message.startswith("disconnect from "):
        rest = message[16:]
        host_part, _, counters = rest.partition(" ")
        _client(fields, host_part)
        if counters:
            fields["commands"] = counters
        return EventKind.DISCONNECT
    for prefix in LOST_CONNECTION_PREFIXES:
        if message.startswith(prefix):
            fields["event"] = prefix.split(" after ")[0].split(" from ")[0].strip()
            rest = message[len(prefix):]
            if prefix.endswith("after "):
                stage, _, rest = rest.partition(" from ")
                fields["stage"] = stage.split(" (")[0]
            _client(fields, rest.split(": ", 1)[0])
            return EventKind.OTHER
    for trust in TLS_TRUST:
        if message.startswith(trust + " TLS connection established from "):
            fields["tls_trust"] = trust
            rest = message[len(trust) + 33:]
            host_part, _, info = rest.partition(": ")
            _client(fields, host_part)
            fields["tls"] = info
            version, _, tail = info.partition(" with cipher ")
            fields["tls_version"] = version
            fields["tls_cipher"] = tail.split(" ", 1)[0]
            return EventKind.TLS
    if message.startswith("warning: "):
        warn = message[9:]
        marker = warn.find(": SASL ")
        if marker > 0 and " authentication failed" in warn:
            _client(fields, warn[:marker])
            rest = warn[marker + 7:]
            fields["sasl_method"] = rest.split(" ", 1)[0]
            reason = rest.partition("authentication failed: ")[2]
            user_at = reason.rfind(", sasl_username=")
            if user_at >= 0:
                fields["sasl_username"] = reason[user_at + 16:]
                reason = reason[:user_at]
            fields["reason"] = reason
            return EventKind.AUTH_FAIL
        if warn.startswith("non-SMTP command from "):
            host_part, _, command = warn[22:].partition(": ")
            _client(fields, host_part)
            fields["event"] = "non-SMTP command"
            fields["command"] = command
            return EventKind.OTHER
        if warn.startswith("hostname ") and " does not resolve to address " in warn:
            fields["client_ip"] = warn.split(" does not resolve to address ", 1)[1].split(":")[0].split()[0]
            fields["event"] = "hostname does not resolve"
        if "client_ip" not in fields:
            # "Connection rate limit exceeded: 31 from host[ip] for service smtpd", "... from unknown[ip]: ..."
            at = warn.find(" from ")
            token = warn[at + 6:].split(" ", 1)[0].rstrip(":,;") if at >= 0 else ""
            if "[" in token and token.endswith("]") or "]:" in token:
                _client(fields, token)
            elif warn[:1] != " " and "[" in warn.split(" ", 1)[0]:
                _client(fields, warn.split(" ", 1)[0].rstrip(":"))
        fields["warning"] = warn
        return EventKind.OTHER
    if message.startswith("discarding EHLO keywords: "):
        fields["discarded_ehlo_keywords"] = message[26:]
        return EventKind.OTHER
    if message.startswith("client="):
        for part in message.split(", "):
            key, _, value = part.partition("=")
            if key == "client":
                _client(fields, value)
            elif key in ("sasl_method", "sasl_username", "sasl_sender", "orig_queue_id", "orig_client"):
                fields[key] = value
        return EventKind.QUEUED
    kind = _action_line(message, fields)
    if kind is not None:
        return kind
    return EventKind.OTHER if fields.get("_has_qid") else EventKind.UNPARSED


def _delivery(message: str, fields: dict[str, str]) -> EventKind:
    if message.startswith("to="):
        status_at = message.find(", status=")
        head = message[:status_at] if status_at >= 0 else message
        for part in head.split(", "):
            key, _, value = part.partition("=")
            if key == "to":
                fields["to"] = angle(value)
            elif key == "orig_to":
                fields["orig_to"] = angle(value)
            elif key == "relay":
                fields["relay"] = value
                fields.update(parse_relay(value))
            elif key in ("delay", "delays", "dsn", "tls", "conn_use"):
                fields[key] = value
        if status_at >= 0:
            status_text = message[status_at + 9:]
            status, _, detail = status_text.partition(" ")
            fields["status"] = status
            if detail.startswith("(") and detail.endswith(")"):
                detail = detail[1:-1]
            fields["detail"] = detail
        return EventKind.DELIVERY
    if message.startswith("host ") and " said: " in message:
        host_part, _, said = message[5:].partition(" said: ")
        name, ip, _ = split_host_ip(host_part)
        fields["relay_name"] = name or ""
        fields["relay_ip"] = ip or ""
        if said.endswith(")") and " (in reply to " in said:
            said, _, stage = said[:-1].rpartition(" (in reply to ")
            fields["stage"] = stage.removesuffix(" command")
        fields["detail"] = said
        return EventKind.OTHER
    for trust in TLS_TRUST:
        if message.startswith(trust + " TLS connection established to "):
            fields["tls_trust"] = trust
            host_part, _, info = message[len(trust) + 31:].partition(": ")
            fields.update(parse_relay(host_part))
            version, _, tail = info.partition(" with cipher ")
            fields["tls_version"] = version
            fields["tls_cipher"] = tail.split(" ", 1)[0]
            return EventKind.TLS
    if message.startswith("connect to "):
        host_part, _, reason = message[11:].partition(": ")
        fields.update(parse_relay(host_part))
        fields["detail"] = reason
        return EventKind.OTHER
    if message.startswith("conversation with "):
        host_part = message[18:].split(" ", 1)[0]
        fields.update(parse_relay(host_part))
        fields["detail"] = message
        return EventKind.OTHER
    for prefix in ("certificate verification failed for ", "SSL_connect error to "):
        if message.startswith(prefix):
            host_part, _, reason = message[len(prefix):].partition(": ")
            fields.update(parse_relay(host_part))
            fields["detail"] = reason
            return EventKind.OTHER
    # "lost connection with X[ip] while ...", "host X[ip] refused to talk to me: ...",
    # "SASL authentication failed; server X[ip] said: ...", "enabling PIX workarounds: ... for X[ip]:25"
    for word in message.split(" "):
        if "[" in word and word.rstrip(":,").endswith(("]",)) or ("]:" in word and "[" in word):
            fields.update(parse_relay(word.rstrip(":,")))
            break
    said_at = message.find(" said: ")
    if said_at < 0:
        said_at = message.find(" to me: ")
        fields["detail"] = message[said_at + 8:] if said_at >= 0 else message
    else:
        fields["detail"] = message[said_at + 7:]
    return EventKind.OTHER


def _postscreen(message: str, fields: dict[str, str]) -> tuple[EventKind, str | None]:
    """postscreen speaks about ``[ip]:port``; that pair is its session key."""
    if message.startswith("NOQUEUE: "):
        kind = _action_line(message[9:], fields) or EventKind.OTHER
        key = f"{fields.get('client_ip')}:{fields.get('client_port')}" if "client_ip" in fields else None
        return kind, key
    for verdict in POSTSCREEN_VERDICTS:
        if message.startswith(verdict):
            rest = message[len(verdict):].lstrip()
            if verdict == "CONNECT from":
                client, _, server = rest.partition(" to ")
                _client(fields, client)
                _, sip, sport = split_host_ip(server)
                if sip:
                    fields["server_ip"] = sip
                if sport is not None:
                    fields["server_port"] = str(sport)
                kind = EventKind.CONNECT
            elif verdict == "DISCONNECT":
                _client(fields, rest)
                kind = EventKind.DISCONNECT
            elif verdict == "DNSBL rank":
                rank, _, client = rest.partition(" for ")
                fields["dnsbl_rank"] = rank
                fields["violation"] = "DNSBL"
                _client(fields, client)
                kind = EventKind.DNSBL
            elif verdict in ("PASS NEW", "PASS OLD", "WHITELISTED", "BLACKLISTED", "WHITELIST VETO",
                             "ALLOWLISTED", "DENYLISTED", "ALLOWLIST VETO"):
                fields["access"] = verdict
                _client(fields, rest)
                kind = EventKind.OTHER
            else:
                fields["violation"] = verdict
                words = rest.split()
                if verdict in ("PREGREET", "HANGUP") and "after" in words[:3]:
                    at = words.index("after")
                    if at + 1 < len(words):
                        fields["violation_time"] = words[at + 1]
                from_at = rest.find("from ")
                if from_at >= 0:
                    client = rest[from_at + 5:].split(" ", 1)[0].rstrip(":")
                    _client(fields, client)
                after_at = rest.find(" after ")
                if after_at >= 0 and verdict not in ("PREGREET", "HANGUP"):
                    fields["stage"] = rest[after_at + 7:].split(":", 1)[0].strip()
                kind = EventKind.OTHER
            key = f"{fields.get('client_ip')}:{fields.get('client_port')}" if "client_ip" in fields else None
            return kind, key
    if message.startswith("cache ") or message.startswith("warning: "):
        fields["detail"] = message
        return EventKind.OTHER, None
    return EventKind.OTHER, None


def parse_postfix_message(daemon: str, message: str) -> ParsedMessage:
    """Pure: the text after ``postfix/<daemon>[pid]: `` -> kind, queue id, fields."""
    queue_id, rest = split_queue_id(message)
    fields: dict[str, str] = {}
    if queue_id is None and rest.startswith("NOQUEUE: ") and daemon != "postscreen":
        fields["queue"] = "NOQUEUE"
        rest = rest[9:]
    if daemon in SMTPD_DAEMONS:
        if queue_id:
            fields["_has_qid"] = "1"
        kind = _smtpd(rest, fields)
        fields.pop("_has_qid", None)
        return ParsedMessage(kind, queue_id, fields)
    if daemon == "cleanup":
        if queue_id and rest.startswith("message-id="):
            fields["message_id"] = angle(rest[11:].strip())
            return ParsedMessage(EventKind.MESSAGE_ID, queue_id, fields)
        if queue_id and rest.startswith("resent-message-id="):
            fields["resent_message_id"] = angle(rest[18:].strip())
            return ParsedMessage(EventKind.OTHER, queue_id, fields)
        kind = _action_line(rest, fields)
        if kind is None:
            fields["detail"] = rest
            kind = EventKind.OTHER
        return ParsedMessage(kind, queue_id, fields)
    if daemon == "qmgr":
        if rest == "removed":
            return ParsedMessage(EventKind.REMOVED, queue_id, fields)
        if rest.startswith("from="):
            for part in rest.split(", "):
                key, _, value = part.partition("=")
                if key == "from":
                    fields["from"] = angle(value)
                elif key == "size":
                    fields["size"] = value
                elif key == "nrcpt":
                    fields["nrcpt"] = value.split(" ", 1)[0]
                elif key == "status":
                    fields["status"] = value
            return ParsedMessage(EventKind.OTHER if "status" in fields else EventKind.MAIL_FROM,
                                 queue_id, fields)
        fields["detail"] = rest
        return ParsedMessage(EventKind.OTHER, queue_id, fields)
    if daemon == "pickup" and queue_id and rest.startswith("uid="):
        kv = parse_space_kv(rest)
        fields["uid"] = kv.get("uid", "")
        fields["from"] = kv.get("from", "")
        return ParsedMessage(EventKind.QUEUED, queue_id, fields)
    if daemon in DELIVERY_DAEMONS:
        return ParsedMessage(_delivery(rest, fields), queue_id, fields)
    if daemon == "bounce" and queue_id and " notification: " in rest:
        who_what, _, new_qid = rest.partition(" notification: ")
        who, _, what = who_what.partition(" ")
        fields.update({"bounce_recipient": who, "bounce_reason": what, "bounce_queue_id": new_qid})
        return ParsedMessage(EventKind.OTHER, queue_id, fields)
    if daemon == "postscreen":
        kind, key = _postscreen(message, fields)
        return ParsedMessage(kind, None, fields, postscreen_key=f"postscreen:{key}" if key else None)
    if daemon == "tlsproxy":
        # tlsproxy mirrors postscreen's CONNECT/DISCONNECT; it is plumbing, not a session of its own
        _, _key = _postscreen(message, fields)
        return ParsedMessage(EventKind.OTHER, None, fields)
    if daemon == "dnsblog" and rest.startswith("addr ") and " listed by domain " in rest:
        ip, _, tail = rest[5:].partition(" listed by domain ")
        domain, _, result = tail.partition(" as ")
        fields.update({"client_ip": ip, "dnsbl": domain, "dnsbl_result": result})
        return ParsedMessage(EventKind.DNSBL, None, fields)
    if daemon == "postsuper" and queue_id:
        fields["action"] = rest
        return ParsedMessage(EventKind.OTHER, queue_id, fields)
    if daemon == "anvil" and " for (" in rest:
        # "statistics: max connection rate 1/60s for (smtpd:61.238.241.86) at Oct 26 18:13:50"
        inside = rest.split(" for (", 1)[1].split(")", 1)[0]
        head, _, tail = inside.partition(":")
        if head.replace(".", "").isdigit():      # "127.0.0.1:2525:127.0.0.1": service is ip:port
            service, _, ip = inside.rpartition(":")
        else:
            service, ip = head, tail
        fields.update({"anvil_service": service, "client_ip": ip, "detail": rest})
        return ParsedMessage(EventKind.OTHER, None, fields)
    # anvil, master, scache, tlsmgr, postdrop, sendmail, postmap ...: server-wide, no session.
    fields["detail"] = rest
    return ParsedMessage(EventKind.OTHER, queue_id, fields)


def parse_filter_message(program: str, message: str) -> ParsedMessage | None:
    """Lines from filters logging beside Postfix (spamd, amavis, policyd-spf, opendkim, opendmarc)."""
    base = program.rsplit("/", 1)[-1].lower()
    fields: dict[str, str] = {"program": base}
    if base == "spamd" and "result: " in message:
        # spamd: result: Y 15 - TESTS,... scantime=0.1,size=123,user=x,uid=1,required_score=5.0,rhost=..,raddr=..,rport=..,mid=<id>,autolearn=no
        rest = message.split("result: ", 1)[1]
        words = rest.split(" ", 4)
        if len(words) >= 2:
            fields["spam_flag"] = words[0]
            fields["spam_score"] = words[1]
        tail = words[4] if len(words) > 4 else ""
        for part in tail.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                continue
            if key == "required_score":
                fields["spam_threshold"] = value
            elif key == "mid":
                fields["message_id"] = angle(value)
            elif key in ("raddr", "user", "size"):
                fields[key] = value
        fields["spam"] = rest
        return ParsedMessage(EventKind.SPAM_SCORE, None, fields)
    if base.startswith("amavis") and "Queue-ID: " in message:
        queue_id = message.split("Queue-ID: ", 1)[1].split(",", 1)[0].strip()
        if "Message-ID: " in message:
            fields["message_id"] = angle(message.split("Message-ID: ", 1)[1].split(",", 1)[0])
        if "Hits: " in message:
            fields["spam_score"] = message.split("Hits: ", 1)[1].split(",", 1)[0].strip()
        fields["spam"] = message.split(",", 1)[0]
        return ParsedMessage(EventKind.SPAM_SCORE, queue_id if is_queue_id(queue_id) else None, fields)
    if base in ("policyd-spf", "policy-spf", "policyd-spf-perl") and ("Received-SPF:" in message
                                                                       or "SPF " in message):
        fields["spf"] = message
        for part in message.replace(";", " ").split():
            key, sep, value = part.partition("=")
            if sep and key in ("client-ip", "envelope-from", "helo"):
                fields[key.replace("-", "_")] = value
        return ParsedMessage(EventKind.SPF, None, fields)
    if base in ("opendkim", "opendmarc"):
        queue_id, rest = split_queue_id(message)
        if queue_id is None:
            return None
        fields["dkim" if base == "opendkim" else "dmarc"] = rest
        return ParsedMessage(EventKind.DKIM if base == "opendkim" else EventKind.DMARC, queue_id, fields)
    return None


def is_postfix_program(program: str) -> bool:
    head = program.split("/", 1)[0]
    return head.startswith("postfix")


class PostfixReader:
    """See `LogReader`."""

    name = "postfix"
    dialect = DIALECT

    def sniff(self, head_lines: list[str]) -> bool:
        hits = 0
        for text in head_lines:
            prefix = split_syslog(text, SyslogYear(2000))
            if prefix is not None and is_postfix_program(prefix.program):
                hits += 1
        return hits > 0

    def events(self, lines: Iterable[str | LogLine], source: str, *,
               clock: SyslogYear | None = None) -> Iterator[LogEvent]:
        clock = clock if clock is not None else SyslogYear()
        for line in numbered(lines, source):
            yield parse_postfix_line(line, clock)


def parse_postfix_line(line: LogLine, clock: SyslogYear) -> LogEvent:
    """One raw line -> event (pure apart from the year clock)."""
    prefix = split_syslog(line.text, clock)
    if prefix is None:
        return unparsed(DIALECT, line, "no syslog prefix")
    program = prefix.program
    if is_postfix_program(program):
        daemon = program.rsplit("/", 1)[-1]
        parsed = parse_postfix_message(daemon, prefix.message)
        if parsed.kind is EventKind.UNPARSED:
            event = unparsed(DIALECT, line, "unknown smtpd line")
            event.ts, event.host, event.service, event.pid = prefix.ts, prefix.host, program, prefix.pid
            return event
        session_key = None
        if daemon in SMTPD_DAEMONS and prefix.pid is not None:
            session_key = f"{prefix.host}/{program}[{prefix.pid}]"
        elif parsed.postscreen_key:
            session_key = f"{prefix.host}/{parsed.postscreen_key}"
        return LogEvent(ts=prefix.ts, dialect=DIALECT, kind=parsed.kind, line=line,
                        session_key=session_key, queue_id=parsed.queue_id, host=prefix.host,
                        service=program, pid=prefix.pid, fields=parsed.fields)
    parsed = parse_filter_message(program, prefix.message)
    if parsed is None:
        # A line from another program (dovecot, sshd ...) in the same file: known, not ours.
        return LogEvent(ts=prefix.ts, dialect=DIALECT, kind=EventKind.OTHER, line=line,
                        host=prefix.host, service=program, pid=prefix.pid,
                        fields={"foreign": "1"})
    return LogEvent(ts=prefix.ts, dialect=DIALECT, kind=parsed.kind, line=line,
                    queue_id=parsed.queue_id, host=prefix.host, service=program, pid=prefix.pid,
                    fields=parsed.fields)
