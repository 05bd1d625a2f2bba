"""builder-api throughput, latency and WebSocket fan-out, against a baseline in the same run.

    python -m bench.api [--seconds 5] [--clients 16] [--ws-clients 100] [--events 1000] [--json out.json]

* HTTP: `GET /status` with 16 concurrent keep-alive connections (wrk when installed —
  `apt-get install wrk` —, else an httpx load generator), against (a) ours (`llm-docker api`)
  and (b) a baseline with upstream's architecture: a stdlib ThreadingHTTPServer, HTTP/1.0,
  one thread per connection, serving the same JSON. Prints requests/s, p50/p99 latency and
  the ratios.
* WebSocket: 100 clients on `/ws`, 1,000 events published (`POST /log`); p50/p99 delivery
  latency, frames lost by fast clients (must be 0), and the server's RSS before and after
  the burst while one more client is connected and never reads (bounded: drop-oldest).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio
import httpx

from testbed.processes import free_port

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "bench-pw"

BASELINE_SERVER = textwrap.dedent('''
    import json, sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    started = time.time()
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"name": "app", "uptime_s": round(time.time() - started, 2),
                               "runtime": {"enabled": False, "running": False, "pid": None, "uptime_s": None},
                               "current_build": None}, default=str).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *args):
            pass
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_ours(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    root = folder / "root"
    root.mkdir(exist_ok=True)
    config = folder / "builder-api.toml"
    config.write_text(f'[project.app]\nroot = "{root}"\nport = {port}\npassword = "{PASSWORD}"\n'
                      f'[project.app.events]\npath = "events.jsonl"\n'
                      # the fan-out measures 100+ clients: above the default cap (64), which answers 503
                      f'[project.app.security]\nmax_ws_clients = 1000\nmax_followers = 1000\n')
    process = subprocess.Popen([sys.executable, "-m", "cli.admin", "api", "--project", "app", "--config",
                                str(config)], cwd=REPO, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return process, port


def start_baseline() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER, str(port)], stderr=subprocess.DEVNULL)
    wait_listening(port)
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise RuntimeError(f"unexpected wrk latency {text!r}")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_wrk(port: int, seconds: int, clients: int) -> dict[str, float]:
    output = subprocess.run(["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--latency",
                             "-H", f"X-Builder-API-Password: {PASSWORD}",
                             f"http://127.0.0.1:{port}/status"], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"\b(50|99)%\s+([\d.]+(?:us|ms|s))", output))
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    rate_match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate_match is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    rate = float(rate_match.group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": rate, "p50_ms": _ms(latency["50"]), "p99_ms": _ms(latency["99"]),
            "errors": float(errors.group(1)) if errors else 0.0}


async def _load_httpx(port: int, seconds: int, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 headers={"X-Builder-API-Password": PASSWORD}) as client:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                errors += (await client.get("/status")).status_code != 200  # a 401 is not a result
                latencies.append((time.perf_counter() - started) * 1000)

        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(worker)
    quantiles = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / seconds, "p50_ms": quantiles[49], "p99_ms": quantiles[98], "errors": float(errors)}


def load(port: int, seconds: int, clients: int) -> dict[str, float]:
    if shutil.which("wrk"):
        return load_wrk(port, seconds, clients)
    return anyio.run(_load_httpx, port, seconds, clients)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def websocket_fanout(port: int, pid: int, clients: int, events: int) -> dict[str, float]:
    from websockets.asyncio.client import ClientConnection, connect

    url = f"ws://127.0.0.1:{port}/ws?logs=,&key={PASSWORD}"
    received = [0] * clients
    delays: list[float] = []
    done = anyio.Event()
    stalled = await connect(url, max_queue=1, ping_interval=None, proxy=None, close_timeout=1)
    sockets = [await connect(url, max_queue=None, proxy=None) for _ in range(clients)]
    before = rss_kb(pid)
    async with anyio.create_task_group() as group:
        async def reader(index: int, socket: ClientConnection) -> None:
            async for text in socket:
                frame = json.loads(text)
                if frame["type"] == "event" and frame["record"]["type"] == "bench_log":
                    delays.append((time.time() - frame["record"]["client_ts"]) * 1000)
                    received[index] += 1
                    if received[index] == events and all(count == events for count in received):
                        done.set()

        for index, socket in enumerate(sockets):
            group.start_soon(reader, index, socket)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"X-Builder-API-Password": PASSWORD}) as client:
            for number in range(events):
                await client.post("/log", json={"message": f"event {number} " + "x" * 200, "source": "bench",
                                                "timestamp": time.time()})
        with anyio.move_on_after(60):
            await done.wait()
        after = rss_kb(pid)
        group.cancel_scope.cancel()
    for socket in [*sockets, stalled]:
        await socket.close()
    quantiles = statistics.quantiles(delays, n=100) if len(delays) > 1 else [0.0] * 99
    return {"clients": clients, "events": events, "lost_by_fast_clients": clients * events - sum(received),
            "p50_ms": quantiles[49], "p99_ms": quantiles[98], "rss_before_mb": before / 1024,
            "rss_after_mb": after / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--ws-clients", type=int, default=100)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    arguments = parser.parse_args()
    generator = "wrk" if shutil.which("wrk") else "httpx (install wrk for a stronger load)"
    print(f"GET /status, {arguments.clients} keep-alive clients, {arguments.seconds} s, load: {generator}", flush=True)
    with tempfile.TemporaryDirectory(prefix="llm-docker-bench-api-") as folder:
        ours_process, ours_port = start_ours(Path(folder))
        baseline_process, baseline_port = start_baseline()
        try:
            ours = load(ours_port, arguments.seconds, arguments.clients)
            baseline = load(baseline_port, arguments.seconds, arguments.clients)
            print(f"{'':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
            print(f"{'ours (hypercorn, HTTP/1.1)':<34}{ours['rps']:>10.0f}{ours['p50_ms']:>10.2f}"
                  f"{ours['p99_ms']:>10.2f}")
            print(f"{'baseline (threads, HTTP/1.0)':<34}{baseline['rps']:>10.0f}{baseline['p50_ms']:>10.2f}"
                  f"{baseline['p99_ms']:>10.2f}")
            print(f"{'ratio ours/baseline':<34}{ours['rps'] / baseline['rps']:>10.2f}"
                  f"{ours['p50_ms'] / baseline['p50_ms']:>10.2f}{ours['p99_ms'] / baseline['p99_ms']:>10.2f}",
                  flush=True)
            fanout = anyio.run(websocket_fanout, ours_port, ours_process.pid, arguments.ws_clients, arguments.events)
            print(f"WebSocket fan-out: {fanout['events']} events x {fanout['clients']} clients (+1 stalled): "
                  f"p50 {fanout['p50_ms']:.1f} ms, p99 {fanout['p99_ms']:.1f} ms, lost by fast clients "
                  f"{fanout['lost_by_fast_clients']}, server RSS {fanout['rss_before_mb']:.1f} -> "
                  f"{fanout['rss_after_mb']:.1f} MB")
        finally:
            stop(ours_process)
            stop(baseline_process)
    if arguments.json:
        arguments.json.write_text(json.dumps({"ours": ours, "baseline": baseline, "websocket": fanout}, indent=2))


if __name__ == "__main__":
    main()
