"""Test hosts for the network policy: network namespaces with veth pairs, made by the tests.

* a "LAN" host, 192.168.231.2 (host end 192.168.231.1);
* two "internet" hosts in the documentation range, 198.51.100.2 and .3 (host end .1), one
  namespace with both addresses, each address with its own HTTP server (it answers
  `internet-2` / `internet-3`) — and a UDP listener on .2:53 that counts what arrives;
* host services in the host's own namespace: one on 127.0.0.1, one on the Docker bridge
  gateway, and an abstract unix socket.

Servers are Debian's busybox-static `httpd` started with `ip netns exec`. Docker's FORWARD
policy is DROP, so narrowly scoped ACCEPT rules for our own veths are added and removed
after; Docker's MASQUERADE routes the containers' traffic. Traffic goes only to these hosts.
Names carry a prefix and the pytest pid; `sweep()` removes only those whose pid is dead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from testbed.processes import free_port

PREFIX = "llmdt"
VETH = "lt"
LAN_HOST = "192.168.231.2"
LAN_SIDE = "192.168.231.1"
INTERNET_A = "198.51.100.2"
INTERNET_B = "198.51.100.3"
INTERNET_SIDE = "198.51.100.1"
BRIDGE_GATEWAY = "172.17.0.1"

_COUNTER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
n = 0
while True:
    s.recvfrom(2048)
    n += 1
    open(sys.argv[2], "w").write(str(n))
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", *args], capture_output=True, text=True)


def _alive(pid: str) -> bool:
    return pid.isdigit() and Path(f"/proc/{pid}").exists()


def sweep() -> None:
    """Remove namespaces, veths and FORWARD rules of earlier runs whose pytest is dead."""
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        found = re.fullmatch(rf"{PREFIX}(\d+)[a-z]+", name)
        if found and not _alive(found.group(1)):
            _ip("netns", "delete", name, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        found = re.search(rf"\d+: ({VETH}(\d+)[a-z])[@:]", line)
        if found and not _alive(found.group(2)):
            _ip("link", "delete", found.group(1), check=False)
    for rule in _iptables("-S", "FORWARD").stdout.splitlines():
        found = re.search(rf"-[io] ({VETH}(\d+)[a-z]) ", rule + " ")
        if found and not _alive(found.group(2)) and rule.startswith("-A "):
            _iptables("-D", *rule.split()[1:])


@dataclasses.dataclass
class NetworkHosts:
    pid: int
    folder: Path
    loopback_port: int
    other_loopback_port: int
    bridge_port: int
    abstract_name: str
    processes: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    rules: list[list[str]] = dataclasses.field(default_factory=list)
    abstract: socket.socket | None = None

    @property
    def lan_ns(self) -> str:
        return f"{PREFIX}{self.pid}lan"

    @property
    def internet_ns(self) -> str:
        return f"{PREFIX}{self.pid}net"

    def veth(self, which: str) -> str:
        return f"{VETH}{self.pid}{which}"

    @property
    def dns_count_file(self) -> Path:
        return self.folder / "dns-count"

    def dns_count(self) -> int:
        try:
            return int(self.dns_count_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _serve(self, argv: list[str]) -> None:
        self.processes.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))

    def _site(self, name: str) -> Path:
        root = self.folder / name
        root.mkdir()
        (root / "index.html").write_text(f"{name}\n")
        return root

    def _namespace(self, namespace: str, host_end: str, peer: str, side: str, addresses: list[str]) -> None:
        _ip("netns", "add", namespace)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", namespace)
        _ip("addr", "add", f"{side}/24", "dev", host_end)
        _ip("link", "set", host_end, "up")
        for address in addresses:
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", peer)
        _ip("-n", namespace, "link", "set", peer, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "route", "add", "default", "via", side)
        for direction in ("-i", "-o"):
            rule = ["FORWARD", direction, host_end, "-j", "ACCEPT"]
            _iptables("-I", *rule)
            self.rules.append(rule)

    def start(self) -> None:
        busybox = shutil.which("busybox") or "/bin/busybox"
        self._namespace(self.lan_ns, self.veth("l"), self.veth("m"), LAN_SIDE, [LAN_HOST])
        self._namespace(self.internet_ns, self.veth("n"), self.veth("o"), INTERNET_SIDE, [INTERNET_A, INTERNET_B])
        self._serve(["ip", "netns", "exec", self.lan_ns, busybox, "httpd", "-f", "-p", f"{LAN_HOST}:80",
                     "-h", str(self._site("lan"))])
        self._serve(["ip", "netns", "exec", self.internet_ns, busybox, "httpd", "-f", "-p", f"{INTERNET_A}:80",
                     "-h", str(self._site("internet-2"))])
        self._serve(["ip", "netns", "exec", self.internet_ns, busybox, "httpd", "-f", "-p", f"{INTERNET_B}:80",
                     "-h", str(self._site("internet-3"))])
        self._serve(["ip", "netns", "exec", self.internet_ns, sys.executable, "-c", _COUNTER, INTERNET_A,
                     str(self.dns_count_file)])
        self._serve([busybox, "httpd", "-f", "-p", f"127.0.0.1:{self.loopback_port}",
                     "-h", str(self._site("host-loopback"))])
        self._serve([busybox, "httpd", "-f", "-p", f"127.0.0.1:{self.other_loopback_port}",
                     "-h", str(self._site("host-other"))])
        self._serve([busybox, "httpd", "-f", "-p", f"{BRIDGE_GATEWAY}:{self.bridge_port}",
                     "-h", str(self._site("host-bridge"))])
        self.abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.abstract.bind("\0" + self.abstract_name)
        self.abstract.listen()
        deadline = time.monotonic() + 10
        for address, port in ((LAN_HOST, 80), (INTERNET_A, 80), (INTERNET_B, 80)):
            namespace = self.lan_ns if address == LAN_HOST else self.internet_ns
            while subprocess.run(["ip", "netns", "exec", namespace, "timeout", "2", busybox, "wget", "-q", "-O",
                                  "/dev/null", f"http://{address}:{port}/"], capture_output=True).returncode != 0:
                assert time.monotonic() < deadline, f"test host {address}:{port} did not start"
                time.sleep(0.05)
        for port in (self.loopback_port, self.other_loopback_port):
            _wait_tcp("127.0.0.1", port, deadline)
        _wait_tcp(BRIDGE_GATEWAY, self.bridge_port, deadline)

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=5)
        if self.abstract is not None:
            self.abstract.close()
        for rule in self.rules:
            _iptables("-D", *rule)
        for namespace in (self.lan_ns, self.internet_ns):
            _ip("netns", "delete", namespace, check=False)
        for end in ("l", "n"):
            _ip("link", "delete", self.veth(end), check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def _wait_tcp(address: str, port: int, deadline: float) -> None:
    while True:
        try:
            socket.create_connection((address, port), timeout=0.5).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"host service {address}:{port} did not start"
            time.sleep(0.05)


@contextlib.contextmanager
def network_hosts() -> Iterator[NetworkHosts]:
    sweep()
    pid = os.getpid()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-"))
    folder.chmod(0o755)
    hosts = NetworkHosts(pid=pid, folder=folder, loopback_port=free_port(), other_loopback_port=free_port(),
                      bridge_port=free_port(), abstract_name=f"{PREFIX}-{pid}-abstract")
    try:
        hosts.start()
        yield hosts
    finally:
        hosts.stop()
