"""What the user is told when a container hits its memory limit (MEMORY_LIMIT).

The kernel's OOM killer acts inside the container's cgroup only: it kills the biggest
process there. When that is the agent itself, the container exits with 137 and the
removal says so (instead of "killed from outside"); when it is a child (a compiler, a
test run), the agent carries on and the watchdog says that a process was killed. Each is
said once per slot, in one line that names the limit and the setting to raise.
"""

from __future__ import annotations

from launch.limits import describe_bytes
from supervisor.context import SlotRun, Supervisor

ADVICE = "raise MEMORY_LIMIT in llm-docker.conf"


def limit_text(slot: SlotRun) -> str:
    limit = slot.spec.create.get("HostConfig", {}).get("Memory") or 0
    return f" (limit {describe_bytes(limit)})" if limit else ""


def report_container_killed(supervisor: Supervisor, slot: SlotRun, others: str = "") -> None:
    """The agent itself was the OOM killer's victim: its container is gone."""
    slot.memory_reported = True
    supervisor.notice(f"{slot.label}: the container ran out of memory{limit_text(slot)} and was killed — "
                      f"{ADVICE}{others}")


def report_process_killed(supervisor: Supervisor, slot: SlotRun) -> None:
    """A process in the container was killed; the agent runs on. Said at most once."""
    if slot.memory_reported:
        return
    slot.memory_reported = True
    supervisor.notice(f"{slot.label}: the container ran out of memory{limit_text(slot)}: the kernel killed "
                      f"a process in it — {ADVICE}")
