"""Regenerate migration 0001 from the models (pre-release only: no database in the field yet).

Once a release ships, add new revisions with `alembic revision --autogenerate` instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from alembic import command

from newsletter.db import alembic_config, make_engine
from newsletter.resources import MIGRATIONS_DIR

target = MIGRATIONS_DIR / "versions" / "0001_initial_schema.py"
target.unlink(missing_ok=True)
with tempfile.TemporaryDirectory() as tmp:
    engine = make_engine(f"sqlite:///{Path(tmp) / 'gen.db'}")
    command.revision(
        alembic_config(engine), message="initial schema", autogenerate=True, rev_id="0001"
    )
