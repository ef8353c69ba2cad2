"""Per-recipient message building: microseconds per message for ``MessageTemplate.for_recipient``
(the delivery hot path), without and with DKIM, for a 10- and a 40-link issue.

Rendering (jinja2 + premailer) and ``MessageTemplate.prepare`` run once per issue and are shown
for comparison. Usage: ``python bench/message_build.py [--n 5000]``. Needs ``openssl`` for
the throwaway DKIM key; loopback only, nothing is sent.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.config import load_config
from newsletter.content import IssueView, LinkView
from newsletter.sending.message import MessageTemplate, Recipient
from newsletter.sending.render import render_digest

EXCERPT = (
    "Des jeunes pousses veulent redonner envie de participer à la vie locale : signaler un "
    "trottoir cassé, proposer une piste cyclable, voter un budget participatif. "
) * 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="messages per measurement")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-message-"))
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    base = '[list]\npostal_address = "12 rue de la Paix, 75002 Paris"\n'
    (folder / "plain.toml").write_text(base, encoding="utf-8")
    dkim = f'[smtp]\ndkim_key_file = "{key}"\ndkim_selector = "sunday"\n'
    (folder / "dkim.toml").write_text(base + dkim, encoding="utf-8")
    now = datetime.now(UTC)
    for name in ("plain", "dkim"):
        config = load_config(folder / f"{name}.toml", environ={})
        for count in (10, 40):
            links = tuple(
                LinkView(f"https://example.org/{i}", f"« Civic Tech » n°{i}", "Le Monde", EXCERPT)
                for i in range(count)
            )
            view = IssueView(
                24, "Les liens de la semaine #24", "Bonjour", date(2026, 11, 29), links
            )
            started = time.perf_counter()
            rendered = render_digest(config, view)
            rendered_at = time.perf_counter()
            template = MessageTemplate.prepare(config, rendered)
            prepared_at = time.perf_counter()
            n = args.n if name == "plain" else max(args.n // 10, 100)
            recipients = [
                Recipient(f"user{i}@example.net", "", f"https://liens.example.org/u/MTIz.{i:027d}")
                for i in range(n)
            ]
            begin = time.perf_counter()
            for recipient in recipients:
                data = template.for_recipient(recipient, now)
            per_message = (time.perf_counter() - begin) / n * 1e6
            print(
                f"{name:5} links={count:2} render={1000 * (rendered_at - started):6.1f} ms "
                f"prepare={1000 * (prepared_at - rendered_at):5.1f} ms "
                f"for_recipient={per_message:7.1f} µs/message "
                f"html={len(rendered.html.encode()) / 1024:5.1f} KB "
                f"message={len(data) / 1024:5.1f} KB"
            )


if __name__ == "__main__":
    main()
