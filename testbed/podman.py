"""A private, rootful Podman API service for the tests: `podman system service` on its own socket.

The launcher talks to it exactly as it talks to Docker — `DOCKER_HOST=unix://<folder>/podman.sock`
— so the end-to-end slot tests can run against Podman's Docker-compatible API too
(`tests/supervisor/test_podman_docker.py`).

Everything the service keeps lives in one throw-away folder under /var/tmp, so it never
touches another Podman user's containers or images:

* `root/`, `run/`, `tmp/` — its own image and container storage (`--root`, `--runroot`)
  and libpod's state (`--tmpdir`: events log, exit files, locks);
* `containers.conf` — the only configuration file it reads (`CONTAINERS_CONF` replaces the
  system's): file locks in `tmp/locks` instead of the machine-wide `/dev/shm/libpod_lock`
  (a first start "refreshes" its lock manager, which would free the locks of every other
  Podman sharing that segment), the events log as a file (no journald needed), cgroupfs (no
  systemd needed), runc (Docker's own runtime, here already; crun refuses a host whose
  cgroups are v1 with a v2 hierarchy beside them, "hybrid mode"), its network definitions in
  `networks/`, image copies in `image-tmp/`;
* the socket is the Docker socket's group, 0660, in a 0711 folder: the unprivileged test user
  (`testbed.unprivileged`, a member of that group) may use it as it may use Docker.

What it still shares with the machine: netavark's address database for the default
`podman` network (`/run/containers/networks/ipam.db`, which keeps the addresses of the shared
`podman0` bridge apart), netavark's iptables chains, and the image layer cache of
`/var/lib/containers/cache` (a blob-info cache, no images).

Podman gives every container a `nofile`/`nproc` limit of 1048576 unless told otherwise. A
host whose root lacks CAP_SYS_RESOURCE (a sandboxed CI runner) cannot raise its hard limits,
so runc fails with "error setting rlimits … operation not permitted" — dockerd never hits
this because its containers inherit its own limits. The rig does the same for Podman: the
service runs with fixed limits (its own hard limits, `nproc` capped at 32768, which Podman
would lower it to anyway) and gives containers exactly those.

The images the tests need are copied from the Docker engine (`docker save | podman load`):
Podman stores them as `localhost/<name>`, and a short name like
`llm-docker-test-busybox:latest` finds them.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from testbed.unprivileged import docker_group

PODMAN = "podman"
BASE = Path("/var/tmp")
#: `/var/tmp/<prefix><pytest pid>-<4 hex>`: short, as Podman's runroot must be (≤ 50 characters).
FOLDER_PREFIX = "llm-docker-test-podman-"
SOCKET_NAME = "podman.sock"
#: Podman lowers a service's own `nproc` limit above this to this (seen with 4.3).
NPROC_CAP = 32768
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
#: Debian packages the rig needs: the engine, and the init it runs for `Init: true`.
APT_PACKAGES = ("podman", "catatonit")


class PodmanError(RuntimeError):
    """The rig cannot start or use its Podman service."""


def _limits() -> tuple[int, int]:
    """(`nofile`, `nproc`) for the service and its containers: as high as this process may go."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    if nproc == resource.RLIM_INFINITY or nproc > NPROC_CAP:
        nproc = NPROC_CAP
    return nofile, nproc


def _containers_conf(folder: Path, nofile: int, nproc: int) -> str:
    return f"""\
# the test rig's own Podman (testbed/podman.py): nothing shared with the machine's Podman
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
lock_type = "file"
image_copy_tmp_dir = "{folder / 'image-tmp'}"

[network]
network_config_dir = "{folder / 'networks'}"
"""


