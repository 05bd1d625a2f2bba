"""The base image: `BASE_IMAGE` when the engine has it or can pull it, else a local
Debian base made with `mmdebstrap` (or `debootstrap`) from the mirror the host's apt uses.

Air-gapped hosts (and this project's CI) reach Debian's mirror but no image registry.
`llm-docker image base` builds `llm-docker-base:<suite>` there (`BASE_IMAGE=local:<tag>`
names it differently): bootstrap into a temporary folder, then import it as an image
(`FROM scratch` + `ADD rootfs.tar`, through the Engine API's build endpoint, which is
`docker import` with labels). mmdebstrap is preferred: it downloads through apt (one
transaction, pipelined) and unpacks without fsync, about twice as fast as debootstrap.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import anyio

from engine.client import Engine
from engine.errors import EngineError
from image.progress import BuildProgress
from image.timings import BASE_BOOTSTRAP_STEP, BASE_IMPORT_STEP
from launch.errors import ImageError

DEFAULT_BASE_IMAGE = "node:24"
LOCAL_BASE_REPOSITORY = "llm-docker-base"
#: `BASE_IMAGE=local`: always the local Debian base, never a registry (offline machines, the tests);
#: `BASE_IMAGE=local:<tag>`: the same, under the image name `<tag>`.
LOCAL_BASE = "local"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
BASE_PACKAGES = ("ca-certificates",)
#: dpkg settings of the bootstrap (the image build's install/apt-setup.sh sets the same for
#: every later install): no fsync per file, no documentation or translations.
DPKG_OPTIONS = ("force-unsafe-io", "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
                "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
                "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias")


class BaseImageError(ImageError):
    """The base image can be neither found, pulled nor built; one line for the user (exit 1)."""


@dataclasses.dataclass(frozen=True)
class DebianSource:
    suite: str
    mirror: str
    security: str | None

    @property
    def tag(self) -> str:
        return f"{LOCAL_BASE_REPOSITORY}:{self.suite}"

    def sources_list(self) -> str:
        lines = [f"deb {self.mirror} {self.suite} main", f"deb {self.mirror} {self.suite}-updates main"]
        if self.security:
            lines.append(f"deb {self.security} {self.suite}-security main")
        return "\n".join(lines) + "\n"


def _os_release_value(text: str, key: str) -> str:
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip().strip('"')
    return ""


def _entries(sources: list[str]) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every apt source, one-line or deb822 format."""
    found: list[tuple[str, list[str]]] = []
    for text in sources:
        stanza: dict[str, str] = {}
        for raw in [*text.splitlines(), ""]:
            line = raw.split("#", 1)[0].strip()
            if line.startswith("deb "):
                words = [w for w in line.split()[1:] if not w.startswith("[")]
                words = [w for w in words if not w.endswith("]")]
                if len(words) >= 2:
                    found.append((words[0], [words[1]]))
            elif ":" in line and not line.startswith(("deb", "http")):
                key, _, value = line.partition(":")
                stanza[key.strip().lower()] = value.strip()
            elif not line and stanza:
                if "deb" in stanza.get("types", "deb").split():
                    for uri in stanza.get("uris", "").split():
                        found.append((uri, stanza.get("suites", "").split()))
                stanza = {}
    return found


def debian_source(os_release: str, sources: list[str]) -> DebianSource:
    """The suite and mirrors to debootstrap from, read from the host's apt (pure)."""
    suite = _os_release_value(os_release, "VERSION_CODENAME") if _os_release_value(os_release, "ID") == "debian" else ""
    suite = suite or DEFAULT_SUITE
    entries = _entries(sources)
    mirror = next((uri for uri, suites in entries if suite in suites), None)
    if mirror is None or not mirror.startswith(("http://", "https://")):
        mirror = DEFAULT_MIRROR
    security = next((uri for uri, suites in entries if f"{suite}-security" in suites), DEFAULT_SECURITY)
    return DebianSource(suite=suite, mirror=mirror.rstrip("/"), security=security.rstrip("/"))


