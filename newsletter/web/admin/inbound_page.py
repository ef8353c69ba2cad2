"""The inbound view: the latest messages that came back (bounces, complaints, mailto
unsubscribes, the rest), how each was classified and what was done; the unclassified ones
to read."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from newsletter.errors import NotFoundError
from newsletter.inbound.models import InboundKind
from newsletter.services.inbound import get_inbound, list_inbound
from newsletter.web.admin.auth import editor_required
from newsletter.web.admin.common import error_flash, read_db
from newsletter.web.admin.templating import render_admin_page

PAGE_SIZE = 100


def _local(request: Request, when: datetime) -> str:
    return when.astimezone(request.app.state.config.timezone).strftime("%Y-%m-%d %H:%M")


@editor_required
async def inbound_page(request: Request) -> Response:
    kind = request.query_params.get("kind", "")
    kinds = [k.value for k in InboundKind]
    chosen = kind if kind in kinds else None
    rows = await read_db(request, lambda s: list_inbound(s, kind=chosen, limit=PAGE_SIZE))
    shown: list[dict[str, Any]] = [
        dict(vars(row), received=_local(request, row.received_at)) for row in rows
    ]
    context = {"rows": shown, "kinds": kinds, "kind": chosen or ""}
    return render_admin_page(request, "inbound.html", context)


@editor_required
async def inbound_message_page(request: Request) -> Response:
    message_id = int(request.path_params["message_id"])
    try:
        detail = await read_db(request, lambda s: get_inbound(s, message_id))
    except NotFoundError as exc:
        return render_admin_page(request, "error.html", error_flash(request, exc), 404)
    removed = detail.raw_removed_at
    context = {
        "m": detail,
        "received": _local(request, detail.row.received_at),
        "removed": _local(request, removed)[:10] if removed else "",
    }
    return render_admin_page(request, "inbound_message.html", context)


routes = [
    Route("/inbound", inbound_page, methods=["GET"]),
    Route("/inbound/{message_id:id}", inbound_message_page, methods=["GET"]),
]
