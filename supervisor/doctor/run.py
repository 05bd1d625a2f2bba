"""`llm-docker doctor [--json] [--strict]`: check the install, one line per finding, each
problem with its fix.

The checks, one module each (probing there, verdicts and formatting pure in
`supervisor/doctor/report.py`): the config and the provider keys (`config`), the
state database, read-only (`state`), the engine and the disk space
(`engine`), the images (`images`), the network policy's self-test
(`network`), SSH (`ssh`) and leftover containers (`leftovers`).

Every check is bounded in time: an engine that accepts the connection and never answers,
a stuck file system, a gateway that never says "verified" each end as one failed line
when their bound passes, and the other checks still report. Checks that need something
another check found missing (the engine, a config that loads) say `skip` instead of
repeating the cause. Doctor changes nothing: the database is opened read-only, the
network self-test's gateway is removed before it returns, nothing is built or pulled.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import anyio

from engine import reach
from engine.client import Engine
from engine.errors import EngineError
from engine.kind import EngineIdentity, identify
from launch.config import Config, ConfigError, LoadedConfig, load_config
from launch.errors import LlmDockerError
from supervisor.doctor import engine as doctor_engine, report as doctor_report
from supervisor.doctor.config import API_KEYS, CONFIG, api_key_findings, config_findings
from supervisor.doctor.engine import DISK, ENGINE
from supervisor.doctor.images import IMAGES, image_findings
from supervisor.doctor.leftovers import LEFTOVERS, leftover_findings
from supervisor.doctor.network import NETWORK, network_findings
from supervisor.doctor.report import GROUPS, Finding, fail, ok, skip
from supervisor.doctor.ssh import SSH, key_problems, slot_findings
from supervisor.doctor.state import STATE, examine_state

#: Time bounds, per check (seconds).
CONFIG_SECONDS = 10.0
STATE_SECONDS = 10.0
ENGINE_SECONDS = 10.0
DISK_SECONDS = 10.0
IMAGES_SECONDS = 30.0
#: The gateway's own bounds (ready 20 s + checks 30 s) plus its create and removal.
NETWORK_SECONDS = 90.0
#: One SSH probe's bound (all slots are probed side by side), plus reading the keys.
SSH_PROBE_SECONDS = 10.0
SSH_SECONDS = SSH_PROBE_SECONDS + 10.0
LEFTOVERS_SECONDS = 20.0

Check = Callable[[], Awaitable[list[Finding]]]
T = TypeVar("T")


async def bounded(name: str, seconds: float, check: Check) -> list[Finding]:
    """Run one check within `seconds`; a refusal, a timeout or a broken check is one line."""
    with anyio.move_on_after(seconds):
        try:
            return await check()
        except EngineError as error:
            return [fail(name, f"the engine refused: {error}", "see the engine line; run doctor again")]
        except LlmDockerError as error:
            return [fail(name, *doctor_report.split_fix(str(error)))]
        except Exception as error:  # noqa: BLE001 - one broken check must not hide the others' findings
            return [fail(name, f"the check itself failed: {type(error).__name__}: {error}",
                         "please report this with `llm-docker doctor --json`")]
    return [fail(name, f"no answer within {seconds:g} s (the engine or a file system hangs?)",
                 "see the other lines; run doctor again once the engine answers")]


async def _thread(function: Callable[..., T], *arguments: Any) -> T:
    """`function` in a worker thread; abandoned (not waited for) when the check's bound passes."""
    return await anyio.to_thread.run_sync(function, *arguments, abandon_on_cancel=True)


async def examine(state_home: Path, environ: Mapping[str, str], user_home: Path) -> list[Finding]:
    """Every check; the findings in the order of `doctor_report.GROUPS`."""
    results: dict[str, list[Finding]] = {}
    config = await _config(state_home, environ, user_home, results)
    results[API_KEYS] = (api_key_findings(state_home, config, environ) if config is not None
                         else [skip(API_KEYS, "not checked: the config does not load (see config)")])
    docker = _engine()
    try:
        async with anyio.create_task_group() as group:
            async def run(name: str, seconds: float, check: Check) -> None:
                results[name] = await bounded(name, seconds, check)

            group.start_soon(run, STATE, STATE_SECONDS + 5, lambda: _thread(examine_state, state_home, STATE_SECONDS))
            identity, info = await _identity(docker, results, environ)
            reached = docker if identity is not None and isinstance(docker, Engine) else None
            group.start_soon(run, DISK, DISK_SECONDS, lambda: _disk(state_home, identity, info))
            group.start_soon(run, SSH, SSH_SECONDS, lambda: _ssh(
                reached, state_home, enabled=config is None or config.llm_docker_ssh_enabled))
            if reached is None:
                for name in (IMAGES, NETWORK, LEFTOVERS):
                    results[name] = [skip(name, "not checked: the engine is unreachable (see engine)")]
            else:
                engine = reached
                group.start_soon(run, LEFTOVERS, LEFTOVERS_SECONDS, lambda: leftover_findings(engine))
                if config is None:
                    for name in (IMAGES, NETWORK):
                        results[name] = [skip(name, "not checked: the config does not load (see config)")]
                else:
                    loaded = config
                    group.start_soon(run, IMAGES, IMAGES_SECONDS, lambda: image_findings(engine, loaded))
                    group.start_soon(run, NETWORK, NETWORK_SECONDS,
                                     lambda: network_findings(engine, loaded, state_home, environ))
    finally:
        if isinstance(docker, Engine):
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await docker.close()
    return _ordered(results)


