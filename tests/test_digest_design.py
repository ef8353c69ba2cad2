"""The Sunday email as a reader gets it: masthead, tags, footer, a visible summary instead of
hidden preheader text, a text part wrapped at 72 columns, its size, its date and its
SpamAssassin score."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from newsletter.config import Config
from newsletter.content import issue_day
from newsletter.errors import ConfigError
from newsletter.schedule.policy import nearest_slot, weekly_schedule
from tests.harness import IN_CI
from tools.sample_issue import build_sample, sample_config, spamassassin_score


@pytest.fixture
def sample_cfg(tmp_path: Path) -> Config:
    return sample_config(tmp_path)


def text_part(eml: bytes) -> str:
    message = email.message_from_bytes(eml, policy=email.policy.default)
    body = message.get_body(("plain",))
    assert isinstance(body, email.message.EmailMessage)
    return str(body.get_content())


def test_forty_links_stay_small_and_the_text_is_wrapped(sample_cfg: Config) -> None:
    """With 40 links the HTML part is under 60 KB, and every text line is at most 72 columns
    unless it is one unbroken URL; every link's URL is whole on a line."""
    sample = build_sample(sample_cfg, 40)
    assert len(sample.html.encode()) < 60 * 1024
    text = text_part(sample.eml)
    long_lines = [line for line in text.splitlines() if len(line) > 72]
    assert all(re.fullmatch(r"\s*https?://\S+", line) for line in long_lines), long_lines
    urls = re.findall(r'<h2[^>]*><a href="([^"]+)"', sample.html)
    assert len(urls) == 40
    assert all(any(line.strip() == url for line in text.splitlines()) for url in urls)


def test_masthead_tags_footer_and_visible_summary(tmp_path: Path) -> None:
    """The masthead carries the logo (alt: the list name) and the accent colour; each link
    shows its tags; the footer links the archive, a subscribe page for forwarded copies and
    the unsubscribe link, and prints the postal address; the summary at the top is plain
    visible text, not hidden same-colour text."""
    config = sample_config(
        tmp_path,
        {"list": {"logo_url": "https://liens.example.org/logo.png", "accent_color": "#7b2d8e"}},
    )
    sample = build_sample(config, 3)
    html = sample.html
    assert '<img src="https://liens.example.org/logo.png" alt="Les liens CivicTech"' in html
    assert "border-top:6pxsolid#7b2d8e" in html.replace(" ", "")
    assert html.count('class="tags"') == 3 and "démocratie · logiciel libre" in html
    assert 'href="https://liens.example.org/archive"' in html
    assert 'href="https://liens.example.org/"' in html and "S’inscrire</a>" in html
    assert 'href="@@UNSUBSCRIBE_URL@@"' in html  # each reader's own link, put in per message
    assert "/u/InRva2VuIg.sample-signature" in text_part(sample.eml)
    assert "12 rue de la Paix, 75002 Paris, France" in html
    assert "Au sommaire\u202f: Des outils numériques" in html
    assert "display:none" not in html.replace(" ", "") and "font-size:1px" not in html
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "prefers-color-scheme: dark" in html


def test_without_a_logo_the_masthead_is_the_list_name(sample_cfg: Config) -> None:
    """With no logo URL the masthead shows the list's name as text, in the default accent."""
    html = build_sample(sample_cfg, 1).html
    masthead = re.search(r'<td class="masthead"[^>]*>([^<]*)</td>', html)
    assert masthead is not None and masthead.group(1) == "Les liens CivicTech"
    assert "#1d5e9c" in html and "<img" not in html


def test_a_bad_accent_colour_or_logo_url_is_refused(tmp_path: Path) -> None:
    """Start-up refuses an accent colour that is not #RRGGBB, and a logo URL that is not web."""
    with pytest.raises(ConfigError, match="accent_color"):
        sample_config(tmp_path, {"list": {"accent_color": "red; background: url(x)"}})
    with pytest.raises(ConfigError, match="logo_url"):
        sample_config(tmp_path, {"list": {"logo_url": "javascript:alert(1)"}})


def test_an_issue_is_dated_by_its_weekly_slot(sample_cfg: Config) -> None:
    """An issue assembled on Monday is dated the Sunday before; on Saturday, the Sunday
    after; at the slot itself, that Sunday (Europe/Paris, Sundays 08:00)."""
    schedule = weekly_schedule("sun", "08:00", "Europe/Paris")
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert nearest_slot(schedule, monday) == datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    assert issue_day(sample_cfg, monday) == date(2026, 11, 29)
    assert issue_day(sample_cfg, datetime(2026, 12, 5, 18, 0, tzinfo=UTC)) == date(2026, 12, 6)
    assert issue_day(sample_cfg, datetime(2026, 12, 6, 7, 0, tzinfo=UTC)) == date(2026, 12, 6)


def test_spamassassin_scores_a_forty_link_issue_at_most_half_a_point(sample_cfg: Config) -> None:
    """SpamAssassin, offline (-L), gives the 40-link issue 0.5 points or fewer."""
    scored = spamassassin_score(build_sample(sample_cfg, 40).eml)
    if scored is None:
        if IN_CI:
            pytest.fail("required in CI: spamassassin (apt install spamassassin)")
        pytest.skip("spamassassin is not installed")
    score, report = scored
    assert score <= 0.5, report
