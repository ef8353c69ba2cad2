"""The yardstick for one-click unsubscribe: a minimal Starlette app on uvicorn doing the same
SQLite work per POST as ours (check the signed token, UPDATE the subscriber, INSERT a consent
event, commit), with nothing else: no ORM, no thread hop, no page template, no access log.

Run by ``bench/web_unsubscribe.py`` as ``python bench/minimal_app.py DB SECRET PORT``.
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.errors import TokenError
from subscribers.tokens import read_unsubscribe_token

PAGE = "<!doctype html><title>Désinscription</title><p>Vous êtes désinscrit·e.</p>"


def make_app(db_path: str, secret: str) -> Starlette:
    db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")

    async def unsubscribe(request: Request) -> Response:
        await request.body()
        try:
            subscriber_id = read_unsubscribe_token(secret, str(request.path_params["token"]))
        except TokenError:
            return PlainTextResponse("invalid link", status_code=400)
        now = datetime.now(UTC).replace(tzinfo=None)
        digest = hmac.new(secret.encode(), str(subscriber_id).encode(), hashlib.sha256)
        db.execute("BEGIN IMMEDIATE")
        try:
            changed = db.execute(
                "UPDATE subscriber SET status = 'unsubscribed', unsubscribed_at = ? "
                "WHERE id = ? AND status != 'unsubscribed'",
                (now, subscriber_id),
            ).rowcount
            if changed:
                db.execute(
                    "INSERT INTO consent_event (subscriber_id, address_hash, kind, at, ip, "
                    "user_agent, source, consent_text_version, detail) "
                    "VALUES (?, ?, 'unsubscribed', ?, ?, ?, 'one-click', '', '')",
                    (
                        subscriber_id,
                        digest.hexdigest(),
                        now,
                        request.client.host if request.client else "",
                        request.headers.get("user-agent", ""),
                    ),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return HTMLResponse(PAGE)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/u/{token}", unsubscribe, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


if __name__ == "__main__":
    db_path, secret, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    uvicorn.run(make_app(db_path, secret), host="127.0.0.1", port=port, log_level="warning")
