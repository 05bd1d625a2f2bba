"""The guard that keeps the tests away from a user's images and slots (testbed/isolation.py).

The real check runs at the end of every session with Docker tests (tests/conftest.py,
`pytest_sessionfinish`): a changed image ID of `llm-docker-claude:latest` /
`-opencode:latest` / `-gateway:latest`, or a user's slot container removed, stopped or
restarted, fails the session. These tests show that the guard is on and can fail.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from launch.spec import LABEL_PREFIX
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import DECOY_LABEL, PRODUCT_TAGS, SLOT_LABEL, TEST_LABEL, Guard, image_id, slot_states

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]


def test_the_guard_watches_the_product_images_and_decoy_slots(isolation_guard: Guard) -> None:
    assert set(isolation_guard.images) == set(PRODUCT_TAGS) == {
        "llm-docker-claude:latest", "llm-docker-opencode:latest", "llm-docker-gateway:latest"}
    assert all(isolation_guard.images.values()), "each product tag exists (the user's, or a decoy)"
    assert len(isolation_guard.decoy_slots) == 2
    running = slot_states()
    for container in isolation_guard.decoy_slots:
        assert running[container].running and container in isolation_guard.slots
    assert isolation_guard.problems() == []


def test_the_guard_reports_a_removed_image_and_a_stopped_slot() -> None:
    tag = f"llm-docker-test-guard-probe:{os.getpid()}"
    subprocess.run(["docker", "tag", BUSYBOX_IMAGE, tag], check=True, capture_output=True)
    slot = subprocess.run(["docker", "run", "-d", "--label", f"{SLOT_LABEL}=1", "--label", f"{TEST_LABEL}=probe",
                           "--label", f"{LABEL_PREFIX}project-root=/home/probe/app", "--label", f"{DECOY_LABEL}=probe",
                           BUSYBOX_IMAGE, "sleep", "600"], check=True, capture_output=True, text=True).stdout.strip()
    try:
        guard = Guard(BUSYBOX_IMAGE)
        guard.images = {tag: image_id(tag)}
        guard.slots = {slot: slot_states()[slot]}
        assert guard.problems() == []
        subprocess.run(["docker", "image", "rm", "--no-prune", tag], check=True, capture_output=True)
        subprocess.run(["docker", "stop", "-t", "0", slot], check=True, capture_output=True)
        problems = guard.problems()
        assert len(problems) == 2, problems
        assert problems[0].startswith(f"the image {tag} changed during the tests") and "→ absent" in problems[0]
        assert problems[1].startswith(f"the slot container {slot[:12]} (/home/probe/app) was stopped")
    finally:
        subprocess.run(["docker", "rm", "-f", slot], capture_output=True)
        subprocess.run(["docker", "image", "rm", "--no-prune", tag], capture_output=True)
