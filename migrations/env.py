"""Alembic environment for the catalog.

``catalog.migrate`` runs the migrations in code: it hands over a connection in
``config.attributes["connection"]`` on which it already holds the migration lock and owns the
transaction, so this file then neither connects nor commits. The fallback (no connection) is
for developers running ``alembic -c migrations/alembic.ini revision --autogenerate``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from catalog.tables import schema

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=schema(),
        # SQLite cannot ALTER most things in place; batch mode rebuilds tables when needed.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


handed_over = config.attributes.get("connection")
if handed_over is not None:
    run(handed_over)
else:
    from catalog.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()
