"""The guardian: a lease that outlives a supervisor killed with SIGKILL.

The supervisor starts it as a child in its own session (so a terminal hang-up or a
process-group kill does not reach it) and keeps the write end of its stdin. On a normal
exit the supervisor writes `done`. If the stdin pipe closes without `done`, the
supervisor died: the guardian stops and removes the launch's containers within seconds
(even when the state folder is gone or unusable) and finishes their slot saves from the
journal. It blocks in `read()` meanwhile — no
polling, no CPU.

While the supervisor lives, the guardian is a POSIX shell blocked in `read` (`WAIT_SCRIPT`):
a Python interpreter starts only when there is something to recover. A new interpreter
and its imports cost ~90 ms of CPU, and a launch would pay them at its worst moment — on
two cores, right while the engine sets up the slot's network — and keep ~15 MB resident
for the whole session, for a lease that almost never fires.

Run as `python -P -m supervisor.guardian STATE_HOME RUN_ID...` (by that shell). A state database it cannot
use (`StateError`) is one line on stderr and exit with its `exit_code` (2); the journal rows stay open
for the next launch's recovery. Its discovery reads are bounded (`supervisor.untrusted`), so
a hostile events file cannot keep it alive.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from launch.python_command import own_module

DONE = b"done\n"
#: The waiting guardian: `done` → exit; anything else (EOF first: the supervisor died) →
#: the Python guardian, with the same arguments (never interpolated into the script).
WAIT_SCRIPT = 'trap "" HUP INT TERM QUIT TSTP; IFS= read -r line; [ "$line" = done ] && exit 0; exec "$@"'


def guardian_command(state_home: Path, run_ids: list[str]) -> list[str]:
    """The argv of a launch's guardian: the waiting shell, then (only if needed) Python."""
    return ["/bin/sh", "-c", WAIT_SCRIPT, "llm-docker-guardian",
            *own_module("supervisor.guardian", str(state_home), *run_ids)]


@contextlib.asynccontextmanager
async def guardian(state_home: Path, run_ids: list[str]) -> AsyncIterator[None]:
    process = await anyio.open_process(
        guardian_command(state_home, run_ids),
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            assert process.stdin is not None
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await process.stdin.send(DONE)
            await process.stdin.aclose()
            await process.wait()


async def _recover(state_home: Path, run_ids: set[str]) -> None:
    """The launch's containers first, by name (a run id is its agent container's name), then
    the journal's saves: the containers go even when the state cannot be used — its folder
    deleted or its database unreadable — and an unsupervised agent never runs on. A state
    folder that is gone is not made again (its saves went with it)."""
    from engine.client import connect
    from supervisor.recovery import recover_dead_launches, remove_launch_containers
    from supervisor.store import StateStore

    docker = await connect()
    try:
        for name in sorted(run_ids):
            await remove_launch_containers(docker, state_home, name)
        if state_home.is_dir():
            async with StateStore.open(state_home) as store:
                await recover_dead_launches(store, docker, state_home, only=run_ids)
    finally:
        await docker.close()


def main(argv: list[str]) -> int:
    for name in ("SIGHUP", "SIGINT", "SIGTERM", "SIGQUIT", "SIGTSTP"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    state_home, run_ids = Path(argv[0]), set(argv[1:])
    received = sys.stdin.buffer.read()
    if received.startswith(DONE):
        return 0
    from supervisor.store import StateError

    try:
        anyio.run(_recover, state_home, run_ids, backend="asyncio")
    except StateError as error:
        print(f"llm-docker guardian: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
