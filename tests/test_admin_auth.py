"""Signing in to /admin: the session cookie, CSRF on every form, rate limiting, and refusal of
anonymous requests on every admin route."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine
from starlette.routing import Route

from newsletter.cli import main
from newsletter.config import Config
from newsletter.web import admin
from tests.admin_support import (
    EMAIL,
    PASSWORD,
    csrf_from,
    make_client,
    open_site,
    sign_in,
    signed_in,
)
from tests.conftest import ConfigFactory


@pytest.fixture
def site(make_config: ConfigFactory, sqlite_url: str) -> tuple[Config, Engine]:
    config = make_config(sqlite_url)
    engine, _ = open_site(config)
    return config, engine


def _admin_paths() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in admin.admin_routes():
        if isinstance(route, Route) and route.path not in ("/login",):
            path = "/admin" + re.sub(r"\{\w+:\w+\}", "1", route.path)
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    found.append((method, path))
    return found


def test_sign_in_sets_a_hardened_session_cookie(site: tuple[Config, Engine]) -> None:
    """A right password gives an HttpOnly, SameSite=Lax, Secure (https) session cookie."""
    client = make_client(*site)
    page = client.get("/admin/login")
    assert page.status_code == 200 and "password" in page.text
    response = client.post(
        "/admin/login",
        data={"csrf_token": csrf_from(page.text), "email": EMAIL, "password": PASSWORD},
    )
    assert response.status_code == 303 and response.headers["location"] == "/admin/"
    cookie = next(c for c in response.headers.get_list("set-cookie") if "newsletter_admin" in c)
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    assert client.get("/admin/issue").status_code != 303


def test_wrong_password_and_missing_csrf_are_refused(site: tuple[Config, Engine]) -> None:
    """A wrong password gets 401 and no session; a sign-in without the CSRF field gets 403."""
    client = make_client(*site)
    csrf = csrf_from(client.get("/admin/login").text)
    response = client.post(
        "/admin/login", data={"csrf_token": csrf, "email": EMAIL, "password": "nope nope nope"}
    )
    assert response.status_code == 401 and "newsletter_admin" not in response.headers.get(
        "set-cookie", ""
    )
    response = client.post("/admin/login", data={"email": EMAIL, "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/admin/issue").status_code == 303


def test_repeated_failures_are_rate_limited(site: tuple[Config, Engine]) -> None:
    """After five failures, even the right password is refused with 429 for a while."""
    client = make_client(*site)
    csrf = csrf_from(client.get("/admin/login").text)
    for _ in range(5):
        wrong = {"csrf_token": csrf, "email": EMAIL, "password": "wrong password"}
        assert client.post("/admin/login", data=wrong).status_code == 401
    right = {"csrf_token": csrf, "email": EMAIL, "password": PASSWORD}
    assert client.post("/admin/login", data=right).status_code == 429


def test_every_admin_route_refuses_anonymous_requests(site: tuple[Config, Engine]) -> None:
    """Anonymous GETs are sent to the sign-in page; anonymous POSTs get 403."""
    client = make_client(*site)
    paths = _admin_paths()
    assert len(paths) >= 2
    for method, path in paths:
        response = client.request(method, path)
        expected = 303 if method == "GET" else 403
        assert response.status_code == expected, (method, path, response.status_code)


def test_every_admin_post_refuses_a_missing_csrf_token(site: tuple[Config, Engine]) -> None:
    """A signed-in editor's POST without the CSRF field is refused with 403."""
    admin_client = signed_in(*site)
    for method, path in _admin_paths():
        if method == "POST":
            response = admin_client.client.post(path, data={"x": "1"})
            assert response.status_code == 403, path


def test_forged_cookie_is_ignored_and_sign_out_works(site: tuple[Config, Engine]) -> None:
    """A cookie not signed with the secret is no session; signing out ends the session."""
    client = make_client(*site)
    client.cookies.set("newsletter_admin", "eyJlIjoxfQ.forged.sig")
    assert client.get("/admin/issue").status_code == 303
    client.cookies.clear()
    admin_client = sign_in(client)
    assert admin_client.post("/admin/logout").status_code == 303
    assert client.get("/admin/issue").status_code == 303


def test_password_change_ends_existing_sessions(site: tuple[Config, Engine]) -> None:
    """After `editors password`, a cookie issued before the change no longer signs in."""
    config, engine = site
    client = make_client(config, engine)
    sign_in(client)
    assert client.get("/admin/issue").status_code == 200
    result = CliRunner().invoke(
        main,
        ["--config", str(config.path), "editors", "password", EMAIL, "--password-stdin"],
        input="another long password\n",
    )
    assert result.exit_code == 0, result.output
    assert client.get("/admin/issue").status_code == 303
    sign_in(client, password="another long password")


def test_sign_in_returns_to_the_page_that_asked_for_it(site: tuple[Config, Engine]) -> None:
    """An anonymous visit to the bookmarklet's page goes to the sign-in page and, once signed
    in, back to that page with its link; the home page needs no detour."""
    client = make_client(*site)
    wanted = "/admin/intake/share?url=https%3A%2F%2Fwww.lemonde.fr%2Fa&title=%C2%AB+Zo%C3%A9+%C2%BB"
    detour = client.get(wanted)
    assert detour.status_code == 303
    assert detour.headers["location"].startswith("/admin/login?next=%2Fadmin%2Fintake%2Fshare")
    assert client.get("/admin/").headers["location"] == "/admin/login"
    page = client.get(detour.headers["location"])
    kept = re.search(r'name="next" value="([^"]*)"', page.text)
    assert kept is not None and kept.group(1).replace("&amp;", "&") == wanted
    form = {"csrf_token": csrf_from(page.text), "email": EMAIL, "password": "wrong password"}
    refused = client.post("/admin/login", data={**form, "next": wanted})
    assert refused.status_code == 401 and 'name="next"' in refused.text
    response = client.post("/admin/login", data={**form, "password": PASSWORD, "next": wanted})
    assert response.status_code == 303 and response.headers["location"] == wanted
    assert client.get(wanted).status_code == 200


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://evil.example/admin/",
        "//evil.example/admin/",
        "/\\evil.example",
        "/admin/../../outside",
        "/admin/%2e%2e/%2e%2e/outside",
        "/admin/\r\nSet-Cookie: x=1",
        "/archive/1",
        "",
    ],
)
def test_sign_in_never_sends_anyone_off_the_dashboard(
    site: tuple[Config, Engine], elsewhere: str
) -> None:
    """A ``next`` that leaves the dashboard (another site, a protocol-relative URL, a
    backslash, dot segments, a header break, a public page) ends on the dashboard's home."""
    client = make_client(*site)
    csrf = csrf_from(client.get("/admin/login").text)
    form = {"csrf_token": csrf, "email": EMAIL, "password": PASSWORD, "next": elsewhere}
    response = client.post("/admin/login", data=form)
    assert response.status_code == 303 and response.headers["location"] == "/admin/"
