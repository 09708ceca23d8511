"""A small object interface rooted at the store URL: a local directory, or any fsspec
filesystem.

Paths handed in and out are relative to the store root (see ``layout``). Everything the rest
of the store does to storage goes through a ``Backend``, so the backend is what tests swap (a
memory, local or S3 store) and the only place that knows the storage's quirks:

- a local directory is plain files (``LocalBackend``): fsspec's local writes are neither
  atomic nor durable, so objects are written to a temporary name in the same directory,
  fsynced, renamed and the directory fsynced; packs are read through mmap; and fsspec is
  not even imported (importing it would add to every command's start, and to a restore's
  serial part);
- s3fs caches listings, so every existence check and listing drops the cache first;
- batch calls (``pipe`` / ``cat`` / ``cat_ranges`` with lists) let s3fs run requests
  concurrently;
- connection, credential and bucket failures become one-line ``StoreError``s naming the URL.

A missing object surfaces as ``FileNotFoundError``: callers know what it means for them.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import mmap
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from snapshot.errors import AccessDenied, StoreError, shown
from snapshot.fileio import write_in_pieces
from store.limits import MAX_OBJECT

if TYPE_CHECKING:
    import fsspec

# Errors from these packages mean the remote end failed us (network, credentials, service),
# not that the tool has a bug.
_REMOTE_ERROR_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec", "asyncio")
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs"}


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    mtime: float | None


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def _is_remote_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError):
        return True
    return type(exc).__module__.split(".")[0] in _REMOTE_ERROR_MODULES


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _mtime(info: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified", "created", "last_modified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
    return None


class Backend:
    """What the store needs of its storage; ``local`` says whether reads are cheap (a
    restore reads smaller spans with fewer threads from a local directory)."""

    local = False

    def __init__(self, root: str, url: str) -> None:
        self.root = root.rstrip("/")
        self.url = url

    def full(self, path: str) -> str:
        return f"{self.root}/{path}" if path else self.root

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except PermissionError as exc:
            raise AccessDenied(
                f"cannot reach store {self.url}: access denied: {_reason(exc)}"
            ) from None
        except Exception as exc:
            if not _is_remote_error(exc):
                raise
            raise StoreError(f"cannot reach store {self.url}: {_reason(exc)}") from None

    def check_reachable(self) -> None:
        """Fail with a StoreError when the endpoint, credentials or bucket are unusable."""
        raise NotImplementedError

    def read(self, path: str, limit: int = MAX_OBJECT) -> bytes:
        """A whole object; StoreError when it holds more than ``limit`` bytes (read no
        further than that)."""
        raise NotImplementedError

    def too_large(self, path: str, limit: int) -> StoreError:
        return StoreError(f"{self.url}: {path} holds more than {limit} bytes: refusing it")

    def read_range(self, path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of an object; fewer, or none, past its end (as a file read
        gives, where S3 refuses a range that starts past the end)."""
        raise NotImplementedError

    def read_range_view(self, path: str, start: int, end: int) -> bytes | memoryview:
        """Bytes ``[start, end)`` of an object (fewer past its end), to be read in place."""
        return self.read_range(path, start, end)

    def read_ranges(self, ranges: builtins.list[tuple[str, int, int]]) -> builtins.list[bytes]:
        """Read many (path, start, end) ranges, concurrently where the storage can."""
        raise NotImplementedError

    def prefetch(self, path: str, start: int, end: int) -> None:
        """A hint that bytes ``[start, end)`` of an object will be read soon."""

    def read_many(self, paths: builtins.list[str], limit: int = MAX_OBJECT) -> dict[str, bytes]:
        """Whole objects, each bounded as :meth:`read` bounds one."""
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError

    def list(self, prefix: str = "") -> builtins.list[Entry]:
        """Every object under ``prefix`` (recursively), with its size and modification time."""
        raise NotImplementedError

    def names(self, prefix: str) -> builtins.list[str]:
        """Names of the objects directly under ``prefix`` (no sizes, no times, no recursion)."""
        return [
            e.path.rsplit("/", 1)[-1]
            for e in self.list(prefix)
            if "/" not in e.path[len(prefix) + 1 :]
        ]

    def write(self, path: str, data: bytes | bytearray) -> None:
        raise NotImplementedError

    def write_many(self, objects: dict[str, bytes]) -> None:
        for path, data in objects.items():
            self.write(path, data)

    def delete(self, paths: builtins.list[str]) -> None:
        """Remove objects; ones already gone are not an error."""
        raise NotImplementedError

    def retained(self, paths: builtins.list[str]) -> dict[str, datetime]:
        """Of ``paths``, those an S3 Object Lock keeps, with when it ends (none here)."""
        return {}

    def lock_of(self, path: str) -> tuple[str, datetime] | None:
        """The Object Lock mode and end of an object (None: not locked, or not S3)."""
        return None


