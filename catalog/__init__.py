"""The snapshot catalog: SQLAlchemy models, Alembic-managed schema, record and query API.

Entry point: ``Catalog.open(url)`` (see ``catalog.database``); the dataclasses it takes and
returns live in ``catalog.records``; ``render_prometheus`` in ``catalog.metrics``.
"""

from catalog.database import Catalog
from catalog.engine import default_catalog_url
from catalog.metrics import render_prometheus
from catalog.records import (
    KeyRow,
    PruneCandidate,
    Sample,
    SnapshotFilter,
    SnapshotRecord,
    SnapshotSummary,
)

__all__ = [
    "Catalog",
    "KeyRow",
    "PruneCandidate",
    "Sample",
    "SnapshotFilter",
    "SnapshotRecord",
    "SnapshotSummary",
    "default_catalog_url",
    "render_prometheus",
]
