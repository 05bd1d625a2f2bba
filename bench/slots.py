"""Parallel slot start-up: `llm-docker supervise -n N` against `docker run` baselines.

    python -m bench.slots [--slots 1,4,8,16] [--repeat 3] [--json results.json]

Two moments are measured, neither by polling the containers:

* "ready": the agent's first output reaches the launcher — for us the supervisor's attach
  stream (it prints "N/N slots ready" then), for `docker run` the CLI's stdout;
* "started": the engine's container `start` event of the N-th agent container (its
  `timeNano`, read from `docker events --since <t0>`, so an event that came before the
  subscription is replayed, not lost), counted from `t0` on the same wall clock, taken
  just before the first process is spawned.

In the same run, with the same light image (busybox + the fake agent of the tests):

* ours: `llm-docker supervise -n N --layout none` as installed — a client of the warm launch
  server (`cli.launch_client`; the benchmark starts one in a private runtime folder), which
  forks the supervisor: all N slots in one loop (ready, and started: its N agent containers,
  not their gateways), relaunched: every slot takes the gateway its last launch kept
  (`GATEWAY_KEEP_SECONDS`; one launch before the repeats makes them);
* ours, new gateways: the same with `GATEWAY_KEEP_SECONDS=0` — every slot starts a new
  gateway, as a project's first `supervise` does (started);
* ours, in process: `python -m cli.admin supervise` (no server: the imports paid; started),
  whose process is the supervisor: its peak RSS and CPU time are the ones reported;
* sequential: N `docker run` CLI processes one after the other (upstream's way: one
  window, one `docker run`, then the next) — ready;
* parallel: N `docker run` CLI processes started at once — ready;
* detached: N `docker run -d` CLI processes started at once — started (the baseline of
  the "N slots started" target: ours/detached).

`--network gateway` (the default) runs ours as users do: every slot behind its network
gateway (a second container per slot, started and verified before the agent), with SSH.
`--network host` sets `NETWORK_MODE=host` for ours and `--network host` for every `docker
run`: the same container work on both sides, so the difference is the launcher's own cost.

It prints medians, the ratios ours/baseline, the spread of every ratio over the repeats
(min–max: the machine may be shared), the supervisor's peak RSS and CPU time per slot
(from `wait4`'s rusage: the supervisor process alone, not Docker's), and the run's total
time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import aiodocker
import anyio

from bench import engine_events
from bench.launch import remove_kept_gateways, warm_server
from testbed.images import BUSYBOX_IMAGE, ensure_test_images
from testbed.isolation import TEST_ENV

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0
#: The relaunches keep their slots' gateways this long (the bench removes them at its end).
KEEP_SECONDS = 300


def _remove_containers(label_or_names: list[str]) -> None:
    if label_or_names:
        subprocess.run(["docker", "rm", "-f", *label_or_names], capture_output=True)


def _project_containers(project: Path) -> list[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.llm-docker.project-root={project}"],
                            capture_output=True, text=True)
    return result.stdout.split()


def _starts(events: engine_events.Stream, wanted: Callable[[str], bool], count: int, deadline: float) -> list[float]:
    """Seconds from t0 (the subscription's `since`) to each of the first `count` container
    starts `wanted` names: the engine's own stamps, so neither polled nor late."""
    return [event.time - events.since_ns / 1e9 for event in events.first(wanted, count, deadline)]


def _is_agent(project_token: str) -> Callable[[str], bool]:
    """Our agent containers of the bench project (`launch.spec.container_name`), not their
    gateways (`launch.network.gateway_name`)."""
    return lambda name: name.startswith(f"llm-docker-claude-{project_token}-s") and not name.endswith("-gateway")


def ours_env(home: Path, *, keep: bool = True, served: bool = True) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8", **TEST_ENV,
            "TERM": "xterm", "GATEWAY_KEEP_SECONDS": str(KEEP_SECONDS if keep else 0),
            "XDG_RUNTIME_DIR": str(home.parent / "run"), "LLM_DOCKER_LAUNCH_SERVER": "on" if served else "off"}


