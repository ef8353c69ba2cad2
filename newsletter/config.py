"""Settings read from ``newsletter.toml`` and the environment, and validated (declared in
``newsletter.settings``).

Every setting lives in a table (``[list]``, ``[smtp]``...) and can be overridden by
``NEWSLETTER_<TABLE>_<KEY>`` in the environment. A few names everyone sets have short aliases
(``NEWSLETTER_BASE_URL``). Invalid values stop start-up with a message naming the setting and
where it came from.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import ConfigError, InvalidInputError, NotInitialisedError
from newsletter.inputs import check_text

# Re-exported: callers read the declarations as ``newsletter.config.SETTINGS``.
from newsletter.settings import DEPRECATED as DEPRECATED
from newsletter.settings import ENV_ALIASES as ENV_ALIASES
from newsletter.settings import SETTINGS as SETTINGS
from newsletter.settings import Setting as Setting

DEFAULT_CONFIG_FILE = "newsletter.toml"
MAX_PORT = 65535


@dataclass(frozen=True)
class DeprecatedName:
    """A deprecated setting name found in the file or the environment; the edges warn."""

    old: str  # "[subscribers] soft_bounce_limit"
    new: str  # "[bounces] soft_bounce_limit"
    source: str  # where the old name was found
    used: bool  # False when the new name was set too and won


@dataclass(frozen=True)
class Config:
    """Validated settings. ``values[table][key]``; typed accessors for the common ones.
    ``deprecated`` lists the old setting names found, for the edges to warn about."""

    path: Path
    values: Mapping[str, Mapping[str, Any]] = field(repr=False)
    deprecated: tuple[DeprecatedName, ...] = ()

    def get(self, table: str, key: str) -> Any:
        return self.values[table][key]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def base_url(self) -> str:
        return str(self.get("web", "base_url")).rstrip("/")

    @property
    def secret_key(self) -> str:
        return str(self.get("web", "secret_key"))

    @property
    def database_url(self) -> str:
        return resolve_database_url(str(self.get("database", "url")), self.base_dir)

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(str(self.get("schedule", "timezone")))

    @property
    def language(self) -> str:
        """The language the list's pages and emails speak (``[list] language``)."""
        return str(self.get("list", "language"))

    @property
    def catcher_enabled(self) -> bool:
        return not self.get("smtp", "host")

    def resolve_path(self, value: str) -> Path:
        """Resolve a path setting relative to the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.base_dir / path


def resolve_database_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite path relative to ``base_dir``; leave other URLs alone."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        raw = url[len(prefix) :]
        if raw and not raw.startswith("/"):
            return prefix + str((base_dir / raw).resolve())
    return url


def config_path_from(explicit: str | os.PathLike[str] | None) -> Path:
    """The config file: ``--config``, else ``NEWSLETTER_CONFIG``, else ``./newsletter.toml``."""
    chosen = explicit or os.environ.get("NEWSLETTER_CONFIG") or DEFAULT_CONFIG_FILE
    return Path(chosen).expanduser().resolve()


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    require_file: bool = True,
) -> Config:
    """Read, merge and validate settings.

    Raises ``NotInitialisedError`` when the file is missing and ``require_file`` is set, and
    ``ConfigError`` naming the setting and its source when a value is invalid or unknown.
    """
    config_path = config_path_from(path)
    env = os.environ if environ is None else environ
    file_values = _read_file(config_path, require_file)
    values: dict[str, dict[str, Any]] = {}
    deprecated: list[DeprecatedName] = []
    for setting in SETTINGS:
        raw, source = _raw_value(setting, file_values, env, config_path)
        found = _deprecated_value(setting, file_values, env, config_path)
        if found is not None:
            old_raw, note = found
            # The new name wins when it is set anywhere; the old one only replaces a default.
            if note.used:
                raw, source = old_raw, note.source
            deprecated.append(note)
        values.setdefault(setting.table, {})[setting.key] = _coerce(setting, raw, source)
    config = Config(path=config_path, values=values, deprecated=tuple(deprecated))
    _check_consistency(config)
    return config


def _deprecated_value(
    setting: Setting, file_values: dict[str, Any], env: Mapping[str, str], path: Path
) -> tuple[Any, DeprecatedName] | None:
    """The value of an old name of ``setting`` (environment first, then the file) with a note
    of where it was found; None when no old name is set."""
    new = f"[{setting.table}] {setting.key}"
    used = not _is_set(setting, file_values, env)
    for (table, key), target in DEPRECATED.items():
        if target != (setting.table, setting.key):
            continue
        old = f"[{table}] {key}"
        env_name = f"NEWSLETTER_{table.upper()}_{key.upper()}"
        if env_name in env:
            source = f"environment variable {env_name}"
            return env[env_name], DeprecatedName(old, new, source, used)
        if key in file_values.get(table, {}):
            source = f"{path} [{table}] {key}"
            return file_values[table][key], DeprecatedName(old, new, source, used)
    return None


def _is_set(setting: Setting, file_values: dict[str, Any], env: Mapping[str, str]) -> bool:
    """Whether ``setting`` is given under its own name (an alias, the environment, the file)."""
    aliases = [
        alias for alias, target in ENV_ALIASES.items() if target == (setting.table, setting.key)
    ]
    return (
        any(alias in env for alias in aliases)
        or setting.env_name in env
        or setting.key in file_values.get(setting.table, {})
    )


def _read_file(path: Path, require_file: bool) -> dict[str, Any]:
    if not path.exists():
        if require_file:
            raise NotInitialisedError(
                "no configuration at %(path)s: run `newsletter init` first "
                "(or pass --config / set NEWSLETTER_CONFIG)",
                path=str(path),
            )
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "%(path)s: not valid TOML: %(error)s", path=str(path), error=str(exc)
        ) from None
    except OSError as exc:  # a directory, a file we may not read
        raise ConfigError(
            "%(path)s: cannot read the configuration file: %(error)s",
            path=str(path),
            error=exc.strerror or type(exc).__name__,
        ) from None
    known = {(s.table, s.key) for s in SETTINGS} | set(DEPRECATED)
    for table, entries in data.items():
        if not isinstance(entries, dict):
            raise ConfigError(
                "%(path)s: `%(table)s` must be a table like [%(table)s]",
                path=str(path),
                table=table,
            )
        for key in entries:
            if (table, key) not in known:
                raise ConfigError(
                    "%(path)s: unknown setting [%(table)s] %(setting)s",
                    path=str(path),
                    table=table,
                    setting=key,
                )
    return data


def _raw_value(
    setting: Setting, file_values: dict[str, Any], env: Mapping[str, str], path: Path
) -> tuple[Any, str]:
    for alias, target in ENV_ALIASES.items():
        if target == (setting.table, setting.key) and alias in env:
            return env[alias], f"environment variable {alias}"
    if setting.env_name in env:
        return env[setting.env_name], f"environment variable {setting.env_name}"
    table = file_values.get(setting.table, {})
    if setting.key in table:
        return table[setting.key], f"{path} [{setting.table}] {setting.key}"
    return setting.default, f"default of [{setting.table}] {setting.key}"


def _coerce(setting: Setting, raw: Any, source: str) -> Any:
    name = f"[{setting.table}] {setting.key}"
    try:
        value = _coerce_kind(setting.kind, raw)
    except (TypeError, ValueError):
        raise ConfigError(
            "%(name)s from %(source)s: expected %(kind)s, got %(raw)r",
            name=name,
            source=source,
            kind=setting.kind.__name__,
            raw=raw,
        ) from None
    if setting.choices and value not in setting.choices:
        raise ConfigError(
            "%(name)s from %(source)s: must be one of %(choices)s",
            name=name,
            source=source,
            choices=", ".join(setting.choices),
        )
    if isinstance(value, str) and not setting.secret:
        _check_single_line(value, name, source)
    if setting.kind is float and not math.isfinite(value):
        raise ConfigError("%(name)s from %(source)s: must be a number", name=name, source=source)
    if setting.kind in (int, float) and value < 0:
        raise ConfigError(
            "%(name)s from %(source)s: must not be negative", name=name, source=source
        )
    if setting.key.endswith("port") and not 0 < value <= MAX_PORT:
        raise ConfigError(
            "%(name)s from %(source)s: must be a port from 1 to %(limit)s",
            name=name,
            source=source,
            limit=MAX_PORT,
        )
    return value


def _check_single_line(value: str, name: str, source: str) -> None:
    if "\r" in value or "\n" in value:
        raise ConfigError(
            "%(name)s from %(source)s: must be a single line", name=name, source=source
        )
    try:
        check_text(value, name)
    except InvalidInputError as exc:
        raise ConfigError(
            "%(name)s from %(source)s: %(reason)s", name=name, source=source, reason=exc.reason
        ) from None


def _coerce_kind(kind: type, raw: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if kind is int and isinstance(raw, bool | float):
        raise TypeError(raw)
    if kind is str and not isinstance(raw, str):
        raise TypeError(raw)
    return kind(raw)


def _check_consistency(config: Config) -> None:
    where = str(config.path)
    try:
        config.timezone  # noqa: B018 - validates the zone name
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "[schedule] timezone in %(path)s: unknown time zone %(zone)r",
            path=where,
            zone=config.get("schedule", "timezone"),
        ) from None
    hh_mm = str(config.get("schedule", "time"))
    parts = hh_mm.split(":")
    if (
        len(parts) != 2
        or not all(p.isdigit() for p in parts)
        or int(parts[0]) > 23
        or int(parts[1]) > 59
    ):
        raise ConfigError(
            "[schedule] time in %(path)s: expected HH:MM, got %(time)r", path=where, time=hh_mm
        )
    if not re.fullmatch(r"#[0-9A-Fa-f]{6}", str(config.get("list", "accent_color"))):
        raise ConfigError(
            "[list] accent_color in %(path)s: expected a colour like #1d5e9c, got %(value)r",
            path=where,
            value=config.get("list", "accent_color"),
        )
    logo = str(config.get("list", "logo_url"))
    if logo and not logo.startswith(("https://", "http://")):
        raise ConfigError(
            "[list] logo_url in %(path)s: must start with https:// (or be empty)", path=where
        )
    if not config.base_url.startswith(("http://", "https://")):
        raise ConfigError(
            "[web] base_url in %(path)s: must start with http:// or https://", path=where
        )


def render_config_file(values: Mapping[str, Mapping[str, Any]]) -> str:
    """Write a commented ``newsletter.toml`` holding ``values`` (other settings as comments)."""
    import tomli_w

    lines: list[str] = ["# Sunday newsletter configuration. See README.md for every setting.", ""]
    tables: dict[str, list[Setting]] = {}
    for setting in SETTINGS:
        tables.setdefault(setting.table, []).append(setting)
    for table, settings in tables.items():
        lines.append(f"[{table}]")
        for setting in settings:
            lines.append(f"# {setting.help}")
            if setting.key in values.get(table, {}):
                lines.append(tomli_w.dumps({setting.key: values[table][setting.key]}).strip())
            else:
                lines.append("# " + tomli_w.dumps({setting.key: setting.default}).strip())
        lines.append("")
    return "\n".join(lines)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies(config: Config) -> tuple[Network, ...]:
    """The networks of ``[web] trusted_proxies``; raises ``ConfigError`` for a bad entry."""
    raw = str(config.get("web", "trusted_proxies"))
    networks: list[Network] = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                "[web] trusted_proxies: not an address or a network: %(entry)r", entry=entry
            ) from None
    return tuple(networks)
