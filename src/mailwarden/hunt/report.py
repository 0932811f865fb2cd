"""``mailwarden report``: one self-contained HTML file (inline CSS, inline SVG, no fetches).

Two steps: ``collect`` runs the SQL (timelines and top sessions per suspect) over
the hw_* tables; ``render`` turns the collected data into HTML and is pure. Every
value that came from mail or logs goes through ``escape_html``; the page carries a
Content-Security-Policy that allows no script at all and only our own stylesheet
(by hash), as a second line should an escape ever be missed.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field

import duckdb

from mailwarden import __version__
from mailwarden.errors import MailwardenError
from mailwarden.hunt.model import ACCOUNT, CLIENT_IP, HuntResult, Suspect
from mailwarden.output import escape_html as esc

MAX_SUSPECTS_WITH_DETAIL = 20
MAX_BINS = 168          # one week of hours; longer ranges are binned by several hours
SESSION_LINES = 40      # raw lines shown per top session


@dataclass
class Series:
    """One timeline row: a label and a count per bin."""

    label: str
    counts: list[int]


@dataclass
class Timeline:
    start: dt.datetime
    bin_hours: int
    series: list[Series]


@dataclass
class SessionView:
    session_id: int
    start: dt.datetime | None
    client_ip: str | None
    helo: str | None
    auth_user: str | None
    senders: list[str]
    recipients: int
    outcome: str | None
    lines: list[str] = field(default_factory=list)


@dataclass
class SuspectDetail:
    suspect: Suspect
    timeline: Timeline | None
    sessions: list[SessionView]


@dataclass
class ReportData:
    result: HuntResult
    details: list[SuspectDetail]
    generated: dt.datetime


# -- collecting --------------------------------------------------------------------

def _filters(s: Suspect) -> tuple[str, str, str, str, str]:
    """(messages where, auth failures where, third series SQL, its label, sessions where)."""
    if s.kind == ACCOUNT:
        return ("auth_user = $name",
                "NOT ok AND (user = $name OR (user IS NULL AND client_ip IN "
                "(SELECT client_ip FROM hw_auth WHERE ok AND user = $name)))",
                "SELECT ts, client_ip AS v FROM hw_msgs WHERE auth_user = $name "
                "UNION ALL SELECT ts, client_ip FROM hw_auth WHERE ok AND user = $name",
                "distinct client IPs", "s.auth_user = $name")
    if s.kind == CLIENT_IP:
        return ("client_ip = $name", "NOT ok AND client_ip = $name",
                "SELECT ts, user AS v FROM hw_auth WHERE client_ip = $name AND user IS NOT NULL",
                "distinct AUTH users", "s.client_ip = $name")
    return ("kind = 'local' AND coalesce(local_user, '(unknown)') = $name", "FALSE",
            "SELECT ts, sender AS v FROM hw_msgs WHERE kind = 'local' "
            "AND coalesce(local_user, '(unknown)') = $name",
            "distinct senders", "s.kind = 'local' AND coalesce(s.local_user, '(unknown)') = $name")


def _timeline(con: duckdb.DuckDBPyConnection, s: Suspect) -> Timeline | None:
    if s.first_seen is None or s.last_seen is None:
        return None
    msgs, fails, third, label, _ = _filters(s)
    start = s.first_seen.replace(minute=0, second=0, microsecond=0)
    hours = int((s.last_seen - start).total_seconds() // 3600) + 1
    bin_hours = max(1, -(-hours // MAX_BINS))
    nbins = max(-(-hours // bin_hours), 24 if bin_hours == 1 else 1)  # short runs: show a day
    params = {"name": s.name, "start": start, "bh": bin_hours}
    bucket = "CAST(floor(epoch(ts - $start::TIMESTAMP) / 3600 / $bh) AS BIGINT)"

    def counts(sql: str) -> list[int]:
        out = [0] * nbins
        used = {k: v for k, v in params.items() if f"${k}" in sql}  # DuckDB rejects unused ones
        for b, n in con.execute(sql, used).fetchall():
            if b is not None and 0 <= b < nbins:
                out[b] = int(n)
        return out

    return Timeline(start, bin_hours, [
        Series("messages", counts(f"SELECT {bucket}, count(*) FROM hw_msgs WHERE {msgs} "
                                  f"AND ts IS NOT NULL GROUP BY 1")),
        Series("failed AUTH", counts(f"SELECT {bucket}, count(*) FROM hw_auth WHERE {fails} "
                                     f"AND ts IS NOT NULL GROUP BY 1")),
        Series(label, counts(f"SELECT {bucket}, count(DISTINCT v) FROM ({third}) "
                             f"WHERE ts IS NOT NULL GROUP BY 1")),
    ])


def _sessions(con: duckdb.DuckDBPyConnection, s: Suspect, limit: int) -> list[SessionView]:
    where = _filters(s)[4]
    rows = con.execute(f"""
        SELECT s.session_id, s.start_ts, s.client_ip, s.helo, s.auth_user,
               list(DISTINCT m.sender ORDER BY m.sender) FILTER (WHERE m.sender IS NOT NULL),
               coalesce(sum(m.n_rcpt), 0), any_value(x.outcome)
        FROM hw_sessions s LEFT JOIN hw_report_msgs m USING (session_id)
        LEFT JOIN sessions x USING (session_id)
        WHERE {where}
        GROUP BY ALL ORDER BY 7 DESC, s.start_ts LIMIT {int(limit)}
    """, {"name": s.name}).fetchall()
    return [SessionView(sid, start, ip, helo, user, list(senders or []), int(nrcpt), outcome)
            for sid, start, ip, helo, user, senders, nrcpt, outcome in rows]


def _fill_transcripts(con: duckdb.DuckDBPyConnection, views: list[SessionView]) -> None:
    """The first SESSION_LINES raw lines of every shown session (one query for the line numbers,
    one for the zstd blocks holding them: `linestore.line_texts`)."""
    from mailwarden.hunt.ingest import insert_rows
    from mailwarden.logs.linestore import line_texts

    by_id: dict[int, list[SessionView]] = {}
    for v in views:  # one session can be shown under two suspects (its account and its IP)
        by_id.setdefault(v.session_id, []).append(v)
    if not by_id:
        return
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE hw_report_ids (session_id BIGINT)")
        insert_rows(con, "hw_report_ids (session_id)", [(i,) for i in by_id])
        rows = con.execute(f"""
            SELECT session_id, source_id, lineno FROM (
                SELECT session_id, source_id, lineno,
                       row_number() OVER (PARTITION BY session_id ORDER BY source_id, lineno) AS n
                FROM session_lines WHERE session_id IN (SELECT session_id FROM hw_report_ids))
            WHERE n <= {SESSION_LINES} ORDER BY session_id, source_id, lineno""").fetchall()
        texts = line_texts(con, ((source_id, lineno) for _sid, source_id, lineno in rows))
    except duckdb.Error:  # an index without transcripts: the table rows still say enough
        return
    for session_id, source_id, lineno in rows:
        text = texts.get((source_id, lineno))
        if text is None:
            continue
        for v in by_id[session_id]:
            v.lines.append(text)


def collect(con: duckdb.DuckDBPyConnection, result: HuntResult, *, top_sessions: int = 5) -> ReportData:
    """Gather timelines and top sessions for the highest-ranked suspects."""
    try:
        # hw_msg_rcpt is a view (a join and an aggregate): materialise the columns the
        # per-suspect session queries need once, not once per suspect.
        con.execute("CREATE OR REPLACE TEMP TABLE hw_report_msgs AS "
                    "SELECT session_id, sender, n_rcpt FROM hw_msg_rcpt")
        details = [SuspectDetail(s, _timeline(con, s), _sessions(con, s, top_sessions))
                   for s in result.suspects[:MAX_SUSPECTS_WITH_DETAIL]]
        _fill_transcripts(con, [v for d in details for v in d.sessions])
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MailwardenError(f"report query failed: {first}") from exc
    return ReportData(result, details, dt.datetime.now(dt.UTC).replace(microsecond=0))


# -- rendering ---------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em;margin:1.4em 0 .4em}
table{border-collapse:collapse;width:100%;margin:.5em 0} th,td{border:1px solid #ddd;padding:4px 6px;
text-align:left;vertical-align:top} th{background:#f4f4f4}
.alarm{color:#b00020;font-weight:bold} .watch{color:#8a6d00} .muted{color:#666}
.num{text-align:right;font-variant-numeric:tabular-nums} .ts{white-space:nowrap}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:.5em;overflow:auto;font-size:12px;
white-space:pre-wrap;word-break:break-all}
.action{background:#fff4e5;border-left:4px solid #f0a000;padding:.4em .6em}
svg text{font:11px system-ui,sans-serif;fill:#444}
""".strip()