def host_debian_source(root: Path = Path("/")) -> DebianSource:
    def read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    apt = root / "etc/apt"
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list")),
             *sorted((apt / "sources.list.d").glob("*.sources"))]
    return debian_source(read(root / "etc/os-release"), [read(path) for path in files])


def local_base_tag(configured: str, source: DebianSource) -> str | None:
    """The local base's tag when `BASE_IMAGE` asks for it (`local`, `local:<tag>`), else None."""
    if configured == LOCAL_BASE:
        return source.tag
    if configured.startswith(LOCAL_BASE + ":") and configured != LOCAL_BASE + ":":
        return configured.removeprefix(LOCAL_BASE + ":")
    return None


def makes_tarball(program: str) -> bool:
    """mmdebstrap writes the root file system as a tarball itself (no device nodes: the engine
    provides /dev); debootstrap fills a folder, which `_write_import_context` tars."""
    return Path(program).name == "mmdebstrap"


def bootstrap_command(program: str, source: DebianSource, target: Path) -> list[str]:
    """The command that bootstraps `source` into `target` (pure): mmdebstrap's (a tarball)
    when that is `program`, else debootstrap's (a folder; same variant and packages)."""
    if makes_tarball(program):
        return [program, "--mode=root", "--variant=minbase", "--format=tar", "--skip=output/dev",
                f"--include={','.join(BASE_PACKAGES)}", '--aptopt=Acquire::Languages "none"',
                '--aptopt=Acquire::Retries "3"', *(f"--dpkgopt={option}" for option in DPKG_OPTIONS),
                source.suite, str(target), *source.sources_list().splitlines()]
    return [program, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            source.suite, str(target), source.mirror]


