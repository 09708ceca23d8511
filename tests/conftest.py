"""Fixtures every suite shares: an isolated stigmem environment and a command runner that
runs the real console entry point in a separate process, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __repr__(self) -> str:  # shown by pytest when an assertion fails
        return (f"stigmem {' '.join(self.args)} -> {self.returncode}\n"
                f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}")


Runner = Callable[..., Result]


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMEM_", "AWS_"))}
    env["STIGMEM_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def stigmem(home: Path) -> Runner:
    """Run ``stigmem ARGS`` in a fresh process with STIGMEM_HOME set to a temp folder."""
    base = clean_env(home)

    def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None) -> Result:
        full = {**base, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env=full, cwd=cwd or home, capture_output=True, text=True, input=input,
            timeout=600,
        )
        return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr)

    return run
