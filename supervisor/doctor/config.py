"""`llm-docker doctor`: does the config load, is every key in it one llm-docker knows, and
does each tool have the key its provider needs?

A key llm-docker does not know is ignored by a launch: `INTERNET_ACCES=false` (a typo)
leaves the internet open while its author believes it closed. So an unknown key fails the
check, as does a `.env` others can read (it holds the secrets). A launch refuses a near-miss
of a cage setting (`launch.config.MisspeltSettingError`) and only warns for the rest.
A missing provider key only warns: Claude Code can log in with `/login`, OpenCode with
`opencode auth login`, and doctor cannot see those logins (each project keeps its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from launch.config import (
    CONF_FILE,
    PROVIDER_KEY,
    SECRETS_FILE,
    Config,
    ConfigError,
    LoadedConfig,
    MisspeltSettingError,
    settings,
)
from launch.secrets import is_secret
from launch.tools import Tool
from supervisor.doctor.report import Finding, fail, ok, split_fix, warn

CONFIG = "config"
API_KEYS = "api-keys"

#: The variables Claude Code authenticates with (besides a `/login` inside the cage).
CLAUDE_KEYS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


def config_findings(home: Path, loaded: LoadedConfig | None, error: ConfigError | None) -> list[Finding]:
    """The load's verdict: its error, or one line per warning, or one "ok"."""
    if isinstance(error, MisspeltSettingError):
        return [fail(CONFIG, f"{error.where}: unknown key {error.key} — that setting is NOT in effect (a launch "
                             "refuses to start)", f"rename {error.key} to {error.meant} (or remove the line)")]
    if error is not None:
        return [fail(CONFIG, str(error), f"correct that value in {home / CONF_FILE} or {home / SECRETS_FILE} "
                                         "(a launch refuses until then; `llm-docker config` shows what is in effect)")]
    assert loaded is not None
    found = [fail(CONFIG, *_warning(home, text)) for text in loaded.warnings]
    if not found:
        sources = {source.rsplit(":", 1)[0] for source in loaded.config.sources.values() if "/" in source}
        read = ", ".join(sorted(sources)) or "no config file (defaults)"
        found.append(ok(CONFIG, f"loads, every key known ({read})"))
    return found


def _warning(home: Path, text: str) -> tuple[str, str]:
    """A load warning as (message, fix): the config's own suggestion when it made one."""
    message, hint = split_fix(text)
    if "unknown key" in message:
        key = message.split("unknown key", 1)[1].split()[0]
        suggestion = hint.removeprefix("did you mean ").rstrip("?") if hint.startswith("did you mean") else ""
        if suggestion:
            return (f"{message} — that setting is NOT in effect",
                    f"rename {key} to {suggestion} (or remove the line)")
        return f"{message} — that setting is NOT in effect", f"remove {key}, or correct its name (see README)"
    return message, hint.removeprefix("run: ") or f"edit {home / CONF_FILE}"


def provider_keys(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """Every provider key with a value, and where it came from (a file, or the environment)."""
    found: dict[str, str] = {}
    for info in settings():
        if info.secret and PROVIDER_KEY.match(info.key) and str(getattr(config, info.attribute)).strip():
            found[info.key] = config.sources.get(info.key, "environment")
    for key, value in config.extra.items():
        if value.strip() and is_secret(key):
            found[key] = config.sources.get(key, "config")
    for key, value in environ.items():
        if value.strip() and PROVIDER_KEY.match(key) and is_secret(key):
            found.setdefault(key, "environment")
    return found


def api_key_findings(home: Path, config: Config, environ: Mapping[str, str]) -> list[Finding]:
    """One line per tool: the key it will authenticate with, or what to add."""
    keys = provider_keys(config, environ)
    env_file = home / SECRETS_FILE
    found = []
    for tool in Tool:
        usable = ([key for key in keys if key in CLAUDE_KEYS] if tool is Tool.CLAUDE
                  else sorted(key for key in keys if not key.startswith("CLAUDE_CODE_")))
        if usable:
            found.append(ok(API_KEYS, f"{tool.value}: {usable[0]} is set ({_where(keys[usable[0]])})"))
        elif tool is Tool.CLAUDE:
            found.append(warn(API_KEYS, "claude: no ANTHROPIC_API_KEY (nor ANTHROPIC_AUTH_TOKEN, "
                                        "CLAUDE_CODE_OAUTH_TOKEN)",
                              f"add ANTHROPIC_API_KEY=... to {env_file} (chmod 600), or log in with /login "
                              "inside `cld` (then ignore this)"))
        else:
            found.append(warn(API_KEYS, "opencode: no provider key (ANTHROPIC_API_KEY, OPENAI_API_KEY, ZAI_API_KEY, "
                                        "OPENROUTER_API_KEY, ...)",
                              f"add your provider's key to {env_file} (chmod 600), or run `opencode auth login` "
                              "inside `ocd` (then ignore this)"))
    return found


def _where(source: str) -> str:
    return source.rsplit(":", 1)[0] if "/" in source else source
