"""Hot reload: the config's folder and the shard folder are watched with inotify through
the event loop (no polling thread); off Linux, and under the test switch of
`launch.portability`, their `*.toml` files are polled instead. A valid new config replaces the old one at once —
jobs, verbs, password, auth_reads, log aliases, build and security settings, and the
runtime settings for the next `/run` (upstream reloaded only the jobs; docs/upstream.md#api-hot-reload). An invalid
one is reported (`config_reload_failed`) and the old config stays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from builder_api.config import ConfigError, ProjectConfig, load, shard_folder
from builder_api.watch import Inotify
from launch.portability import linux_mechanisms

SETTLE_S = 0.2
POLL_FALLBACK_S = 1.5

def _jobs_diff(old: ProjectConfig, new: ProjectConfig) -> dict[str, object]:
    def platforms(config: ProjectConfig, name: str) -> set[str]:
        job = config.jobs.get(name)
        return set(getattr(job, "platforms", {}) or {})

    hubs = {n for n in set(old.jobs) | set(new.jobs) if platforms(old, n) or platforms(new, n)}
    return {"project": new.name, "added": sorted(set(new.jobs) - set(old.jobs)),
            "removed": sorted(set(old.jobs) - set(new.jobs)),
            "verbs_changed": sorted(n for n in hubs if platforms(old, n) != platforms(new, n)),
            "total_jobs": len(new.jobs)}


def _changed_since_load(config: ProjectConfig, folders: set[Path]) -> bool:
    files = [p for folder in folders if folder.is_dir() for p in folder.glob("*.toml")]
    return any(p.stat().st_mtime > config.config_mtime for p in files)


async def watch_config(get: Callable[[], ProjectConfig], apply: Callable[[ProjectConfig], None],
                       emit: Callable[[str, dict[str, object]], object], *,
                       task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """Run until cancelled: reload `get().config_path` whenever its folders change.
    `task_status.started()` once the watch is in place (nothing can be missed after it)."""
    config = get()
    folders = {config.config_path.parent, shard_folder(config.config_path, os.environ)}
    if not linux_mechanisms():
        task_status.started()
        await _poll(get, apply, emit, folders)
        return
    inotify = Inotify()
    try:
        for folder in folders:
            inotify.watch(folder)
        task_status.started()
        if _changed_since_load(config, folders):  # edited between the load and the watch
            _reload(get, apply, emit)
        while True:
            await anyio.wait_readable(inotify.fd)
            await anyio.sleep(SETTLE_S)  # an editor's save is several events
            inotify.drain()
            _reload(get, apply, emit)
    finally:
        inotify.close()


async def _poll(get: Callable[[], ProjectConfig], apply: Callable[[ProjectConfig], None],
                emit: Callable[[str, dict[str, object]], object], folders: set[Path]) -> None:
    def snapshot() -> dict[Path, float]:
        return {p: p.stat().st_mtime for folder in folders if folder.is_dir() for p in folder.glob("*.toml")}

    seen = snapshot()
    if _changed_since_load(get(), folders):  # edited between the load and the first snapshot
        _reload(get, apply, emit)
    while True:
        await anyio.sleep(POLL_FALLBACK_S)
        current = snapshot()
        if current != seen:
            seen = current
            _reload(get, apply, emit)


def _reload(get: Callable[[], ProjectConfig], apply: Callable[[ProjectConfig], None],
            emit: Callable[[str, dict[str, object]], object]) -> None:
    old = get()
    try:
        new = load(old.name, old.config_path)
    except ConfigError as error:
        emit("config_reload_failed", {"project": old.name, "code": error.exit_code, "error": str(error)})
        return
    apply(new)
    emit("config_reloaded", _jobs_diff(old, new))
