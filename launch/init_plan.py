"""`llm-docker init` planned: the wizard's answers → the new text of `llm-docker.conf` and `.env`.

Pure: the current files' text and the answers go in, the new texts and the list of changes
come out; `cli/init.py` asks the questions, validates, and writes. Kept here so the rules —
which file a key belongs in, how a value is spelled, what is never written — have one home
and are tested without a terminal.

* **Placement.** Secrets (`launch.secrets.is_secret`: the declared secret settings and every
  `*_KEY`/`*_TOKEN`/`*_PASSWORD`/`*_SECRET` name) go to `.env`, everything else to
  `llm-docker.conf`; a key found in the wrong file is moved.
* **The user's lines stay.** Comments, blank lines and keys the answers do not touch are kept
  byte for byte; an answered key replaces its first line in place (later duplicates, which
  would override it, are dropped); new keys are appended after a comment naming them.
* **Never empty, never a placeholder.** An empty answer removes the key (its default applies);
  `looks_like_placeholder` refuses template values such as `YOUR_LLM_DOCKER_API_PASSWORD`.
* **Spelled to parse back.** `render_line` quotes a value so that `launch.envfile` reads back
  exactly that value; `plan_init` checks every line it writes by parsing it again.

The upstream installer's files are mapped here too (`map_upstream_settings`): same names where
they match, upstream's own boolean rules, and a reason for every key that is dropped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from launch.config import CONF_FILE, PROVIDER_KEY, SECRETS_FILE, settings
from launch.envfile import EnvFileError, parse_env_text
from launch.errors import ConfigError
from launch.secrets import is_secret

#: The tmux helpers and devpacks the wizard offers: name -> setting (build-time groups).
TMUX_HELPERS: dict[str, str] = {name: f"INSTALL_TMUX_{name.upper()}"
                                for name in ("vanilla", "team", "recon", "codeman", "claude")}
DEVPACKS: dict[str, str] = {name: f"INSTALL_{name.upper()}"
                            for name in ("security", "ruby", "cpp", "llvm_clang", "ns", "media", "quake", "browsing")}

_SETTINGS = {info.key: info for info in settings()}


def _spell(default: object) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


_DEFAULTS = {info.key: _spell(info.default) for info in _SETTINGS.values()}

_PLACEHOLDER = re.compile(r"^(?:your[_-].*|.*[_-]here|<[^>]*>|change[_-]?me|x{3,}|\*{3,}.*|todo|replace[_-]?me"
                          r"|placeholder|.*\.\.\..*|example)$", re.IGNORECASE)
_UNQUOTED = re.compile(r"[A-Za-z0-9_./:@%+,=-]+")


def default_text(key: str) -> str:
    """The built-in default of a setting as the files spell it ("" for none)."""
    return _DEFAULTS.get(key, "")


def is_known(key: str) -> bool:
    """A setting of `launch.config`, or a provider key it accepts and forwards."""
    return key in _SETTINGS or bool(PROVIDER_KEY.match(key))


def is_boolean(key: str) -> bool:
    return key in _SETTINGS and _SETTINGS[key].kind is bool


def setting_doc(key: str) -> str:
    """One line describing the key, for the comment above a newly written line."""
    if key in _SETTINGS:
        return _SETTINGS[key].doc
    return "provider endpoint (forwarded to the agent)" if key.endswith("_BASE_URL") else "provider setting"


def target_file(key: str) -> str:
    """`.env` for secrets, `llm-docker.conf` for everything else."""
    return SECRETS_FILE if is_secret(key) else CONF_FILE


def looks_like_placeholder(value: str) -> bool:
    """A template value (`YOUR_LLM_DOCKER_API_PASSWORD`, `sk-...`, `<key>`, `changeme`), never
    a real key or password: writing it would make every launch fail later, or worse, work
    with a guessable password."""
    return bool(_PLACEHOLDER.match(value.strip()))


def check_base_url(value: str) -> None:
    """A provider endpoint: an http(s) URL with a host, no blanks (ValueError otherwise)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(f"expected an http(s) URL such as https://api.example.com, got '{value}'")


