"""The clock: APScheduler wiring only. At each weekly slot it calls the dispatcher.

Run on its own with ``python scheduler.py`` (or ``newsletter scheduler``); ``newsletter serve``
runs the same scheduler inside its process.
"""

from __future__ import annotations
