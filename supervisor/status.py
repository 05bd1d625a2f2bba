"""`llm-docker status [--all] [--json] [--check]`: the running slots — tool, project, slot,
container, uptime, published ports, health (is its launcher still alive?) and network policy
(from its gateway; `--check` re-runs the policy's checks from inside each cage).

One engine may serve several users: by default only the caller's own slots are listed — the
containers whose launcher-uid label (`launch.liveness.identity_labels`, set by the launcher,
never by the agent) is the caller's uid, filtered by the engine itself. `--all` lists every
user's, with a USER column. The text output starts with a header row; `--json` is the rows.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import pwd
import sys
from pathlib import Path
from typing import Any

from engine.client import Engine
from engine.errors import EngineError
from launch.liveness import UID_LABEL, Liveness, launcher_from_labels, launcher_liveness
from launch.network import LABEL_POLICY, gateway_name
from launch.spec import LABEL_PREFIX as LABEL
from launch.ssh import LABEL_PORT as SSH_LABEL_PORT
from supervisor.gateway import check_running
from supervisor.printable import printable
from supervisor.ssh_keys import read_status as read_ssh_status


@dataclasses.dataclass(frozen=True)
class RunningSlot:
    tool: str
    project: str
    slot: int | None
    container: str
    uptime_seconds: int
    ports: list[str]
    health: str
    #: The slot's network policy as its gateway carries it, or why there is none.
    network: str = ""
    #: `--check`: the policy checks re-run from inside the cage (None = not asked).
    network_checks: list[str] | None = None
    #: SSH into the slot: {port, reachable, latency_ms, checked_at, error} from its
    #: supervisor's probe (`supervisor/tasks/ssh_probe.py`); None when SSH is off.
    ssh: dict[str, Any] | None = None
    #: The launcher's uid (its container's label; None: not labelled) and its user name.
    uid: int | None = None
    user: str = "?"


def _uptime(started_at: str, now: datetime.datetime) -> int:
    """Seconds since Docker's `StartedAt` (RFC 3339 with nanoseconds; seconds suffice)."""
    try:
        started = datetime.datetime.strptime(started_at[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return 0
    return max(0, int((now - started).total_seconds()))


def _ports(info: dict[str, Any]) -> list[str]:
    published = []
    for container_port, bindings in sorted(((info.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        for binding in bindings or []:
            published.append(f"{binding.get('HostIp', '')}:{binding.get('HostPort', '')}->{container_port}")
    return published


def _health(info: dict[str, Any], labels: dict[str, str]) -> str:
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    if health:  # (Podman reports an empty `Health` for a container without a health check)
        return str(health)
    if launcher_liveness(launcher_from_labels(labels, LABEL)) is Liveness.DEAD:
        return "orphaned (its launcher is gone: `llm-docker gc` removes it)"
    return str(state.get("Status", "unknown"))


async def _network(docker: Engine, info: dict[str, Any], *,
                   check: bool) -> tuple[str, list[str] | None, dict[str, Any] | None]:
    """The slot's policy (from its gateway's label), the re-run checks, the gateway's info."""
    mode = str((info.get("HostConfig") or {}).get("NetworkMode", ""))
    if not mode.startswith("container:"):
        return f"{mode} network (no gateway, no policy)", None, None
    try:
        gateway = await docker.containers.get(gateway_name(info.get("Name", "").lstrip("/"))).show()
    except EngineError:
        return "gateway missing", ["FAIL gateway missing"] if check else None, None
    labels = (gateway.get("Config") or {}).get("Labels") or {}
    policy = labels.get(LABEL + LABEL_POLICY, "?")
    if not (gateway.get("State") or {}).get("Running"):
        policy += " (gateway stopped: its rules stay in the namespace)"
    checks = None
    if check:
        passed, checks = await check_running(docker, gateway)
        checks = checks if passed else [*checks, "FAIL the network policy did not verify"]
    return policy, checks, gateway


def _ssh(state_home: Path | None, container: str, labels: dict[str, str]) -> dict[str, Any] | None:
    port = labels.get(LABEL + SSH_LABEL_PORT, "")
    if not port.isdigit():
        return None
    if state_home is None:
        return {"port": int(port), "reachable": None, "latency_ms": None, "checked_at": None, "error": None}
    return read_ssh_status(state_home, container, int(port))


def _user(uid: int | None) -> str:
    """The uid's login name, or the number when the host does not know it (a container's
    uid, a user of another host sharing the engine)."""
    if uid is None:
        return "?"
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


async def running_slots(docker: Engine, *, check: bool = False, state_home: Path | None = None,
                        uid: int | None = None) -> list[RunningSlot]:
    """The running slots of the launcher uid `uid` (None: of every user)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    wanted = [LABEL + "tool"] + ([] if uid is None else [f"{LABEL}{UID_LABEL}={uid}"])
    for container in await docker.containers.list(filters={"label": wanted, "status": ["running"]}):
        info = await container.show()
        labels = (info.get("Config") or {}).get("Labels") or {}
        slot = labels.get(LABEL + "slot", "")
        owner = labels.get(LABEL + UID_LABEL, "")
        owner_uid = int(owner) if owner.isdigit() else None
        network, checks, gateway = await _network(docker, info, check=check)
        rows.append(RunningSlot(
            tool=labels.get(LABEL + "tool", "?"), project=labels.get(LABEL + "project-root", "?"),
            slot=int(slot) if slot.isdigit() else None, container=info.get("Name", "").lstrip("/"),
            uptime_seconds=_uptime((info.get("State") or {}).get("StartedAt", ""), now),
            ports=_ports(gateway or info), health=_health(info, labels), network=network,
            network_checks=checks, ssh=_ssh(state_home, info.get("Name", "").lstrip("/"), labels),
            uid=owner_uid, user=_user(owner_uid)))
    return sorted(rows, key=lambda r: (r.user, r.project, r.tool, r.slot or 0))


def print_status(rows: list[RunningSlot], *, as_json: bool, all_users: bool = False) -> None:
    if as_json:
        json.dump([dataclasses.asdict(row) for row in rows], sys.stdout, indent=2)
        print()
        return
    if not rows:
        print("no running slots" if all_users else "no running slots of yours (`--all`: every user's)")
        return
    for line in status_lines(rows, all_users=all_users):
        print(line)


def status_lines(rows: list[RunningSlot], *, all_users: bool = False) -> list[str]:
    """The text table: a header row, one row per slot (its columns as wide as their widest
    cell), each followed by its indented network, SSH and check lines."""
    header = ["TOOL", "SLOT", "PROJECT", "CONTAINER", "UPTIME", "PORTS", "HEALTH"]
    table = [[row.tool, "-" if row.slot is None else str(row.slot), row.project, row.container,
              f"{row.uptime_seconds}s", ",".join(row.ports) or "-", row.health] for row in rows]
    if all_users:
        header.insert(0, "USER")
        for cells, row in zip(table, rows, strict=True):
            cells.insert(0, row.user)
    widths = [max(len(cells[i]) for cells in [header, *table]) for i in range(len(header))]
    slot_column = header.index("SLOT")

    def line(cells: list[str]) -> str:
        padded = [cell.rjust(width) if i == slot_column else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(padded).rstrip()

    indent = " " * (sum(widths[:slot_column + 1]) + 2 * (slot_column + 1))  # under PROJECT
    lines = [line(header)]
    for cells, row in zip(table, rows, strict=True):  # every line printable: below, the cage's words
        lines.extend(printable(text) for text in _slot_lines(line(cells), row, indent))
    return lines


def _slot_lines(first: str, row: RunningSlot, indent: str) -> list[str]:
    """A slot's row, then its indented network, SSH and check lines."""
    lines = [first, f"{indent}network: {row.network}"]
    if row.ssh is not None:
        lines.append(f"{indent}ssh: {_describe_ssh(row.ssh)}")
    lines.extend(f"{indent}  {check}" for check in row.network_checks or [])
    return lines


def _describe_ssh(ssh: dict[str, Any]) -> str:
    where = f"127.0.0.1:{ssh.get('port')}"
    if ssh.get("reachable") is None:
        return f"{where} (not probed yet)"
    if ssh.get("reachable"):
        return f"{where} reachable ({ssh.get('latency_ms')} ms, checked {ssh.get('checked_at')})"
    return f"{where} UNREACHABLE: {ssh.get('error')} (checked {ssh.get('checked_at')})"
