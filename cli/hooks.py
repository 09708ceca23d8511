"""Hooks around a command (``[hooks]`` in the config): a healthchecks.io-style ping URL
and/or a shell command, told when a command starts and how it ended.

Wrapping a command is one line; the command hands its result document to the hook::

    with around(app, "drill") as hook:
        ...
        hook.result(doc)

Sequence (``P`` is ``ping_url``): ``GET P/start`` as the command starts (on a background
thread, while the command works); when it ends, ``POST P`` (success) or ``POST P/fail``
(failure) with the JSON body below, and ``command`` run through the shell with the same
JSON on stdin and ``STIGMEM_EVENT`` / ``STIGMEM_OUTCOME`` in its environment. Body::

    {"version": 1, "event": "create", "outcome": "success", "exit_code": 0,
     "host": "node-1", "started_at": "...+00:00", "finished_at": "...+00:00",
     "seconds": 2.345, "detail": {...the command's result document...}}

On failure ``detail`` is the error's one-line message (as stderr shows it, without the
``stigmem:`` prefix) and ``exit_code`` the code the command exits with.

A hook never changes what the command does: every request and the command are bounded by
``timeout``; a hook that fails, times out or cannot connect is a warning on the
``stigmem.hooks`` logger, never an error, and the command's output and exit code stay as
they were. The hook command's environment is this process's minus every variable whose
name holds KEY, SECRET, TOKEN, PASSWORD, PASSPHRASE or CREDENTIAL; its output is logged
(debug), never printed. With no ``[hooks]`` configured nothing is imported and nothing runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from snapshot.errors import StigmemError

if TYPE_CHECKING:
    from cli.app import App
    from snapshot.config import Hooks

EVENTS = ("create", "sync", "prune", "drill", "health")
BODY_VERSION = 1
# A variable whose name holds one of these never reaches the hook command's environment.
SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSPHRASE", "CREDENTIAL")
# What a hook's answer or output may hold that is read (the rest is discarded).
MAX_ANSWER = 64 << 10

log = logging.getLogger("stigmem.hooks")


class Hook:
    """What a wrapped command tells its hooks: its result document, once it has one."""

    def __init__(self) -> None:
        self.detail: Any = None

    def result(self, doc: Any) -> None:
        """The command's JSON result document (ids, counts, never key material)."""
        self.detail = doc


class around:
    """Context manager: hooks of ``app``'s config told that ``event`` starts and ends."""

    def __init__(self, app: App, event: str) -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown hook event {event!r}; one of {', '.join(EVENTS)}")
        self.app = app
        self.event = event
        self.hook = Hook()
        self.hooks: Hooks | None = None
        self.started_at = datetime.now(UTC)
        self.clock = time.monotonic()
        self.start_ping: threading.Thread | None = None

    def __enter__(self) -> Hook:
        try:
            hooks = self.app.config().hooks
        except StigmemError:
            # A config that does not load: the command says so itself, when it needs it.
            return self.hook
        if not hooks.enabled:
            return self.hook
        self.hooks = hooks
        self.started_at = datetime.now(UTC)
        self.clock = time.monotonic()
        if hooks.ping_url:
            url = ping_target(hooks.ping_url, "/start")
            self.start_ping = _thread(lambda: ping(url, None, self.timeout, "/start"))
        return self.hook

    @property
    def timeout(self) -> float:
        return self.hooks.timeout.total_seconds() if self.hooks is not None else 0.0

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.hooks is None:
            return
        try:
            self._finish(exc)
        except Exception:  # never let a hook change what the command did
            log.warning("hook: %s hooks failed", self.event, exc_info=True)

    def _finish(self, exc: BaseException | None) -> None:
        assert self.hooks is not None
        body = self.body(exc)
        data = json.dumps(body, default=str, separators=(",", ":")).encode() + b"\n"
        timeout = self.timeout
        if self.start_ping is not None:
            # /start first: a check that saw the end before the start would show it running.
            self.start_ping.join(max(0.0, self.clock + timeout - time.monotonic()))
        finish_ping = None
        what = "/" if exc is None else "/fail"
        if self.hooks.ping_url:
            url = ping_target(self.hooks.ping_url, "" if exc is None else "/fail")
            finish_ping = _thread(lambda: ping(url, data, timeout, what))
        if self.hooks.command:
            run_command(self.hooks.command, data, self.event, body["outcome"], timeout)
        if finish_ping is not None:
            finish_ping.join(timeout + 0.5)
            if finish_ping.is_alive():
                log.warning("hook: ping %s got no answer in %gs", what, timeout)

    def body(self, exc: BaseException | None) -> dict[str, Any]:
        finished = datetime.now(UTC)
        if exc is None:
            outcome, code, detail = "success", 0, self.hook.detail
        else:
            outcome, (code, detail) = "failure", failure(exc)
        body = {
            "version": BODY_VERSION,
            "event": self.event,
            "outcome": outcome,
            "exit_code": code,
            "host": self.app.host,
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "finished_at": finished.isoformat(timespec="milliseconds"),
            "seconds": round(time.monotonic() - self.clock, 3),
            "detail": detail,
        }
        if exc is not None and self.hook.detail is not None:
            # A command that judged and found fault (health, a failed drill): what it found.
            body["result"] = self.hook.detail
        return body


