"""Lock objects in ``<root>/locks/``: shared for writers (put, sync), exclusive for gc/prune.

Object stores have no atomic create-if-absent or rename, so a lock is taken as restic does:
write a uniquely named lock object (``<kind>-<random>.json`` holding kind, host, pid, time),
then list the lock directory; if a conflicting lock is there (any lock for an exclusive
request, an exclusive one for a shared request), remove ours, back off and try again until
``wait`` runs out. Two racing processes then both see each other and both retreat rather
than both proceeding.

A lock is stale when its holder is on this host and its pid is dead, or when it is older
than ``stale_after`` (no lock is refreshed, so that limit must exceed the longest gc). Stale
locks are ignored when acquiring, and those of a dead process on this host are removed then
too (nothing can still be guarded by them); ``break_locks`` removes the rest on request.

Anyone able to write to the store can plant objects in ``locks/``. Only objects named like
a lock (``<kind>-<anything>.json``) are locks: anything else there neither blocks nor is
ever removed. A lock-named object that does not hold a lock as this tool writes one (JSON
of a known kind, a host, a pid from 1 to ``MAX_PID``, a finite time; or a link out of the
store, which is not read) cannot be a live lock, since every lock is written whole: it is
reported as an exclusive lock of host ``?``, pid 0, time 0, so it is stale, blocks nothing,
and ``store unlock`` removes it (the object itself: a link, never what it points to).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass
from types import TracebackType

from snapshot import boundedjson
from snapshot.errors import AccessDenied, LockedError, StoreError
from store import layout
from store.backend import Backend

KINDS = ("shared", "exclusive")
DEFAULT_STALE_AFTER = 12 * 3600.0
# Linux's largest pid_max. A lock naming a pid outside 1..MAX_PID is unreadable: os.kill
# would raise on a huge one and signal a process group on 0 or a negative one.
MAX_PID = 1 << 22
MAX_LOCK_BYTES = 64 << 10
# Names this tool could have written: shown in messages, so no spaces or control characters.
RELEASED = "released-"
_LOCK_NAME = re.compile(r"(?:shared|exclusive)-[A-Za-z0-9._-]+\.json")


@dataclass(frozen=True)
class LockInfo:
    name: str
    kind: str
    host: str
    pid: int
    time: float
    readable: bool = True  # False: not a lock as this tool writes one (see the module)

    def age(self, now: float) -> float:
        return max(0.0, now - self.time)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_orphan(info: LockInfo) -> bool:
    """The holder ran on this host and its process is gone (killed, crashed, rebooted)."""
    return info.host == socket.gethostname() and not _pid_alive(info.pid)


def is_stale(info: LockInfo, now: float, stale_after: float) -> bool:
    return info.age(now) > stale_after or is_orphan(info)


def conflicts(wanted: str, held: str) -> bool:
    return wanted == "exclusive" or held == "exclusive"


def is_lock_name(name: str) -> bool:
    """``<kind>-<anything>.json`` directly in ``locks/``: what a lock of this tool is called.
    Anything else there is not a lock: it neither blocks nor is ever removed."""
    return _LOCK_NAME.fullmatch(name) is not None


def released_name(name: str) -> str:
    """The marker a holder whose credentials may not delete leaves for its lock ``name``."""
    return RELEASED + name


Listed = tuple[list[str], set[str]]


def _listed(backend: Backend) -> Listed:
    """The lock names in ``locks/``, and the names of those a marker says were released."""
    names = [e.path[len(layout.LOCKS) + 1 :] for e in backend.list(layout.LOCKS)]
    released = {n[len(RELEASED) :] for n in names if n.startswith(RELEASED)}
    return [n for n in names if is_lock_name(n)], released


def read_locks(backend: Backend, listed: Listed | None = None) -> list[LockInfo]:
    """The locks held: every lock object but those released by a marker (``listed``: what
    the caller listed of ``locks/`` already)."""
    names, released = listed or _listed(backend)
    paths = [layout.lock_path(n) for n in names if n not in released]
    found = []
    for path in paths:
        try:
            raw = boundedjson.load(
                backend.read(path, MAX_LOCK_BYTES + 1),
                f"lock {path}",
                StoreError,
                max_bytes=MAX_LOCK_BYTES,
            )
            pid, when = int(raw["pid"]), float(raw["time"])
            if not 0 < pid <= MAX_PID or not math.isfinite(when) or raw["kind"] not in KINDS:
                raise ValueError(f"lock {path} names pid {pid} at {when}")
            found.append(
                LockInfo(path.split("/", 1)[1], str(raw["kind"]), str(raw["host"]), pid, when)
            )
        except FileNotFoundError:
            continue  # released between listing and reading
        except (ValueError, KeyError, TypeError, StoreError):
            # An unreadable lock still blocks: we cannot tell what it guards.
            found.append(LockInfo(path.split("/", 1)[1], "exclusive", "?", 0, 0.0, False))
    return found


def break_locks(
    backend: Backend, stale_only: bool = True, stale_after: float = DEFAULT_STALE_AFTER
) -> list[LockInfo]:
    """Remove stale locks (or all of them); return what was removed."""
    now = time.time()
    listed = _listed(backend)
    held = read_locks(backend, listed)
    doomed = [i for i in held if not stale_only or is_stale(i, now, stale_after)]
    backend.delete([layout.lock_path(i.name) for i in doomed] + released_pairs(listed))
    return doomed


def released_pairs(listed: Listed) -> list[str]:
    """The paths of locks released by a marker, and of the markers."""
    names, released = listed
    locks = [layout.lock_path(n) for n in names if n in released]
    return locks + [layout.lock_path(released_name(n)) for n in released]


def remove(backend: Backend, name: str) -> None:
    """Remove lock ``name``; credentials that may not delete (a node's put-only keys) leave
    a marker beside it instead, which every reader takes as its removal."""
    try:
        backend.delete([layout.lock_path(name)])
    except AccessDenied:
        backend.write(layout.lock_path(released_name(name)), b"{}")


class StoreLock:
    """A context manager holding one lock object for its duration."""

    def __init__(
        self,
        backend: Backend,
        kind: str,
        wait: float = 0.0,
        stale_after: float = DEFAULT_STALE_AFTER,
    ) -> None:
        if kind not in KINDS:
            raise StoreError(f"unknown lock kind {kind!r}: use shared or exclusive")
        self.backend = backend
        self.kind = kind
        self.wait = wait
        self.stale_after = stale_after
        self.name = f"{kind}-{uuid.uuid4().hex}.json"

    def _body(self) -> bytes:
        return json.dumps(
            {
                "kind": self.kind,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "time": time.time(),
            }
        ).encode()

    def _conflict(self) -> LockInfo | None:
        now = time.time()
        holder = None
        orphans = []
        listed = _listed(self.backend)
        for info in read_locks(self.backend, listed):
            if info.name == self.name:
                continue
            if is_orphan(info):
                orphans.append(layout.lock_path(info.name))
            elif (
                holder is None
                and conflicts(self.kind, info.kind)
                and not is_stale(info, now, self.stale_after)
            ):
                holder = info
        # A kill -9 leaves its lock behind; its pid is dead here, so it guards nothing and
        # goes now rather than piling up. Locks of other hosts only age out (we cannot see
        # their processes), and are left for 'store unlock'. Released pairs go too. Without
        # the right to delete, all of them stay, ignored, for a host that has it.
        if self.kind == "exclusive":
            orphans += released_pairs(listed)
        if orphans:
            with contextlib.suppress(AccessDenied):
                self.backend.delete(orphans)
        return holder

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        delay = 0.05
        while True:
            self.backend.write(layout.lock_path(self.name), self._body())
            holder = self._conflict()
            if holder is None:
                return
            remove(self.backend, self.name)
            # A new name for the next try: the old one may now have a released marker.
            self.name = f"{self.kind}-{uuid.uuid4().hex}.json"
            if time.monotonic() + delay > deadline:
                age = int(holder.age(time.time()))
                # Stale locks never get here (they are skipped above), so the holder looks
                # alive: say how to remove it if the operator knows better.
                raise LockedError(
                    f"store {self.backend.url} is locked: {holder.kind} lock held by host "
                    f"{holder.host} pid {holder.pid} for {age}s (lock {holder.name}); if that "
                    "process is gone, remove the lock with 'stigmem store unlock --all'"
                )
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)

    def release(self) -> None:
        remove(self.backend, self.name)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
