"""How the watchdog waits for its parent's exit: pidfd (Linux), kqueue (macOS, the BSDs), or
polling — chosen in one place, and the test switch of `launch.portability` turns pidfds off."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch.portability import PORTABLE_ONLY_VARIABLE
from supervisor.tasks.watchdog import ExitWatch, choose_exit_watch, exit_watch_here

REPO = Path(__file__).parents[2]


@pytest.mark.parametrize(("linux", "pidfd", "kqueue", "expected"), [
    (True, True, False, ExitWatch.PIDFD),    # Linux >= 5.3
    (True, False, False, ExitWatch.POLL),    # Python or kernel without pidfds
    (False, True, False, ExitWatch.POLL),    # Linux with the test switch: no kqueue there
    (False, False, True, ExitWatch.KQUEUE),  # macOS, the BSDs
    (True, True, True, ExitWatch.PIDFD),
    (False, True, True, ExitWatch.KQUEUE),
    (False, False, False, ExitWatch.POLL),
])
def test_choice(linux: bool, pidfd: bool, kqueue: bool, expected: ExitWatch) -> None:
    assert choose_exit_watch(linux_mechanisms=linux, has_pidfd=pidfd, has_kqueue=kqueue) is expected


def test_the_switch_turns_pidfds_off_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)
    assert exit_watch_here() is ExitWatch.PIDFD  # this Linux (CI: kernel >= 5.3, Python >= 3.9)
    monkeypatch.setenv(PORTABLE_ONLY_VARIABLE, "1")
    assert exit_watch_here() is ExitWatch.POLL


_ORPHAN = """
import os, sys, anyio
from supervisor.tasks import watchdog
assert watchdog.exit_watch_here() is watchdog.ExitWatch.POLL, watchdog.exit_watch_here()
watchdog.PARENT_POLL_SECONDS = 0.1
marker = sys.argv[1]
parent = os.getppid()
open(marker, "w").write("watching")
async def main():
    with anyio.fail_after(30):  # a broken fallback must not leave this process behind
        await watchdog.wait_for_parent_exit(parent)
anyio.run(main, backend="asyncio")
open(marker, "w").write(f"gone {parent} -> {os.getppid()}")
"""


#: The shell's wait for the watcher to have read its parent (the marker, "$2", is written after that;
#: a fixed sleep lost that race on a loaded machine).
_UNTIL_WATCHING = 'for _ in $(seq 600); do [ -s "$2" ] && break; sleep 0.05; done'


def test_with_the_switch_the_parent_is_polled_until_it_exits(tmp_path: Path) -> None:
    """A real process tree under the switch (pidfds present but not used): `sh` starts the
    watcher and exits once it watches; the watcher notices it was orphaned."""
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(REPO), PORTABLE_ONLY_VARIABLE: "1"}
    subprocess.run(["sh", "-c", '"$0" -c "$1" "$2" & ' + _UNTIL_WATCHING, sys.executable, _ORPHAN, str(marker)],
                   cwd=REPO, env=env, check=True)
    deadline = time.monotonic() + 15
    while not (marker.exists() and marker.read_text().startswith("gone")) and time.monotonic() < deadline:
        time.sleep(0.05)
    text = marker.read_text()
    assert text.startswith("gone "), text
    assert text.split()[1] != text.split()[3]
