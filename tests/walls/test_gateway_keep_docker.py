"""A slot's gateway kept for its next launch (`GATEWAY_KEEP_SECONDS`), attacked from real cages.

A kept gateway is a network namespace that outlives one agent and serves the next: what must
hold, on the real engine, with the launcher as the unprivileged `user`:

* the relaunch takes it (the same container, renamed for the new launch) and its policy holds;
  nothing the first agent left running in the namespace is there for the second, and no
  cage sees the gateway's lease folder;
* a launch whose policy differs never takes it: the new policy is the one in force, and the
  stale gateway is removed;
* a gateway that does not answer on its lease socket is neither taken nor removed (another
  launch may be using it), and the launch runs with a new one; nor is one in use;
* nobody comes: it ends by itself, and the engine removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.images import BUSYBOX_IMAGE
from testbed.netns import BRIDGE_GATEWAY, INTERNET_A, INTERNET_B, NetworkHosts
from testbed.unprivileged import User
from tests.walls.test_network_docker import control, fetch, hosts, launched, results

pytestmark = pytest.mark.docker
__all__ = ["hosts"]  # the module fixture: the gateway image and the test network

KEPT_LABEL = "io.llm-docker.gateway-slot"
LISTEN_PORT = 7777


def _kept(user: User) -> list[dict[str, Any]]:
    """The user's gateways that carry a slot label (kept, or in use), as `docker inspect` has them."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={KEPT_LABEL}"], capture_output=True,
                         text=True).stdout.split()
    if not ids:
        return []
    shown = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True).stdout or "[]")
    return [info for info in shown
            if any(Path(m["Source"]).is_relative_to(user.state_home) for m in info.get("Mounts") or ())]


@pytest.fixture()
def keeping(user: User) -> Iterator[User]:
    try:
        yield user
    finally:
        for info in _kept(user):
            subprocess.run(["docker", "rm", "-f", str(info["Id"])], capture_output=True)


def _cage(user: User, project: Path, script: str, *settings: str, keep: int = 60) -> dict[str, str]:
    ssh_set = any(line.startswith("LLM_DOCKER_SSH_ENABLED=") for line in settings)
    ssh = [] if ssh_set else ["LLM_DOCKER_SSH_ENABLED=false"]  # the busybox image has no sshd
    lines = [f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}", *ssh, *settings]
    user.write(user.state_home / "llm-docker.conf", "\n".join(lines) + "\n", mode=0o600)
    return launched(user.run("cld", "--", "-p", "x", "--fake-sh", script, cwd=project,
                             GATEWAY_KEEP_SECONDS=str(keep)))


def _only_kept(user: User) -> dict[str, Any]:
    kept = _kept(user)
    assert len(kept) == 1, [info["Name"] for info in kept]
    assert kept[0]["State"]["Running"], kept[0]["State"]
    return kept[0]


PROBE = (fetch(f"http://{INTERNET_A}/", "R_A") + fetch(f"http://{BRIDGE_GATEWAY}:{{port}}/", "R_BRIDGE")
         + 'echo "R_LEASE:$(ls -d /run/llm-docker-gateway 2>/dev/null || echo none)";'
         + f'echo "R_LEFT:$(echo hi | timeout 2 nc 127.0.0.1 {LISTEN_PORT} >/dev/null 2>&1 '
         + '&& echo open || echo closed)";')


