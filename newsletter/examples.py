"""Example content that ``newsletter init`` queues, so a newcomer sees a real issue at once."""

from __future__ import annotations

from sqlalchemy import Engine


def queue_example_content(engine: Engine) -> int:
    """Queue the example links and intro for the next issue; return how many links."""
    raise NotImplementedError  # built with newsletter.content (foundation issue)
