"""The small test images, built locally through the Engine API (there is no registry).

`llm-docker-test-busybox:latest` is `FROM scratch` + Debian's `busybox-static`, with the
fake agent of `tests/fake_agent.c` (compiled statically against Debian's libsqlite3) as
`claude` and `opencode`: it writes Claude-style session files and an OpenCode-style
SQLite database, so slot logic is tested against real files.

Run `python -m testbed.images` to build them ahead of the tests (CI does).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import aiodocker
import anyio

BUSYBOX_IMAGE = "llm-docker-test-busybox:latest"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))

_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
COPY fake-agent /usr/local/bin/claude
COPY fake-agent /usr/local/bin/opencode
RUN mkdir -p /root /tmp && chmod 1777 /tmp && chmod 755 /root
ENV PATH=/usr/local/bin:/bin
"""

FAKE_AGENT_SOURCE = Path(__file__).with_name("fake_agent.c")


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file():
            return candidate
    found = shutil.which("busybox")
    if found:
        return Path(found)
    raise RuntimeError("busybox not found — install Debian's busybox-static")


def compile_fake_agent() -> bytes:
    """Build the fake agent as a static binary (needs gcc and libsqlite3-dev)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "fake-agent"
        subprocess.run(["gcc", "-O2", "-static", "-o", str(output), str(FAKE_AGENT_SOURCE),
                        "-lsqlite3", "-lpthread", "-ldl", "-lm"], check=True, capture_output=True)
        return output.read_bytes()


def _context() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            archive.addfile(info, io.BytesIO(data))

        add("Dockerfile", _DOCKERFILE.encode())
        add("busybox", find_busybox().read_bytes(), 0o755)
        add("fake-agent", compile_fake_agent(), 0o755)
    buffer.seek(0)
    return buffer


SOURCE_LABEL = "io.llm-docker.test-source"


def source_digest() -> str:
    """What the test image is made of; a change (say, to fake_agent.c) rebuilds it."""
    return hashlib.sha256(_DOCKERFILE.encode() + FAKE_AGENT_SOURCE.read_bytes()).hexdigest()


async def ensure_test_images(docker: aiodocker.Docker, *, rebuild: bool = False) -> None:
    """Build the test images unless they exist and match their sources."""
    if not rebuild:
        try:
            info = await docker.images.inspect(BUSYBOX_IMAGE)
            if ((info.get("Config") or {}).get("Labels") or {}).get(SOURCE_LABEL) == source_digest():
                return
        except aiodocker.DockerError:
            pass
    await docker.images.build(fileobj=_context(), encoding="identity", tag=BUSYBOX_IMAGE, rm=True, forcerm=True,
                              labels={SOURCE_LABEL: source_digest()})
    await docker.images.inspect(BUSYBOX_IMAGE)


async def _main() -> None:
    async with aiodocker.Docker() as docker:
        await ensure_test_images(docker, rebuild=True)
    print(f"built {BUSYBOX_IMAGE}")


if __name__ == "__main__":
    anyio.run(_main)
