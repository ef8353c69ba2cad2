"""Sending mail: the one way in for callers outside this package.

Start a send (``publish_next_issue``, ``start_send_run``), run the sender (``run_sender``,
``delivery_service``), steer and watch it (``pause_run``, ``resume_run``, ``run_progress``),
and send single messages (``send_rendered``, ``TransactionalMailer``). The mechanics stay in
the modules beside this one: ``runs`` (a run's lifecycle), ``ledger`` (the SQL of the delivery
ledger), ``sender`` (asyncio workers over pooled SMTP connections), ``smtp``, ``message``
(MIME bytes, DKIM), ``render`` (jinja2 + premailer, once per issue), ``catcher`` (the local
mail catcher).
"""

from newsletter.sending.catcher import (
    CaughtMessage,
    catcher_dir,
    catcher_service,
    list_caught,
    read_caught,
)
from newsletter.sending.message import Recipient
from newsletter.sending.publish import (
    IssueToRender,
    PublishedIssue,
    RenderedIssue,
    issue_run_key,
    issue_to_render,
    publish_next_issue,
    render_issue,
)
from newsletter.sending.render import (
    RECIPIENT_EMAIL_PLACEHOLDER,
    UNSUBSCRIBE_URL_PLACEHOLDER,
    RenderedEmail,
    render_digest,
    render_email,
)
from newsletter.sending.runs import pause_if_running, start_send_run
from newsletter.sending.service import (
    RunProgress,
    SenderStats,
    delivery_service,
    get_run,
    latest_run,
    pause_run,
    resume_run,
    run_progress,
    run_sender,
)
from newsletter.sending.transactional import TransactionalMailer, build_message, send_rendered

__all__ = [
    "RECIPIENT_EMAIL_PLACEHOLDER",
    "UNSUBSCRIBE_URL_PLACEHOLDER",
    "CaughtMessage",
    "IssueToRender",
    "PublishedIssue",
    "Recipient",
    "RenderedEmail",
    "RenderedIssue",
    "RunProgress",
    "SenderStats",
    "TransactionalMailer",
    "build_message",
    "catcher_dir",
    "catcher_service",
    "delivery_service",
    "get_run",
    "issue_run_key",
    "issue_to_render",
    "latest_run",
    "list_caught",
    "pause_if_running",
    "pause_run",
    "publish_next_issue",
    "read_caught",
    "render_digest",
    "render_email",
    "render_issue",
    "resume_run",
    "run_progress",
    "run_sender",
    "send_rendered",
    "start_send_run",
]
