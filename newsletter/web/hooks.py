"""Provider webhooks under ``/hooks/``: Amazon SES (through SNS), Postmark and Mailgun.

An edge: it checks each provider's own proof (``newsletter.inbound.providers``), answers 401
to anything unsigned or wrongly signed, and hands verified events to the return path's use
case. Bodies are limited by ``BodySizeLimitMiddleware`` (``HOOKS_BODY_LIMIT``).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.clock import utc_now
from newsletter.errors import InvalidInputError, NotYetError
from newsletter.inbound.providers import (
    ProviderEvent,
    check_basic_auth,
    check_mailgun_signature,
    mailgun_events,
    parse_json,
    postmark_events,
    ses_events,
)
from newsletter.inbound.sns import SignatureError, SNSVerifier, check_sns_url
from newsletter.services.inbound import receive_event

HOOKS_BODY_LIMIT = 256 * 1024


def _refused(exc: SignatureError, challenge: str = "") -> Response:
    headers = {"WWW-Authenticate": challenge} if challenge else None
    return JSONResponse({"error": exc.message}, status_code=401, headers=headers)


def _bad(exc: InvalidInputError) -> Response:
    return JSONResponse({"error": exc.message}, status_code=400)


async def _record(request: Request, events: list[ProviderEvent], body: bytes) -> Response:
    state = request.app.state

    def record() -> list[dict[str, Any]]:
        now = utc_now()
        done = [receive_event(state.engine, state.config, e, body, now=now) for e in events]
        return [{"id": r.id, "kind": r.kind, "action": r.action} for r in done]

    try:
        return JSONResponse({"recorded": await run_in_threadpool(record)})
    except NotYetError as exc:
        # The provider retries a 5xx: by then the send has recorded the delivery.
        return JSONResponse({"error": exc.message}, status_code=503, headers={"retry-after": "60"})


def sns_verifier(request: Request) -> SNSVerifier:
    """The app's verifier (its certificate cache lives as long as the app)."""
    state = request.app.state
    verifier = getattr(state, "sns_verifier", None)
    if verifier is None:
        verifier = state.sns_verifier = SNSVerifier()
    assert isinstance(verifier, SNSVerifier)
    return verifier


async def ses_hook(request: Request) -> Response:
    """SNS → SES bounce and complaint notifications; confirms the topic's subscription."""
    body = await request.body()
    config = request.app.state.config
    try:
        message = parse_json(body)
    except InvalidInputError as exc:
        return _bad(exc)
    topic = str(config.get("bounces", "ses_topic_arn"))
    if not topic or message.get("TopicArn") != topic:
        return _refused(SignatureError("not the configured SNS topic"))
    verifier = sns_verifier(request)
    try:
        await run_in_threadpool(verifier.verify, message)
    except SignatureError as exc:
        return _refused(exc)
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        try:
            url = check_sns_url(str(message.get("SubscribeURL", "")))
        except SignatureError as exc:
            return _refused(exc)
        await run_in_threadpool(verifier.fetcher, url)
        return JSONResponse({"confirmed": True})
    if kind != "Notification":
        return JSONResponse({"recorded": []})
    try:
        notification = parse_json(str(message.get("Message", "")).encode("utf-8"))
    except InvalidInputError as exc:
        return _bad(exc)
    events = ses_events(notification, str(message.get("MessageId", "")))
    return await _record(request, events, body)


async def postmark_hook(request: Request) -> Response:
    """Postmark bounce and spam-complaint webhooks, behind HTTP Basic credentials."""
    config = request.app.state.config
    try:
        check_basic_auth(
            request.headers.get("authorization", ""),
            str(config.get("bounces", "postmark_username")),
            str(config.get("bounces", "postmark_password")),
        )
    except SignatureError as exc:
        return _refused(exc, 'Basic realm="postmark"')
    body = await request.body()
    try:
        payload = parse_json(body)
    except InvalidInputError as exc:
        return _bad(exc)
    return await _record(request, postmark_events(payload), body)


async def mailgun_hook(request: Request) -> Response:
    """Mailgun ``failed`` and ``complained`` webhooks, signed with the webhook signing key."""
    config = request.app.state.config
    body = await request.body()
    try:
        payload = parse_json(body)
    except InvalidInputError as exc:
        return _bad(exc)
    key = str(config.get("bounces", "mailgun_signing_key"))
    try:
        check_mailgun_signature(payload, key, utc_now())
    except SignatureError as exc:
        return _refused(exc)
    return await _record(request, mailgun_events(payload), body)


routes: list[BaseRoute] = [
    Route("/hooks/ses", ses_hook, methods=["POST"]),
    Route("/hooks/postmark", postmark_hook, methods=["POST"]),
    Route("/hooks/mailgun", mailgun_hook, methods=["POST"]),
]
