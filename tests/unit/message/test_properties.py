"""Property tests: no exception escapes the Received parser or trace, and no input takes > 100 ms.

The time bound is a hang guard (catastrophic backtracking, quadratic loops), not a benchmark.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailwarden.config import SiteConfig
from mailwarden.errors import InputError
from mailwarden.message.received import parse_received
from mailwarden.message.trace import trace_bytes

BOUND = 0.100
SITE = SiteConfig().with_overrides(server_names=["mx.example.com"], trusted_networks=["10.0.0.0/8"])

# Pieces real Received lines are made of, so the generator reaches deep parser states.
PIECES = st.sampled_from([
    "from", "by", "with", "id", "for", "via", "(", ")", "[", "]", "<", ">", ";", '"', "\\", " ", "\t", "\r\n ",
    "ESMTPSA", "esmtpa", "local", "mapi", "[192.0.2.1]", "[IPv6:2001:db8::1]", "(helo=x)", "(HELO y)",
    "(Authenticated sender: a@b)", "(authenticated bits=0)", "unknown", "mx.example.com", "qmail 1 invoked by uid 0",
    "Mon, 1 Jan 2018 10:00:00 +0100", "2020-06-17 16:39:24.757 +0000 UTC", "md50000000001.msg", "%9", ":25",
])
RECEIVED = st.one_of(st.text(max_size=400), st.lists(PIECES, max_size=120).map("".join))

HEADER_NAMES = st.sampled_from([
    "Received", "X-Authenticated-Sender", "X-MDRemoteIP", "X-Spam-Processed", "Subject", "From", "Message-ID",
    "X-MS-Exchange-Organization-AuthAs", "X-MS-Exchange-Organization-AuthSource", "Authentication-Results",
    "X-PHP-Originating-Script", "X-Get-Message-Sender-Via", "X-MDHelo", "X-MDArrival-Date", "Date",
])


def timed(fn, *args):
    """Run ``fn`` and assert it took < 100 ms. Over the bound, run it once more and keep the
    faster time: on this shared 2-core machine a scheduler stall or GC pause can cost 100 ms,
    while a real hang (backtracking, quadratic loop) is slow on both runs."""
    best = None
    for _attempt in range(2):
        start = time.perf_counter()
        result = fn(*args)
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
        if best < BOUND:
            return result
    raise AssertionError(f"{best * 1000:.1f} ms (bound {BOUND * 1000:.0f} ms)")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECEIVED)
def test_received_parser_never_raises_and_is_fast(value):
    hop = timed(parse_received, value, 0)
    assert hop.raw is not None
    assert hop.parsed or hop.reason


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(HEADER_NAMES, RECEIVED), min_size=0, max_size=25), st.binary(max_size=200))
def test_trace_never_raises_and_is_fast(fields, tail):
    data = b"".join(f"{name}: {value}".encode("utf-8", "surrogateescape").replace(b"\n", b"\n ") + b"\n"
                    for name, value in fields) + b"\n" + tail
    try:
        trace = timed(trace_bytes, data, SITE)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert trace.verdict in {"authenticated-account", "internal-host", "local-submission", "external", "unknown"}
    assert trace.to_json()["verdict"] == str(trace.verdict)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_trace_arbitrary_bytes(data):
    try:
        timed(trace_bytes, data, SITE)
    except InputError:
        pass


def test_hostile_headers_regressions():
    nested = b"Received: " + b"(" * 5000 + b"\n\n"
    long_comment = b"Received: from a (" + b"x " * 3000 + b") by b; Mon, 1 Jan 2018 10:00:00 +0100\n\n"
    many = b"".join(b"Received: from a ([1.2.3.4]) by b with ESMTPA id %d; Mon, 1 Jan 2018 10:00:00 +0100\n" % i
                    for i in range(2000)) + b"\n"
    subject = b"Subject: " + b"=?utf-8?q?" + b"=41" * 200_000 + b"?=\n\n"
    addr = b"From: " + b"<" * 50_000 + b"\n\n"
    for data in (nested, long_comment, subject, addr):
        try:
            timed(trace_bytes, data, SITE)
        except InputError as exc:  # the 600 KB Subject line is refused, in one line
            assert str(exc) == "-: a header line longer than 64 KiB (refused)"
    start = time.perf_counter()
    trace_bytes(many, SITE)  # 2000 hops: linear, well under a second
    assert time.perf_counter() - start < 2.0
