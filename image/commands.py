"""`llm-docker image build|base|status`: the admin side of the image.

Each command runs in one event loop (anyio on asyncio, as aiodocker needs) and turns
every failure into one line on stderr and a non-zero exit: 2 for bad settings, 1 for a
failed build, 125 when the engine is unreachable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiodocker

from engine.client import run_with_engine
from image.base import BaseImageError, build_local_base, host_debian_source
from image.build import BuildError
from image.certs import CertificateError, select_extra_certificates
from image.ensure import build_images, build_log_path, image_status, plan_builds, refresh_stamp
from image.gateway import GatewayImageError, build_gateway, plan_gateway
from image.plan import LABEL_BASE, BuildInputError
from image.progress import BuildProgress, format_size
from launch.config import Config
from launch.tools import Tool

EXIT_BUILD_FAILED = 1
EXIT_USAGE = 2


def tools_for(name: str) -> list[Tool]:
    return list(Tool) if name == "both" else [Tool.from_name(name)]


def _run(body: Callable[[aiodocker.Docker], Awaitable[int]]) -> int:
    async def guarded(docker: aiodocker.Docker) -> int:
        try:
            return await body(docker)
        except (CertificateError, BuildInputError) as error:
            print(f"llm-docker: {error}", file=sys.stderr)
            return EXIT_USAGE
        except (BuildError, BaseImageError) as error:
            print(f"llm-docker: {error}", file=sys.stderr)
            return EXIT_BUILD_FAILED

    return run_with_engine(guarded)


def build(config: Config, state_home: Path, *, tool: str, no_cache: bool, verbose: bool) -> int:
    async def body(docker: aiodocker.Docker) -> int:
        progress = BuildProgress(sys.stderr, build_log_path(state_home), verbose=verbose or config.debug)
        try:
            if tool != "gateway":
                plans = plan_builds(config, tools_for(tool), no_cache=no_cache, refresh=refresh_stamp(config))
                await build_images(docker, config, plans, progress)
            if tool in ("both", "gateway"):
                # the network gateway (launch/network.py) comes from the same base and CAs
                await build_gateway(docker, config, plan_gateway(select_extra_certificates(config.extra_ca_certs)),
                                    progress)
        except GatewayImageError as error:
            print(f"llm-docker: {error}", file=sys.stderr)
            return EXIT_BUILD_FAILED
        finally:
            progress.close()
        return 0

    return _run(body)


def base(config: Config, state_home: Path, *, verbose: bool) -> int:
    async def body(docker: aiodocker.Docker) -> int:
        progress = BuildProgress(sys.stderr, build_log_path(state_home), verbose=verbose or config.debug)
        try:
            tag = await build_local_base(docker, host_debian_source(), progress)
        finally:
            progress.close()
        print(f"use it with BASE_IMAGE={tag} (automatic when {config.base_image} cannot be pulled)",
              file=sys.stderr)
        return 0

    return _run(body)


def status(config: Config, *, as_json: bool) -> int:
    async def body(docker: aiodocker.Docker) -> int:
        plans = plan_builds(config, list(Tool), no_cache=False)
        rows = []
        for plan in plans:
            if config.llm_docker_image:
                rows.append({"tool": plan.tool.value, "tag": config.llm_docker_image, "present": None, "stale": [],
                             "note": "LLM_DOCKER_IMAGE is set: not built by llm-docker"})
                continue
            state = await image_status(docker, plan)
            rows.append({"tool": plan.tool.value, "tag": state.tag, "present": state.present,
                         "stale": list(state.stale_reasons), "size": state.size,
                         "base": state.labels.get(LABEL_BASE)})
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
        return 0

    return _run(body)
