"""The editor's command line (click). An edge: it reads the clock, opens one transaction per
command and maps ``NewsletterError`` to a message and an exit code.

Command groups live in sibling modules and register themselves on ``main`` when imported;
``main`` imports only the module of the command being run (``COMMAND_MODULES`` in
``newsletter.cli.base``), so ``newsletter send status`` does not load the web app, link
intake or the return path.
"""

from __future__ import annotations

from newsletter.cli.base import COMMAND_MODULES, main

__all__ = ["COMMAND_MODULES", "main"]
