"""The ``stigmem`` console script: group options, logging and the one place errors are shown.

Only click is imported here; every heavy library (cryptography, SQLAlchemy, fsspec, rich) is
imported inside the command that needs it, so ``stigmem --help`` answers at once. Each command
group's module is imported only when that group runs (or ``--help`` lists the groups).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import click

from cli.app import App
from snapshot.errors import StigmemError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Command group name -> (module, attribute).
GROUPS = {
    "snapshot": ("cli.snapshot_cmds", "snapshot_group"),
    "store": ("cli.store_cmds", "store_group"),
    "keys": ("cli.keys_cmds", "keys_group"),
    "federation": ("cli.federation_cmds", "federation_group"),
    "catalog": ("cli.catalog_cmds", "catalog_group"),
}


class LazyGroup(click.Group):
    """A group whose subgroups are imported on first use: ``stigmem snapshot list`` never
    builds the options of the store, keys, federation and catalog commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *GROUPS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in GROUPS:
            module, attribute = GROUPS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return self.commands.get(cmd_name)


@click.group(
    cls=LazyGroup,
    context_settings=CONTEXT,
    epilog="""\b
Examples:
  stigmem keys generate --out node.key
  stigmem snapshot create --db /var/lib/stigmem/stigmem.db --sign-with node.key
  stigmem snapshot list --since 7d
  stigmem snapshot restore 3fa2c1 --db /var/lib/stigmem/stigmem.db --trusted-keys keys.json
""",
)
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="STIGMEM_HOME",
    default=Path("~/.stigmem"),
    show_default=True,
    help="State folder.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="STIGMEM_CONFIG",
    help="Config file (TOML). Default: $STIGMEM_HOME/config.toml",
)
@click.option(
    "--catalog",
    "catalog_url",
    envvar="STIGMEM_CATALOG_URL",
    help="Catalog SQLAlchemy URL. Default: sqlite:///$STIGMEM_HOME/catalog.db",
)
@click.option(
    "--store",
    "store_url",
    envvar="STIGMEM_STORE_URL",
    help="Store URL when no tier is configured. Default: $STIGMEM_HOME/store",
)
@click.option(
    "--log-level",
    envvar="STIGMEM_LOG_LEVEL",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.pass_context
def cli(
    ctx: click.Context,
    home: Path,
    config_path: Path | None,
    catalog_url: str | None,
    store_url: str | None,
    log_level: str,
) -> None:
    """Signed, deduplicated snapshots of Stigmem node databases."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(levelname)s: %(message)s"
    )
    app = App(home.expanduser(), config_path, catalog_url, store_url)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> None:
    _tune_malloc()
    _tune_gc()
    _leave(_run())


def _tune_malloc() -> None:
    """Fix glibc's two heap thresholds: blocks of 4 MiB and more (pack buffers) come straight
    from mmap and go back to the system when freed; free heap is kept up to 8 MiB.

    By default glibc raises its mmap threshold to the largest block freed so far; after the
    first pack, freed packs stay in the heap, and the peak RSS of an initial snapshot grew
    with the database: 112-126 MiB at 256 MiB, 142-155 MiB at 1 GiB. With the threshold
    fixed: 118 and 123 MiB, in the same time.

    Fixing the mmap threshold also pins the trim threshold at its 128 KiB default, so every
    1 MiB buffer a restore decompresses into was returned to the system when freed and
    faulted back in, zeroed, for the next frame: a third of a restore's CPU time was the
    kernel's. Kept up to 8 MiB, the freed buffers are reused: a restore on the bench store
    took 4.2-4.5 CPU-seconds instead of 5.4 (3.6 s instead of 4.4 s), its peak RSS 5 MiB
    more. 64 MiB was no faster and kept up to 25 MiB more in a daily snapshot's peak RSS
    (each worker thread's heap keeps its own). Nothing to do where the C library is not
    glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(ctypes.c_int(m_mmap_threshold), ctypes.c_int(4 << 20))
    mallopt(ctypes.c_int(m_trim_threshold), ctypes.c_int(8 << 20))


def _tune_gc() -> None:
    """Collect cycles after 100,000 new container objects, not 700.

    A restore plans 72,000 chunk locations for the bench database, as tuples: at the default
    threshold the collector ran hundreds of times, its full passes walking every object the
    imports made, 0.13 of a restore's 2.95 CPU-seconds (perf). With this threshold the
    restore took 1.25-1.29 s instead of 1.35-1.39 s, as fast as with collection off.
    Older generations are collected after 50 younger collections each, not 10: a full pass
    walks every object SQLAlchemy's import made. Commands make little cyclic garbage (none
    holding large buffers was found); what they make waits a little longer.
    """
    import gc

    gc.set_threshold(100_000, 50, 50)


def _run() -> int:
    """Run the command line; return the exit code (errors shown as one line)."""
    try:
        code = cli.main(standalone_mode=False)
    except StigmemError as exc:
        from cli.output import error_line

        message = error_line(str(exc))
        click.echo(f"stigmem: {message}" if exc.exit_code != 3 else message, err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("stigmem: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("stigmem: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: say so in one line, the traceback only when asked for
        logging.getLogger("stigmem").debug("internal error", exc_info=True)
        from cli.output import error_line

        click.echo(
            f"stigmem: internal error: {type(exc).__name__}: {error_line(str(exc))} "
            "(rerun with --log-level DEBUG for the traceback)",
            err=True,
        )
        return 1
    # click returns the code of a ctx.exit / Exit raised inside a command.
    return code if isinstance(code, int) else 0


def _leave(code: int) -> None:
    """Flush the output and end the process without the interpreter's teardown.

    Tearing down the imported modules (SQLAlchemy's above all) took 0.2 s of every command,
    a tenth of a daily snapshot. Nothing is left for it to do: every file and database was
    closed by the command (``App.close`` disposes of the catalog), worker pools were waited
    for, and what is still running is a daemon thread whose work is no longer wanted.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            code = code or 1  # the reader went away before reading everything
        except (OSError, ValueError):
            pass
    logging.shutdown()
    os._exit(code)
