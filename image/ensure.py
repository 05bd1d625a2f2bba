"""What a launch does about its image: use it, build it on first run, rebuild it on
`--build`/`--rebuild-force`, or say that it is stale.

A custom `LLM_DOCKER_IMAGE` is used as it is (it only has to exist): llm-docker did not
build it, so it cannot know its inputs.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from engine.client import Engine, require_image
from image.base import local_base_missing, resolve_base
from image.build import BuildResult, build_tool_image, planned_steps
from image.certs import select_extra_certificates
from image.groups import outside_notes
from image.plan import LABEL_REFRESH, BuildPlan, plan_build, staleness
from image.progress import BuildProgress
from image.timings import BASE_BOOTSTRAP_STEP, BASE_IMPORT_STEP, expected_seconds
from launch.config import Config
from launch.tools import Tool

BUILD_LOG = "logs/build.log"


@dataclasses.dataclass(frozen=True)
class ImageStatus:
    tag: str
    present: bool
    stale_reasons: tuple[str, ...]
    labels: dict[str, str]
    size: int


def build_log_path(state_home: Path) -> Path:
    return state_home / BUILD_LOG


async def image_status(docker: Engine, plan: BuildPlan) -> ImageStatus:
    info = await docker.images.find(plan.tag)
    if info is None:
        return ImageStatus(plan.tag, False, (), {}, 0)
    labels = (info.get("Config") or {}).get("Labels") or {}
    return ImageStatus(plan.tag, True, tuple(staleness(labels, plan)), labels, int(info.get("Size", 0)))


def refresh_stamp(config: Config, now: float | None = None) -> str:
    """UPDATE_ON_START's `AGENT_REFRESH` value: today's date, so the agent layer re-runs daily."""
    return time.strftime("%Y-%m-%d", time.localtime(now)) if config.update_on_start else ""


def plan_builds(config: Config, tools: list[Tool], *, no_cache: bool, refresh: str = "") -> list[BuildPlan]:
    """One plan per tool; the extra certificates are read once for all of them."""
    certificates = select_extra_certificates(config.extra_ca_certs)
    return [plan_build(config, tool, certificates, no_cache=no_cache, refresh=refresh) for tool in tools]


async def build_images(docker: Engine, config: Config, plans: list[BuildPlan],
                       progress: BuildProgress) -> list[BuildResult]:
    """Build each planned image (the second reuses the first one's shared layers)."""
    progress.note(f"trusting {plans[0].certificates.describe()}")
    for note in outside_notes(config):
        progress.note(f"[yellow]{note}[/yellow]")
    progress.plan(await expected_steps(docker, config, plans, progress.recorded_durations()))
    base = await resolve_base(docker, config.base_image, progress)
    return [await build_tool_image(docker, plan, base, progress) for plan in plans]


async def expected_steps(docker: Engine, config: Config, plans: list[BuildPlan],
                         recorded: dict[str, float]) -> list[tuple[str, float]]:
    """Every step this build will run, with its expected seconds, for the ETA: the local
    base's when it must be made, then each image's (a step an earlier image already ran
    comes from the cache, so it is counted once)."""
    steps: list[tuple[str, float]] = []
    if await local_base_missing(docker, config.base_image):
        steps += [(key, expected_seconds(key, recorded)) for key in (BASE_BOOTSTRAP_STEP, BASE_IMPORT_STEP)]
    seen: set[str] = set()
    for plan in plans:
        steps += [(key, seconds) for key, seconds in planned_steps(plan, recorded) if key not in seen]
        seen.update(key for key, _ in steps)
    return steps


async def ensure_image(docker: Engine, config: Config, tool: Tool, state_home: Path, *,
                       build: bool, no_cache: bool, notice: Callable[[str], None],
                       verbose: bool = False, stream: IO[str] | None = None) -> str:
    """The image this launch runs, built first when missing or asked for."""
    if config.llm_docker_image:
        if build or no_cache:
            notice(f"LLM_DOCKER_IMAGE={config.llm_docker_image} is set, so this launch runs that image and "
                   "--build/--rebuild-force build nothing — unset it to use llm-docker's image")
        await require_image(docker, config.llm_docker_image, tool)
        return config.llm_docker_image
    [plan] = plan_builds(config, [tool], no_cache=no_cache)
    status = await image_status(docker, plan)
    # Keep the image's refresh stamp unless UPDATE_ON_START asks for today's: a --build then
    # re-uses the agent layer instead of re-installing the agent.
    refresh = refresh_stamp(config) or status.labels.get(LABEL_REFRESH, "")
    due = config.update_on_start and status.labels.get(LABEL_REFRESH) != refresh
    if status.present and not (build or no_cache or due):
        if status.stale_reasons:
            notice(f"image {plan.tag} is stale: {'; '.join(status.stale_reasons)} — "
                   f"run `{tool.launcher} --build` to rebuild the changed layers")
        return plan.tag
    if not status.present:
        notice(f"image {plan.tag} not found — building it now (first run takes a few minutes; "
               f"log: {build_log_path(state_home)})")
    elif due and not (build or no_cache):
        notice(f"UPDATE_ON_START: refreshing the agent in {plan.tag} to its newest release (once a day)")
    progress = BuildProgress(stream or sys.stderr, build_log_path(state_home), verbose=verbose or config.debug)
    try:
        await build_images(docker, config, [dataclasses.replace(plan, refresh=refresh)], progress)
    finally:
        progress.close()
    return plan.tag