class LocalBackend(Backend):
    """A store in a local directory: plain files, written atomically and durably.

    Nothing is read, written or deleted through a symbolic link that leads out of the
    store's directory (a link to ``/dev/zero``, or a ``locks/`` folder pointing elsewhere):
    such a path is refused with a StoreError naming it. Links that stay inside are followed.
    Only regular files are read."""

    local = True

    def __init__(self, root: str, url: str) -> None:
        super().__init__(root, url)
        self._real_root: str | None = None

    def check_reachable(self) -> None:
        """Nothing to reach: a missing, unreadable or unwritable directory is reported, in
        one line naming it, by the first read or write."""

    def _inside(self, path: str, full: str) -> str:
        """``full`` (the path of ``path``), once its resolved form is known to lie in the
        store's directory."""
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        real = os.path.realpath(full)
        if real != self._real_root and not real.startswith(self._real_root + os.sep):
            raise StoreError(
                f"{self.url}: {path or '.'} is a link out of the store (to {shown(real, 120)}): "
                "refusing it"
            )
        return full

    def _checked(self, path: str) -> str:
        return self._inside(path, self.full(path))

    def _parent_checked(self, path: str) -> str:
        """The object's path, once the folder holding it is known to lie in the store (the
        object itself may be a link: deleting or replacing it touches only the link)."""
        full = self.full(path)
        self._inside(os.path.dirname(path), os.path.dirname(full))
        return full

    def _open(self, path: str) -> int:
        """A descriptor of the regular file at ``path``."""
        with self._translated():
            # Non-blocking: opening a FIFO planted in the store must not wait for a writer.
            fd = os.open(self._checked(path), os.O_RDONLY | os.O_NONBLOCK)
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "is a directory", path)
            raise StoreError(f"{self.url}: {path} is not a regular file: refusing it")
        return fd

    def read(self, path: str, limit: int = MAX_OBJECT) -> bytes:
        fd = self._open(path)
        with self._translated(), os.fdopen(fd, "rb") as handle:
            size = os.fstat(fd).st_size
            if size > limit:
                raise self.too_large(path, limit)
            data = handle.read(size + 1)
            if len(data) > size:  # it grew since: read on, still no further than the limit
                data += handle.read(limit + 1 - len(data))
        if len(data) > limit:  # grown while read
            raise self.too_large(path, limit)
        return data

    def read_range(self, path: str, start: int, end: int) -> bytes:
        fd = self._open(path)
        with self._translated(), os.fdopen(fd, "rb") as handle:
            # Clamped to the file: a read asks for its bound (16 MiB for a document), and
            # Python allocates what it is asked for before it reads.
            end = min(end, os.fstat(fd).st_size)
            handle.seek(start)
            return handle.read(max(0, end - start))

    def read_range_view(self, path: str, start: int, end: int) -> bytes | memoryview:
        """The file mapped, not copied: a restore reads hundreds of MiB of packs, and
        copying them out of the page cache cost a third of the time their decompression
        did. The mapping goes when the last view of it does; it never reaches past the
        end of the file, where reading would fault."""
        fd = self._open(path)
        try:
            end = min(end, os.fstat(fd).st_size)
            if end <= start:
                return b""
            base = start - start % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(fd, end - base, access=mmap.ACCESS_READ, offset=base)
        finally:
            os.close(fd)  # the mapping holds its own reference to the file
        return memoryview(mapped)[start - base :]

    def read_ranges(self, ranges: builtins.list[tuple[str, int, int]]) -> builtins.list[bytes]:
        return [self.read_range(*one) for one in ranges]

    def prefetch(self, path: str, start: int, end: int) -> None:
        """Ask the kernel to read the range ahead (``POSIX_FADV_WILLNEED``, which does not
        wait). Packs not read for a while may be out of the page cache (a kernel may reclaim
        idle pages, a virtual machine's host take them back): mapped and faulted in a window
        at a time, a restore would wait on hundreds of small reads, one after another."""
        try:
            fd = self._open(path)
        except (OSError, StoreError):
            return  # the read that follows reports it
        try:
            os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_WILLNEED)
        except (OSError, AttributeError):
            pass  # a hint: where the system has no such call, reads go on as they were
        finally:
            os.close(fd)

    def read_many(self, paths: builtins.list[str], limit: int = MAX_OBJECT) -> dict[str, bytes]:
        return {path: self.read(path, limit) for path in paths}

    def exists(self, path: str) -> bool:
        with self._translated():
            return os.path.exists(self._checked(path))

    def size(self, path: str) -> int:
        with self._translated():
            return os.stat(self._checked(path)).st_size

    def list(self, prefix: str = "") -> builtins.list[Entry]:
        full = self._checked(prefix)
        strip = len(self.root) + 1
        entries: builtins.list[Entry] = []
        with self._translated():
            if os.path.isfile(full):
                found = os.stat(full)
                rel = full[strip:]
                return [Entry(rel, found.st_size, found.st_mtime)] if rel else []
            # Links to folders are not walked into (os.walk's default): only the store's own.
            for folder, _, files in os.walk(full):
                for name in files:
                    where = os.path.join(folder, name)
                    rel = where[strip:]
                    if ".tmp-" in rel:
                        continue
                    try:
                        found = os.lstat(where)
                        if stat.S_ISLNK(found.st_mode):
                            # Listed as the link it is when it leads out: reading it is
                            # refused, deleting it removes the link only.
                            with contextlib.suppress(StoreError):
                                found = os.stat(self._inside(rel, where))
                    except FileNotFoundError:
                        continue  # removed while listed (gc, another host's prune)
                    entries.append(Entry(rel, found.st_size, found.st_mtime))
        return entries

    def names(self, prefix: str) -> builtins.list[str]:
        """One ``scandir``: the cheap listing for big flat directories (100,000 snapshot
        documents)."""
        with self._translated():
            try:
                with os.scandir(self._checked(prefix)) as found:
                    return [e.name for e in found if ".tmp-" not in e.name and e.is_file()]
            except FileNotFoundError:
                return []

    def write(self, path: str, data: bytes | bytearray) -> None:
        target = self._parent_checked(path)
        directory = os.path.dirname(target)
        with self._translated():
            os.makedirs(directory, mode=0o700, exist_ok=True)
            # Made just now, or there before: either way it must still lie in the store.
            self._inside(os.path.dirname(path), directory)
            tmp = os.path.join(directory, f".{os.path.basename(target)}.tmp-{uuid.uuid4().hex}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    write_in_pieces(fh, data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def delete(self, paths: builtins.list[str]) -> None:
        with self._translated():
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._parent_checked(path))


