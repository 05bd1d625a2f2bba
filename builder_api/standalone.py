"""`llm-docker api`: one project's builder-api as its own process (what `-ab` starts).

Runs until SIGINT/SIGTERM/SIGHUP, then stops the running build's and the runtime's
process groups before exiting 0 (upstream's `os._exit` orphaned both). Config errors
exit 2, a port already taken exits 1 — each with one line on stderr.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio

from builder_api.config import ConfigError, load
from builder_api.server import build_api, serve
from launch.errors import EXIT_FAILURE


async def docker_container_lookup(project: str) -> str | None:
    """`{{container}}`: the newest running llm-docker container of `project` (Engine API)."""
    from engine.client import Engine, EngineError

    async with Engine() as engine:
        try:
            found = await engine.containers.list(filters={"label": [f"llm-docker-project={project}"],
                                                          "status": ["running"]})
        except EngineError:
            return None
    return found[0].id if found else None


def run_standalone(project: str, config_path: Path | None, *, port: int | None = None) -> int:
    try:
        config = load(project, config_path)
    except ConfigError as error:
        print(f"[builder-api] CONFIG ERROR: {error}", file=sys.stderr)
        return error.exit_code
    for warning in config.warnings:
        print(f"[builder-api] CONFIG WARN: {warning}", file=sys.stderr)

    async def main() -> int:
        api = build_api(config, find_container=docker_container_lookup)
        async with anyio.create_task_group() as group:
            try:
                bound = await group.start(lambda task_status: serve(api, port=port, task_status=task_status))
            except OSError as error:
                print(f"[builder-api] {error}", file=sys.stderr)
                return EXIT_FAILURE  # the port is taken: a failure, not bad input
            print(f"[builder-api] {config.name} on http://{bound[0]} (root {config.root})", file=sys.stderr)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
                async for signum in signals:
                    print(f"[builder-api] received {signal.Signals(signum).name}, stopping", file=sys.stderr)
                    break
            group.cancel_scope.cancel()
        return 0

    return anyio.run(main, backend="asyncio")
