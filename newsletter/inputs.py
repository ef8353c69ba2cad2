"""Parsers every edge shares for what people type: ids, bounded dates, text meant for headers
and feeds, and JSON. Each raises ``InvalidInputError`` naming the field, so a bad value is a
4xx or exit 2 wherever it comes from, never a traceback.

Why these rules: ``str.isdigit`` accepts "²" and "١" (which ``int`` then refuses), Python
integers have no bound while the database's do (64 bits), dates at the calendar's ends
overflow when a time zone or a day is added, a lone surrogate cannot be encoded to UTF-8 at
INSERT, a control character in a title breaks the Atom feed (XML 1.0 forbids C0 but tab and
line breaks) and a NUL or a line break in a header stops a send, and deeply nested JSON
exhausts the parser's recursion.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from typing import Any

from newsletter.errors import InvalidInputError

MAX_ID = 2**63 - 1
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2999, 12, 31)
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1024 * 1024

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
# C0 controls but tab, LF and CR, DEL and the C1 controls: never in stored text.
_CONTROLS_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# In a one-line value (a header, a title) tab is the only control allowed.
_CONTROLS_ONE_LINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def parse_id(text: str, where: str = "id") -> int:
    """A positive row id written in ASCII digits that fits in 64 bits; raises
    ``InvalidInputError`` naming ``where`` otherwise."""
    value = text.strip()
    if _ASCII_DIGITS.fullmatch(value) is None or not 1 <= int(value) <= MAX_ID:
        raise InvalidInputError("must be a whole number from 1 to %(limit)s", where, limit=MAX_ID)
    return int(value)


def parse_count(text: str, where: str, limit: int = MAX_ID) -> int:
    """A whole number from 0 to ``limit`` in ASCII digits (an offset, a position)."""
    value = text.strip()
    if _ASCII_DIGITS.fullmatch(value) is None or int(value) > limit:
        raise InvalidInputError("must be a whole number from 0 to %(limit)s", where, limit=limit)
    return int(value)


def check_date(day: date, where: str) -> date:
    """``day`` when it lies between ``EARLIEST_DATE`` and ``LATEST_DATE``; else raises."""
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise InvalidInputError(
            "must be between %(earliest)s and %(latest)s",
            where,
            earliest=EARLIEST_DATE.isoformat(),
            latest=LATEST_DATE.isoformat(),
        )
    return day


def check_text(value: str, where: str, *, multiline: bool = False) -> str:
    """``value`` when it holds no control character (tab always allowed, line breaks when
    ``multiline``) and no lone surrogate; raises ``InvalidInputError`` naming ``where``."""
    if _SURROGATE.search(value):
        raise InvalidInputError("contains characters that are not valid text", where)
    pattern = _CONTROLS_MULTILINE if multiline else _CONTROLS_ONE_LINE
    found = pattern.search(value)
    if found:
        code = "U+" + format(ord(found.group()), "04X")
        raise InvalidInputError(
            "must not contain control characters (found %(code)s)", where, code=code
        )
    return value


def load_json(raw: bytes, where: str = "body", max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse ``raw`` as JSON text: at most ``max_bytes`` long and ``MAX_JSON_DEPTH`` deep,
    with no lone surrogate in any string and no NaN or infinity. Raises
    ``InvalidInputError``."""
    if len(raw) > max_bytes:
        raise InvalidInputError("must be at most %(limit)s bytes", where, limit=max_bytes)
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("is not valid JSON", where) from None
    except RecursionError:
        raise InvalidInputError(
            "is nested more than %(limit)s levels deep", where, limit=MAX_JSON_DEPTH
        ) from None
    _check_json(data, where, 0)
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(name)


def _check_json(value: Any, where: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInputError(
            "is nested more than %(limit)s levels deep", where, limit=MAX_JSON_DEPTH
        )
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise InvalidInputError("contains characters that are not valid text", where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError("is not valid JSON", where)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, where, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, where, depth + 1)
            _check_json(item, where, depth + 1)
