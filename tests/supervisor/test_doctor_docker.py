"""`llm-docker doctor` on the real engine, as a real process, one broken thing at a time.

Every install here is a throw-away `$HOME` whose llm-docker uses image names of its own
(`llm-docker-test-doctor-<token>-*`: none built, so the images only warn "not built yet");
containers and images a test makes carry the tests' names and label and are removed by
the test itself. The network self-test runs the tests' gateway image (built through the
product) and one with its wall taken out; SSH is probed against a real slot's sshd (the
real agent image, launched by the unprivileged test user) and against a port nobody
serves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from image.ensure import plan_builds
from launch.config import load_config
from launch.liveness import identity_labels, process_start_time, read_here
from launch.spec import LABEL_PREFIX
from launch.tools import Tool
from supervisor.ssh_keys import ensure_install_keys
from supervisor.store import DATABASE, Launch, StateStore
from testbed.agent_images import build_gateway_image, configure_agent_user
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_GATEWAY_IMAGE, TEST_IMAGE_PREFIX, TEST_LABEL, docker
from testbed.processes import free_port, free_port_block, run
from testbed.unprivileged import User

pytestmark = pytest.mark.docker

CHECKS = {"config", "api-keys", "state", "engine", "disk", "images", "network", "ssh", "leftovers"}
DOCTOR_LABEL = LABEL_PREFIX + "doctor"


@dataclasses.dataclass
class Report:
    code: int
    rows: list[dict[str, str]]
    stderr: str

    def of(self, name: str) -> list[dict[str, str]]:
        return [row for row in self.rows if row["name"] == name]

    def statuses(self, name: str) -> list[str]:
        return [row["status"] for row in self.of(name)]

    def failing(self) -> list[str]:
        return [row["name"] for row in self.rows if row["status"] == "fail"]


class Install:
    """A throw-away install: $HOME, its ~/.llm-docker, image names nobody built, a key."""

    def __init__(self, root: Path) -> None:
        self.home = root / "home"
        self.state_home = self.home / ".llm-docker"
        self.state_home.mkdir(parents=True)
        self.prefix = f"{TEST_IMAGE_PREFIX}-doctor-{uuid.uuid4().hex[:8]}"
        self.configure("")
        self.secrets("ANTHROPIC_API_KEY=sk-doctor-test\n")

    def configure(self, extra: str) -> None:
        (self.state_home / "llm-docker.conf").write_text(f"BASE_IMAGE=local\nINSTALL_BROWSING=false\n{extra}")

    def secrets(self, text: str) -> None:
        env = self.state_home / ".env"
        env.write_text(text)
        env.chmod(0o600)

    @property
    def environ(self) -> dict[str, str]:
        return {"LLM_DOCKER_IMAGE_PREFIX": self.prefix}

    def doctor(self, *args: str, **env: str) -> Report:
        result = run("llm-docker", "doctor", "--json", *args, cwd=self.home, home=self.home, timeout=240,
                     **{**self.environ, **env})
        rows = json.loads(result.stdout)
        assert isinstance(rows, list), result.stdout
        for row in rows:  # the shape every reader relies on
            assert set(row) == {"name", "status", "message", "fix"}, row
            assert row["status"] in ("ok", "warn", "fail", "skip") and "\n" not in row["message"]
            assert row["fix"] or row["status"] in ("ok", "skip"), row  # every problem carries its fix
        assert {row["name"] for row in rows} == CHECKS, rows
        return Report(result.returncode, rows, result.stderr)

    def text(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run("llm-docker", "doctor", *args, cwd=self.home, home=self.home, timeout=240, **self.environ)


@pytest.fixture
def install(tmp_path: Path, docker_engine_ready: None) -> Install:
    return Install(tmp_path)


@pytest.fixture(scope="module")
def gateway_image(docker_engine_ready: None) -> str:
    """The tests' gateway image, built (or confirmed current) through the product."""
    with tempfile.TemporaryDirectory(prefix="llm-docker-test-doctor-") as home:
        result = build_gateway_image(Path(home))
    assert result.returncode == 0, result.stderr[-2000:]
    return TEST_GATEWAY_IMAGE


