"""Run `cld` / `ocd` / `llm-docker` as real processes: headless, or in a real pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import random
import select
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path

from testbed.isolation import TEST_ENV

REPO = Path(__file__).parent.parent
ENTRY = {"cld": "from cli.launchers import cld_main as m; m()",
         "ocd": "from cli.launchers import ocd_main as m; m()",
         "llm-docker": "from cli.admin import main as m; m()",
         # the installed `cld`/`ocd`: a client of the launch server (cli.launch_client)
         "cld-client": "from cli.launch_client import cld_main as m; m()",
         "ocd-client": "from cli.launch_client import ocd_main as m; m()",
         "llm-docker-client": "from cli.launch_client import admin_main as m; m()"}


def launcher_env(home: Path, **extra: str) -> dict[str, str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "xterm", "PYTHONPATH": str(REPO),
           "LANG": "C.UTF-8", **TEST_ENV}  # the tests' own image names, never the user's
    env.update(extra)
    return env


def command(program: str, *args: str) -> list[str]:
    return [sys.executable, "-c", ENTRY[program], *args]


def run(program: str, *args: str, cwd: Path, home: Path, timeout: float = 120,
        stdin: bytes = b"", **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(program, *args), cwd=cwd, env=launcher_env(home, **extra), input=stdin.decode(),
                          capture_output=True, text=True, timeout=timeout)


def slots_json(home: Path) -> list[dict[str, typing.Any]]:
    result = run("llm-docker", "slots", "--json", cwd=home, home=home)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, typing.Any]] = json.loads(result.stdout)
    return rows


def field(output: str, key: str) -> list[str]:
    """Values of `KEY:value` lines printed by the fake agent."""
    return [line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith(f"{key}:")]


class PtyProcess:
    """A launcher running in a real pseudo-terminal, as in a terminal emulator."""

    def __init__(self, program: str, *args: str, cwd: Path, home: Path, argv: list[str] | None = None,
                 env: dict[str, str] | None = None, **extra: str) -> None:
        """`argv`/`env` replace the default command line and environment (e.g. to run as
        an unprivileged user, see `testbed.unprivileged`)."""
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, b"\x18\x00\x50\x00\x00\x00\x00\x00")  # 24x80
        self.original_attributes = termios.tcgetattr(self.slave)
        self.process = subprocess.Popen(
            argv or command(program, *args), cwd=cwd, env=env or launcher_env(home, **extra),
            stdin=self.slave, stdout=self.slave, stderr=self.slave,
            start_new_session=True, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        self.output = bytearray()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._reading = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            self._reading = True  # until the bytes are in `output` (see `_drained`)
            try:
                data = os.read(self.master, 65536)
            except OSError:
                data = b""
            if data:
                with self._lock:
                    self.output += data
            self._reading = False
            if not data:
                return

    def _drained(self, timeout: float = 5) -> None:
        """Return once every byte the terminal holds is in `output`: a process's last line
        may still sit in the terminal when it has exited (the reader is a thread), or still be
        on its way from the terminal's writing side to its reading side (the kernel moves it
        in a work queue: under load, the reading side can look empty for a moment) — so the
        terminal must stay empty for QUIET_SECONDS."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while self.master >= 0 and time.monotonic() < deadline:
            pending = struct.unpack("i", fcntl.ioctl(self.master, termios.FIONREAD, b"\0\0\0\0"))[0]
            if pending == 0 and not self._reading:
                quiet_since = quiet_since if quiet_since is not None else time.monotonic()
                if time.monotonic() - quiet_since >= QUIET_SECONDS:
                    return
            else:
                quiet_since = None
            time.sleep(0.02)

    @property
    def text(self) -> str:
        with self._lock:
            return self.output.decode(errors="replace")

    def expect(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text:
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not seen within {timeout}s; output so far:\n{self.text}")
            if self.process.poll() is not None and needle not in self.text:
                time.sleep(0.2)
                if needle not in self.text:
                    raise AssertionError(f"process exited ({self.process.returncode}) before {needle!r}:\n{self.text}")
            time.sleep(0.05)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close_terminal(self) -> None:
        """What closing the terminal window does: the master side goes away (hang-up).
        The reader thread must let go first: a blocked read() keeps the master open."""
        self._close_fds()

    def attributes_restored(self) -> bool:
        assert self.slave >= 0, "the terminal was closed"
        return termios.tcgetattr(self.slave) == self.original_attributes

    def wait(self, timeout: float = 60) -> int:
        """The exit code, once the process ended and its output is all read."""
        code = self.process.wait(timeout=timeout)
        self._drained()
        return code

    def _close_fds(self) -> None:
        """Stop the reader before closing: otherwise a recycled fd number would let it read
        (and steal) the next terminal's output."""
        self._closing.set()
        self._reader.join()
        for fd in (self.slave, self.master):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_fds()


#: How long a terminal must stay empty after its process's exit before its output is complete.
QUIET_SECONDS = 0.25


def free_port() -> int:
    """A loopback TCP port nobody listens on right now (for a server the test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_port_block(size: int = 60) -> int:
    """A base port whose next `size` ports are free on 127.0.0.1 right now (SSH port ranges)."""
    # below the ephemeral range: no outgoing connection (the tests' own ssh logins, in
    # TIME_WAIT after they end) ever holds one of these ports as its source
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(200):
        base = random.randrange(20000, ephemeral_low - size)
        if all(port_free(port) for port in range(base, base + size)):
            return base
    raise AssertionError("no free block of ports on 127.0.0.1")


def port_free(port: int) -> bool:
    """Nothing holds `port` on 127.0.0.1 (a bind succeeds)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> float:
    """Seconds until `condition()` held; fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - start


def running(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for a reaper counts as gone: it runs nothing)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def guardians(state_home: Path) -> list[int]:
    """Guardian processes (`python -m supervisor.guardian STATE_HOME ...`) of this state folder: a
    test only ever signals the guardians of its own launches, never every one on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"supervisor.guardian" in argv and str(state_home).encode() in argv:
            found.append(int(entry.name))
    return found


def containers(label: str) -> list[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={label}"],
                            capture_output=True, text=True, check=True)
    return result.stdout.split()


def project_containers(project: Path) -> list[str]:
    return containers(f"io.llm-docker.project-root={project}")


def slot_session(home: Path, tool: str, project: Path, slot: int) -> str | None:
    """The session saved for (tool, project, slot), per `llm-docker slots --json`."""
    return next((row["session_id"] for row in slots_json(home)
                 if (row["tool"], row["project"], row["slot"]) == (tool, str(project), slot)), None)


def run_offline(args: list[str], *, cwd: Path, home: Path, extra_env: dict[str, str] | None = None,
                tool: str = "cld") -> subprocess.CompletedProcess[str]:
    """`cld` / `ocd` with no Docker engine reachable (planning, refusals, `--dry-run`), in a
    tmux pane as far as it can tell."""
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "TERM": "xterm",
        "DOCKER_HOST": "unix:///nonexistent/docker.sock",  # no engine reachable
        "TMUX": "/tmp/tmux-0/default,1,0", "TMUX_PANE": "%3", "PYTHONPATH": str(REPO), **TEST_ENV,
        **(extra_env or {}),
    }
    main = "cld_main" if tool == "cld" else "ocd_main"
    return subprocess.run([sys.executable, "-c", f"from cli.launchers import {main}; {main}()", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def run_admin(state_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`llm-docker ARGS` with `state_home` as both $HOME and $LLM_DOCKER_HOME (no engine needed)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(state_home), "LLM_DOCKER_HOME": str(state_home)}
    return subprocess.run([sys.executable, "-c", "from cli.admin import main; main()", *args],
                          capture_output=True, text=True, env=env, cwd=REPO)


def clean_environ(**extra: str) -> dict[str, str]:
    """The process environment with llm-docker's own variables removed, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_DOCKER_")}
    env.update(extra)
    return env


_ORPHANED_WATCHER = """
import os, sys, anyio
if sys.argv[3] == "no-pidfd":
    del os.pidfd_open  # as on macOS: the portable path
from supervisor.tasks import watchdog
watchdog.PARENT_POLL_SECONDS = 0.1
marker = sys.argv[1]
parent = os.getppid()
open(marker, "w").write("watching")
async def main():
    with anyio.fail_after(30):  # a broken fallback must not leave this process behind
        await watchdog.wait_for_parent_exit(parent)
anyio.run(main, backend=sys.argv[2])
open(marker, "w").write(f"gone {parent} -> {os.getppid()} {watchdog.exit_watch_here().value}")
"""
#: The shell's wait for the watcher to have read its parent (the marker, "$2", is written
#: after that; a fixed sleep lost that race on a loaded machine).
_UNTIL_WATCHING = 'for _ in $(seq 600); do [ -s "$2" ] && break; sleep 0.05; done'


def orphaned_watcher(marker: Path, *, backend: str = "asyncio", without_pidfd: bool = False,
                     extra_env: dict[str, str] | None = None) -> str:
    """A real process tree for the watchdog's parent watch: `sh` starts a watcher (a Python
    process waiting for its parent's exit) and exits once the watcher watches; returns the
    marker's final text, `gone <old parent> -> <new parent> <how it watched>` when it noticed."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    subprocess.run(["sh", "-c", '"$0" -c "$1" "$2" "$3" "$4" & ' + _UNTIL_WATCHING, sys.executable, _ORPHANED_WATCHER,
                    str(marker), backend, "no-pidfd" if without_pidfd else "pidfd"], cwd=REPO, env=env, check=True)
    deadline = time.monotonic() + 15
    while not (marker.exists() and marker.read_text().startswith("gone")) and time.monotonic() < deadline:
        time.sleep(0.05)
    return marker.read_text()
