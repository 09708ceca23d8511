from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from snapshot.config import DEFAULT_GRACE, Config, load_config
from snapshot.errors import ConfigError
from snapshot.retention import Policy

RUNBOOK = """
[tiers.local]
store = "/var/lib/stigmem/store"
keep_daily = 30

[tiers.offsite]
store = "s3://your-bucket/stigmem"
keep_daily = 90
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def error_for(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message  # always names the file first
    assert "\n" not in message
    assert info.value.exit_code == 1
    return message


def test_runbook_config(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, RUNBOOK))
    assert list(config.tiers) == ["local", "offsite"]
    local = config.tier("local")
    assert local.store == "/var/lib/stigmem/store"
    assert local.policy == Policy(keep_daily=30)
    assert local.grace == DEFAULT_GRACE == timedelta(hours=1)
    assert local.storage_options == {}
    assert config.tier("offsite").policy.to_json() == {"keep_daily": 90}
    # No default_tier: the first tier is the default.
    assert config.default_tier_name() == "local"


def test_full_tier(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
default_tier = "offsite"

[tiers.local]
store = "memory://t"

[tiers.offsite]
store = "s3://bucket/prefix"
keep_last = 2
keep_hourly = 24
keep_daily = 7
keep_weekly = 4
keep_monthly = 12
keep_yearly = 3
keep_within = "30d"
grace = "2h"

[tiers.offsite.storage_options]
endpoint_url = "http://127.0.0.1:9000"
client_kwargs = { region_name = "eu-west-1" }
anon = false
""",
        )
    )
    offsite = config.tier("offsite")
    assert offsite.policy == Policy(
        keep_last=2,
        keep_hourly=24,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=3,
        keep_within=timedelta(days=30),
    )
    assert offsite.grace_seconds == 7200
    # Passed to fsspec as is, nested tables included; unknown keys there are fsspec's business.
    assert offsite.storage_options == {
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
        "anon": False,
    }
    assert config.default_tier_name() == "offsite"
    assert config.tier("local").policy.is_empty()


def test_default_path_missing_is_an_empty_config(tmp_path: Path) -> None:
    config = load_config(None, default_path=tmp_path / "config.toml")
    assert config == Config()
    assert config.default_tier_name() is None
    assert config.default_tier_name("local") == "local"
    assert load_config(None) == Config()


def test_default_path_present_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, RUNBOOK)
    assert load_config(None, default_path=path).path == path


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=f"^{path}: config file not found$"):
        load_config(path)


def test_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_not_toml(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[tiers.local\nstore = 1\n")
    assert "not valid TOML" in message
    assert "line 1" in message  # tomllib's position, so the operator can find it


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'default_tier = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[tiers.local]\nstore = "/s"\nkeep_dayly = 3\n',
            "unknown key 'tiers.local.keep_dayly' (did you mean 'keep_daily'?)",
        ),
        ('default_teir = "x"\n', "unknown key 'default_teir' (did you mean 'default_tier'?)"),
        ('retention = "x"\n', "unknown key 'retention'"),
        ('[tiers.local]\nstore = "/s"\ncolour = "red"\n', "unknown key 'tiers.local.colour'"),
    ],
)
def test_unknown_keys_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert error_for(tmp_path, text).endswith(expected)


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('[tiers.local]\nstore = "/s"\nkeep_within = "30x"\n', "tiers.local.keep_within", "30x"),
        ('[tiers.local]\nstore = "/s"\nkeep_within = 30\n', "tiers.local.keep_within", "30d"),
        ('[tiers.local]\nstore = "/s"\ngrace = "soon"\n', "tiers.local.grace", "soon"),
        ('[tiers.local]\nstore = "/s"\nkeep_daily = -1\n', "tiers.local.keep_daily", "-1"),
        ('[tiers.local]\nstore = "/s"\nkeep_daily = "7"\n', "tiers.local.keep_daily", "'7'"),
        ('[tiers.local]\nstore = "/s"\nkeep_last = true\n', "tiers.local.keep_last", "True"),
        ('[tiers.local]\nstore = "/s"\nkeep_weekly = 1.5\n', "tiers.local.keep_weekly", "1.5"),
        ("[tiers.local]\nstore = 3\n", "tiers.local.store", "3"),
        ('[tiers.local]\nstore = ""\n', "tiers.local.store", "''"),
        ('[tiers.local]\nstore = "/s"\nstorage_options = "x"\n', "tiers.local.storage_options", ""),
        ("tiers = 3\n", "tiers", "table"),
        ("[tiers]\nlocal = 3\n", "tiers.local", "table"),
        ('[tiers."a b"]\nstore = "/s"\n', "tiers.a b", "tier name"),
        ('default_tier = 1\n[tiers.a]\nstore = "/s"\n', "default_tier", "1"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    message = error_for(tmp_path, text)
    assert f"key '{key}'" in message
    assert problem in message


def test_tier_without_store_names_the_tier(tmp_path: Path) -> None:
    message = error_for(tmp_path, "[tiers.offsite]\nkeep_daily = 90\n")
    assert message.endswith("tier 'offsite' has no 'store' (key 'tiers.offsite.store')")


def test_default_tier_must_exist(tmp_path: Path) -> None:
    message = error_for(tmp_path, 'default_tier = "cold"\n' + RUNBOOK)
    assert message.endswith("key 'default_tier': unknown tier 'cold' (known: local, offsite)")


def test_unknown_tier_lists_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, RUNBOOK)
    with pytest.raises(ConfigError) as info:
        load_config(path).tier("x")
    assert str(info.value) == f"unknown tier 'x' (known: local, offsite) in {path}"
    with pytest.raises(ConfigError, match=r"unknown tier 'x' \(known: none\) \(no config file\)"):
        Config().tier("x")


def test_cli_flags_replace_the_tier_policy(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, RUNBOOK + 'keep_within = "7d"\n'))
    tier_policy = config.tier("offsite").policy
    assert tier_policy == Policy(keep_daily=90, keep_within=timedelta(days=7))
    assert tier_policy.with_overrides() == tier_policy
    assert tier_policy.with_overrides(keep_weekly=4) == Policy(keep_weekly=4)
    assert tier_policy.with_overrides(keep_within="12h").to_json() == {"keep_within": "12h"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a = " + "[" * 5_000 + "]" * 5_000 + "\n", "nested too deeply"),
        ("a = " + "{b = " * 5_000 + "1" + "}" * 5_000 + "\n", "nested too deeply"),
        ("[tiers.local]\nstore = '/s'\nkeep_daily = " + "9" * 5_000 + "\n", "not valid TOML"),
        (
            "[tiers.local]\nstore = '/s'\nkeep_within = '" + "9" * 4_400 + "d'\n",
            "too large",
        ),
    ],
)
def test_hostile_toml_is_a_one_line_config_error(tmp_path: Path, text: str, problem: str) -> None:
    message = error_for(tmp_path, text)
    assert problem in message
    assert "\n" not in message and len(message) < 500


def test_a_config_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    message = error_for(tmp_path, "# " + "x" * (2 << 20) + "\n")
    assert "over the limit" in message


def test_a_huge_unknown_key_is_cut_short(tmp_path: Path) -> None:
    message = error_for(tmp_path, "k" * 60_000 + " = 1\n")
    assert "unknown key" in message and len(message) < 500
