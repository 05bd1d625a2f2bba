"""How llm-docker runs its own modules in a new Python process (guardian, builder-api in the
background, tmux windows' `attach`, the launch server).

`python -m MODULE` puts the working folder first on `sys.path`, and a launch's working
folder is the project — files the agent writes. A planted `supervisor/guardian.py` there
would run on the host, outside the cage, at the next launch. `-P` (Python >= 3.11) keeps the
working folder off `sys.path`, so only the installed code (and an explicit `PYTHONPATH`)
is imported.
"""

from __future__ import annotations

import sys


def own_module(module: str, *args: str, python: str | None = None) -> list[str]:
    """The argv that runs our `module` with `args`, never importing from the working folder."""
    return [python or sys.executable, "-P", "-m", module, *args]