# What an Object Lock protects: the data and the commit points. Index objects are derived
# (rebuilt from pack trailers) and gc must be able to replace them, or a stale one would name
# deleted packs; locks and config.json are rewritten or removed by design.
LOCKABLE = ("packs/", "snapshots/", "keys/")


class FsspecBackend(Backend):
    """A store on any fsspec filesystem (``memory://``, ``s3://`` through s3fs, ...)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, url: str) -> None:
        super().__init__(root, url)
        self.fs = fs
        # S3 Object Lock for what is written: (GOVERNANCE or COMPLIANCE, seconds).
        self.object_lock: tuple[str, float] | None = None

    @property
    def is_s3(self) -> bool:
        return bool({"s3", "s3a"} & set(_protocols(self.fs)))

    def _lock_args(self, path: str) -> dict[str, Any]:
        if self.object_lock is None or not path.startswith(LOCKABLE):
            return {}
        mode, seconds = self.object_lock
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        return {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": until}

    def _head(self, path: str) -> dict[str, Any] | None:
        bucket, key = self.full(path).split("/", 1)
        try:
            head: dict[str, Any] = self.fs.call_s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        return head

    def lock_of(self, path: str) -> tuple[str, datetime] | None:
        if not self.is_s3:
            return None
        with self._translated():
            head = self._head(path)
        if head is None or head.get("ObjectLockRetainUntilDate") is None:
            return None
        return str(head.get("ObjectLockMode")), head["ObjectLockRetainUntilDate"]

    def retained(self, paths: builtins.list[str]) -> dict[str, datetime]:
        if self.object_lock is None or not self.is_s3:
            return {}
        now = datetime.now(UTC)
        found = {}
        for path in paths:
            lock = self.lock_of(path)
            if lock is not None and lock[1] > now:
                found[path] = lock[1]
        return found

    def check_reachable(self) -> None:
        with self._translated():
            if set(_protocols(self.fs)) & _OBJECT_STORES:
                bucket = self.root.split("/", 1)[0]
                try:
                    # ls raises on a dead endpoint or bad credentials; exists() would say False.
                    self.fs.ls(bucket, refresh=True)
                except FileNotFoundError:
                    raise StoreError(
                        f"cannot reach store {self.url}: bucket {bucket} does not exist"
                    ) from None
            else:
                self.fs.exists(self.root)

    def read(self, path: str, limit: int = MAX_OBJECT) -> bytes:
        # One ranged request for a byte more than the limit: an object past it is known
        # without a size request first, and never downloaded whole.
        try:
            data = self.read_range(path, 0, limit + 1)
        except FileNotFoundError:
            # Maybe only a stale cached listing says so (another process wrote it).
            with self._translated():
                self.fs.invalidate_cache()
            data = self.read_range(path, 0, limit + 1)
        if len(data) > limit:
            raise self.too_large(path, limit)
        return data

    def read_range(self, path: str, start: int, end: int) -> bytes:
        with self._translated():
            try:
                data: bytes = self.fs.cat_file(self.full(path), start=start, end=end)
            except OSError as exc:
                if not _past_end(exc):
                    raise
                data = b""
            return data

    def read_ranges(self, ranges: builtins.list[tuple[str, int, int]]) -> builtins.list[bytes]:
        if not ranges:
            return []
        with self._translated():
            results = self.fs.cat_ranges(
                [self.full(p) for p, _, _ in ranges],
                [s for _, s, _ in ranges],
                [e for _, _, e in ranges],
                on_error="return",
            )
        out: builtins.list[bytes] = []
        for result in results:
            if isinstance(result, OSError) and _past_end(result):
                result = b""
            if isinstance(result, BaseException):
                with self._translated():
                    raise result
            out.append(result)
        return out

    def read_many(self, paths: builtins.list[str], limit: int = MAX_OBJECT) -> dict[str, bytes]:
        datas = self.read_ranges([(p, 0, limit + 1) for p in paths])
        for path, data in zip(paths, datas, strict=True):
            if len(data) > limit:
                raise self.too_large(path, limit)
        return dict(zip(paths, datas, strict=True))

    def exists(self, path: str) -> bool:
        full = self.full(path)
        with self._translated():
            self.fs.invalidate_cache(full)
            return bool(self.fs.exists(full))

    def size(self, path: str) -> int:
        full = self.full(path)
        with self._translated():
            self.fs.invalidate_cache(full)
            return int(self.fs.info(full)["size"])

    def list(self, prefix: str = "") -> builtins.list[Entry]:
        full = self.full(prefix)
        with self._translated():
            # The whole cache, not just ``full``: s3fs drops only the path and its parents,
            # so a listing of packs/ab/ cached earlier would hide packs another process
            # wrote since (and later reads would fail on its stale "directory" entry).
            self.fs.invalidate_cache()
            try:
                found = self.fs.find(full, detail=True)
            except FileNotFoundError:
                return []
        strip = len(self.root) + 1
        entries = []
        for name, info in found.items():
            rel = self.fs._strip_protocol(name)[strip:]
            if rel and info.get("type", "file") == "file" and ".tmp-" not in rel:
                entries.append(Entry(rel, int(info.get("size") or 0), _mtime(info)))
        return entries

    def write(self, path: str, data: bytes | bytearray) -> None:
        with self._translated():
            self.fs.pipe_file(self.full(path), data, **self._lock_args(path))

    def write_many(self, objects: dict[str, bytes]) -> None:
        if not objects:
            return
        # Concurrently in both groups: what a tier locks carries its lock (the same
        # retention for the whole batch), the rest goes as it is.
        locked = {p: d for p, d in objects.items() if self._lock_args(p)}
        rest = {p: d for p, d in objects.items() if p not in locked}
        with self._translated():
            for group in (locked, rest):
                if group:
                    args = self._lock_args(next(iter(group)))
                    self.fs.pipe({self.full(p): d for p, d in group.items()}, **args)

    def delete(self, paths: builtins.list[str]) -> None:
        if not paths:
            return
        if self.is_s3:
            self._delete_s3(paths)
            return
        with self._translated():
            try:
                self.fs.rm([self.full(p) for p in paths])
            except FileNotFoundError:
                # Some filesystems refuse a batch holding a missing object: go one by one.
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(self.full(path))

    def _delete_s3(self, paths: builtins.list[str]) -> None:
        """DeleteObjects, 1,000 keys a request, with its per-key errors raised: s3fs's own
        bulk delete leaves them unread, and a key the credentials may not delete would look
        deleted. A key already gone is no error."""
        full = [self.full(p) for p in paths]
        with self._translated():
            # A locked store keeps versions: a delete without one only hides the object
            # behind a marker. Its current version is deleted for good (refused while locked).
            versions = {}
            if self.object_lock is not None:
                for path, name in zip(paths, full, strict=True):
                    head = self._head(path)
                    if head is not None and head.get("VersionId"):
                        versions[name] = head["VersionId"]
            for start in range(0, len(full), 1000):
                batch = full[start : start + 1000]
                bucket = batch[0].split("/", 1)[0]
                keys = [
                    {
                        "Key": p.split("/", 1)[1],
                        **({"VersionId": versions[p]} if p in versions else {}),
                    }
                    for p in batch
                ]
                out = self.fs.call_s3(
                    "delete_objects", Bucket=bucket, Delete={"Objects": keys, "Quiet": True}
                )
                for path in batch:
                    self.fs.invalidate_cache(path)
                errors = [e for e in out.get("Errors", []) if e.get("Code") != "NoSuchKey"]
                if errors:
                    first = errors[0]
                    message = (
                        f"cannot delete {first.get('Key')} from store {self.url}: "
                        f"{first.get('Code')}: {first.get('Message')}"
                    )
                    if first.get("Code") == "AccessDenied":
                        raise AccessDenied(
                            message + " (these credentials may not delete: prune and gc run "
                            "on a host whose credentials may)"
                        )
                    raise StoreError(message)


def _past_end(exc: OSError) -> bool:
    """S3 refuses a range that starts past an object's end (an empty object's first byte)."""
    return exc.errno == errno.EINVAL and "range" in str(exc).lower()


def open_backend(url: str, storage_options: dict[str, Any] | None = None) -> Backend:
    """A backend for ``url``; StoreError (one line, naming the URL) when it cannot be used."""
    if "::" in url:
        # fsspec chains (simplecache::s3://...) put a cache between us and the store: reads
        # would be served from a copy and writes may never reach the store.
        raise StoreError(
            f"cannot open store {shown(url)}: chained URLs (with '::') are not supported; "
            "name the store itself"
        )
    backend: Backend
    root = _local_root(url, storage_options)
    if root is not None:
        backend = LocalBackend(root, url)
    else:
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        try:
            fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        except (ValueError, ImportError, TypeError) as exc:
            raise StoreError(f"cannot open store {url}: {_reason(exc)}") from None
        if isinstance(fs, LocalFileSystem):
            backend = LocalBackend(root, url)
        else:
            backend = FsspecBackend(fs, root, url)
    backend.check_reachable()
    return backend


def _local_root(url: str, storage_options: dict[str, Any] | None) -> str | None:
    """The absolute directory a plain path or ``file://`` URL names (as fsspec reads it);
    None for anything else, or when options are given for fsspec to judge."""
    if storage_options:
        return None
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url or "::" in url:
        return None
    path = os.path.expanduser(url)
    # Joined, not normalised: "link/.." must go through the link, as the system resolves it.
    return os.path.join(os.getcwd(), path) if not os.path.isabs(path) else path
