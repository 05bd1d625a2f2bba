"""builder-api's host-owned TOML configuration (docs/upstream.md#builder-api-config).

The base file (`--config` › `$BUILDER_API_CONFIG` › `~/.llm-docker/api_config/builder-api.toml`)
plus one shard per project (`<stem>.toml` in the shard folder), composed into the view
of ONE project: its jobs (global, then language packs, then the project's own), verbs,
log aliases, events file, build/runtime/security settings. Every error is a one-line
`ConfigError` (exit 2), and nothing runs with a half-read config.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from builder_api.expansion import ExpansionError, expansion_values
from builder_api.jobs import Job, JobConfigError, Verb, parse_jobs, parse_verbs
from launch import errors

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ALIAS = re.compile(r"[A-Za-z0-9_-]+")
SHARD_STEM = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
ENV_REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
AUTH_MODES = ("password", "none")
HOST_NAME = re.compile(r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]+\]$")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
HEADER = re.compile(r"^\s*\[([^\[\]]+)\]\s*$")


class ConfigError(errors.ConfigError):
    """builder-api's configuration cannot be used: one line naming the file and key, exit code 2
    (`launch.errors.ConfigError`: `llm-docker`'s commands report every `LlmDockerError` alike)."""


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    timeout_s: int = 900
    max_pending: int = 32
    dedupe_window_s: float = 5.0


@dataclasses.dataclass(frozen=True)
class SecuritySettings:
    #: Failures per source and minute answered at once; every further one waits (back-off).
    auth_failures_per_min: int = 10
    #: Upstream's lock-out length: accepted, ignored (a lock-out let the cage lock the user out).
    lockout_s: int = 300
    #: The longest a failing request from one source waits before its 401.
    auth_backoff_max_s: float = 5.0
    max_body_bytes: int = 1_048_576
    max_url_bytes: int = 8192
    request_timeout_s: int = 30
    max_ws_clients: int = 64
    max_followers: int = 256


@dataclasses.dataclass(frozen=True)
class RuntimeSettings:
    enabled: bool = False
    start_command: str = ""
    cwd: str = "."
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    env_passthrough: tuple[str, ...] = ()
    stop_signal: int = signal.SIGTERM
    stop_timeout_s: float = 5.0


@dataclasses.dataclass(frozen=True)
class EventSettings:
    path: Path | None = None
    max_bytes: int = 209_715_200
    drop_bytes: int = 10_485_760


@dataclasses.dataclass(frozen=True)
class ProjectConfig:
    name: str
    root: Path
    port: int
    bind: str
    password: str
    auth_reads: bool
    languages: tuple[str, ...]
    jobs: Mapping[str, Job]
    verbs: Mapping[str, Verb]
    log_aliases: Mapping[str, Path]
    events: EventSettings
    build: BuildSettings
    runtime: RuntimeSettings
    security: SecuritySettings
    config_path: Path
    shard_paths: tuple[Path, ...]
    config_mtime: float
    warnings: tuple[str, ...] = ()
    #: "password" (the default) or "none" (explicitly open; warned about on every start).
    auth: str = "password"
    #: Extra Host names the API answers to (besides loopback and host.docker.internal).
    allowed_hosts: tuple[str, ...] = ()
    #: Origins whose pages may POST /log (the browser snippet) without the password.
    log_origins: tuple[str, ...] = ()


def default_config_path(environ: Mapping[str, str]) -> Path:
    configured = environ.get("BUILDER_API_CONFIG", "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path(environ.get("HOME", str(Path.home()))) / ".llm-docker" / "api_config" / "builder-api.toml"


def shard_folder(config_path: Path, environ: Mapping[str, str]) -> Path:
    configured = environ.get("BUILDER_API_PROJECTS_DIR", "").strip()
    if configured:
        return Path(configured).expanduser()
    if config_path == default_config_path({k: v for k, v in environ.items() if k == "HOME"}):
        return config_path.parent
    return config_path.parent / "projects"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    seen: dict[str, list[int]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        header = HEADER.match(line)
        if header:
            seen.setdefault(header.group(1).strip(), []).append(number)
    duplicates = {key: lines for key, lines in seen.items() if len(lines) > 1}
    if duplicates:
        listed = "; ".join(f"[{key}] on lines {lines}" for key, lines in duplicates.items())
        raise ConfigError(f"{path}: duplicate table header(s): {listed}")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"TOML parse error in {path}: {error}") from None


def _shards(folder: Path, base: Path, warnings: list[str]) -> list[tuple[Path, dict[str, Any]]]:
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise ConfigError(f"shard folder {folder} is not a directory")
    shards = []
    for path in sorted(folder.glob("*.toml")):
        if path.name == "builder-api.toml" or path.resolve() == base.resolve():
            continue
        if path.is_symlink():
            raise ConfigError(f"{path}: a shard may not be a symlink")
        mode = path.stat().st_mode
        if mode & stat.S_IWOTH:
            raise ConfigError(f"{path}: world-writable shard — run: chmod 0644 {path}")
        if mode & stat.S_IWGRP:
            warnings.append(f"{path}: group-writable shard")
        if not SHARD_STEM.match(path.stem):
            raise ConfigError(f"{path}: shard file name must match {SHARD_STEM.pattern}")
        data = read_toml(path)
        forbidden = sorted({"defaults", "jobs", "language", "verb"} & set(data))
        if forbidden:
            raise ConfigError(f"{path}: a shard may not contain top-level {forbidden}")
        projects = data.get("project")
        if not isinstance(projects, dict) or list(projects) != [path.stem]:
            raise ConfigError(f"{path}: must contain exactly [project.{path.stem}]")
        shards.append((path, data))
    return shards


def _resolve_in_root(value: str, root: Path, context: str) -> Path:
    path = Path(value).expanduser()
    path = (root / path).resolve() if not path.is_absolute() else path.resolve()
    anchor = path if path.exists() else path.parent
    if anchor != root and root not in anchor.parents:
        raise ConfigError(f"{context}: path {path} escapes project root {root}")
    return path


def _number(value: object, default: float, context: str, kind: type = int) -> Any:
    """A TOML number (0 or absent: `default`); anything else — a string such as "5" or "x",
    a bool — is a one-line error naming the key."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value == 0):
        return kind(default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{context} must be a number, got {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{context} must be a whole number, got {value!r}")
    return kind(value)


def _flag(value: object, default: bool, context: str) -> bool:
    """A TOML boolean; a string (`"false"` is truthy in Python) is a one-line error naming the key."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{context} must be true or false (a TOML boolean, unquoted), got {value!r}")
    return value


def _text(value: object, default: str, context: str) -> str:
    """A TOML string (absent or empty: `default`)."""
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{context} must be a string, got {value!r}")
    return value


def _table(value: object, context: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{context} must be a table, got {value!r}")
    return value


def _expand(value: str, environ: Mapping[str, str]) -> str:
    return ENV_REFERENCE.sub(lambda match: environ.get(match.group(1), ""), value)


def _passthrough(value: object, where: str) -> tuple[str, ...]:
    from builder_api.jobs import parse_passthrough

    try:
        return parse_passthrough(value, where)
    except JobConfigError as error:
        raise ConfigError(str(error)) from None


def _signal(name: object) -> int:
    text = str(name or "SIGTERM").upper()
    text = text if text.startswith("SIG") else "SIG" + text
    return int(getattr(signal, text, signal.SIGTERM))


def load(project: str, config_path: Path | None = None, environ: Mapping[str, str] | None = None) -> ProjectConfig:
    """The composed view of `project`; `ConfigError` on anything invalid."""
    environ = os.environ if environ is None else environ
    path = (config_path.expanduser() if config_path else default_config_path(environ))
    if not path.is_file():
        raise ConfigError(f"host config not found: {path} — create it (see docs/builder-api.md)")
    warnings: list[str] = []
    base = read_toml(path)
    if "plugin" in base:
        warnings.append(f"{path}: 'plugin' is no longer supported and is ignored")
    shards = _shards(shard_folder(path, environ), path, warnings)
    projects: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (base.get("project") or {}).items()
                                           if isinstance(v, dict)}
    for shard_path, data in shards:
        name = shard_path.stem
        block = data["project"][name]
        merged = projects.setdefault(name, {})
        for key, value in block.items():
            if key == "jobs":
                jobs = dict(merged.get("jobs") or {})
                clash = sorted(set(jobs) & set(value or {}))
                if clash:
                    raise ConfigError(f"{shard_path}: job(s) {clash} already declared in {path} — pick one location")
                jobs.update(value or {})
                merged["jobs"] = jobs
            else:
                merged[key] = value
    if project not in projects:
        raise ConfigError(f"no [project.{project}] in {path} or its shards. Known projects: {sorted(projects)}")
    block = projects[project]
    defaults = base.get("defaults") or {}
    raw_root = block.get("root")
    if not isinstance(raw_root, str) or not raw_root:
        raise ConfigError(f"[project.{project}].root is required")
    root = Path(raw_root).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"[project.{project}].root {root} is not an existing directory")
    port = block.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"[project.{project}].port missing or invalid: {port!r}")
    where = f"[project.{project}]"
    bind = _text(block.get("bind", defaults.get("bind")), "127.0.0.1", f"{where}.bind")
    auth = block.get("auth", defaults.get("auth", "password"))
    if auth not in AUTH_MODES:
        raise ConfigError(f"[project.{project}].auth must be one of {list(AUTH_MODES)}, got {auth!r}")
    raw_password = _text(block.get("password", defaults.get("password")), "", f"{where}.password")
    # Reads need the password too unless the config says otherwise: the cage shares 127.0.0.1.
    auth_reads = _flag(block.get("auth_reads", defaults.get("auth_reads")), True, f"{where}.auth_reads")
    allowed_hosts = _names(block, defaults, "allowed_hosts", HOST_NAME, project)
    log_origins = _names(block, defaults, "log_origins", ORIGIN, project)
    languages = block.get("languages", [])
    if not isinstance(languages, list) or not all(isinstance(x, str) for x in languages):
        raise ConfigError(f"[project.{project}].languages must be a list of strings")
    raw_jobs: dict[str, Any] = dict(base.get("jobs") or {})
    for language in languages:
        raw_jobs.update(((base.get("language") or {}).get(language) or {}).get("jobs") or {})
    raw_jobs.update(block.get("jobs") or {})
    try:
        jobs = parse_jobs(raw_jobs, warnings)
        verbs = parse_verbs(base.get("verb") or {})
    except JobConfigError as error:
        raise ConfigError(str(error)) from None
    aliases: dict[str, Path] = {}
    log_dir = block.get("log_dir", defaults.get("log_dir"))
    if log_dir:
        folder = Path(str(log_dir)).expanduser() / project
        folder.mkdir(parents=True, exist_ok=True)
        aliases.update({name: folder / f"{name}.log" for name in ("build", "runtime", "events")})
    for alias, value in (block.get("logs") or {}).items():
        if not ALIAS.fullmatch(alias):
            raise ConfigError(f"[project.{project}.logs].{alias}: alias must match {ALIAS.pattern}")
        aliases[alias] = _resolve_in_root(str(value), root, f"[project.{project}.logs].{alias}")
    events_block = _table(block.get("events"), f"[project.{project}.events]")
    events_path = (_resolve_in_root(str(events_block["path"]), root, f"[project.{project}.events].path")
                   if events_block.get("path") else aliases.get("events"))
    in_events = f"[project.{project}.events]"
    events = EventSettings(events_path, _number(events_block.get("max_bytes"), 209_715_200, f"{in_events}.max_bytes"),
                           _number(events_block.get("drop_bytes"), 10_485_760, f"{in_events}.drop_bytes"))
    build_block = {**_table(defaults.get("build"), "[defaults.build]"),
                   **_table(block.get("build"), f"[project.{project}.build]")}
    in_build = f"[project.{project}.build]"
    dedupe_window = build_block.get("dedupe_window_s")
    dedupe = 0.0 if dedupe_window == 0 else max(0.0, _number(dedupe_window, 5.0, f"{in_build}.dedupe_window_s", float))
    build = BuildSettings(_number(build_block.get("timeout_s"), 900, f"{in_build}.timeout_s"),
                          max(1, _number(build_block.get("max_pending"), 32, f"{in_build}.max_pending")), dedupe)
    security_block = {**_table(defaults.get("security"), "[defaults.security]"),
                      **_table(block.get("security"), f"[project.{project}.security]")}
    security = SecuritySettings(*(
        _number(security_block.get(field.name), cast(float, field.default),
                f"[project.{project}.security].{field.name}", type(field.default))
        for field in dataclasses.fields(SecuritySettings)))
    runtime_block = _table(block.get("runtime"), f"[project.{project}.runtime]")
    in_runtime = f"[project.{project}.runtime]"
    runtime = RuntimeSettings(
        enabled=_flag(runtime_block.get("enabled"), False, f"{in_runtime}.enabled"),
        start_command=_text(runtime_block.get("start_command"), "", f"{in_runtime}.start_command"),
        cwd=_text(runtime_block.get("cwd"), ".", f"{in_runtime}.cwd"),
        env={str(k): str(v) for k, v in _table(runtime_block.get("env"), f"{in_runtime}.env").items()},
        env_passthrough=_passthrough(runtime_block.get("env_passthrough", []), in_runtime),
        stop_signal=_signal(_text(runtime_block.get("stop_signal"), "SIGTERM", f"{in_runtime}.stop_signal")),
        stop_timeout_s=max(0.5, _number(runtime_block.get("stop_timeout_s"), 5, f"{in_runtime}.stop_timeout_s",
                                        float)),
    )
    if runtime.enabled and not runtime.start_command.strip():
        raise ConfigError(f"[project.{project}.runtime].enabled needs a start_command")
    password = _password(project, str(auth), raw_password, bind, environ, warnings)
    if security_block.get("lockout_s"):
        warnings.append("security.lockout_s is ignored: nobody is locked out any more, failing requests are "
                        "slowed down instead (security.auth_backoff_max_s)")
    shard_paths = tuple(shard for shard, _ in shards)
    mtime = max([path.stat().st_mtime, *(shard.stat().st_mtime for shard in shard_paths)])
    return ProjectConfig(
        name=project, root=root, port=port, bind=bind, password=password, auth_reads=auth_reads,
        languages=tuple(languages), jobs=jobs, verbs=verbs, log_aliases=aliases, events=events, build=build,
        runtime=runtime, security=security, config_path=path, shard_paths=shard_paths, config_mtime=mtime,
        warnings=tuple(warnings), auth=str(auth), allowed_hosts=allowed_hosts, log_origins=log_origins)


