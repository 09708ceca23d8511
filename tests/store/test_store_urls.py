"""Store URLs fsspec would accept but the store cannot honour are refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from snapshot.errors import StoreError
from store.repository import Store


@pytest.mark.parametrize("chain", ["simplecache::{}", "filecache::file://{}", "blockcache::{}"])
def test_a_chained_url_is_refused_and_nothing_is_created(tmp_path: Path, chain: str) -> None:
    target = tmp_path / "store"
    url = chain.format(target)
    for opener in (Store.init, Store.open):
        with pytest.raises(StoreError, match="chained URLs") as err:
            opener(url, {})
        assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []
