"""Run one child process and measure it as a whole: wall seconds and peak RSS.

Peak RSS comes from ``os.wait4``: the kernel reports the child's ``ru_maxrss`` (KiB on
Linux), which covers any grandchildren it waited for, so a tool that forks helpers is still
measured in full.

The child is not started from this process but from a small launcher (a fresh ``python -I``
that forks, execs the tool and waits for it). Linux carries the high-water RSS of the
address space a process had before ``exec`` into its ``ru_maxrss``: a tool started straight
from the bench, which holds whole database pages in memory, would be charged the bench's own
peak (measured: /bin/true "used" 511 MiB after the parent had touched 500 MiB). The
launcher's address space is a few MiB, which ``LAUNCHER_FLOOR_KIB`` measures.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

# Fork, exec, wait4; write "seconds maxrss_kib user_s system_s" to the file named by argv[1];
# exit with the
# child's status. The clock runs here, so the launcher's own start-up is not timed.
_LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    except OSError as exc:
        os.write(2, f"cannot run {sys.argv[2]}: {exc}\\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{seconds} {usage.ru_maxrss} {usage.ru_utime} {usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


class BenchError(RuntimeError):
    """A measured command failed; the message names it and its last line of output."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output  # all of stderr (or stdout): a traceback is worth keeping


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    seconds: float
    peak_rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    # CPU seconds the command (and the children it waited for) spent: a slow run that used
    # no more CPU than a fast one was waiting (for the disk, or another process's work).
    user_seconds: float = 0.0
    system_seconds: float = 0.0

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024


def run(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> Run:
    """Run ``argv`` to completion; raise BenchError on a non-zero exit when ``check``."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile("r", suffix=".rusage") as figures,
    ):
        launcher = [sys.executable, "-I", "-c", _LAUNCHER, figures.name, *argv]
        proc = subprocess.run(
            launcher, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        seconds, maxrss, user, system = [*figures.read().split(), "nan", "0", "0", "0"][:4]
        result = Run(
            argv=tuple(argv),
            seconds=float(seconds),
            peak_rss_kib=int(maxrss),
            returncode=proc.returncode,
            stdout=_read(out),
            stderr=_read(err),
            user_seconds=float(user),
            system_seconds=float(system),
        )
    if check and result.returncode != 0:
        output = result.stderr or result.stdout
        raise BenchError(
            f"{' '.join(argv)} exited {result.returncode}: {_last_line(output)}", output
        )
    return result


def launcher_floor_kib() -> int:
    """Peak RSS reported for a do-nothing command: the least any measured figure can be."""
    return run(["true"]).peak_rss_kib


def combine(first: Run, second: Run) -> Run:
    """Two steps an operator runs back to back, reported as one: times add, peak is the max."""
    return Run(
        argv=(*first.argv, "&&", *second.argv),
        seconds=first.seconds + second.seconds,
        peak_rss_kib=max(first.peak_rss_kib, second.peak_rss_kib),
        returncode=first.returncode or second.returncode,
        stdout=second.stdout,
        stderr=first.stderr + second.stderr,
        user_seconds=first.user_seconds + second.user_seconds,
        system_seconds=first.system_seconds + second.system_seconds,
    )


def _read(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode("utf-8", "replace")


def _last_line(text: str) -> str:
    # The last line names the problem, for a one-line error and a traceback alike.
    lines = text.strip().splitlines()
    return lines[-1] if lines else "(no output)"