def _password(project: str, auth: str, raw: str, bind: str, environ: Mapping[str, str],
              warnings: list[str]) -> str:
    """The expanded password, or a one-line refusal: an empty or unexpanded password must
    never mean "no auth" silently (the container would be handed a password nobody checks).
    Only `auth = "none"`, said explicitly, runs without one — loopback only, warned each start."""
    if auth == "none":
        if bind not in LOOPBACK:
            raise ConfigError(f"[project.{project}]: auth = \"none\" is refused on bind {bind} (not loopback); "
                              "a password is required")
        warnings.append(f"[project.{project}] auth = \"none\": NO PASSWORD — any local process (the cage "
                        "included) and anything that reaches the port may run every job")
        return ""
    try:
        values = expansion_values(environ) if "${" in raw else {}
    except ExpansionError as error:
        raise ConfigError(str(error)) from None
    password = _expand(raw, values)
    if "${" in password or not password.strip():
        names = sorted(set(ENV_REFERENCE.findall(raw)))
        where = (f" ({', '.join(names)} set neither in the environment nor in $LLM_DOCKER_HOME/.env)"
                 if names else "")
        raise ConfigError(f"[project.{project}].password is empty or unexpanded{where} — a password is required; "
                          "set it, or say auth = \"none\" to run without one")
    return password


def _names(block: Mapping[str, Any], defaults: Mapping[str, Any], key: str, shape: re.Pattern[str],
           project: str) -> tuple[str, ...]:
    values = block.get(key, defaults.get(key, []))
    if not isinstance(values, list) or not all(isinstance(v, str) and shape.match(v) for v in values):
        raise ConfigError(f"[project.{project}].{key} must be a list of strings like {shape.pattern}")
    return tuple(v.lower().rstrip("/") for v in values)
