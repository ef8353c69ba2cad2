"""The sign-in and sign-out pages."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from newsletter.web.admin.auth import (
    clear_session_cookie,
    csrf_ok,
    editor_required,
    end_sessions,
    form_text,
    login_keys,
    login_limiter,
    safe_next,
    set_session_cookie,
    sign_in,
)
from newsletter.web.admin.templating import render_admin_page
from newsletter.web.security import rotate_csrf_seed


def _login_form(
    request: Request, error: str = "", status_code: int = 200, email: str = "", after: str = ""
) -> Response:
    """The sign-in form; after a refusal it shows ``error`` and keeps the ``email`` typed.
    ``after`` is where to go once signed in (checked again when the form comes back)."""
    context = {"error": error, "email": email, "next": safe_next(after)}
    return render_admin_page(request, "login.html", context, status_code=status_code)


async def login_page(request: Request) -> Response:
    return _login_form(request, after=request.query_params.get("next", ""))


async def login_submit(request: Request) -> Response:
    form = await request.form()
    after = form_text(form, "next")
    if not await csrf_ok(request):
        return _login_form(request, "Your session expired; please try again.", 403, after=after)
    email = form_text(form, "email")
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    limiter = login_limiter(request)
    keys = login_keys(request, email)
    if not limiter.begin_attempt(*keys):
        return _login_form(
            request, "Too many attempts; try again in a few minutes.", 429, email, after
        )
    editor = await run_in_threadpool(sign_in, request, email, password)
    if editor is None:
        return _login_form(request, "Wrong email or password.", 401, email, after)
    limiter.forgive(keys[0])
    limiter.reset(keys[1])
    response = RedirectResponse(safe_next(after), status_code=303)
    set_session_cookie(response, request.app.state.config, editor)
    rotate_csrf_seed(request, response)
    return response


@editor_required
async def logout(request: Request) -> Response:
    await run_in_threadpool(end_sessions, request, request.state.editor_id)
    response = RedirectResponse("/admin/login", status_code=303)
    clear_session_cookie(response, request.app.state.config)
    return response


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login_submit, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
