"""A slot adopts its early gateway only while that gateway runs the image planned now.

`supervisor.launcher` starts every slot's gateway before the supervisor has made sure of the
gateway image; the container task then `take`s it. The gateway learns its own image right
after its start request (not before: the start is the slot's critical path), and the planned
image's id is asked once per launch for every slot. What must hold, on the real engine:

* nothing changed: every slot gets its early gateway (the same run, started once);
* the planned tag moved to another image after the early gateways were created: no slot
  adopts one — each early gateway is removed and a new one runs in its place.

The stand-in gateway is the busybox test image saying the gateway's verdict line and then
holding its stdin (the lease), so only the holders' own logic is under test.
"""

from __future__ import annotations

import subprocess
import time
import uuid

import anyio
import pytest

from engine.client import Engine
from launch.network import GatewaySpec, NetworkPolicy
from supervisor.gateway import VERIFIED_LINE, GatewayHolders, GatewayRun
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_LABEL

pytestmark = [pytest.mark.docker]

SLOTS = 3


def _spec(name: str, image: str) -> GatewaySpec:
    create = {"Image": image, "Entrypoint": ["/bin/sh", "-c", f"echo '{VERIFIED_LINE.decode()}'; exec cat"],
              "Cmd": None, "OpenStdin": True, "StdinOnce": True, "AttachStdin": True, "AttachStdout": True,
              "AttachStderr": True, "Labels": {TEST_LABEL: "gateway-take"},
              "HostConfig": {"AutoRemove": True, "NetworkMode": "none"}}
    return GatewaySpec(name=name, create=create, policy=NetworkPolicy(), probes=(), probe_user="65534:65534",
                       ports_folder=None)


def _docker(*argv: str) -> str:
    return subprocess.run(["docker", *argv], check=True, capture_output=True, text=True).stdout.strip()


def _remove(names: list[str]) -> None:
    """Remove the test's gateways and wait until the engine's own removals (AutoRemove)
    are done too, so the test's images are no longer in use (bounded: ~30 s)."""
    subprocess.run(["docker", "rm", "-f", *names], capture_output=True)
    for _ in range(150):
        left = subprocess.run(["docker", "ps", "-aq", *(f"--filter=name=^{name}$" for name in names)],
                              capture_output=True, text=True).stdout.split()
        if not left:
            return
        time.sleep(0.2)


async def _takes(tag: str, names: list[str], *, move_to: str | None) -> tuple[list[GatewayRun], list[GatewayRun]]:
    """Start the early gateways, optionally move `tag`, then take every slot's gateway;
    (early runs, taken runs), all verified, then released and ended."""
    docker = Engine()
    try:
        async with anyio.create_task_group() as group:
            holders = GatewayHolders(docker, group)
            early = [holders.start(_spec(name, tag)) for name in names]
            for run in early:
                await run.created.wait()
            if move_to is not None:
                await anyio.to_thread.run_sync(_docker, "tag", move_to, tag)
            found: dict[int, GatewayRun] = {}

            async def take(index: int) -> None:
                found[index] = run = await holders.take(_spec(names[index], tag))
                await run.verified()

            with anyio.fail_after(120):
                async with anyio.create_task_group() as takes:  # every slot at once, as the container task does
                    for index in range(len(names)):
                        takes.start_soon(take, index)
            taken = [found[index] for index in range(len(names))]
            for run in {*early, *taken}:
                run.release()
            with anyio.fail_after(60):
                for run in {*early, *taken}:
                    await run.ended.wait()
    finally:
        await docker.close()
    return early, taken


@pytest.fixture
def tag() -> object:
    reference = f"llm-docker-test-take:{uuid.uuid4().hex[:8]}"
    _docker("tag", BUSYBOX_IMAGE, reference)
    yield reference
    subprocess.run(["docker", "image", "rm", reference], capture_output=True)


def test_every_slot_adopts_its_unchanged_early_gateway(tag: str) -> None:
    names = [f"llm-docker-test-take-{uuid.uuid4().hex[:8]}" for _ in range(SLOTS)]
    try:
        early, taken = anyio.run(lambda: _takes(tag, names, move_to=None), backend="asyncio")
        assert taken == early  # the same runs: no second gateway was started
        assert all(run.image_id == _docker("image", "inspect", "--format", "{{.Id}}", BUSYBOX_IMAGE) for run in early)
    finally:
        _remove(names)


def test_an_early_gateway_of_a_moved_tag_is_replaced(tag: str) -> None:
    names = [f"llm-docker-test-take-{uuid.uuid4().hex[:8]}" for _ in range(SLOTS)]
    holder = f"llm-docker-test-take-commit-{uuid.uuid4().hex[:8]}"
    other = f"llm-docker-test-take:other-{uuid.uuid4().hex[:8]}"
    # another image: the busybox image with one more label, committed from a created container
    _docker("create", "--name", holder, "--label", f"{TEST_LABEL}=gateway-take", BUSYBOX_IMAGE, "true")
    try:
        _docker("commit", "--change", f"LABEL {TEST_LABEL}=gateway-take-other", holder, other)
        early, taken = anyio.run(lambda: _takes(tag, names, move_to=other), backend="asyncio")
        assert all(new is not old for new, old in zip(taken, early, strict=True))
        assert all(old.ended.is_set() for old in early)
        moved = _docker("image", "inspect", "--format", "{{.Id}}", other)
        assert all(run.image_id == moved for run in taken)
    finally:
        _remove([holder, *names])
        subprocess.run(["docker", "image", "rm", other], capture_output=True)
