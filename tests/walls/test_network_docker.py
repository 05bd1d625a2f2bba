"""The network wall, attacked from a real cage on the real engine (docs/security.md, "Network").

The launcher runs as the unprivileged `user`; the busybox test image's fake agent runs the
attack (`--fake-sh`). Test hosts are network namespaces (`testbed/netns.py`). Before a test
asserts that the policy blocks a host, a plain container (no product, our own label)
reaches that same host — otherwise a broken test network would look like a working wall.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiodocker
import anyio
import pytest

from testbed.agent_images import build_gateway_image
from testbed.images import BUSYBOX_IMAGE
from testbed.isolation import TEST_GATEWAY_IMAGE
from testbed.netns import BRIDGE_GATEWAY, INTERNET_A, INTERNET_B, LAN_HOST, NetworkHosts, network_hosts
from testbed.unprivileged import User

pytestmark = pytest.mark.docker
CONTROL_LABEL = "io.llm-docker.test-network-control"


@pytest.fixture(scope="module")
def hosts() -> Iterator[NetworkHosts]:
    _ensure_gateway_image()
    with network_hosts() as made:
        yield made


def _ensure_gateway_image() -> None:
    """The tests' own gateway image, built through the product's own command."""
    with tempfile.TemporaryDirectory(prefix="llm-docker-test-gateway-") as home:
        result = build_gateway_image(Path(home))
    assert result.returncode == 0, result.stderr[-2000:]


def _run_once(config: dict[str, object]) -> str:
    """Create a container of ours from `config`, run it to the end, remove it; its output."""
    async def run() -> str:
        async with aiodocker.Docker() as docker:
            container = await docker.containers.create(config={**config, "Labels": {CONTROL_LABEL: str(os.getpid())}})
            try:
                await container.start()
                await container.wait(timeout=60)
                return "".join(await container.log(stdout=True, stderr=True))
            finally:
                await container.delete(force=True)

    return anyio.run(run, backend="asyncio")


def control(command: str, *, network: str = "bridge") -> str:
    """Run `command` in a plain busybox container (no llm-docker), return its output."""
    return _run_once({"Image": BUSYBOX_IMAGE, "Cmd": ["/bin/sh", "-c", command],
                      "HostConfig": {"NetworkMode": network}})


def fetch(url: str, tag: str) -> str:
    """A shell snippet: `TAG:<body or FAILED>` — bounded with `timeout` (busybox wget -T crashes)."""
    return f'echo "{tag}:$(timeout 4 wget -q -O- {url} 2>/dev/null || echo FAILED)";'


def results(output: str) -> dict[str, str]:
    found = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.startswith("R_"):
            found[key] = value.strip()
    return found


def cage(user: User, project: Path, script: str, *settings: str,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    lines = [f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}", "LLM_DOCKER_SSH_ENABLED=false", *settings]  # no sshd in it
    user.write(user.state_home / "llm-docker.conf", "\n".join(lines) + "\n", mode=0o600)
    return user.run("cld", "--", "-p", "x", "--fake-sh", script, cwd=project, timeout=timeout)


def launched(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.returncode == 0, result.stderr
    return results(result.stdout)


def test_default_internet_open_host_closed(user: User, hosts: NetworkHosts) -> None:
    # the test network works: a plain container reaches every target below
    plain = control(fetch(f"http://{INTERNET_A}/", "R_A")
                    + fetch(f"http://{BRIDGE_GATEWAY}:{hosts.bridge_port}/", "R_BRIDGE"))
    assert results(plain) == {"R_A": "internet-2", "R_BRIDGE": "host-bridge"}, plain
    host_net = control(fetch(f"http://127.0.0.1:{hosts.loopback_port}/", "R_LOOP")
                       + f'echo "R_ABSTRACT:$(grep -c {hosts.abstract_name} /proc/net/unix)";', network="host")
    assert results(host_net) == {"R_LOOP": "host-loopback", "R_ABSTRACT": "1"}, host_net

    script = (fetch(f"http://{INTERNET_A}/", "R_A") + fetch(f"http://{INTERNET_B}/", "R_B")
              + fetch(f"http://127.0.0.1:{hosts.loopback_port}/", "R_LOOP")
              + fetch(f"http://host.docker.internal:{hosts.loopback_port}/", "R_HDI")
              + fetch(f"http://{BRIDGE_GATEWAY}:{hosts.bridge_port}/", "R_BRIDGE")
              + f'echo "R_ABSTRACT:$(grep -c {hosts.abstract_name} /proc/net/unix)";')
    found = launched(cage(user, user.project(), script))
    assert found == {"R_A": "internet-2", "R_B": "internet-3", "R_LOOP": "FAILED", "R_HDI": "FAILED",
                     "R_BRIDGE": "FAILED", "R_ABSTRACT": "0"}


def test_internet_off_keeps_the_lan(user: User, hosts: NetworkHosts) -> None:
    plain = control(fetch(f"http://{LAN_HOST}/", "R_LAN") + fetch(f"http://{INTERNET_A}/", "R_A"))
    assert results(plain) == {"R_LAN": "lan", "R_A": "internet-2"}, plain
    found = launched(cage(user, user.project(), fetch(f"http://{LAN_HOST}/", "R_LAN")
                          + fetch(f"http://{INTERNET_A}/", "R_A"), "INTERNET_ACCESS=false"))
    assert found == {"R_LAN": "lan", "R_A": "FAILED"}


def test_egress_allow_by_address_and_by_domain(user: User, hosts: NetworkHosts) -> None:
    plain = control(fetch(f"http://{INTERNET_A}/", "R_A") + fetch(f"http://{INTERNET_B}/", "R_B"))
    assert results(plain) == {"R_A": "internet-2", "R_B": "internet-3"}, plain
    script = fetch(f"http://{INTERNET_A}/", "R_A") + fetch(f"http://{INTERNET_B}/", "R_B")
    assert launched(cage(user, user.project(), script, f"EGRESS_ALLOW={INTERNET_A}")) == {
        "R_A": "internet-2", "R_B": "FAILED"}

    hosts_file = user.write(user.home / "resolver-hosts",
                            f"{INTERNET_A} allowed.example.test\n{INTERNET_B} other.example.test\n")
    script += fetch("http://allowed.example.test/", "R_NAME") + fetch("http://other.example.test/", "R_OTHER")
    found = launched(cage(user, user.project(), script, "EGRESS_ALLOW=allowed.example.test",
                          f"RESOLVER_HOSTS_FILE={hosts_file}"))
    assert found == {"R_A": "internet-2", "R_B": "FAILED", "R_NAME": "internet-2", "R_OTHER": "FAILED"}


def test_lan_off_and_only_granted_host_ports(user: User, hosts: NetworkHosts) -> None:
    plain = control(fetch(f"http://{LAN_HOST}/", "R_LAN"))
    assert results(plain) == {"R_LAN": "lan"}, plain
    script = (fetch(f"http://{LAN_HOST}/", "R_LAN")
              + fetch(f"http://host.docker.internal:{hosts.loopback_port}/", "R_GRANTED")
              + fetch(f"http://host.docker.internal:{hosts.other_loopback_port}/", "R_OTHER")
              + fetch(f"http://{BRIDGE_GATEWAY}:{hosts.bridge_port}/", "R_BRIDGE")
              + fetch(f"http://{INTERNET_A}/", "R_A"))
    found = launched(cage(user, user.project(), script, "LAN_ACCESS=false", f"HOST_PORTS={hosts.loopback_port}"))
    assert found == {"R_LAN": "FAILED", "R_GRANTED": "host-loopback", "R_OTHER": "FAILED", "R_BRIDGE": "FAILED",
                     "R_A": "internet-2"}


def test_the_cage_cannot_change_its_network_and_metadata_ipv6_dns_stay_closed(user: User,
                                                                              hosts: NetworkHosts) -> None:
    before = hosts.dns_count()
    plain = control(f"timeout 3 nslookup probe.test {INTERNET_A} >/dev/null 2>&1; echo R_DONE:1")
    assert "R_DONE:1" in plain
    deadline = time.monotonic() + 5
    while hosts.dns_count() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hosts.dns_count() > before, "a plain container's DNS packet did not reach the test host"
    before = hosts.dns_count()
    script = (
        'echo "R_CAPS:$(grep CapEff /proc/self/status | tr -d "[:space:]")";'
        'ip route del default 2>/dev/null; echo "R_ROUTE:$?";'
        'ip link set eth0 down 2>/dev/null; echo "R_LINK:$?";'
        'ip addr add 10.9.9.9/32 dev lo 2>/dev/null; echo "R_ADDR:$?";'
        + fetch(f"http://{BRIDGE_GATEWAY}:{hosts.bridge_port}/", "R_BRIDGE")
        + fetch("http://169.254.169.254/", "R_METADATA")
        + fetch("http://[fd00:ec2::254]/", "R_METADATA6")
        + 'echo "R_IPV6:$(ip -6 addr show scope global | grep -c inet6)";'
        + f"timeout 3 nslookup probe.test {INTERNET_A} >/dev/null 2>&1; echo R_DNS:$?;"
        + fetch(f"http://{INTERNET_A}/", "R_A")
    )
    found = launched(cage(user, user.project(), script))
    assert found["R_CAPS"] == "CapEff:0000000000000000"
    assert found["R_ROUTE"] != "0" and found["R_LINK"] != "0" and found["R_ADDR"] != "0"
    assert found["R_BRIDGE"] == found["R_METADATA"] == found["R_METADATA6"] == "FAILED"
    assert found["R_IPV6"] == "0"
    assert found["R_A"] == "internet-2"  # the policy held after the attempts
    time.sleep(1)
    assert hosts.dns_count() == before, "a DNS query from the cage reached the outside host"


def test_nft_and_iptables_in_the_cages_namespace_fail(user: User, hosts: NetworkHosts) -> None:
    """The tools that could change the rules, run in the cage's namespace with the cage's
    privileges (the agent image has none of them; the gateway image does)."""
    project = user.project()
    user.write(user.state_home / "llm-docker.conf", f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n",
               mode=0o600)
    launch = user.popen("cld", "--", "-p", "x", "--fake-sh", "sleep 30", cwd=project,
                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        gateway = _wait_for_gateway(launch.pid)
        attack = ("nft flush ruleset; echo R_NFT:$?; iptables -P OUTPUT ACCEPT 2>/dev/null; echo R_IPT:$?;"
                  "nft list ruleset >/dev/null 2>&1; echo R_LIST:$?")
        output = _run_in_namespace(gateway, attack)
        found = results(output)
        assert found["R_NFT"] != "0" and found["R_IPT"] != "0" and found["R_LIST"] != "0", output
        check = user.run("llm-docker", "status", "--check", cwd=project)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "FAIL" not in check.stdout and "ok block" in check.stdout
    finally:
        launch.kill()
        launch.wait()


def _wait_for_gateway(launcher_pid: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in _containers(launcher_pid):
            if name.endswith("-gateway") and _running(name[: -len("-gateway")]):
                return name
        time.sleep(0.2)
    raise AssertionError("no running gateway + agent")


def _containers(launcher_pid: int) -> list[str]:
    result = subprocess.run(["docker", "ps", "-a", "--filter", f"label=io.llm-docker.launcher-pid={launcher_pid}",
                             "--format", "{{.Names}}"], capture_output=True, text=True)
    return result.stdout.split()


def _running(name: str) -> bool:
    result = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", name], capture_output=True, text=True)
    return result.stdout.strip() == "true"


def _run_in_namespace(gateway: str, command: str) -> str:
    """The gateway image's tools in the gateway's (= the cage's) namespace, as uid 1000
    with every capability dropped and no-new-privileges — the agent's own privileges."""
    return _run_once({"Image": TEST_GATEWAY_IMAGE, "Entrypoint": ["/bin/sh", "-c"], "Cmd": [command],
                      "User": "1000:1000", "HostConfig": {"NetworkMode": f"container:{gateway}", "CapDrop": ["ALL"],
                                     "SecurityOpt": ["no-new-privileges:true"]}})


@pytest.mark.parametrize("keep", ["0", "600"])
def test_sigkill_of_the_launcher_removes_agent_and_gateway(user: User, hosts: NetworkHosts, keep: str) -> None:
    """With GATEWAY_KEEP_SECONDS too: only a normal end keeps a gateway (its last word)."""
    project = user.project()
    user.write(user.state_home / "llm-docker.conf", f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n",
               mode=0o600)
    launch = user.popen("cld", "--", "-p", "x", "--fake-sh", "sleep 120", cwd=project,
                        env={"GATEWAY_KEEP_SECONDS": keep}, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
    _wait_for_gateway(launch.pid)
    assert len(_containers(launch.pid)) == 2
    os.kill(launch.pid, signal.SIGKILL)
    launch.wait()
    killed = time.monotonic()
    while _containers(launch.pid):
        assert time.monotonic() - killed < 10, f"left behind: {_containers(launch.pid)}"
        time.sleep(0.2)


@pytest.mark.parametrize("image", [BUSYBOX_IMAGE, "llm-docker-no-such-gateway:latest"])
def test_a_broken_gateway_refuses_to_start_the_agent(user: User, hosts: NetworkHosts, image: str) -> None:
    result = cage(user, user.project(), 'echo "R_AGENT_RAN:1"', f"GATEWAY_IMAGE={image}")
    assert result.returncode != 0
    assert "R_AGENT_RAN" not in result.stdout
    assert "no agent" in result.stderr or "the agent was not started" in result.stderr, result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) <= 2, result.stderr


def test_status_shows_the_policy(user: User, hosts: NetworkHosts) -> None:
    project = user.project()
    user.write(user.state_home / "llm-docker.conf",
               f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\nINTERNET_ACCESS=false\n", mode=0o600)
    launch = user.popen("cld", "--", "-p", "x", "--fake-sh", "sleep 30", cwd=project,
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_gateway(launch.pid)
        shown = user.run("llm-docker", "status", "--json", cwd=project)
        rows = [row for row in json.loads(shown.stdout) if row["project"] == str(project)]
        assert rows and rows[0]["network"].startswith("no internet; LAN"), rows
    finally:
        launch.kill()
        launch.wait()
