"""/api/openapi.json describes the API as implemented: schemathesis generates requests from
the document (valid and invalid ones) and checks every response's status, content type and
body against it, through the app's ASGI interface on a real SQLite file and SMTP server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from newsletter.config import Config
from newsletter.content import queue_link
from newsletter.db import transaction
from newsletter.sending.publish import publish_next_issue
from newsletter.web.api.app import OPERATIONS
from newsletter.web.app import create_app
from subscribers.models import SubscriberStatus
from subscribers.store import create_subscriber
from tests.admin_support import NOW, open_site
from tests.conftest import ConfigFactory
from tests.harness import SMTPServer

EXAMPLES = int(os.environ.get("NEWSLETTER_API_FUZZ_EXAMPLES", "8"))
TOKEN: dict[str, str] = {}


@pytest.fixture
def api_schema(
    make_config: ConfigFactory, sqlite_url: str, smtp_server: SMTPServer
) -> Iterator[Any]:
    config = make_config(sqlite_url, smtp_port=smtp_server.port)
    engine, TOKEN["value"] = open_site(config)
    _seed(engine, config)
    app = create_app(config, engine)
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app)
    engine.dispose()


def _seed(engine: Engine, config: Config) -> None:
    """Real rows for the responses to describe: a subscriber, a sent issue's run, two links."""
    with transaction(engine) as session:
        create_subscriber(
            session,
            email="ana@example.org",
            name="Ana",
            status=SubscriberStatus.ACTIVE,
            source="test",
            language="fr",
            now=NOW,
        )
        queue_link(session, url="https://example.org/0", title="Zéro", source="", now=NOW)
        publish_next_issue(session, config, NOW)
        for n in (1, 2):
            queue_link(
                session,
                url=f"https://example.org/{n}",
                title=f"Lien {n}",
                source="Le Monde",
                tags=["civic"],
                now=NOW,
            )


def test_document_lists_every_operation(api_schema: Any) -> None:
    """Each declared operation appears in the document with its method and the bearer scheme."""
    raw = api_schema.raw_schema
    assert raw["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for op in OPERATIONS:
        assert op.method.lower() in raw["paths"][op.path], op.path


def test_api_conforms_to_its_document(api_schema: Any) -> None:
    """Every generated request (valid and invalid) gets a documented status and a body that
    matches the document, for every operation. A schema-valid request may still be refused
    with 422 (a URL that is not http(s), a pause ending in the past: rules a JSON schema
    cannot state), so schemathesis' positive-data-acceptance heuristic is left out."""
    headers = {"Authorization": f"Bearer {TOKEN['value']}"}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == len(OPERATIONS)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()