def find_bootstrapper() -> str | None:
    """mmdebstrap if installed (faster), else debootstrap, else None."""
    for name in ("mmdebstrap", "debootstrap"):
        found = shutil.which(name) or next(
            (p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)
        if found:
            return found
    return None


async def local_base_missing(docker: Engine, configured: str) -> bool:
    """Whether resolving `configured` will bootstrap a local base (for the build's ETA): the
    local base is asked for or is the default's fallback, and the engine has neither."""
    tag = local_base_tag(configured, host_debian_source())
    if tag is not None:
        return not await image_exists(docker, tag)
    if configured != DEFAULT_BASE_IMAGE or await image_exists(docker, configured):
        return False
    return not await image_exists(docker, host_debian_source().tag)


async def image_exists(docker: Engine, reference: str) -> bool:
    return await docker.images.find(reference) is not None


async def try_pull(docker: Engine, reference: str) -> str | None:
    """Pull `reference`; None on success, else the engine's one-line reason."""
    try:
        async for event in docker.images.pull(reference):
            if isinstance(event, dict) and event.get("error"):
                return str(event["error"]).strip()
    except EngineError as error:
        return str(error).splitlines()[0]
    return None


async def resolve_base(docker: Engine, configured: str, progress: BuildProgress) -> str:
    """The image reference to build FROM, building the local Debian base when needed."""
    local_tag = local_base_tag(configured, host_debian_source())
    if local_tag is not None:
        if not await image_exists(docker, local_tag):
            await build_local_base(docker, host_debian_source(), progress, tag=local_tag)
        return local_tag
    if await image_exists(docker, configured):
        return configured
    progress.note(f"pulling base image {configured} …")
    reason = await try_pull(docker, configured)
    if reason is None:
        return configured
    if configured != DEFAULT_BASE_IMAGE:
        raise BaseImageError(f"cannot pull BASE_IMAGE {configured}: {reason} — load it into the engine, "
                             f"or unset BASE_IMAGE to use a local Debian base")
    source = host_debian_source()
    progress.note(f"[yellow]cannot pull {configured}[/yellow] ({reason}); using the local Debian base "
                  f"[bold]{source.tag}[/bold] instead (see `llm-docker image base`)")
    if not await image_exists(docker, source.tag):
        await build_local_base(docker, source, progress)
    return source.tag


async def build_local_base(docker: Engine, source: DebianSource, progress: BuildProgress, *,
                           tag: str | None = None) -> str:
    """Bootstrap `source` and import it as `tag` (default `source.tag`); returns the tag."""
    tag = tag or source.tag
    program = find_bootstrapper()
    if program is None:
        raise BaseImageError("building the local Debian base needs mmdebstrap or debootstrap: "
                             "sudo apt-get install mmdebstrap")
    if os.geteuid() != 0:
        raise BaseImageError("building the local Debian base needs root (mmdebstrap/debootstrap): "
                             "run `sudo llm-docker image base` once")
    name = Path(program).name
    progress.phase(f"base image {tag}: {name} {source.suite} from {source.mirror}")
    workdir = Path(tempfile.mkdtemp(prefix="llm-docker-base-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        rootfs = workdir / ("rootfs.tar" if makes_tarball(program) else "rootfs")
        command = bootstrap_command(program, source, rootfs)
        progress.step(f"{name} " + " ".join(command[1:]), key=BASE_BOOTSTRAP_STEP)
        async with await anyio.open_process(command, stdin=None, stderr=subprocess.STDOUT) as process:
            assert process.stdout is not None
            buffered = b""
            async for chunk in process.stdout:
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    progress.output(line.decode(errors="replace"))
            code = await process.wait()
        if code != 0:
            raise BaseImageError(f"{name} failed (exit {code}); the full log is {progress.log_path}")
        if rootfs.is_dir():  # debootstrap's; mmdebstrap wrote the sources and cleaned up itself
            (rootfs / "etc/apt/sources.list").write_text(source.sources_list())
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for path in (rootfs / leftover).glob("*"):
                    if path.is_file():
                        path.unlink()
        progress.step(f"import {tag}", key=BASE_IMPORT_STEP)
        context = workdir / "context.tar"
        await anyio.to_thread.run_sync(_write_import_context, rootfs, context, source)
        with context.open("rb") as handle:
            async for event in docker.images.build(context=handle, tag=tag,
                                                   labels={"io.llm-docker.base": source.suite}):
                if event.get("error"):
                    raise BaseImageError(f"importing the base failed: {event['error'].strip()}")
                if event.get("stream"):
                    progress.output(event["stream"])
    finally:
        await anyio.to_thread.run_sync(lambda: shutil.rmtree(workdir, ignore_errors=True))
    progress.finish_steps()
    progress.record_durations()
    progress.note(f"built base image [bold]{tag}[/bold] ({progress.elapsed()})")
    return tag


def _write_import_context(rootfs: Path, context: Path, source: DebianSource) -> None:
    dockerfile = (
        "FROM scratch\n"
        "ADD rootfs.tar /\n"
        "ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        'CMD ["bash"]\n'
    ).encode()

    with tarfile.open(context, "w", format=tarfile.PAX_FORMAT) as outer:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        outer.addfile(info, io.BytesIO(dockerfile))
        if rootfs.is_file():  # already a tarball (mmdebstrap)
            outer.add(rootfs, arcname="rootfs.tar")
            return
        inner_path = context.with_name("rootfs.tar")
        with tarfile.open(inner_path, "w", format=tarfile.PAX_FORMAT) as inner:
            for child in sorted(rootfs.iterdir()):
                inner.add(child, arcname=child.name, filter=_without_virtual_files)
        outer.add(inner_path, arcname="rootfs.tar")
        inner_path.unlink()


def _without_virtual_files(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """The engine provides /dev, /proc and /sys; device nodes have no place in an image."""
    if info.isdev():
        return None
    top = info.name.split("/", 1)
    if top[0] in ("dev", "proc", "sys") and len(top) > 1:
        return None
    return info
