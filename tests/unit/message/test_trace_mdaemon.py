"""MDaemon: the header block binds the marker, ESMTP-although-authenticated, no Received at all.

Header lines are quoted from ../shared/reference/mdaemon-formats.md 2.4-2.5 (public
mailing-list copies of real MDaemon mail); addresses kept as quoted there.
"""

from __future__ import annotations

import pytest

from mailwarden.config import SiteConfig
from mailwarden.errors import InputError
from mailwarden.message.trace import trace_bytes

GOODGOODLED = b"""\
Received: from west163.com by mail.goodgoodled.xyz (MDaemon PRO v10.1.1)
 with ESMTP id md50002385566.msg
 for <industrypack-devel@lists.sourceforge.net>; Wed, 17 Jul 2019 04:37:44 +0800
X-Spam-Processed: mail.goodgoodled.xyz, Wed, 17 Jul 2019 04:37:44 +0800
 (not processed: spam filter heuristic analysis disabled)
X-MDHeloLookup-Result: hardfail smtp.helo=west163.com (does not match
 106.114.23.249) (mail.goodgoodled.xyz)
X-Authenticated-Sender: abbey@goodgoodled.xyz
X-MDRemoteIP: 106.114.23.249
X-Return-Path: abbey@goodgoodled.xyz
X-Envelope-From: abbey@goodgoodled.xyz
X-MDaemon-Deliver-To: industrypack-devel@lists.sourceforge.net
Date: Wed, 17 Jul 2019 04:37:28 +0800
From: "Mick" <info@lk-tooling.com>
Message-ID: <spambot-1@lk-tooling.com>
X-mailer: Foxmail 6, 13, 102, 15 [cn]

body
"""

ARRIVED_AT_LIST = b"""\
Received: from mail.goodgoodled.xyz ([106.114.23.77]) by lists.sourceforge.net with esmtp
 (Exim 4.92) id 1hnRxy-0006wA-Qs; Tue, 16 Jul 2019 20:37:50 +0000
""" + GOODGOODLED

NO_RECEIVED = b"""\
X-MDAV-Result: clean
X-MDAV-Processed: monticello.secure-endpoints.com, Sun, 10 May 2026 14:03:21 -0400
X-Spam-Processed: monticello.secure-endpoints.com, Sun, 10 May 2026 14:03:21 -0400
\t(not processed: message from trusted or authenticated source)
X-MDRemoteIP: 2603:7002:100:8400:8595:c601:ade8:99ed
X-MDHelo: [IPV6:2603:7002:100:8400:8595:c601:ade8:99ed]
X-MDArrival-Date: Sun, 10 May 2026 14:03:21 -0400
X-Authenticated-Sender: jaltman@auristor.com
X-Return-Path: prvs=1590908687=jaltman@auristor.com
X-MDaemon-Deliver-To: stable@vger.kernel.org
Subject: test
Message-ID: <x1@auristor.com>

"""

OLD_MDAEMON_NO_HOST = b"""\
Received: from [10.0.0.13] by mail1.webmaster.com (MDaemon.PRO.v8.1.3.R)
\twith ESMTPA id md50000012345.msg; Wed, 03 May 2006 13:47:55 -0700
X-Authenticated-Sender: joelkatz@webmaster.com
X-MDRemoteIP: 10.0.0.13
X-Return-Path: joelkatz@webmaster.com
X-MDaemon-Deliver-To: linux-kernel@vger.kernel.org
Message-ID: <old@webmaster.com>

"""


def site(*names, nets=()):
    return SiteConfig().with_overrides(server_names=names, trusted_networks=nets)


def test_esmtp_although_authenticated_is_bound_by_the_block():
    t = trace_bytes(GOODGOODLED, site("mail.goodgoodled.xyz"))
    assert t.our_hop.protocol == "ESMTP"  # MDaemon 10.1.1 says ESMTP for an AUTH session
    assert (t.verdict, t.account, t.client_ip, t.client_helo) == (
        "authenticated-account", "abbey@goodgoodled.xyz", "106.114.23.249", "west163.com")
    md = [e for e in t.auth_markers if e.marker == "mdaemon-block"][0]
    assert md.bound and md.binding == "names our server mail.goodgoodled.xyz"


