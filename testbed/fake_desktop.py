"""A stand-in for Docker Desktop on Linux, for the tests of `engine.desktop`: a fake
`systemctl` on PATH that records each call and (optionally) starts a fake engine after a
delay — a unix-socket HTTP server answering `/_ping`, `/version` and `/info` as Desktop
does (`OperatingSystem: Docker Desktop`) and 404 to anything else. The real engine is
never involved: the launches under test reach the fake socket through a Docker context in
a throw-away home, exactly as Desktop configures one (`desktop-linux`).

`python -m testbed.fake_desktop SOCKET LOG DELAY` runs the fake engine (the fake
`systemctl` starts it, in its own session, and writes its pid next to LOG).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import socketserver
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[1]
CONTEXT = "desktop-linux"
VERSION: dict[str, Any] = {"Version": "28.0.4", "ApiVersion": "1.41", "MinAPIVersion": "1.24", "Os": "linux",
                           "Arch": "amd64", "Platform": {"Name": "Docker Desktop 4.40.0 (fake)"},
                           "Components": [{"Name": "Engine", "Version": "28.0.4"}]}
INFO: dict[str, Any] = {"OperatingSystem": "Docker Desktop", "Name": "docker-desktop", "OSType": "linux"}


def desktop_home(home: Path) -> Path:
    """Make `home` look like a Linux user's with Docker Desktop installed and stopped: the
    `desktop-linux` context is current and points at `~/.docker/desktop/docker.sock`, which
    does not exist yet. Returns that socket's path."""
    socket = home / ".docker" / "desktop" / "docker.sock"
    socket.parent.mkdir(parents=True)
    meta = home / ".docker" / "contexts" / "meta" / hashlib.sha256(CONTEXT.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": CONTEXT, "Metadata": {},
                                "Endpoints": {"docker": {"Host": f"unix://{socket}", "SkipTLSVerify": False}}}))
    (home / ".docker" / "config.json").write_text(json.dumps({"currentContext": CONTEXT}))
    return socket


def install_systemctl(bin_dir: Path, *, socket: Path, log: Path, delay: float, starts: bool = True) -> Path:
    """A fake `systemctl` in `bin_dir`: appends its arguments to `log`; with `starts`, runs
    the fake engine on `socket` after `delay` seconds (detached, like a user service)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    start = (f'setsid "{sys.executable}" -m testbed.fake_desktop "{socket}" "{log}" {delay} '
             '</dev/null >/dev/null 2>&1 &') if starts else ":"
    script = bin_dir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\ncd "{REPO}"\n{start}\nexit 0\n')
    script.chmod(0o755)
    return script


def started(log: Path) -> list[str]:
    """The calls the fake `systemctl` recorded."""
    return log.read_text().splitlines() if log.exists() else []


def stop_engine(log: Path) -> None:
    """End the fake engine the fake `systemctl` started (by the pid it wrote), if any."""
    pid_file = log.with_suffix(".pid")
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: Path

    def do_GET(self) -> None:
        with self.requests.open("a") as log:
            log.write(self.path + "\n")
        path = self.path.split("?", 1)[0]
        if path.endswith("/_ping"):
            self._reply(200, b"OK", "text/plain")
        elif path.endswith("/version"):
            self._reply(200, json.dumps(VERSION).encode(), "application/json")
        elif path.endswith("/info"):
            self._reply(200, json.dumps(INFO).encode(), "application/json")
        else:
            self._reply(404, json.dumps({"message": "fake Docker Desktop: not here"}).encode(), "application/json")

    def _reply(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(socket: Path, log: Path, delay: float) -> None:
    log.with_suffix(".pid").write_text(str(os.getpid()))
    time.sleep(delay)  # a VM takes a while to boot
    _Handler.requests = log.with_suffix(".requests")
    with socketserver.ThreadingUnixStreamServer(str(socket), _Handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
