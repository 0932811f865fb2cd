"""The marker registry is complete, and each marker fires on a real header line it was written for."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import mailwarden.message.markers as markers_pkg
from mailwarden.message.markers import MARKERS, HeaderView
from mailwarden.message.received import parse_chain

# One real header block per marker (quoted from ../shared/reference/forensics-and-log-tools.md 4
# and mdaemon-formats.md 2.5, or from mail-parser samples), with what the marker must extract.
CASES = {
    "rfc3848-protocol": ([("Received", "from x ([1.2.3.4]) by smtp.gmail.com with ESMTPSA id q5; Wed, 26 Jul 2023 10:59:04 -0700")],
                         {"kind": "authenticated", "client_ip": "1.2.3.4", "hop_index": 0}),
    "postfix-authenticated-sender": ([("Received", "from bg.as51430.net (unknown [37.46.117.90]) (using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits)) (No client certificate requested) (Authenticated sender: info@shoetagz.com) by ip-172-31-8-45.us-west-2.compute.internal (Postfix) with ESMTPSA id EFCBA1B9F824 for <phishing@pot>; Wed, 28 Jun 2023 10:00:00 +0000")],
                                     {"account": "info@shoetagz.com", "client_ip": "37.46.117.90"}),
    "postfix-local-userid": ([("Received", "by mail.example.com (Postfix, from userid 33) id 4F1A2B3C; Mon, 1 Jan 2018 10:00:00 +0100")],
                             {"kind": "local", "uid": "33"}),
    "sendmail-authenticated": ([("Received", "from User ([147.78.103.7]) (authenticated bits=0) by mail.vilhelmina.net (8.14.4/8.14.4/Debian-8+deb8u2) with ESMTP id 37B52g7E014839; Fri, 11 Aug 2023 07:02:42 +0200")],
                               {"kind": "authenticated", "client_ip": "147.78.103.7", "account": None}),
    "sendmail-local-submission": ([("Received", "(from www-data@localhost) by vps-051e4cda.vps.ovh.net (8.15.2/8.15.2/Submit) id 29AKBWwn005317; Mon, 10 Oct 2022 20:11:32 GMT")],
                                  {"kind": "local", "account": "www-data"}),
    "cpanel-authenticated-sender": ([("X-Authenticated-Sender", "host4.ns.co.th: shore@suksapan.or.th")],
                                    {"account": "shore@suksapan.or.th", "names_host": "host4.ns.co.th"}),
    "exim-local": ([("Received", "from CALLER by myhost.test.ex with local (Exim x.yz) (envelope-from <CALLER@myhost.test.ex>) id 10HmaX-000000005vi-0000 for userx@myhost.test.ex; Tue, 2 Mar 1999 09:44:33 +0000")],
                   {"kind": "local", "account": "CALLER"}),
    "mdaemon-block": ([("X-Spam-Processed", "mail.goodgoodled.xyz, Wed, 17 Jul 2019 04:37:44 +0800"),
                       ("X-Authenticated-Sender", "abbey@goodgoodled.xyz"), ("X-MDRemoteIP", "106.114.23.249")],
                      {"account": "abbey@goodgoodled.xyz", "client_ip": "106.114.23.249", "names_host": "mail.goodgoodled.xyz"}),
    "exchange-authas": ([("X-MS-Exchange-Organization-AuthSource", "APCNHUB11.correo.local"),
                         ("X-MS-Exchange-Organization-AuthAs", "Internal")],
                        {"kind": "authenticated", "names_host": "apcnhub11.correo.local"}),
    "exchange-mapi": ([("Received", "from KAXPR01MB0000.jpnprd01.prod.outlook.com ([fe80::d943:55cc:ec54:4033]) by KAXPR01MB0000.jpnprd01.prod.outlook.com ([fe80::d943:55cc:ec54:4033%9]) with mapi id 15.20.6792.28; Mon, 2 Oct 2023 19:58:22 +0000")],
                      {"kind": "authenticated", "client_ip": "fe80::d943:55cc:ec54:4033"}),
    "auth-results-smtp-auth": ([("Authentication-Results", "relay.mailchannels.net; auth=pass smtp.auth=nocmonitoringorg smtp.mailfrom=ifdlae@inbridgepvt.com")],
                               {"account": "nocmonitoringorg", "names_host": "relay.mailchannels.net"}),
    "authenticated-user-header": ([("X-Authenticated-User", "secm41@hipolabor.com.br")],
                                  {"account": "secm41@hipolabor.com.br", "names_host": None}),
    "qmail-invoked-by-uid": ([("Received", "(qmail 20975 invoked by uid 0); 17 Nov 2022 12:27:44 -0000")],
                             {"kind": "local", "uid": "0"}),
    "qmail-smtp-auth": ([("Received", "from unknown (HELO ljhw) (zyb@sgis.com.cn@[223.152.177.168]) (envelope-sender <zyb@sgis.com.cn>) by 0 (magicmail) with SMTP for <webmaster@khaleejtimes.com>; 26 Dec 2016 05:32:02 -0000")],
                        {"account": "zyb@sgis.com.cn", "client_ip": "223.152.177.168"}),
    "php-originating-script": ([("X-PHP-Originating-Script", "1002:PHPMailer.php")],
                               {"kind": "local", "uid": "1002", "script": "PHPMailer.php"}),
}


def _find(name, items):
    headers = HeaderView(items)
    hops = parse_chain([v for _i, v in headers.all("Received")])
    return MARKERS.get(name).find(headers, hops)


def test_every_marker_module_is_registered_and_has_a_case():
    modules = {m.name for m in pkgutil.iter_modules(markers_pkg.__path__)} - {"base"}
    registered_modules = {type(m).__module__.rsplit(".", 1)[1] for m in MARKERS}
    assert modules == registered_modules, "a markers/ module is not registered in markers/__init__.py"
    for module in modules:
        importlib.import_module(f"mailwarden.message.markers.{module}")
    assert set(MARKERS.names()) == set(CASES), "every marker needs a real sample in CASES"
    assert all(m.description for m in MARKERS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_marker_finds_its_evidence(name):
    items, expected = CASES[name]
    found = _find(name, items)
    assert len(found) == 1, found
    evidence = found[0].to_json()
    for key, value in expected.items():
        assert evidence[key] == value, key
    assert evidence["marker"] == name and evidence["bound"] is False  # binding is trace's job


def test_markers_ignore_lookalikes():
    assert _find("cpanel-authenticated-sender", [("X-Authenticated-Sender", "user@example.com")]) == []
    assert _find("mdaemon-block", [("X-Authenticated-Sender", "host4.ns.co.th: shore@suksapan.or.th"),
                                   ("X-Spam-Processed", "x.example, Mon, 1 Jan 2018")]) == []
    assert _find("qmail-invoked-by-uid", [("Received", "(qmail 4441 invoked from network); 2 Feb 2023 01:42:45 -0000")]) == []
    # a uid stamp above a network hop is a re-injection (qmail-scanner), not the origin
    assert _find("qmail-invoked-by-uid", [
        ("Received", "(qmail 11857 invoked by uid 8061); 26 Dec 2016 05:32:04 -0000"),
        ("Received", "from 223.152.177.168 by mail.sgis.com.cn with qmail-scanner-1.24; 26 Dec 2016 05:32:04 -0000")]) == []
    assert _find("rfc3848-protocol", [("Received", "from a ([1.2.3.4]) by b with ESMTPS id 1; Mon, 1 Jan 2018 10:00:00 +0100")]) == []