COLOURS = ("#1f77b4", "#d62728", "#2ca02c")


def csp(css: str = CSS) -> str:
    """No script, nothing fetched; only our own stylesheet, pinned by its hash."""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return ("default-src 'none'; script-src 'none'; object-src 'none'; base-uri 'none'; "
            f"form-action 'none'; img-src data:; style-src 'sha256-{digest}'")


def _fmt_ts(value) -> str:
    return "" if value is None else esc(value.isoformat(sep=" ") if hasattr(value, "isoformat") else value)


def _svg(t: Timeline) -> str:
    width, row_h, left = 760, 46, 130
    n = max(1, len(t.series[0].counts))
    bar_w = (width - left - 10) / n
    height = row_h * len(t.series) + 22
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img">']
    for i, series in enumerate(t.series):
        top = i * row_h + 4
        peak = max(series.counts) or 1
        out.append(f'<text x="0" y="{top + 20}">{esc(series.label)}</text>'
                   f'<text x="0" y="{top + 34}" fill="#888">max {max(series.counts)}</text>')
        out.append(f'<line x1="{left}" y1="{top + 38}" x2="{width - 10}" y2="{top + 38}" stroke="#ccc"/>')
        for j, count in enumerate(series.counts):
            if count:
                h = max(1.0, 34 * count / peak)
                out.append(f'<rect x="{left + j * bar_w:.1f}" y="{top + 38 - h:.1f}" '
                           f'width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" fill="{COLOURS[i % 3]}">'
                           f'<title>{count}</title></rect>')
    end = t.start + dt.timedelta(hours=t.bin_hours * n)
    y = row_h * len(t.series) + 16
    out.append(f'<text x="{left}" y="{y}">{_fmt_ts(t.start)}</text>'
               f'<text x="{width - 10}" y="{y}" text-anchor="end">{_fmt_ts(end)}</text>')
    out.append("</svg>")
    return "".join(out)