def render_line(key: str, value: str) -> str:
    """`KEY=VALUE` spelled so that `launch.envfile` reads back exactly `value`: bare when it
    is plain, in single quotes (literal) when it has blanks or `#`, else in double quotes
    with escapes. A value that would not survive the round trip is a `ValueError`."""
    if _UNQUOTED.fullmatch(value):
        line = f"{key}={value}"
    elif "'" not in value and "\n" not in value and "\r" not in value:
        line = f"{key}='{value}'"
    else:
        escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
                   .replace("\t", "\\t").replace("$", "\\$"))
        line = f'{key}="{escaped}"'
    try:
        parsed = parse_env_text(line, origin=key, home=Path("/nonexistent-home"))
    except EnvFileError:
        parsed = []
    if len(parsed) != 1 or parsed[0].value != value:
        raise ValueError(f"{key}: this value cannot be written so that it reads back the same "
                         "(a leading ~, a carriage return or another line break) — write it out in full")
    return line


def _line_key(line: str) -> str | None:
    """The key of a `KEY=VALUE` line (also `export KEY=...`), None for comments and blanks."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("export "):
        text = text[len("export "):].lstrip()
    key, sep, _ = text.partition("=")
    return key.strip() if sep else None


def file_values(text: str, *, origin: str, user_home: Path) -> dict[str, str]:
    """The values a file sets (the last line of a key wins, as when loading). A malformed
    line is a `ConfigError` naming file and line (exit 2)."""
    return {entry.key: entry.value for entry in parse_env_text(text, origin=origin, home=user_home)}


@dataclasses.dataclass(frozen=True)
class Change:
    """One key the plan writes or removes; `old`/`new` are "" when absent."""

    key: str
    old: str
    new: str
    file: str

    @property
    def secret(self) -> bool:
        return is_secret(self.key)


@dataclasses.dataclass(frozen=True)
class InitPlan:
    conf_text: str
    env_text: str
    changes: tuple[Change, ...]


_HEADERS = {
    CONF_FILE: "# llm-docker settings (`llm-docker config` shows every setting and where its value comes from)",
    SECRETS_FILE: "# llm-docker secrets — keep this file private (chmod 600)",
}


def _same_value(line: str, value: str, user_home: Path) -> bool:
    try:
        entries = parse_env_text(line, origin="", home=user_home)
    except EnvFileError:
        return False
    return len(entries) == 1 and entries[0].value == value


def _update(text: str, updates: Mapping[str, str], removals: Iterable[str], *, file: str, user_home: Path) -> str:
    """`text` with every key of `updates` set (in place, or appended) and `removals` gone;
    every other line kept as it was (a line that already says the value, too)."""
    removed = set(removals)
    lines = text.splitlines()
    seen: set[str] = set()
    out: list[str] = []
    for line in lines:
        key = _line_key(line)
        if key is not None and key in updates:
            if key not in seen:
                out.append(line if _same_value(line, updates[key], user_home) else render_line(key, updates[key]))
                seen.add(key)
            continue
        if key is not None and key in removed:
            continue
        out.append(line)
    new = [key for key in updates if key not in seen]
    if new:
        if not out:
            out.append(_HEADERS[file])
        if out[-1].strip():
            out.append("")
        for key in new:
            out.append(f"# {setting_doc(key)}")
            out.append(render_line(key, updates[key]))
    while out and not out[-1].strip():
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def plan_init(conf_text: str, env_text: str, answers: Mapping[str, str], *, user_home: Path) -> InitPlan:
    """The new texts of both files: `answers` (key -> value, "" = remove) applied to the
    current texts. A placeholder or an unwritable value is a `ConfigError`; the values
    themselves are checked by the caller with `launch.config`'s validation."""
    current = {CONF_FILE: file_values(conf_text, origin=CONF_FILE, user_home=user_home),
               SECRETS_FILE: file_values(env_text, origin=SECRETS_FILE, user_home=user_home)}
    updates: dict[str, dict[str, str]] = {CONF_FILE: {}, SECRETS_FILE: {}}
    removals: dict[str, set[str]] = {CONF_FILE: set(), SECRETS_FILE: set()}
    changes: list[Change] = []
    for key, raw in answers.items():
        value = raw.strip()
        if value and (is_secret(key) or PROVIDER_KEY.match(key)) and looks_like_placeholder(value):
            raise ConfigError(f"{key}: '{_shown(key, value)}' looks like a placeholder, not a real value")
        home, other = target_file(key), (CONF_FILE if target_file(key) == SECRETS_FILE else SECRETS_FILE)
        old = current[SECRETS_FILE].get(key, current[CONF_FILE].get(key, ""))
        if key in current[other]:
            removals[other].add(key)
        if value:
            try:
                render_line(key, value)
            except ValueError as error:
                raise ConfigError(str(error)) from None
            updates[home][key] = value
        elif key in current[home]:
            removals[home].add(key)
        if value != old or key in current[other]:
            changes.append(Change(key, old, value, home))
    conf = _update(conf_text, updates[CONF_FILE], removals[CONF_FILE], file=CONF_FILE, user_home=user_home)
    env = _update(env_text, updates[SECRETS_FILE], removals[SECRETS_FILE], file=SECRETS_FILE, user_home=user_home)
    return InitPlan(conf, env, tuple(changes))