def failure(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message ``cli.main.run`` shows for ``exc``."""
    import click

    from cli.output import error_line

    if isinstance(exc, StigmemError):
        return exc.exit_code, error_line(str(exc))
    if isinstance(exc, KeyboardInterrupt | click.exceptions.Abort):
        return 130, "interrupted"
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code, f"exit {exc.exit_code}"
    if isinstance(exc, click.ClickException):
        return exc.exit_code, error_line(exc.format_message())
    return 1, f"internal error: {type(exc).__name__}: {error_line(str(exc))}"


def ping_target(base: str, suffix: str) -> str:
    """``base`` with ``suffix`` added to its path (a query string stays at the end)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))


def ping(url: str, data: bytes | None, timeout: float, what: str) -> None:
    """GET (``data`` None) or POST ``url``; any failure is a warning."""
    import urllib.error
    import urllib.request

    headers = {"User-Agent": "stigmem-hooks"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        log.warning("hook: ping %s answered HTTP %s", what, exc.code)
    except (OSError, ValueError) as exc:  # refused, unreachable, timed out, bad URL
        reason = getattr(exc, "reason", None) or exc
        log.warning("hook: ping %s failed: %s", what, reason)


def hook_environment(event: str, outcome: str) -> dict[str, str]:
    """This process's environment without anything secret, plus the event and outcome."""
    import os

    env = {
        name: value
        for name, value in os.environ.items()
        if not any(marker in name.upper() for marker in SECRET_MARKERS)
    }
    env["STIGMEM_EVENT"] = event
    env["STIGMEM_OUTCOME"] = outcome
    return env


def run_command(command: str, data: bytes, event: str, outcome: str, timeout: float) -> None:
    """``command`` through the shell, ``data`` on its stdin, killed (with everything it
    started) after ``timeout``; a failure is a warning."""
    import contextlib
    import os
    import signal
    import subprocess

    from cli.output import error_line

    try:
        proc = subprocess.Popen(
            command,
            shell=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=hook_environment(event, outcome),
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
    except OSError as exc:
        log.warning("hook: command cannot start: %s", exc)
        return
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        # (Still running after that: something left the group and holds the pipes.)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=1)
        log.warning("hook: command killed after %gs", timeout)
        return
    log.debug("hook: command stdout: %s", error_line(out[:MAX_ANSWER].decode(errors="replace")))
    if proc.returncode != 0:
        lines = err[-MAX_ANSWER:].decode(errors="replace").strip().splitlines()
        last = f": {error_line(lines[-1])}" if lines else ""
        log.warning("hook: command exited with %s%s", proc.returncode, last)


def _thread(target: Callable[[], None]) -> threading.Thread:
    """``target`` on a daemon thread: a hook the timeout gave up on never holds the exit."""
    thread = threading.Thread(target=target, name="stigmem-hook", daemon=True)
    thread.start()
    return thread
