#!/usr/bin/env python3
"""Writes postfix-spambots.log: a small Postfix 3.7 log with three planted spambots.

Line shapes are those Debian's Postfix 3.7 writes with ``maillog_file`` (the same as
syslog's), as seen in the real-server tests and in the corpus (postfix-grok-patterns,
crowdsec-hub/postfix-*.log). Regenerate with ``python tests/data/hunt/build_postfix_fixture.py``;
the output is deterministic. What it contains (server mail.example.com, local domain
example.com, mynetworks 192.168.1.0/24):

- normal users: alice (2 messages), dave (1), an inbound message from a real MX;
  a scanner at 192.168.1.20 relaying its reports as scanner@example.com;
- carol@example.com: a stolen password, 6 messages x 20 recipients in 24 domains,
  from 4 networks;
- bob@example.com: 8 failed AUTH from 203.0.113.50, then a login from there, then spam;
- 192.168.1.77: an infected PC in mynetworks relaying spam with invented senders,
  HELO DESKTOP-7Q3K2LP (logged in its reject lines);
- uid 33 (www-data): a web form sending 3 messages x 25 remote recipients (below the line).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

OUT = Path(__file__).with_name("postfix-spambots.log")
HOST = "mail"
START = dt.datetime(2026, 11, 20, 9, 0, 0)


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[dt.datetime, int, str]] = []
        self.seq = 0
        self.qseq = 0x3A0000
        self.pid = 2000

    def emit(self, t: dt.datetime, text: str) -> None:
        self.seq += 1
        self.lines.append((t, self.seq, f"{t:%b} {t.day:2d} {t:%H:%M:%S} {HOST} {text}"))

    def qid(self) -> str:
        self.qseq += 0x1F3
        return f"{self.qseq:X}C{self.qseq % 97:02d}F"

    def newpid(self) -> int:
        self.pid += 7
        return self.pid

    def deliver(self, t, qid, sender, rcpts, *, size=2048):
        self.emit(t, f"postfix/cleanup[310]: {qid}: message-id=<{qid.lower()}@{sender.split('@')[-1]}>")
        self.emit(t, f"postfix/qmgr[120]: {qid}: from=<{sender}>, size={size}, nrcpt={len(rcpts)} (queue active)")
        for i, rcpt in enumerate(rcpts):
            when = t + dt.timedelta(seconds=1 + i // 10)
            if rcpt.endswith("@example.com"):
                self.emit(when, f"postfix/virtual[330]: {qid}: to=<{rcpt}>, relay=virtual, delay=0.1, "
                                f"delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (delivered to maildir)")
            else:
                domain = rcpt.split("@")[1]
                self.emit(when, f"postfix/smtp[340]: {qid}: to=<{rcpt}>, relay=mx.{domain}[198.51.100.{7 + i % 50}]:25, "
                                f"delay=0.6, delays=0.1/0/0.3/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {i:04X}ABC)")
        self.emit(t + dt.timedelta(seconds=2 + len(rcpts) // 10), f"postfix/qmgr[120]: {qid}: removed")

    def submission(self, t, user, ip, messages):
        pid = self.newpid()
        svc = f"postfix/submission/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from unknown[{ip}]")
        self.emit(t, f"{svc}: Anonymous TLS connection established from unknown[{ip}]: TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)")
        n_rcpt = 0
        for sender, rcpts in messages:
            qid = self.qid()
            self.emit(t, f"{svc}: {qid}: client=unknown[{ip}], sasl_method=PLAIN, sasl_username={user}")
            self.deliver(t, qid, sender, rcpts)
            n_rcpt += len(rcpts)
            t += dt.timedelta(seconds=3)
        m = len(messages)
        self.emit(t, f"{svc}: disconnect from unknown[{ip}] ehlo=2 starttls=1 auth=1 mail={m} rcpt={n_rcpt} data={m} quit=1 commands={5 + 2 * m + n_rcpt}")

    def auth_failures(self, t, ip, tries):
        pid = self.newpid()
        svc = f"postfix/submission/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from unknown[{ip}]")
        for i in range(tries):
            self.emit(t + dt.timedelta(seconds=1 + 2 * i),
                      f"{svc}: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
        end = t + dt.timedelta(seconds=2 * tries + 1)
        self.emit(end, f"{svc}: lost connection after AUTH from unknown[{ip}]")
        self.emit(end, f"{svc}: disconnect from unknown[{ip}] ehlo=1 auth=0/{tries} commands=1/{tries + 1}")

    def relay(self, t, ip, sender, rcpts, *, helo=None, reject_to=None):
        pid = self.newpid()
        svc = f"postfix/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from unknown[{ip}]")
        if reject_to:
            self.emit(t, f"{svc}: NOQUEUE: reject: RCPT from unknown[{ip}]: 550 5.1.1 <{reject_to}>: Recipient address "
                         f"rejected: User unknown in virtual mailbox table; from=<{sender}> to=<{reject_to}> proto=ESMTP helo=<{helo}>")
        qid = self.qid()
        self.emit(t, f"{svc}: {qid}: client=unknown[{ip}]")
        self.deliver(t, qid, sender, rcpts)
        rej = 1 if reject_to else 0
        self.emit(t + dt.timedelta(seconds=1), f"{svc}: disconnect from unknown[{ip}] ehlo=1 mail=1 "
                                              f"rcpt={len(rcpts)}/{len(rcpts) + rej} data=1 quit=1 commands={4 + len(rcpts)}/{4 + len(rcpts) + rej}")

    def inbound(self, t, ip, name, sender, rcpt):
        pid = self.newpid()
        svc = f"postfix/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from {name}[{ip}]")
        qid = self.qid()
        self.emit(t, f"{svc}: {qid}: client={name}[{ip}]")
        self.deliver(t, qid, sender, [rcpt])
        self.emit(t + dt.timedelta(seconds=1), f"{svc}: disconnect from {name}[{ip}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")

    def pickup(self, t, uid, user, rcpts):
        qid = self.qid()
        self.emit(t, f"postfix/pickup[290]: {qid}: uid={uid} from=<{user}>")
        self.deliver(t, qid, f"{user}@mail.example.com", rcpts)


def build() -> list[str]:
    log = Log()
    at = lambda minutes: START + dt.timedelta(minutes=minutes)  # noqa: E731
    # Normal traffic.
    log.submission(at(0), "alice@example.com", "192.0.2.10",
                   [("alice@example.com", ["bob@example.com"]), ("alice@example.com", ["friend@remote.test"])])
    log.submission(at(90), "dave@example.com", "192.0.2.44", [("dave@example.com", ["pat@partner.test"])])
    log.inbound(at(5), "198.51.100.20", "mx.remote.test", "friend@remote.test", "alice@example.com")
    log.relay(at(20), "192.168.1.20", "scanner@example.com", ["reports@partner.test"])
    log.relay(at(140), "192.168.1.20", "scanner@example.com", ["reports@partner.test"])
    # carol: a stolen password used from four networks.
    ips = ["198.18.7.21", "100.64.9.33", "203.0.113.201", "192.0.2.150"]
    for i in range(6):
        rcpts = [f"user{i * 20 + j}@d{(i * 20 + j) % 24}.test" for j in range(20)]
        log.submission(at(30 + i), "carol@example.com", ips[i % 4], [("carol@example.com", rcpts)])
    # bob: password guessed from 203.0.113.50, then spam.
    for k in range(4):
        log.auth_failures(at(60 + k), "203.0.113.50", 2)
    log.submission(at(65), "bob@example.com", "203.0.113.50",
                   [("bob@example.com", [f"victim{j}@v{j % 9}.test" for j in range(30)])])
    # The infected PC in mynetworks.
    for i in range(10):
        log.relay(at(100 + i), "192.168.1.77", f"promo{i}@deals{i}.test",
                  [f"target{i * 4 + j}@t{j}.test" for j in range(4)],
                  helo="DESKTOP-7Q3K2LP", reject_to="nobody@example.com" if i < 4 else None)
    # A web form as www-data (uid 33).
    for i in range(3):
        log.pickup(at(120 + i), 33, "www-data", [f"lead{i * 25 + j}@w{j % 5}.test" for j in range(25)])
    log.lines.sort()
    return [text for _, _, text in log.lines]


if __name__ == "__main__":
    OUT.write_text("\n".join(build()) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