def measure_ours(count: int, home: Path, project: Path, *, keep: bool = True, served: bool = True) -> dict[str, float]:
    env = ours_env(home, keep=keep, served=served)
    t0_ns = time.time_ns()
    started = time.perf_counter()
    with engine_events.Stream(t0_ns, actions=("start",)) as events:
        return _measure_ours(count, env, project, events, started, served=served)


def _measure_ours(count: int, env: dict[str, str], project: Path, events: engine_events.Stream,
                  started: float, *, served: bool) -> dict[str, float]:
    entry = ["-P", "-c", "from cli.launch_client import admin_main as m; m()"] if served else ["-m", "cli.admin"]
    process = subprocess.Popen([sys.executable, *entry, "supervise", "-n", str(count),
                                "--layout", "none", str(project)], env=env, cwd=project,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    seen = b""
    ready_at = None
    needle = f"{count}/{count} slots ready".encode()
    deadline = started + TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while ready_at is None:
            # bounded: a supervisor that neither prints nor exits must not hang the run
            remaining = deadline - time.perf_counter()
            chunk = os.read(process.stderr.fileno(), 65536) if remaining > 0 and selector.select(remaining) else b""
            if not chunk:  # the time is up, or the supervisor ended
                process.kill()
                process.wait()
                _remove_containers(_project_containers(project))
                raise RuntimeError(f"supervise -n {count} did not get ready: {seen.decode(errors='replace')[-2000:]}")
            seen += chunk
            if needle in seen:
                ready_at = time.perf_counter()
    try:
        starts = _starts(events, _is_agent(project.name), count, deadline)
    except RuntimeError:
        process.kill()
        raise
    process.send_signal(signal.SIGTERM)
    status, usage = _wait4(process, time.perf_counter() + TIMEOUT)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    leftovers = _project_containers(project)
    _remove_containers(leftovers)
    if leftovers:
        raise RuntimeError(f"supervise left {len(leftovers)} container(s) behind")
    return {"seconds": ready_at - started, "started_s": starts[-1], "first_started_s": starts[0],
            "rss_mb": usage.ru_maxrss / 1024,
            "cpu_ms_per_slot": (usage.ru_utime + usage.ru_stime) * 1000 / count}


def _wait4(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, resource.struct_rusage]:
    """`wait4` with a deadline: the supervisor's exit status and rusage, or it is killed
    (and the run fails) when it does not end in time."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            return status, usage
        if time.perf_counter() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise RuntimeError("supervise did not end within the time limit after SIGTERM")
        time.sleep(0.02)


def _docker_run(name: str, network: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["docker", "run", "--rm", "-i", "--name", name, "--init", *network, BUSYBOX_IMAGE,
                             "claude", "--session-id", str(uuid.uuid4())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def _wait_first_output(processes: list[subprocess.Popen[bytes]], deadline: float) -> None:
    with selectors.DefaultSelector() as selector:
        for process in processes:
            assert process.stdout is not None
            selector.register(process.stdout, selectors.EVENT_READ)
        waiting = len(processes)
        while waiting:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise RuntimeError("docker run did not print within the time limit")
            for key, _ in selector.select(remaining):
                selector.unregister(key.fileobj)
                waiting -= 1


def _finish(processes: list[subprocess.Popen[bytes]], names: list[str]) -> None:
    for process in processes:
        try:
            assert process.stdin is not None
            process.stdin.close()  # EOF: the fake agent exits, --rm removes the container
        except OSError:
            pass
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    _remove_containers(names)


def measure_docker_run(count: int, network: list[str], *, parallel: bool) -> dict[str, float]:
    names = [f"llm-docker-bench-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    try:
        if parallel:
            processes = [_docker_run(name, network) for name in names]
            _wait_first_output(processes, started + TIMEOUT)
        else:
            for name in names:
                processes.append(_docker_run(name, network))
                _wait_first_output(processes[-1:], started + TIMEOUT)
        ready = time.perf_counter() - started
    finally:
        _finish(processes, names)
    return {"seconds": ready}


def measure_detached(count: int, network: list[str]) -> dict[str, float]:
    """N `docker run -d` CLI processes at once: until the engine started all N containers.
    `-i` keeps the fake agent's stdin open, so it runs until it is removed."""
    names = [f"llm-docker-bench-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    t0_ns = time.time_ns()
    started = time.perf_counter()
    events = engine_events.Stream(t0_ns, actions=("start",))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes = [subprocess.Popen(["docker", "run", "-d", "-i", "--rm", "--name", name, "--init", *network,
                                       BUSYBOX_IMAGE, "claude", "--session-id", str(uuid.uuid4())],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for name in names]
        starts = _starts(events, set(names).__contains__, count, started + TIMEOUT)
        for process in processes:
            process.wait(timeout=TIMEOUT)
        returned = time.perf_counter() - started
    finally:
        events.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        _remove_containers(names)
    return {"seconds": starts[-1], "cli_returned_s": returned}


def _prepare(folder: Path, network: str) -> tuple[Path, Path]:
    home = folder / "home"
    project = home / "Projects" / "bench"
    project.mkdir(parents=True)
    state = home / ".llm-docker"
    state.mkdir()
    host = "NETWORK_MODE=host\n" if network == "host" else ""
    (state / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLOG_MAX_KILOBYTES=0\n{host}")
    return home, project


async def _ensure_image() -> None:
    async with aiodocker.Docker() as docker:
        await ensure_test_images(docker)


def run_benchmark(counts: list[int], repeat: int, network: str = "gateway") -> list[dict[str, float]]:
    anyio.run(_ensure_image)
    rows = []
    flags = ["--network", "host"] if network == "host" else []
    with tempfile.TemporaryDirectory(prefix="llm-docker-bench-") as folder:
        home, project = _prepare(Path(folder), network)
        runtime = Path(folder) / "run"
        runtime.mkdir(mode=0o700)
        try:
            with warm_server(ours_env(home), runtime):
                measure_ours(1, home, project)  # warm-up: page cache, first database
                for count in counts:
                    rows.append(_measure_count(count, repeat, home, project, flags))
                    print_row(rows[-1], header=len(rows) == 1)
        finally:
            remove_kept_gateways(home)
    return rows


def _measure_count(count: int, repeat: int, home: Path, project: Path, flags: list[str]) -> dict[str, float]:
    measure_ours(count, home, project)  # every slot's gateway kept for the relaunches
    ours, new, in_process, sequential, parallel, detached = [], [], [], [], [], []
    for _ in range(repeat):
        # Interleaved, so a slow moment of the machine hits all of them alike.
        ours.append(measure_ours(count, home, project))
        new.append(measure_ours(count, home, project, keep=False))
        in_process.append(measure_ours(count, home, project, served=False))
        detached.append(measure_detached(count, flags)["seconds"])
        sequential.append(measure_docker_run(count, flags, parallel=False)["seconds"])
        parallel.append(measure_docker_run(count, flags, parallel=True)["seconds"])
    median = statistics.median
    started_ratios = [r["started_s"] / d for r, d in zip(ours, detached, strict=True)]
    ready_ratios = [r["seconds"] / p for r, p in zip(ours, parallel, strict=True)]
    new_ratios = [r["started_s"] / d for r, d in zip(new, detached, strict=True)]
    in_process_ratios = [r["started_s"] / d for r, d in zip(in_process, detached, strict=True)]
    row = {
        "slots": count,
        "ours_s": median(r["seconds"] for r in ours),
        "sequential_docker_run_s": median(sequential),
        "parallel_docker_run_s": median(parallel),
        "ours_started_s": median(r["started_s"] for r in ours),
        "new_gateways_started_s": median(r["started_s"] for r in new),
        "detached_docker_run_started_s": median(detached),
        "peak_rss_mb": max(r["rss_mb"] for r in in_process),
        "cpu_ms_per_slot": median(r["cpu_ms_per_slot"] for r in in_process),
        "started_vs_detached_min": min(started_ratios),
        "started_vs_detached_max": max(started_ratios),
        "ours_vs_parallel_min": min(ready_ratios),
        "ours_vs_parallel_max": max(ready_ratios),
        "new_gateways_vs_detached": median(new_ratios),
        "in_process_vs_detached": median(in_process_ratios),
    }
    row["ours_vs_sequential"] = row["ours_s"] / row["sequential_docker_run_s"]
    row["ours_vs_parallel"] = row["ours_s"] / row["parallel_docker_run_s"]
    row["started_vs_detached"] = median(started_ratios)
    return row


def print_row(row: dict[str, float], *, header: bool) -> None:
    if header:
        print(f"{'N':>3} {'ours s':>8} {'seq run s':>10} {'par run s':>10} {'ours/seq':>9} {'ours/par':>15} "
              f"{'started s':>10} {'run -d s':>9} {'started/run -d':>20} {'new gw/run -d':>14} "
              f"{'in proc/run -d':>15} {'RSS MB':>7} {'CPU ms/slot':>12}")
    par = f"{row['ours_vs_parallel']:.2f} ({row['ours_vs_parallel_min']:.2f}-{row['ours_vs_parallel_max']:.2f})"
    det = (f"{row['started_vs_detached']:.2f} ({row['started_vs_detached_min']:.2f}-"
           f"{row['started_vs_detached_max']:.2f})")
    print(f"{row['slots']:>3} {row['ours_s']:>8.3f} {row['sequential_docker_run_s']:>10.3f} "
          f"{row['parallel_docker_run_s']:>10.3f} {row['ours_vs_sequential']:>9.2f} {par:>15} "
          f"{row['ours_started_s']:>10.3f} {row['detached_docker_run_started_s']:>9.3f} {det:>20} "
          f"{row['new_gateways_vs_detached']:>14.2f} {row['in_process_vs_detached']:>15.2f} "
          f"{row['peak_rss_mb']:>7.1f} {row['cpu_ms_per_slot']:>12.1f}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slots", description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="1,4,8,16", help="comma-separated slot counts (default 1,4,8,16)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per count (median; default 3)")
    parser.add_argument("--network", choices=("gateway", "host"), default="gateway",
                        help="gateway: ours as users run it (a gateway per slot); host: NETWORK_MODE=host for ours "
                             "and --network host for docker run (the same container work on both sides)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    arguments = parser.parse_args()
    try:
        counts = [int(part) for part in arguments.slots.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--slots: expected numbers like 1,4,8,16, got {arguments.slots!r}")
    if not counts or any(not 1 <= count <= 99 for count in counts) or arguments.repeat < 1:
        parser.error("--slots must be 1..99 each and --repeat at least 1")
    print(f"parallel slot start-up, median of {arguments.repeat} (min-max of the ratio); image {BUSYBOX_IMAGE}; "
          f"network {arguments.network}; "
          "ready = the agent's first output reaches the launcher; started = the N-th container start event "
          "(target: started/run -d <= 0.85 at N=8)", flush=True)
    began = time.perf_counter()
    rows = run_benchmark(counts, arguments.repeat, arguments.network)
    total = time.perf_counter() - began
    print(f"total {total:.0f} s", flush=True)
    if arguments.json:
        arguments.json.write_text(json.dumps({"rows": rows, "repeat": arguments.repeat, "network": arguments.network,
                                              "total_s": total},
                                             indent=2) + "\n")


if __name__ == "__main__":
    main()
