"""One error hierarchy for everything the user can get wrong or the machine can refuse.

Every error the user sees derives from `LlmDockerError`: its `str()` is ONE line (printed
after the command's name, never a traceback) and its `exit_code` is what the command exits
with. Entry points (`cli`) catch `LlmDockerError` and nothing broader; errors that are only
control flow inside one module (a busy slot retried, a refused file read) stay local to it.

The exit codes are defined here and only here; the README's "Exit codes" lists them.
"""

from __future__ import annotations

#: The command did not do what was asked: a build, a gateway or the agent failed.
EXIT_FAILURE = 1
#: Bad input (flags, config, paths), a busy slot, or an unusable state database.
EXIT_USAGE = 2
#: The Docker engine is unreachable or refused a request (as `docker run` exits).
EXIT_ENGINE = 125
#: Interrupted by Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: The agent's container was killed (128 + SIGKILL).
EXIT_KILLED = 137


class LlmDockerError(Exception):
    """Base of every user-facing error: a one-line message and the exit code it means."""

    exit_code: int = EXIT_FAILURE


class UsageError(LlmDockerError):
    """Bad command line: the message is ready to print after the launcher's name."""

    exit_code = EXIT_USAGE


class ConfigError(LlmDockerError):
    """A setting, a config file or a path the user gave cannot be used."""

    exit_code = EXIT_USAGE


class StateError(LlmDockerError):
    """llm-docker's own state (the slot database, its folders) cannot be used."""

    exit_code = EXIT_USAGE


class EngineError(LlmDockerError):
    """The Docker engine is unreachable or refused a request; the message is the engine's."""

    exit_code = EXIT_ENGINE


class ImageError(LlmDockerError):
    """An image could not be built or is missing."""

    exit_code = EXIT_FAILURE
