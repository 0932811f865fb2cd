"""`mailwarden report`: one self-contained page, everything from the logs escaped."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser

from mailwarden.hunt.report import CSS, csp
from tests.conftest import DATA

HOSTILE = DATA / "hunt" / "hostile-postfix.log"
SPAMBOTS = DATA / "hunt" / "postfix-spambots.log"


class Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Elements:
    p = Elements()
    p.feed(page)
    return p


def test_hostile_fields_are_text_not_markup(run_cli, tmp_path):
    out = tmp_path / "r.html"
    result = run_cli("report", HOSTILE, "--year", "2026", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert result.json()["over_alarm"] == 1
    page = out.read_text()
    doc = parse(page)
    tags = {t for t, _ in doc.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "base", "form"}
    assert [t for t, _ in doc.tags].count("style") == 1
    assert not any(k.startswith("on") for _, attrs in doc.tags for k in attrs)
    # The payloads are there, as text: the user name (suspect), the HELO and sender (sessions).
    text = "".join(doc.text)
    assert "onerror=\"document.title='pwned-user'\"" in text
    assert "<script>document.title='PWNED-helo'</script>" in text
    assert "</style><script>document.title='PWNED-sender'</script>" in text
    assert "<iframe src=javascript:alert(2)>" in text   # from the raw transcript lines


def test_page_is_self_contained_with_a_strict_csp(run_cli, tmp_path):
    out = tmp_path / "r.html"
    assert run_cli("report", SPAMBOTS, "--year", "2026", "-o", out).exit_code == 0
    page = out.read_text()
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page)
    assert "@import" not in page and "url(" not in page
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src 'none'" in policy and "script-src 'none'" in policy
    digest = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy == csp()
    assert f"<style>{CSS}</style>" in page   # the hash pins exactly this stylesheet


def test_report_content(run_cli, tmp_path):
    out = tmp_path / "r.html"
    run_cli("report", SPAMBOTS, "--year", "2026", "-o", out)
    doc = parse(out.read_text())
    text = " ".join("".join(doc.text).split())
    assert "3 suspect(s) over the alarm line" in text
    for name in ("carol@example.com", "bob@example.com", "192.168.1.77"):
        assert name in text
    svgs = [a for t, a in doc.tags if t == "svg"]
    assert len(svgs) >= 3
    labels = [d for d in doc.text if d in ("messages", "failed AUTH", "distinct client IPs")]
    assert {"messages", "failed AUTH", "distinct client IPs"} <= set(labels)
    # bob's timeline shows his 8 failed AUTH; carol's top session has 20 recipients.
    assert "max 8" in text
    assert "DESKTOP-7Q3K2LP" in text
    assert "sasl_username=carol@example.com" in text   # raw transcript line


def test_unwritable_output_is_a_clear_error(run_cli, tmp_path):
    result = run_cli("report", SPAMBOTS, "--year", "2026", "-o", tmp_path / "no" / "dir" / "r.html")
    assert result.exit_code == 4
    assert "cannot write" in result.output
