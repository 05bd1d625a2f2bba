"""`llm-docker status [--json]`: the running slots — tool, project, slot, container,
uptime, published ports and health (is its launcher still alive?)."""

from __future__ import annotations

import dataclasses
import datetime
import json
import sys
from typing import Any

import aiodocker

from launch.liveness import Liveness, launcher_from_labels, launcher_liveness
from launch.spec import LABEL_PREFIX as LABEL



@dataclasses.dataclass(frozen=True)
class RunningSlot:
    tool: str
    project: str
    slot: int | None
    container: str
    uptime_seconds: int
    ports: list[str]
    health: str


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
    if state.get("Health"):
        return str(state["Health"].get("Status", "unknown"))
    if launcher_liveness(launcher_from_labels(labels, LABEL)) is Liveness.DEAD:
        return "orphaned (its launcher is gone: `llm-docker gc` removes it)"
    return str(state.get("Status", "unknown"))


async def running_slots(docker: aiodocker.Docker) -> list[RunningSlot]:
    now = datetime.datetime.now(datetime.timezone.utc)
    rows = []
    for container in await docker.containers.list(filters={"label": [LABEL + "tool"], "status": ["running"]}):
        info = await container.show()
        labels = (info.get("Config") or {}).get("Labels") or {}
        slot = labels.get(LABEL + "slot", "")
        rows.append(RunningSlot(
            tool=labels.get(LABEL + "tool", "?"), project=labels.get(LABEL + "project-root", "?"),
            slot=int(slot) if slot.isdigit() else None, container=info.get("Name", "").lstrip("/"),
            uptime_seconds=_uptime((info.get("State") or {}).get("StartedAt", ""), now),
            ports=_ports(info), health=_health(info, labels)))
    return sorted(rows, key=lambda r: (r.project, r.tool, r.slot or 0))


def print_status(rows: list[RunningSlot], *, as_json: bool) -> None:
    if as_json:
        json.dump([dataclasses.asdict(row) for row in rows], sys.stdout, indent=2)
        print()
        return
    if not rows:
        print("no running slots")
        return
    for row in rows:
        slot = "-" if row.slot is None else str(row.slot)
        ports = ",".join(row.ports) or "-"
        print(f"{row.tool:<9}{slot:>4}  {row.project}  {row.container}  up {row.uptime_seconds}s  {ports}  {row.health}")