def mask(value: str) -> str:
    """A secret as the wizard shows it: set or not, and its last four characters when long
    enough to keep the rest unguessable (upstream showed `****` + the last four too)."""
    if not value:
        return "(not set)"
    return f"****{value[-4:]}" if len(value) >= 16 else "****"


def _shown(key: str, value: str) -> str:
    return mask(value) if is_secret(key) else value


def describe(change: Change) -> str:
    """One summary line of a change, secrets masked."""
    old, new = _shown(change.key, change.old), _shown(change.key, change.new)
    if not change.new:
        return f"{change.key}: removed (was {old or 'unset'}) — the default applies"
    return f"{change.key}={new}" + (f"  (was {old})" if change.old else "") + f"  → {change.file}"


def enabled_names(values: Mapping[str, str], table: Mapping[str, str]) -> list[str]:
    """Which of `table`'s groups (name -> setting) are true in `values` (defaults applied)."""
    return [name for name, key in table.items() if truthy(values.get(key, default_text(key)))]


def group_answers(names: Sequence[str], table: Mapping[str, str]) -> dict[str, str]:
    """Every setting of `table` answered: true for the `names`, false for the others.
    An unknown name is a `ConfigError` naming the known ones."""
    unknown = [name for name in names if name not in table]
    if unknown:
        raise ConfigError(f"unknown choice '{unknown[0]}' (choose from {', '.join(table)}, or none)")
    return {key: "true" if name in names else "false" for name, key in table.items()}


def parse_choices(text: str) -> list[str]:
    """A comma/blank-separated list of names; `none` (or `-`) is the empty list."""
    words = [word.lower().replace("-", "_") for word in re.split(r"[\s,]+", text.strip()) if word]
    return [] if words in (["none"], ["_"]) else words


def truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "on", "1")


# -- the upstream installer's files --------------------------------------------------------

#: Keys of upstream's files this version does not have, and why they are dropped.
UPSTREAM_DROPPED: dict[str, str] = {
    "IS_S3C_GORILLA_ENABLED": "the env-gorilla vault re-exec is not part of this version",
    "LLM_DOCKER_TLS_ENABLED": "never implemented upstream",
    "BUILDER_API_ALLOW_PLUGINS": "builder-api plugins were removed upstream and do not exist here",
    "INSTALL_PHP": "no PHP group here (upstream installed it from a third-party apt repository)",
    "INSTALL_PHP_ENVOY": "no PHP group here (upstream installed it from a third-party apt repository)",
    "LLM_DOCKER_ENV_GORILLA": "the env-gorilla vault re-exec is not part of this version",
}
#: Upstream's boolean rules (string compares): these were ON unless exactly `false` ...
_UPSTREAM_ON_UNLESS_FALSE = frozenset({"SANDBOX_ENABLED", "INTERNET_ACCESS"})
#: ... INSTALL_* accepted true/yes/on/1 in any case; every other boolean was ON only if exactly `true`.
#: Upstream's DOCKER_DIR when its conf had none.
UPSTREAM_DEFAULT_DOCKER_DIR = "/root"


