"""One ``Received`` header -> a ``Hop``; the whole chain -> ``list[Hop]``.

RFC 5322 3.6.7 only promises ``*received-token ";" date-time`` with comments anywhere, and
real servers stray from RFC 5321 4.4 in many ways (qmail comment-only stamps, SendGrid's
missing ``;``, Exchange's ``id ... via``, IPv6 zone ids, ``by  (Postfix)`` with no name,
IBM's prose in ``with``). So the value is first tokenised generically (atoms, comments,
``[literals]``, ``<angle-addrs>``, quoted strings, ``;``) and clauses are read from the
tokens; vendor knowledge only interprets comment *contents* afterwards. A hop that
cannot be understood keeps its raw text and the reason. Nothing here raises, and every
step is linear in the input: the scanner's alternatives are single character classes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import lru_cache

MAX_RECEIVED_CHARS = 8192   # longer values are cut (a defect); real ones are < 1 KB
MAX_TOKENS = 400
MAX_COMMENT_DEPTH = 16

ATOM, COMMENT, LITERAL, ANGLE, QUOTED, SEMI = "atom", "comment", "literal", "angle", "quoted", "semi"
KEYWORDS = ("from", "by", "via", "with", "id", "for")

# Whitespace runs, single specials, or runs of anything else: no nested quantifiers,
# so no input can make it backtrack.
_PIECE = re.compile(r'\s+|[()\[\]<>";\\]|[^\s()\[\]<>";\\]+')
_OPENERS = {"(": COMMENT, "[": LITERAL, "<": ANGLE, '"': QUOTED}
_CLOSERS = {COMMENT: ")", LITERAL: "]", ANGLE: ">", QUOTED: '"'}

_WEEKDAYS = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
_MONTHS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
# SendGrid / Go: "2020-06-17 16:39:24.757045452 +0000 UTC" (mail-parser#71, MHA#63)
_ISO_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,12})? ?([+-]\d{4}|Z|UTC)?"
)
_HELO_EQ = re.compile(r"\bhelo=(\S{1,255})", re.IGNORECASE)
_HELO_WORD = re.compile(r"\bHELO (\S{1,255})", re.IGNORECASE)
_BRACKETED = re.compile(r"\[([^\[\]\s]{1,80})\]")


@dataclass(slots=True)
class Token:
    kind: str
    text: str


def tokenize(value: str) -> tuple[list[Token], list[str]]:
    """Received value -> tokens (comments flattened to their text) and defects."""
    defects: list[str] = []
    if len(value) > MAX_RECEIVED_CHARS:
        defects.append(f"Received header of {len(value)} characters cut to {MAX_RECEIVED_CHARS}")
        value = value[:MAX_RECEIVED_CHARS]
    tokens: list[Token] = []
    mode: str | None = None   # the construct we are inside, if any
    depth = 0                 # comment nesting
    buf: list[str] = []
    escaped = False
    for match in _PIECE.finditer(value):
        piece = match.group()
        if mode is not None:
            if escaped:
                buf.append(piece)
                escaped = False
                continue
            if piece == "\\" and mode in (COMMENT, QUOTED):
                escaped = True
                continue
            if mode == COMMENT and piece == "(":
                depth += 1
                if depth > MAX_COMMENT_DEPTH:
                    defects.append("comments nested too deeply")
                    break
                buf.append(piece)
                continue
            if piece == _CLOSERS[mode]:
                if mode == COMMENT and depth > 1:
                    depth -= 1
                    buf.append(piece)
                    continue
                tokens.append(Token(mode, " ".join("".join(buf).split())))
                mode, depth, buf = None, 0, []
            else:
                buf.append(piece)
            continue
        if piece.isspace():
            continue
        if piece in _OPENERS:
            mode = _OPENERS[piece]
            depth = 1 if mode == COMMENT else 0
            continue
        if piece == ";":
            tokens.append(Token(SEMI, ";"))
        elif piece in (")", "]", ">", "\\"):
            defects.append(f"stray {piece!r}")
        else:
            tokens.append(Token(ATOM, piece))
        if len(tokens) >= MAX_TOKENS:
            defects.append(f"more than {MAX_TOKENS} tokens; the rest ignored")
            break
    if mode is not None:
        defects.append(f"unterminated {mode}")
        tokens.append(Token(mode, " ".join("".join(buf).split())))
    return tokens, defects


@lru_cache(maxsize=8192)
def clean_ip(text: str | None) -> str | None:
    """``[1.2.3.4]``, ``IPv6:2001:db8::1``, ``fe80::1%9``, ``1.2.3.4:25`` -> canonical IP, else None."""
    if not text:
        return None
    text = text.strip().strip("[]").strip()
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    text = text.split("%", 1)[0]
    if text.count(":") == 1 and "." in text:  # v4 with :port (t-online, Exim)
        text = text.split(":", 1)[0]
    if not text or len(text) > 45:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@lru_cache(maxsize=8192)
def ip_object(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A canonical IP string (from ``clean_ip``) -> address object, cached."""
    return ipaddress.ip_address(text)


