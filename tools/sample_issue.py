"""A sample Sunday email of N links, built by the real pipeline (render once, then the wire
bytes for one recipient), to measure it: HTML size, text width and, when SpamAssassin is
installed, its offline score.

    .venv/bin/python tools/sample_issue.py                 # 40 links: sizes and score
    .venv/bin/python tools/sample_issue.py --links 12 --eml issue.eml --html issue.html

Nothing is sent and nothing is stored: the configuration lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from newsletter.config import Config, load_config, render_config_file  # noqa: E402
from newsletter.content import IssueView, LinkView  # noqa: E402
from newsletter.sending import Recipient, render_digest  # noqa: E402
from newsletter.sending.message import MessageTemplate  # noqa: E402

SUNDAY = date(2026, 12, 6)
SENT_AT = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
SOURCES = ("Le Monde", "We Demain", "Libération", "Mediapart", "The Guardian", "Wired")
TAGS = ("démocratie", "données ouvertes", "logiciel libre", "collectivités", "vote", "santé")
INTRO = (
    "Bonjour à toutes et à tous,\n\n"
    "Voici la sélection de la semaine : des applications pour parler à sa mairie, une primaire "
    "citoyenne qui avance et un pays qui choisit le logiciel libre. Bonne lecture, et "
    "n’hésitez pas à répondre à ce message pour proposer un lien."
)
EXCERPT = (
    "Plusieurs communes testent des outils pour consulter leurs habitants, signaler un "
    "problème de voirie ou voter sur un projet de quartier. L’article compare les promesses "
    "et les résultats, et se demande qui participe vraiment quand tout passe par un écran."
)
SETTINGS: dict[str, dict[str, Any]] = {
    "list": {
        "name": "Les liens CivicTech",
        "id_domain": "liens.example.org",
        "from_address": "liens@example.org",
        "postal_address": "12 rue de la Paix, 75002 Paris, France",
    },
    "web": {"base_url": "https://liens.example.org", "secret_key": "s" * 43},
    "database": {"url": "sqlite:///newsletter.db"},
    "smtp": {"host": "127.0.0.1"},
}


@dataclass(frozen=True)
class Sample:
    """One sample message: its rendered parts and its wire bytes for one recipient."""

    html: str
    text: str
    eml: bytes


def sample_config(folder: Path, overrides: Mapping[str, Mapping[str, Any]] = {}) -> Config:
    """A configuration file in ``folder`` with the sample list's settings (and ``overrides``)."""
    values = {table: dict(keys) for table, keys in SETTINGS.items()}
    for table, keys in overrides.items():
        values.setdefault(table, {}).update(keys)
    path = folder / "newsletter.toml"
    path.write_text(render_config_file(values), encoding="utf-8")
    return load_config(path, environ={})


def sample_view(links: int, number: int = 24) -> IssueView:
    """Issue ``number`` of ``links`` links, with excerpts and tags like a real week's."""
    items = tuple(
        LinkView(
            url=f"https://www.example.org/2026/12/civic-tech-article-{n:02d}-{'x' * (n % 7)}",
            title=f"Des outils numériques pour la participation citoyenne, épisode {n + 1}",
            source=SOURCES[n % len(SOURCES)],
            excerpt=EXCERPT,
            tags=(TAGS[n % len(TAGS)], TAGS[(n + 2) % len(TAGS)]),
        )
        for n in range(links)
    )
    subject = f"Les liens CivicTech de la semaine #{number}"
    return IssueView(number=number, subject=subject, intro=INTRO, date=SUNDAY, links=items)


def build_sample(config: Config, links: int) -> Sample:
    """Render the sample issue and build its message for one subscriber."""
    rendered = render_digest(config, sample_view(links))
    template = MessageTemplate.prepare(config, rendered)
    recipient = Recipient(
        email="camille@example.net",
        name="Camille",
        unsubscribe_url=f"{config.base_url}/u/InRva2VuIg.sample-signature",
    )
    return Sample(rendered.html, rendered.text, template.for_recipient(recipient, SENT_AT))


def spamassassin_score(eml: bytes) -> tuple[float, str] | None:
    """SpamAssassin's offline score (``-L``, no network test) and the rules that fired, or
    ``None`` when it is not installed."""
    binary = shutil.which("spamassassin")
    if binary is None:
        return None
    result = subprocess.run(
        [binary, "-L", "-t"], input=eml, capture_output=True, check=True, timeout=120
    )
    report = result.stdout.decode("utf-8", "replace")
    found = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.MULTILINE)
    if found is None:
        raise RuntimeError("no X-Spam-Status in SpamAssassin's output")
    rules = re.search(r"Content analysis details:.*", report, re.DOTALL)
    return float(found.group(1)), rules.group(0) if rules else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=40)
    parser.add_argument("--eml", type=Path, help="write the message's wire bytes here")
    parser.add_argument("--html", type=Path, help="write the HTML part here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        sample = build_sample(sample_config(Path(folder)), args.links)
    if args.eml:
        args.eml.write_bytes(sample.eml)
    if args.html:
        args.html.write_text(sample.html, encoding="utf-8")
    widest = max(len(line) for line in sample.text.splitlines())
    print(f"links: {args.links}")
    print(f"HTML part: {len(sample.html.encode()) / 1024:.1f} KB ({len(sample.html.encode())} B)")
    print(f"text part: {len(sample.text.encode()) / 1024:.1f} KB, widest line {widest} columns")
    print(f"message: {len(sample.eml) / 1024:.1f} KB on the wire")
    scored = spamassassin_score(sample.eml)
    if scored is None:
        print("SpamAssassin: not installed (apt-get install spamassassin)")
    else:
        print(f"SpamAssassin (offline, -L): {scored[0]}")
        print(scored[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
