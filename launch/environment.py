"""The container's environment: an explicit allow-list, never the whole host environment.

Upstream forwarded every host variable (cloud credentials, `SSH_AUTH_SOCK`, `TMUX`, ...,
docs/upstream.md#env-allow-list). Here the container gets only:

* terminal and locale variables, and the standard proxy variables;
* agent/provider variables of the host (`ANTHROPIC_*`, `OPENAI_*`, `CLAUDE_CODE_*`, ...);
* the host variables the user names in `FORWARD_ENV`;
* the settings meant for the container, and provider keys set in the config files;
* llm-docker's own identification variables.

`TMUX*` and variables the container must own (`PATH`, `HOME`, `LD_*`, ...) never pass.
"""

from __future__ import annotations

from collections.abc import Mapping

from launch.config import PROVIDER_KEY, Config, describe_value, settings
from launch.envnames import forwardable

TERMINAL_VARIABLES = ("TERM", "COLORTERM", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "NO_COLOR", "FORCE_COLOR")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
def host_variables_for_container(config: Config, host_environ: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed subset of the host environment."""
    chosen = {}
    extra_names = set(config.forwarded_host_variables())
    for name, value in host_environ.items():
        if not forwardable(name):
            continue
        if name in TERMINAL_VARIABLES or name in PROXY_VARIABLES or PROVIDER_KEY.match(name) or name in extra_names:
            chosen[name] = value
    return chosen


def container_environment(config: Config, host_environ: Mapping[str, str],
                          own: Mapping[str, str]) -> dict[str, str]:
    """Merge, lowest precedence first: provider keys from the files, allow-listed host
    variables, container settings from the config (which already honour the process
    environment), and llm-docker's own variables in `own`."""
    env: dict[str, str] = {k: v for k, v in config.extra.items() if forwardable(k)}
    env.update(host_variables_for_container(config, host_environ))
    for info in settings():
        if not info.container:
            continue
        value = getattr(config, info.attribute)
        text = describe_value(config, info) if not info.secret else str(value)
        if text != "":
            env[info.key] = text
    env.setdefault("TERM", "xterm-256color")
    env.setdefault("COLORTERM", "truecolor")
    env.update(own)
    return env
