"""Opening and creating stores: what is a store, what is refused, and nothing written then."""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snapshot.errors import StoreError
from store.backend import open_backend
from store.repository import Store
from tests.store.conftest import Location, s3_options


def test_create_then_open(location: Location) -> None:
    created = Store.open(location.url, location.options, cache=location.cache, create=True)
    assert created.url == location.url
    config = json.loads(created.backend.read("config.json"))
    assert (
        config["format"] == "stigmem-store"
        and config["version"] == 2
        and config["encryption"] == {"scheme": "none"}
    )
    assert Store.open(location.url, location.options, cache=location.cache).config == created.config
    # New stores compress every page on its own with a dictionary trained on the database.
    assert config["compression"]["dictionary_size"] == created.config.dictionary_size > 0


def test_a_store_made_before_dictionaries_goes_on_without(
    location: Location, tmp_path: Path
) -> None:
    from tests.store.conftest import make_db, manifest, sid

    store = Store.open(location.url, location.options, cache=location.cache, create=True)
    config = json.loads(store.backend.read("config.json"))
    del config["compression"]["dictionary_size"]
    store.backend.write("config.json", json.dumps(config).encode())
    older = Store.open(location.url, location.options, cache=location.cache)
    assert older.config.dictionary_size == 0
    db = make_db(tmp_path / "node.db", 2000)
    only = ("artifacts/stigmem.db",)
    older.put_snapshot(sid("a", only), manifest("a", only), {"artifacts/stigmem.db": db})
    packs = [older.backend.read(e.path) for e in older.backend.list("packs")]
    assert packs and not any(p.startswith(b"stgmdict") for p in packs)  # frames of pages
    out = tmp_path / "out.db"
    with out.open("wb") as handle:
        older.read_artifact(sid("a", only), "artifacts/stigmem.db", handle)
    assert out.read_bytes() == db.read_bytes()


def test_first_uses_racing_to_create_the_store_all_get_it(tmp_path: Path) -> None:
    # Two first `snapshot create`s on a new host both find no store and both make it.
    for round_ in range(10):
        url = str(tmp_path / f"store-{round_}")
        start = threading.Barrier(6)

        def first_use(url: str = url, start: threading.Barrier = start) -> Store:
            start.wait()
            return Store.open(url, create=True)

        with ThreadPoolExecutor(6) as pool:
            opened = [f.result() for f in [pool.submit(first_use) for _ in range(6)]]
        assert {s.config.frame_size for s in opened} == {Store.open(url).config.frame_size}


def test_init_refuses_an_existing_store(location: Location) -> None:
    Store.init(location.url, location.options, cache=location.cache)
    with pytest.raises(StoreError, match="already a stigmem store"):
        Store.init(location.url, location.options, cache=location.cache)


def test_absent_location_is_not_a_store_and_stays_absent(location: Location) -> None:
    with pytest.raises(StoreError, match="not a stigmem store") as err:
        Store.open(location.url, location.options, cache=location.cache)
    assert location.url in str(err.value)
    assert open_backend(location.url, location.options).list() == []


def test_directory_with_other_files_is_refused_even_with_create(location: Location) -> None:
    backend = open_backend(location.url, location.options)
    backend.write("holiday.jpg", b"\xff\xd8")
    for create in (False, True):
        with pytest.raises(StoreError, match="not a stigmem store") as err:
            Store.open(location.url, location.options, cache=location.cache, create=create)
        assert location.url in str(err.value)
    assert [e.path for e in backend.list()] == ["holiday.jpg"]


def test_newer_format_version_is_refused(location: Location) -> None:
    store = Store.init(location.url, location.options, cache=location.cache)
    config = json.loads(store.backend.read("config.json"))
    config["version"] = 3
    store.backend.write("config.json", json.dumps(config).encode())
    with pytest.raises(StoreError, match="format version 3") as err:
        Store.open(location.url, location.options, cache=location.cache)
    assert location.url in str(err.value)


def test_unreachable_s3_endpoint_is_one_line_store_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = "s3://stigmem-test/nowhere"
    with pytest.raises(StoreError) as err:
        Store.open(url, s3_options(f"http://127.0.0.1:{port}"), create=True)
    message = str(err.value)
    assert message.startswith(f"cannot reach store {url}: ") and "\n" not in message


def test_missing_bucket_is_named(s3_endpoint: str) -> None:
    url = "s3://no-such-bucket/prefix"
    with pytest.raises(StoreError, match="bucket no-such-bucket does not exist"):
        Store.open(url, s3_options(s3_endpoint), create=True)


def test_local_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"not a directory")
    with pytest.raises(StoreError) as err:
        Store.open(str(target), create=True)
    assert str(target) in str(err.value)
    assert target.read_bytes() == b"not a directory"
