"""The tests never touch a user's images or slots: their own image names, and a guard.

* **Their own names.** Every launcher the tests start (`testbed.processes.launcher_env`,
  `testbed.unprivileged.User.env`) and every image they build runs with
  `LLM_DOCKER_IMAGE_PREFIX=llm-docker-test` (`TEST_ENV`): the agent images are
  `llm-docker-test-claude:latest` / `-opencode:latest`, the gateway
  `llm-docker-test-gateway:latest`. State folders are throw-away homes; containers the
  tests make by hand carry `TEST_LABEL`.
* **The guard** (`Guard`, run by tests/conftest.py around a session that collected Docker
  tests). At the start it records the image ID of the product's own tags
  (`llm-docker-claude:latest`, `-opencode:latest`, `-gateway:latest`) and of every
  running slot container (label `io.llm-docker.launcher-pid`) that is not a test's. Where
  a tag is absent it plants a decoy (a tiny image from the busybox test image, labelled
  `DECOY_LABEL`, tagged with the product's name), and it always starts decoy "user slots"
  of its own: running containers with a real slot's labels whose launcher (a `sleep` this
  session started) is alive — what `llm-docker gc`, recovery or a careless `docker rm` by
  label would find. At the end any change (an image ID, a slot gone, stopped or
  restarted) fails the session. It removes only what it planted: its slot decoys by ID;
  the decoy images when no other test session (on this shared engine) still runs.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from launch.config import DEFAULT_IMAGE_PREFIX, default_image_tag, gateway_image_tag
from launch.liveness import identity_labels, process_start_time, read_here
from launch.spec import LABEL_PREFIX
from launch.tools import Tool

#: The image name prefix of everything the tests build (never the product's `llm-docker`).
TEST_IMAGE_PREFIX = "llm-docker-test"
#: The environment that makes a launcher under test use the test names.
#: Gateways end with their launch (GATEWAY_KEEP_SECONDS=0) unless a test keeps them itself:
#: a suite's launches must not leave gateways waiting behind them.
TEST_ENV = {"LLM_DOCKER_IMAGE_PREFIX": TEST_IMAGE_PREFIX, "GATEWAY_KEEP_SECONDS": "0"}
#: A label on every container the tests create by hand (not through the product).
TEST_LABEL = "io.llm-docker-test.owner"
#: Marks a decoy: an image or container the guard planted (value: what planted it).
DECOY_LABEL = "io.llm-docker-test.decoy"
DECOY_SOURCE = "llm-docker-test-decoy:latest"
#: The product's own tags on this machine: what a user has and a test must never change.
PRODUCT_TAGS = (*(default_image_tag(tool, DEFAULT_IMAGE_PREFIX) for tool in Tool), gateway_image_tag())
SLOT_LABEL = LABEL_PREFIX + "launcher-pid"

_STATE = Path("/var/tmp/llm-docker-test-guard")


def suite_image_tag(tool: Tool) -> str:
    return default_image_tag(tool, TEST_IMAGE_PREFIX)


TEST_GATEWAY_IMAGE = gateway_image_tag(TEST_IMAGE_PREFIX)


def docker(*args: str, check: bool = True, stdin: str | None = None) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, input=stdin, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip() if result.returncode == 0 else ""


def image_id(tag: str) -> str:
    """The image ID behind `tag` ("" when absent)."""
    return docker("image", "inspect", "--format", "{{.Id}}", tag, check=False)


def image_labels(reference: str) -> dict[str, str]:
    text = docker("image", "inspect", "--format", "{{json .Config.Labels}}", reference, check=False)
    return dict(json.loads(text) or {}) if text else {}


@dataclasses.dataclass(frozen=True)
class SlotState:
    id: str
    running: bool
    started_at: str
    project_root: str
    decoy: str  # the token of the guard that planted it ("" for a real slot)


def slot_states() -> dict[str, SlotState]:
    """Every slot container on the engine (by the product's label), with its state."""
    ids = docker("ps", "-aq", "--no-trunc", "--filter", f"label={SLOT_LABEL}", check=False).split()
    if not ids:
        return {}
    text = docker("inspect", "--format", "{{json .}}", *ids, check=False)
    states = {}
    for line in text.splitlines():
        info = json.loads(line)
        labels = (info.get("Config") or {}).get("Labels") or {}
        states[info["Id"]] = SlotState(id=info["Id"], running=bool(info["State"]["Running"]),
                                       started_at=info["State"]["StartedAt"],
                                       project_root=labels.get(LABEL_PREFIX + "project-root", ""),
                                       decoy=labels.get(DECOY_LABEL, ""))
    return states


def _made_by_tests(state: SlotState) -> bool:
    """A slot of a test (this or a concurrent session): its project lives in a throw-away folder."""
    roots = (tempfile.gettempdir(), "/tmp", "/var/tmp/llm-docker-tests", "/var/tmp/pytest-of-")
    return any(state.project_root.startswith(root) for root in roots)


@contextmanager
def _locked() -> Iterator[None]:
    _STATE.mkdir(parents=True, exist_ok=True)
    with open(_STATE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _live_sessions() -> list[int]:
    alive = []
    for entry in (_STATE / "sessions").glob("*"):
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid and process_start_time(pid) == entry.read_text().strip():
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)  # a session that died without finishing
    return alive


class Guard:
    """Records the user's images and slots, plants decoys, and checks nothing changed."""

    def __init__(self, busybox_image: str) -> None:
        self.busybox_image = busybox_image
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # <pid of the session>-<random>
        self.images: dict[str, str] = {}
        self.slots: dict[str, SlotState] = {}
        self.decoy_slots: list[str] = []
        self.launcher: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with _locked():
            (_STATE / "sessions").mkdir(exist_ok=True)
            (_STATE / "sessions" / str(os.getpid())).write_text(process_start_time(os.getpid()) or "")
            self._sweep_orphans()
            for tag in PRODUCT_TAGS:
                if not image_id(tag):
                    self._plant_image(tag)
                self.images[tag] = image_id(tag)
            self._plant_slots()
            # a concurrent session's decoys come and go with it: only ours and the real ones are watched
            self.slots = {key: state for key, state in slot_states().items()
                          if not _made_by_tests(state) and state.decoy in ("", self.token)}

    @staticmethod
    def _sweep_orphans() -> None:
        """Decoy slots of a session that died before removing them (by their label: only ours)."""
        live = {str(pid) for pid in _live_sessions()}
        for line in docker("ps", "-a", "--filter", f"label={DECOY_LABEL}", "--format",
                           f'{{{{.ID}}}} {{{{.Label "{DECOY_LABEL}"}}}}', check=False).splitlines():
            container, _, token = line.partition(" ")
            if token.split("-")[0].isdigit() and token.split("-")[0] not in live:
                docker("rm", "-f", container, check=False)

    def _plant_image(self, tag: str) -> None:
        if DECOY_LABEL not in image_labels(DECOY_SOURCE):
            docker("build", "-q", "-t", DECOY_SOURCE, "--label", f"{DECOY_LABEL}=guard", "-",
                   stdin=f"FROM {self.busybox_image}\nCMD [\"false\"]\n")
        docker("tag", DECOY_SOURCE, tag)

    def _plant_slots(self) -> None:
        """Two running "user slots" (as the test uid and as root) whose launcher is alive."""
        from testbed.unprivileged import CAGE_UID  # (imports the rest of the rigs only when used)

        self.launcher = subprocess.Popen(["sleep", "infinity"], start_new_session=True)
        here = read_here()
        for uid in (CAGE_UID, os.getuid()):
            labels = {**{LABEL_PREFIX + key: value
                         for key, value in identity_labels(dataclasses.replace(here, uid=uid)).items()},
                      SLOT_LABEL: str(self.launcher.pid),
                      LABEL_PREFIX + "launcher-start": process_start_time(self.launcher.pid) or "",
                      LABEL_PREFIX + "tool": "claude", LABEL_PREFIX + "project": "user-project",
                      LABEL_PREFIX + "project-root": "/home/decoy-user/Projects/user-project",
                      LABEL_PREFIX + "slot": str(90 + len(self.decoy_slots)),
                      DECOY_LABEL: self.token}
            arguments = [argument for key, value in labels.items() for argument in ("--label", f"{key}={value}")]
            self.decoy_slots.append(docker("run", "-d", "--name", f"llm-docker-claude-user-project-decoy-{uid}-"
                                           f"{self.token}", *arguments, self.busybox_image, "sleep", "86400"))

    def problems(self) -> list[str]:
        """What a test changed that it must not have (empty: nothing)."""
        found = []
        for tag, was in self.images.items():
            now_id = image_id(tag)
            if now_id != was:
                found.append(f"the image {tag} changed during the tests: {was[:19] or 'absent'} → "
                             f"{now_id[:19] or 'absent'} (a test built, retagged or removed the product's image)")
        now = slot_states()
        for key, before in self.slots.items():
            after = now.get(key)
            if after is None:
                found.append(f"the slot container {key[:12]} ({before.project_root}) was removed by a test")
            elif after != before:
                found.append(f"the slot container {key[:12]} ({before.project_root}) was stopped or restarted "
                             f"by a test (running {before.running} → {after.running}, started {after.started_at})")
        return found

    def finish(self) -> list[str]:
        """Check, then remove what this session planted; returns the problems."""
        with _locked():
            try:
                return self.problems()
            finally:
                self._remove_decoys()

    def _remove_decoys(self) -> None:
        for container in self.decoy_slots:
            docker("rm", "-f", container, check=False)
        if self.launcher is not None:
            self.launcher.kill()
            self.launcher.wait()
        (_STATE / "sessions" / str(os.getpid())).unlink(missing_ok=True)
        if _live_sessions():
            return  # another test session still checks the decoy images
        decoy = image_id(DECOY_SOURCE)
        for tag in PRODUCT_TAGS:
            if decoy and image_id(tag) == decoy:  # only while it is still our decoy (never a user's image)
                docker("image", "rm", "--no-prune", tag, check=False)
        if decoy:
            docker("image", "rm", DECOY_SOURCE, check=False)