@dataclass
class Hop:
    """One Received header. ``index`` 0 is the top (the most recent hop)."""

    index: int
    raw: str
    from_name: str | None = None     # the name after "from" (HELO for Postfix/sendmail, rDNS for Exim/qmail)
    from_rdns: str | None = None     # the reverse name the receiving server looked up, when it says
    from_ip: str | None = None       # the connecting client's IP (TCP-info), never taken from HELO
    helo: str | None = None          # what the client said in HELO/EHLO
    by: str | None = None
    by_ip: str | None = None
    software: str | None = None      # "(Postfix)", "(MDaemon PRO v15.0.0)", "(Exim 4.96)" ...
    protocol: str | None = None      # first word of the with clause: ESMTPSA, esmtpa, local, HTTP ...
    protocol_text: str | None = None # the whole with clause (Exchange, IBM write prose there)
    via: str | None = None
    id: str | None = None            # Postfix queue id, Exim message id, MDaemon md*.msg ...
    for_: str | None = None
    date: dt.datetime | None = None  # timezone-aware
    date_text: str | None = None
    comments: list[str] = field(default_factory=list)
    parsed: bool = True              # from/by understood
    reason: str | None = None        # why it is not (fully) understood
    defects: list[str] = field(default_factory=list)

    @property
    def is_loopback_client(self) -> bool:
        return self.from_ip is not None and ip_object(self.from_ip).is_loopback

    def to_json(self) -> dict:
        return {
            "index": self.index, "from": self.from_name, "from_rdns": self.from_rdns,
            "from_ip": self.from_ip, "helo": self.helo, "by": self.by, "by_ip": self.by_ip,
            "software": self.software, "protocol": self.protocol, "protocol_text": self.protocol_text,
            "via": self.via, "id": self.id, "for": self.for_,
            "date": self.date.isoformat() if self.date else None,
            "comments": self.comments, "parsed": self.parsed, "reason": self.reason,
            "defects": self.defects, "raw": self.raw,
        }


def parse_date(text: str) -> dt.datetime | None:
    """RFC 5322 date (obsolete forms too) or the ISO-ish SendGrid form -> aware datetime."""
    text = text.strip()[:200]
    if not text:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        when = None
    if when is None:
        match = _ISO_DATE.search(text)
        if not match:
            return None
        y, mo, d, h, mi, s, zone = match.groups()
        try:
            when = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        except ValueError:
            return None
        if zone and zone[0] in "+-":
            offset = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
            when = when.replace(tzinfo=dt.timezone(-offset if zone[0] == "-" else offset))
        else:
            when = when.replace(tzinfo=dt.UTC)
    if when.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 3.3)
        when = when.replace(tzinfo=dt.UTC)
    return when


def _date_start(tokens: list[Token]) -> int | None:
    """Where a date begins when the ';' is missing: a weekday, or day-number + month name."""
    for i, tok in enumerate(tokens):
        if tok.kind != ATOM:
            continue
        word = tok.text.lower().rstrip(",")
        if word in _WEEKDAYS and i + 2 < len(tokens):
            return i
        if (word.isdigit() and len(word) <= 2 and i + 1 < len(tokens)
                and tokens[i + 1].text[:3].lower() in _MONTHS):
            return i
        if len(word) == 10 and word[4:5] == "-" and word[:4].isdigit():
            return i
    return None


