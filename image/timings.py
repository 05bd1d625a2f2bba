"""How long each build step takes: recorded by the last builds, estimated before the first.

The live build line shows an ETA: the expected seconds of the steps still to come. A step's
expectation is its duration in the last build that ran it (not from the cache), kept in
`$LLM_DOCKER_HOME/logs/build-steps.json`; a step never run before uses `FIRST_BUILD`'s
estimate, measured on a shared 2-core machine (see README, "First run"). A step is named by
its Dockerfile instruction with the build arguments filled in, so `group.sh ssh true` and
`group.sh ssh false` (a group switched off: an empty layer) are different steps.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

BASE_BOOTSTRAP_STEP = "base: bootstrap"
BASE_IMPORT_STEP = "base: import"
STEP_TIMES_FILE = "build-steps.json"
#: Larger than any honest record; a bigger file is not ours to parse.
_MAX_FILE_BYTES = 256 * 1024

#: Seconds per step before any build was recorded (measured with nothing cached on a
#: 2-core machine shared with other builds; mmdebstrap for the base).
FIRST_BUILD: dict[str, float] = {
    BASE_BOOTSTRAP_STEP: 40.0,
    BASE_IMPORT_STEP: 10.0,
    "apt-setup.sh": 3.0,
    "essentials.sh": 40.0,
    "agent.sh": 15.0,
    "finish.sh": 3.0,
}
#: Seconds per enabled INSTALL_* group (a disabled one is an empty layer: about a second).
FIRST_BUILD_GROUPS: dict[str, float] = {
    "ssh": 6.0, "tmux_vanilla": 4.0, "tmux_team": 4.0, "browsing": 30.0, "cpp": 30.0,
    "llvm_clang": 60.0, "ruby": 30.0, "media": 45.0, "quake": 45.0, "ns": 30.0, "security": 45.0,
}
_UNKNOWN_RUN = 20.0
_INSTANT = 0.5
_DISABLED_GROUP = 1.0

_INSTRUCTION = re.compile(r"^\s*([A-Za-z]+)\s")
_GROUP = re.compile(r"group\.sh\s+(\w+)\s+\"?(\w+)\"?")


def dockerfile_instructions(dockerfile: str) -> list[str]:
    """The instructions of `dockerfile` in order, continuation lines joined (what the legacy
    builder announces as `Step N/M : ...`)."""
    instructions: list[str] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instructions.append(pending + line)
        pending = ""
    if pending:
        instructions.append(pending)
    return instructions


def step_key(instruction: str, args: Mapping[str, str]) -> str:
    """The step's name: the instruction with `$NAME`/`${NAME}` build arguments filled in and
    whitespace collapsed."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return args.get(name, match.group(0))

    filled = re.sub(r"\$\{(\w+)\}|\$(\w+)", fill, instruction)
    return " ".join(filled.split())


def first_build_estimate(key: str) -> float:
    """A step's expected seconds when no build has recorded it."""
    if key in FIRST_BUILD:
        return FIRST_BUILD[key]
    match = _INSTRUCTION.match(key)
    if match is None or match.group(1).upper() != "RUN":
        return _INSTANT
    group = _GROUP.search(key)
    if group is not None:
        return FIRST_BUILD_GROUPS.get(group.group(1), _UNKNOWN_RUN) if group.group(2) == "true" else _DISABLED_GROUP
    return next((seconds for script, seconds in FIRST_BUILD.items() if script in key), _UNKNOWN_RUN)


def expected_seconds(key: str, recorded: Mapping[str, float]) -> float:
    return recorded.get(key, first_build_estimate(key))


def load_step_times(path: Path) -> dict[str, float]:
    """The recorded step durations; empty when the file is missing, too big or not ours
    (never follows a symlink, never blocks on a FIFO)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return {}
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError:
        return {}
    if len(data) > _MAX_FILE_BYTES:
        return {}
    try:
        parsed = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(key): float(value) for key, value in parsed.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 86400}


def save_step_times(path: Path, times: Mapping[str, float]) -> None:
    """Write `times` atomically (a new file renamed over the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(dict(sorted(times.items())), indent=1))
    os.replace(temporary, path)
