"""Column types shared by the models and the migrations.

``UTCDateTime`` stores tz-aware UTC datetimes with microseconds on every backend: SQLite keeps
them as fixed-width naive UTC text (so text order is time order and indexes work), PostgreSQL
as ``timestamp with time zone``. Values read back are always aware and in UTC.

``hex_id`` is a 64-hex snapshot id column type; on PostgreSQL it uses the "C" collation so
that range scans for prefix resolution follow byte order whatever the database's locale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # A naive datetime is ambiguous; refusing it keeps every stored time honest.
            raise ValueError(f"naive datetime {value.isoformat()} given to the catalog")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"catalog returned {value!r} where a datetime was expected")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def hex_id() -> TypeEngine[str]:
    return String(64).with_variant(String(64, collation="C"), "postgresql")
