"""One `cld` launch against `docker run`, side by side, and where the launcher's time goes.

    python -m bench.launch [--repeat 7] [--image IMAGE] [--json results.json]

Each round runs, interleaved (a slow moment of the machine hits every mode alike), the same
image and the same agent command line:

* `docker run --rm --init --cap-drop ALL --security-opt no-new-privileges IMAGE claude
  --dangerously-skip-permissions --session-id UUID --version` — the baseline: the agent's
  argv exactly as `cld -- --version` runs it (the session flags alone cost real Claude Code
  ~100 ms before it prints), the CLI's own process start included;
* the same `docker run` with a bare `claude --version`, for reference;
* `cld -- --version` in process (`LLM_DOCKER_LAUNCH_SERVER=off`: interpreter, imports, plan,
  gateway, agent);
* `cld -- --version` served by a warm launch server (`cli.launch_server`, started by the
  benchmark in a private runtime folder and stopped at the end): a relaunch, whose agent
  joins the slot's gateway kept from the launch before (`GATEWAY_KEEP_SECONDS`);
* the same with `GATEWAY_KEEP_SECONDS=0`: a new gateway for the launch, as a slot's first
  launch (or one whose policy changed) has;
* the same, served, with `NETWORK_MODE=host`: no network gateway (what the network wall costs).

"First output" is the moment the agent's first byte reaches the launcher's stdout; "total"
is the launcher's exit. The breakdown comes from the engine's own container events (same
clock): launcher start → first container created (Python, imports, planning) → gateway
started → agent started → first output → agent died → launcher exited. Ratios are against the
`docker run` of the same round's median. The image defaults to the tests' real Claude Code
image (`llm-docker-test-claude:latest`) when it exists, else the busybox fake agent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from bench import engine_events
from bench.engine_events import Event
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_ENV

REPO = Path(__file__).resolve().parent.parent
REAL_IMAGE = "llm-docker-test-claude:latest"
TIMEOUT = 120.0
IN_PROCESS = "from cli.launchers import cld_main as m; m()"
CLIENT = "from cli.launch_client import cld_main as m; m()"
PHASES = ("python+plan", "gateway", "agent start", "first output", "agent run", "teardown")
#: The relaunch modes keep the slot's gateway (the product's default is longer; the rig ends them).
KEEP_SECONDS = 120
KEPT_LABEL = "io.llm-docker.gateway-slot"


def _image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0


def _timed(argv: list[str], *, env: dict[str, str] | None, cwd: Path | None) -> dict[str, float]:
    """Run `argv`; seconds to its first stdout byte and to its exit, plus wall-clock bounds."""
    wall = time.time()
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    first = None
    output = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            if time.perf_counter() - started > TIMEOUT:
                process.kill()
                raise RuntimeError(f"{argv[:3]} did not finish within {TIMEOUT:.0f}s")
            if not selector.select(1.0):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter()
            output += chunk
    try:
        _, error = process.communicate(timeout=TIMEOUT)  # bounded: never a hung run
    except subprocess.TimeoutExpired:
        process.kill()
        raise RuntimeError(f"{argv[:3]} closed its output but did not exit within {TIMEOUT:.0f}s") from None
    code = process.returncode
    ended = time.perf_counter()
    if code != 0 or first is None:
        raise RuntimeError(f"{argv[:3]} exited {code}: {error.decode(errors='replace')[-400:]}")
    return {"first": first - started, "total": ended - started, "wall_start": wall,
            "wall_first": wall + (first - started), "wall_end": wall + (ended - started)}


def _events(run: dict[str, float], wanted: Callable[[str], bool]) -> list[Event]:
    """The engine's events of the containers `wanted` names during `run`, read once it ended:
    half a second past its end, so the events of its last moment are in."""
    return engine_events.read(run["wall_start"], run["wall_end"] + 0.5, wanted)


def _first(events: list[Event], action: str, gateway: bool | None = None) -> float | None:
    for moment, status, name in events:
        if status == action and (gateway is None or name.endswith("-gateway") == gateway):
            return moment
    return None


def breakdown(run: dict[str, float], events: list[Event]) -> dict[str, float]:
    """Seconds per phase, from the launcher's start to its exit (a missing event: 0)."""
    created = _first(events, "create") or run["wall_start"]
    gateway_started = _first(events, "start", gateway=True) or created
    agent_started = _first(events, "start", gateway=False) or gateway_started
    died = _first(events, "die", gateway=False) or run["wall_end"]
    points = [run["wall_start"], created, gateway_started, agent_started, run["wall_first"], died, run["wall_end"]]
    return {phase: max(0.0, points[i + 1] - points[i]) for i, phase in enumerate(PHASES)}


def remove_kept_gateways(folder: Path) -> None:
    """The gateways a benchmark's launches kept: their lease folders are in its `folder`."""
    listed = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={KEPT_LABEL}"], capture_output=True,
                            text=True).stdout.split()
    for container in listed:
        mounts = subprocess.run(["docker", "inspect", "--format", "{{range .Mounts}}{{.Source}} {{end}}", container],
                                capture_output=True, text=True).stdout.split()
        if any(Path(source).is_relative_to(folder) for source in mounts):
            subprocess.run(["docker", "rm", "-f", container], capture_output=True)


