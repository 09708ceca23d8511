"""Durable local writes: a temporary name beside the target, fsync, rename, fsync the folder.

A crash at any point leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_beside(target: Path, mode: int = 0o600) -> Iterator[tuple[Path, BinaryIO]]:
    """A new file next to ``target``; removed on any failure, left for the caller on success."""
    prefix = f".{target.name}."
    for attempt in range(100):
        tmp = target.with_name(f"{prefix}{os.getpid()}.{attempt}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a hundred stale temp files of our own pid
        raise FileExistsError(f"cannot create a temporary file beside {target}")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield tmp, handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(target: Path, write: Callable[[BinaryIO], None], mode: int = 0o600) -> None:
    with temp_beside(target, mode) as (tmp, handle):
        write(handle)
    try:
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes, mode: int = 0o600) -> None:
    def write(handle: BinaryIO) -> None:
        handle.write(data)

    atomic_write(target, write, mode)
