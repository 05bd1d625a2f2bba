"""`llm-docker slots`, `gc` and `status`: the state store and the engine seen from the admin command."""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path

import anyio

from engine.client import Engine, EngineError, connect, run_with_engine
from launch.errors import EXIT_FAILURE, LlmDockerError
from supervisor.printable import printable
from supervisor.recovery import collect_garbage, recover_dead_launches
from supervisor.store import StateStore


def list_slots(state_home: Path, *, as_json: bool) -> int:
    try:
        return anyio.run(_list_slots, state_home, as_json, backend="asyncio")
    except LlmDockerError as error:  # an unusable state database (2), an engine refusing the recovery (125)
        print(f"llm-docker: {error}", file=sys.stderr)
        return error.exit_code


async def _list_slots(state_home: Path, as_json: bool) -> int:
    async with StateStore.open(state_home) as store:
        try:  # finish saves of dead launchers first, so the list is current
            docker = await connect()
        except EngineError:
            docker = None
        if docker is not None:
            try:
                await recover_dead_launches(store, docker, state_home)
            finally:
                await docker.close()
        saved = await store.slots()
    rows = [{"tool": s.tool, "project": s.project, "slot": s.slot, "session_id": s.session_id,
             "workdir": s.workdir,
             "updated": datetime.datetime.fromtimestamp(s.updated_at, datetime.UTC).isoformat(timespec="seconds")}
            for s in saved]
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no saved slots")
        return 0
    for row in rows:
        print(printable(f"{row['tool']:<9} {row['project']}  slot {row['slot']:<3} {row['session_id']}  "
                        f"{row['updated']}"))
    return 0


def garbage_collect(state_home: Path) -> int:
    async def body(docker: Engine) -> int:
        try:
            async with StateStore.open(state_home) as store:
                removed = await collect_garbage(store, docker, state_home,
                                                lambda message: print(f"llm-docker: {printable(message)}"))
        except LlmDockerError as error:  # an unusable state database: 2
            print(f"llm-docker: {error}", file=sys.stderr)
            return error.exit_code
        print(f"removed {removed} container(s) of dead launchers")
        return 0

    return run_with_engine(body)


def show_status(*, as_json: bool, check: bool = False, state_home: Path | None = None,
                all_users: bool = False) -> int:
    """`llm-docker status`: the running slots, straight from the engine — the caller's own
    (by the launcher-uid label), or every user's with `all_users`; with `check`, exit 1 when
    any listed slot's network policy does not verify."""
    from supervisor.status import print_status, running_slots

    async def body(docker: Engine) -> int:
        rows = await running_slots(docker, check=check, state_home=state_home,
                                   uid=None if all_users else os.getuid())
        print_status(rows, as_json=as_json, all_users=all_users)
        failed = any(line.startswith("FAIL") for row in rows for line in row.network_checks or [])
        return EXIT_FAILURE if failed else 0

    return run_with_engine(body)
