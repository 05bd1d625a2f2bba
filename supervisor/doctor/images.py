"""`llm-docker doctor`: are the agent images and the gateway image built, and do they match
the config — the same judgement as `llm-docker image status` and a launch (`image/`).

* An agent image not built yet only warns: the first launch builds it. One built from other
  inputs (settings, llm-docker's image files, the CA certificates) fails: a launch runs it
  as it is, so what the config asks for is not what runs — `cld --build` rebuilds the
  changed layers.
* llm-docker's own gateway image, missing or outdated, only warns: the next launch that
  needs it builds it before any agent starts. A custom `LLM_DOCKER_IMAGE` / `GATEWAY_IMAGE`
  must exist (a launch refuses without it); llm-docker cannot judge its contents.
"""

from __future__ import annotations

import dataclasses
import enum

import anyio

from engine.client import Engine
from image.certs import select_extra_certificates
from image.ensure import image_status, plan_builds
from image.gateway import LABEL_GATEWAY_INPUTS, gateway_labels, plan_gateway
from launch.config import Config
from launch.errors import LlmDockerError
from launch.tools import Tool
from supervisor.doctor.report import Finding, fail, ok, warn

IMAGES = "images"


class GatewayImage(enum.Enum):
    CURRENT = "current"
    MISSING = "missing"
    OUTDATED = "outdated"
    CUSTOM = "custom"


@dataclasses.dataclass(frozen=True)
class GatewayState:
    tag: str
    state: GatewayImage


async def gateway_state(docker: Engine, config: Config) -> GatewayState:
    """Is the gateway a launch would run there, and (llm-docker's own) current?"""
    tag = config.gateway_image_tag
    labels = await gateway_labels(docker, tag)
    if labels is None:
        return GatewayState(tag, GatewayImage.MISSING)
    if tag != config.own_gateway_image:
        return GatewayState(tag, GatewayImage.CUSTOM)
    certificates = await anyio.to_thread.run_sync(select_extra_certificates, config.extra_ca_certs)
    plan = await anyio.to_thread.run_sync(plan_gateway, certificates, tag)
    current = labels.get(LABEL_GATEWAY_INPUTS) == plan.digest
    return GatewayState(tag, GatewayImage.CURRENT if current else GatewayImage.OUTDATED)


async def image_findings(docker: Engine, config: Config) -> list[Finding]:
    found = await _agent_images(docker, config)
    if config.network_mode == "host":
        found.append(ok(IMAGES, "gateway: not needed (NETWORK_MODE=host)"))
        return found
    gateway = await gateway_state(docker, config)
    if gateway.state is GatewayImage.MISSING and gateway.tag != config.own_gateway_image:
        found.append(fail(IMAGES, f"gateway: {gateway.tag} (GATEWAY_IMAGE) not found — no agent starts without it",
                          "build or load it, or unset GATEWAY_IMAGE to use llm-docker's own"))
    elif gateway.state is GatewayImage.MISSING:
        found.append(warn(IMAGES, f"gateway: {gateway.tag} not built yet (the first launch builds it)",
                          "`llm-docker image build --tool gateway` builds it now"))
    elif gateway.state is GatewayImage.OUTDATED:
        found.append(warn(IMAGES, f"gateway: {gateway.tag} is outdated (the next launch rebuilds it first)",
                          "`llm-docker image build --tool gateway` rebuilds it now"))
    else:
        custom = " (GATEWAY_IMAGE: its contents are not judged)" if gateway.state is GatewayImage.CUSTOM else ""
        found.append(ok(IMAGES, f"gateway: {gateway.tag} present{'' if custom else ', up to date'}{custom}"))
    return found


async def _agent_images(docker: Engine, config: Config) -> list[Finding]:
    if config.llm_docker_image:
        if await docker.images.find(config.llm_docker_image) is None:
            return [fail(IMAGES, f"{config.llm_docker_image} (LLM_DOCKER_IMAGE) not found — every launch refuses",
                         "build or load it, or unset LLM_DOCKER_IMAGE to use llm-docker's own images")]
        return [ok(IMAGES, f"{config.llm_docker_image} (LLM_DOCKER_IMAGE) present; not built by llm-docker, "
                           "so its contents are not judged")]
    try:
        plans = await anyio.to_thread.run_sync(lambda: plan_builds(config, list(Tool), no_cache=False))
    except LlmDockerError as error:  # a setting the build cannot use (EXTRA_CA_CERTS, a version)
        return [fail(IMAGES, f"the image build cannot be planned: {error}", "correct that setting in llm-docker.conf")]
    found = []
    for plan in plans:
        status = await image_status(docker, plan)
        if not status.present:
            found.append(warn(IMAGES, f"{plan.tool.value}: {plan.tag} not built yet (the first `{plan.tool.launcher}` "
                                      "builds it, a few minutes)",
                              f"`llm-docker image build --tool {plan.tool.value}` builds it now"))
        elif status.stale_reasons:
            found.append(fail(IMAGES, f"{plan.tool.value}: {plan.tag} does not match the config "
                                      f"({'; '.join(status.stale_reasons)}): launches run it as it is",
                              f"`{plan.tool.launcher} --build` (or `llm-docker image build --tool {plan.tool.value}`) "
                              "rebuilds the changed layers"))
        else:
            found.append(ok(IMAGES, f"{plan.tool.value}: {plan.tag} up to date"))
    return found
