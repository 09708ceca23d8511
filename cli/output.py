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


# What must never reach a terminal as is: C0 and C1 controls and DEL (an escape sequence can
# move the cursor, rewrite a line already printed, set the title or hide text), the bidi
# overrides and isolates (they reorder what is shown), and lone surrogates (unprintable).
_UNPRINTABLE = [
    *range(0x20),
    0x7F,
    *range(0x80, 0xA0),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    *range(0xD800, 0xE000),
]
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in _UNPRINTABLE}
# An error message is one line; past this it is cut (each part was cut already where it was
# made: this only keeps a message that strings several together on a screen).
MAX_MESSAGE = 2000


def printable(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``).

    The one function between untrusted strings (node ids, paths and fields from a tarball,
    a store or the catalog) and the terminal: tables, notes, errors and result lines go
    through it. JSON output needs none of it: ``json.dumps`` escapes controls itself.
    """
    return text.translate(_ESCAPES)


def echo(text: str, err: bool = False) -> None:
    """One line of output that may hold untrusted text."""
    click.echo(printable(text), err=err)


def error_line(message: str) -> str:
    """An error message as shown on stderr: escaped, one line, bounded."""
    line = printable(message)
    return line if len(line) <= MAX_MESSAGE else line[:MAX_MESSAGE] + "..."


def emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, default=_default))


def note(message: str) -> None:
    click.echo(printable(message), err=True)


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """Aligned columns under a bold header on a terminal; tab-separated lines when piped, easy
    to cut and grep. Plain text rather than a rich table: importing and laying out rich costs
    a tenth of a second, most of a ``snapshot list``, and grows with the rows (a prune plan
    lists every snapshot of a tier); nothing is cut to the terminal's width, ids stay whole."""
    cells = [["" if v is None else printable(str(v)) for v in row] for row in rows]
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
