"""The next issue page: links queued, edited, reordered and removed from the web; intro saved;
the preview served under a strict CSP; a test that arrives at the SMTP server."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select

from newsletter.config import Config
from newsletter.db import transaction
from newsletter.models import IssueDraft, Link
from tests.admin_support import EMAIL, Admin, open_site, signed_in
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer


@pytest.fixture
def site(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> tuple[Config, Engine]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, _ = open_site(config)
    return config, engine


@pytest.fixture
def admin(site: tuple[Config, Engine]) -> Admin:
    return signed_in(*site)


def _queue(admin: Admin, title: str, url: str) -> None:
    response = admin.post(
        "/admin/issue/links",
        {
            "url": url,
            "title": title,
            "source": "Le Monde",
            "excerpt": "Un extrait.",
            "tags": "a, b",
        },
    )
    assert response.status_code == 303, response.text  # type: ignore[attr-defined]


def _titles(engine: Engine) -> list[str]:
    with transaction(engine) as session:
        query = select(Link.title).where(Link.issue_id.is_(None)).order_by(Link.position)
        return list(session.scalars(query))


def test_links_are_queued_edited_moved_and_removed(
    site: tuple[Config, Engine], admin: Admin
) -> None:
    """Each form changes the queue in the database and the page shows it."""
    _, engine = site
    _queue(admin, "Premier lien", "https://example.org/1")
    _queue(admin, "Second lien", "https://example.org/2")
    assert _titles(engine) == ["Premier lien", "Second lien"]
    with transaction(engine) as session:
        first, second = session.scalars(select(Link).order_by(Link.position)).all()
        assert first.tags == "a,b"
    admin.post(f"/admin/issue/links/{second.id}/move", {"position": "1"})
    assert _titles(engine) == ["Second lien", "Premier lien"]
    admin.post(
        f"/admin/issue/links/{first.id}",
        {"url": "https://example.org/1b", "title": "Premier, corrigé", "source": "Le Monde"},
    )
    assert _titles(engine) == ["Second lien", "Premier, corrigé"]
    admin.post(f"/admin/issue/links/{second.id}/delete")
    assert _titles(engine) == ["Premier, corrigé"]
    page = admin.client.get("/admin/issue")
    assert page.status_code == 200 and "Premier, corrigé" in page.text
    assert "Prochain numéro" in page.text  # [list] language = fr by default


def test_bad_link_is_refused_and_nothing_is_stored(
    site: tuple[Config, Engine], admin: Admin
) -> None:
    """A link with a non-http URL gets 422 with the form refilled; nothing is queued."""
    _, engine = site
    response = admin.post(
        "/admin/issue/links", {"url": "javascript:alert(1)", "title": "<b>Piège</b>"}
    )
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "&lt;b&gt;Piège&lt;/b&gt;" in response.text  # type: ignore[attr-defined]
    assert _titles(engine) == []
    response = admin.post(
        "/admin/issue/links", {"url": "https://e.org/<script>x</script>", "title": "t" * 600}
    )
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "<script>" not in response.text  # type: ignore[attr-defined]


def test_intro_is_saved(site: tuple[Config, Engine], admin: Admin) -> None:
    """The intro and subject forms write the draft row."""
    _, engine = site
    admin.post("/admin/issue/draft", {"intro": "Bonne lecture !", "subject": ""})
    with transaction(engine) as session:
        assert session.scalars(select(IssueDraft.intro)).one() == "Bonne lecture !"


def test_preview_is_the_rendered_issue_under_a_strict_csp(admin: Admin) -> None:
    """The preview route serves the digest's HTML with a sandboxing, script-free CSP, and the
    text version; the issue page frames it in a sandboxed iframe."""
    _queue(admin, "Lien à prévisualiser", "https://example.org/p")
    admin.post("/admin/issue/draft", {"intro": "Une intro pour voir.", "subject": ""})
    html = admin.client.get("/admin/issue/preview.html")
    assert html.status_code == 200 and "Lien à prévisualiser" in html.text
    assert "Une intro pour voir." in html.text and "@@" not in html.text
    csp = html.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
    text = admin.client.get("/admin/issue/preview.txt")
    assert "Lien à prévisualiser" in text.text and "https://example.org/p" in text.text
    unsaved = admin.client.get("/admin/issue/preview.html", params={"intro": "<b>Pas encore</b>"})
    assert "&lt;b&gt;Pas encore&lt;/b&gt;" in unsaved.text
    page = admin.client.get("/admin/issue")
    assert '<iframe class="preview" sandbox' in page.text
    assert '<script src="/admin/static/preview.js"' in page.text
    assert admin.client.get("/admin/static/preview.js").status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_test_send_arrives_at_the_smtp_server(admin: Admin, smtp_server: SMTPServer) -> None:
    """ "Send a test to me" delivers the next issue, subject marked, to the editor only."""
    _queue(admin, "Lien du test", "https://example.org/t")
    response = admin.post("/admin/issue/test")
    assert response.status_code == 303  # type: ignore[attr-defined]
    (message,) = smtp_server.wait_for(1)
    assert message.rcpt_tos == [EMAIL]
    parsed = message.parsed()
    assert parsed["To"] == EMAIL and "Lien du test" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert parsed["Subject"] != "" and parsed["List-Unsubscribe"]
