"""The sweep of gone gateways' host folders, against a faked engine answer (the boundary);
the real engine's side is in tests/walls/test_gateway_keep_docker.py."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import pytest

from engine.client import Engine
from engine.errors import EngineError
from supervisor.gateway_folders import SWEEP_AGE_SECONDS, sweep_gateway_folders

pytestmark = pytest.mark.anyio

OLD = time.time() - SWEEP_AGE_SECONDS - 60


class _Container:
    def __init__(self, *sources: Path) -> None:
        self.summary: dict[str, Any] = {"Mounts": [{"Source": str(source)} for source in sources]}


class _Containers:
    def __init__(self, listed: list[_Container] | None) -> None:
        self.listed = listed
        self.calls = 0

    async def list(self, **_: Any) -> list[_Container]:
        self.calls += 1
        if self.listed is None:
            raise EngineError("the engine is gone", status=500)
        return self.listed


class _Engine:
    def __init__(self, listed: list[_Container] | None) -> None:
        self.containers = _Containers(listed)


def _folder(state: Path, name: str, *, old: bool = True) -> Path:
    folder = state / "gateways" / name
    (folder / "lease").mkdir(parents=True)
    if old:
        os.utime(folder, (OLD, OLD))
    return folder


async def test_only_old_folders_no_gateway_mounts_are_removed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gone = _folder(state, "0123456789ab")
    kept = _folder(state, "aaaaaaaaaaaa")  # a kept gateway still mounts its lease folder
    young = _folder(state, "bbbbbbbbbbbb", old=False)  # a launch is about to create its gateway
    other = _folder(state, "not-a-gateway")
    engine = _Engine([_Container(kept / "lease")])
    removed = await sweep_gateway_folders(cast(Engine, engine), state)
    assert removed == 1
    assert not gone.exists()
    assert kept.exists() and young.exists() and other.exists()


async def test_a_link_in_the_gateways_folder_is_never_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "gateways").mkdir(parents=True)
    target = tmp_path / "precious"
    (target / "lease").mkdir(parents=True)
    (state / "gateways" / "cccccccccccc").symlink_to(target)
    os.utime(state / "gateways" / "cccccccccccc", (OLD, OLD), follow_symlinks=False)
    assert await sweep_gateway_folders(cast(Engine, _Engine([])), state) == 0
    assert (target / "lease").is_dir()


async def test_no_engine_answer_removes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gone = _folder(state, "0123456789ab")
    assert await sweep_gateway_folders(cast(Engine, _Engine(None)), state) == 0
    assert gone.exists()


async def test_nothing_old_asks_the_engine_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _folder(state, "0123456789ab", old=False)
    engine = _Engine([])
    assert await sweep_gateway_folders(cast(Engine, engine), state) == 0
    assert await sweep_gateway_folders(cast(Engine, engine), tmp_path / "no-state") == 0
    assert engine.containers.calls == 0
