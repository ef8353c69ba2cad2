"""The declarations of the JSON API: one ``Operation`` per route, with its schemas.

``operations(handlers)`` pairs each declaration with the handler of the same name in
``newsletter.web.api``; a missing handler fails at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from newsletter.content import MAX_EXCERPT, MAX_SOURCE, MAX_TITLE, MAX_URL
from newsletter.web.api_schema import MAX_ID, Operation, Param, Schema, nullable, obj, string
from subscribers.io import FORMATS as IMPORT_FORMATS

STATUSES = ["pending", "active", "unsubscribed", "bounced"]
INT: Schema = {"type": "integer"}
TAGS: Schema = {"type": "array", "items": string(50, 1), "maxItems": 20}

LINK = obj(
    {
        "id": INT,
        "url": {"type": "string"},
        "title": {"type": "string"},
        "source": {"type": "string"},
        "excerpt": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "position": INT,
    },
    ("id", "url", "title", "source", "excerpt", "tags", "position"),
)
LINKS = obj({"links": {"type": "array", "items": LINK}}, ("links",))
NEW_LINK = obj(
    {
        "url": string(MAX_URL, 1),
        "title": string(MAX_TITLE, 1),
        "source": string(MAX_SOURCE),
        "excerpt": string(MAX_EXCERPT),
        "tags": TAGS,
    },
    ("url", "title"),
)
LINK_CHANGES = obj({k: v for k, v in NEW_LINK["properties"].items()})
NEXT_ISSUE = obj(
    {
        "number": INT,
        "subject": {"type": "string"},
        "intro": {"type": "string"},
        "date": {"type": "string"},
        "recipients": INT,
        "links": {"type": "array", "items": LINK},
    },
    ("number", "subject", "intro", "date", "recipients", "links"),
)
DRAFT = obj({"intro": string(MAX_EXCERPT), "subject": string(MAX_TITLE)})
PREVIEW = obj(
    {"subject": {"type": "string"}, "html": {"type": "string"}, "text": {"type": "string"}},
    ("subject", "html", "text"),
)
PROGRESS = obj(
    {
        "run_id": INT,
        "key": {"type": "string"},
        "subject": {"type": "string"},
        "status": {"type": "string", "enum": ["running", "paused", "done"]},
        "pause_reason": {"type": "string"},
        "total": INT,
        "sent": INT,
        "failed": INT,
        "skipped": INT,
        "pending": INT,
        "counts": {"type": "object", "additionalProperties": INT},
        "rate": {"type": "number"},
        "eta_seconds": nullable(INT),
        "last_errors": {
            "type": "array",
            "items": obj({"email": {"type": "string"}, "error": {"type": "string"}}),
        },
    },
    ("run_id", "status", "total", "sent", "failed", "pending", "rate", "eta_seconds"),
)
SLOT = obj(
    {
        "slot_at": {"type": "string"},
        "outcome": {"type": "string", "enum": ["sent", "paused", "delayed", "skipped", "missed"]},
        "reason": {"type": "string"},
        "recorded": {"type": "boolean"},
        "send_at": nullable({"type": "string"}),
    },
    ("slot_at", "outcome", "reason", "recorded", "send_at"),
)
SCHEDULE = obj(
    {
        "timezone": {"type": "string"},
        "pause": {
            "type": ["object", "null"],
            "properties": {"until": {"type": "string"}, "reason": {"type": "string"}},
        },
        "slots": {"type": "array", "items": SLOT},
    },
    ("timezone", "pause", "slots"),
)
SUBSCRIBER = obj(
    {
        "email": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string"},
        "created_at": {"type": "string"},
        "source": {"type": "string"},
    },
    ("email", "name", "status", "created_at", "source"),
)
SUBSCRIBERS = obj(
    {
        "total": INT,
        "counts": {"type": "object", "additionalProperties": INT},
        "subscribers": {"type": "array", "items": SUBSCRIBER},
    },
    ("total", "counts", "subscribers"),
)
LINK_ID = Param("link_id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID})
RUN_ID = Param("run_id", "path", {"type": "integer", "minimum": 1, "maximum": MAX_ID})


def operations(handlers: Mapping[str, Any]) -> tuple[Operation, ...]:
    def op(
        method: str,
        path: str,
        name: str,
        summary: str,
        ok: int,
        response: Schema | None,
        **extra: Any,
    ) -> Operation:
        return Operation(method, path, handlers[name], summary, ok, response, **extra)

    return (
        op(
            "GET",
            "/issue",
            "get_next_issue",
            "The next issue as it stands",
            200,
            NEXT_ISSUE,
            tags=("issue",),
        ),
        op(
            "PUT",
            "/issue/draft",
            "update_draft",
            "Set the intro and/or subject",
            200,
            DRAFT,
            body=DRAFT,
            errors=(422,),
            tags=("issue",),
        ),
        op(
            "GET",
            "/issue/preview",
            "preview_issue",
            "The rendered next issue",
            200,
            PREVIEW,
            tags=("issue",),
        ),
        op(
            "POST",
            "/issue/test",
            "send_test",
            "Send a test to the token's editor",
            202,
            obj({"sent_to": {"type": "string"}}, ("sent_to",)),
            errors=(422, 502),
            tags=("issue",),
        ),
        op(
            "POST",
            "/issue/send",
            "send_issue",
            "Assemble the next issue and start sending it",
            201,
            obj(
                {"run_id": INT, "key": {"type": "string"}, "recipients": INT},
                ("run_id", "key", "recipients"),
            ),
            body=obj({"confirm": {"type": "boolean", "enum": [True]}}, ("confirm",)),
            errors=(409, 422),
            tags=("issue",),
        ),
        op(
            "GET", "/links", "list_links", "The queued links, in order", 200, LINKS, tags=("links",)
        ),
        op(
            "POST",
            "/links",
            "create_link",
            "Queue a link",
            201,
            LINK,
            body=NEW_LINK,
            errors=(422,),
            tags=("links",),
        ),
        op(
            "PATCH",
            "/links/{link_id}",
            "update_link",
            "Change a queued link",
            200,
            LINK,
            body=LINK_CHANGES,
            params=(LINK_ID,),
            errors=(404, 409, 422),
            tags=("links",),
        ),
        op(
            "POST",
            "/links/{link_id}/move",
            "move_link",
            "Move a queued link",
            200,
            LINKS,
            body=obj(
                {"position": {"type": "integer", "minimum": 1, "maximum": 100000}}, ("position",)
            ),
            params=(LINK_ID,),
            errors=(404, 409),
            tags=("links",),
        ),
        op(
            "DELETE",
            "/links/{link_id}",
            "delete_link",
            "Remove a queued link",
            204,
            None,
            params=(LINK_ID,),
            errors=(404, 409),
            tags=("links",),
        ),
        op(
            "GET",
            "/sends",
            "list_sends",
            "The latest sends and their progress",
            200,
            obj({"sends": {"type": "array", "items": PROGRESS}}, ("sends",)),
            tags=("sends",),
        ),
        op(
            "GET",
            "/sends/{run_id}",
            "get_send",
            "One send's progress",
            200,
            PROGRESS,
            params=(RUN_ID,),
            errors=(404,),
            tags=("sends",),
        ),
        op(
            "POST",
            "/sends/{run_id}/pause",
            "pause_send",
            "Pause a send",
            200,
            PROGRESS,
            body=obj({"reason": string(500)}),
            params=(RUN_ID,),
            errors=(404, 409),
            tags=("sends",),
        ),
        op(
            "POST",
            "/sends/{run_id}/resume",
            "resume_send",
            "Resume a paused send",
            200,
            PROGRESS,
            params=(RUN_ID,),
            errors=(404, 409),
            tags=("sends",),
        ),
        op(
            "GET",
            "/sends/{run_id}/report",
            "send_report",
            "The delivery report as CSV",
            200,
            {"type": "string"},
            params=(RUN_ID,),
            errors=(404,),
            media_type="text/csv",
            tags=("sends",),
        ),
        op(
            "GET",
            "/schedule",
            "get_schedule",
            "The coming slots and any pause",
            200,
            SCHEDULE,
            tags=("schedule",),
        ),
        op(
            "POST",
            "/schedule/pause",
            "pause_schedule",
            "Pause until a local date",
            200,
            SCHEDULE,
            body=obj(
                {"until": string(10, 10), "reason": string(500), "notify": {"type": "boolean"}},
                ("until",),
            ),
            errors=(409, 422),
            tags=("schedule",),
        ),
        op(
            "POST",
            "/schedule/resume",
            "resume_schedule",
            "End the pause now",
            200,
            SCHEDULE,
            errors=(409,),
            tags=("schedule",),
        ),
        op(
            "POST",
            "/schedule/delay",
            "delay_issue",
            "Send this week's issue at another local time (YYYY-MM-DD HH:MM)",
            200,
            SCHEDULE,
            body=obj({"send_at": string(16, 16)}, ("send_at",)),
            errors=(409, 422),
            tags=("schedule",),
        ),
        op(
            "POST",
            "/schedule/skip",
            "skip_issue",
            "Skip the next issue",
            200,
            SCHEDULE,
            body=obj({"reason": string(500)}),
            errors=(409, 422),
            tags=("schedule",),
        ),
        op(
            "GET",
            "/subscribers",
            "list_subscribers",
            "Search subscribers",
            200,
            SUBSCRIBERS,
            params=(
                Param("q", "query", string(200)),
                Param("status", "query", {"type": "string", "enum": STATUSES}),
                Param("offset", "query", {"type": "integer", "minimum": 0, "maximum": MAX_ID}),
                Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ),
            tags=("subscribers",),
        ),
        op(
            "POST",
            "/subscribers",
            "add_subscriber",
            "Add a person: they get the confirmation email (double opt-in)",
            202,
            obj({"confirmation_sent": {"type": "boolean"}}, ("confirmation_sent",)),
            body=obj({"email": string(320, 1), "name": string(200)}, ("email",)),
            errors=(422, 502),
            tags=("subscribers",),
        ),
        op(
            "POST",
            "/subscribers/import",
            "import_subscribers",
            "Import a list (as `subscribers import`); the report lists bad rows by number",
            200,
            obj(
                {
                    "rows": INT,
                    "dry_run": {"type": "boolean"},
                    "report": {"type": "array", "items": {"type": "string"}},
                },
                ("rows", "dry_run", "report"),
            ),
            body=obj(
                {
                    "text": string(150_000, 0),
                    "format": {"type": "string", "enum": list(IMPORT_FORMATS)},
                    "confirmed": {"type": "boolean"},
                    "source": string(200),
                    "dry_run": {"type": "boolean"},
                },
                ("text",),
            ),
            errors=(422,),
            tags=("subscribers",),
        ),
        op(
            "GET",
            "/subscribers/export",
            "export_subscribers",
            "Every subscriber as CSV",
            200,
            {"type": "string"},
            params=(Param("status", "query", {"type": "string", "enum": STATUSES}),),
            media_type="text/csv",
            tags=("subscribers",),
        ),
    )
