"""Render the Dockerfile: the static template plus one ARG + RUN pair per INSTALL_* group.

Each group's package lists are part of its RUN line, so editing one group's packages
invalidates that layer (and the ones after it) and nothing before it.
"""

from __future__ import annotations

import shlex
from importlib import resources

from image.groups import GROUPS, InstallGroup

GROUPS_MARKER = "@GROUPS@"


def template() -> str:
    return resources.files("image").joinpath("files/Dockerfile.in").read_text(encoding="utf-8")


def group_instructions(group: InstallGroup, default: bool) -> str:
    options = []
    for flag, items in (("--apt", group.apt), ("--npm", group.npm), ("--pip", group.pip)):
        if items:
            options += [flag, " ".join(items)]
    if group.outside:
        options += ["--outside", "; ".join(group.outside)]
    command = " ".join(shlex.quote(part) for part in
                       ["/opt/llm-docker/install/group.sh", group.name, f"${group.key}", *options])
    # `$KEY` must expand in the shell, so it is double-quoted, not single-quoted.
    command = command.replace(shlex.quote(f"${group.key}"), f'"${group.key}"')
    return f"ARG {group.key}={'true' if default else 'false'}\nRUN {command}"


def render(defaults: dict[str, bool]) -> str:
    """The Dockerfile, with each group's ARG default taken from `defaults` (by key)."""
    body = "\n".join(group_instructions(group, defaults.get(group.key, False)) for group in GROUPS)
    return template().replace(GROUPS_MARKER, body)
