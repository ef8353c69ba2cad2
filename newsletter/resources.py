"""Where the product's files are: templates, static files and migrations.

Every other module asks here, so a git checkout and an installed wheel find the same files.
In a checkout the templates sit at the top level (``templates/email/``, ``templates/web/``,
where the user asked for them); a wheel carries them inside the package.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _templates_root() -> Path:
    inside = PACKAGE_DIR / "templates"
    return inside if inside.is_dir() else PACKAGE_DIR.parent / "templates"


TEMPLATES_DIR = _templates_root()
EMAIL_TEMPLATES_DIR = TEMPLATES_DIR / "email"
WEB_TEMPLATES_DIR = TEMPLATES_DIR / "web"
STATIC_DIR = PACKAGE_DIR / "web" / "static"
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
LOCALE_DIR = PACKAGE_DIR / "locale"
