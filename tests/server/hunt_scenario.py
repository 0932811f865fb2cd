"""issue 5's real-server traffic: three spambots among normal users, on a real Postfix.

Built on the shared helpers (``scenarios.send_message``, ``start_mail_site``). The site
trusts two machines (mynetworks 127.0.0.10/32 and 127.0.0.11/32):

    127.0.0.10          an infected office PC: relays spam without AUTH, invented senders,
                        HELO DESKTOP-7Q3K2LP (Postfix logs it on the rejected attempts)
    127.0.0.11          the office scanner: relays two reports as scanner@ (normal)
    127.0.31-34.5       carol's stolen password, used from four new networks, 6 x 20 recipients
    127.0.0.66          guesses dave's password (8 failures), then logs in and spams 30 recipients
    127.0.0.20-22, .77  alice, bob and erin sending a few messages; one inbound message

``hunt`` should rank carol, 127.0.0.10 and dave as the top three, over the alarm line,
and keep everyone else under it.
"""

from __future__ import annotations

from pathlib import Path

from tests.server.harness import DEFAULT_USERS
from tests.server.scenarios import (
    OUTSIDE_DOMAIN,
    MailSite,
    SentMessage,
    send_message,
    start_mail_site,
)

INFECTED_PC = "127.0.0.10"
SCANNER = "127.0.0.11"
GUESSER = "127.0.0.66"
CAROL_IPS = ("127.0.31.5", "127.0.32.5", "127.0.33.5", "127.0.34.5")
MYNETWORKS = (f"{INFECTED_PC}/32", f"{SCANNER}/32")
USERS = {**DEFAULT_USERS, "carol": "carol-secret-3", "dave": "dave-secret-4", "erin": "erin-secret-5"}
FAILED_GUESSES = 8

# Postfix logs sasl_username= as the client gave it: the Dovecot user names.
EXPECTED_TOP = {("account", "carol"), ("client-ip", INFECTED_PC), ("account", "dave")}


def start_hunt_site(workdir: Path) -> MailSite:
    return start_mail_site(workdir, users=USERS, mynetworks=MYNETWORKS)


def hunt_scenario(site: MailSite) -> list[SentMessage]:
    """Send the traffic above; waits until Postfix has delivered everything."""
    postfix = site.postfix
    sub, smtp = postfix.submission_port, postfix.smtp_port
    a = site.address
    sent: list[SentMessage] = []

    def send(**kw) -> SentMessage:
        msg = send_message(site, **kw)
        sent.append(msg)
        return msg

    # Normal users.
    for label, rcpt in (("alice-1", a("bob")), ("alice-2", f"friend@{OUTSIDE_DOMAIN}")):
        send(label=label, port=sub, source_ip="127.0.0.20", auth=("alice", USERS["alice"]),
             mail_from=a("alice"), rcpt_to=[rcpt], helo="alice-laptop")
    send(label="bob-1", port=sub, source_ip="127.0.0.21", auth=("bob", USERS["bob"]),
         mail_from=a("bob"), rcpt_to=[a("alice")], helo="bob-pc")
    send(label="erin-1", port=sub, source_ip="127.0.0.22", auth=("erin", USERS["erin"]),
         mail_from=a("erin"), rcpt_to=[f"partner@{OUTSIDE_DOMAIN}"], helo="erin-phone")
    send(label="inbound", port=smtp, source_ip="127.0.0.77", mail_from=f"news@{OUTSIDE_DOMAIN}",
         rcpt_to=[a("alice")], helo=f"mx.{OUTSIDE_DOMAIN}")
    for i in range(2):
        send(label=f"scanner-{i}", port=smtp, source_ip=SCANNER, mail_from=a("scanner"),
             rcpt_to=[f"reports@{OUTSIDE_DOMAIN}"], helo="scanner.office.example.test")
    # carol: the burst from new networks.
    for i in range(6):
        rcpts = [f"user{i * 20 + j}@d{(i * 20 + j) % 24}.{OUTSIDE_DOMAIN}" for j in range(20)]
        send(label=f"carol-{i}", port=sub, source_ip=CAROL_IPS[i % 4], auth=("carol", USERS["carol"]),
             mail_from=a("carol"), rcpt_to=rcpts, helo=f"host{i}.example.net")
    # dave: password guessed, then spam.
    for i in range(FAILED_GUESSES):
        send(label=f"guess-{i}", port=sub, source_ip=GUESSER, auth=("dave", f"guess-{i}"),
             mail_from=a("dave"), rcpt_to=[f"x@{OUTSIDE_DOMAIN}"], helo="vps-4411.example.net")
    send(label="dave-spam", port=sub, source_ip=GUESSER, auth=("dave", USERS["dave"]),
         mail_from=a("dave"), rcpt_to=[f"victim{j}@v{j % 9}.{OUTSIDE_DOMAIN}" for j in range(30)],
         helo="vps-4411.example.net")
    # The infected PC: invented senders; its first attempts also hit an unknown local user,
    # which makes Postfix log its HELO.
    for i in range(10):
        rcpts = [f"target{i * 4 + j}@t{j}.{OUTSIDE_DOMAIN}" for j in range(4)]
        if i < 4:
            rcpts.insert(0, a(f"nobody{i}"))
        send(label=f"infected-{i}", port=smtp, source_ip=INFECTED_PC,
             mail_from=f"promo{i}@deals{i}.{OUTSIDE_DOMAIN}", rcpt_to=rcpts, helo="DESKTOP-7Q3K2LP")
    postfix.wait_for_queue_empty()
    return sent