@contextlib.contextmanager
def warm_server(env: dict[str, str], runtime: Path) -> Iterator[None]:
    """A launch server (`cli.launch_server`) for `env`, whose runtime folder is `runtime`,
    from its first socket until the end of the block."""
    process = subprocess.Popen([sys.executable, "-P", "-m", "cli.launch_server"], env=env, cwd="/",
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    socket_folder = runtime / "llm-docker"
    deadline = time.monotonic() + 60
    while not any(socket_folder.glob("launch-*.sock")):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the launch server did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


class Rig:
    """A throw-away home, project and runtime folder; the warm server of the served modes."""

    def __init__(self, folder: Path, image: str) -> None:
        self.home = folder / "home"
        self.project = self.home / "Projects" / "bench"
        self.project.mkdir(parents=True)
        self.state = self.home / ".llm-docker"
        self.state.mkdir()
        self.runtime = folder / "run"
        self.runtime.mkdir(mode=0o700)
        self.image = image
        self.keep = KEEP_SECONDS
        self.config(network_host=False)

    def config(self, *, network_host: bool, keep: bool = True) -> None:
        text = f"LLM_DOCKER_IMAGE={self.image}\nLOG_MAX_KILOBYTES=0\nLLM_DOCKER_SSH_ENABLED=false\n"
        if network_host:
            text += "NETWORK_MODE=host\n"
        (self.state / "llm-docker.conf").write_text(text)
        self.keep = KEEP_SECONDS if keep else 0

    def env(self, *, served: bool) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "HOME": str(self.home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
                "TERM": "xterm", "XDG_RUNTIME_DIR": str(self.runtime), **TEST_ENV,
                "GATEWAY_KEEP_SECONDS": str(self.keep), "LLM_DOCKER_LAUNCH_SERVER": "on" if served else "off"}

    def remove_kept_gateways(self) -> None:
        remove_kept_gateways(self.state)

    def server(self) -> contextlib.AbstractContextManager[None]:
        return warm_server(self.env(served=True), self.runtime)

    def cld(self, *, served: bool) -> tuple[dict[str, float], list[Event]]:
        run = _timed([sys.executable, "-c", CLIENT if served else IN_PROCESS, "--", "--version"],
                     env=self.env(served=served), cwd=self.project)
        return run, _events(run, lambda name: name.startswith("llm-docker-claude-"))


def docker_run(image: str, *, session_flags: bool = True) -> tuple[dict[str, float], list[Event]]:
    name = f"llm-docker-bench-{uuid.uuid4().hex[:8]}"
    flags = ["--dangerously-skip-permissions", "--session-id", str(uuid.uuid4())] if session_flags else []
    run = _timed(["docker", "run", "--rm", "--name", name, "--init", "--cap-drop", "ALL", "--security-opt",
                  "no-new-privileges", image, "claude", *flags, "--version"], env=None, cwd=None)
    return run, _events(run, lambda found: found == name)


MODES = ("docker run", "docker run, bare argv", "cld in process", "cld served", "cld served, new gateway",
         "cld served, no gateway")


def run_benchmark(repeat: int, image: str) -> dict[str, dict[str, float]]:
    samples: dict[str, list[tuple[dict[str, float], list[Event]]]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory(prefix="llm-docker-bench-") as folder:
        rig = Rig(Path(folder), image)
        try:
            with rig.server():
                rig.cld(served=False)  # warm-up: page cache, the state database, image checks
                rig.cld(served=True)
                docker_run(image)
                for _ in range(repeat):
                    samples["docker run"].append(docker_run(image))
                    samples["docker run, bare argv"].append(docker_run(image, session_flags=False))
                    rig.config(network_host=False)
                    samples["cld in process"].append(rig.cld(served=False))
                    samples["cld served"].append(rig.cld(served=True))
                    rig.config(network_host=False, keep=False)
                    samples["cld served, new gateway"].append(rig.cld(served=True))
                    rig.config(network_host=True)
                    samples["cld served, no gateway"].append(rig.cld(served=True))
        finally:
            rig.remove_kept_gateways()
    table: dict[str, dict[str, float]] = {}
    for mode, runs in samples.items():
        row = {"first_s": statistics.median(r["first"] for r, _ in runs),
               "total_s": statistics.median(r["total"] for r, _ in runs)}
        parts = [breakdown(r, e) for r, e in runs]
        row.update({phase: statistics.median(p[phase] for p in parts) for phase in PHASES})
        table[mode] = row
    base = table["docker run"]
    for row in table.values():
        row["first_ratio"] = row["first_s"] / base["first_s"]
        row["total_ratio"] = row["total_s"] / base["total_s"]
    return table


def print_table(table: dict[str, dict[str, float]]) -> None:
    print(f"{'mode':<24} {'first s':>8} {'ratio':>6} {'total s':>8} {'ratio':>6}   breakdown (ms): "
          + " | ".join(PHASES))
    for mode, row in table.items():
        parts = " | ".join(f"{row[phase] * 1000:.0f}" for phase in PHASES)
        print(f"{mode:<24} {row['first_s']:>8.3f} {row['first_ratio']:>5.2f}x {row['total_s']:>8.3f} "
              f"{row['total_ratio']:>5.2f}x   {parts}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="rounds (median; default 7)")
    parser.add_argument("--image", help=f"agent image (default {REAL_IMAGE} if present, else {BUSYBOX_IMAGE})")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    arguments = parser.parse_args()
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    image = arguments.image or (REAL_IMAGE if _image_exists(REAL_IMAGE) else BUSYBOX_IMAGE)
    if not _image_exists(image):
        parser.error(f"image {image} does not exist (python -m testbed.images builds the test images)")
    print(f"one launch, median of {arguments.repeat}; image {image}; agent: claude <session flags> --version; "
          f"{os.cpu_count()} CPUs", flush=True)
    table = run_benchmark(arguments.repeat, image)
    print_table(table)
    if arguments.json:
        arguments.json.write_text(json.dumps({"repeat": arguments.repeat, "image": image, "modes": table},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