def test_a_relaunch_takes_the_kept_gateway_and_nothing_of_the_last_agent(keeping: User,
                                                                         hosts: NetworkHosts) -> None:
    user = keeping
    plain = control(fetch(f"http://{INTERNET_A}/", "R_A") + fetch(f"http://{BRIDGE_GATEWAY}:{hosts.bridge_port}/",
                                                                  "R_BRIDGE"))
    assert results(plain) == {"R_A": "internet-2", "R_BRIDGE": "host-bridge"}, plain
    project = user.project()
    probe = PROBE.replace("{port}", str(hosts.bridge_port))
    # the first agent leaves a listener behind in the namespace the next agent will join
    first = _cage(user, project, probe + f"(nc -ll -p {LISTEN_PORT} -e /bin/cat &) ; sleep 0.3; "
                  f'echo "R_LISTENING:$(netstat -ltn | grep -c :{LISTEN_PORT})"')
    assert first == {"R_A": "internet-2", "R_BRIDGE": "FAILED", "R_LEASE": "none", "R_LEFT": "closed",
                     "R_LISTENING": "1"}
    kept = _only_kept(user)
    assert "gateway-kept" in (user.state_home / "logs" / "llm-docker.log").read_text()

    second = _cage(user, project, probe)
    assert second == {"R_A": "internet-2", "R_BRIDGE": "FAILED", "R_LEASE": "none", "R_LEFT": "closed"}
    again = _only_kept(user)
    assert again["Id"] == kept["Id"]  # the same namespace, taken...
    assert again["Name"] != kept["Name"]  # ...and renamed for the launch that took it


def test_a_relaunch_with_ssh_takes_the_kept_gateway_and_its_port(keeping: User, hosts: NetworkHosts) -> None:
    """With SSH the gateway publishes the slot's port: the relaunch counts that port as its
    own (the kept gateway being claimed holds it), so the gateway is taken, not replaced."""
    user = keeping
    project = user.project()
    _cage(user, project, 'echo "R_RAN:1"', "LLM_DOCKER_SSH_ENABLED=true")
    kept = _only_kept(user)
    _cage(user, project, 'echo "R_RAN:2"', "LLM_DOCKER_SSH_ENABLED=true")
    again = _only_kept(user)
    assert again["Id"] == kept["Id"], "the relaunch started a new gateway instead of taking the kept one"
    port = "io.llm-docker.ssh-port"
    assert again["Config"]["Labels"][port] == kept["Config"]["Labels"][port]


