"""Plan an image build: tag, build arguments, build context and the input digest.

Pure: given the effective `Config`, the tool and the extra certificates, the same plan
comes out every time. The digest of the build inputs is recorded as an image label, so
a launch can tell — without building — that the image no longer matches the config
(an `INSTALL_*` flag flipped, a version pinned, llm-docker upgraded) and say what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile

from image.certs import ExtraCertificates
from image.dockerfile import render
from image.groups import GROUPS
from image.packaged import package_root, walk_files
from launch import __version__
from launch.config import Config, default_image_tag
from launch.errors import ConfigError
from launch.spec import LABEL_PREFIX
from launch.tools import Tool

LABEL_INPUTS = LABEL_PREFIX + "image-inputs"
LABEL_ARGS = LABEL_PREFIX + "image-args"
LABEL_FILES = LABEL_PREFIX + "image-files"
LABEL_CA = LABEL_PREFIX + "image-ca"
LABEL_BASE = LABEL_PREFIX + "image-base"
LABEL_VERSION = LABEL_PREFIX + "version"
LABEL_TOOL = LABEL_PREFIX + "image-tool"
LABEL_REFRESH = LABEL_PREFIX + "agent-refresh"

_NPM_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.^~<>=*|+-]*$")


class BuildInputError(ConfigError):
    """A build setting that cannot work; the message is one line for the user (exit 2)."""


@dataclasses.dataclass(frozen=True)
class ContextFile:
    path: str
    content: bytes
    mode: int


@dataclasses.dataclass(frozen=True)
class BuildPlan:
    """Everything one `docker build` of one tool image needs."""

    tool: Tool
    tag: str
    build_args: dict[str, str]
    files: tuple[ContextFile, ...]
    certificates: ExtraCertificates
    digests: dict[str, str]
    no_cache: bool = False
    #: `AGENT_REFRESH` (UPDATE_ON_START's day); not an input of the digest: a refresh is not a change.
    refresh: str = ""

    @property
    def digest(self) -> str:
        return self.digests["inputs"]

    def labels(self, base_used: str) -> dict[str, str]:
        return {
            LABEL_INPUTS: self.digest,
            LABEL_FILES: self.digests["files"],
            LABEL_CA: self.digests["ca"],
            LABEL_ARGS: json.dumps(self.build_args, sort_keys=True),
            LABEL_BASE: base_used,
            LABEL_TOOL: self.tool.value,
            LABEL_VERSION: __version__,
            LABEL_REFRESH: self.refresh,
        }

    def docker_build_args(self, base_used: str) -> dict[str, str]:
        return {**self.build_args, "BASE_IMAGE": base_used, "AGENT_REFRESH": self.refresh}

    def context_tar(self) -> bytes:
        """The build context as an uncompressed tar (owner root, mtime 0: reproducible)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            folders = {"ca"} | {f.path.rsplit("/", 1)[0] for f in self.files if "/" in f.path}
            for folder in sorted(_with_parents(folders)):
                info = tarfile.TarInfo(folder)
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            for item in self.files:
                info = tarfile.TarInfo(item.path)
                info.size = len(item.content)
                info.mode = item.mode
                info.mtime = 0
                archive.addfile(info, io.BytesIO(item.content))
        return buffer.getvalue()


def _with_parents(folders: set[str]) -> set[str]:
    result: set[str] = set()
    for folder in folders:
        parts = folder.split("/")
        result.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return result


def packaged_files() -> list[ContextFile]:
    """The image's files shipped in the `image` package (`image/files/`), minus the template."""
    executables = ("install/", "rootfs/usr/local/bin/", "rootfs/opt/llm-docker/entrypoint.d/",
                   "rootfs/opt/llm-docker/ssh/bin/")
    return [ContextFile(path, content, 0o755 if path.startswith(executables) else 0o644)
            for path, content in walk_files(package_root().joinpath("files")) if path != "Dockerfile.in"]


def build_arguments(config: Config, tool: Tool) -> dict[str, str]:
    for key, value in (("CLAUDE_CODE_VERSION", config.claude_code_version),
                       ("OPENCODE_VERSION", config.opencode_version)):
        if not _NPM_VERSION.match(value.strip()):
            raise BuildInputError(f"{key}: '{value}' is not an npm version or tag (e.g. latest, 2.1.0, ^2)")
    if not config.base_image.strip():
        raise BuildInputError("BASE_IMAGE is empty — set an image reference such as node:24")
    args = {
        "BASE_IMAGE": config.base_image.strip(),
        "TOOL": tool.value,
        "CLAUDE_CODE_VERSION": config.claude_code_version.strip(),
        "OPENCODE_VERSION": config.opencode_version.strip(),
    }
    args.update({group.key: "true" if group.enabled(config) else "false" for group in GROUPS})
    return args


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def plan_build(config: Config, tool: Tool, certificates: ExtraCertificates, *,
               no_cache: bool = False, refresh: str = "") -> BuildPlan:
    defaults = {group.key: group.enabled(Config()) for group in GROUPS}
    dockerfile = ContextFile("Dockerfile", render(defaults).encode(), 0o644)
    certificate_files = tuple(ContextFile(f"ca/{name}", content, 0o644)
                              for name, content in certificates.files)
    files = (dockerfile, *packaged_files(), *certificate_files)
    args = build_arguments(config, tool)
    files_digest = _digest(*(f"{f.path}:{f.mode:o}".encode() + b"\0" + f.content
                             for f in files if not f.path.startswith("ca/")))
    ca_digest = _digest(*(f.content for f in certificate_files))
    args_digest = _digest(json.dumps(args, sort_keys=True).encode())
    digests = {"files": files_digest, "ca": ca_digest, "args": args_digest,
               "inputs": _digest(files_digest.encode(), ca_digest.encode(), args_digest.encode())}
    return BuildPlan(tool=tool, tag=default_image_tag(tool, config.llm_docker_image_prefix), build_args=args,
                     files=files, certificates=certificates, digests=digests, no_cache=no_cache, refresh=refresh)


def staleness(labels: dict[str, str] | None, plan: BuildPlan) -> list[str]:
    """Why the image with `labels` does not match `plan` (empty: it matches)."""
    labels = labels or {}
    if labels.get(LABEL_INPUTS) == plan.digest:
        return []
    if LABEL_INPUTS not in labels:
        return ["it was not built by llm-docker's image build (no input label)"]
    reasons = []
    try:
        built_args = json.loads(labels.get(LABEL_ARGS, "{}"))
    except json.JSONDecodeError:
        built_args = {}
    for key, value in plan.build_args.items():
        if built_args.get(key) != value:
            reasons.append(f"{key} {built_args.get(key, '(unset)')} → {value}")
    if labels.get(LABEL_FILES) != plan.digests["files"]:
        built_by = labels.get(LABEL_VERSION, "?")
        upgrade = f" (built by llm-docker {built_by}, now {__version__})" if built_by != __version__ else ""
        reasons.append(f"llm-docker's image files changed{upgrade}")
    if labels.get(LABEL_CA) != plan.digests["ca"]:
        reasons.append("the extra CA certificates changed")
    return reasons or ["its build inputs changed"]
