"""Timestamps of every dialect and syslog flavour; impossible dates give None, never an exception."""

from __future__ import annotations

import datetime as dt

from mailwarden.logs.readers.exim import split_exim_stamp
from mailwarden.logs.readers.mdaemon import split_mdaemon_stamp
from mailwarden.logs.readers.syslog import split_syslog
from mailwarden.logs.timestamps import SyslogYear, parse_iso


def test_syslog_flavours():
    clock = SyslogYear(2024)
    classic = split_syslog("Mar  7 02:09:33 server postfix/smtpd[27246]: x", clock)
    assert classic.ts == dt.datetime(2024, 3, 7, 2, 9, 33) and classic.ts_is_local
    one_space = split_syslog("Mar 7 02:09:33 server postfix/smtpd[27246]: x", SyslogYear(2024))
    assert one_space.ts == classic.ts and one_space.pid == 27246
    iso = split_syslog("2024-08-29T01:08:59.764590+00:00 machine postfix/smtpd[1]: x", None)
    assert iso.ts == dt.datetime(2024, 8, 29, 1, 8, 59, 764590, tzinfo=dt.UTC) and not iso.ts_is_local
    short_iso = split_syslog("2024-08-29T03:08:59+0200 machine postfix/smtpd[1]: x", None)
    assert short_iso.ts.astimezone(dt.UTC) == dt.datetime(2024, 8, 29, 1, 8, 59, tzinfo=dt.UTC)
    full = split_syslog("Thu 2024-08-29 01:08:59 UTC machine postfix/qmgr[2]: x", None)
    assert full.ts == dt.datetime(2024, 8, 29, 1, 8, 59, tzinfo=dt.UTC) and full.program == "postfix/qmgr"
    assert split_syslog("Foo 99 99:99:99 host prog[1]: x", clock) is None
    assert split_syslog("Feb 30 10:00:00 host prog[1]: x", SyslogYear(2023)).ts is None


def test_exim_and_mdaemon_stamps():
    ts, rest = split_exim_stamp("2022-06-29 16:04:05.123 +0200 [4321] 1ajLoq-0001wC-Pk Completed")
    assert ts == dt.datetime(2022, 6, 29, 16, 4, 5, 123000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert rest == "1ajLoq-0001wC-Pk Completed"
    assert split_exim_stamp("2022-13-29 16:04:05 x") is None
    ts, ident, rest = split_mdaemon_stamp("Wed 2018-04-25 00:00:34: ---------")
    assert ts == dt.datetime(2018, 4, 25, 0, 0, 34) and ident is None and rest == "---------"
    assert split_mdaemon_stamp("Sat 2025-06-07 00:00:12.401: 17: INBOUND message: pdd666.msg")[1] == "17"
    assert parse_iso("2024-02-30T00:00:00") is None


def test_anchor_at_a_month_boundary():
    # message received 31 Jan 23:30 UTC; the server (UTC+2) logged it on 1 Feb
    clock = SyslogYear(anchor=dt.datetime(2025, 1, 31, 23, 30, tzinfo=dt.UTC), mtime=0)
    assert clock.datetime(2, 1, 1, 30, 0) == dt.datetime(2025, 2, 1, 1, 30)
    # a December line near a January anchor belongs to the year before
    assert SyslogYear(anchor=dt.datetime(2025, 1, 1, 8, 0)).datetime(12, 31, 23, 0, 0).year == 2024