def test_what_the_last_agents_lookups_let_through_is_closed_for_the_next(keeping: User,
                                                                         hosts: NetworkHosts) -> None:
    """With an allow-list, the resolver puts the addresses it answers for allowed names into
    the gateway's name sets. A kept gateway's next session starts with those sets as they
    were loaded: an address the last agent's lookups opened is closed again."""
    user = keeping
    project = user.project()
    allow = "EGRESS_ALLOW=allowed.example.test"
    probe = fetch(f"http://{INTERNET_B}/", "R_B")
    assert _cage(user, project, probe, allow) == {"R_B": "FAILED"}
    kept = _only_kept(user)
    # as if the last agent had looked up a name the resolver answered with INTERNET_B
    added = subprocess.run(["docker", "exec", kept["Id"], "nft", "add", "element", "inet", "llm_docker", "names4",
                            f"{{ {INTERNET_B} }}"], capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    assert _cage(user, project, probe, allow) == {"R_B": "FAILED"}
    again = _only_kept(user)
    assert again["Id"] == kept["Id"]
    listed = subprocess.run(["docker", "exec", kept["Id"], "nft", "list", "set", "inet", "llm_docker", "names4"],
                            capture_output=True, text=True)
    assert listed.returncode == 0 and INTERNET_B not in listed.stdout, listed.stdout + listed.stderr


def _tracked(gateway: str, address: str) -> str:
    """The gateway namespace's connection tracking entries to `address`."""
    listed = subprocess.run(["docker", "exec", gateway, "conntrack", "-L", "-d", address], capture_output=True,
                            text=True)
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def test_the_last_agents_connections_are_forgotten_by_the_next_session(keeping: User,
                                                                       hosts: NetworkHosts) -> None:
    """`ct state established` lets the packets of known connections through: a kept
    gateway's next session starts with none of the last agent's."""
    user = keeping
    project = user.project()
    assert _cage(user, project, fetch(f"http://{INTERNET_A}/", "R_A")) == {"R_A": "internet-2"}
    kept = _only_kept(user)
    assert INTERNET_A in _tracked(kept["Id"], INTERNET_A)  # the first agent's connection, still tracked
    assert _cage(user, project, 'echo "R_RAN:2"') == {"R_RAN": "2"}
    assert _only_kept(user)["Id"] == kept["Id"]
    assert INTERNET_A not in _tracked(kept["Id"], INTERNET_A)


_HOLD = """
import socket, sys, time
kind = sys.argv[1]
if kind == "tcp-listener":
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("0.0.0.0", %d))
    held.listen()
elif kind == "udp":
    held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    held.bind(("127.0.0.1", %d))
else:
    held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    held.bind(b"\\0llm-docker-test-held")
    held.listen()
print("held", flush=True)
time.sleep(120)
""" % (LISTEN_PORT, LISTEN_PORT)


@pytest.mark.parametrize("socket_kind", ["tcp-listener", "udp", "abstract-unix"])
def test_a_namespace_whose_socket_is_held_outside_it_is_never_served_again(keeping: User, hosts: NetworkHosts,
                                                                           socket_kind: str) -> None:
    """An agent can hand a socket of its namespace to another cage it shares a folder with
    (SCM_RIGHTS), where it outlives the agent: bound or listening, it would serve in the next
    agent's namespace. Here the test holds one as the agent's uid, made in the kept gateway's
    namespace from outside it, as that other cage would: the next launch does not take that
    gateway, and its own agent binds the port."""
    user = keeping
    project = user.project()
    _cage(user, project, 'echo "R_RAN:1"')
    kept = _only_kept(user)
    holder = subprocess.Popen(["nsenter", "-t", str(kept["State"]["Pid"]), "-n", "setpriv", f"--reuid={user.uid}",
                               f"--regid={user.uid}", "--clear-groups", sys.executable, "-c", _HOLD, socket_kind],
                              stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = _cage(user, project, f"(nc -l -p {LISTEN_PORT} -e /bin/cat 2>&1 &) ; sleep 0.3; "
                       f'echo "R_OWN:$(echo hi | timeout 2 nc 127.0.0.1 {LISTEN_PORT} 2>&1)"')
        assert second == {"R_OWN": "hi"}  # its own listener, in a namespace of its own
        now = _only_kept(user)
        assert now["Id"] != kept["Id"], "a namespace with a socket held outside it was served again"
    finally:
        holder.kill()
        holder.wait()


def test_files_the_gateway_shares_with_the_agent_are_restored_for_the_next(keeping: User,
                                                                         hosts: NetworkHosts) -> None:
    """Docker shares the gateway's /etc/hosts, resolv.conf and hostname with every container
    that joins its namespace; an agent running as root can write them. What the next agent
    of a kept gateway reads is what the gateway started with (written here as root in the
    gateway, as such an agent would)."""
    user = keeping
    project = user.project()
    read = 'echo "R_PLANTED:$(cat /etc/hosts /etc/resolv.conf /etc/hostname | grep -c 6.6.6.6)"'
    assert _cage(user, project, read) == {"R_PLANTED": "0"}
    kept = _only_kept(user)
    for file in ("hosts", "resolv.conf", "hostname"):
        planted = subprocess.run(["docker", "exec", kept["Id"], "sh", "-c", f"echo 6.6.6.6 >> /etc/{file}"],
                                 capture_output=True, text=True)
        assert planted.returncode == 0, planted.stderr
    assert _cage(user, project, read) == {"R_PLANTED": "0"}
    assert _only_kept(user)["Id"] == kept["Id"]


def test_a_launch_with_another_policy_never_takes_it(keeping: User, hosts: NetworkHosts) -> None:
    user = keeping
    project = user.project()
    probe = PROBE.replace("{port}", str(hosts.bridge_port))
    assert _cage(user, project, probe)["R_A"] == "internet-2"
    open_gateway = _only_kept(user)

    closed = _cage(user, project, probe, "INTERNET_ACCESS=false")
    assert closed["R_A"] == "FAILED"  # the new policy is the one in force
    now = _only_kept(user)  # the stale one was removed, the new one is kept
    assert now["Id"] != open_gateway["Id"]
    labels = now["Config"]["Labels"]
    assert labels["io.llm-docker.network-policy"].startswith("no internet"), labels


@pytest.mark.parametrize("planted", ["gone", "fifo", "symlink"])
def test_a_kept_gateway_that_does_not_answer_is_left_alone(keeping: User, hosts: NetworkHosts,
                                                           planted: str) -> None:
    """Its socket gone, or in its place a FIFO (a read would block) or a link to a listener
    that answers "verified" for a gateway it is not: never followed, never waited on."""
    user = keeping
    project = user.project()
    probe = PROBE.replace("{port}", str(hosts.bridge_port))
    _cage(user, project, probe)
    silent = _only_kept(user)
    lease = next(Path(m["Source"]) for m in silent["Mounts"]
                 if m["Destination"] == "/run/llm-docker-gateway/lease")
    (lease / "gateway.sock").unlink()  # its socket is gone: nobody can take it any more
    fake = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if planted == "fifo":
        os.mkfifo(lease / "gateway.sock")
    elif planted == "symlink":
        fake.bind(str(lease / "fake.sock"))  # where the launcher can reach it
        os.chmod(lease / "fake.sock", 0o666)
        fake.listen(4)
        threading.Thread(target=_say_verified, args=(fake,), daemon=True).start()
        (lease / "gateway.sock").symlink_to(lease / "fake.sock")
    try:
        assert _cage(user, project, probe)["R_BRIDGE"] == "FAILED"  # a new gateway, the policy in force
    finally:
        fake.close()
    left = {info["Id"]: info["Name"] for info in _kept(user)}
    assert len(left) == 2 and left[silent["Id"]] == silent["Name"]  # not taken, not removed: it may be busy


def _say_verified(listener: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            connection, _ = listener.accept()
            connection.sendall(b"llm-docker-gateway: verified\n")


def _gateway_folder(info: dict[str, Any]) -> Path:
    return next(Path(m["Source"]) for m in info["Mounts"] if m["Destination"] == "/run/llm-docker-gateway/lease").parent


def _age(folder: Path) -> None:
    """Older than the sweep's guard (which spares a folder a launch has just prepared)."""
    old = time.time() - 3600
    os.utime(folder, (old, old))


def test_a_kept_gateway_nobody_takes_ends_by_itself_and_its_folder_is_swept(keeping: User,
                                                                            hosts: NetworkHosts) -> None:
    user = keeping
    project = user.project()
    _cage(user, project, 'echo "R_RAN:1"', keep=2)
    ended = _gateway_folder(_only_kept(user))
    deadline = time.monotonic() + 30
    while _kept(user):
        assert time.monotonic() < deadline, "the kept gateway did not end within 30 s of a 2 s keep"
        time.sleep(0.5)
    assert ended.is_dir()  # nobody was there to remove it when the gateway ended by itself
    _cage(user, project, 'echo "R_RAN:2"', "INTERNET_ACCESS=false")
    running = _gateway_folder(_only_kept(user))
    _age(ended)
    _age(running)
    result = user.run("llm-docker", "gc", cwd=project)
    assert result.returncode == 0, result.stderr
    assert not ended.exists()  # swept: no gateway mounts it
    assert running.is_dir() and _only_kept(user)  # a kept gateway's folder stays while it waits


def test_a_gateway_in_use_is_never_taken_or_removed_by_another_launch(keeping: User, hosts: NetworkHosts) -> None:
    """Launches without a slot number take no slot lease: a second `cld` in the project while
    the first runs finds the first's gateway by its label — busy, so it is left alone."""
    user = keeping
    project = user.project()
    user.write(user.state_home / "llm-docker.conf", f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n",
               mode=0o600)
    first = user.popen("cld", "--", "-p", "x", "--fake-sh", 'sleep 8; echo "R_FIRST:done"', cwd=project,
                       env={"GATEWAY_KEEP_SECONDS": "60"}, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _kept(user):
            assert time.monotonic() < deadline and first.poll() is None, "the first launch's gateway never ran"
            time.sleep(0.2)
        (in_use,) = _kept(user)
        probe = PROBE.replace("{port}", str(hosts.bridge_port))
        second = _cage(user, project, probe)
        assert second["R_BRIDGE"] == "FAILED" and second["R_A"] == "internet-2"
        ids = {info["Id"]: info["State"]["Running"] for info in _kept(user)}
        assert ids.get(in_use["Id"]) is True  # still there, still running, for the first launch
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert results(out.decode()) == {"R_FIRST": "done"}
