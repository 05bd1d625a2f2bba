"""The launch server end to end: real `cld` clients, a real server, the real engine, the fake agent.

What a user relies on: a served launch behaves like one in process (output, exit code, slot
saved); killing the client, the supervisor or both still removes every container and saves
the slot; code that changed on disk is never run by an old server; a project's files are
never imported by the host's Python processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from launch.python_command import own_module
from testbed.images import BUSYBOX_IMAGE
from testbed.processes import (
    ENTRY,
    REPO,
    PtyProcess,
    field,
    launcher_env,
    project_containers,
    slot_session,
    wait_until,
)
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

PACKAGES = ("launch", "engine", "image", "builder_api", "supervisor", "cli")


class Served:
    """A private runtime folder, the environment that reaches it, and the server's process."""

    def __init__(self, runtime: Path, home: Path, code: Path = REPO) -> None:
        self.runtime, self.code = runtime, code
        self.env = launcher_env(home, XDG_RUNTIME_DIR=str(runtime), PYTHONPATH=str(code),
                                LLM_DOCKER_LAUNCH_SERVER="on", LLM_DOCKER_LAUNCH_SERVER_IDLE="300")
        self.process: subprocess.Popen[bytes] | None = None

    def sockets(self) -> list[Path]:
        return sorted((self.runtime / "llm-docker").glob("launch-*.sock"))

    def start(self) -> psutil.Process:
        self.process = subprocess.Popen(own_module("cli.launch_server"), env=self.env, cwd="/",
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        wait_until(lambda: bool(self.sockets()), timeout=60)
        return psutil.Process(self.process.pid)

    def servers(self) -> list[psutil.Process]:
        """Every launch server of this runtime folder (the ones clients started too)."""
        found = []
        for process in psutil.process_iter(["cmdline", "environ"]):
            with contextlib.suppress(psutil.Error):
                if "cli.launch_server" in (process.info["cmdline"] or []) and \
                        (process.info["environ"] or {}).get("XDG_RUNTIME_DIR") == str(self.runtime):
                    found.append(process)
        return found

    def stop(self) -> None:
        for process in self.servers():
            with contextlib.suppress(psutil.Error):
                process.terminate()
                process.wait(10)

    def client(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-P", "-c", "from cli.launch_client import cld_main as m; m()",
                               *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120)

    def pty(self, *args: str, cwd: Path, home: Path) -> PtyProcess:
        return PtyProcess("cld-client", *args, cwd=cwd, home=home, env=self.env,
                          argv=[sys.executable, "-P", "-c", "from cli.launch_client import cld_main as m; m()",
                                *args])


@pytest.fixture
def served(tmp_path: Path, home: Path) -> Iterator[Served]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    rig = Served(runtime, home)
    yield rig
    rig.stop()


def _interactive(served: Served, slot: int, *, project: Path, home: Path, pty_processes: list[PtyProcess],
                 extra: tuple[str, ...] = ()) -> PtyProcess:
    """A served interactive launch of `slot`, its agent ready."""
    process = served.pty("--slot", str(slot), *extra, cwd=project, home=home)
    pty_processes.append(process)
    process.expect("READY")
    return process


def _launcher_pid(project: Path) -> int:
    names = project_containers(project)
    assert names, "no container runs for the project"
    labels = subprocess.run(["docker", "inspect", "-f", '{{index .Config.Labels "io.llm-docker.launcher-pid"}}',
                             *names], capture_output=True, text=True, check=True).stdout.split()
    pids = {int(label) for label in labels if label}
    assert len(pids) == 1, labels
    return pids.pop()


def test_supervise_is_served_like_cld_n(served: Served, project: Path, home: Path) -> None:
    """`llm-docker supervise` is the launch `cld N` is: a warm server forks it too; its
    other commands run in process, and a server asked for one refuses it in one line."""
    server = served.start()
    argv = [sys.executable, "-P", "-c", ENTRY["llm-docker-client"], "supervise", "-n", "2", "--layout", "none",
            str(project)]
    launch = subprocess.Popen(argv, cwd=project, env=served.env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(project_containers(project)) == 2, timeout=60)
        supervisor = psutil.Process(_launcher_pid(project))
        assert supervisor.ppid() == server.pid, "supervise did not run in a fork of the server"
        launch.send_signal(signal.SIGTERM)  # relayed to the supervisor: every slot ends
        _, error = launch.communicate(timeout=60)
    finally:
        launch.kill()
    assert launch.returncode == 143, error
    wait_until(lambda: not project_containers(project), timeout=30)
    version = subprocess.run([*argv[:4], "--version"], cwd=project, env=served.env, capture_output=True,
                             text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip(), version.stderr
    assert [process.pid for process in served.servers()] == [server.pid]


def test_first_launch_runs_in_process_and_starts_the_server(served: Served, project: Path) -> None:
    served.env["ANTHROPIC_API_KEY"] = "sk-ant-test-never-kept"
    first = served.client("--slot", "1", "--", "-p", "hi", cwd=project)
    assert first.returncode == 0, first.stderr
    assert field(first.stdout, "ANSWER"), first.stdout
    wait_until(lambda: bool(served.sockets()), timeout=60)
    (server,) = served.servers()
    assert "ANTHROPIC_API_KEY" not in server.environ()  # each launch brings its own; the server keeps none
    again = served.client("-c", "--slot", "1", "--", "-p", "again", "--fake-exit", "7", cwd=project)
    assert again.returncode == 7, again.stderr
    assert field(again.stdout, "ARG")[1:3] == ["--resume", field(first.stdout, "ANSWER")[0]]


def test_served_launch_is_a_fork_of_the_server_and_behaves_alike(served: Served, project: Path, home: Path,
                                                                 pty_processes: list[PtyProcess]) -> None:
    server = served.start()
    process = _interactive(served, 2, project=project, home=home, pty_processes=pty_processes,
                           extra=("--", "--fake-exit", "5"))
    supervisor = psutil.Process(_launcher_pid(project))
    assert supervisor.ppid() == server.pid, "the launch did not run in a fork of the server"
    assert supervisor.pid != process.process.pid
    process.type("exit\r")
    assert process.wait() == 5
    assert process.attributes_restored()
    assert slot_session(home, "claude", project, 2)
    wait_until(lambda: not project_containers(project), timeout=30)


def test_killed_client_is_a_hang_up_the_slot_is_saved(served: Served, project: Path, home: Path,
                                                       pty_processes: list[PtyProcess]) -> None:
    served.start()
    process = _interactive(served, 3, project=project, home=home, pty_processes=pty_processes)
    supervisor = psutil.Process(_launcher_pid(project))
    process.process.send_signal(signal.SIGKILL)
    process.wait()
    wait_until(lambda: not supervisor.is_running() or supervisor.status() == psutil.STATUS_ZOMBIE, timeout=60)
    wait_until(lambda: not project_containers(project), timeout=60)
    assert slot_session(home, "claude", project, 3)


def test_killed_client_with_the_state_folder_gone_still_removes_the_containers(
        served: Served, project: Path, home: Path, pty_processes: list[PtyProcess]) -> None:
    """The slot's save has nowhere to go; the cleanup still happens."""
    served.start()
    process = _interactive(served, 3, project=project, home=home, pty_processes=pty_processes)
    supervisor = psutil.Process(_launcher_pid(project))
    shutil.rmtree(home / ".llm-docker")
    process.process.send_signal(signal.SIGKILL)
    process.wait()
    wait_until(lambda: not supervisor.is_running() or supervisor.status() == psutil.STATUS_ZOMBIE, timeout=60)
    wait_until(lambda: not project_containers(project), timeout=30)


def test_killed_supervisor_is_reported_and_cleaned_by_its_guardian(served: Served, project: Path, home: Path,
                                                                    pty_processes: list[PtyProcess]) -> None:
    served.start()
    process = _interactive(served, 4, project=project, home=home, pty_processes=pty_processes)
    os.kill(_launcher_pid(project), signal.SIGKILL)
    assert process.wait() == 1
    assert "the supervisor ended without an exit code" in process.text
    wait_until(lambda: not project_containers(project), timeout=60)


@pytest.mark.parametrize(("signum", "expected_exit"), [(signal.SIGTERM, 143), (signal.SIGHUP, 143),
                                                       (signal.SIGINT, 130), (None, 143)])
def test_signals_and_hang_up_reach_the_supervisor(served: Served, project: Path, home: Path,
                                                  pty_processes: list[PtyProcess], signum: int | None,
                                                  expected_exit: int) -> None:
    """A signal to the client is that signal to the launch, and closing the terminal is a
    hang-up (None): the agent ends, the slot is saved, the exit code is the one a launch in
    process has (tests/supervisor/test_supervisor_docker.py)."""
    served.start()
    process = _interactive(served, 5, project=project, home=home, pty_processes=pty_processes)
    session = process.text.split("SESSION:")[1].split()[0]
    if signum is None:
        process.close_terminal()
    else:
        process.process.send_signal(signum)
    assert process.wait() == expected_exit, process.text if signum else ""
    wait_until(lambda: not project_containers(project), timeout=30)
    if signum is not None:
        assert process.attributes_restored()
    assert slot_session(home, "claude", project, 5) == session


def test_changed_code_is_never_served_by_an_old_server(tmp_path: Path, home: Path, project: Path) -> None:
    code = tmp_path / "code"
    for package in PACKAGES:
        shutil.copytree(REPO / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    rig = Served(runtime, home, code)
    try:
        old = rig.start()
        assert rig.client("--", "-p", "x", cwd=project).returncode == 0
        assert old.is_running()
        module = code / "supervisor" / "supervise.py"
        later = module.stat().st_mtime + 10
        os.utime(module, (later, later))
        changed = rig.client("--", "-p", "y", cwd=project)
        assert changed.returncode == 0, changed.stderr  # launched in process meanwhile
        old.wait(30)  # the old server went away
        wait_until(lambda: len(rig.servers()) == 1 and rig.servers()[0].pid != old.pid, timeout=60)
    finally:
        rig.stop()


def _plant(project: Path) -> Path:
    """Packages named like ours in `project` (agent-written): importing any of them appends its
    name to the marker file this returns — which must never exist."""
    marker = project.parent / "pwned"
    for package, module in (("supervisor", "guardian"), ("cli", "launch_server"), ("cli", "admin")):
        folder = project / package
        folder.mkdir(exist_ok=True)
        (folder / "__init__.py").write_text(f"open({str(marker)!r}, 'a').write('{package}\\n')\n")
        (folder / f"{module}.py").write_text(f"open({str(marker)!r}, 'a').write('{module}\\n')\n")
    return marker


def test_project_files_are_never_imported_by_the_hosts_python(served: Served, project: Path, home: Path) -> None:
    """A project (agent-written) with packages named like ours: the guardian, the launch
    server and every `python -m` llm-docker starts must import the installed code, never it."""
    marker = _plant(project)
    result = served.client("--slot", "6", "--", "-p", "hi", cwd=project)  # in process; starts the server
    assert result.returncode == 0, result.stderr
    wait_until(lambda: bool(served.sockets()) or marker.exists(), timeout=60)  # a planted server: no socket
    assert not marker.exists(), marker.read_text()
    served_again = served.client("--slot", "6", "--", "-p", "again", cwd=project)
    assert served_again.returncode == 0, served_again.stderr
    assert not marker.exists(), marker.read_text()


def _user_client(user: User, *args: str) -> list[str]:
    """The installed `cld` as `user`: `-P`, as a console script's Python never has the working
    folder (the project, whose planted `cli/` this must not import itself) on `sys.path`."""
    return [*user.prefix(), str(user.python), "-P", "-c", ENTRY["cld-client"], *args]


def test_an_unprivileged_user_gets_a_private_server_that_never_imports_the_project(
        user: User, pty_processes: list[PtyProcess]) -> None:
    """As users run it: a uid in the `docker` group gets its own runtime folder and server.
    And the `python -P` wall as users run it: the launcher, the server it starts, their
    guardians run as the project's owner (a uid that can write the planted files and the
    marker), in process and then served — a fork of that server, checked by the supervisor's
    parent."""
    runtime = user.home / "run"
    runtime.mkdir(mode=0o700)
    project = user.project()
    marker = _plant(project)
    user.own()
    env = user.env(XDG_RUNTIME_DIR=str(runtime), LLM_DOCKER_LAUNCH_SERVER="on")
    servers = Served(runtime, user.home)
    try:
        first = subprocess.run(_user_client(user, "--slot", "1", "--", "-p", "hi"), cwd=project, env=env,
                               capture_output=True, text=True, timeout=120)  # in process; starts the server
        assert first.returncode == 0, first.stderr
        assert field(first.stdout, "ANSWER"), first.stdout
        wait_until(lambda: any((runtime / "llm-docker").glob("launch-*.sock")) or marker.exists(), timeout=60)
        assert not marker.exists(), marker.read_text()  # a planted server gives no socket
        folder = runtime / "llm-docker"
        assert folder.stat().st_uid == user.uid and folder.stat().st_mode & 0o777 == 0o700
        assert next(folder.glob("launch-*.sock")).stat().st_mode & 0o777 == 0o600
        (server,) = servers.servers()
        assert server.uids().real == user.uid
        process = PtyProcess("cld-client", "--slot", "2", cwd=project, home=user.home, env=env,
                             argv=_user_client(user, "--slot", "2"))
        pty_processes.append(process)
        process.expect("READY")
        assert psutil.Process(_launcher_pid(project)).ppid() == server.pid
        process.type("exit\r")
        assert process.wait() == 0
        wait_until(lambda: not project_containers(project), timeout=30)
    finally:
        servers.stop()
    assert not marker.exists(), marker.read_text()


def _gateways_of(home: Path) -> dict[str, str]:
    """Gateway container id → its SSH port label, for the gateways whose lease folder is in `home`."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=io.llm-docker.gateway-slot"],
                         capture_output=True, text=True).stdout.split()
    if not ids:
        return {}
    shown = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout or "[]")
    return {info["Id"]: info["Config"]["Labels"].get("io.llm-docker.ssh-port", "")
            for info in shown if any(Path(m["Source"]).is_relative_to(home) for m in info.get("Mounts") or ())}


def test_a_served_relaunch_takes_every_kept_gateway_with_its_ssh_port(served: Served, project: Path,
                                                                      home: Path) -> None:
    """Served, the slots' leases are prepared while the kept gateways are still being
    claimed: the SSH ports those publish are the slots' own, so every gateway is taken
    again (none replaced, which would cost every slot a new namespace)."""
    (home / ".llm-docker" / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\n")  # SSH on
    served.env["GATEWAY_KEEP_SECONDS"] = "60"
    served.start()
    argv = [sys.executable, "-P", "-c", ENTRY["llm-docker-client"], "supervise", "-n", "3", "--layout", "none",
            str(project)]
    try:
        seen = []
        for _ in range(2):
            launch = subprocess.Popen(argv, cwd=project, env=served.env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                wait_until(lambda: len([n for n in project_containers(project) if not n.endswith("-gateway")]) == 3,
                           timeout=60)
                launch.send_signal(signal.SIGTERM)
                _, error = launch.communicate(timeout=60)
            finally:
                launch.kill()
            assert launch.returncode == 143, error
            wait_until(lambda: len(_gateways_of(home)) == 3, timeout=30)
            seen.append(_gateways_of(home))
        assert seen[1] == seen[0], "the relaunch replaced kept gateways (or moved their SSH ports)"
    finally:
        for gateway in _gateways_of(home):
            subprocess.run(["docker", "rm", "-f", gateway], capture_output=True)
