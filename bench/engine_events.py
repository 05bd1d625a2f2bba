"""The Docker engine's container events, as the benchmarks read them: `(time, action, name)`.

Why the engine's events: their `timeNano` is stamped by the engine on this machine's wall
clock, so a container's create/start/die can be set against a launcher's own `time.time()`
without polling the containers (a poll is late by its interval and loads the engine it
measures). Why `docker events --since`: the engine replays what happened since that moment
before it streams, so an event that came before the reader subscribed is not lost.

One command line (`--format '{{json .}}'`, type=container, optional actions) and one parser
serve both ways of reading: `read` — a bounded window after the fact (`--until`: the CLI
returns), and `Stream` — a live subscription waiting for the first N matching events (no
`--until`: the CLI runs until closed). The `docker` CLI, not an API client: the benchmarks
are synchronous, and a pipe is what a selector waits on with a deadline, no event loop needed.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import NamedTuple

#: How long the bounded `docker events` may take: it returns at once when `--until` is past.
READ_TIMEOUT = 30.0


class Event(NamedTuple):
    """One container event: the engine's wall-clock seconds, its action ("create", "start",
    "die", ...) and the container's name ("" when the engine gave none)."""

    time: float
    action: str
    name: str


def _stamp(ns: int) -> str:
    """`docker events`' exact `seconds.nanoseconds` form (a float would round)."""
    return f"{ns // 10**9}.{ns % 10**9:09d}"


def command(since_ns: int, *, until_ns: int | None = None, actions: Iterable[str] = ()) -> list[str]:
    """The `docker events` argv: container events from `since_ns` (wall clock, ns), up to
    `until_ns` if given (the CLI then returns), only `actions` if any, one JSON object a line."""
    argv = ["docker", "events", "--since", _stamp(since_ns)]
    if until_ns is not None:
        argv += ["--until", _stamp(until_ns)]
    argv += ["--filter", "type=container"]
    for action in actions:
        argv += ["--filter", f"event={action}"]
    return [*argv, "--format", "{{json .}}"]


def parse(line: str) -> Event:
    """One line of `command`'s output. JSON, not a text template: an action may hold spaces
    (`exec_start: sh -c ...`, `health_status: healthy`), and a missing name is "" rather than
    a template's "<no value>". `status` is the older engines' name of `Action`."""
    event = json.loads(line)
    name = event.get("Actor", {}).get("Attributes", {}).get("name", "")
    return Event(event["timeNano"] / 1e9, event.get("status") or event.get("Action", ""), name)


def read(since: float, until: float, wanted: Callable[[str], bool]) -> list[Event]:
    """The events of containers `wanted` names in [since, until] (wall-clock seconds), sorted."""
    result = subprocess.run(command(int(since * 1e9), until_ns=int(until * 1e9)), capture_output=True,
                            text=True, timeout=READ_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"docker events failed: {result.stderr.strip()[-400:]}")
    events = (parse(line) for line in result.stdout.splitlines() if line)
    return sorted(event for event in events if wanted(event.name))


class Stream:
    """A live `docker events --since` subscription from `since_ns` (wall clock, ns), only
    `actions` if any; a context manager, so its CLI process never outlives the measurement."""

    def __init__(self, since_ns: int, *, actions: Iterable[str] = ()) -> None:
        self.since_ns = since_ns
        self._process = subprocess.Popen(command(since_ns, actions=actions), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def first(self, wanted: Callable[[str], bool], count: int, deadline: float) -> list[Event]:
        """The first event of each of the first `count` containers `wanted` names, sorted; by
        `deadline` (`time.perf_counter()`), else RuntimeError. Reads with a selector: a
        deadline holds even when the engine sends nothing."""
        stream = self._process.stdout
        assert stream is not None
        seen: dict[str, Event] = {}
        buffered = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while len(seen) < count:
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or not selector.select(remaining):
                    raise RuntimeError(f"only {len(seen)} of {count} container events arrived")
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    raise RuntimeError("docker events ended")
                buffered += chunk
                *lines, buffered = buffered.split(b"\n")
                for line in lines:
                    event = parse(line.decode())
                    if wanted(event.name) and event.name not in seen:
                        seen[event.name] = event
        return sorted(seen.values())[:count]

    def close(self) -> None:
        self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
