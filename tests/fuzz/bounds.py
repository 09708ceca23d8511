"""The property every fuzz test checks: the call returns or raises one of the product's own
errors (never anything else), and its memory stays under a bound whatever the input."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

from snapshot.errors import StigmemError

MiB = 1 << 20


def refused_or_accepted(
    call: Callable[[], object],
    max_memory: int,
    allowed: tuple[type[BaseException], ...] = (StigmemError,),
) -> BaseException | None:
    """Run ``call``; return the allowed error it raised (None when it returned). Anything
    else propagates and fails the example; so does a traced peak of ``max_memory`` or more."""
    tracemalloc.start()
    caught: BaseException | None = None
    try:
        try:
            call()
        except allowed as exc:
            caught = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < max_memory, f"peak {peak} bytes for one input"
    if caught is not None:
        assert "\n" not in str(caught), f"a refusal is one line: {caught!r}"
    return caught
