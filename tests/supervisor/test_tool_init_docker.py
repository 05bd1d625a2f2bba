"""Parallel OpenCode slots on a fresh state never race OpenCode's own initialisation.

Every slot of a project mounts the same `opencode/.local/share/opencode`, so two slots
started together on a fresh state used to run OpenCode's database migrations on the same new
`opencode.db` at once; about one run in four, one of them died (`Failed query: CREATE TABLE
workspace …`) and its slot kept no session. `supervisor.tool_init` now initialises the
database once, under a host-side lock, before any slot's container starts.

The race: the real OpenCode (the test image), the stub model on loopback, the launcher as the
unprivileged test user — as a user runs it: ROUNDS rounds, each on a FRESH state folder, with
`ocd --slot N -- run …` for every slot started at the same moment; every launch must exit 0
and every slot must have its own session saved.

The bookkeeping, with the busybox test image (its fake `opencode` exits 0 at once): one
init container at a project's first launch, none at the next, again for another image; the
engine's own event log says which containers a launch created.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from launch.identity import project_state_home
from launch.tools import Tool
from supervisor.tool_init import marker_path
from testbed.agent_images import configure_agent_user
from testbed.images import BUSYBOX_IMAGE
from testbed.processes import command, launcher_env, slot_session
from testbed.stub_model import ANSWER_PREFIX
from testbed.unprivileged import User, sweep_dead_homes

pytestmark = [pytest.mark.docker]

ROUNDS = 20
SLOTS = (1, 2)
#: A loaded machine may need a while for the image's first start; each launch is bounded.
LAUNCH_TIMEOUT = 300


# `agent_images` (the real images, built once) and `model` (the stub model's URL): tests/conftest.py


def parallel_round(model: str, number: int) -> list[str]:
    """One round on a fresh state: every slot launched together. What went wrong, if anything."""
    user = User()
    try:
        # no internet for the cage (the stub's port is granted); SSH is not what this is about
        configure_agent_user(user, model, "INTERNET_ACCESS=false\nLLM_DOCKER_SSH_ENABLED=false\n")
        project = user.project("app")
        launches = {slot: user.popen("ocd", "--slot", str(slot), "--", "run", f"round {number} slot {slot}",
                                     cwd=project, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
                    for slot in SLOTS}  # started back to back: the same moment, as far as OpenCode can tell
        problems: list[str] = []
        for slot, launch in launches.items():
            try:
                out, err = launch.communicate(timeout=LAUNCH_TIMEOUT)
            except subprocess.TimeoutExpired:
                launch.terminate()
                out, err = launch.communicate(timeout=60)
            stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
            # OpenCode prints the stub's answer with the prompt quoted: STUB-ANSWER: "round 3 slot 1"
            if launch.returncode != 0 or ANSWER_PREFIX not in stdout or f"round {number} slot {slot}" not in stdout:
                problems.append(f"round {number} slot {slot}: exit {launch.returncode}; stderr ends "
                                f"{stderr[-600:]!r}; stdout ends {stdout[-300:]!r}")
        listed = user.run("llm-docker", "slots", "--json", cwd=user.home)
        assert listed.returncode == 0, listed.stderr
        saved = {row["slot"]: row["session_id"] for row in json.loads(listed.stdout)
                 if row["tool"] == "opencode" and row["project"] == str(project)}
        missing = [slot for slot in SLOTS if not saved.get(slot)]
        if missing:
            problems.append(f"round {number}: no session saved for slot(s) {missing}")
        elif len(set(saved.values())) != len(SLOTS):
            problems.append(f"round {number}: slots share a session: {saved}")
        return problems
    finally:
        user.cleanup()


@pytest.mark.image
def test_parallel_slots_on_a_fresh_state_all_start_and_save(agent_images: None, model: str) -> None:
    sweep_dead_homes()
    failed = {number: problems for number in range(1, ROUNDS + 1) if (problems := parallel_round(model, number))}
    assert not failed, (f"{len(failed)} of {ROUNDS} rounds failed:\n"
                        + "\n".join(problem for problems in failed.values() for problem in problems))


def launch(project: Path, home: Path, slot: int) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`ocd --slot N -- run x` with the busybox test image; what it printed, and the names of
    the containers it created (the engine's event log, by the launcher's pid label)."""
    since = time.time()
    process = subprocess.Popen(command("ocd", "--slot", str(slot), "--", "run", "x"), cwd=project,
                               env=launcher_env(home), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=120)
    events = subprocess.run(["docker", "events", "--since", f"{since - 1:.3f}", "--until", f"{time.time():.3f}",
                             "--filter", "type=container", "--filter", "event=create", "--filter",
                             f"label=io.llm-docker.launcher-pid={process.pid}", "--format",
                             "{{.Actor.Attributes.name}}"], capture_output=True, text=True, timeout=60)
    assert events.returncode == 0, events.stderr
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), events.stdout.split()


@pytest.mark.usefixtures("docker_engine_ready")
def test_one_init_per_project_and_image(project: Path, home: Path) -> None:
    marker = marker_path(project_state_home(home / ".llm-docker", project), Tool.OPENCODE)
    image_id = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", BUSYBOX_IMAGE],
                              capture_output=True, text=True, check=True).stdout.strip()

    first, created = launch(project, home, 1)
    assert first.returncode == 0, first.stderr
    inits = [name for name in created if name.endswith("-init")]
    assert len(inits) == 1, created
    assert marker.read_text() == f"{image_id}\n" and (marker.stat().st_mode & 0o777) == 0o600
    assert subprocess.run(["docker", "container", "inspect", inits[0]], capture_output=True).returncode == 1, \
        "the init container was left behind"
    assert slot_session(home, "opencode", project, 1)

    again, created = launch(project, home, 2)
    assert again.returncode == 0, again.stderr
    assert not [name for name in created if name.endswith("-init")], created  # initialised already

    marker.write_text("sha256:an-older-image\n")  # what a rebuilt image finds
    rebuilt, created = launch(project, home, 1)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert len([name for name in created if name.endswith("-init")]) == 1, created
    assert marker.read_text() == f"{image_id}\n"
