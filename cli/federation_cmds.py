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
@click.option("--db", type=click.Path(path_type=Path), help="Node database [STIGMEM_DB_PATH].")
@click.option("--out", type=click.Path(path_type=Path), help="Write the JSON here (mode 0600).")
def cursor_export_cmd(db: Path | None, out: Path | None) -> None:
    """Export replication cursors joined with peers, as JSON."""
    from cli.app import db_path_option
    from cli.output import emit_json
    from snapshot.federation import cursor_export, write_json_0600

    doc = cursor_export(db_path_option(db))
    if out is None:
        emit_json(doc)
    else:
        write_json_0600(out, doc)
        click.echo(f"wrote {len(doc['cursors'])} cursors to {out}")