def _read_from_comments(hop: Hop, comments: list[str]) -> None:
    """Interpret the TCP-info comments after ``from``: rDNS [IP], bare IP, helo=, HELO x."""
    explicit_helo = None
    for text in comments:
        match = _HELO_EQ.search(text) or _HELO_WORD.search(text)
        if match and explicit_helo is None:
            explicit_helo = match.group(1).rstrip(")")
        if hop.from_ip is None:
            # An IP literal given as HELO is the client's claim, not its address.
            text = _HELO_WORD.sub(" ", _HELO_EQ.sub(" ", text))
            bracket = _BRACKETED.search(text)
            if bracket:
                ip = clean_ip(bracket.group(1))
                if ip:
                    hop.from_ip = ip
                    before = text[: bracket.start()].split()
                    name = before[-1] if before else None
                    if name and name.lower() != "unknown" and "=" not in name and "@" not in name:
                        hop.from_rdns = name.rstrip(".")
                    continue
            words = text.split()
            if len(words) == 1:
                # "(1.2.3.4)" (qmail, Exchange) or qmail SMTP-AUTH's "(user@domain@1.2.3.4)"
                ip = clean_ip(words[0].rpartition("@")[2])
                if ip:
                    hop.from_ip = ip
    if explicit_helo is not None:
        hop.helo = explicit_helo
        if hop.from_rdns is None and hop.from_name and not hop.from_name.startswith("["):
            # Exim/qmail put the verified host name first and HELO in the comment.
            if hop.from_name.lower() != "unknown" and clean_ip(hop.from_name) is None:
                hop.from_rdns = hop.from_name
    else:
        hop.helo = hop.from_name


def parse_received(value: str, index: int = 0) -> Hop:
    """One Received value (folded or not) -> Hop. Never raises."""
    raw = " ".join(value.split()) if len(value) <= MAX_RECEIVED_CHARS * 2 else value[: MAX_RECEIVED_CHARS * 2]
    hop = Hop(index=index, raw=raw)
    tokens, hop.defects = tokenize(raw)
    hop.comments = [t.text for t in tokens if t.kind == COMMENT]

    semis = [i for i, t in enumerate(tokens) if t.kind == SEMI]
    problems: list[str] = []
    if semis:
        clause_tokens, date_tokens = tokens[: semis[-1]], tokens[semis[-1] + 1:]
    else:
        start = _date_start(tokens)
        if start is None:
            clause_tokens, date_tokens = tokens, []
        else:
            clause_tokens, date_tokens = tokens[:start], tokens[start:]
        problems.append("no ';' before the date")
    hop.date_text = " ".join(t.text for t in date_tokens if t.kind == ATOM) or None
    if hop.date_text:
        hop.date = parse_date(hop.date_text)
    if hop.date is None and not semis:
        match = _ISO_DATE.search(raw)
        if match:
            hop.date = parse_date(match.group())
            hop.date_text = match.group()
    if hop.date is None:
        problems.append("date not understood" if hop.date_text else "no date")

    clause: str | None = None
    seen: set[str] = set()
    firsts: dict[str, str] = {}
    clause_comments: dict[str | None, list[str]] = {}
    with_words: list[str] = []
    for tok in clause_tokens:
        if tok.kind == ATOM and tok.text.lower() in KEYWORDS and tok.text.lower() not in seen:
            clause = tok.text.lower()
            seen.add(clause)
            continue
        if tok.kind == SEMI:
            continue
        if tok.kind == COMMENT:
            clause_comments.setdefault(clause, []).append(tok.text)
            continue
        text = f"[{tok.text}]" if tok.kind == LITERAL else tok.text
        if clause == "with":
            with_words.append(text)
        if clause is not None and clause not in firsts:
            firsts[clause] = text

    hop.from_name = firsts.get("from")
    hop.by = firsts.get("by")
    hop.via = firsts.get("via")
    hop.id = firsts.get("id")
    hop.for_ = firsts.get("for")
    if with_words:
        hop.protocol = with_words[0]
        hop.protocol_text = " ".join(with_words)

    if hop.from_name:
        if hop.from_name.startswith("["):
            hop.from_ip = clean_ip(hop.from_name)
        else:
            hop.from_ip = clean_ip(hop.from_name) if hop.from_name[:1].isdigit() else None
    _read_from_comments(hop, clause_comments.get("from", []))

    if hop.by:
        hop.by = hop.by.rstrip(".")
        hop.by_ip = clean_ip(hop.by)
    for text in clause_comments.get("by", []):
        bracket = _BRACKETED.search(text)
        ip = clean_ip(bracket.group(1)) if bracket else clean_ip(text)
        if ip:
            hop.by_ip = hop.by_ip or ip
        elif hop.software is None and "=" not in text:
            hop.software = text
    if hop.software is None:
        for text in clause_comments.get("with", []):
            if not text.lower().startswith(("envelope-from", "version=", "using ")):
                hop.software = text
                break

    if "from" not in seen and "by" not in seen:
        hop.parsed = False
        problems.insert(0, "comment-only stamp (no from/by clauses)" if hop.comments else "no from/by clauses")
    elif not hop.by:
        problems.insert(0, "no 'by' host")
    hop.reason = "; ".join(problems) or None
    return hop


def parse_chain(values: list[str]) -> list[Hop]:
    """Received values top (newest) first -> hops with their index."""
    return [parse_received(value, index) for index, value in enumerate(values)]
