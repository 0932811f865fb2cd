"""Group `LogEvent`s into `Session`s and `Transaction`s, for every dialect, incrementally.

`SessionAssembler.feed(event)` returns the sessions that this event completed; `flush()` returns
the rest. ``hunt --follow`` feeds a live log through it; ``logs find`` feeds the neighbourhood of
a hit; the index feeds whole files.

Postfix: the smtpd line key ``host/service[pid]`` holds the connection from ``connect`` to
``disconnect``. A ``connect`` on a key that is still open means the pid was reused without a
logged disconnect (rotation, lost lines): the old session is closed with a defect rather than
merged. Queue-id lines follow the queue id: ``client=`` (smtpd) creates the transaction,
``cleanup message-id=``, ``qmgr from=``, the delivery agents' ``to= status=`` and ``removed``
complete it. A session is complete when its connection ended and every queued message left the
queue, or `linger` (log time) after its end, for deferred mail. postscreen sessions
(``CONNECT``...``PASS``) are adopted by the next smtpd session from the same address.
Exim: arrivals carry the client ``ip:port``, so rejections and authenticator failures of the
same connection join the message's session; without connection logging a session ends after
`idle_gap` of log time. MDaemon: ``Session N`` / ``Accepting SMTP connection`` start a session,
``SMTP session successful|terminated`` or a dashes line end it.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from mailwarden.logs.model import EventKind, LogEvent, LogLine, Recipient, Session, Transaction

DEFAULT_LINGER = dt.timedelta(minutes=30)
DEFAULT_IDLE_GAP = dt.timedelta(minutes=10)
POSTSCREEN_HANDOFF = dt.timedelta(seconds=120)
RETIRED_QIDS = 50_000
PENDING_EXTRAS = 10_000
_SWEEP_EVERY = 2_000


def _to_float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _to_int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _comparable(ts: dt.datetime) -> dt.datetime:
    """Naive and aware stamps in one run (mixed files) compare as naive UTC-less wall time."""
    return ts.replace(tzinfo=None) if ts.tzinfo is not None else ts


def _placeholder(txn: Transaction) -> bool:
    """A transaction that holds only per-connection extras (no message yet)."""
    return (txn.queue_id is None and txn.message_id is None and txn.sender is None
            and not txn.recipients and txn.reject_reason is None and not txn.accepted)


class _Open:
    """Book-keeping for one session still being assembled."""

    __slots__ = ("session", "ended", "last_ts", "txns_open", "key")

    def __init__(self, session: Session, key: str | None) -> None:
        self.session = session
        self.ended = False
        self.last_ts: dt.datetime | None = None
        self.txns_open: set[int] = set()
        self.key = key


class SessionAssembler:
    """Incremental grouping of events into sessions (see the module docstring)."""

    def __init__(self, *, linger: dt.timedelta = DEFAULT_LINGER,
                 idle_gap: dt.timedelta = DEFAULT_IDLE_GAP,
                 on_unparsed: Callable[[LogLine], None] | None = None) -> None:
        self.linger = linger
        self.idle_gap = idle_gap
        self.on_unparsed = on_unparsed
        self.unparsed = 0
        self.events = 0
        self._by_key: dict[str, _Open] = {}
        self._by_qid: dict[str, tuple[_Open, Transaction]] = {}
        self._by_msgid: dict[str, tuple[_Open, Transaction]] = {}
        self._by_ip: dict[str, _Open] = {}
        self._active: dict[int, _Open] = {}      # id(session) -> state, every unfinished session
        self._handoff: dict[str, _Open] = {}     # postscreen sessions waiting for smtpd (by ip)
        self._retired: OrderedDict[str, tuple[Session, Transaction]] = OrderedDict()
        self._pending: OrderedDict[str, list[LogEvent]] = OrderedDict()  # extras by Message-ID
        self._now: dt.datetime | None = None
        self._since_sweep = 0

    # -- public -------------------------------------------------------------------------

    def feed(self, event: LogEvent) -> list[Session]:
        """Take one event; return the sessions it completed (usually none)."""
        self.events += 1
        if event.kind is EventKind.UNPARSED:
            self.unparsed += 1
            if self.on_unparsed is not None:
                self.on_unparsed(event.line)
            return []
        if event.kind is EventKind.BANNER and not event.fields.get("separator"):
            return []
        done: list[Session] = []
        if event.ts is not None:
            now = _comparable(event.ts)
            if self._now is None or now > self._now:
                self._now = now
        if event.dialect == "mdaemon":
            self._mdaemon(event, done)
        elif event.dialect == "exim":
            self._exim(event, done)
        else:
            self._postfix(event, done)
        self._since_sweep += 1
        if self._since_sweep >= _SWEEP_EVERY:
            self._since_sweep = 0
            self._sweep(done)
        return done

    def flush(self) -> list[Session]:
        """Everything still open, completed as it stands (end of input)."""
        done: list[Session] = []
        for state in list(self._handoff.values()):
            self._emit(state, done)
        self._handoff.clear()
        for state in list(self._active.values()):
            if not state.ended and state.session.dialect == "postfix" and state.key \
                    and "postscreen" not in state.key:
                state.session.defects.append("connection end not in the log")
            self._emit(state, done)
        done.sort(key=lambda s: (s.source, s.lines[0].lineno if s.lines else 0))
        return done

    # -- common helpers -----------------------------------------------------------------

    def _new(self, event: LogEvent, key: str | None, kind: str = "smtp") -> _Open:
        session = Session(dialect=event.dialect, session_id=f"{event.dialect}:{event.line.source}:"
                          f"{event.line.lineno}", source=event.line.source, kind=kind,
                          host=event.host, service=event.service)
        state = _Open(session, key)
        self._active[id(session)] = state
        if key is not None:
            self._by_key[key] = state
        return state

    def _add_line(self, state: _Open, event: LogEvent, txn: Transaction | None = None) -> None:
        session = state.session
        session.lines.append(event.line)
        if txn is not None:
            txn.lines.append(event.line)
            if event.ts is not None:
                txn.start = txn.start or event.ts
                txn.end = event.ts
        if event.ts is not None:
            if session.start is None:
                session.start = event.ts
            session.end = event.ts
            if event.ts.tzinfo is not None:
                session.ts_is_local = False
            state.last_ts = _comparable(event.ts)

    def _txn(self, state: _Open, queue_id: str | None) -> Transaction:
        txns = state.session.transactions
        if txns and _placeholder(txns[-1]):
            # DNSBL / SPF answers logged before the message got its queue id belong to it
            txn = txns[-1]
            txn.queue_id = queue_id
        else:
            txn = Transaction(queue_id=queue_id)
            txns.append(txn)
        if queue_id:
            self._by_qid[queue_id] = (state, txn)
            state.txns_open.add(id(txn))
        return txn

    def _emit(self, state: _Open, done: list[Session]) -> None:
        session = state.session
        if self._active.pop(id(session), None) is None:
            return
        if state.key is not None and self._by_key.get(state.key) is state:
            del self._by_key[state.key]
        ip = session.client_ip
        if ip and self._by_ip.get(ip) is state:
            del self._by_ip[ip]
        for txn in session.transactions:
            if txn.queue_id and self._by_qid.get(txn.queue_id, (None,))[0] is state:
                del self._by_qid[txn.queue_id]
                self._retired[txn.queue_id] = (session, txn)
            if txn.message_id:
                self._by_msgid.pop(txn.message_id.lower(), None)
        while len(self._retired) > RETIRED_QIDS:
            self._retired.popitem(last=False)
        done.append(session)

    def _maybe_complete(self, state: _Open, done: list[Session]) -> None:
        if state.ended and not state.txns_open:
            self._emit(state, done)

    def _sweep(self, done: list[Session]) -> None:
        """Complete sessions that log time has left behind (deferred mail, no disconnect)."""
        if self._now is None:
            return
        for ip, state in list(self._handoff.items()):
            if state.last_ts is not None and self._now - state.last_ts > POSTSCREEN_HANDOFF:
                del self._handoff[ip]
                self._emit(state, done)
        for state in list(self._active.values()):
            if state.last_ts is None:
                continue
            idle = self._now - state.last_ts
            if state.ended and idle > self.linger:
                self._emit(state, done)
            elif not state.ended and state.session.dialect == "exim" and idle > self.idle_gap \
                    and not state.txns_open:
                state.ended = True
                self._emit(state, done)

    def _set_client(self, session: Session, fields: dict[str, str]) -> None:
        ip = fields.get("client_ip")
        if ip and ip != "unknown" and not session.client_ip:
            session.client_ip = ip
        if "client_port" in fields and session.client_port is None:
            session.client_port = _to_int(fields["client_port"])
        name = fields.get("client_name")
        if name and name != "unknown" and not session.client_name:
            session.client_name = name
        if fields.get("helo") and not session.helo:
            session.helo = fields["helo"]
        if fields.get("server_ip") and not session.server_ip:
            session.server_ip = fields["server_ip"]
        if fields.get("server_port") and session.server_port is None:
            session.server_port = _to_int(fields["server_port"])

    def _apply_txn_fields(self, state: _Open, txn: Transaction, event: LogEvent) -> None:
        """Fields that describe one message, whatever the dialect."""
        fields = event.fields
        kind = event.kind
        if fields.get("message_id") is not None and kind in (EventKind.MESSAGE_ID, EventKind.QUEUED,
                                                              EventKind.ACCEPTED):
            txn.message_id = fields["message_id"]
            if txn.message_id:
                self._by_msgid[txn.message_id.lower()] = (state, txn)
                for extra in self._pending.pop(txn.message_id.lower(), []):
                    self._add_line(state, extra, txn)
                    self._apply_txn_fields(state, txn, extra)
        if "subject" in fields:
            txn.subject = fields["subject"]
        if kind is EventKind.SPAM_SCORE:
            txn.spam.append(fields.get("spam") or event.line.text)
            score, threshold = _to_float(fields.get("spam_score")), _to_float(fields.get("spam_threshold"))
            if score is not None:
                txn.spam_score = score
            if threshold is not None:
                txn.spam_threshold = threshold
        elif kind is EventKind.DNSBL:
            txn.dnsbl.append(event.line.text)
        elif kind in (EventKind.SPF, EventKind.DKIM, EventKind.DMARC):
            txn.auth_results.append(event.line.text)
        elif kind is EventKind.DELIVERY:
            txn.accepted = True
            txn.recipients.append(Recipient(
                address=fields.get("to", ""), status=fields.get("status"),
                relay=fields.get("relay") or fields.get("T") or fields.get("R"),
                dsn=fields.get("dsn"), detail=fields.get("detail"), ts=event.ts,
                orig_address=fields.get("orig_to")))
        elif kind is EventKind.REJECT:
            reason = fields.get("reason") or fields.get("detail") or event.line.text
            txn.reject_reason = reason
            if fields.get("to"):
                txn.recipients.append(Recipient(address=fields["to"], status="rejected",
                                                dsn=fields.get("dsn"), detail=reason, ts=event.ts))
            if fields.get("dnsbl"):
                txn.dnsbl.append(event.line.text)
            if fields.get("from") is not None and txn.sender is None:
                txn.sender = fields["from"]
        elif kind is EventKind.REMOVED:
            state.txns_open.discard(id(txn))

    # -- Postfix -------------------------------------------------------------------------

    def _postfix(self, event: LogEvent, done: list[Session]) -> None:
        key = event.session_key
        fields = event.fields
        if key is not None:
            state = self._postfix_session_event(event, key, done)
            if state is None:
                return
            if event.queue_id:
                pair = self._by_qid.get(event.queue_id)
                if pair is None or pair[0] is not state:
                    txn = self._txn(state, event.queue_id)
                else:
                    txn = pair[1]
                self._add_line(state, event, txn)
                self._postfix_txn(state, txn, event)
            elif event.kind is EventKind.REJECT and fields.get("stage") != "CONNECT":
                txn = self._noqueue_txn(state, fields)
                self._add_line(state, event, txn)
                self._apply_txn_fields(state, txn, event)
            else:
                self._add_line(state, event)
                if event.kind is EventKind.DNSBL:
                    # postscreen "DNSBL rank N": keep it beside the dnsblog answers
                    self._session_extra(state, event)
            if event.kind is EventKind.DISCONNECT:
                state.ended = True
                if fields.get("commands"):
                    state.session.commands = fields["commands"]
                state.session.outcome = state.session.outcome or "disconnect"
                if "postscreen" in key:
                    self._emit(state, done)
                else:
                    # the key is free for the next connection; queued mail is followed by queue id
                    if self._by_key.get(key) is state:
                        del self._by_key[key]
                    self._maybe_complete(state, done)
            elif fields.get("access") in ("PASS NEW", "PASS OLD", "WHITELISTED", "ALLOWLISTED"):
                # postscreen hands the connection to smtpd: wait for its "connect from"
                state.ended = True
                if state.session.client_ip:
                    self._by_key.pop(key, None)
                    self._handoff[state.session.client_ip] = state
            return
        if event.queue_id:
            pair = self._by_qid.get(event.queue_id)
            if pair is None:
                retired = self._retired.get(event.queue_id)
                if retired is not None:
                    # a late line (deferred mail retried after the session was handed out)
                    session, txn = retired
                    session.lines.append(event.line)
                    txn.lines.append(event.line)
                    dummy = _Open(session, None)
                    self._apply_txn_fields(dummy, txn, event)
                    return
                kind = "local" if event.kind is EventKind.QUEUED else "queue"
                state = self._new(event, None, kind)
                state.ended = True
                if kind == "queue":
                    state.session.defects.append(
                        "queue id seen without its smtpd/pickup lines (earlier in another file?)")
                txn = self._txn(state, event.queue_id)
            else:
                state, txn = pair
            self._add_line(state, event, txn)
            self._postfix_txn(state, txn, event)
            self._maybe_complete(state, done)
            return
        # No session key, no queue id: per-IP extras and server-wide lines.
        ip = fields.get("client_ip")
        if event.kind in (EventKind.DNSBL, EventKind.SPF) and ip:
            state = self._by_ip.get(ip)
            if state is not None and not state.ended:
                self._add_line(state, event)
                self._session_extra(state, event)
                return
        message_id = fields.get("message_id")
        if message_id and event.kind is EventKind.SPAM_SCORE:
            pair = self._by_msgid.get(message_id.lower())
            if pair is not None:
                self._add_line(pair[0], event, pair[1])
                self._apply_txn_fields(pair[0], pair[1], event)
            else:
                self._pending.setdefault(message_id.lower(), []).append(event)
                while len(self._pending) > PENDING_EXTRAS:
                    self._pending.popitem(last=False)
            return
        # anvil, master, foreign programs: they belong to no session; not "unparsed" either.

    def _session_extra(self, state: _Open, event: LogEvent) -> None:
        """DNSBL / SPF answers logged per connection: they go with the next (or current) message."""
        session = state.session
        txns = session.transactions
        if not txns or (txns[-1].queue_id is not None and id(txns[-1]) not in state.txns_open) \
                or txns[-1].reject_reason is not None:
            txns.append(Transaction())
        self._apply_txn_fields(state, txns[-1], event)

    def _postfix_session_event(self, event: LogEvent, key: str, done: list[Session]) -> _Open | None:
        fields = event.fields
        state = self._by_key.get(key)
        if event.kind is EventKind.CONNECT:
            if state is not None and not state.ended:
                state.session.defects.append(
                    "pid reused: a new connection started before this one's disconnect was logged")
                state.ended = True
                self._maybe_complete(state, done)
                if state.session is not None and id(state.session) in self._active:
                    # still waiting for its queue ids; it no longer owns the key
                    self._by_key.pop(key, None)
            state = self._new(event, key)
            self._set_client(state.session, fields)
            ip = state.session.client_ip
            if ip:
                self._by_ip[ip] = state
                adopted = self._handoff.pop(ip, None) if "postscreen" not in key else None
                if adopted is not None:
                    self._adopt(state, adopted)
            return state
        if state is None:
            state = self._new(event, key)
            state.session.defects.append("connection start not in the log")
        self._set_client(state.session, fields)
        if state.session.client_ip and state.session.client_ip not in self._by_ip:
            self._by_ip[state.session.client_ip] = state
        kind = event.kind
        session = state.session
        if kind is EventKind.TLS:
            session.tls = True
            session.tls_info = fields.get("tls") or session.tls_info
        elif kind is EventKind.AUTH_FAIL:
            session.auth_failures += 1
            if fields.get("sasl_username"):
                session.auth_failure_users.append(fields["sasl_username"])
        elif kind is EventKind.QUEUED and fields.get("sasl_username"):
            session.auth_user = fields["sasl_username"]
            session.auth_method = fields.get("sasl_method")
        elif kind is EventKind.OTHER and fields.get("event") in ("lost connection", "timeout",
                                                                 "too many errors"):
            session.outcome = f"{fields['event']} after {fields.get('stage', '?')}"
        return state

    def _adopt(self, state: _Open, postscreen: _Open) -> None:
        """Put a postscreen pre-session (CONNECT, DNSBL, PASS) in front of its smtpd session."""
        self._active.pop(id(postscreen.session), None)
        session = state.session
        session.lines[:0] = postscreen.session.lines
        session.start = postscreen.session.start or session.start
        session.server_ip = session.server_ip or postscreen.session.server_ip
        session.server_port = session.server_port or postscreen.session.server_port
        carried = Transaction()
        for txn in postscreen.session.transactions:
            carried.dnsbl.extend(txn.dnsbl)
            carried.auth_results.extend(txn.auth_results)
        if carried.dnsbl or carried.auth_results:
            if session.transactions and _placeholder(session.transactions[-1]):
                session.transactions[-1].dnsbl[:0] = carried.dnsbl
                session.transactions[-1].auth_results[:0] = carried.auth_results
            else:
                session.transactions.append(carried)
        if session.client_port is None:
            session.client_port = postscreen.session.client_port

    def _noqueue_txn(self, state: _Open, fields: dict[str, str]) -> Transaction:
        txns = state.session.transactions
        if txns:
            last = txns[-1]
            if last.queue_id is None and not last.accepted and (
                    last.sender is None or last.sender == fields.get("from")):
                return last
        return self._txn(state, None)

    def _postfix_txn(self, state: _Open, txn: Transaction, event: LogEvent) -> None:
        fields = event.fields
        kind = event.kind
        if kind is EventKind.MAIL_FROM:
            txn.sender = fields.get("from", txn.sender)
            txn.size = _to_int(fields.get("size")) or txn.size
            txn.accepted = True
        elif kind is EventKind.QUEUED and "uid" in fields:
            txn.sender = fields.get("from")
            state.session.local_user = f"uid={fields['uid']}"
        elif kind is EventKind.REJECT and event.service and event.service.endswith("cleanup"):
            state.txns_open.discard(id(txn))  # a cleanup/milter reject: the message never queued
        self._apply_txn_fields(state, txn, event)

    # -- Exim ----------------------------------------------------------------------------

    def _exim(self, event: LogEvent, done: list[Session]) -> None:
        fields = event.fields
        key = event.session_key
        if event.queue_id and event.kind is EventKind.QUEUED:
            state = self._by_key.get(key) if key else None
            if state is not None and (state.session.transactions and any(
                    t.accepted for t in state.session.transactions)):
                state = None  # one arrival per connection record; a new one starts a new session
            if state is None:
                state = self._new(event, key, "smtp" if fields.get("client_ip") else "local")
            self._set_client(state.session, fields)
            session = state.session
            if fields.get("auth_method"):
                session.auth_method = fields["auth_method"]
                if fields.get("auth_user"):
                    session.auth_user = fields["auth_user"]
            if fields.get("X"):
                session.tls, session.tls_info = True, fields["X"]
            if not fields.get("client_ip") and fields.get("U"):
                session.local_user = fields["U"]
            txn = self._txn(state, event.queue_id)
            txn.sender = fields.get("from")
            txn.size = _to_int(fields.get("S"))
            txn.subject = fields.get("T")
            txn.accepted = True
            for address in fields.get("for", "").split():
                txn.recipients.append(Recipient(address=address))
            self._add_line(state, event, txn)
            self._apply_txn_fields(state, txn, event)
            if key is not None and self._by_key.get(key) is state:
                del self._by_key[key]  # later lines of this message follow the message id
            state.ended = True
            return
        if event.queue_id:
            pair = self._by_qid.get(event.queue_id)
            if pair is None:
                state = self._new(event, None, "queue")
                state.ended = True
                state.session.defects.append("message id seen without its arrival line")
                self._set_client(state.session, fields)
                txn = self._txn(state, event.queue_id)
            else:
                state, txn = pair
            self._add_line(state, event, txn)
            if event.kind is EventKind.DELIVERY:
                self._exim_delivery(txn, event)
            else:
                self._apply_txn_fields(state, txn, event)
            self._maybe_complete(state, done)
            return
        if key is None:
            return  # queue runs, daemon start, expansion test output: server-wide lines
        state = self._by_key.get(key)
        if state is not None and state.last_ts is not None and event.ts is not None \
                and _comparable(event.ts) - state.last_ts > self.idle_gap:
            state.ended = True
            self._emit(state, done)
            state = None
        if event.kind is EventKind.CONNECT or state is None:
            if state is not None:
                state.ended = True
                self._maybe_complete(state, done)
                self._by_key.pop(key, None)
            state = self._new(event, key)
        session = state.session
        self._set_client(session, fields)
        if event.kind is EventKind.AUTH_FAIL:
            session.auth_failures += 1
            if fields.get("auth_user"):
                session.auth_failure_users.append(fields["auth_user"])
            self._add_line(state, event)
        elif event.kind is EventKind.REJECT:
            txn = self._noqueue_txn(state, fields)
            self._add_line(state, event, txn)
            self._apply_txn_fields(state, txn, event)
        else:
            self._add_line(state, event)
        if event.kind is EventKind.DISCONNECT:
            state.ended = True
            session.outcome = "disconnect"
            self._maybe_complete(state, done)

    def _exim_delivery(self, txn: Transaction, event: LogEvent) -> None:
        fields = event.fields
        address = fields.get("to", "")
        for recipient in txn.recipients:
            if recipient.address.lower() == address.lower() and recipient.status is None:
                recipient.status = fields.get("status")
                recipient.relay = fields.get("relay") or fields.get("T")
                recipient.detail = fields.get("detail")
                recipient.ts = event.ts
                recipient.orig_address = fields.get("orig_to")
                return
        txn.recipients.append(Recipient(address=address, status=fields.get("status"),
                                        relay=fields.get("relay") or fields.get("T"),
                                        detail=fields.get("detail"), ts=event.ts,
                                        orig_address=fields.get("orig_to")))

    # -- MDaemon -------------------------------------------------------------------------

    def _mdaemon(self, event: LogEvent, done: list[Session]) -> None:
        key = event.session_key or f"mdaemon:{event.line.source}"
        fields = event.fields
        state = self._by_key.get(key)
        if event.kind is EventKind.BANNER:  # a dashes separator ends the block
            if state is not None and len(state.session.lines) > 0:
                state.ended = True
                state.session.lines.append(event.line)
                self._emit(state, done)
            return
        starts = "session_number" in fields or (event.kind is EventKind.CONNECT and (
            state is None or state.session.client_ip is not None))
        if starts and state is not None:
            if state.session.outcome is None:
                state.session.defects.append("session end not logged")
            state.ended = True
            self._emit(state, done)
            state = None
        if state is None:
            routing = bool(fields.get("routing"))
            state = self._new(event, key, "routing" if routing else "smtp")
            if not starts and not routing:
                state.session.defects.append("session start not in the log")
        session = state.session
        self._set_client(session, fields)
        kind = event.kind
        txn = session.transactions[-1] if session.transactions else None
        if kind is EventKind.MAIL_FROM:
            txn = self._txn(state, None)
            txn.sender = fields.get("from")
        elif kind is EventKind.RCPT_TO:
            txn = txn or self._txn(state, None)
            txn.recipients.append(Recipient(address=fields.get("to", "")))
        elif kind is EventKind.ACCEPTED:
            txn = txn or self._txn(state, None)
            txn.accepted = True
            for recipient in txn.recipients:
                recipient.status = recipient.status or "accepted"
        elif kind is EventKind.AUTH_OK:
            if fields.get("auth_user"):
                session.auth_user = fields["auth_user"]
            session.auth_method = session.auth_method or "SMTP AUTH"
        elif kind is EventKind.PROTOCOL and fields.get("auth_method"):
            session.auth_method = fields["auth_method"]
        elif kind is EventKind.AUTH_FAIL:
            session.auth_failures += 1
        elif kind is EventKind.TLS:
            session.tls, session.tls_info = True, fields.get("tls")
        elif kind is EventKind.OTHER and "trusted" in fields:
            session.trusted = True
        if kind in (EventKind.SPAM_SCORE, EventKind.DNSBL, EventKind.SPF, EventKind.DKIM,
                    EventKind.DMARC, EventKind.ACCEPTED, EventKind.REJECT, EventKind.MESSAGE_ID) \
                and txn is None or fields.get("routing"):
            # (a routing record in the "all" log starts a message of its own)
            txn = self._txn(state, None)
        if event.queue_id and txn is not None and txn.queue_id is None:
            txn.queue_id = event.queue_id
        self._add_line(state, event, txn)
        if txn is not None and kind is not EventKind.RCPT_TO:
            self._apply_txn_fields(state, txn, event)
        if kind is EventKind.REJECT and txn is not None and txn.recipients and \
                fields.get("reason", "").startswith("5"):
            txn.recipients[-1].status = txn.recipients[-1].status or "rejected"
        if kind is EventKind.DISCONNECT:
            session.outcome = fields.get("outcome")
            state.ended = True
            self._emit(state, done)


def assemble(events: Iterable[LogEvent], **options) -> Iterator[Session]:
    """All sessions of an event stream, in completion order, then the rest at the end."""
    assembler = SessionAssembler(**options)
    for event in events:
        yield from assembler.feed(event)
    yield from assembler.flush()
