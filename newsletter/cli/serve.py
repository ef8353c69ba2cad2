"""``newsletter serve``: the web app on uvicorn and every long-running service (mail catcher,
delivery worker, schedule) in one asyncio loop, one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any

import click
import uvicorn
from sqlalchemy import Engine

from newsletter.cli.base import AppContext, WholeNumber, _, main, pass_app
from newsletter.config import Config, trusted_proxies
from newsletter.db import transaction
from newsletter.editors import list_editors
from newsletter.errors import ConfigError
from newsletter.sending import catcher_service

# A service is ``factory(config, engine)`` returning an async context manager: it starts on
# enter and stops on exit. What it yields is put on ``app.state`` under ``name``.
ServiceFactory = Callable[[Config, Engine], AbstractAsyncContextManager[Any]]


@contextlib.asynccontextmanager
async def _delivery(config: Config, engine: Engine) -> AsyncIterator[Any]:
    from newsletter.sending import delivery_service

    async with delivery_service(config, engine) as task:
        yield task


@contextlib.asynccontextmanager
async def _schedule(config: Config, engine: Engine) -> AsyncIterator[Any]:
    from scheduler import scheduler_service

    async with scheduler_service(config, engine) as scheduler:
        yield scheduler


@contextlib.asynccontextmanager
async def _inbound(config: Config, engine: Engine) -> AsyncIterator[Any]:
    from newsletter.services.inbound_intake import inbound_service

    async with inbound_service(config, engine) as intake:
        yield intake


# ---------------------------------------------------------------------------------------------
# SERVICES: the long-running services `serve` runs beside the web app, started in this order
# and stopped in reverse. Other modules: append `("name", factory)` here.
# ---------------------------------------------------------------------------------------------
SERVICES: list[tuple[str, ServiceFactory]] = [
    ("catcher", catcher_service),  # embedded SMTP catcher, only when [smtp] host is empty
    ("sender", _delivery),  # delivery worker: sends every running send run
    ("scheduler", _schedule),  # the weekly schedule (APScheduler is only the clock)
    ("inbound", _inbound),  # the return path: LMTP intake and IMAP poll, when configured
]


@contextlib.contextmanager
def _signals_end_serving() -> Iterator[None]:
    """uvicorn handles SIGINT/SIGTERM by shutting down, then re-raises the signal to whatever
    handler was there before. Without this, the default handler would kill the process before
    the services (the sender finishing its in-flight messages) are stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(sig: int, frame: FrameType | None) -> None:
    """Stopping is already under way when this runs (see ``_signals_end_serving``)."""


def proxy_options(config: Config) -> dict[str, Any]:
    """uvicorn's proxy settings: X-Forwarded-* are read only from ``[web] trusted_proxies``
    (uvicorn's default believes them from 127.0.0.1, which lets anyone on the host forge
    the client's address)."""
    proxies = [str(network) for network in trusted_proxies(config)]
    return {"proxy_headers": bool(proxies), "forwarded_allow_ips": proxies or None}


async def run_server(
    config: Config,
    engine: Engine,
    host: str,
    port: int,
    services: Sequence[tuple[str, ServiceFactory]] = tuple(SERVICES),
) -> None:
    """Start the services, serve HTTP until SIGINT/SIGTERM, then stop the services."""
    from newsletter.web.app import create_app, hide_tokens_in_access_log

    with _signals_end_serving():
        async with contextlib.AsyncExitStack() as stack:
            state: dict[str, Any] = {}
            for name, factory in services:
                try:
                    state[name] = await stack.enter_async_context(factory(config, engine))
                except OSError as exc:
                    raise ConfigError(
                        "cannot start the %(name)s: %(error)s", name=name, error=str(exc)
                    ) from None
            app = create_app(config, engine, **state)
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=host,
                    port=port,
                    log_level="info",
                    access_log=bool(config.get("web", "access_log")),
                    lifespan="on",
                    **proxy_options(config),
                )
            )
            hide_tokens_in_access_log()
            # Everything made so far (modules, the app, the services) lives as long as the
            # process: out of the collector's sight, a full collection no longer walks it,
            # which otherwise stops every request for tens of milliseconds now and then.
            gc.freeze()
            await server.serve()
            if not server.started:
                raise ConfigError(
                    "cannot listen on %(host)s:%(port)s (is the port in use?)", host=host, port=port
                )


@main.command()
@click.option("--host", default=None, help="Listen address (default: [web] host).")
@click.option(
    "--port",
    default=None,
    type=WholeNumber("port", high=65535),
    help="Listen port (default: [web] port).",
)
@pass_app
def serve(app: AppContext, host: str | None, port: int | None) -> None:
    """Run the web app, the mail catcher (when no relay is set), the sender and the schedule."""
    config = app.config
    engine = app.engine()
    host = host or str(config.get("web", "host"))
    port = int(config.get("web", "port")) if port is None else port
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # APScheduler logs every run of the minute job at INFO; editors need only its problems.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    if config.catcher_enabled:
        outbox = f"http://{host}:{port}/outbox"
        click.echo(
            _(
                "No SMTP relay configured: catching mail on 127.0.0.1:%(port)s, shown at %(url)s",
                port=config.get("smtp", "catcher_port"),
                url=outbox,
            )
        )
    _print_next_step(engine, host, port)
    run_event_loop(run_server(config, engine, host, port))


def run_event_loop(main_task: Coroutine[Any, Any, None]) -> None:
    """Run ``main_task`` on uvloop when it is installed (uvicorn's standard extras: a faster
    loop for the web and the sender alike), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main_task)
    else:
        uvloop.run(main_task)


# The README's command: the password is read without echo and never lands in shell history.
CREATE_EDITOR = (
    "read -rs pw && printf '%s\\n' \"$pw\" | "
    ".venv/bin/newsletter editors add you@example.org --password-stdin"
)


def _print_next_step(engine: Engine, host: str, port: int) -> None:
    """While no editor account exists, say how to create one (the README's command)."""
    with transaction(engine) as session:
        if list_editors(session):
            return
    click.echo(
        _(
            "Next step: create your editor account. In another terminal, run this, type a "
            "password (10 characters or more) and press Enter; then sign in at %(url)s",
            url=f"http://{host}:{port}/admin",
        )
    )
    click.echo(f"  {CREATE_EDITOR}")
