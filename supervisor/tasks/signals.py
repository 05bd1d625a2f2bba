"""Signals: SIGINT goes to the tool; SIGTERM, SIGHUP and SIGQUIT stop the run gracefully.

In a raw-mode terminal Ctrl-C is a keystroke the tool receives directly; a SIGINT that
reaches the supervisor (from `kill -INT`, or Ctrl-C in a pipeline) is forwarded to the
containers. A third SIGINT stops the run, for tools that ignore it.
"""

from __future__ import annotations

import signal

import anyio

from engine.errors import EngineError
from supervisor.context import Supervisor

NAME = "signals"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SIGINTS_BEFORE_STOP = 3


async def run(supervisor: Supervisor) -> None:
    interrupts = 0
    with anyio.open_signal_receiver(signal.SIGINT, *STOP_SIGNALS) as received:
        async for signum in received:
            name = signal.Signals(signum).name
            supervisor.log.info("signal", signal=name)
            if signum != signal.SIGINT:
                supervisor.stop_all(f"received {name}")
                continue
            interrupts += 1
            if interrupts >= SIGINTS_BEFORE_STOP or supervisor.supervised:
                # Supervised slots have their own windows: Ctrl-C here means "stop them all".
                supervisor.stop_all("interrupted")
                continue
            for slot in supervisor.slots:
                if slot.container_id is None or not slot.started.is_set():
                    slot.request_stop("interrupted before the tool started")
                    continue
                try:
                    await supervisor.docker.containers.get(slot.container_id).kill(signal="SIGINT")
                except EngineError as error:
                    supervisor.log.info("forward-sigint-failed", error=str(error))