def _build(tag: str, dockerfile: str, labels: dict[str, str] | None = None) -> None:
    arguments = [argument for key, value in (labels or {}).items() for argument in ("--label", f"{key}={value}")]
    docker("build", "-q", "-t", tag, *arguments, "-", stdin=dockerfile)


@contextlib.contextmanager
def image(tag: str, dockerfile: str, labels: dict[str, str] | None = None) -> Iterator[str]:
    """An image of the test's own (a test-prefixed tag), removed afterwards."""
    assert tag.startswith(TEST_IMAGE_PREFIX)
    _build(tag, dockerfile, labels)
    try:
        yield tag
    finally:
        docker("image", "rm", "--no-prune", tag, check=False)


@contextlib.contextmanager
def container(name: str, labels: dict[str, str], *, start: bool, mounts: tuple[str, ...] = ()) -> Iterator[str]:
    """A busybox container of the test's own (its label, its name), removed afterwards."""
    options = [argument for key, value in {TEST_LABEL: str(os.getpid()), **labels}.items()
               for argument in ("--label", f"{key}={value}")]
    options += [argument for mount in mounts for argument in ("-v", mount)]
    docker("create", "--name", name, *options, BUSYBOX_IMAGE, "sleep", "600")
    try:
        if start:
            docker("start", name)
        yield name
    finally:
        docker("rm", "-f", name, check=False)


def launcher_labels(pid: int, start: str) -> dict[str, str]:
    """What a launch records about its launcher (`launch/liveness.py`), for `pid`."""
    here = read_here()
    return {LABEL_PREFIX + "launcher-pid": str(pid), LABEL_PREFIX + "launcher-start": start,
            **{LABEL_PREFIX + key: value for key, value in identity_labels(here).items()}}


# -- the tests -----------------------------------------------------------------------------------


def test_an_engine_that_is_down_or_hangs_is_one_failed_line(install: Install, tmp_path: Path) -> None:
    report = install.doctor(DOCKER_HOST=f"unix://{tmp_path}/nobody.sock")
    assert report.code == 1 and report.failing() == ["engine"], report.rows
    [engine] = report.of("engine")
    # the launcher's own words (engine/reach.py): the endpoint, where it came from, the fitting fix
    assert f"cannot reach the Docker engine at unix://{tmp_path}/nobody.sock, set by DOCKER_HOST" in engine["message"]
    assert "check DOCKER_HOST" in engine["fix"] and "unset it" in engine["fix"]
    for name in ("images", "network", "leftovers"):  # said once, not once per check that needs it
        assert report.statuses(name) == ["skip"], report.rows
    assert report.statuses("config") == ["ok"] and report.statuses("state") == ["ok"]

    # an engine that takes the connection and never answers: bounded, not hung
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "silent.sock"))
    listener.listen(64)
    try:
        report = install.doctor(DOCKER_HOST=f"unix://{tmp_path}/silent.sock")
    finally:
        listener.close()
    assert report.code == 1 and report.failing() == ["engine"], report.rows
    assert "did not answer within" in report.of("engine")[0]["message"]


def test_a_fresh_install_only_warns_and_strict_fails_on_warnings(install: Install) -> None:
    report = install.doctor()
    assert report.code == 0, report.rows
    assert report.failing() == []
    assert report.statuses("engine") == ["ok"] and report.statuses("config") == ["ok"]
    assert report.statuses("api-keys") == ["ok", "ok"] and report.statuses("state") == ["ok"]
    assert report.statuses("images") == ["warn", "warn", "warn"]  # claude, opencode, gateway: not built yet
    assert report.statuses("network") == ["skip"]  # no gateway image to test with: said by images
    assert install.doctor("--strict").code == 1

    # the machine's own warnings, not the install's: short of disk space; a dead launcher's
    # container left by an earlier run on this engine (another test run, a reboot mid-launch)
    machine = [row for row in report.rows if row["name"] in ("disk", "leftovers") and row["status"] == "warn"]
    warnings = sum(row["status"] == "warn" for row in report.rows)
    assert warnings == 3 + len(machine), report.rows
    text = install.text()
    lines = text.stdout.splitlines()
    assert text.returncode == 0 and len(lines) == len(report.rows) + 1
    assert lines[-1].startswith(f"OK with {warnings} warnings")
    assert all(" — fix: " in line for line in lines if line.startswith(("WARN", "FAIL")))
    assert text.stderr == ""


