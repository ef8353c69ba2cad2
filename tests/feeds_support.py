"""Feeds the feed tests serve from the loopback page server: RSS 2.0, Atom and JSON Feed."""

from __future__ import annotations

import json


def rss(items: list[tuple[str, str, str, str]], title: str = "Le blog des communs") -> bytes:
    """RSS 2.0 with (guid, link, title, pubDate) items."""
    entries = "".join(
        f"<item><guid>{guid}</guid><link>{link}</link><title>{name}</title>"
        f"<description>&lt;p&gt;Résumé de {name}.&lt;/p&gt;</description>"
        f"<pubDate>{date}</pubDate></item>"
        for guid, link, name, date in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://communs.example/</link>{entries}"
        "</channel></rss>"
    ).encode()


def atom(items: list[tuple[str, str, str, str]]) -> bytes:
    """Atom with (id, link, title, updated) entries."""
    entries = "".join(
        f'<entry><id>{eid}</id><link href="{link}"/><title>{name}</title>'
        f"<updated>{date}</updated><summary>Pourquoi {name} compte.</summary></entry>"
        for eid, link, name, date in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Mes favoris</title><id>urn:favoris</id><updated>2026-11-26T10:00:00Z</updated>"
        f"{entries}</feed>"
    ).encode()


def json_feed(items: list[tuple[str, str, str, str]]) -> bytes:
    """JSON Feed 1.1 with (id, url, title, date_published) items."""
    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Raindrop : veille",
            "home_page_url": "https://raindrop.example/",
            "items": [
                {
                    "id": i,
                    "url": u,
                    "title": t,
                    "content_text": f"Note sur {t}.",
                    "date_published": d,
                }
                for i, u, t, d in items
            ],
        }
    ).encode()
