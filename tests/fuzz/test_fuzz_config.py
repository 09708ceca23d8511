"""Fuzzing the config file (TOML) and the duration and time-bound grammar."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from snapshot.config import parse_config
from snapshot.durations import DurationError, format_duration, parse_duration, parse_time_bound
from snapshot.errors import ConfigError
from tests.fuzz.bounds import MiB, refused_or_accepted

MAX_MEMORY = 16 * MiB
NOW = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)
PATH = Path("fuzz.toml")

_duration_text = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.tuples(
            st.one_of(st.integers(0, 10**15).map(str), st.just("9" * 5000)),
            st.sampled_from(["y", "m", "w", "d", "h", "s", "", "D", "x"]),
        ),
        max_size=4,
    ).map(lambda terms: "".join(n + u for n, u in terms)),
)


@given(_duration_text)
def test_durations(text: str) -> None:
    def call() -> None:
        value = parse_duration(text)
        assert parse_duration(format_duration(value)) == value

    refused_or_accepted(call, MAX_MEMORY, (DurationError,))


@given(st.one_of(_duration_text, st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=40)))
def test_time_bounds(text: str) -> None:
    refused_or_accepted(lambda: parse_time_bound(text, NOW), MAX_MEMORY, (DurationError,))


_toml_values = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.just("9" * 5000),
    _duration_text.map(lambda t: '"' + t.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(["true", "inf", "nan", "1e400", "[]", "{}", '"/s"', "'s3://b/p'"]),
    st.integers(1, 20_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 20_000).map(lambda n: "{a = " * n + "1" + "}" * n),
)
_keys = st.sampled_from(
    [
        "store",
        "keep_last",
        "keep_daily",
        "keep_within",
        "grace",
        "storage_options",
        "keep_dayly",
        "default_tier",
    ]
)


@st.composite
def _configs(draw: st.DrawFn) -> str:
    lines = []
    if draw(st.booleans()):
        lines.append(f"default_tier = {draw(_toml_values)}")
    for name in draw(
        st.lists(st.sampled_from(["local", "offsite", "bad name", "x" * 300]), max_size=3)
    ):
        lines.append(f'[tiers."{name}"]')
        for key in draw(st.lists(_keys, max_size=5, unique=True)):
            lines.append(f"{key} = {draw(_toml_values)}")
    return "\n".join(lines) + "\n"


@given(st.one_of(_configs(), st.text(max_size=500), st.binary(max_size=500)))
def test_config_files(raw: str | bytes) -> None:
    refused_or_accepted(lambda: parse_config(raw, PATH), MAX_MEMORY, (ConfigError,))