def test_a_config_typo_fails_naming_the_key_it_meant(install: Install) -> None:
    install.configure("INTERNET_ACCES=false\n")
    report = install.doctor()
    assert report.code == 1 and report.failing() == ["config"], report.rows
    [config] = report.of("config")
    assert "unknown key INTERNET_ACCES" in config["message"]
    assert config["fix"] == "rename INTERNET_ACCES to INTERNET_ACCESS (or remove the line)"


def test_a_missing_provider_key_warns(install: Install) -> None:
    (install.state_home / ".env").unlink()
    report = install.doctor()
    assert report.code == 0 and report.failing() == [], report.rows
    claude, opencode = report.of("api-keys")
    assert claude["status"] == opencode["status"] == "warn"
    assert "ANTHROPIC_API_KEY" in claude["message"] and "/login" in claude["fix"]
    assert install.doctor(ANTHROPIC_API_KEY="sk-from-the-environment").statuses("api-keys") == ["ok", "ok"]


def test_an_image_built_from_other_settings_fails(install: Install) -> None:
    # what `llm-docker image build` would have labelled with INSTALL_CPP=true
    other = load_config(install.state_home, {**install.environ, "INSTALL_CPP": "true"}, install.home).config
    [plan] = plan_builds(other, [Tool.CLAUDE], no_cache=False)
    with image(plan.tag, f"FROM {BUSYBOX_IMAGE}\n", plan.labels("llm-docker-base:bookworm")):
        report = install.doctor()
    assert report.code == 1 and report.failing() == ["images"], report.rows
    [stale] = [row for row in report.of("images") if row["status"] == "fail"]
    assert stale["message"].startswith(f"claude: {plan.tag} does not match the config (INSTALL_CPP true → false")
    assert "cld --build" in stale["fix"]


def test_the_network_self_test_holds_and_catches_a_missing_wall(install: Install, gateway_image: str) -> None:
    install.configure(f"HOST_PORTS={free_port()}\nINTERNET_ACCESS=false\n")
    report = install.doctor(GATEWAY_IMAGE=gateway_image)
    [network] = report.of("network")
    assert network["status"] == "ok" and "no internet; LAN; host ports" in network["message"], report.rows
    assert "holds" in network["message"]

    # the same image with nftables made a no-op: the rules never load, the wall is not there
    tag = f"{install.prefix}-nowall:latest"
    with image(tag, f"FROM {gateway_image}\nRUN ln -sf /bin/true /usr/sbin/nft\n"):
        report = install.doctor(GATEWAY_IMAGE=tag)
    assert report.code == 1 and report.failing() == ["network"], report.rows
    [network] = report.of("network")
    assert "the network policy did not verify (block " in network["message"], network
    assert "not refused by the wall" in network["message"]

    # nothing of the self-tests is left: no gateway, no HOST_PORTS folder
    assert docker("ps", "-aq", "--filter", f"label={DOCTOR_LABEL}") == ""
    assert not (install.state_home / "gateways").exists()


def test_a_slot_whose_sshd_does_not_answer_fails(install: Install, tmp_path: Path) -> None:
    ensure_install_keys(install.state_home, ())
    port = free_port()  # nobody listens there
    labels = {LABEL_PREFIX + "tool": "claude", LABEL_PREFIX + "slot": "1",
              LABEL_PREFIX + "project-root": str(tmp_path / "project"), LABEL_PREFIX + "ssh-port": str(port),
              LABEL_PREFIX + "ssh-user": "agent",
              **launcher_labels(os.getpid(), process_start_time(os.getpid()) or "")}  # a live launcher: no leftover
    name = f"{install.prefix}-slot"
    with container(name, labels, start=True, mounts=(f"{install.state_home / 'ssh'}:/etc/ssh/keys:ro",)):
        report = install.doctor()
    assert report.code == 1 and report.failing() == ["ssh"], report.rows
    keys, slot = report.of("ssh")
    assert keys["status"] == "ok" and "the pin matches the host key" in keys["message"]
    assert slot["status"] == "fail", slot
    assert slot["message"].startswith(f"claude slot 1 ({name}): 127.0.0.1:{port} unreachable (")
    assert "launch the slot again" in slot["fix"]


