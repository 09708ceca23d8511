"""Durable local writes: a temporary name beside the target, fsync, rename, fsync the folder.

A crash at any point leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

# Writes go to the page cache in 512 KiB pieces: larger writes get huge page-cache folios,
# and where the kernel must find them in memory a hypervisor has reclaimed, that costs far
# more CPU than the copy itself.
WRITE_PIECE = 512 << 10


def write_in_pieces(handle: BinaryIO, data: bytes | bytearray | memoryview) -> int:
    """``handle.write(data)`` (a buffered writer: it writes all it is given) in pieces of at
    most ``WRITE_PIECE`` bytes; returns the bytes written."""
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size <= WRITE_PIECE:
        return handle.write(data)
    flat = memoryview(data).cast("B")
    for start in range(0, size, WRITE_PIECE):
        handle.write(flat[start : start + WRITE_PIECE])
    return size


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
        write_in_pieces(handle, data)

    atomic_write(target, write, mode)


class Writable(Protocol):
    """Where a restore writes the new database: a file, or a :class:`WriteBehind` on one."""

    def write(self, data: bytes | bytearray | memoryview, /) -> int: ...


class WriteBehind:
    """A file written front to back whose pages are handed to the disk while it grows.

    A restore ends with an fsync of the whole database; with hundreds of MiB dirty at that
    point the disk would start only then, and the restore wait for all of it. Starting the
    writeback every ``step`` bytes (Linux ``sync_file_range``, which does not wait) lets the
    disk work while the rest is rebuilt, and the final fsync only waits for the tail. Where
    the call does not exist this is a plain writer.
    """

    def __init__(self, handle: BinaryIO, step: int = 8 << 20) -> None:
        self.handle = handle
        self.step = step
        self._started = 0  # bytes whose writeback has been started
        self._written = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        written = write_in_pieces(self.handle, data)
        self._written += written
        if self._written - self._started >= self.step:
            self.handle.flush()
            _start_writeback(self.handle.fileno(), self._started, self._written - self._started)
            self._started = self._written
        return written


_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    call = _sync_file_range()
    if call is not None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: its errors are ignored


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call