def _ordered(results: dict[str, list[Finding]]) -> list[Finding]:
    return [finding for name in GROUPS for finding in results.get(name, [])]


async def _config(state_home: Path, environ: Mapping[str, str], user_home: Path,
                  results: dict[str, list[Finding]]) -> Config | None:
    loaded: list[LoadedConfig] = []

    async def check() -> list[Finding]:
        try:
            loaded.append(await _thread(load_config, state_home, environ, user_home))
        except ConfigError as error:
            return config_findings(state_home, None, error)
        return config_findings(state_home, loaded[0], None)

    results[CONFIG] = await bounded(CONFIG, CONFIG_SECONDS, check)
    return loaded[0].config if loaded else None


def _engine() -> Engine | EngineError:
    try:
        return Engine()
    except EngineError as error:  # nowhere to connect, or a DOCKER_HOST the client cannot use
        return error


async def _identity(docker: Engine | EngineError, results: dict[str, list[Finding]],
                    environ: Mapping[str, str]) -> tuple[EngineIdentity | None, dict[str, Any]]:
    """Who the engine is (`engine/kind.py`), and its `/info` (the root dir)."""
    if isinstance(docker, EngineError):
        results[ENGINE] = [doctor_engine.unreachable_finding(str(docker))]
        return None, {}
    endpoint = reach.resolve(environ)
    answer: list[tuple[EngineIdentity, dict[str, Any]]] = []
    with anyio.move_on_after(ENGINE_SECONDS):
        try:
            identity = await identify(docker)
            answer.append((identity, await docker.info()))
        except EngineError as error:
            results[ENGINE] = [doctor_engine.unreachable_finding(
                reach.unreachable_message(endpoint, docker.endpoint, error.__cause__ or error))]
            return None, {}
    if not answer:
        hung = TimeoutError(f"it accepted the connection but did not answer within {ENGINE_SECONDS:g} s")
        line = reach.unreachable_message(endpoint, docker.endpoint, hung)
        results[ENGINE] = [doctor_engine.unreachable_finding(line)]
        return None, {}
    results[ENGINE] = [doctor_engine.engine_finding(answer[0][0])]
    return answer[0]


async def _disk(state_home: Path, identity: EngineIdentity | None, info: dict[str, Any]) -> list[Finding]:
    found = [doctor_engine.home_space(state_home, await _thread(doctor_engine.free_space, state_home))]
    if identity is None:
        found.append(skip(DISK, "the engine's root dir: not checked, the engine is unreachable (see engine)"))
        return found
    root = doctor_engine.engine_root(identity, info)
    if root is None:
        found.append(doctor_engine.engine_space_unseen(identity))
    else:
        found.append(doctor_engine.engine_space(root, await _thread(doctor_engine.free_space, root)))
    return found


async def _ssh(docker: Engine | None, state_home: Path, *, enabled: bool) -> list[Finding]:
    if not enabled:
        return [ok(SSH, "SSH is off (LLM_DOCKER_SSH_ENABLED=false)")]
    keys, usable = await _thread(key_problems, state_home)
    if docker is None:
        return [*keys, skip(SSH, "running slots: not checked, the engine is unreachable (see engine)")]
    if not usable:
        return keys
    return [*keys, *await slot_findings(docker, state_home, timeout=SSH_PROBE_SECONDS)]


def run_doctor(state_home: Path, *, as_json: bool, strict: bool) -> int:
    """The command: every check, printed; the exit code of `doctor_report.exit_code`."""
    findings = anyio.run(examine, state_home, os.environ, Path.home(), backend="asyncio")
    if as_json:
        json.dump(doctor_report.json_rows(findings), sys.stdout, indent=2)
        print()
    else:
        print("\n".join(doctor_report.text_lines(findings, strict=strict)))
    return doctor_report.exit_code(findings, strict=strict)
