"""One error hierarchy (`launch.errors`): every user-facing error is an `LlmDockerError`
with a one-line message and its documented exit code; the codes are defined only there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from launch import errors
from launch.config import ConfigError
from launch.envfile import EnvFileError
from launch.guards import PathRefused
from launch.limits import LimitError
from launch.network import NetworkSettingError
from launch.ssh import SshPortError

REPO = Path(__file__).parents[2]


def test_the_exit_codes() -> None:
    assert (errors.EXIT_FAILURE, errors.EXIT_USAGE, errors.EXIT_ENGINE, errors.EXIT_INTERRUPTED,
            errors.EXIT_KILLED) == (1, 2, 125, 130, 137)


@pytest.mark.parametrize(("error", "code"), [
    (errors.UsageError, 2), (errors.ConfigError, 2), (errors.StateError, 2), (errors.EngineError, 125),
    (errors.ImageError, 1), (ConfigError, 2), (PathRefused, 2), (LimitError, 2), (EnvFileError, 2),
    (NetworkSettingError, 2), (SshPortError, 1),
])
def test_launch_errors_are_llm_docker_errors(error: type[errors.LlmDockerError], code: int) -> None:
    assert issubclass(error, errors.LlmDockerError)
    assert error("one line").exit_code == code


def test_settings_errors_are_config_errors() -> None:
    """What a bad setting raises is caught as a config error: one line, exit 2."""
    assert ConfigError is errors.ConfigError
    for error in (PathRefused, LimitError, EnvFileError, NetworkSettingError):
        assert issubclass(error, errors.ConfigError)


def test_exit_codes_are_defined_only_in_launch_errors() -> None:
    """builder-api's own codes are its own (`builder_api/`); `engine.errors` re-exports 125."""
    defined = re.compile(r"^EXIT_[A-Z_]+ = \d+", re.MULTILINE)
    found = sorted(path.relative_to(REPO).as_posix()
                   for package in ("launch", "cli", "supervisor", "image", "engine")
                   for path in (REPO / package).rglob("*.py") if defined.search(path.read_text()))
    assert found == ["launch/errors.py"]


def test_no_entry_point_takes_a_bare_value_error_for_a_usage_error() -> None:
    catches = re.compile(r"except \(?[^)\n]*\bValueError\b[^\n]*\n[^\n]*\n\s*return EXIT_USAGE")
    found = sorted(path.relative_to(REPO).as_posix()
                   for package in ("cli", "supervisor", "image")
                   for path in (REPO / package).rglob("*.py") if catches.search(path.read_text()))
    assert found == []
