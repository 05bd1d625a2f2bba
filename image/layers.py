"""What each part of a built agent image costs on disk, read from its layer history.

The Dockerfile (image/files/Dockerfile.in) gives every part its own layers: the base
image's, the apt and certificate setup, the essentials, one RUN per `INSTALL_*` group
(`install/group.sh NAME`), the agent CLI, and llm-docker's own files. `docker history`
names the command that made each layer, so summing the layer sizes by the script they ran
says what each part — each group in particular — adds to the image. Pure: the engine's
history rows in, sizes out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

BASE = "base"
SETUP = "setup"
ESSENTIALS = "essentials"
AGENT = "agent"
FILES = "llm-docker files"

#: The first instruction after FROM in our Dockerfile: every layer older than it is the base's.
_FIRST_OWN = re.compile(r"#\(nop\)\s+SHELL \[/bin/sh -eu -c\]")
_GROUP = re.compile(r"install/group\.sh\s+(\w+)\s")
_SCRIPTS = ((re.compile(r"install/(apt-setup|ca-certificates)\.sh"), SETUP),
            (re.compile(r"install/essentials\.sh"), ESSENTIALS),
            (re.compile(r"install/agent\.sh"), AGENT))


def layer_part(created_by: str) -> str:
    """The part of the image a layer (one of ours, not the base's) belongs to."""
    command = created_by.split(" -c ", 1)[-1]
    if "#(nop)" not in command:  # a RUN: attributed by the install script it ran
        group = _GROUP.search(command)
        if group is not None:
            return group.group(1)
        for pattern, part in _SCRIPTS:
            if pattern.search(command):
                return part
    elif "COPY" in command and "/usr/local/share/ca-certificates" in command:
        return SETUP
    return FILES


def part_sizes(history: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Bytes per part, in build order (base first), from the engine's history rows (newest
    first, as `docker history` lists them). Parts with no bytes are kept: a group that is
    switched on but empty says something too."""
    rows = list(reversed(history))
    first_own = next((i for i, row in enumerate(rows) if _FIRST_OWN.search(str(row.get("CreatedBy", "")))),
                     None)
    sizes: dict[str, int] = {}
    for index, row in enumerate(rows):
        size = int(row.get("Size") or 0)
        part = BASE if first_own is None or index < first_own else layer_part(str(row.get("CreatedBy", "")))
        sizes[part] = sizes.get(part, 0) + size
    return sizes


def shown_parts(sizes: Mapping[str, int], built_args: Mapping[str, str]) -> dict[str, int]:
    """The parts worth a line: everything but the groups that were switched off (their
    layers are empty), in build order."""
    fixed = (BASE, SETUP, ESSENTIALS, AGENT, FILES)
    groups = [part for part in sizes if part not in fixed
              and (sizes[part] > 0 or built_args.get(f"INSTALL_{part.upper()}") == "true")]
    order = [BASE, SETUP, ESSENTIALS, *groups, AGENT, FILES]
    return {part: sizes.get(part, 0) for part in order}
