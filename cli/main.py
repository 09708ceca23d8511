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
    "--no-cache",
    is_flag=True,
    envvar="STIGMEM_NO_CACHE",
    help="Keep nothing under $STIGMEM_HOME/cache and use nothing kept there.",
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
    no_cache: bool,
    log_level: str,
) -> None:
    """Signed, deduplicated snapshots of Stigmem node databases."""
    # force: a process that runs several commands (the tests) logs each to its own stderr.
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(levelname)s: %(message)s", force=True
    )
    app = App(home.expanduser(), config_path, catalog_url, store_url, no_cache)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main() -> None:
    """The console script: tune this process, run the command line, leave."""
    tune_process()
    leave(run())


def tune_process() -> None:
    """Process settings that pay for a command line that lives for one command.

    - glibc's heap thresholds are fixed: blocks of 4 MiB and more (pack buffers) come from
      mmap and go back to the system when freed, and up to 8 MiB of freed heap is kept. By
      default glibc raises its mmap threshold to the largest block freed so far, so freed
      packs stay in the heap and a snapshot's peak memory grows with the database; and with
      a trim threshold of 128 KiB every 1 MiB buffer a restore decompresses into would be
      returned to the system and faulted back in, zeroed, for the next frame.
    - The cycle collector runs after 100,000 new container objects, not 700: a restore plans
      a location tuple per chunk, and at the default threshold the collector's passes walk
      every object the imports made, hundreds of times. Commands make little cyclic garbage
      and none of it holds large buffers.

    Nothing to do for the heap where the C library is not glibc.
    """
    import gc

    gc.set_threshold(100_000, 50, 50)
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


def run(args: list[str] | None = None) -> int:
    """Run the command line (``args``, else ``sys.argv``); return the exit code, errors shown
    as one line. The process is left as it was: tests run commands in-process through it."""
    try:
        code = cli.main(args, prog_name="stigmem", standalone_mode=False)
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


def leave(code: int) -> None:
    """Flush the output and end the process without the interpreter's teardown.

    Tearing down the imported modules (SQLAlchemy's above all) costs a noticeable part of a
    short command, and there is nothing left for it to do: every file and database was closed
    by the command (``App.close`` disposes of the catalog) and every worker pool was shut down.
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
