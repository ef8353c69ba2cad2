"""The complete schema: ``Base.metadata`` with every module that declares tables imported.

Alembic's environment (upgrades and autogenerate) and the migration test read it from here, so
a new models module is named in one place. It is not part of ``newsletter.db`` because the
store's plumbing sits below the models that build on it and must not import them.
"""

from __future__ import annotations

from sqlalchemy import MetaData

import newsletter.inbound.models
import newsletter.models
import subscribers.models
from newsletter.db import Base

# Imported for their side effect: each adds its tables to ``Base.metadata``.
MODEL_MODULES = (newsletter.models, newsletter.inbound.models, subscribers.models)

metadata: MetaData = Base.metadata
