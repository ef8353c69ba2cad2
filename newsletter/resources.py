"""Where the product's files are: templates, static files, migrations and translations.

Every other module asks here, so a git checkout, an editable install and an installed wheel
find the same files. They are located through the package (``importlib.resources``), never
through the current directory. In a checkout the templates sit at the top level
(``templates/email/``, ``templates/web/``, where the user asked for them); the wheel carries
them inside the package as ``newsletter/templates/`` (see ``setup.py``).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from newsletter.errors import ConfigError


def _package_dir() -> Path:
    root = files("newsletter")
    # jinja2's FileSystemLoader, Starlette's StaticFiles and Alembic need real folders: an
    # installed wheel and a checkout both give one (a zipped install would not).
    if not isinstance(root, Path):
        raise ConfigError(
            "must be installed as files, not inside %(archive)s", "newsletter", archive=str(root)
        )
    return root


PACKAGE_DIR = _package_dir()


def _templates_root() -> Path:
    inside = PACKAGE_DIR / "templates"
    return inside if inside.is_dir() else PACKAGE_DIR.parent / "templates"


TEMPLATES_DIR = _templates_root()
EMAIL_TEMPLATES_DIR = TEMPLATES_DIR / "email"
WEB_TEMPLATES_DIR = TEMPLATES_DIR / "web"
STATIC_DIR = PACKAGE_DIR / "web" / "static"
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
LOCALE_DIR = PACKAGE_DIR / "locale"
