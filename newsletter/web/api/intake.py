"""The API's link-intake operations: suggest a card, feeds, and each issue's click ranking.

Declared and handled here (``intake_operations``), then added to the API's table in
``newsletter.web.api.app``, like the other operations: same validation, same errors.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.clock import utc_now
from newsletter.config import Config
from newsletter.content import MAX_URL
from newsletter.intake.fetcher import FetchPolicy
from newsletter.models import Feed
from newsletter.services import feeds as feed_service
from newsletter.services import intake
from newsletter.services.clicks import issue_clicks
from newsletter.web.api.handlers import ok
from newsletter.web.api.validation import MAX_ID, Operation, Param, Schema, nullable, obj, string
from newsletter.web.common import run_db

INT: Schema = {"type": "integer"}
TEXT: Schema = {"type": "string"}
FEED_ID = Param("feed_id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID})
NUMBER = Param("number", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID})
URL_BODY = obj({"url": string(MAX_URL, 1)}, ("url",))
FEED = obj(
    {
        "id": INT,
        "url": TEXT,
        "title": TEXT,
        "polled_at": nullable(TEXT),
        "error": TEXT,
        "queued_total": INT,
    },
    ("id", "url", "title", "polled_at", "error", "queued_total"),
)
POLL = obj(
    {
        "feed_id": INT,
        "url": TEXT,
        "queued": INT,
        "not_modified": {"type": "boolean"},
        "error": TEXT,
    },
    ("feed_id", "url", "queued", "not_modified", "error"),
)
SUGGESTION = obj(
    {
        "url": TEXT,
        "title": TEXT,
        "source": TEXT,
        "excerpt": TEXT,
        "fetch_error": TEXT,
        "duplicate": nullable({"type": "object"}),
    },
    ("url", "title", "source", "excerpt", "fetch_error", "duplicate"),
)
LINK_CLICKS = obj(
    {"link_id": INT, "title": TEXT, "url": TEXT, "clicks": INT, "bot_clicks": INT},
    ("link_id", "title", "url", "clicks", "bot_clicks"),
)
CLICKS = obj(
    {"number": INT, "subject": TEXT, "links": {"type": "array", "items": LINK_CLICKS}},
    ("number", "subject", "links"),
)


def _policy(request: Request) -> FetchPolicy:
    config: Config = request.app.state.config
    return FetchPolicy.from_config(config)


def _feed_dict(feed: Feed) -> dict[str, Any]:
    error = feed_service.feed_error(feed)
    return {
        "id": feed.id,
        "url": feed.url,
        "title": feed.title,
        "polled_at": feed.polled_at.isoformat() if feed.polled_at else None,
        "error": error.reason if error else "",
        "queued_total": feed.queued_total,
    }


def _poll_dict(result: feed_service.PollResult) -> dict[str, Any]:
    return {
        "feed_id": result.feed_id,
        "url": result.url,
        "queued": result.queued,
        "not_modified": result.not_modified,
        "error": result.error.reason if result.error else "",
    }


async def suggest_link(request: Request) -> Response:
    engine, policy, url = request.app.state.engine, _policy(request), request.state.body["url"]
    found = await run_in_threadpool(lambda: intake.suggest(engine, policy, url))
    return ok(
        {
            "url": found.card.url,
            "title": found.card.title if found.filled else "",
            "source": found.card.source,
            "excerpt": found.card.excerpt,
            "fetch_error": found.problem.reason if found.problem else "",
            "duplicate": vars(found.duplicate) if found.duplicate else None,
        }
    )


async def list_feeds(request: Request) -> Response:
    def work(session: Session) -> dict[str, Any]:
        return {"feeds": [_feed_dict(feed) for feed in feed_service.list_feeds(session)]}

    return ok(await run_db(request, work))


async def add_feed(request: Request) -> Response:
    url, now = request.state.body["url"], utc_now()
    feed_id = await run_db(request, lambda s: feed_service.add_feed(s, url, now).id)
    engine, policy = request.app.state.engine, _policy(request)
    await run_in_threadpool(lambda: feed_service.poll_feed(engine, policy, feed_id, now))

    def work(session: Session) -> dict[str, Any]:
        return _feed_dict(session.get_one(Feed, feed_id))

    return ok(await run_db(request, work), 201)


async def remove_feed(request: Request) -> Response:
    feed_id = int(request.state.params["feed_id"])
    await run_db(request, lambda s: feed_service.remove_feed(s, feed_id))
    return Response(status_code=204)


async def poll_feeds(request: Request) -> Response:
    engine, policy, now = request.app.state.engine, _policy(request), utc_now()
    results = await run_in_threadpool(lambda: feed_service.poll_all_feeds(engine, policy, now))
    return ok({"results": [_poll_dict(result) for result in results]})


async def get_issue_clicks(request: Request) -> Response:
    number = int(request.state.params["number"])
    ranked = await run_db(request, lambda s: issue_clicks(s, number))
    return ok(
        {
            "number": ranked.number,
            "subject": ranked.subject,
            "links": [vars(link) for link in ranked.links],
        }
    )


def intake_operations() -> tuple[Operation, ...]:
    feeds_list = obj({"feeds": {"type": "array", "items": FEED}}, ("feeds",))
    polls = obj({"results": {"type": "array", "items": POLL}}, ("results",))
    return (
        Operation(
            "POST",
            "/links/suggest",
            suggest_link,
            "Read a page's card without queuing it",
            200,
            SUGGESTION,
            body=URL_BODY,
            errors=(422,),
            tags=("links",),
        ),
        Operation(
            "GET", "/feeds", list_feeds, "The registered feeds", 200, feeds_list, tags=("feeds",)
        ),
        Operation(
            "POST",
            "/feeds",
            add_feed,
            "Register a feed and read it once",
            201,
            FEED,
            body=URL_BODY,
            errors=(409, 422),
            tags=("feeds",),
        ),
        Operation(
            "DELETE",
            "/feeds/{feed_id}",
            remove_feed,
            "Forget a feed",
            204,
            None,
            params=(FEED_ID,),
            errors=(404,),
            tags=("feeds",),
        ),
        Operation(
            "POST", "/feeds/poll", poll_feeds, "Read every feed now", 200, polls, tags=("feeds",)
        ),
        Operation(
            "GET",
            "/issues/{number}/clicks",
            get_issue_clicks,
            "An issue's links ranked by clicks",
            200,
            CLICKS,
            params=(NUMBER,),
            errors=(404,),
            tags=("clicks",),
        ),
    )
