"""Which operating-system mechanisms this process may use: the Linux-only ones, or only the
portable ones — the one place that decides.

On Linux the supervisor and the cleanup use mechanisms macOS does not have: a pidfd to
watch the launching process, and procfs for a process's exact start time and the boot id.
Each has a portable path (kqueue or polling, psutil) that macOS runs. The portable paths
must not be tested on macOS only by reading the code, so the test switch
`LLM_DOCKER_TEST_PORTABLE_ONLY=1` turns the Linux-only mechanisms off on Linux: CI runs
the supervisor's and the cleanup's tests a second time with it (`scripts/test`). It is a
test switch, not a setting: a user never needs it, and it is not in `launch.config`.

What stays Linux-only even with the switch, because there is nothing to fall back to:
the PID namespace of a launcher (a fact about where it ran; macOS has no PID
namespaces), and the mechanisms of modules that are Linux-only by design (listed in
docs/architecture.md).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

#: The test switch: "1" makes a Linux host use only what macOS has too.
PORTABLE_ONLY_VARIABLE = "LLM_DOCKER_TEST_PORTABLE_ONLY"


def portable_only(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the test switch is on (read at every call, so a test may set it)."""
    return (os.environ if environ is None else environ).get(PORTABLE_ONLY_VARIABLE, "") == "1"


def linux_mechanisms(environ: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether the Linux-only mechanisms (pidfd, procfs reads) may be used: on Linux,
    unless the test switch turns them off."""
    return (platform or sys.platform).startswith("linux") and not portable_only(environ)
