"""The backup tools under test, each driven through its own command line.

Every tool gets its own repository directory and its own cache/home directory inside the
bench's work directory, and an environment stripped of the operator's settings for it, so a
run never touches (or is sped up by) anything outside the bench.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import Run, combine, run

PROJECT = Path(__file__).resolve().parent.parent
# Copying in Python when the sqlite3 shell is absent: same backup API, one more interpreter.
_PY_COPY = (
    "import sqlite3,sys;s=sqlite3.connect(f'file:{sys.argv[1]}?mode=ro',uri=True);"
    "d=sqlite3.connect(sys.argv[2]);s.backup(d);d.close();s.close()"
)


def clean_env(drop_prefixes: tuple[str, ...], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}
    env.update(extra)
    return env


PACKAGES = ("catalog", "cli", "snapshot", "store", "migrations")


def byte_compile(packages: tuple[str, ...]) -> list[str]:
    """Write the bytecode caches of ``packages`` where Python will not (untimed setup).

    An editable install is never byte-compiled, and where PYTHONDONTWRITEBYTECODE is set
    (this machine's images set it) Python compiles every module of ours from source on
    every command: 45 ms of each start-up, which a wheel install (compiled by pip) never
    pays and restic's and borg's packages do not either. Returns the packages compiled."""
    import compileall
    import importlib.util

    if not sys.dont_write_bytecode:
        return []  # the first timed command writes them, as it would for an operator
    done = []
    for name in packages:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            if os.access(folder, os.W_OK) and compileall.compile_dir(folder, quiet=1):
                done.append(name)
    return done


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Tool:
    """One tool: a repository to measure and the commands to back up, restore and check."""

    name: str
    work: Path
    db: Path
    pubkey: str
    # Encrypted repositories where the tool can choose (stigmem: a format-2 store encrypted
    # to a store key; borg: repokey); restic always encrypts.
    encrypt: bool = False
    last_copy_sha256: str = ""
    last_copy_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def repo(self) -> Path:
        return self.work / "repo"

    def setup(self) -> None:
        """Untimed one-off preparation (repository init)."""

    def backup(self, day: int) -> Run:
        raise NotImplementedError

    def restore(self, target: Path) -> tuple[Run, Path]:
        """Restore the latest backup under ``target``; return the run and the restored file."""
        raise NotImplementedError

    def restore_on_new_host(self, target: Path) -> tuple[Run, Path] | None:
        """Restore the latest backup as a host that never used the repository would: no
        local cache of its index. None when the tool keeps no such cache."""
        return None

    def check(self) -> Run:
        """Read back and hash every byte of the repository."""
        raise NotImplementedError

    def verify_latest(self) -> Run | None:
        """Read back and hash the latest snapshot only, when the tool has such a command."""
        return None

    def expected_sha256(self) -> str:
        """What the restored file must hash to: the consistent copy the tool was given."""
        return self.last_copy_sha256

    def version(self) -> str:
        raise NotImplementedError


class Stigmem(Tool):
    """``stigmem snapshot create``: its consistent copy is part of the command."""

    last_id: str = ""
    last_db_sha256: str = ""

    @property
    def home(self) -> Path:
        return self.work / "home"

    @property
    def repo(self) -> Path:
        return self.home / "store"

    def _cmd(self, *args: str) -> list[str]:
        script = Path(sys.executable).with_name("stigmem")
        base = [str(script)] if script.exists() else [sys.executable, "-m", "cli"]
        return [*base, "--home", str(self.home), *args]

    @property
    def store_key(self) -> Path:
        return self.work / "keys" / "store.key"

    @property
    def writer_key(self) -> Path:
        return self.work / "keys" / "writer.key"

    def _keys_env(self, writer: bool = True) -> dict[str, str]:
        """The key files of an encrypted store; a restoring host needs only the store key."""
        if not self.encrypt:
            return {}
        env = {"STIGMEM_STORE_KEY": str(self.store_key)}
        if writer:
            env["STIGMEM_WRITER_KEY"] = str(self.writer_key)
        return env

    def _env(self) -> dict[str, str]:
        return clean_env(("STIGMEM_",), STIGMEM_HOME=str(self.home), **self._keys_env())

    def _run(self, *args: str) -> Run:
        return run(self._cmd(*args), env=self._env(), cwd=PROJECT)

    def setup(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        compiled = byte_compile(PACKAGES)
        if compiled:
            self.notes.append(f"byte-compiled {', '.join(compiled)} first, as a wheel install does")
        if self.encrypt:
            self.store_key.parent.mkdir(parents=True, exist_ok=True)
            generated = json.loads(
                self._run(
                    "keys", "generate", "--store", "--out", str(self.store_key), "--json"
                ).stdout
            )
            self._run("keys", "generate", "--writer", "--out", str(self.writer_key), "--json")
            self._run("store", "init", str(self.repo), "--encrypt-to", generated["pub"])
            self.notes.append(
                f"encrypted format-2 store, store key {generated['key_id']}, "
                "STIGMEM_STORE_KEY and STIGMEM_WRITER_KEY set; new host: store key only"
            )

    def backup(self, day: int) -> Run:
        result = self._run("snapshot", "create", "--db", str(self.db), "--json")
        doc = json.loads(result.stdout)
        self.last_id, self.last_db_sha256 = doc["id"], doc["db_sha256"]
        return result

    def restore(self, target: Path) -> tuple[Run, Path]:
        out = target / "restored.db"
        result = self._run(
            "snapshot", "restore", self.last_id, "--db", str(out), "--no-backup",
            "--trusted-key", self.pubkey,
        )  # fmt: skip
        return result, out

    def restore_on_new_host(self, target: Path) -> tuple[Run, Path] | None:
        # Another node: a home of its own (no index cache, no catalog), the store by URL.
        home = target / "new-host"
        out = target / "restored.db"
        argv = self._cmd(
            "snapshot", "restore", self.last_id, "--db", str(out), "--no-backup",
            "--trusted-key", self.pubkey,
        )  # fmt: skip
        argv[argv.index("--home") + 1] = str(home)
        home.mkdir(parents=True)  # empty: no index cache, no catalog, no writer key
        env = clean_env(
            ("STIGMEM_",),
            STIGMEM_HOME=str(home),
            STIGMEM_STORE_URL=str(self.repo),
            **self._keys_env(writer=False),
        )
        return run(argv, env=env, cwd=PROJECT), out

    def check(self) -> Run:
        return self._run("store", "check", "--read-data-subset", "100%")

    def verify_latest(self) -> Run | None:
        return self._run("snapshot", "verify", self.last_id, "--trusted-key", self.pubkey)

    def expected_sha256(self) -> str:
        return self.last_db_sha256

    def stats(self) -> dict[str, object]:
        return dict(json.loads(self._run("store", "stats", "--json").stdout))

    def version(self) -> str:
        # The command line has no --version; the installed distribution knows it.
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"stigmem-snapshots {version('stigmem-snapshots')}"
        except PackageNotFoundError:
            return "stigmem-snapshots (not installed; run from the source tree)"


class CopyThenBackup(Tool):
    """restic and borg read a file as it is; an operator must hand them a consistent copy of a
    live SQLite database, so the copy is made first and its time and memory count too."""

    @property
    def copy(self) -> Path:
        return self.work / "copy" / "stigmem.db"

    def consistent_copy(self) -> Run:
        # A fresh file every day, as a cron job would make; same path, so the tools see the
        # same file name from day to day and pick their previous backup of it as parent.
        self.copy.parent.mkdir(parents=True, exist_ok=True)
        self.copy.unlink(missing_ok=True)
        shell = shutil.which("sqlite3")
        if shell:
            argv = [shell, str(self.db), f".backup '{self.copy}'"]
        else:
            argv = [sys.executable, "-c", _PY_COPY, str(self.db), str(self.copy)]
        result = run(argv)
        self.last_copy_sha256 = sha256_file(self.copy)
        return result

    def backup(self, day: int) -> Run:
        copied = self.consistent_copy()
        self.last_copy_seconds = copied.seconds
        return combine(copied, self.backup_copy(day))

    def backup_copy(self, day: int) -> Run:
        raise NotImplementedError


class Restic(CopyThenBackup):
    init_args: tuple[str, ...] = ()

    def _cmd(self, *args: str) -> list[str]:
        return [
            "restic", "-r", str(self.repo), "--password-file", str(self.work / "password"),
            "--cache-dir", str(self.work / "cache"), *args,
        ]  # fmt: skip

    def _run(self, *args: str) -> Run:
        return run(self._cmd(*args), env=clean_env(("RESTIC_",)))

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "password").write_text("stigmem-bench\n")
        self._run("init", *self.init_args)
        self.notes.append(f"repository format version {self._repo_version()}, encrypted")

    def _repo_version(self) -> str:
        config = json.loads(self._run("cat", "config").stdout)
        return str(config.get("version", "?"))

    def backup_copy(self, day: int) -> Run:
        return self._run("backup", "--quiet", "--host", "bench", str(self.copy))

    def restore(self, target: Path) -> tuple[Run, Path]:
        result = self._run("restore", "latest", "--target", str(target))
        return result, target / self.copy.relative_to("/")

    def restore_on_new_host(self, target: Path) -> tuple[Run, Path] | None:
        argv = self._cmd("restore", "latest", "--target", str(target))
        at = argv.index("--cache-dir")
        argv[at : at + 2] = ["--no-cache"]
        return run(argv, env=clean_env(("RESTIC_",))), target / self.copy.relative_to("/")

    def check(self) -> Run:
        return self._run("check", "--read-data")

    def version(self) -> str:
        return run(["restic", "version"], check=False).stdout.strip()


class ResticV1(Restic):
    """restic with repository format 1 (no compression), as repositories made before 0.14."""

    init_args = ("--repository-version", "1")


class Borg(CopyThenBackup):
    day: int = -1  # the latest archive is named after its day

    def _env(self) -> dict[str, str]:
        env = clean_env(
            ("BORG_",),
            BORG_BASE_DIR=str(self.work / "base"),
            BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
            BORG_RELOCATED_REPO_ACCESS_IS_OK="yes",
        )
        if self.encrypt:
            env["BORG_PASSPHRASE"] = "stigmem-bench"
        return env

    def _run(self, *args: str, cwd: Path | None = None) -> Run:
        return run(["borg", *args], env=self._env(), cwd=cwd)

    def setup(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        mode = "repokey" if self.encrypt else "none"
        self._run("init", "-e", mode, str(self.repo))
        self.notes.append(f"init -e {mode}")

    def backup_copy(self, day: int) -> Run:
        self.day = day
        return self._run("create", f"{self.repo}::day-{day}", str(self.copy))

    def restore(self, target: Path) -> tuple[Run, Path]:
        target.mkdir(parents=True, exist_ok=True)
        result = self._run("extract", f"{self.repo}::day-{self.day}", cwd=target)
        return result, target / self.copy.relative_to("/")

    def check(self) -> Run:
        return self._run("check", "--verify-data", str(self.repo))

    def version(self) -> str:
        return run(["borg", "--version"], check=False).stdout.strip()


TOOLS: dict[str, type[Tool]] = {
    "stigmem": Stigmem,
    "restic": Restic,
    "restic-v1": ResticV1,
    "borg": Borg,
}
EXECUTABLES = {"restic": "restic", "restic-v1": "restic", "borg": "borg"}


def missing_reason(name: str) -> str | None:
    """Why a tool cannot run here, or None when it can."""
    exe = EXECUTABLES.get(name)
    if exe and shutil.which(exe) is None:
        package = "borgbackup" if exe == "borg" else exe
        return f"{exe} not found (apt-get install {package})"
    return None
