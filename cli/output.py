"""Printing: data on stdout (a table on a terminal, JSON for scripts), progress on stderr
(a rich progress bar on a terminal)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=_default))


def note(message: str) -> None:
    click.echo(message, err=True)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Aligned columns under a bold header on a terminal; tab-separated lines when piped, easy
    to cut and grep. Plain text rather than a rich table: importing and laying out rich costs
    a tenth of a second, most of a ``snapshot list``, and grows with the rows (a prune plan
    lists every snapshot of a tier); nothing is cut to the terminal's width, ids stay whole."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not sys.stdout.isatty():
        click.echo("\t".join(columns))
        for row in cells:
            click.echo("\t".join(row))
        return
    widths = [_width(name) for name in columns]
    for row in cells:
        widths = [max(w, _width(v)) for w, v in zip(widths, row, strict=True)]

    def line(values: Sequence[str]) -> str:
        padded = (v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True))
        return "  ".join(padded).rstrip()

    out = [title] if title else []
    out.append(click.style(line(columns), bold=True))
    out.append("  ".join("-" * w for w in widths))
    out.extend(line(row) for row in cells)
    click.echo("\n".join(out))


def _width(text: str) -> int:
    """Terminal columns taken by ``text`` (East Asian wide characters take two)."""
    if text.isascii():
        return len(text)
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@contextmanager
def progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr when it is a terminal; silent otherwise (cron stays quiet)."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
