"""``stigmem federation cursor-export``."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("federation")
def federation_group() -> None:
    """Federation state of a node database."""


@federation_group.command(
    "cursor-export",
    epilog="""\b
Examples:
  stigmem federation cursor-export --db /var/lib/stigmem/stigmem.db
  stigmem federation cursor-export --db node.db --out cursors.json""",
)
@click.option("--db", type=click.Path(), help="Node database [STIGMEM_DB_PATH].")
@click.option(
    "--out",
    default="-",
    show_default=True,
    type=click.Path(allow_dash=True),
    help="Write the checkpoint here (mode 0600); - is standard output.",
)
def cursor_export_cmd(db: str | None, out: str) -> None:
    """Export replication cursors joined with their peers, as the node's checkpoint JSON.

    Reads the database in one read transaction and never writes to it.
    """
    import os

    from cli.app import db_path_option
    from cli.output import note
    from snapshot.federation import checkpoint_text, cursor_export, write_text_0600

    given = db if db is not None else os.environ.get("STIGMEM_DB_PATH")
    doc = cursor_export(db_path_option(None if given is None else Path(given)), given)
    text = checkpoint_text(doc)
    if out == "-":
        click.echo(text, nl=False)
    else:
        write_text_0600(Path(out), text)
        note(f"checkpoint written: {out} ({len(doc['cursors'])} cursor(s))")
