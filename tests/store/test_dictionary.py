"""The dictionary a put compresses with: trained on the database, the same for the same pages."""

from __future__ import annotations

from pathlib import Path

import zstandard

from store import dictionary
from tests.store.conftest import change_rows, make_db

SIZE = 16 << 10


def put_dictionary(db: Path) -> bytes | None:
    return dictionary.for_put({"artifacts/stigmem.db": db, "cursor": b"{}"}, SIZE, 3, 1)


def test_trained_on_the_database_deterministically(tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 3000)
    first = put_dictionary(db)
    assert first is not None and zstandard.ZstdCompressionDict(first).dict_id() != 0
    # The same database gives the same dictionary: a put's packs depend on nothing else.
    assert put_dictionary(db) == first
    change_rows(db, list(range(1, 3000, 7)), "changed")
    again = put_dictionary(db)
    assert again is not None and again != first


def test_no_dictionary_without_a_database_worth_learning_from(tmp_path: Path) -> None:
    small = make_db(tmp_path / "small.db", 20)  # a few pages
    assert len(dictionary.samples(small, 1)) < dictionary.MIN_SAMPLES
    assert put_dictionary(small) is None
    assert dictionary.for_put({"cursor": b"{}" * 10000}, SIZE, 3, 1) is None
    # A store made before dictionaries (size 0) never trains.
    assert dictionary.for_put({"db": make_db(tmp_path / "n.db", 3000)}, 0, 3, 1) is None


def test_samples_are_whole_pages_spread_over_the_database(tmp_path: Path) -> None:
    db = make_db(tmp_path / "node.db", 3000)
    data = db.read_bytes()
    pages = len(data) // 4096
    picked = dictionary.samples(db, 1, count=10)
    assert len(picked) == 10 and all(len(p) == 4096 for p in picked)
    step = pages // 10
    assert picked == [data[n * step * 4096 : (n * step + 1) * 4096] for n in range(10)]


def test_samples_of_large_pages_stay_within_the_sampling_budget(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "big-pages.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA page_size = 65536")
    con.execute("CREATE TABLE t(x BLOB)")
    con.executemany("INSERT INTO t VALUES (randomblob(4000))", [()] * 4000)  # ~16 MiB
    con.commit()
    con.close()
    picked = dictionary.samples(db, 1)
    assert all(len(p) == 65536 for p in picked)
    assert sum(map(len, picked)) <= dictionary.SAMPLE_BYTES
    assert len(picked) >= dictionary.MIN_SAMPLES  # still enough to train on
