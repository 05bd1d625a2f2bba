"""Signals: SIGINT goes to the tool; SIGTERM, SIGHUP and SIGQUIT stop the run gracefully.

In a raw-mode terminal Ctrl-C is a keystroke the tool receives directly; a SIGINT that
reaches the supervisor (from `kill -INT`, or Ctrl-C in a pipeline) is forwarded to the
containers. A third SIGINT stops the run, for tools that ignore it.

A supervised launch (`cld N`, `llm-docker supervise`) has no tool in its terminal: one
SIGINT stops every slot gracefully, as SIGTERM does, but the launch then exits 130
(`EXIT_INTERRUPTED`, as a shell's Ctrl-C), not the 143 of the tools' SIGTERM —
`tasks.container` maps a slot stopped for one of `INTERRUPT_REASONS` to that code.
"""

from __future__ import annotations

import signal

import anyio

from engine.errors import EngineError
from supervisor.context import Supervisor

NAME = "signals"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
SIGINTS_BEFORE_STOP = 3
#: Why a slot stops on SIGINT: its launch exits EXIT_INTERRUPTED (130).
INTERRUPTED = "interrupted"
INTERRUPTED_BEFORE_START = "interrupted before the tool started"
INTERRUPT_REASONS = frozenset({INTERRUPTED, INTERRUPTED_BEFORE_START})


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
                supervisor.stop_all(INTERRUPTED)
                continue
            for slot in supervisor.slots:
                if slot.container_id is None or not slot.started.is_set():
                    slot.request_stop(INTERRUPTED_BEFORE_START)
                    continue
                try:
                    await supervisor.docker.containers.get(slot.container_id).kill(signal="SIGINT")
                except EngineError as error:
                    supervisor.log.info("forward-sigint-failed", error=str(error))