class PodmanService:
    """One running `podman system service` with its own storage (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.socket = folder / SOCKET_NAME
        self.log = folder / "service.log"
        self._limits = _limits()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def docker_host(self) -> str:
        """What `DOCKER_HOST` must say for a client (the launcher) to use this service."""
        return f"unix://{self.socket}"

    def global_options(self) -> list[str]:
        # (Podman refuses a runroot path longer than 50 characters: short names)
        return ["--root", str(self.folder / "root"), "--runroot", str(self.folder / "run"),
                "--tmpdir", str(self.folder / "tmp")]

    def env(self) -> dict[str, str]:
        """The environment of every `podman` the rig runs: its configuration file only."""
        return {**os.environ, "CONTAINERS_CONF": str(self.folder / "containers.conf")}

    def podman(self, *args: str, check: bool = True, stdin: int | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The `podman` command line on this service's storage (what the tests check with:
        independent of the product's engine adapter)."""
        result = subprocess.run([PODMAN, *self.global_options(), *args], env=self.env(), stdin=stdin,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)}: {result.stderr.strip()}")
        return result

    # -- lifetime ------------------------------------------------------------------------------

    def start(self) -> None:
        if shutil.which(PODMAN) is None:
            raise PodmanError(f"podman not found — apt-get install -y {' '.join(APT_PACKAGES)}")
        for name in ("root", "run", "tmp", "networks", "image-tmp"):
            (self.folder / name).mkdir(mode=0o700)
        nofile, nproc = self._limits
        (self.folder / "containers.conf").write_text(_containers_conf(self.folder, nofile, nproc))

        def fixed_limits() -> None:  # in the child, before exec: lowering a limit needs no privilege
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))

        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [PODMAN, *self.global_options(), "system", "service", "--time=0", self.docker_host],
                env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=fixed_limits, start_new_session=True)
        self._wait_until_answering()
        os.chown(self.socket, -1, docker_group())
        self.socket.chmod(0o660)

    def _wait_until_answering(self) -> None:
        """Until the socket answers `GET /_ping` (the service writes nothing when it is ready)."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PodmanError(f"podman system service exited ({self._process.returncode}): "
                                  f"{self.log.read_text(errors='replace').strip()[-2000:]}")
            if self._pings():
                return
            time.sleep(0.05)
        raise PodmanError(f"podman system service did not answer within {START_TIMEOUT:.0f}s")

    def _pings(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(5)
                client.connect(str(self.socket))
                client.sendall(b"GET /_ping HTTP/1.0\r\nHost: podman\r\n\r\n")
                return client.recv(64).startswith(b"HTTP/1.")
        except OSError:
            return False

    def stop(self) -> None:
        """Remove its containers, stop the service, unmount and delete its storage (also for
        the service of a test run that died: it is found by its storage folder)."""
        if (self.folder / "root").is_dir():
            self.podman("rm", "--all", "--force", "--time", "0", check=False)
        for pid in _service_pids(self.folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self._process is not None:
            try:
                self._process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for mount_point in _mounts_under(self.folder):
            subprocess.run(["umount", "--lazy", mount_point], capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- what the tests use --------------------------------------------------------------------

    def load_from_docker(self, *images: str) -> None:
        """Copy `images` from the Docker engine (`docker save | podman load`)."""
        for image in images:
            saver = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                assert saver.stdout is not None
                self.podman("load", "--quiet", stdin=saver.stdout.fileno(), timeout=600)
            finally:
                if saver.stdout is not None:
                    saver.stdout.close()
                error = saver.stderr.read().decode(errors="replace") if saver.stderr is not None else ""
                if saver.wait() != 0:
                    raise PodmanError(f"docker save {image}: {error.strip()}")

    def containers(self, label: str) -> list[str]:
        """Ids of its containers (running or not) carrying `label` (`key=value`)."""
        return self.podman("ps", "--all", "--quiet", "--filter", f"label={label}").stdout.split()

    def project_containers(self, project: Path) -> list[str]:
        """A project's agent containers (as `testbed.processes.project_containers` on Docker)."""
        return self.containers(f"io.llm-docker.project-root={project}")

    def names(self) -> list[str]:
        """The names of all its containers: a launch's agent and gateway alike."""
        return self.podman("ps", "--all", "--format", "{{.Names}}").stdout.split()


def _mounts_under(folder: Path) -> list[str]:
    """Mount points below `folder`, deepest first (the overlay driver bind-mounts its home)."""
    found = []
    with open("/proc/self/mountinfo") as table:
        for line in table:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(folder) or point.startswith(f"{folder}/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _service_pids(folder: Path) -> list[int]:
    """The `podman system service` processes on `folder`'s storage."""
    root = str(folder / "root").encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"service" in argv and root in argv:
                found.append(int(entry.name))
    return found


def sweep_dead_services() -> None:
    """Stop and delete the services of earlier test runs whose pytest process is gone (a
    killed run leaves its service running: it has a session of its own)."""
    for folder in BASE.glob(f"{FOLDER_PREFIX}*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            PodmanService(folder).stop()


@contextlib.contextmanager
def podman_service(*images: str) -> Iterator[PodmanService]:
    """A running private Podman service holding `images` (copied from Docker); stopped and
    deleted, with everything in it, on exit."""
    sweep_dead_services()
    folder = BASE / f"{FOLDER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:4]}"
    folder.mkdir(mode=0o711)
    folder.chmod(0o711)  # (whatever the umask): the test user reaches the socket, nothing else
    service = PodmanService(folder)
    try:
        service.start()
        service.load_from_docker(*images)
        yield service
    finally:
        service.stop()
