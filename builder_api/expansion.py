"""What `${VAR}` in builder-api.toml expands to: the same values the launcher sees.

The launcher reads `$LLM_DOCKER_HOME/llm-docker.conf`, then `.env`, then the process
environment (highest wins; `launch.config`). If the API expanded only the environment, the
documented `password = "${BUILDER_API_PASSWORD}"` with the password kept in `.env` would
serve with an empty password while the container is handed the real one. So both sides
read the files with the launcher's own parser (`launch.envfile`), in the launcher's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from launch.config import CONF_FILE, SECRETS_FILE, default_home
from launch.envfile import EnvFileError, parse_env_text


class ExpansionError(ValueError):
    """A settings file that cannot be read or parsed (one line naming file and line)."""


def expansion_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Every `KEY=VALUE` of the launcher's files overlaid by `environ`.

    The files are found from `environ` alone (`LLM_DOCKER_HOME`, else `HOME/.llm-docker`);
    an environment naming neither reads no file, so a caller's explicit mapping is hermetic."""
    values: dict[str, str] = {}
    if environ.get("LLM_DOCKER_HOME", "").strip() or environ.get("HOME", "").strip():
        user_home = Path(environ.get("HOME", "") or Path.home())
        home = default_home(environ, user_home)
        for name in (CONF_FILE, SECRETS_FILE):
            values.update(_read(home / name, user_home))
    values.update(environ)
    return values


def _read(path: Path, user_home: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise ExpansionError(f"{path}: cannot read: {error}") from None
    try:
        return {entry.key: entry.value for entry in parse_env_text(text, origin=str(path), home=user_home)}
    except EnvFileError as error:
        raise ExpansionError(str(error)) from None