def test_a_corrupt_state_database_fails_and_is_not_touched(install: Install) -> None:
    async def make() -> None:
        async with StateStore.open(install.state_home) as store:
            await store.record_launch(Launch(run_id="run", tool="claude", project="/p", workdir="/w", slot=1,
                                             terminal="tty", launcher_pid=1, launcher_start="1", container="c",
                                             session_kind="fresh", session_id="s", started_at=time.time()))

    anyio.run(make, backend="asyncio")
    path = install.state_home / DATABASE
    path.write_bytes(b"garbage" * 1000)
    report = install.doctor()
    assert report.code == 1 and report.failing() == ["state"], report.rows
    [state] = report.of("state")
    assert "is corrupt" in state["message"] and state["fix"].startswith(f"mv {path} {path}.broken")
    assert path.read_bytes() == b"garbage" * 1000
    assert not path.with_name(DATABASE + "-wal").exists() and not path.with_name(DATABASE + "-shm").exists()


def test_a_container_of_a_dead_launcher_warns_with_gc_as_the_fix(install: Install, tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    start = process_start_time(gone.pid) or "1"
    gone.wait()  # reaped: its pid is gone
    labels = {LABEL_PREFIX + "tool": "claude", LABEL_PREFIX + "project-root": str(tmp_path / "project"),
              **launcher_labels(gone.pid, start)}
    name = f"{install.prefix}-left"
    with container(name, labels, start=False):
        report = install.doctor()
    assert report.code == 0, report.rows
    [left] = [row for row in report.of("leftovers") if row["status"] == "warn"]
    assert name in left["message"] and "llm-docker gc" in left["fix"]


# -- a real slot: the real agent image, its real sshd ---------------------------------------------


@pytest.mark.image
def test_a_running_slot_is_healthy_until_its_sshd_stops(user: User, agent_images: None, model: str,
                                                         tmp_path: Path) -> None:
    configure_agent_user(user, model, extra=f"LLM_DOCKER_SSH_HOST_PORT={free_port_block()}\nEXIT_TO_DOCKER=true\n"
                                            "LLM_DOCKER_SSH_PROBE_SECONDS=2\n")
    project = user.project("app")
    log = (tmp_path / "launch.log").open("wb")
    launch = user.popen("llm-docker", "supervise", "-n", "1", "--layout", "none", cwd=project,
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        name = _wait_for_reachable_slot(user, project, launch, tmp_path / "launch.log")

        def doctor() -> Report:
            result = user.run("llm-docker", "doctor", "--json", cwd=project, timeout=240)
            return Report(result.returncode, json.loads(result.stdout), result.stderr)

        report = doctor()
        assert report.code == 0, report.rows
        for row in report.rows:  # leftovers: another test's dead launcher (same test uid) only warns;
            # disk: a machine short of space warns, whatever the install
            assert row["status"] == "ok" or (row["name"] in ("leftovers", "disk") and row["status"] == "warn"), row
        [reached] = [row for row in report.of("ssh") if name in row["message"]]
        assert "sshd answers on 127.0.0.1:" in reached["message"]
        assert "holds" in report.of("network")[0]["message"]

        subprocess.run(["docker", "exec", name, "pkill", "-x", "sshd"], check=True, capture_output=True)
        report = doctor()
        assert report.code == 1 and report.failing() == ["ssh"], report.rows
        [down] = [row for row in report.of("ssh") if name in row["message"]]
        assert down["status"] == "fail" and "unreachable" in down["message"]
    finally:
        if launch.poll() is None:
            launch.terminate()
            launch.wait(timeout=90)
        log.close()


def _wait_for_reachable_slot(user: User, project: Path, launch: subprocess.Popen[bytes], log: Path) -> str:
    """The slot's container once `llm-docker status` shows its sshd reachable (the probe's view)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert launch.poll() is None, f"the launch ended:\n{log.read_text(errors='replace')}"
        result = user.run("llm-docker", "status", "--json", cwd=project)
        rows: list[dict[str, Any]] = [row for row in json.loads(result.stdout or "[]")
                                      if row["project"] == str(project)]
        if rows and rows[0]["ssh"] and rows[0]["ssh"]["reachable"]:
            return str(rows[0]["container"])
        time.sleep(0.5)
    raise AssertionError("the slot's sshd was not reachable within 240 s")
