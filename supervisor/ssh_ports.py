"""Choose each slot's SSH host port: its own (`base + slot - 1`), else the next free one.

"Free" means: no socket on the host's 127.0.0.1 holds it (a test bind, which also sees
0.0.0.0 listeners and Docker's port proxies), no llm-docker container — running or only
created, e.g. by a launch starting at the same moment — carries it in its `ssh-port`
label (Docker publishing through iptables alone binds nothing), and no other slot of this
launch took it. The choice can still race a program that binds the port before Docker
does; the engine then refuses the container with "port is already allocated".
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection

from engine.client import Engine
from launch import ssh as plan
from launch.spec import LABEL_PREFIX

LABEL = LABEL_PREFIX + plan.LABEL_PORT


async def claimed_ports(docker: Engine, exclude: Collection[str] = ()) -> set[int]:
    """SSH ports carried by every llm-docker container the engine has (any state), but the
    containers named in `exclude` (this launch's own gateways, started early)."""
    found = await docker.containers.list(all=True, filters={"label": [LABEL]})
    ports = set()
    for container in found:
        if any(name in exclude for name in container.names):
            continue
        value = container.labels.get(LABEL, "")
        if value.isdigit():
            ports.add(int(value))
    return ports


def loopback_port_free(port: int) -> bool:
    """Can 127.0.0.1:`port` be bound right now? (closed again at once)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((plan.LOOPBACK, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def choose_host_port(base: int, slot: int | None, taken: set[int]) -> tuple[int, str | None]:
    """(port, notice): the slot's port and, when it had to move, the line that says so.
    `taken` are ports already claimed (engine labels, earlier slots of this launch)."""
    candidates = plan.candidate_ports(base, slot)
    port = plan.choose_port(candidates, lambda p: p not in taken and loopback_port_free(p))
    if port == candidates.start:
        return port, None
    slot_text = f"slot {slot}" if slot else "this launch"
    return port, f"SSH: 127.0.0.1:{candidates.start} is taken — {slot_text} uses 127.0.0.1:{port}"
