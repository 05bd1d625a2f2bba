"""A rebuild removes the image it replaced only when nothing else names it (real engine).

Deleting by ID also drops the image's last tag: an image another install's prefix (or the
user) still tags must survive our rebuild. Found by the tests' isolation guard, when the
suite's `llm-docker-test-opencode` rebuild took the user's `llm-docker-opencode:latest` along.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engine.client import connect
from image.build import remove_if_unnamed
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import docker, image_id

pytestmark = [pytest.mark.anyio, pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiodocker needs it


def _build(tag: str, marker: str) -> str:
    """A tiny image of our own under `tag`; its ID."""
    docker("build", "-q", "-t", tag, "--label", f"io.llm-docker-test.replace={marker}", "-",
           stdin=f"FROM {BUSYBOX_IMAGE}\n")
    return image_id(tag)


def _exists(reference: str) -> bool:
    return image_id(reference) != ""


async def test_an_image_still_named_elsewhere_survives_and_an_unnamed_one_goes() -> None:
    ours = f"llm-docker-test-replace:{os.getpid()}"
    theirs = f"llm-docker-test-replace-theirs:{os.getpid()}"
    try:
        old = _build(ours, "old")
        subprocess.run(["docker", "tag", ours, theirs], check=True)
        assert _build(ours, "new") != old  # the rebuild moved our tag; `theirs` still names the old image
        async with await connect() as docker:
            assert await remove_if_unnamed(docker, old) is False
            assert _exists(theirs) and _exists(old)
            replaced = _build(ours, "newer")  # replaces "new", which nothing names any more
            new = [line for line in subprocess.run(
                ["docker", "image", "ls", "-q", "--no-trunc", "--filter", "label=io.llm-docker-test.replace=new"],
                text=True, check=True, capture_output=True).stdout.split() if line]
            assert len(new) == 1 and new[0] not in (old, replaced)
            assert await remove_if_unnamed(docker, new[0]) is True  # dangling: ours to clean up
            assert not _exists(new[0]) and _exists(theirs)
    finally:
        subprocess.run(["docker", "image", "rm", ours, theirs], capture_output=True)


async def test_base_image_local_never_asks_a_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`BASE_IMAGE=local` resolves to the local Debian base without a pull attempt (the
    tests use it: their traffic stays on this machine)."""
    import io

    from image import base
    from image.progress import BuildProgress

    async def no_pull(docker: object, reference: str) -> str | None:
        raise AssertionError(f"a registry was asked for {reference}")

    monkeypatch.setattr(base, "try_pull", no_pull)
    async with await connect() as docker:
        resolved = await base.resolve_base(docker, base.LOCAL_BASE,
                                           BuildProgress(io.StringIO(), tmp_path / "build.log", verbose=False))
    assert resolved == base.host_debian_source().tag and _exists(resolved)


async def test_base_image_local_with_a_tag_uses_that_tag_and_never_a_registry(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`BASE_IMAGE=local:<tag>`: the local base under its own name (how a second install, or
    a measurement, keeps its base apart from `llm-docker-base:<suite>`); when the engine has
    it, nothing is built or pulled."""
    import io
    import uuid

    from image import base
    from image.progress import BuildProgress

    async def no_pull(docker: object, reference: str) -> str | None:
        raise AssertionError(f"a registry was asked for {reference}")

    monkeypatch.setattr(base, "try_pull", no_pull)
    tag = f"llm-docker-test-localbase:{uuid.uuid4().hex[:12]}"
    _build(tag, "local-base")
    try:
        async with await connect() as engine:
            assert not await base.local_base_missing(engine, f"local:{tag}")
            assert await base.local_base_missing(engine, f"local:{tag}-absent")
            resolved = await base.resolve_base(engine, f"local:{tag}",
                                               BuildProgress(io.StringIO(), tmp_path / "build.log", verbose=False))
        assert resolved == tag
    finally:
        docker("rmi", tag)
