"""The safe fetcher and the card it feeds, against a real HTTP server on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from newsletter.errors import FetchError
from newsletter.intake.addresses import IPAddress
from newsletter.intake.fetcher import FetchPolicy, fetch
from newsletter.services.intake import Card, fetch_card
from tests.intake_support import BIG_BYTES, HOST, PageServer, page_server

ALLOW = (ipaddress.ip_network(f"{HOST}/32"),)


@pytest.fixture(scope="module")
def pages() -> Iterator[PageServer]:
    with page_server() as server:
        yield server


def policy(**kw: object) -> FetchPolicy:
    return FetchPolicy(allow=ALLOW, **kw)  # type: ignore[arg-type]


def card(pages: PageServer, path: str, **kw: object) -> Card:
    return fetch_card(pages.base + path, policy(**kw))


def test_opengraph_page_gives_title_site_name_and_description(pages: PageServer) -> None:
    """og:title, og:site_name and og:description fill the card; rel=canonical is the URL."""
    got = card(pages, "/og")
    assert got.title == "Le vélo gagne du terrain dans les villes moyennes"
    assert got.source == "Le Journal des Villes"
    assert got.excerpt.startswith("Pistes, stationnement, budgets")
    assert got.url == pages.base + "/og"


def test_jsonld_page_gives_publisher_and_first_paragraphs(pages: PageServer) -> None:
    """Without OpenGraph, the JSON-LD publisher is the source, the title loses its site
    suffix and the excerpt is the first paragraphs of the article, not the navigation."""
    got = card(pages, "/jsonld")
    assert got.title == "Open data : les communes publient enfin leurs budgets"
    assert got.source == "Territoires Numériques"
    assert got.excerpt.startswith("Depuis le 1er octobre, plus de trois cents communes")
    assert "comptes administratifs" in got.excerpt
    assert "troisième paragraphe" not in got.excerpt
    assert "Accueil" not in got.excerpt


def test_title_only_page_uses_title_and_readable_domain(pages: PageServer) -> None:
    """A page with only a <title>: the pipe suffix goes, the source is the domain."""
    got = card(pages, "/title-only")
    assert got.title == "Pourquoi les budgets participatifs plafonnent"
    assert got.source == HOST
    assert got.excerpt.startswith("Les budgets participatifs ont essaimé")


def test_latin1_page_without_charset_is_decoded(pages: PageServer) -> None:
    """Latin-1 bytes with no declared charset decode to the right accents."""
    got = card(pages, "/latin1")
    assert got.title == "Élections à Besançon : le débat numérique"
    assert "débattu des données publiques" in got.excerpt


def test_five_megabyte_page_is_read_up_to_the_cap(pages: PageServer) -> None:
    """A 5 MB page is cut at the 2 MB cap; its head still gives the card."""
    fetched = fetch(pages.base + "/big", policy())
    assert fetched.truncated and len(fetched.body) == 2_000_000 < BIG_BYTES
    assert card(pages, "/big").title == "Un très long rapport"


def test_five_redirects_are_followed_and_six_refused(pages: PageServer) -> None:
    """A chain of 5 redirects arrives; a chain of 6 is refused."""
    fetched = fetch(pages.base + "/hop/5", policy())
    assert fetched.url == pages.base + "/og" and len(fetched.redirects) == 5
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch(pages.base + "/hop/6", policy())


def test_redirect_to_loopback_is_refused_when_not_allowed(pages: PageServer) -> None:
    """Only 127.0.0.2 is allowed: a redirect to 127.0.0.1 is refused before connecting."""
    before = len(pages.requests)
    with pytest.raises(FetchError, match=r"^url: 127\.0\.0\.1 is not a public address"):
        fetch(pages.base + "/to-loopback", policy())
    assert [path for _, path, _ in pages.requests[before:]] == ["/to-loopback"]


def test_redirect_to_another_scheme_is_refused(pages: PageServer) -> None:
    """A redirect to file:// is refused."""
    with pytest.raises(FetchError, match="only http:// and https://"):
        fetch(pages.base + "/to-file", policy())


def test_slow_site_times_out(pages: PageServer) -> None:
    """A site slower than the total timeout fails with a timeout."""
    with pytest.raises(FetchError, match=r"did not answer within 0\.3 seconds"):
        fetch(pages.base + "/slow", policy(timeout=0.3))


def test_pdf_is_refused(pages: PageServer) -> None:
    """A PDF is not decoded as a page."""
    with pytest.raises(FetchError, match="not a web page but application/pdf"):
        fetch(pages.base + "/pdf", policy())


def test_missing_page_is_an_error(pages: PageServer) -> None:
    """A 404 is reported with its status."""
    with pytest.raises(FetchError, match="answered HTTP 404"):
        fetch(pages.base + "/missing", policy())


def test_tracking_parameters_are_stripped_after_redirects(pages: PageServer) -> None:
    """utm_*, fbclid and gclid go; other parameters stay; rel=canonical wins when present."""
    fetched = fetch(pages.base + "/tracked?gclid=x", policy())
    assert "utm_source" in fetched.url
    assert card(pages, "/tracked").url == pages.base + "/og"


def test_connection_is_pinned_to_the_checked_address(pages: PageServer) -> None:
    """A name resolved by the injected resolver is connected to at that address, with the
    original Host header (the system resolver, which does not know it, is never asked)."""
    port = pages.server_address[1]

    def resolver(host: str, _port: int) -> list[IPAddress]:
        assert host == "pages.invalid"
        return [ipaddress.ip_address(HOST)]

    fetched = fetch(f"http://pages.invalid:{port}/host", policy(resolver=resolver))
    assert fetched.body == f"<title>pages.invalid:{port}</title>".encode()
    _, _, headers = pages.requests[-1]
    assert headers["user-agent"].startswith("SundayNewsletter/")


def test_default_policy_refuses_loopback(pages: PageServer) -> None:
    """With no allow-list, the loopback test server itself is refused."""
    with pytest.raises(FetchError, match="not a public address"):
        fetch(pages.base + "/og", FetchPolicy())
