"""Secrets reach the agent through a 0600 file, never through the container's `Env`.

Everything in a create body's `Env` is readable by anyone who may run `docker inspect`
(every member of the `docker` group, monitoring agents, support bundles) and is printed
by `--dry-run`. So the spec moves the secret variables out of the environment:

* secret = a setting declared `secret` in `launch.config`, or a name that looks like one
  (`*_KEY`, `*_TOKEN`, `*_PASSWORD`, `*_SECRET`, ...: `ANTHROPIC_AUTH_TOKEN`, a
  `FORWARD_ENV`'d `GITHUB_TOKEN`);
* the supervisor writes them to `secrets.env` in the container's run folder (0600, owned
  by the invoking user, who is also the container's user) before the container exists;
* `LLM_DOCKER_SECRETS_FILE` in the Env names the file, so any entrypoint can load it;
  the image's entrypoint exports its variables before it execs the tool.

File format: one `NAME=VALUE` per line; in VALUE a backslash, newline and carriage
return are written `\\\\`, `\\n` and `\\r` (what `printf '%b'` undoes, so a POSIX shell
reads it without `eval`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from launch.config import settings

SECRETS_FILE = "secrets.env"
SECRETS_ENV = "LLM_DOCKER_SECRETS_FILE"

_SECRET_NAME = re.compile(r"(?:^|_)(?:KEY|TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_secret(name: str) -> bool:
    """A declared secret setting, or a name shaped like a key, token, password or secret."""
    return name in _SECRET_SETTINGS or bool(_SECRET_NAME.search(name.upper()))


def split_secrets(env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(the environment without the secrets, the secrets)."""
    public = {name: value for name, value in env.items() if not is_secret(name)}
    secrets = {name: value for name, value in env.items() if is_secret(name)}
    return public, secrets


def render(secrets: Mapping[str, str]) -> str:
    """The secrets file's text (see the module docstring for the format)."""
    lines = []
    for name, value in sorted(secrets.items()):
        if not _NAME.match(name):
            raise ValueError(f"{name!r} cannot be an environment variable name")
        encoded = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        lines.append(f"{name}={encoded}\n")
    return "".join(lines)


def parse(text: str) -> dict[str, str]:
    """The inverse of `render` (for tests and for entrypoints written in Python)."""
    secrets = {}
    for line in text.splitlines():
        name, _, encoded = line.partition("=")
        secrets[name] = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), encoded)
    return secrets


_SECRET_SETTINGS = frozenset(info.key for info in settings() if info.secret)