def _suspect_row(rank: int, s: Suspect) -> str:
    cls = "alarm" if s.alarm else "watch"
    signals = "<br>".join(f"<b>{esc(e.signal)}</b> +{e.points:.1f}: {esc(e.text)}" for e in s.evidence)
    return (f"<tr><td class=num>{rank}</td><td>{esc(s.kind)}</td>"
            f'<td><a href="#s{rank}">{esc(s.name)}</a></td>'
            f"<td class='num {cls}'>{s.score:.1f}</td><td>{signals}</td>"
            f"<td class=ts>{_fmt_ts(s.first_seen)}<br>{_fmt_ts(s.last_seen)}</td>"
            f"<td>{esc(s.next_action)}</td></tr>")


def _detail(rank: int, d: SuspectDetail) -> str:
    s = d.suspect
    parts = [f'<h3 id="s{rank}">{rank}. {esc(s.kind)} {esc(s.name)} '
             f'<span class="{"alarm" if s.alarm else "watch"}">score {s.score:.1f}</span></h3>',
             f'<p class="action">{esc(s.next_action)}</p>']
    if d.timeline:
        per = "hour" if d.timeline.bin_hours == 1 else f"{d.timeline.bin_hours} hours"
        parts.append(f'<p class="muted">per {esc(per)}</p>' + _svg(d.timeline))
    if d.sessions:
        parts.append("<table><tr><th>start</th><th>client</th><th>HELO</th><th>AUTH user</th>"
                     "<th>senders</th><th class=num>recipients</th><th>outcome</th></tr>")
        for v in d.sessions:
            parts.append(
                f"<tr><td class=ts>{_fmt_ts(v.start)}</td><td>{esc(v.client_ip or '')}</td>"
                f"<td>{esc(v.helo or '')}</td><td>{esc(v.auth_user or '')}</td>"
                f"<td>{'<br>'.join(esc(x) for x in v.senders[:5])}</td>"
                f"<td class=num>{v.recipients}</td><td>{esc(v.outcome or '')}</td></tr>")
            if v.lines:
                parts.append(f"<tr><td colspan=7><pre>{esc(chr(10).join(v.lines))}</pre></td></tr>")
        parts.append("</table>")
    return "\n".join(parts)


def render(data: ReportData) -> str:
    """The whole page as one string."""
    r = data.result
    over = len(r.over_alarm)
    head = (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f'<meta http-equiv="Content-Security-Policy" content="{csp()}">'
            f'<meta name="referrer" content="no-referrer">'
            f"<title>mailwarden hunt report</title><style>{CSS}</style></head><body>")
    summary = (f"<h1>mailwarden hunt report</h1>"
               f'<p class="muted">generated {_fmt_ts(data.generated)} UTC by mailwarden {esc(__version__)}'
               f" from {esc(', '.join(r.inputs) or r.db or '')}</p>"
               f"<p>{r.sessions} sessions, {r.messages} accepted messages, "
               f"{_fmt_ts(r.first_ts)} to {_fmt_ts(r.last_ts)} (server time). "
               f"<span class={'alarm' if over else 'muted'}>{over} suspect(s) over the alarm line "
               f"({r.alarm:g})</span>, {len(r.suspects)} with any signal.</p>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in r.notes)
    body = [head, summary]
    if notes:
        body.append(f"<ul class=muted>{notes}</ul>")
    body.append("<h2>Suspects</h2>")
    if r.suspects:
        body.append("<table><tr><th>#</th><th>kind</th><th>name</th><th>score</th><th>signals</th>"
                    "<th>first / last seen</th><th>next action</th></tr>")
        body += [_suspect_row(i, s) for i, s in enumerate(r.suspects, 1)]
        body.append("</table>")
    else:
        body.append("<p>No account, client or local user shows any spambot signal.</p>")
    if data.details:
        body.append("<h2>Timelines and top sessions</h2>")
        body += [_detail(i, d) for i, d in enumerate(data.details, 1)]
    body.append("</body></html>\n")
    return "\n".join(body)
