"""Rendering a digest: jinja2 + premailer once per issue, French by default, escaped, small."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from newsletter.config import Config
from newsletter.content import IssueView, LinkView
from newsletter.errors import NewsletterError
from newsletter.i18n import format_date, gettext, translations
from newsletter.sending.render import (
    UNSUBSCRIBE_URL_PLACEHOLDER,
    render_digest,
    render_email,
)
from newsletter.templating import paragraphs
from tests.conftest import ConfigFactory


def make_view(count: int = 3, **changes: object) -> IssueView:
    links = tuple(
        LinkView(
            url=f"https://www.lemonde.fr/article-{i}?a=1&b=2",
            title=f"« Civic Tech » : des applis pour la ville n°{i}",
            source="Le Monde",
            excerpt=(
                "Des jeunes pousses veulent redonner envie de participer à la vie locale : "
                "signaler un trottoir cassé, proposer une piste cyclable, voter un budget.\n\n"
                "Reste à savoir si les élus liront vraiment les avis déposés."
            ),
        )
        for i in range(count)
    )
    values: dict[str, object] = {
        "number": 24,
        "subject": "Les liens CivicTech de la semaine #24",
        "intro": "Bonjour à toutes et à tous !\n\nTrois semaines de liens d’un coup 😉",
        "date": date(2026, 11, 29),
        "links": links,
    }
    values.update(changes)
    return IssueView(**values)  # type: ignore[arg-type]


@pytest.fixture
def cfg(make_config: ConfigFactory, sqlite_url: str) -> Config:
    return make_config(sqlite_url)


def test_digest_html_has_inline_styles_media_query_and_no_external_resources(cfg: Config) -> None:
    """The digest's HTML carries inline style= attributes, keeps a phone media query and loads
    no external CSS or web fonts."""
    rendered = render_digest(cfg, make_view())
    assert 'style="' in rendered.html
    assert "@media only screen and (max-width: 480px)" in rendered.html
    assert "max-width:640px" in rendered.html
    assert 'name="viewport"' in rendered.html
    assert "<link" not in rendered.html
    assert "@import" not in rendered.html and "@font-face" not in rendered.html


def test_digest_shows_content_footer_and_archive_link(cfg: Config) -> None:
    """Titles, sources, excerpts, the intro, the archive link, the unsubscribe placeholder and
    the postal address appear in both the HTML and the text part."""
    rendered = render_digest(cfg, make_view())
    for body in (rendered.html, rendered.text):
        assert "n°2" in body
        assert "Le Monde" in body or "LE MONDE" in body
        assert "signaler un trottoir cassé" in body
        assert "Trois semaines de liens" in body
        assert "https://liens.example.org/archive/24" in body
        assert UNSUBSCRIBE_URL_PLACEHOLDER in body
        assert "12 rue de la Paix, 75002 Paris, France" in body
    assert "dimanche 29 novembre 2026" in rendered.text
    assert "Se désabonner" in rendered.html
    assert rendered.subject == "Les liens CivicTech de la semaine #24"


def test_text_part_lists_each_link_with_its_url(cfg: Config) -> None:
    """The plain-text part is its own template: numbered items each followed by the URL."""
    text = render_digest(cfg, make_view(2)).text
    assert "1. « Civic Tech » : des applis pour la ville n°0\n" in text
    assert "   https://www.lemonde.fr/article-1?a=1&b=2\n" in text
    assert "<p" not in text and "&amp;" not in text


def test_editor_text_is_escaped_in_html(cfg: Config) -> None:
    """Markup in titles, excerpts and URLs is escaped, never interpreted."""
    link = LinkView(
        url='https://example.org/?q="><script>alert(1)</script>',
        title="<img src=x onerror=alert(1)>",
        source="<b>Source</b>",
        excerpt="<script>evil()</script>",
    )
    rendered = render_digest(cfg, make_view(links=(link,)))
    assert "<script>" not in rendered.html
    assert "<img src=x" not in rendered.html
    assert "&lt;img src=x onerror=alert(1)&gt;" in rendered.html


def test_forty_link_issue_stays_under_gmail_clipping(cfg: Config) -> None:
    """A 40-link issue with long excerpts renders to less than 102 KB of HTML."""
    rendered = render_digest(cfg, make_view(40))
    assert len(rendered.html.encode("utf-8")) < 102 * 1024


def test_english_language_setting_switches_strings(
    make_config: ConfigFactory, sqlite_url: str
) -> None:
    """With [list] language = "en" the template strings are English."""
    cfg = make_config(sqlite_url, list__language="en")
    rendered = render_digest(cfg, make_view())
    assert "Unsubscribe" in rendered.html and "Se désabonner" not in rendered.html
    assert "Sunday, 29 November 2026" in rendered.text  # CLDR en_GB full date


def test_render_email_unknown_kind_and_missing_subject(cfg: Config) -> None:
    """render_email names a missing template or a missing subject."""
    with pytest.raises(NewsletterError, match="no-such-kind"):
        render_email(cfg, "no-such-kind", {"subject": "x"})
    with pytest.raises(NewsletterError, match="subject"):
        render_email(cfg, "digest", {})


def test_i18n_catalogue_plural_and_fallback() -> None:
    """French plurals treat 0 and 1 as singular; unknown msgids fall back to English."""
    fr = translations("fr")
    assert fr.ngettext("%(num)s link", "%(num)s links", 1) == "%(num)s lien"
    assert fr.ngettext("%(num)s link", "%(num)s links", 0) == "%(num)s lien"
    assert fr.ngettext("%(num)s link", "%(num)s links", 2) == "%(num)s liens"
    assert gettext("fr")("A string nobody translated") == "A string nobody translated"
    assert gettext("fr")("Unsubscribe") == "Se désabonner"
    assert format_date(date(2026, 8, 1), "fr") == "1 août 2026"


def test_paragraphs_splits_on_blank_lines() -> None:
    """Plain text becomes paragraphs at blank lines; single line breaks are joined."""
    assert paragraphs("a\nb\n\n\nc\r\n") == ["a b", "c"]


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 700])
def test_digest_fits_phone_and_desktop_widths(browser: Any, cfg: Config, width: int) -> None:
    """In headless Chromium the 40-link digest has no horizontal scroll at 375 px (phone, the
    media query applies) or 700 px (desktop), and its text stays at a readable size."""
    long_link = LinkView(
        url="https://example.org/" + "x" * 300,
        title="Unmotsanslespacesquinefinitjamais" * 4,
        source="Source",
        excerpt="https://example.org/" + "y" * 200,
    )
    view = make_view(40)
    html = render_digest(cfg, make_view(links=(long_link, *view.links))).html
    page = browser.new_page(viewport={"width": width, "height": 800})
    page.route("**/*", lambda route: route.abort())  # no network, ever
    page.set_content(html)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    padding = page.evaluate("getComputedStyle(document.querySelector('.content')).paddingLeft")
    size = page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('.item blockquote p')).fontSize)"
    )
    assert scroll_width <= width
    assert padding == ("16px" if width == 375 else "28px")
    assert size >= 15
