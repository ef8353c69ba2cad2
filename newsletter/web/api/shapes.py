"""The JSON shapes of the API: the resources its routes take and return, and the shared
path parameters. ``newsletter.web.api.operations`` declares the routes that use them.
"""

from __future__ import annotations

from newsletter.content import MAX_EXCERPT, MAX_SOURCE, MAX_TITLE, MAX_URL
from newsletter.web.api.validation import MAX_ID, Param, Schema, nullable, obj, string

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
        # Link intake: why the page could not fill the card, and an earlier link to it.
        "fetch_error": {"type": "string"},
        "duplicate": obj(
            {"link_id": INT, "title": {"type": "string"}, "issue_number": nullable(INT)},
            ("link_id", "title", "issue_number"),
        ),
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
    ("url",),  # without a title, the page's card fills the link (link intake)
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
        # The return path: what came back after the send (bounces, complaints, unsubscribes).
        "deliverability": obj(
            {
                **{
                    name: INT
                    for name in (
                        "delivered",
                        "hard_bounced",
                        "soft_bounced",
                        "complained",
                        "unsubscribed",
                    )
                },
                **{
                    name: {"type": "number"}
                    for name in (
                        "hard_bounce_rate",
                        "soft_bounce_rate",
                        "complaint_rate",
                        "unsubscribe_rate",
                    )
                },
            }
        ),
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
