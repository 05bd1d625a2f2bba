"""The gateway image (`llm-docker-gateway:latest`): plan it, build it, make sure a launch has it.

The gateway enforces a slot's network policy (`launch/network.py`), so it is built by
llm-docker itself, from `image/gateway/` and the same base as the agent images
(`image.base.resolve_base`: BASE_IMAGE, else the local debootstrapped Debian base — no
registry needed), trusting the same extra CA certificates (`image.certs`), with nothing but
Debian packages in it. Its input digest is a label, so a launch rebuilds it when
llm-docker's gateway files changed: an outdated wall is never used silently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from collections.abc import Callable

from engine.client import Engine
from engine.errors import EngineError
from image.base import resolve_base
from image.certs import ExtraCertificates
from image.packaged import package_root, walk_files
from image.progress import BuildProgress
from launch.config import Config
from launch.errors import ImageError
from launch.network import GATEWAY_IMAGE
from launch.spec import LABEL_PREFIX

LABEL_GATEWAY_INPUTS = LABEL_PREFIX + "gateway-inputs"
#: The agent image's install helpers the gateway reuses (CA trust, apt through one place).
SHARED_INSTALL = ("install/lib.sh", "install/apt-setup.sh", "install/ca-certificates.sh")


class GatewayImageError(ImageError):
    """The gateway image is missing and cannot be built, or is not usable; one line (exit 1)."""


@dataclasses.dataclass(frozen=True)
class GatewayPlan:
    tag: str
    files: tuple[tuple[str, bytes, int], ...]
    digest: str

    def context_tar(self) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            folders = {"ca"} | {path.rsplit("/", 1)[0] for path, _, _ in self.files if "/" in path}
            expanded = {"/".join(f.split("/")[: i + 1]) for f in folders for i in range(f.count("/") + 1)}
            for folder in sorted(expanded):
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            for path, content, mode in self.files:
                info = tarfile.TarInfo(path)
                info.size = len(content)
                info.mode = mode
                archive.addfile(info, io.BytesIO(content))
        return buffer.getvalue()


def plan_gateway(certificates: ExtraCertificates, tag: str = GATEWAY_IMAGE) -> GatewayPlan:
    """The build context (pure but for reading the packaged files) and its digest."""
    root = package_root()
    files = [(path, content, 0o755 if "/sbin/" in path else 0o644)
             for path, content in walk_files(root.joinpath("gateway"))]
    for path in SHARED_INSTALL:
        files.append((path, root.joinpath("files").joinpath(path).read_bytes(), 0o755))
    files += [(f"ca/{name}", content, 0o644) for name, content in certificates.files]
    hasher = hashlib.sha256()
    for path, content, mode in files:
        hasher.update(f"{path}:{mode:o}:{len(content)}\0".encode())
        hasher.update(content)
    return GatewayPlan(tag=tag, files=tuple(files), digest=hasher.hexdigest())


async def gateway_labels(docker: Engine, tag: str) -> dict[str, str] | None:
    info = await docker.images.find(tag)
    if info is None:
        return None
    return dict((info.get("Config") or {}).get("Labels") or {})


async def build_gateway(docker: Engine, config: Config, plan: GatewayPlan, progress: BuildProgress) -> str:
    base = await resolve_base(docker, config.base_image, progress)
    progress.phase(f"building {plan.tag} FROM {base}")
    async with progress.ticking():
        try:
            async for event in docker.images.build(
                    context=io.BytesIO(plan.context_tar()), tag=plan.tag, buildargs={"BASE_IMAGE": base},
                    labels={LABEL_GATEWAY_INPUTS: plan.digest, LABEL_PREFIX + "image-base": base}):
                if event.get("stream"):
                    progress.output(event["stream"].rstrip("\n"))
                if event.get("error"):
                    raise GatewayImageError(f"building {plan.tag} failed: {str(event['error']).strip()} "
                                            f"(full log: {progress.log_path})")
        except EngineError as error:
            raise GatewayImageError(f"building {plan.tag} failed: {error} (full log: {progress.log_path})") from None
    progress.note(f"[green]✓[/green] built {plan.tag}")
    return plan.tag


async def ensure_gateway_image(docker: Engine, config: Config, certificates: ExtraCertificates, *,
                               image: str, notice: Callable[[str], None],
                               progress: Callable[[], BuildProgress]) -> str:
    """The gateway image a launch uses: a custom GATEWAY_IMAGE must exist as it is;
    llm-docker's own is built when missing or when its inputs changed. Raises
    `GatewayImageError` (the launch then refuses to start any agent)."""
    if image != config.own_gateway_image:
        if await gateway_labels(docker, image) is None:
            raise GatewayImageError(f"gateway image {image} (GATEWAY_IMAGE) not found — no agent runs without "
                                    "its network policy; unset GATEWAY_IMAGE to use llm-docker's own")
        return image
    plan = plan_gateway(certificates, config.own_gateway_image)
    labels = await gateway_labels(docker, plan.tag)
    if labels is not None and labels.get(LABEL_GATEWAY_INPUTS) == plan.digest:
        return plan.tag
    notice(f"{'building' if labels is None else 'updating'} the network gateway image {plan.tag} "
           "(once; it enforces the network policy)")
    shown = progress()
    try:
        return await build_gateway(docker, config, plan, shown)
    except Exception as error:  # any failure means: no verified gateway, no agent
        if isinstance(error, GatewayImageError):
            raise
        raise GatewayImageError(f"the network gateway image {plan.tag} cannot be built: {error}") from None
    finally:
        shown.close()
