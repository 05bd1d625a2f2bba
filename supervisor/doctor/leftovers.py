"""`llm-docker doctor`: containers whose launcher is gone — what `llm-docker gc` removes.

The same judgement as `gc` (`supervisor/recovery.py`, `launch/liveness.py`): only this
user's containers, and only those whose launcher is provably dead from here; a launcher
that cannot be judged (another host or PID namespace, an older llm-docker's labels) is
counted apart, never called dead. A gateway carries its launcher's labels too, so an
orphaned gateway is found the same way. Leftovers only warn: they hold memory and, until
recovered, their slot's save — the next launch of that slot, or `gc`, finishes both.
"""

from __future__ import annotations

from engine.client import Engine
from launch.liveness import Liveness, read_here
from launch.spec import LABEL_PREFIX
from supervisor.doctor.report import Finding, ok, warn
from supervisor.recovery import container_liveness

LEFTOVERS = "leftovers"
#: How many names one line lists.
SHOWN = 5


async def leftover_findings(docker: Engine) -> list[Finding]:
    here = read_here()
    dead, undecided = [], 0
    for container in await docker.containers.list(all=True, filters={"label": [f"{LABEL_PREFIX}launcher-pid"]}):
        verdict = container_liveness(container.labels, here)
        if verdict is Liveness.DEAD:
            dead.append(container.name)
        elif verdict is Liveness.UNKNOWN:
            undecided += 1
    found = []
    if dead:
        names = ", ".join(sorted(dead)[:SHOWN]) + (f" and {len(dead) - SHOWN} more" if len(dead) > SHOWN else "")
        found.append(warn(LEFTOVERS, f"{len(dead)} container(s) of dead launchers left behind: {names}",
                          "`llm-docker gc` removes them and finishes their slots' saves (never a live launch's)"))
    else:
        found.append(ok(LEFTOVERS, "no container of a dead launcher"))
    if undecided:
        found.append(ok(LEFTOVERS, f"{undecided} container(s) whose launcher cannot be judged from here (another "
                                   "host or PID namespace, or an older llm-docker) — kept, as `gc` keeps them"))
    return found
