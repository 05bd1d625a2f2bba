"""Run the launcher as users run it: an unprivileged uid in the `docker` group.

Root hides ownership and permission bugs, so the tests of the cage's walls start `cld`,
`ocd`, `llm-docker` and the host's own `git` as a dedicated unprivileged uid (64101, no
/etc/passwd entry needed), with the Docker socket's group as a supplementary group
(`setpriv`, from util-linux). A uid of its own keeps the tests away from a real user's
containers on a shared engine: `llm-docker gc` run by a test only ever looks at that uid's.

* The interpreter is a virtual environment made from Debian's `/usr/bin/python3` under
  `/var/tmp` (a pyenv Python under /root is unreadable to it), with the dependencies
  from pyproject.toml; the code is a copy of this checkout's packages under `/var/tmp` (the
  checkout itself may sit in a folder the test uid cannot read), made once per test run.
* Every test user gets a fresh home (0700, owned by the uid) under `/var/tmp`, not under
  pytest's tmp_path (that is root's 0700 folder).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import typing
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from supervisor.remove_tree import remove_tree
from testbed.isolation import TEST_ENV
from testbed.processes import ENTRY, REPO

if TYPE_CHECKING:
    from testbed.processes import PtyProcess

CAGE_UID = 64101
CAGE_GID = 64101
BASE = Path("/var/tmp/llm-docker-tests")
VENV = BASE / "venv"
SYSTEM_PYTHON = Path("/usr/bin/python3")
DOCKER_SOCKET = Path("/var/run/docker.sock")


def _runtime_dependencies() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def user_python() -> Path:
    """A Python with the runtime dependencies that the test uid can run (made once, then reused
    until pyproject's dependencies change)."""
    dependencies = _runtime_dependencies()
    stamp = hashlib.sha256("\n".join(dependencies).encode()).hexdigest()
    python = VENV / "bin" / "python3"
    stamp_file = VENV / ".llm-docker-deps"
    if python.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return python
    BASE.mkdir(parents=True, exist_ok=True)
    BASE.chmod(0o755)
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(VENV)], check=True, capture_output=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *dependencies],
                   check=True, capture_output=True)
    stamp_file.write_text(stamp)
    for folder, _, _ in os.walk(VENV):
        os.chmod(folder, 0o755)
    return python


#: The product's packages (pyproject's, top-level: cli, engine, launch, ...): what the test uid runs.
PACKAGES = tuple(dict.fromkeys(name.split(".")[0] for name in
                               tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]))
_code: Path | None = None


def code_copy() -> Path:
    """This checkout's packages, copied where the test uid can read them (once per process)."""
    global _code
    if _code is None:
        target = BASE / "code" / str(os.getpid())
        shutil.rmtree(target, ignore_errors=True)
        for package in PACKAGES:
            shutil.copytree(REPO / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
        for folder in (BASE / "code", *(p for p in [target, *target.rglob("*")] if p.is_dir())):
            folder.chmod(0o755)
        _code = target
    return _code


def docker_group() -> int:
    """The group that may use the engine: the socket's own group."""
    return DOCKER_SOCKET.stat().st_gid


class User:
    """An unprivileged user with a fresh home; runs our commands and host tools as itself."""

    def __init__(self, uid: int = CAGE_UID, gid: int = CAGE_GID) -> None:
        self.uid, self.gid = uid, gid
        self.python = user_python()
        self.code = code_copy()
        homes = BASE / "homes"
        homes.mkdir(parents=True, exist_ok=True)
        homes.chmod(0o755)
        self.home = homes / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.home.mkdir(mode=0o700)
        os.chown(self.home, uid, gid)

    @property
    def state_home(self) -> Path:
        return self.home / ".llm-docker"

    def prefix(self) -> list[str]:
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", f"--groups={docker_group()}", "--"]

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "TERM": "xterm",
               "PYTHONPATH": str(self.code), "LANG": "C.UTF-8", "GIT_AUTHOR_NAME": "Test User",
               "GIT_AUTHOR_EMAIL": "user@example.invalid", "GIT_COMMITTER_NAME": "Test User",
               "GIT_COMMITTER_EMAIL": "user@example.invalid", **TEST_ENV}  # the tests' own image names
        env.update(extra)
        return env

    def command(self, program: str, *args: str) -> list[str]:
        """`cld`/`ocd`/`llm-docker` as this user."""
        return [*self.prefix(), str(self.python), "-c", ENTRY[program], *args]

    def own(self, path: Path | None = None) -> None:
        """Give everything under `path` (default: the home) to the user — for files a test
        wrote as root. Never follows symlinks."""
        top = path or self.home
        os.lchown(top, self.uid, self.gid)
        for folder, folders, files in os.walk(top):
            for name in folders + files:
                os.lchown(os.path.join(folder, name), self.uid, self.gid)

    def write(self, path: Path, text: str, mode: int = 0o644) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
        self.own(self.home)
        return path

    def project(self, name: str = "app") -> Path:
        folder = self.home / "Projects" / name
        folder.mkdir(parents=True, exist_ok=True)
        self.own()
        return folder

    def run(self, program: str, *args: str, cwd: Path, timeout: float = 120, stdin: bytes = b"",
            **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(program, *args), cwd=cwd, env=self.env(**extra),
                              input=stdin.decode(), capture_output=True, text=True, timeout=timeout)

    def popen(self, program: str, *args: str, cwd: Path, **kwargs: typing.Any) -> subprocess.Popen[bytes]:
        extra = kwargs.pop("env", {})
        assert isinstance(extra, dict)
        process: subprocess.Popen[bytes] = subprocess.Popen(self.command(program, *args), cwd=cwd,
                                                            env=self.env(**extra), **kwargs)
        return process

    def pty(self, program: str, *args: str, cwd: Path, **extra: str) -> "PtyProcess":
        """The launcher in a real pseudo-terminal, as this user."""
        from testbed.processes import PtyProcess

        return PtyProcess(program, *args, cwd=cwd, home=self.home, argv=self.command(program, *args),
                          env=self.env(**extra))

    def shell(self, script: str, *, cwd: Path, timeout: float = 60,
              check: bool = False) -> subprocess.CompletedProcess[str]:
        """A host command as the user (its own `git status`, `git commit`, a settings read)."""
        result = subprocess.run([*self.prefix(), "/bin/sh", "-c", script], cwd=cwd, env=self.env(),
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"{script!r} failed ({result.returncode}): {result.stderr}"
        return result

    def cleanup(self) -> None:
        remove_tree(self.home)  # an agent's folders may nest deeper than shutil.rmtree recurses


def sweep_dead_homes() -> None:
    """Remove test homes and code copies of earlier runs whose pytest process is gone."""
    for folder in (BASE / "homes", BASE / "code"):
        for entry in folder.iterdir() if folder.is_dir() else ():
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                remove_tree(entry)


if __name__ == "__main__":
    print(user_python(), file=sys.stderr)