@dataclasses.dataclass(frozen=True)
class UpstreamSettings:
    """What the upstream files say, mapped: `values` to import, `dropped` (key, reason)."""

    values: dict[str, str]
    dropped: tuple[tuple[str, str], ...]
    #: Booleans upstream read differently from how they read here (`SANDBOX_ENABLED=no` was ON).
    notes: tuple[str, ...]
    #: Upstream's effective WORKSPACE_DIR (host, `~` expanded) and DOCKER_DIR (container),
    #: which its sessions' container paths were made from — whether or not they are imported.
    workspace: str
    docker_dir: str


def lenient_entries(text: str, *, origin: str, user_home: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Upstream's file read as data, line by line: (values, skipped lines with the reason).
    Its files were `source`d by bash, so a line may be shell our format refuses: such a line
    is skipped and reported, never run."""
    values: dict[str, str] = {}
    skipped: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entries = parse_env_text(line, origin=origin, home=user_home)
        except EnvFileError:
            # never echo the line: in .env it may hold a key
            skipped.append((f"{origin}:{number}", "not a KEY=VALUE line this version reads (shell syntax?)"))
            continue
        for entry in entries:
            values[entry.key] = entry.value
    return values, skipped


def _upstream_boolean(key: str, value: str) -> str:
    if key in _UPSTREAM_ON_UNLESS_FALSE:
        return "false" if value == "false" else "true"
    if key.startswith("INSTALL_"):
        return "true" if truthy(value) else "false"
    return "true" if value == "true" else "false"


def _upstream_rule(key: str) -> str:
    if key in _UPSTREAM_ON_UNLESS_FALSE:
        return "exactly 'false' as off"
    return "true/yes/on/1 as on" if key.startswith("INSTALL_") else "exactly 'true' as on"


def map_upstream_settings(conf: Mapping[str, str], env: Mapping[str, str]) -> UpstreamSettings:
    """Upstream's `src/llm-docker.conf` and `src/.env` values (`.env` wins, as upstream) →
    the values to import. Same names where they match; booleans by upstream's own rules (so
    `SANDBOX_ENABLED=no` stays ON, as it was); placeholders, keys this version does not have
    and values it refuses are dropped with a reason. The caller validates what is kept."""
    merged = {**conf, **env}
    values: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []
    notes: list[str] = []
    for key, raw in merged.items():
        value = raw.strip()
        if key in UPSTREAM_DROPPED:
            dropped.append((key, UPSTREAM_DROPPED[key]))
        elif not is_known(key):
            dropped.append((key, "not a setting of this version"))
        elif not value:
            continue  # empty upstream = unset: the default applies
        elif (is_secret(key) or PROVIDER_KEY.match(key)) and looks_like_placeholder(value):
            dropped.append((key, "a placeholder from upstream's template, not a real value"))
        elif key == "LLM_DOCKER_SSH_PORT" and value.isdigit() and int(value) < 1024:
            dropped.append((key, f"sshd runs unprivileged here: port {value} would need a capability "
                                 f"(the default {default_text(key)} is used)"))
        elif key.endswith("_BASE_URL") and not _valid_url(value):
            dropped.append((key, f"not an http(s) URL: '{value}'"))
        elif is_boolean(key):
            values[key] = _upstream_boolean(key, value)
            here = {"true": "true", "yes": "true", "on": "true", "1": "true",
                    "false": "false", "no": "false", "off": "false", "0": "false"}.get(value.lower())
            if here == values[key]:
                continue  # this version reads it the same way
            notes.append(f"{key}={value} meant {values[key]} upstream (it read {_upstream_rule(key)}) "
                         f"— imported as {values[key]}")
        else:
            values[key] = value
    return UpstreamSettings(values, tuple(dropped), tuple(notes), workspace=merged.get("WORKSPACE_DIR", "").strip(),
                            docker_dir=merged.get("DOCKER_DIR", "").strip() or UPSTREAM_DEFAULT_DOCKER_DIR)


def _valid_url(value: str) -> bool:
    try:
        check_base_url(value)
    except ValueError:
        return False
    return True
