"""The Received parser on every deviation in the reference table (forensics-and-log-tools.md 5)."""

from __future__ import annotations

import datetime as dt

import pytest

from mailwarden.message.received import clean_ip, parse_received, tokenize


def test_rfc_postfix_authenticated_line():
    hop = parse_received(
        "from vultr-guest (unknown [64.176.7.85])\n\t(Authenticated sender: alexandrejoacy2)\n"
        "\tby saasauth0008.correio.pw (Postfix) with ESMTPSA id 5E5E417FF31\n"
        "\tfor <phishing@pot>; Sat, 29 Jul 2023 22:37:42 -0300 (-03)")
    assert (hop.helo, hop.from_rdns, hop.from_ip) == ("vultr-guest", None, "64.176.7.85")
    assert (hop.by, hop.software, hop.protocol, hop.id) == ("saasauth0008.correio.pw", "Postfix", "ESMTPSA", "5E5E417FF31")
    assert hop.for_ == "phishing@pot"
    assert hop.date == dt.datetime(2023, 7, 29, 22, 37, 42, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert "Authenticated sender: alexandrejoacy2" in hop.comments
    assert hop.parsed and hop.reason is None


def test_comment_only_qmail_stamp():
    hop = parse_received("(qmail 47739 invoked by uid 1001); 29 Jan 2022 20:18:48 -0000")
    assert not hop.parsed
    assert hop.by is None  # MHA#335 made "uid 1001)" the receiving host
    assert hop.reason.startswith("comment-only stamp")
    assert hop.comments == ["qmail 47739 invoked by uid 1001"]
    assert hop.date == dt.datetime(2022, 1, 29, 20, 18, 48, tzinfo=dt.UTC)


def test_sendgrid_missing_semicolon_fractional_seconds_go_suffix():
    hop = parse_received(
        "by filter0948p1iad2.sendgrid.net with SMTP id filter0948p1iad2-19514-5EEA473C-34 "
        "2020-06-17 16:39:24.757045452 +0000 UTC m=+349867.495769315")
    assert hop.by == "filter0948p1iad2.sendgrid.net"
    assert hop.id == "filter0948p1iad2-19514-5EEA473C-34"
    assert hop.date == dt.datetime(2020, 6, 17, 16, 39, 24, tzinfo=dt.UTC)
    assert "no ';' before the date" in hop.reason


def test_text_after_the_date():
    hop = parse_received("from a.example (a.example [192.0.2.1]) by b.example with ESMTP id X1; "
                         "Sun, 1 Apr 2018 03:01:53 -0400 (envelope-from <x@a.example>)")
    assert hop.date == dt.datetime(2018, 4, 1, 3, 1, 53, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    assert "envelope-from <x@a.example>" in hop.comments


def test_date_folded_across_lines_and_tab_before_day():
    hop = parse_received("from a ([192.0.2.9]) by b.example with ESMTP id 1;\n Wed,\n\t8 Mar\n 2017 16:46:12 +0000")
    assert hop.date == dt.datetime(2017, 3, 8, 16, 46, 12, tzinfo=dt.UTC)


def test_exchange_via_after_id_and_version_is_not_an_ip():
    hop = parse_received(
        "from DM3NAM03FT035.eop-NAM03.prod.protection.outlook.com\n (2a01:111:f400:7e49::205) by "
        "CY4PR0601CA0051.outlook.office365.com\n (2603:10b6:910:89::28) with Microsoft SMTP Server "
        "(version=TLS1_2,\n cipher=TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384) id 15.20.1185.23 via Frontend\n "
        "Transport; Mon, 1 Oct 2018 09:49:21 +0000")  # mail-parser mail_test_1
    assert hop.from_ip == "2a01:111:f400:7e49::205"
    assert hop.by_ip == "2603:10b6:910:89::28"
    assert hop.id == "15.20.1185.23" and hop.via == "Frontend"
    assert hop.protocol_text == "Microsoft SMTP Server"


def test_exim_id_is_kept_as_is():
    hop = parse_received("from [102.69.139.111] (port=52874 helo=[192.168.88.181])\n\tby host4.ns.co.th with "
                         "esmtpa (Exim 4.96)\n\t(envelope-from <shore@suksapan.or.th>)\n\tid 1qRBGp-0006S0-33;\n"
                         "\tWed, 02 Aug 2023 19:48:06 +0700")
    assert hop.id == "1qRBGp-0006S0-33"
    assert hop.from_ip == "102.69.139.111"      # the bracketed literal, not the HELO literal
    assert hop.helo == "[192.168.88.181]"
    assert hop.protocol == "esmtpa" and hop.software == "Exim 4.96"


@pytest.mark.parametrize(("literal", "expected"), [
    ("[IPv6:2001:4b98:dc0:41:216:3eff:fe3b:1c1c]", "2001:4b98:dc0:41:216:3eff:fe3b:1c1c"),
    ("[fe80::d943:55cc:ec54:4033%9]", "fe80::d943:55cc:ec54:4033"),
    ("[IPV6:2603:7002:100:8400:8595:c601:ade8:99ed]", "2603:7002:100:8400:8595:c601:ade8:99ed"),
    ("213.30.242.172:51773", "213.30.242.172"),
    ("[x.x.x.x]", None),
    ("uid 1001", None),
])
def test_ip_literal_forms(literal, expected):
    assert clean_ip(literal) == expected


def test_ipv6_zone_id_and_doubled_bracket():
    hop = parse_received("from KAXPR01MB0000.jpnprd01.prod.outlook.com\n ([fe80::d943:55cc:ec54:4033]) by "
                         "KAXPR01MB0000.jpnprd01.prod.outlook.com ([fe80::d943:55cc:ec54:4033%9]]) with mapi "
                         "id 15.20.6792.28; Mon, 2 Oct 2023 19:58:22 +0000")  # rspamd#2452
    assert hop.from_ip == "fe80::d943:55cc:ec54:4033"
    assert hop.by_ip == "fe80::d943:55cc:ec54:4033"
    assert hop.protocol == "mapi"


def test_postfix_unknown_rdns_is_not_a_name():
    hop = parse_received("from vultr-guest (unknown [64.176.7.85]) by x.example (Postfix) with ESMTP; "
                         "Sat, 29 Jul 2023 22:37:42 -0300")
    assert hop.from_rdns is None and hop.helo == "vultr-guest"


def test_mdaemon_bare_literal_and_ipv6_by_comment():
    hop = parse_received(
        "from [IPV6:2603:7002:100:8400:8595:c601:ade8:99ed] by auristor.com "
        "(IPv6:2001:470:1f07:f77:ffff::312) (MDaemon PRO v26.0.2b) \n\twith ESMTPSA id "
        "md5001005260780.msg; Sun, 10 May 2026 14:03:21 -0400")
    assert hop.from_ip == "2603:7002:100:8400:8595:c601:ade8:99ed"
    assert hop.by == "auristor.com" and hop.by_ip == "2001:470:1f07:f77:ffff::312"
    assert hop.software == "MDaemon PRO v26.0.2b"
    assert hop.id == "md5001005260780.msg" and hop.protocol == "ESMTPSA"


def test_qmail_comment_ip_and_by_zero():
    hop = parse_received("from unknown (HELO User) (103.147.185.35)\n  by 0 with SMTP; 17 Nov 2022 12:27:44 -0000")
    assert (hop.helo, hop.from_ip, hop.by) == ("User", "103.147.185.35", "0")


def test_webmail_http_hop_with_port():
    hop = parse_received("from 213.30.242.172:51773 by cmpweb05.aul.t-online.de with HTTP/1.1 (Lotus)"
                         "; Mon, 1 Jan 2018 10:00:00 +0100")
    assert hop.from_ip == "213.30.242.172" and hop.protocol == "HTTP/1.1"


def test_for_multiple_recipients():
    hop = parse_received("from a ([192.0.2.1]) by b.example with ESMTP id 9 for <multiple recipients>; "
                         "Mon, 1 Jan 2018 10:00:00 +0100")
    assert hop.for_ == "multiple recipients"


def test_two_from_keywords_ibm():
    hop = parse_received(
        "from localhost\n\tby e06smtp10.uk.ibm.com with IBM ESMTP SMTP Gateway: Authorized Use Only! "
        "Violators will be prosecuted\n\tfor <lina.vailati@dududu.it> from <nicoletta_bernasconi@it.ibm.com>;"
        "\n\tWed, 8 Mar 2017 16:46:25 -0000")  # mail-parser mail_test_10
    assert hop.from_name == "localhost" and hop.by == "e06smtp10.uk.ibm.com"
    assert hop.for_ == "lina.vailati@dududu.it"
    assert hop.protocol == "IBM"


def test_tls_info_inside_with_clause():
    hop = parse_received("from [1.2.3.4] (helo=x) by mx.example with esmtps (TLS1.2) tls "
                         "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (Exim 4.94.2) (envelope-from <a@b>) id "
                         "1kX-0001; Mon, 1 Jan 2018 10:00:00 +0100")
    assert hop.protocol == "esmtps" and hop.id == "1kX-0001" and hop.software == "TLS1.2"


def test_id_ending_in_by_is_not_a_keyword():
    hop = parse_received("from a ([192.0.2.1]) by b.example with ESMTP id abc-By for <x@y>; "
                         "Mon, 1 Jan 2018 10:00:00 +0100")  # mail-parser PR #108
    assert hop.id == "abc-By" and hop.by == "b.example"


def test_content_filter_loopback_hop():
    hop = parse_received("from zimbra.iteca.kz ([127.0.0.1])\n\tby localhost (zimbra.iteca.kz [127.0.0.1]) "
                         "(amavisd-new, port 10032)\n\twith ESMTP id X; Mon, 1 Jan 2018 10:00:00 +0100")
    assert hop.is_loopback_client and hop.by == "localhost" and hop.by_ip == "127.0.0.1"


def test_sendmail_authenticated_but_esmtp():
    hop = parse_received("from User ([147.78.103.7])\n\t(authenticated bits=0)\n\tby mail.vilhelmina.net "
                         "(8.14.4/8.14.4/Debian-8+deb8u2) with ESMTP id 37B52g7E014839;\n\tFri, 11 Aug 2023 "
                         "07:02:42 +0200")
    assert hop.protocol == "ESMTP" and "authenticated bits=0" in hop.comments
    assert hop.from_ip == "147.78.103.7" and hop.software == "8.14.4/8.14.4/Debian-8+deb8u2"


def test_garbage_is_kept_raw_with_a_reason():
    hop = parse_received("\x00\x01 )))((( <<<< ;;;; ]]]] garbage")
    assert not hop.parsed and hop.reason
    assert hop.raw.startswith("\x00\x01")


def test_empty_by_host():
    hop = parse_received("from [129.212.207.5] (account captivatedm41@tin.it HELO idmktqmly.wpncbwhfbr.tin.it)\n"
                         "\tby  (Postfix)\n\twith esmtpa (Exim 4.86) id 4CA80EAC911C for e@virusnet.it; "
                         "Tue, 24 May 2016 13:09:41 +0100")  # mail-parser mail_malformed_1
    assert hop.by is None and hop.reason == "no 'by' host"
    assert hop.helo == "idmktqmly.wpncbwhfbr.tin.it" and hop.from_ip == "129.212.207.5"


def test_tokenizer_caps_nesting_and_length():
    tokens, defects = tokenize("(" * 10_000)
    assert any("nested too deeply" in d for d in defects)
    tokens, defects = tokenize("a " * 20_000)
    assert any("cut to" in d for d in defects) and len(tokens) <= 400
