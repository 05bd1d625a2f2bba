"""The environment a job or the runtime gets: an allow-list, never the API's own.

builder-api runs as the user, with the user's whole environment: an SSH agent socket, a
DOCKER_HOST, cloud credentials, tokens. A job runs code the agent wrote (its Makefile, its
package.json scripts), so handing it that environment hands the agent the user's keys. A
job therefore sees only what a build needs to find its tools and speak the user's locale,
plus its own `env` table, plus the variables its config names in `env_passthrough` — each
one a decision written down by the user, not a default.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

#: Always passed through (when set): enough to find the toolchains and keep the locale.
ALLOWED = ("PATH", "HOME", "LANG", "LANGUAGE", "TERM", "USER", "LOGNAME", "TMPDIR", "TZ")
ALLOWED_PREFIXES = ("LC_",)
#: Never passed, even when named: the API's own credential.
NEVER = frozenset({"BUILDER_API_PASSWORD"})


def allowed(name: str) -> bool:
    return name in ALLOWED or name.startswith(ALLOWED_PREFIXES)


def job_environment(env: Mapping[str, str] | None = None, passthrough: Iterable[str] = (),
                    environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of `environ` (default: this process's), the variables named in
    `passthrough`, then `env` on top."""
    source = os.environ if environ is None else environ
    named = set(passthrough)
    result = {k: v for k, v in source.items() if (allowed(k) or k in named) and k not in NEVER}
    result.update(env or {})
    return result
