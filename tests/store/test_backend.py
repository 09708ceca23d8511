"""The Backend object interface behaves the same on memory, a local directory and S3."""

from __future__ import annotations

import pytest

from store.backend import open_backend
from tests.store.conftest import Location


def test_objects_roundtrip(location: Location) -> None:
    backend = open_backend(location.url, location.options)
    backend.write("a/one", b"first")
    backend.write_many({"a/two": b"second", "b/c/three": b"third!"})

    assert backend.read("a/one") == b"first"
    assert backend.read_range("b/c/three", 1, 4) == b"hir"
    assert backend.read_ranges([("a/one", 0, 2), ("a/two", 3, 6)]) == [b"fi", b"ond"]
    assert backend.read_many(["a/one", "a/two"]) == {"a/one": b"first", "a/two": b"second"}
    assert backend.exists("a/two") and not backend.exists("a/nope")
    assert backend.size("b/c/three") == 6
    listed = {e.path: e.size for e in backend.list()}
    assert listed == {"a/one": 5, "a/two": 6, "b/c/three": 6}
    assert {e.path for e in backend.list("a")} == {"a/one", "a/two"}
    assert all(e.mtime is not None for e in backend.list())


def test_range_views_read_in_place_and_stop_at_the_end(location: Location) -> None:
    backend = open_backend(location.url, location.options)
    data = bytes(range(256)) * 40_000  # past mmap's allocation granularity several times
    backend.write("p/pack", data)
    for start, end in [(0, 10), (70_000, 70_010), (len(data) - 5, len(data) + 100), (0, len(data))]:
        assert bytes(backend.read_range_view("p/pack", start, end)) == data[start:end]
    assert bytes(backend.read_range_view("p/pack", len(data) + 1, len(data) + 9)) == b""
    view = backend.read_range_view("p/pack", 5, 9)
    backend.delete(["p/pack"])  # gc removing a pack a restore is reading: the view holds
    assert bytes(view) == data[5:9]
    with pytest.raises(FileNotFoundError):
        backend.read_range_view("p/pack", 0, 4)


def test_overwrite_delete_and_missing(location: Location) -> None:
    backend = open_backend(location.url, location.options)
    backend.write("x", b"old")
    backend.write("x", b"new")
    assert backend.read("x") == b"new"
    backend.delete(["x", "never-existed"])
    assert not backend.exists("x")
    with pytest.raises(FileNotFoundError):
        backend.read("x")
    assert backend.list("nothing-here") == []


def test_local_writes_leave_no_temporary_files(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path)) / "store"
    backend = open_backend(str(root))
    backend.write("packs/ab/abc", b"data")
    assert sorted(p.name for p in (root / "packs" / "ab").iterdir()) == ["abc"]
    assert (root / "packs" / "ab" / "abc").stat().st_mode & 0o077 == 0


def test_a_local_path_is_the_directory_the_system_resolves(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    (base / "real" / "deep").mkdir(parents=True)
    (base / "elsewhere").mkdir()
    (base / "elsewhere" / "link").symlink_to(base / "real" / "deep")
    # "link/.." is real/, through the link, as for any program: not elsewhere/.
    backend = open_backend(str(base / "elsewhere" / "link" / ".." / "store"))
    backend.write("config.json", b"{}")
    assert (base / "real" / "store" / "config.json").read_bytes() == b"{}"
    assert not (base / "elsewhere" / "store").exists()
    # Relative paths, ~ and file:// name the same directory.
    monkeypatch.chdir(base / "real")
    monkeypatch.setenv("HOME", str(base / "real"))
    for url in ("store", "~/store", f"file://{base / 'real' / 'store'}"):
        assert open_backend(url).read("config.json") == b"{}", url


def test_prefetch_is_a_hint_on_every_store(location: Location) -> None:
    backend = open_backend(location.url, location.options)
    backend.write("p/pack", b"0123456789")
    backend.prefetch("p/pack", 2, 8)  # read ahead where the store can, else nothing
    backend.prefetch("p/gone", 0, 10)  # a missing object is for the read to report
    assert backend.read_range("p/pack", 2, 8) == b"234567"
    with pytest.raises(FileNotFoundError):
        backend.read_range_view("p/gone", 0, 10)
