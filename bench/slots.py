"""Parallel slot start-up: `llm-docker supervise -n N` against `docker run` baselines.

    python -m bench.slots [--slots 1,4,8,16] [--repeat 3] [--json results.json]

"Ready" is the moment the agent's first output reaches the launcher — for us the
supervisor's attach stream (it prints "N/N slots ready" then), for `docker run` the CLI's
stdout. No polling of the containers on either side. In the same run, with the same
light image (busybox + the fake agent of the tests), it measures:

* ours: one `llm-docker supervise -n N --layout none` process, all N slots in one loop;
* sequential: N `docker run` CLI processes one after the other (upstream's way: one
  window, one `docker run`, then the next);
* parallel: N `docker run` CLI processes started at once.

It prints medians, the ratios ours/baseline, and the supervisor's peak RSS and CPU time
per slot (from `wait4`'s rusage: the supervisor process alone, not Docker's).
"""

from __future__ import annotations

import argparse
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
from pathlib import Path

import aiodocker
import anyio

from testbed.images import BUSYBOX_IMAGE, ensure_test_images
from testbed.isolation import TEST_ENV

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 120.0


def _remove_containers(label_or_names: list[str]) -> None:
    if label_or_names:
        subprocess.run(["docker", "rm", "-f", *label_or_names], capture_output=True)


def _project_containers(project: Path) -> list[str]:
    result = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.llm-docker.project-root={project}"],
                            capture_output=True, text=True)
    return result.stdout.split()


def measure_ours(count: int, home: Path, project: Path) -> dict[str, float]:
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8", **TEST_ENV,
           "TERM": "xterm"}
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "cli.admin", "supervise", "-n", str(count),
                                "--layout", "none", str(project)], env=env, cwd=project,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    seen = b""
    ready_at = None
    needle = f"{count}/{count} slots ready".encode()
    deadline = started + TIMEOUT
    while ready_at is None:
        if time.perf_counter() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"supervise -n {count} did not get ready: {seen.decode(errors='replace')}")
        chunk = os.read(process.stderr.fileno(), 65536)
        seen += chunk
        if needle in seen:
            ready_at = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    leftovers = _project_containers(project)
    _remove_containers(leftovers)
    if leftovers:
        raise RuntimeError(f"supervise left {len(leftovers)} container(s) behind")
    return {"seconds": ready_at - started, "rss_mb": usage.ru_maxrss / 1024,
            "cpu_ms_per_slot": (usage.ru_utime + usage.ru_stime) * 1000 / count}


def _docker_run(name: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["docker", "run", "--rm", "-i", "--name", name, "--init", BUSYBOX_IMAGE,
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


def measure_docker_run(count: int, *, parallel: bool) -> dict[str, float]:
    names = [f"llm-docker-bench-{uuid.uuid4().hex[:8]}" for _ in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    try:
        if parallel:
            processes = [_docker_run(name) for name in names]
            _wait_first_output(processes, started + TIMEOUT)
        else:
            for name in names:
                processes.append(_docker_run(name))
                _wait_first_output(processes[-1:], started + TIMEOUT)
        ready = time.perf_counter() - started
    finally:
        _finish(processes, names)
    return {"seconds": ready}


def _prepare(folder: Path) -> tuple[Path, Path]:
    home = folder / "home"
    project = home / "Projects" / "bench"
    project.mkdir(parents=True)
    state = home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLOG_MAX_KILOBYTES=0\n")
    return home, project


async def _ensure_image() -> None:
    async with aiodocker.Docker() as docker:
        await ensure_test_images(docker)


def run_benchmark(counts: list[int], repeat: int) -> list[dict[str, float]]:
    anyio.run(_ensure_image)
    rows = []
    with tempfile.TemporaryDirectory(prefix="llm-docker-bench-") as folder:
        home, project = _prepare(Path(folder))
        measure_ours(1, home, project)  # warm-up: page cache, first database
        for count in counts:
            ours, sequential, parallel = [], [], []
            for _ in range(repeat):
                # Interleaved, so a slow moment of the machine hits all three alike.
                ours.append(measure_ours(count, home, project))
                sequential.append(measure_docker_run(count, parallel=False)["seconds"])
                parallel.append(measure_docker_run(count, parallel=True)["seconds"])
            median = statistics.median
            row = {
                "slots": count,
                "ours_s": median(r["seconds"] for r in ours),
                "sequential_docker_run_s": median(sequential),
                "parallel_docker_run_s": median(parallel),
                "peak_rss_mb": max(r["rss_mb"] for r in ours),
                "cpu_ms_per_slot": median(r["cpu_ms_per_slot"] for r in ours),
            }
            row["ours_vs_sequential"] = row["ours_s"] / row["sequential_docker_run_s"]
            row["ours_vs_parallel"] = row["ours_s"] / row["parallel_docker_run_s"]
            rows.append(row)
            print_row(row, header=len(rows) == 1)
    return rows


def print_row(row: dict[str, float], *, header: bool) -> None:
    if header:
        print(f"{'N':>3} {'ours s':>8} {'seq run s':>10} {'par run s':>10} {'ours/seq':>9} {'ours/par':>9} "
              f"{'RSS MB':>7} {'CPU ms/slot':>12}")
    print(f"{row['slots']:>3} {row['ours_s']:>8.3f} {row['sequential_docker_run_s']:>10.3f} "
          f"{row['parallel_docker_run_s']:>10.3f} {row['ours_vs_sequential']:>9.2f} {row['ours_vs_parallel']:>9.2f} "
          f"{row['peak_rss_mb']:>7.1f} {row['cpu_ms_per_slot']:>12.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slots", description=__doc__.splitlines()[0])
    parser.add_argument("--slots", default="1,4,8,16", help="comma-separated slot counts (default 1,4,8,16)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per count (median; default 3)")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    arguments = parser.parse_args()
    try:
        counts = [int(part) for part in arguments.slots.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--slots: expected numbers like 1,4,8,16, got {arguments.slots!r}")
    if not counts or any(not 1 <= count <= 99 for count in counts) or arguments.repeat < 1:
        parser.error("--slots must be 1..99 each and --repeat at least 1")
    print(f"parallel slot start-up, median of {arguments.repeat}; image {BUSYBOX_IMAGE}; "
          f"ready = the agent's first output reaches the launcher", flush=True)
    rows = run_benchmark(counts, arguments.repeat)
    if arguments.json:
        arguments.json.write_text(json.dumps({"rows": rows, "repeat": arguments.repeat}, indent=2) + "\n")


if __name__ == "__main__":
    main()
