"""`llm-docker image build|base|status`: the admin side of the image.

Each command runs in one event loop (anyio on asyncio, as aiodocker needs) and turns
every failure (an `LlmDockerError`) into one line on stderr and its exit code
(`launch/errors.py`): 2 for bad settings, 1 for a failed build, 125 for the engine.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from engine.client import Engine, run_with_engine
from image.base import build_local_base, host_debian_source, local_base_tag
from image.certs import select_extra_certificates
from image.ensure import build_images, build_log_path, image_status, plan_builds, refresh_stamp
from image.gateway import build_gateway, plan_gateway
from image.layers import part_sizes, shown_parts
from image.plan import LABEL_ARGS, LABEL_BASE
from image.progress import BuildProgress, format_size
from image.timings import BASE_BOOTSTRAP_STEP, BASE_IMPORT_STEP, expected_seconds
from launch.config import Config
from launch.errors import LlmDockerError
from launch.tools import Tool


def tools_for(name: str) -> list[Tool]:
    return list(Tool) if name == "both" else [Tool.from_name(name)]


def _run(body: Callable[[Engine], Awaitable[int]]) -> int:
    async def guarded(docker: Engine) -> int:
        try:
            return await body(docker)
        except LlmDockerError as error:  # bad settings (2), a failed build (1), the engine (125)
            print(f"llm-docker: {error}", file=sys.stderr)
            return error.exit_code

    return run_with_engine(guarded)


def build(config: Config, state_home: Path, *, tool: str, no_cache: bool, verbose: bool) -> int:
    async def body(docker: Engine) -> int:
        progress = BuildProgress(sys.stderr, build_log_path(state_home), verbose=verbose or config.debug)
        try:
            if tool != "gateway":
                plans = plan_builds(config, tools_for(tool), no_cache=no_cache, refresh=refresh_stamp(config))
                await build_images(docker, config, plans, progress)
            if tool in ("both", "gateway"):
                # the network gateway (launch/network.py) comes from the same base and CAs
                await build_gateway(docker, config, plan_gateway(select_extra_certificates(config.extra_ca_certs),
                                                                 config.own_gateway_image),
                                    progress)
        finally:
            progress.close()
        return 0

    return _run(body)


def base(config: Config, state_home: Path, *, verbose: bool) -> int:
    async def body(docker: Engine) -> int:
        progress = BuildProgress(sys.stderr, build_log_path(state_home), verbose=verbose or config.debug)
        source = host_debian_source()
        recorded = progress.recorded_durations()
        progress.plan([(key, expected_seconds(key, recorded)) for key in (BASE_BOOTSTRAP_STEP, BASE_IMPORT_STEP)])
        try:
            tag = await build_local_base(docker, source, progress,
                                         tag=local_base_tag(config.base_image, source) or source.tag)
        finally:
            progress.close()
        if local_base_tag(config.base_image, source) is not None:
            print(f"BASE_IMAGE={config.base_image} builds the images from it", file=sys.stderr)
        else:
            print(f"use it with BASE_IMAGE={tag} (automatic when {config.base_image} cannot be pulled)",
                  file=sys.stderr)
        return 0

    return _run(body)


def status(config: Config, *, as_json: bool) -> int:
    async def body(docker: Engine) -> int:
        plans = plan_builds(config, list(Tool), no_cache=False)
        rows: list[dict[str, Any]] = []
        for plan in plans:
            if config.llm_docker_image:
                rows.append({"tool": plan.tool.value, "tag": config.llm_docker_image, "present": None, "stale": [],
                             "note": "LLM_DOCKER_IMAGE is set: not built by llm-docker"})
                continue
            state = await image_status(docker, plan)
            parts = await _part_sizes(docker, state.tag, state.labels) if state.present else {}
            rows.append({"tool": plan.tool.value, "tag": state.tag, "present": state.present,
                         "stale": list(state.stale_reasons), "size": state.size,
                         "base": state.labels.get(LABEL_BASE), "parts": parts})
        if as_json:
            json.dump({"images": rows, "extra_ca_certs": plans[0].certificates.describe()}, sys.stdout, indent=2)
            print()
            return 0
        for row in rows:
            if row["present"] is None:
                state_text = row["note"]
            elif not row["present"]:
                state_text = "not built (the first launch builds it)"
            elif row["stale"]:
                state_text = "stale: " + "; ".join(row["stale"])
            else:
                state_text = f"up to date ({format_size(row['size'])}, base {row['base']})"
            print(f"{row['tool']:<9} {row['tag']:<28} {state_text}")
            for part, size in row.get("parts", {}).items():
                print(f"{'':<9}   {part:<18} {format_size(size):>9}")
        return 0

    return _run(body)


async def _part_sizes(docker: Engine, tag: str, labels: dict[str, str]) -> dict[str, int]:
    """Bytes per part of the image (image.layers): the base, the essentials, each group
    that is switched on, the agent, llm-docker's files."""
    try:
        built_args = json.loads(labels.get(LABEL_ARGS, "{}"))
    except json.JSONDecodeError:
        built_args = {}
    args = {str(key): str(value) for key, value in built_args.items()} if isinstance(built_args, dict) else {}
    return shown_parts(part_sizes(await docker.images.history(tag)), args)