def test_same_message_seen_by_the_list_server_is_external():
    t = trace_bytes(ARRIVED_AT_LIST, SiteConfig())
    assert (t.verdict, t.client_ip) == ("external", "106.114.23.77")
    assert t.our_hop.id == "1hnRxy-0006wA-Qs"
    assert [e.marker for e in t.uncorroborated] == ["mdaemon-block"]


def test_block_without_received_uses_x_mdremoteip():
    t = trace_bytes(NO_RECEIVED, site("monticello.secure-endpoints.com"))
    assert t.our_hop is None and t.hops == []
    assert (t.verdict, t.account) == ("authenticated-account", "jaltman@auristor.com")
    assert t.client_ip == "2603:7002:100:8400:8595:c601:ade8:99ed"
    assert t.received_at.isoformat() == "2026-05-10T14:03:21-04:00"


def test_block_without_received_inferred():
    t = trace_bytes(NO_RECEIVED, SiteConfig())
    assert t.boundary.inferred and t.boundary.servers == ["monticello.secure-endpoints.com"]
    assert t.verdict == "authenticated-account"


def test_block_naming_another_server_never_decides():
    t = trace_bytes(NO_RECEIVED, site("mx.example.org"))
    assert t.verdict == "unknown" and t.account is None
    assert "no Received headers" in t.reason


def test_old_mdaemon_without_host_bound_by_hop_protocol():
    t = trace_bytes(OLD_MDAEMON_NO_HOST, site("mail1.webmaster.com"))
    md = [e for e in t.auth_markers if e.marker == "mdaemon-block"][0]
    assert md.bound and md.binding.startswith("MDaemon header below our MDaemon hop")
    assert (t.verdict, t.account, t.client_ip) == ("authenticated-account", "joelkatz@webmaster.com", "10.0.0.13")


def test_old_mdaemon_unauthenticated_trusted_client_is_internal_host():
    data = OLD_MDAEMON_NO_HOST.replace(b"ESMTPA", b"ESMTP").replace(b"X-Authenticated-Sender: joelkatz@webmaster.com\n", b"")
    t = trace_bytes(data, site("mail1.webmaster.com", nets=["10.0.0.0/8"]))
    assert (t.verdict, t.client_ip) == ("internal-host", "10.0.0.13")
    assert "Clean the machine at 10.0.0.13" in t.next_action


def test_plain_x_authenticated_sender_below_esmtp_mdaemon_hop_without_block_host_is_not_bound():
    data = OLD_MDAEMON_NO_HOST.replace(b"ESMTPA", b"ESMTP")
    t = trace_bytes(data, site("mail1.webmaster.com"))
    assert t.verdict == "external"  # 10.0.0.13 is private, but no trusted network is configured
    md = [e for e in t.auth_markers if e.marker == "mdaemon-block"][0]
    assert not md.bound and "says with ESMTP" in md.binding


def test_trace_bytes_bad_input_raises_input_error():
    with pytest.raises(InputError, match="empty input"):
        trace_bytes(b"", SiteConfig())


def test_hostile_message_id_is_shell_quoted_in_the_next_command():
    data = GOODGOODLED.replace(b"<spambot-1@lk-tooling.com>", b"<x'$(rm -rf ~)`id`@evil>")
    t = trace_bytes(data, SiteConfig())
    assert t.verdict == "authenticated-account"
    assert "--message-id 'x'\"'\"'$(rm -rf ~)`id`@evil'" in t.next_action


def test_next_command_uses_the_queue_id_without_a_message_id():
    data = GOODGOODLED.replace(b"Message-ID: <spambot-1@lk-tooling.com>\n", b"")
    t = trace_bytes(data, site("lists.example.org"))
    assert t.verdict == "unknown"
    t = trace_bytes(b"Received: from x ([203.0.113.9]) by mx.example.com (Postfix) with ESMTP id 4QG9rP26vbzY;"
                    b" Mon, 1 Jan 2018 10:00:00 +0100\n\n", site("mx.example.com"))
    assert t.verdict == "external"
    assert t.next_action == ("mailwarden logs find /var/log/mail.log --queue-id 4QG9rP26vbzY "
                             "--around 2018-01-01T10:00:00+01:00")
