"""The cage's resource limits: MEMORY_LIMIT, CPU_LIMIT, PIDS_LIMIT -> HostConfig fields.

A hostile agent could otherwise take all of the host's memory (the kernel's OOM killer
then picks *host* processes) or every CPU. The limits are cgroup limits the engine sets:
when the agent passes its memory limit, the kernel kills a process inside its own
container only, and the supervisor says so (`supervisor.tasks.watchdog`).

Parsing (`parse_memory`, `parse_cpus`) validates the config values; `host_limits` turns
them into Engine API fields with the host's RAM and CPU count from `HostFacts` (pure).
"""

from __future__ import annotations

import re
from typing import Any

from launch.errors import ConfigError

AUTO = "auto"
NONE = "none"
#: `auto` memory = half of the host's RAM, at most this (and this when the RAM is unknown).
AUTO_MEMORY_CAP = 16 * 1024**3
#: The engine refuses less than 6 MiB; below a few MiB nothing starts anyway.
MIN_MEMORY = 6 * 1024**2
DEFAULT_PIDS_LIMIT = 4096
NANO = 1_000_000_000

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CPUS = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")


class LimitError(ConfigError, ValueError):
    """A limit value that cannot be used; the message says what is expected (exit 2). Also a
    `ValueError`: the config's validators (`config._setting(check=...)`) raise that."""


def parse_memory(text: str) -> int | None:
    """`auto` -> None (decided per host), `none` -> 0 (no limit), `4g`/`512m`/`1.5g` -> bytes."""
    value = text.strip().lower()
    if value == AUTO:
        return None
    if value in (NONE, "0"):
        return 0
    match = _SIZE.match(value)
    if not match:
        raise LimitError(f"expected auto, none or a size like 4g or 512m, got '{text}'")
    size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if size < MIN_MEMORY:
        raise LimitError(f"must be at least 6m (the engine's minimum), got '{text}'")
    return size


def parse_cpus(text: str) -> float | None:
    """`auto` -> None (decided per host), `none` -> 0 (no limit), `1.5` -> 1.5 CPUs."""
    value = text.strip().lower()
    if value == AUTO:
        return None
    if value in (NONE, "0"):
        return 0.0
    if not _CPUS.match(value) or float(value) < 0.01:
        raise LimitError(f"expected auto, none or a number of CPUs like 2 or 1.5, got '{text}'")
    return float(value)


def memory_bytes(setting: str, host_memory: int) -> int:
    """The memory limit in bytes (0 = none): `auto` is half of the host's RAM, capped."""
    parsed = parse_memory(setting)
    if parsed is not None:
        return parsed
    if host_memory <= 0:
        return AUTO_MEMORY_CAP
    return max(MIN_MEMORY, min(host_memory // 2, AUTO_MEMORY_CAP))


def nano_cpus(setting: str, host_cpus: int) -> int:
    """The CPU limit in billionths of a CPU (0 = none): `auto` leaves one CPU to the host.

    Raises `LimitError` for more CPUs than the host has: the engine would refuse it."""
    parsed = parse_cpus(setting)
    if parsed is None:
        return max(1, host_cpus - 1) * NANO if host_cpus > 0 else 0
    if host_cpus > 0 and parsed > host_cpus:
        raise LimitError(f"CPU_LIMIT={setting.strip()} is more than the {host_cpus} CPUs this host has")
    return round(parsed * NANO)


def host_limits(memory: str, cpus: str, pids: int, *, host_memory: int, host_cpus: int) -> dict[str, Any]:
    """The HostConfig fields. `MemorySwap` equals `Memory`: no swap on top of the limit."""
    fields: dict[str, Any] = {"PidsLimit": pids}
    limit = memory_bytes(memory, host_memory)
    if limit:
        fields["Memory"] = limit
        fields["MemorySwap"] = limit
    nano = nano_cpus(cpus, host_cpus)
    if nano:
        fields["NanoCpus"] = nano
    return fields


def describe_bytes(size: int) -> str:
    """`67108864` -> `64 MiB`, `1610612736` -> `1.5 GiB` (for messages)."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"
