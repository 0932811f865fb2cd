"""trace on real messages: mail-parser (Apache-2.0), phishing_pot (CC BY-NC, read in place), Exim's test suite."""

from __future__ import annotations

import datetime as dt

import pytest

from mailwarden.config import SiteConfig
from mailwarden.message.trace import trace_path
from tests.conftest import corpus_path

INFERRED = SiteConfig()


def one(path, site=INFERRED):
    errors = []
    traces = list(trace_path(path, site, errors=errors))
    assert not errors
    assert len(traces) == 1
    return traces[0]


def servers(*names):
    return SiteConfig().with_overrides(server_names=names)


def test_mdaemon_esmtpa_sample_1972_traced_by_its_admin():
    t = one(corpus_path("phishing_pot", "email", "sample-1972.eml"), servers("mail.servicodecampanhas.com.br"))
    assert t.verdict == "authenticated-account"
    assert t.account == "contato@servicodecampanhas.com.br"
    # The Received says "from [x.x.x.x]" (anonymised); X-MDRemoteIP of the bound block gives the IP.
    assert t.client_ip == "200.170.196.226"
    assert t.our_hop.id == "md50207311817.msg" and t.our_hop.software == "MDaemon PRO v15.0.0"
    assert t.received_at == dt.datetime(2023, 11, 23, 3, 20, 21, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert t.message_id == "20231123032014.b571cc0d-e1bd-4bc1-a21d-c99ce001d237@54.94.47.145"
    assert "DONIZETTI" in t.subject
    assert {(e.marker, e.bound) for e in t.auth_markers} == {("rfc3848-protocol", True), ("mdaemon-block", True)}
    assert not t.boundary.inferred


def test_mdaemon_sample_1972_traced_by_the_recipient_is_external():
    # Gmail's admin must not blame contato@ (another provider's account) for this message.
    t = one(corpus_path("phishing_pot", "email", "sample-1972.eml"))
    assert t.verdict == "external" and t.account is None
    assert t.client_ip == "54.94.47.145" and t.our_hop.by == "mx.google.com"
    assert t.boundary.inferred and "inferred" in t.boundary.description
    unbound = {e.marker: e.binding for e in t.uncorroborated}
    assert unbound["mdaemon-block"] == "names mail.servicodecampanhas.com.br, not one of our servers"
    assert t.next_action.startswith("mailwarden logs find ")
    assert "--message-id 20231123032014.b571cc0d" in t.next_action
    assert "--around 2023-11-22T22:20:23-08:00" in t.next_action


def test_postfix_authenticated_sender_mail_test_7():
    t = one(corpus_path("mail-parser", "mail_test_7"), servers("smtp.s2smtp.com"))
    assert (t.verdict, t.account, t.client_ip) == ("authenticated-account", "ctrstdicomsmtp", "79.0.200.161")
    assert t.our_hop.id == "67A957337" and t.client_helo == "voidstudicom.it"
    # the MDaemon X-Authenticated-Sender below (written before our server) is only shown
    md = [e for e in t.auth_markers if e.marker == "mdaemon-block"]
    assert md and not md[0].bound and md[0].account == "geronazzo@voidstudicom.it"


def test_mail_test_7_traced_at_the_mdaemon_server():
    t = one(corpus_path("mail-parser", "mail_test_7"), servers("voidstudicom.it"))
    assert (t.verdict, t.account) == ("authenticated-account", "geronazzo@voidstudicom.it")
    assert t.our_hop.id == "md50000234499.msg" and t.client_helo == "COMP02.CSC.local"
    assert t.client_ip is None  # MDaemon wrote no IP and no X-MDRemoteIP


def test_cpanel_exim_mail_test_4():
    t = one(corpus_path("mail-parser", "mail_test_4"), servers("localhost.localdomain.com"))
    assert (t.verdict, t.account, t.client_ip, t.client_helo) == (
        "authenticated-account", "quazi.limon@revesoft.com", "86.187.174.57", "User")
    assert t.our_hop.id == "1bakrE-000291-LF"
    assert any(e.marker == "cpanel-authenticated-sender" and e.binding == "names our server localhost.localdomain.com"
               for e in t.auth_markers)


def test_cpanel_marker_naming_another_host_does_not_decide():
    t = one(corpus_path("mail-parser", "mail_test_4"), servers("mx03.futurequest.net"))
    assert t.verdict == "external" and t.client_ip == "208.74.72.248"
    assert all(not e.bound for e in t.auth_markers)


def test_sendmail_local_submission_mail_test_17():
    t = one(corpus_path("mail-parser", "mail_test_17"), servers("vps-051e4cda.vps.ovh.net"))
    assert (t.verdict, t.account) == ("local-submission", "www-data")
    assert t.our_hop.id == "29AKBWwn005317"
    assert "www-data" in t.next_action


def test_exchange_authas_anonymous_is_not_authentication():
    t = one(corpus_path("mail-parser", "mail_test_17"), servers("apcnhub11.correo.local"))
    assert t.verdict == "external" and t.client_ip == "200.57.129.98"
    ex = [e for e in t.auth_markers if e.marker == "exchange-authas"][0]
    assert ex.bound and ex.kind == "anonymous"


def test_qmail_smtp_auth_mail_test_9():
    t = one(corpus_path("mail-parser", "mail_test_9"), servers("0"))
    assert (t.verdict, t.account, t.client_ip) == ("authenticated-account", "zyb@sgis.com.cn", "223.152.177.168")


def test_qmail_inferred_mail_test_9_external():
    t = one(corpus_path("mail-parser", "mail_test_9"))
    assert (t.verdict, t.client_ip, t.client_helo) == ("external", "218.15.33.11", "sgis.com.cn")
    assert t.our_hop.index == 1  # the comment-only qmail stamp at 0 is skipped


def test_outlook_msg_traced():
    t = one(corpus_path("mail-parser", "mail_outlook_1"))
    assert t.message_id == "20170918100018.6AE0948009C@www.w-vwa.de"
    assert t.verdict == "external" and t.client_ip == "195.189.93.103"


def test_no_received_is_unknown_with_reason():
    t = one(corpus_path("mail-parser", "mail_test_16"))
    assert t.verdict == "unknown" and t.reason == "no Received headers"
    assert "--server-name" in t.next_action


@pytest.mark.parametrize(("name", "protocol"), [("3400.userx10", "esmtpa"), ("3411.userx", "esmtpa")])
def test_exim_testsuite_esmtpa(name, protocol):
    traces = list(trace_path(corpus_path("exim-testsuite", "mail", name), INFERRED, errors=[]))
    assert traces and all(t.verdict == "authenticated-account" for t in traces)
    assert traces[0].our_hop.protocol == protocol and traces[0].our_hop.by == "myhost.test.ex"
    assert traces[0].our_hop.id.startswith("10Hm")


def test_exim_testsuite_local_submission():
    traces = list(trace_path(corpus_path("exim-testsuite", "mail", "0014.userx"), INFERRED, errors=[]))
    assert len(traces) == 2
    assert all((t.verdict, t.account) == ("local-submission", "CALLER") for t in traces)


def test_exim_testsuite_every_mbox_traces():
    root = corpus_path("exim-testsuite", "mail")
    errors = []
    traces = list(trace_path(root, INFERRED, errors=errors))
    assert len(traces) > 500
    verdicts = {t.verdict for t in traces}
    assert {"authenticated-account", "local-submission", "external"} <= verdicts
    assert len(errors) < len(traces) // 20


def test_phishing_pot_cpanel_samples_are_not_blamed_by_the_recipient():
    """Every phishing_pot sample arrived at Outlook/Gmail: the recipient's view is never 'authenticated'."""
    root = corpus_path("phishing_pot", "email")
    errors = []
    traces = list(trace_path(root, INFERRED, errors=errors))
    assert len(traces) == 309 and not errors
    assert not [t.source for t in traces if t.verdict == "authenticated-account"]
    cpanel = [t for t in traces if any(e.marker == "cpanel-authenticated-sender" for e in t.auth_markers)]
    assert len(cpanel) >= 20
    assert all(not e.bound for t in cpanel for e in t.auth_markers if e.marker == "cpanel-authenticated-sender")


def test_phishing_pot_cpanel_sample_traced_by_that_host():
    t = one(corpus_path("phishing_pot", "email", "sample-5867.eml"), servers("ws3.angoweb.net"))
    assert (t.verdict, t.account, t.client_ip) == ("authenticated-account", "job.felix@bakhacenter.co.ao", "212.56.53.144")
    assert t.client_helo == "[127.0.0.1]"


def test_phishing_pot_postfix_amavis_loop_sample_4701():
    # Postfix -> amavis (127.0.0.1) -> Postfix -> amavis -> Postfix: walk past the loopback hops.
    t = one(corpus_path("phishing_pot", "email", "sample-4701.eml"), servers("mail.jljempresas.com.br", "localhost"))
    assert (t.verdict, t.client_ip) == ("authenticated-account", "85.208.139.29")
    assert t.our_hop.protocol == "ESMTPSA" and t.our_hop.id == "0910D46EBA1F"


def test_phishing_pot_cpanel_exim_local_with_script():
    t = one(corpus_path("phishing_pot", "email", "sample-5631.eml"), servers("server.silverfoxmarketingstl.com"))
    # cPanel also wrote X-Authenticated-Sender for this PHP mail(); our hop says "with local".
    assert (t.verdict, t.rule, t.account) == ("local-submission", "hop-local", "ilverfp0")
    assert t.our_hop.protocol == "local"
    assert "wp-login.php" in t.next_action and "213.209.150.137" in t.next_action
    php = [e for e in t.auth_markers if e.marker == "php-originating-script"]
    assert {e.uid for e in php} == {"1002", None} and all(e.bound for e in php)


@pytest.mark.parametrize(("sample", "server", "verdict", "account", "client_ip", "rule"), [
    # Haraka: ESMTPSA + sendmail-style "(authenticated bits=0)"; a qmail uid stamp above it is a re-injection
    ("sample-5773.eml", "smtp.correoseguro.co", "authenticated-account", None, "185.228.81.46", "bound-auth"),
    # Postfix "(Authenticated sender: x)"; the Received line appears twice in the sample
    ("sample-1049.eml", "saasauth0006.smtpdlv.com.br", "authenticated-account", "cleonicedav212", "216.238.98.232", "bound-auth"),
    # qmail SMTP-AUTH "(user@domain@ip)" without brackets, "by 0 with ESMTPA"
    ("sample-4441.eml", "0", "authenticated-account", "yesenia@swipe.com.mx", "98.82.12.112", "bound-auth"),
    # Postfix pickup "(Postfix, from userid 10146)" + X-PHP-Originating-Script 10146:mailer.php
    ("sample-1111.eml", "plesklinux001.mandichost.com.br", "local-submission", "10146", None, "hop-local"),
    # cPanel Exim "with local" + X-PHP-Script ... for 43.255.28.145 (+ cPanel X-Authenticated-Sender)
    ("sample-150.eml", "calid920.hostpapavps.net", "local-submission", "calid765", None, "hop-local"),
    # cPanel Exim esmtpsa + X-Authenticated-Sender: ecres231.servconfig.com: it@noble-school.net
    ("sample-137.eml", "ecres231.servconfig.com", "authenticated-account", "it@noble-school.net", "82.180.146.137", "bound-auth"),
])
def test_phishing_pot_markers_traced_by_the_sending_server(sample, server, verdict, account, client_ip, rule):
    t = one(corpus_path("phishing_pot", "email", sample), servers(server))
    assert (t.verdict, t.account, t.client_ip, t.rule) == (verdict, account, client_ip, rule)


def test_php_script_names_the_web_client():
    t = one(corpus_path("phishing_pot", "email", "sample-150.eml"), servers("calid920.hostpapavps.net"))
    assert "sendtoafriend_ajax.php" in t.next_action and "43.255.28.145" in t.next_action
    t = one(corpus_path("phishing_pot", "email", "sample-1111.eml"), servers("plesklinux001.mandichost.com.br"))
    assert "web script mailer.php" in t.next_action and "uid 10146" in t.next_action
