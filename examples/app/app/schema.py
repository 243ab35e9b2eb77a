"""The Alembic head revision(s) of the migrations shipped with this app."""
from __future__ import annotations

from functools import lru_cache

from alembic.config import Config
from alembic.script import ScriptDirectory

from .settings import APP_DIR


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """Heads of migrations/ next to this package: what `alembic upgrade head` would leave in the DB."""
    config = Config(str(APP_DIR / "alembic.ini"))
    return frozenset(ScriptDirectory.from_config(config).get_heads())
