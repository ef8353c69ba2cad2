"""URL canonicalisation: one spelling per page, so the same article queued twice is noticed.

Tracking parameters (``utm_*``, ``fbclid``, ``gclid``...) and the fragment are dropped, the
scheme and host are lower-cased, a default port and an empty path are normalised; everything
else (path case, the order of the other parameters) is kept, because servers may care.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking_param(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMS


def canonical_url(url: str) -> str:
    """``url`` without tracking parameters or fragment, scheme and host lower-cased.

    A URL that does not parse is returned stripped, unchanged otherwise.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    kept = [(k, v) for k, v in query if not is_tracking_param(k)]
    new_query = parts.query if len(kept) == len(query) else urlencode(kept)
    return urlunsplit((scheme, netloc, parts.path or "/", new_query, ""))


def readable_domain(url: str) -> str:
    """The host of ``url`` as a reader would name it: ``www.lemonde.fr`` → ``lemonde.fr``."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""
    for prefix in ("www.", "m.", "amp."):
        if host.startswith(prefix) and host.count(".") >= 2:
            return host[len(prefix) :]
    return host
