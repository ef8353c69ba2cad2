"""The editor's command line (click). An edge: it reads the clock, opens one transaction per
command and maps ``NewsletterError`` to a message and an exit code.

Command groups live in sibling modules and register themselves on ``main`` below.
"""

from __future__ import annotations

from newsletter.cli.base import main

# Each module adds its commands to ``main`` when imported.
from newsletter.cli import setup as _setup  # noqa: F401  isort: skip
from newsletter.cli import content as _content  # noqa: F401  isort: skip
from newsletter.cli import serve as _serve  # noqa: F401  isort: skip
from newsletter.cli import editors as _editors  # noqa: F401  isort: skip
from newsletter.cli import send as _send  # noqa: F401  isort: skip
from newsletter.cli import subscribers as _subscribers  # noqa: F401  isort: skip
from newsletter.cli import schedule as _schedule  # noqa: F401  isort: skip
from newsletter.cli import feeds as _feeds  # noqa: F401  isort: skip
from newsletter.cli import inbound as _inbound  # noqa: F401  isort: skip

__all__ = ["main"]
