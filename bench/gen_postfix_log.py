#!/usr/bin/env python3
"""Write a large, realistic Postfix 3.x syslog file for the benchmarks (and for hunt).

Line shapes are those of real Postfix 3.x logs (the postfix-grok-patterns test cases,
crowdsec-hub and fail2ban samples in ../shared/corpus): postscreen in front of smtpd on
port 25, submission with ``sasl_method``/``sasl_username``, mynetworks relays, NOQUEUE
rejects (DNSBL, relay denied, unknown user), SASL failures, cleanup ``message-id=``, qmgr,
smtp/lmtp/local deliveries (sent/deferred/bounced), bounce notifications, ``removed``.
Many sessions run at once and are interleaved; smtpd pids come from a small pool, so a
pid is reused by later sessions (as on a real server).

Three spambot patterns are embedded for ``mailwarden hunt`` and their names are printed
on stderr:

* a compromised account bursting to many recipients from many new IPs,
* a machine inside mynetworks relaying unauthenticated spam (an infected PC),
* a password guessed by brute force (many AUTH failures, then success, then spam).

Usage::

    python bench/gen_postfix_log.py --seed 1 --size 1G --out bench/out/postfix-1g.log
    python bench/gen_postfix_log.py --seed 1 --lines 100000 --out bench/out/small.log

Never commit the output: ``bench/out/`` is git-ignored.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
HOST = "mx1"
SERVER_IP = "203.0.113.25"
LOCAL_DOMAINS = ("example.com", "example.org")
LOCAL_USERS = tuple(
    f"{n}@{d}" for d in LOCAL_DOMAINS
    for n in ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
              "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter",
              "info", "sales", "support", "billing", "office", "hr", "it")
)
REMOTE_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "gmx.de", "web.de", "orange.fr",
                  "libero.it", "mail.ru", "qq.com", "163.com", "comcast.net", "aol.com",
                  "icloud.com", "proton.me", "t-online.de", "free.fr", "example.net")
REMOTE_MX = {d: f"mx{n % 3 + 1}.{d}" for n, d in enumerate(REMOTE_DOMAINS)}
MX_IPS = {mx: f"198.51.100.{n + 10}" for n, mx in enumerate(REMOTE_MX.values())}
RBLS = ("zen.spamhaus.org", "b.barracudacentral.org", "bl.spamcop.net")
SPAM_HELOS = ("User", "WIN-9QL4SDRB93L", "DESKTOP-7Q3K2LP", "ylmf-pc", "[192.168.1.2]", "localhost")
TLS_IN = ("TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 "
          "server-signature RSA-PSS (2048 bits) server-digest SHA256",
          "TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)")
SASL_METHODS = ("PLAIN", "LOGIN")
TRUSTED_APPS = ("192.168.10.20", "192.168.10.21", "192.168.10.30")  # printers, ERP: mynetworks

# The embedded spambot patterns (names printed on stderr for hunt's tests and benches).
BURST_ACCOUNT = "j.miller@example.com"
INFECTED_PC = "192.168.10.77"
INFECTED_HELO = "DESKTOP-7Q3K2LP"
BRUTE_ACCOUNT = "accounts@example.org"
BRUTE_IPS = ("45.95.147.12", "45.95.147.13", "45.95.147.14", "193.32.162.40", "80.94.95.81")


_RANDOM = random.Random(1)
_random = _RANDOM.random


def ri(lo: int, hi: int | None = None) -> int:
    """randrange without its argument checks (the generator's hot path)."""
    if hi is None:
        lo, hi = 0, lo
    return lo + int(_random() * (hi - lo))


def pick(seq):
    """random.choice, minus the checks."""
    return seq[int(_random() * len(seq))]


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class Generator:
    """Schedules session events into per-second buckets and writes them in time order."""

    def __init__(self, rng: random.Random, start: dt.datetime, rate: float, shard: int = 0) -> None:
        self.rng = rng
        self.shard = shard
        self.start = start
        self.rate = rate
        self.buckets: dict[int, list[str]] = {}
        self.qid_counter = rng.getrandbits(40) | 1
        self.msg_counter = 0
        self.port = 30000
        # smtpd pids: a small pool, reused once the previous process is idle (pid reuse).
        self.free_pids: list[tuple[float, int]] = [(0.0, p) for p in rng.sample(range(2000, 60000), 400)]
        heapq.heapify(self.free_pids)
        self.postscreen_pid = 1021
        self.qmgr_pid = 1017
        self.ip_counter = rng.getrandbits(24)

    # -- small helpers -------------------------------------------------------------------
    def emit(self, t: float, body: str) -> None:
        try:
            self.buckets[int(t)].append(body)
        except KeyError:
            self.buckets[int(t)] = [body]

    def qid(self) -> str:
        # The shard number in the top bits keeps queue ids unique across parallel shards.
        self.qid_counter = (self.qid_counter + 0x9E3779B1) & 0xFFFFFFFFFF
        return f"{self.shard << 40 | self.qid_counter:011X}"

    def message_id(self, domain: str) -> str:
        self.msg_counter += 1
        return f"{self.msg_counter:x}.{self.shard}{self.rng.getrandbits(32):08x}@{domain}"

    def pid(self, t: float, end: float) -> int:
        free_at, pid = heapq.heappop(self.free_pids)
        if free_at > t:  # every process busy: a fresh pid, added to the pool
            pid = ri(60000, 4000000)
        heapq.heappush(self.free_pids, (end + 1.0, pid))
        return pid

    def remote_ip(self) -> str:
        self.ip_counter = (self.ip_counter * 1103515245 + 12345) & 0xFFFFFF
        c = self.ip_counter
        return f"{(c >> 16) % 200 + 23}.{(c >> 8) & 255}.{c & 255}.{ri(1, 255)}"

    def next_port(self) -> int:
        self.port = self.port + 1 if self.port < 65000 else 30000
        return self.port

    # -- message life cycle after the smtpd "client=" line --------------------------------
    def queue_and_deliver(self, t: float, qid: str, sender: str, rcpts: list[str], *,
                          outbound: bool, size: int, spammy: bool = False) -> float:
        """cleanup, qmgr, delivery agents, removed; returns the time of the last line."""
        rng = self.rng
        dom = sender.rsplit("@", 1)[-1] if "@" in sender else HOST + ".example.com"
        self.emit(t, f"postfix/cleanup[{ri(3000, 3100)}]: {qid}: message-id=<{self.message_id(dom)}>")
        t += 0.05
        self.emit(t, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: from=<{sender}>, size={size}, nrcpt={len(rcpts)} (queue active)")
        bounced = False
        last = t
        for rcpt in rcpts:
            d = t + rng.random() * (3.0 if outbound else 0.5)
            rdom = rcpt.rsplit("@", 1)[-1]
            if outbound or rdom not in LOCAL_DOMAINS:
                mx = REMOTE_MX.get(rdom, f"mx.{rdom}")
                mx_ip = MX_IPS.get(mx) or f"198.51.100.{len(mx) * 7 % 250 + 1}"
                roll = rng.random()
                if spammy:
                    roll = roll * 0.5 + 0.5  # spam bounces and defers far more often
                if roll < 0.85:
                    self.emit(d, f"postfix/smtp[{ri(4000, 4200)}]: {qid}: to=<{rcpt}>, relay={mx}[{mx_ip}]:25, delay={d - t + 0.2:.1f}, delays=0.1/0/0.05/{d - t:.2f}, dsn=2.0.0, status=sent (250 2.0.0 OK {rng.getrandbits(32):08x} - gsmtp)")
                elif roll < 0.93:
                    self.emit(d, f"postfix/smtp[{ri(4000, 4200)}]: {qid}: to=<{rcpt}>, relay=none, delay={d - t + 30:.0f}, delays=0.1/0/30/0, dsn=4.4.1, status=deferred (connect to {mx}[{mx_ip}]:25: Connection timed out)")
                else:
                    bounced = True
                    self.emit(d, f"postfix/smtp[{ri(4000, 4200)}]: {qid}: to=<{rcpt}>, relay={mx}[{mx_ip}]:25, delay={d - t + 0.4:.1f}, delays=0.1/0/0.1/0.2, dsn=5.1.1, status=bounced (host {mx}[{mx_ip}] said: 550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown (in reply to RCPT TO command))")
            else:
                self.emit(d, f"postfix/lmtp[{ri(5000, 5100)}]: {qid}: to=<{rcpt}>, relay={HOST}.example.com[private/dovecot-lmtp], delay={d - t + 0.1:.2f}, delays=0.04/0/0.02/{d - t:.2f}, dsn=2.0.0, status=sent (250 2.0.0 <{rcpt}> {rng.getrandbits(64):016x} Saved)")
            last = max(last, d)
        if bounced and sender:
            nqid = self.qid()
            self.emit(last + 0.01, f"postfix/bounce[{ri(6000, 6050)}]: {qid}: sender non-delivery notification: {nqid}")
            self.emit(last + 0.02, f"postfix/cleanup[{ri(3000, 3100)}]: {nqid}: message-id=<{self.message_id(HOST + '.example.com')}>")
            self.emit(last + 0.03, f"postfix/qmgr[{self.qmgr_pid}]: {nqid}: from=<>, size={size // 4 + 2000}, nrcpt=1 (queue active)")
            self.emit(last + 0.2, f"postfix/smtp[{ri(4000, 4200)}]: {nqid}: to=<{sender}>, relay=none, delay=0.2, delays=0/0/0.2/0, dsn=2.0.0, status=sent (delivered via local mailbox)" if sender.rsplit('@', 1)[-1] not in LOCAL_DOMAINS else f"postfix/lmtp[{ri(5000, 5100)}]: {nqid}: to=<{sender}>, relay={HOST}.example.com[private/dovecot-lmtp], delay=0.2, delays=0.03/0/0.02/0.1, dsn=2.0.0, status=sent (250 2.0.0 <{sender}> Saved)")
            self.emit(last + 0.21, f"postfix/qmgr[{self.qmgr_pid}]: {nqid}: removed")
        self.emit(last + 0.01, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: removed")
        return last

    # -- session kinds ----------------------------------------------------------------------
    def inbound(self, t: float) -> None:
        """postscreen PASS, then smtpd on port 25 accepting mail for local users."""
        rng = self.rng
        ip, port = self.remote_ip(), self.next_port()
        name = f"mail{ri(1, 99)}.{pick(REMOTE_DOMAINS)}" if rng.random() < 0.7 else "unknown"
        self.emit(t, f"postfix/postscreen[{self.postscreen_pid}]: CONNECT from [{ip}]:{port} to [{SERVER_IP}]:25")
        self.emit(t + 0.01, f"postfix/postscreen[{self.postscreen_pid}]: PASS {'OLD' if rng.random() < 0.8 else 'NEW'} [{ip}]:{port}")
        end_guess = t + 3.0
        pid = self.pid(t, end_guess)
        svc = f"postfix/smtpd[{pid}]"
        t += 0.02
        self.emit(t, f"{svc}: connect from {name}[{ip}]")
        tls = rng.random() < 0.7
        if tls:
            self.emit(t + 0.1, f"{svc}: Anonymous TLS connection established from {name}[{ip}]: {pick(TLS_IN)}")
        sender = f"{pick(('news', 'noreply', 'billing', 'team', 'info'))}@{pick(REMOTE_DOMAINS)}"
        nrcpt = 1 if rng.random() < 0.8 else ri(2, 4)
        rcpts = rng.sample(LOCAL_USERS, nrcpt)
        t += 0.3
        qid = self.qid()
        self.emit(t, f"{svc}: {qid}: client={name}[{ip}]")
        size = ri(2000, 90000)
        if rng.random() < 0.05:  # content filter says spam
            self.emit(t + 0.4, f"postfix/cleanup[{ri(3000, 3100)}]: {qid}: milter-reject: END-OF-MESSAGE from {name}[{ip}]: 5.7.1 Blocked by SpamAssassin; from=<{sender}> to=<{rcpts[0]}> proto=ESMTP helo=<{name if name != 'unknown' else ip}>")
            end = t + 0.6
            self.emit(end, f"{svc}: disconnect from {name}[{ip}] ehlo={2 if tls else 1}{' starttls=1' if tls else ''} mail=1 rcpt={nrcpt} data=0/1 quit=1 commands={3 + nrcpt + (2 if tls else 0)}/{4 + nrcpt + (2 if tls else 0)}")
            return
        t2 = self.queue_and_deliver(t + 0.1, qid, sender, rcpts, outbound=False, size=size)
        end = min(t + 0.5, t2)
        self.emit(end, f"{svc}: disconnect from {name}[{ip}] ehlo={2 if tls else 1}{' starttls=1' if tls else ''} mail=1 rcpt={nrcpt} data=1 quit=1 commands={4 + nrcpt + (2 if tls else 0)}")

    def postscreen_reject(self, t: float) -> None:
        rng = self.rng
        ip, port = self.remote_ip(), self.next_port()
        ps = f"postfix/postscreen[{self.postscreen_pid}]"
        self.emit(t, f"{ps}: CONNECT from [{ip}]:{port} to [{SERVER_IP}]:25")
        roll = rng.random()
        if roll < 0.6:
            rbl = pick(RBLS)
            self.emit(t + 0.01, f"postfix/dnsblog[{ri(2200, 2300)}]: addr {ip} listed by domain {rbl} as 127.0.0.{pick((2, 3, 4, 10, 11))}")
            self.emit(t + 6, f"{ps}: DNSBL rank {ri(1, 6)} for [{ip}]:{port}")
            helo = pick(SPAM_HELOS)
            self.emit(t + 7, f"{ps}: NOQUEUE: reject: RCPT from [{ip}]:{port}: 550 5.7.1 Service unavailable; client [{ip}] blocked using {rbl}; from=<{pick(('promo', 'sales', 'x'))}@{pick(REMOTE_DOMAINS)}>, to=<{pick(LOCAL_USERS)}>, proto=ESMTP, helo=<{helo}>")
            self.emit(t + 7.2, f"{ps}: DISCONNECT [{ip}]:{port}")
        elif roll < 0.85:
            self.emit(t + 0.3, f"{ps}: PREGREET 11 after 0.{ri(1, 9)} from [{ip}]:{port}: EHLO {pick(SPAM_HELOS)}\\r\\n")
            self.emit(t + 0.5, f"{ps}: DISCONNECT [{ip}]:{port}")
        else:
            self.emit(t + 1, f"{ps}: HANGUP after 0.{ri(1, 9)} from [{ip}]:{port} in tests before SMTP handshake")
            self.emit(t + 1, f"{ps}: DISCONNECT [{ip}]:{port}")

    def smtpd_reject(self, t: float) -> None:
        """A client that passed postscreen but whose RCPT is refused by smtpd (NOQUEUE)."""
        rng = self.rng
        ip, port = self.remote_ip(), self.next_port()
        name = "unknown" if rng.random() < 0.6 else f"host-{ip.replace('.', '-')}.dyn.example.net"
        self.emit(t, f"postfix/postscreen[{self.postscreen_pid}]: CONNECT from [{ip}]:{port} to [{SERVER_IP}]:25")
        self.emit(t + 0.01, f"postfix/postscreen[{self.postscreen_pid}]: PASS OLD [{ip}]:{port}")
        pid = self.pid(t, t + 4)
        svc = f"postfix/smtpd[{pid}]"
        self.emit(t + 0.02, f"{svc}: connect from {name}[{ip}]")
        helo = pick(SPAM_HELOS + ("mail.example.net",))
        sender = f"{pick(('admin', 'promo', 'info'))}@{pick(REMOTE_DOMAINS)}"
        n = ri(1, 4)
        for i in range(n):
            roll = rng.random()
            if roll < 0.4:
                to = f"{pick(('a', 'b', 'x'))}{ri(1000)}@{pick(REMOTE_DOMAINS)}"
                self.emit(t + 1 + i, f"{svc}: NOQUEUE: reject: RCPT from {name}[{ip}]: 454 4.7.1 <{to}>: Relay access denied; from=<{sender}> to=<{to}> proto=ESMTP helo=<{helo}>")
            elif roll < 0.7:
                to = f"nobody{ri(100)}@{pick(LOCAL_DOMAINS)}"
                self.emit(t + 1 + i, f"{svc}: NOQUEUE: reject: RCPT from {name}[{ip}]: 550 5.1.1 <{to}>: Recipient address rejected: User unknown in virtual mailbox table; from=<{sender}> to=<{to}> proto=ESMTP helo=<{helo}>")
            elif roll < 0.85:
                to = pick(LOCAL_USERS)
                self.emit(t + 1 + i, f"{svc}: NOQUEUE: reject: RCPT from {name}[{ip}]: 554 5.7.1 Service unavailable; Client host [{ip}] blocked using {pick(RBLS)}; https://www.spamhaus.org/query/ip/{ip}; from=<{sender}> to=<{to}> proto=ESMTP helo=<{helo}>")
            else:
                to = pick(LOCAL_USERS)
                self.emit(t + 1 + i, f"{svc}: NOQUEUE: reject: RCPT from {name}[{ip}]: 504 5.5.2 <{helo}>: Helo command rejected: need fully-qualified hostname; from=<{sender}> to=<{to}> proto=ESMTP helo=<{helo}>")
        self.emit(t + 1.5 + n, f"{svc}: disconnect from {name}[{ip}] ehlo=1 mail=1 rcpt=0/{n} quit=1 commands=3/{3 + n}")

    def submission(self, t: float, user: str | None = None, ip: str | None = None,
                   rcpts: list[str] | None = None, spammy: bool = False) -> None:
        rng = self.rng
        user = user or pick(LOCAL_USERS)
        ip = ip or f"{pick(('81.2.69', '62.30.112', '90.152.7', '10.8.0'))}.{ri(2, 250)}"
        name = "unknown" if rng.random() < 0.5 else f"client-{ip.replace('.', '-')}.isp.example"
        nmsg = 1 if rng.random() < 0.85 else ri(2, 4)
        pid = self.pid(t, t + 2 + nmsg)
        svc = f"postfix/submission/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from {name}[{ip}]")
        self.emit(t + 0.05, f"{svc}: Anonymous TLS connection established from {name}[{ip}]: {pick(TLS_IN)}")
        method = pick(SASL_METHODS)
        tt = t + 0.3
        total_rcpt = 0
        for _ in range(nmsg):
            these = rcpts or [f"{pick(('anna', 'ben', 'chris', 'dana'))}{ri(50)}@{pick(REMOTE_DOMAINS)}"
                              for _ in range(1 if rng.random() < 0.7 else ri(2, 5))]
            total_rcpt += len(these)
            qid = self.qid()
            self.emit(tt, f"{svc}: {qid}: client={name}[{ip}], sasl_method={method}, sasl_username={user}")
            self.queue_and_deliver(tt + 0.1, qid, user, these, outbound=True,
                                   size=ri(1500, 400000), spammy=spammy)
            tt += 0.4
        self.emit(tt, f"{svc}: disconnect from {name}[{ip}] ehlo=2 starttls=1 auth=1 mail={nmsg} rcpt={total_rcpt} data={nmsg} quit=1 commands={5 + nmsg * 2 + total_rcpt}")

    def sasl_failure(self, t: float, user: str | None = None, ip: str | None = None, tries: int | None = None) -> None:
        rng = self.rng
        ip = ip or self.remote_ip()
        tries = tries or ri(1, 4)
        pid = self.pid(t, t + 2 * tries + 1)
        svc = f"postfix/submission/smtpd[{pid}]" if rng.random() < 0.5 else f"postfix/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from unknown[{ip}]")
        for i in range(tries):
            if user is None and rng.random() < 0.5:
                self.emit(t + 1 + 2 * i, f"{svc}: warning: unknown[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6")
            else:
                u = user or pick(LOCAL_USERS)
                self.emit(t + 1 + 2 * i, f"{svc}: warning: unknown[{ip}]: SASL LOGIN authentication failed: authentication failure, sasl_username={u}")
        if rng.random() < 0.5:
            self.emit(t + 2 * tries + 1, f"{svc}: lost connection after AUTH from unknown[{ip}]")
        self.emit(t + 2 * tries + 1, f"{svc}: disconnect from unknown[{ip}] ehlo=1 auth=0/{tries} commands=1/{tries + 1}")

    def mynetworks_relay(self, t: float, ip: str | None = None, helo: str | None = None, spammy: bool = False) -> None:
        """A trusted machine (mynetworks) relaying without AUTH."""
        rng = self.rng
        ip = ip or pick(TRUSTED_APPS)
        pid = self.pid(t, t + 3)
        svc = f"postfix/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from unknown[{ip}]")
        qid = self.qid()
        if spammy:
            sender = f"{pick(('support', 'security', 'admin', 'noreply'))}@{pick(REMOTE_DOMAINS)}"
            rcpts = [f"u{ri(100000)}@{pick(REMOTE_DOMAINS)}" for _ in range(ri(5, 15))]
        else:
            sender = pick(("scanner@example.com", "erp@example.com", "alerts@example.com"))
            rcpts = [pick(LOCAL_USERS) if rng.random() < 0.6 else f"orders@{pick(REMOTE_DOMAINS)}"]
        self.emit(t + 0.1, f"{svc}: {qid}: client=unknown[{ip}]")
        self.queue_and_deliver(t + 0.2, qid, sender, rcpts, outbound=any(r.rsplit("@", 1)[1] not in LOCAL_DOMAINS for r in rcpts),
                               size=ri(3000, 60000), spammy=spammy)
        self.emit(t + 0.6, f"{svc}: disconnect from unknown[{ip}] helo=1 mail=1 rcpt={len(rcpts)} data=1 quit=1 commands={4 + len(rcpts)}")

    def pickup(self, t: float) -> None:
        qid = self.qid()
        uid, user = pick(((0, "root"), (33, "www-data"), (1000, "backup")))
        self.emit(t, f"postfix/pickup[{ri(7000, 7010)}]: {qid}: uid={uid} from=<{user}>")
        self.emit(t + 0.01, f"postfix/cleanup[{ri(3000, 3100)}]: {qid}: message-id=<{self.message_id(HOST + '.example.com')}>")
        self.emit(t + 0.02, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: from=<{user}@{HOST}.example.com>, size={ri(500, 5000)}, nrcpt=1 (queue active)")
        self.emit(t + 0.05, f"postfix/local[{ri(8000, 8010)}]: {qid}: to=<root@{HOST}.example.com>, orig_to=<root>, relay=local, delay=0.05, delays=0.02/0/0/0.03, dsn=2.0.0, status=sent (delivered to mailbox)")
        self.emit(t + 0.06, f"postfix/qmgr[{self.qmgr_pid}]: {qid}: removed")

    def scanner(self, t: float) -> None:
        rng = self.rng
        ip = self.remote_ip()
        pid = self.pid(t, t + 2)
        svc = f"postfix/smtpd[{pid}]" if rng.random() < 0.5 else f"postfix/submission/smtpd[{pid}]"
        self.emit(t, f"{svc}: connect from unknown[{ip}]")
        roll = rng.random()
        if roll < 0.3:
            self.emit(t + 0.5, f"{svc}: warning: non-SMTP command from unknown[{ip}]: GET / HTTP/1.1")
            self.emit(t + 0.5, f"{svc}: disconnect from unknown[{ip}] unknown=0/1 commands=0/1")
        elif roll < 0.6:
            self.emit(t + 1.5, f"{svc}: lost connection after EHLO from unknown[{ip}]")
            self.emit(t + 1.5, f"{svc}: disconnect from unknown[{ip}] ehlo=1 commands=1")
        else:
            self.emit(t + 1.8, f"{svc}: timeout after CONNECT from unknown[{ip}]")
            self.emit(t + 1.8, f"{svc}: disconnect from unknown[{ip}] commands=0/0")


# Log bytes written per second of log time, per unit of --rate (measured on this generator);
# kept a little low so that parallel shards leave a small time gap rather than overlap.
BYTES_PER_SECOND_PER_RATE = 960.0
LINES_PER_SECOND_PER_RATE = 7.4


def _prefix(now: dt.datetime, rfc3339: bool, micros: int) -> str:
    if rfc3339:
        return f"{now.isoformat()}.{micros:06d}+00:00 {HOST} "
    return f"{MONTHS[now.month - 1]} {now.day:>2} {now:%H:%M:%S} {HOST} "


def generate_shard(job: dict) -> tuple[int, int, int]:
    """Write one shard (a contiguous stretch of log time); returns (lines, bytes, seconds)."""
    shard, jobs = job["shard"], job["jobs"]
    _RANDOM.seed(job["seed"] * 1000 + shard)
    rng = _RANDOM
    start = dt.datetime.fromisoformat(job["start"]) + dt.timedelta(seconds=job["offset_s"])
    rate = job["rate"]
    gen = Generator(rng, start, rate, shard)
    kinds = (
        (0.33, gen.inbound), (0.15, gen.postscreen_reject), (0.10, gen.smtpd_reject),
        (0.20, gen.submission), (0.07, gen.sasl_failure), (0.05, gen.mynetworks_relay),
        (0.04, gen.pickup), (0.06, gen.scanner),
    )
    cum, acc = [], 0.0
    for weight, fn in kinds:
        acc += weight
        cum.append((acc, fn))
    # Spambot patterns, placed by how far through the whole output we are.
    burst_rng = random.Random(job["seed"])
    burst_ips = [f"{burst_rng.choice(('102.89', '41.203', '196.25', '154.160'))}.{burst_rng.randrange(256)}.{burst_rng.randrange(1, 255)}" for _ in range(40)]
    specials = ((0.30, 0.32, "brute-force"), (0.33, 0.40, "brute-success"),
                (0.55, 0.60, "burst"), (0.70, 0.90, "infected-pc"))
    target_bytes, target_lines = job["bytes"], job["lines"]
    rfc3339 = job["rfc3339"]
    written = lines = second = 0
    with open(job["path"], "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
        while True:
            local = (written / target_bytes) if target_bytes else (lines / target_lines)
            if local >= 1.0:
                break
            frac = (shard + local) / jobs
            n_new = int(rate) + (1 if rng.random() < rate % 1 else 0)
            n_new = max(0, n_new + ri(-n_new // 3, n_new // 3 + 1)) if n_new > 3 else n_new
            for _ in range(n_new):
                r = rng.random()
                for edge, fn in cum:
                    if r < edge:
                        fn(second + rng.random())
                        break
            for lo, hi, name in specials:
                if lo <= frac < hi:
                    t = second + rng.random()
                    if name == "brute-force":
                        gen.sasl_failure(t, user=BRUTE_ACCOUNT, ip=pick(BRUTE_IPS), tries=3)
                    elif name == "brute-success" and rng.random() < 0.5:
                        gen.submission(t, user=BRUTE_ACCOUNT, ip=BRUTE_IPS[0], spammy=True,
                                       rcpts=[f"v{ri(10**6)}@{pick(REMOTE_DOMAINS)}" for _ in range(8)])
                    elif name == "burst":
                        gen.submission(t, user=BURST_ACCOUNT, ip=pick(burst_ips), spammy=True,
                                       rcpts=[f"w{ri(10**6)}@{pick(REMOTE_DOMAINS)}" for _ in range(ri(20, 50))])
                    elif name == "infected-pc" and rng.random() < 0.3:
                        gen.mynetworks_relay(t, ip=INFECTED_PC, spammy=True)
            bucket = gen.buckets.pop(second, None)
            if bucket:
                prefix = _prefix(start + dt.timedelta(seconds=second), rfc3339, ri(10**6))
                chunk = prefix + ("\n" + prefix).join(bucket) + "\n"
                out.write(chunk)
                written += len(chunk)  # ASCII only, so characters == bytes
                lines += len(bucket)
            second += 1
        # The tail of sessions already begun.
        for sec in sorted(gen.buckets):
            prefix = _prefix(start + dt.timedelta(seconds=sec), rfc3339, 0)
            bucket = gen.buckets[sec]
            chunk = prefix + ("\n" + prefix).join(bucket) + "\n"
            out.write(chunk)
            written += len(chunk)
            lines += len(bucket)
    return lines, written, second


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", help="stop after this many bytes (at least), e.g. 1G, 200M")
    ap.add_argument("--lines", type=int, help="stop after about this many lines")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--start", default="2026-03-01T06:00:00",
                    help="log time of the first line (ISO); a start in late December makes the log cross New Year")
    ap.add_argument("--rate", type=float, default=40.0, help="new sessions per second of log time")
    ap.add_argument("--rfc3339", action="store_true", help="RFC 3339 timestamps instead of classic syslog")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes; each writes a contiguous stretch of log time (same output for the same --jobs)")
    args = ap.parse_args(argv)
    if not args.size and not args.lines:
        ap.error("give --size or --lines")
    jobs = max(1, args.jobs)
    target_bytes = parse_size(args.size) if args.size else None
    print(f"spambot patterns: burst account={BURST_ACCOUNT} (from 40 new IPs); "
          f"infected mynetworks PC={INFECTED_PC} helo={INFECTED_HELO}; "
          f"brute-forced account={BRUTE_ACCOUNT} (from {', '.join(BRUTE_IPS)})", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    shard_seconds = ((target_bytes / BYTES_PER_SECOND_PER_RATE) if target_bytes
                     else (args.lines / LINES_PER_SECOND_PER_RATE)) / args.rate / jobs
    work = [{
        "shard": k, "jobs": jobs, "seed": args.seed, "start": args.start, "rate": args.rate,
        "offset_s": int(k * shard_seconds), "rfc3339": args.rfc3339,
        "bytes": -(-target_bytes // jobs) if target_bytes else None,
        "lines": -(-args.lines // jobs) if args.lines else None,
        "path": f"{args.out}.part{k}" if jobs > 1 else str(args.out),
    } for k in range(jobs)]
    began = time.perf_counter()
    if jobs == 1:
        results = [generate_shard(work[0])]
    else:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(generate_shard, work)
        with open(args.out, "wb") as out:
            for job in work:
                with open(job["path"], "rb") as part:
                    size = os.fstat(part.fileno()).st_size
                    copied = 0
                    while copied < size:  # in-kernel copy
                        copied += os.copy_file_range(part.fileno(), out.fileno(), size - copied)
                os.unlink(job["path"])
    took = time.perf_counter() - began
    lines = sum(r[0] for r in results)
    written = sum(r[1] for r in results)
    print(f"wrote {args.out}: {lines} lines, {written} bytes, {jobs} jobs, "
          f"{took:.1f} s ({written / took / 1e6:.0f} MB/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
