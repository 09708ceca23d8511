"""Store locks: shared writers coexist, exclusive gc excludes them, stale locks can be broken."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from snapshot.errors import LockedError
from store import layout, locks
from store.repository import Store
from tests.conftest import dead_pid
from tests.store.conftest import Location, sid


def plant_lock(store: Store, kind: str, host: str, pid: int, at: float) -> None:
    body = {"kind": kind, "host": host, "pid": pid, "time": at}
    name = f"{kind}-planted-{host}-{pid}.json"
    store.backend.write(layout.lock_path(name), json.dumps(body).encode())


@pytest.fixture
def stores(location: Location) -> tuple[Store, Store]:
    """Two handles on one store, as two processes would have."""
    first = Store.init(location.url, location.options, cache=location.cache)
    return first, Store.open(location.url, location.options, cache=location.cache)


def test_shared_locks_coexist_and_exclusive_waits_for_them(
    stores: tuple[Store, Store], location: Location
) -> None:
    one, two = stores
    third = Store.open(location.url, location.options, cache=location.cache)
    with one.lock("shared"), two.lock("shared"):
        with pytest.raises(LockedError) as err, third.lock("exclusive"):
            pass
        message = str(err.value)
        assert f"host {socket.gethostname()} pid {os.getpid()}" in message
        assert "shared lock" in message and one.url in message
    with third.lock("exclusive"):
        pass
    assert one.backend.list(layout.LOCKS) == []


def test_put_is_refused_while_gc_holds_the_exclusive_lock(stores: tuple[Store, Store]) -> None:
    one, two = stores
    with one.lock("exclusive"):
        with pytest.raises(LockedError, match="exclusive lock held by host"):
            two.put_snapshot(sid("x"), {}, {"m": b"data"})
        assert not two.has_snapshot(sid("x"))
    two.put_snapshot(sid("x"), {}, {"m": b"data"})
    assert two.has_snapshot(sid("x"))


def test_lock_of_a_dead_process_on_this_host_is_stale(stores: tuple[Store, Store]) -> None:
    one, _ = stores
    pid = dead_pid()
    plant_lock(one, "exclusive", socket.gethostname(), pid, time.time())
    assert [lock.pid for lock in one.break_locks()] == [pid]
    assert one.backend.list(layout.LOCKS) == []


def test_taking_a_lock_removes_the_lock_of_a_dead_process_on_this_host(
    stores: tuple[Store, Store],
) -> None:
    # What kill -9 leaves: the next run goes ahead and leaves no lock behind.
    one, _ = stores
    pid = dead_pid()
    plant_lock(one, "exclusive", socket.gethostname(), pid, time.time())
    plant_lock(one, "exclusive", "elsewhere", 4242, 0.0)  # stale by age: ignored, kept
    with one.lock("exclusive"):
        held = {lock.host for lock in locks.read_locks(one.backend)}
        assert held == {socket.gethostname(), "elsewhere"}
        assert [lock.pid for lock in locks.read_locks(one.backend)].count(os.getpid()) == 1
    assert [lock.host for lock in locks.read_locks(one.backend)] == ["elsewhere"]


def test_old_lock_of_another_host_is_stale_and_young_one_blocks(
    stores: tuple[Store, Store],
) -> None:
    one, _ = stores
    plant_lock(one, "exclusive", "elsewhere", 4242, time.time() - 60)
    with (
        pytest.raises(LockedError, match=r"host elsewhere pid 4242 for (59|60|61)s"),
        one.lock("shared"),
    ):
        pass
    assert one.break_locks() == []

    one.stale_after = 30
    with one.lock("shared"):
        pass
    assert [lock.host for lock in one.break_locks()] == ["elsewhere"]


def test_breaking_all_locks(stores: tuple[Store, Store]) -> None:
    one, _ = stores
    plant_lock(one, "shared", "elsewhere", 1, time.time())
    assert [lock.kind for lock in one.break_locks(stale_only=False)] == ["shared"]
    with one.lock("exclusive"):
        pass
