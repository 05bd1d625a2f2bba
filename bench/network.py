"""What a slot's network gateway costs: launch time and memory, against the launch without it.

    python -m bench.network [--repeat 7] [--json results.json]

In the same run, with the same light image (busybox + the fake agent of the tests), it
launches `cld -- -p x --fake-sh true` (start, run, exit, remove: the whole life of a slot,
until the launcher's process has exited — the user's prompt is back) in turn with:

* `host`: `NETWORK_MODE=host` — no gateway, the host's network: what a launch was before the
  network policy, "the launch without it". THE baseline of the target.
* `bridge`: `NETWORK_MODE=host` + `INTERNET_ACCESS=false` — no gateway, the agent on a
  Docker bridge network of its own (llm-docker-offline): what any network namespace costs
  the engine, shown so the gateway's own share is visible.
* `gateway`: the default — the slot's gateway, its checks, the agent in its namespace.

and prints the medians, the difference per slot and the ratio against each baseline. Then
it keeps one gateway running and reads its memory from the engine's cgroup figures
(`docker stats`' number: usage minus page cache). Targets: ≤ 150 ms more per launch than
`host`, ≤ 15 MB per gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiodocker  # only for testbed.images.ensure_test_images, which still takes an aiodocker client
import anyio

from engine.client import Engine
from testbed.images import BUSYBOX_IMAGE, ensure_test_images
from testbed.isolation import TEST_ENV

REPO = Path(__file__).resolve().parent.parent
ENTRY = "from cli.launchers import cld_main as m; m()"


def _environment(home: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "PYTHONPATH": str(REPO), "LANG": "C.UTF-8",
            **TEST_ENV}  # the tests' own image names (testbed/isolation.py), never the user's


MODES = {"host": "NETWORK_MODE=host\n", "bridge": "NETWORK_MODE=host\nINTERNET_ACCESS=false\n",
         "gateway": "NETWORK_MODE=gateway\n"}


def _configure(home: Path, mode: str) -> None:
    (home / ".llm-docker" / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\n{MODES[mode]}")


def launch_seconds(home: Path, project: Path, mode: str) -> float:
    _configure(home, mode)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", ENTRY, "--", "-p", "x", "--fake-sh", "true"], cwd=project,
                            env=_environment(home), stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"launch ({mode}) failed: {result.stderr.decode(errors='replace')[-500:]}")
    return elapsed


async def gateway_memory(home: Path, project: Path) -> float:
    """MiB used by a running gateway (cgroup usage minus cache, as `docker stats` shows)."""
    _configure(home, "gateway")
    launch = subprocess.Popen([sys.executable, "-c", ENTRY, "--", "-p", "x", "--fake-sh", "sleep 20"], cwd=project,
                              env=_environment(home), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        async with Engine() as engine:
            filters = {"label": [f"io.llm-docker.launcher-pid={launch.pid}", "io.llm-docker.gateway-for"],
                       "status": ["running"]}
            for _ in range(300):
                found = await engine.containers.list(filters=filters)
                if found:
                    break
                await anyio.sleep(0.1)
            else:
                raise SystemExit("no gateway came up")
            await anyio.sleep(2)  # settled: rules loaded, resolver up, checks done
            stats = (await found[0].stats())["memory_stats"]
            cache = (stats.get("stats") or {}).get("cache", (stats.get("stats") or {}).get("inactive_file", 0))
            return float(stats["usage"] - cache) / 2**20
    finally:
        launch.terminate()
        launch.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()

    async def images() -> None:
        async with aiodocker.Docker() as docker:
            await ensure_test_images(docker)

    anyio.run(images, backend="asyncio")
    with tempfile.TemporaryDirectory(prefix="llm-docker-bench-network-") as folder:
        home = Path(folder)
        (home / ".llm-docker").mkdir()
        project = home / "Projects" / "app"
        project.mkdir(parents=True)
        for mode in MODES:
            launch_seconds(home, project, mode)  # warm: the images, the offline network, caches
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(arguments.repeat):
            for mode in MODES:  # in turn, so a busy moment of the machine hits every mode alike
                samples[mode].append(launch_seconds(home, project, mode))
        memory = anyio.run(gateway_memory, home, project, backend="asyncio")
    host, bridge, gateway = (statistics.median(samples[mode]) for mode in MODES)
    row = {"launch_without_gateway_s": round(host, 3), "launch_bridge_without_gateway_s": round(bridge, 3),
           "launch_with_gateway_s": round(gateway, 3),
           "overhead_ms": round((gateway - host) * 1000), "ratio": round(gateway / host, 2),
           "overhead_vs_bridge_ms": round((gateway - bridge) * 1000), "ratio_vs_bridge": round(gateway / bridge, 2),
           "gateway_memory_mib": round(memory, 1)}
    print(f"launch (start → exit → removed, prompt back), median of {arguments.repeat}:")
    print(f"  without gateway, host network (NETWORK_MODE=host)        {host * 1000:8.0f} ms   = the baseline")
    print(f"  without gateway, bridge network (+INTERNET_ACCESS=false) {bridge * 1000:8.0f} ms")
    print(f"  with gateway (default)                                   {gateway * 1000:8.0f} ms   "
          f"+{row['overhead_ms']} ms   ratio {row['ratio']}x   (target ≤ +150 ms over host)")
    print(f"  gateway against the bridge baseline: {row['overhead_vs_bridge_ms']:+d} ms   "
          f"ratio {row['ratio_vs_bridge']}x")
    print(f"gateway memory: {memory:.1f} MiB (target ≤ 15 MB)")
    if arguments.json:
        arguments.json.write_text(json.dumps({"samples": samples, **row}, indent=2))


if __name__ == "__main__":
    main()
