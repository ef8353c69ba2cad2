"""``/r/ISSUE/LINK?s=SIGNATURE``: count a reader's click and send them on to the article.

A forged or missing signature gets 400 and goes nowhere (never an open redirect); the target
is the link's URL from the database. Nothing about the reader is kept: no cookie is set, and
neither the address nor the user agent is stored (the agent only decides human or scanner).
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.db import transaction
from newsletter.errors import NotFoundError, TokenError
from newsletter.intake.clicks import check_signature, record_click

MAX_NUMBER = 2**31 - 1
HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


async def follow_link(request: Request) -> Response:
    config: Config = request.app.state.config
    number = int(request.path_params["issue"])
    link_id = int(request.path_params["link"])
    if number > MAX_NUMBER or link_id > MAX_NUMBER:
        return PlainTextResponse("Unknown link", status_code=404, headers=HEADERS)
    try:
        check_signature(config.secret_key, number, link_id, request.query_params.get("s", ""))
    except TokenError:
        return PlainTextResponse("Invalid link", status_code=400, headers=HEADERS)
    method, agent, now = request.method, request.headers.get("user-agent", ""), utc_now()

    def count() -> str:
        with transaction(request.app.state.engine) as session:
            return record_click(session, number, link_id, method=method, user_agent=agent, now=now)

    try:
        target = await run_in_threadpool(count)
    except NotFoundError:
        return PlainTextResponse("Unknown link", status_code=404, headers=HEADERS)
    return RedirectResponse(target, status_code=302, headers=HEADERS)


routes = [Route("/r/{issue:id}/{link:id}", follow_link, methods=["GET", "HEAD"])]
