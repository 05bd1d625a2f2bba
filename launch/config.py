"""The typed configuration: every setting, its default, and where its value came from.

Settings and secrets live in `$LLM_DOCKER_HOME` (default `~/.llm-docker`):
`llm-docker.conf` for settings and `.env` for secrets, both in the format of
`launch.envfile`. Precedence, highest first: the process environment, `.env`,
`llm-docker.conf`, the built-in defaults below (the upstream defaults).

Every setting is one field of `Config`; its metadata says whether it is a secret (masked
by `llm-docker config`) and whether it is meant for the container (forwarded as an
environment variable). Keys in the files that look like agent/provider settings
(`ANTHROPIC_*`, `CLAUDE_CODE_*`, ...) are kept in `Config.extra` and forwarded too; any
other unknown key is never silently used:

* a near-miss of a *cage setting* (within edit distance 2 of its name, case ignored:
  `INTERNET_ACCES=false`, `lan_access=false`) is an ERROR (`MisspeltSettingError`, exit 2,
  before anything starts): its author believes the cage closed while the agent still has
  what the setting meant to take away. The cage settings are the fields declared with
  `cage=...` below — what the agent can reach, see and do:
  network (`INTERNET_ACCESS`, `LAN_ACCESS`, `EGRESS_ALLOW`, `HOST_PORTS`, `NETWORK_MODE`,
  `RESOLVER_HOSTS_FILE`, `GATEWAY_IMAGE`, `BUILDER_API_AUTOSTART`), sandbox
  (`SANDBOX_ENABLED`, `AGENT_GIT_COMMIT`, `FORWARD_ENV`, `LLM_DOCKER_IMAGE`), danger
  (`DANGER_MODE`), mounts (`WORKSPACE_DIR`, `DOCKER_DIR`), limits (`MEMORY_LIMIT`,
  `CPU_LIMIT`, `PIDS_LIMIT`) and ssh (`LLM_DOCKER_SSH_ENABLED`,
  `LLM_DOCKER_SSH_AUTHORIZED_KEYS`: who may enter the cage);
* any other unknown key is a warning, with a "did you mean" when a setting is that close
  (a misspelt build group or log size costs a rebuild or a log, never the cage).
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path

from launch import errors
from launch.envfile import EnvFileError, parse_env_text
from launch.envnames import forwardable
from launch.limits import DEFAULT_PIDS_LIMIT, parse_cpus, parse_memory
from launch.network import GATEWAY_IMAGE, check_egress_allow, parse_host_ports
from launch.ssh import parse_authorized_keys
from launch.tools import Tool

CONF_FILE = "llm-docker.conf"
SECRETS_FILE = ".env"
DEFAULT_SOURCE = "default"
ENVIRONMENT_SOURCE = "environment"

#: Keys of this shape are agent/provider settings: accepted in the files and forwarded.
PROVIDER_KEY = re.compile(r"^(ANTHROPIC_|OPENAI_|ZAI_|CLAUDE_CODE_|OPENCODE_|OPENROUTER_|GEMINI_|GROQ_|MISTRAL_"
                          r"|DEEPSEEK_|XAI_)[A-Z0-9_]*$")

#: The default `LLM_DOCKER_IMAGE_PREFIX`: the product's images are `llm-docker-<name>:latest`.
DEFAULT_IMAGE_PREFIX = GATEWAY_IMAGE.removesuffix("-gateway:latest")

_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True,
             "false": False, "no": False, "off": False, "0": False}


#: An invalid setting (the message names file, line and key): the one `errors.ConfigError`,
#: named here too because this module is where settings are read.
ConfigError = errors.ConfigError

#: How far (Damerau-Levenshtein, case ignored) an unknown key may be from a setting's name
#: to be taken for a misspelling of it: two slips (`INTERNET_ACES`, `SANBOX_ENABLE`).
NEAR_MISS_DISTANCE = 2


class MisspeltSettingError(ConfigError):
    """An unknown key that is a near-miss of a cage setting (exit 2): `key` as written, the
    setting it `meant`, and `where` (file:line), for `llm-docker doctor`'s fix."""

    def __init__(self, where: str, key: str, meant: str, cage: str) -> None:
        super().__init__(f"{where}: unknown key {key} — did you mean {meant}? Refused: a misspelt {cage} setting "
                         f"is NOT in effect; rename it to {meant} or remove the line")
        self.where, self.key, self.meant = where, key, meant


def _setting(default: object, *, secret: bool = False, container: bool = False,
             choices: tuple[str, ...] = (), minimum: int | None = None,
             maximum: int | None = None, check: typing.Callable[[str], object] | None = None,
             cage: str = "", doc: str = "") -> typing.Any:
    """`check` validates a text value (raises ValueError with what is expected); `cage`
    names the part of the cage the setting defines (a misspelling of it is an error)."""
    return dataclasses.field(default=default, metadata={
        "secret": secret, "container": container, "choices": choices,
        "minimum": minimum, "maximum": maximum, "check": check, "cage": cage, "doc": doc,
    })


def _port(default: int, **kwargs: typing.Any) -> typing.Any:
    return _setting(default, minimum=1, maximum=65535, **kwargs)


@dataclasses.dataclass(frozen=True)
class Config:
    """Effective settings. Attribute `x_y` is the key `X_Y` in the files and environment."""

    # -- mounts ------------------------------------------------------------------------
    docker_dir: str = _setting("/root/Projects", cage="mounts", doc="Container-side parent for every project mount")
    workspace_dir: Path | None = _setting(None, doc="Host folder mirrored read-only for all projects; empty = off",
                                          cage="mounts")
    # -- sandbox and network -----------------------------------------------------------
    sandbox_enabled: bool = _setting(True, container=True, doc="Drop all capabilities + no-new-privileges",
                                     cage="sandbox")
    internet_access: bool = _setting(True, container=True, doc="false = the internet is closed; the LAN "
                                     "(RFC1918/ULA) stays open unless LAN_ACCESS=false", cage="network")
    network_mode: str = _setting("gateway", choices=("gateway", "host"), cage="network",
                                 doc="gateway = each slot's network policy enforced by its own gateway container; "
                                     "host = the host's network, NO policy (warned at every launch)")
    egress_allow: str = _setting("", check=check_egress_allow, cage="network",
                                 doc="Space-separated domains (*.npmjs.org), IPs and CIDRs: when set, the internet is "
                                     "reachable only there; presets @agent @npm @pypi @debian @github @registries")
    lan_access: bool = _setting(True, doc="false = the LAN (10/8, 172.16/12, 192.168/16, fc00::/7) is closed too",
                                cage="network")
    host_ports: str = _setting("", check=parse_host_ports, cage="network",
                               doc="Host TCP ports the agent may reach as host.docker.internal:PORT (builder-api's "
                                   "is added with -a/-ab); nothing else of the host is reachable")
    resolver_hosts_file: Path | None = _setting(None, doc="Extra hosts file the policy's resolver answers from "
                                                "(local names); empty = none", cage="network")
    gateway_image: str = _setting("", doc="Gateway image to run; empty = llm-docker's own, built on demand",
                                  cage="network")
    gateway_keep_seconds: int = _setting(3600, minimum=0, maximum=86400,
                                         doc="Keep a slot's network gateway this long after its launch, for the "
                                             "slot's next launch (which then starts ~0.2 s sooner); 0 = end it "
                                             "with its launch")
    danger_mode: bool = _setting(True, doc="cld default for --danger/--safe (skip Claude's permission prompts)",
                                 cage="danger")
    forward_env: str = _setting("", doc="Comma-separated extra host variables to forward to the container",
                                cage="sandbox")
    agent_git_commit: bool = _setting(False, doc="true = the agent may commit: .git is writable, but its config, "
                                      "hooks, info and modules stay read-only (default: .git read-only)",
                                      cage="sandbox")
    # -- container behaviour -----------------------------------------------------------
    node_env: str = _setting("production", container=True, choices=("production", "development"),
                             doc="development = verbose, readable logs")
    exit_to_docker: bool = _setting(False, container=True, doc="Drop to a shell after the tool exits")
    update_on_start: bool = _setting(False, doc="Refresh the image's agent CLI layer to the newest release, at most "
                                                "once a day, before a launch")
    # -- resource limits (see launch.limits) -------------------------------------------
    memory_limit: str = _setting("auto", check=parse_memory, cage="limits",
                                 doc="Container memory limit (no swap on top): auto = half of the host's RAM, "
                                     "at most 16g; a size like 4g or 512m; none = no limit")
    cpu_limit: str = _setting("auto", check=parse_cpus, cage="limits",
                              doc="CPUs the container may use: auto = all but one; a number like 1.5; none = no limit")
    pids_limit: int = _setting(DEFAULT_PIDS_LIMIT, minimum=16, maximum=4194304, cage="limits",
                               doc="Most processes and threads at once in the container (a fork bomb stops there)")
    log_max_kilobytes: int = _setting(1024, minimum=0, doc="Rotate logs/llm-docker.log past this size; 0 = no file log")
    debug: bool = _setting(False, doc="Stream full build output")
    llm_docker_image: str = _setting("", cage="sandbox", doc="Image to run; empty = the tag the image build makes")
    llm_docker_image_prefix: str = _setting(DEFAULT_IMAGE_PREFIX, check=lambda text: check_image_prefix(text),
                                            doc="Name of llm-docker's own images: PREFIX-claude:latest, "
                                                "PREFIX-opencode:latest, PREFIX-gateway:latest")
    # -- image build -------------------------------------------------------------------
    base_image: str = _setting("node:24",
                               doc="Base of the image build; when node:24 cannot be pulled, a local Debian base; "
                                   "local = always the local Debian base, never a registry; "
                                   "local:<tag> = the same, named <tag>")
    extra_ca_certs: str = _setting("auto", doc="CA file or folder of .crt trusted in the build and at run time; "
                                   "auto = the host's /usr/local/share/ca-certificates; none = off")
    claude_code_version: str = _setting("latest", doc="npm version of @anthropic-ai/claude-code to install")
    opencode_version: str = _setting("latest", doc="npm version of opencode-ai to install")
    # -- builder-api -------------------------------------------------------------------
    builder_api_host: str = _setting("host.docker.internal", container=True,
                                     doc="Host name of builder-api as seen from the container")
    builder_api_port: int = _port(6666, container=True, doc="builder-api port")
    builder_api_autostart: bool = _setting(False, cage="network", doc="Start builder-api with every launch (like -a)")
    # -- ssh ---------------------------------------------------------------------------
    llm_docker_ssh_enabled: bool = _setting(True, container=True, doc="Run sshd in every slot's container (key-only, "
                                            "as the container's user)", cage="ssh")
    llm_docker_ssh_port: int = _port(2222, container=True, doc="Container-side sshd port (upstream: 22; >= 1024 "
                                     "needs no capability)")
    llm_docker_ssh_host_port: int = _port(8884, doc="Host port for slot 1 (slot N uses +N-1; the next free one within "
                                          "+50 when taken), bound to 127.0.0.1")
    llm_docker_ssh_probe_seconds: int = _setting(15, minimum=1, maximum=3600,
                                                 doc="Seconds between the supervisor's SSH reachability probes")
    # -- Claude Code tuning (forwarded) ------------------------------------------------
    is_sandbox: str = _setting("1", container=True, doc="Tells Claude Code it runs in a sandbox")
    claude_code_bubblewrap: str = _setting("1", container=True, doc="Second sandbox hint for Claude Code")
    claude_code_max_output_tokens: int = _setting(48000, container=True, minimum=1,
                                                  doc="Upper bound on Claude's output")
    # -- build-time groups -------------------------------------------------------------
    install_ssh: bool = _setting(True, doc="Build: OpenSSH server (LLM_DOCKER_SSH_ENABLED)")
    install_security: bool = _setting(False, doc="Build: pen-test toolkit")
    install_ruby: bool = _setting(False, doc="Build: Ruby")
    install_cpp: bool = _setting(False, doc="Build: make + cmake + gcc")
    install_llvm_clang: bool = _setting(False, doc="Build: LLVM/Clang toolchain")
    install_ns: bool = _setting(False, doc="Build: NativeScript CLI")
    install_media: bool = _setting(False, doc="Build: ffmpeg + sox + yt-dlp")
    install_quake: bool = _setting(False, doc="Build: SDL2 toolchain for the Quake port")
    install_browsing: bool = _setting(True, doc="Build: headless Chromium")
    install_tmux_vanilla: bool = _setting(True, doc="Build: tmux (needed by every -t* flag)")
    install_tmux_team: bool = _setting(True, doc="Build: team-mode helpers (-tt)")
    install_tmux_recon: bool = _setting(False, doc="Build: recon dashboard (-tr)")
    install_tmux_codeman: bool = _setting(False, doc="Build: Codeman web UI (-tc)")
    install_tmux_claude: bool = _setting(False, doc="Build: claude-tmux popup (-tcl)")
    # -- secrets (.env) ----------------------------------------------------------------
    anthropic_api_key: str = _setting("", secret=True, container=True, doc="Anthropic API key (skip if you use /login)")
    openai_api_key: str = _setting("", secret=True, container=True, doc="OpenAI API key")
    zai_api_key: str = _setting("", secret=True, container=True, doc="Z.AI API key")
    builder_api_password: str = _setting("", secret=True, container=True, doc="Shared builder-api password")
    codeman_username: str = _setting("", container=True, doc="Codeman web UI user name")
    codeman_password: str = _setting("", secret=True, container=True, doc="Codeman web UI password")
    llm_docker_ssh_authorized_keys: str = _setting("", secret=True, container=True, check=parse_authorized_keys,
                                                   doc="SSH public keys allowed into the slots, one per line or "
                                                       "separated by \\n", cage="ssh")

    extra: Mapping[str, str] = dataclasses.field(default_factory=dict, metadata={"internal": True})
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict, metadata={"internal": True})

    def image_for(self, tool: Tool) -> str:
        """The image a launch of `tool` runs: `LLM_DOCKER_IMAGE`, else the build's tag."""
        return self.llm_docker_image or default_image_tag(tool, self.llm_docker_image_prefix)

    @property
    def own_gateway_image(self) -> str:
        """llm-docker's own gateway image (built on demand): `<LLM_DOCKER_IMAGE_PREFIX>-gateway:latest`."""
        return gateway_image_tag(self.llm_docker_image_prefix)

    @property
    def gateway_image_tag(self) -> str:
        """The gateway image a launch runs: `GATEWAY_IMAGE`, else llm-docker's own."""
        return self.gateway_image or self.own_gateway_image

    def forwarded_host_variables(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.forward_env.split(",") if name.strip())


def default_image_tag(tool: Tool, prefix: str = DEFAULT_IMAGE_PREFIX) -> str:
    """The one image name scheme: `llm-docker-claude:latest` / `llm-docker-opencode:latest`
    (`LLM_DOCKER_IMAGE_PREFIX` replaces `llm-docker`; the tests use their own)."""
    return f"{prefix}-{tool.value}:latest"


def gateway_image_tag(prefix: str = DEFAULT_IMAGE_PREFIX) -> str:
    """llm-docker's own gateway image: `llm-docker-gateway:latest` (`launch.network.GATEWAY_IMAGE`)."""
    return f"{prefix}-gateway:latest"


#: A Docker repository name: lowercase path components of [a-z0-9] joined by . _ __ or -,
#: separated by / (a registry host may come first).
_IMAGE_PREFIX = re.compile(r"(?:[a-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
                           r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")


def check_image_prefix(text: str) -> str:
    """Validate `LLM_DOCKER_IMAGE_PREFIX` (a Docker repository name, no tag)."""
    if not _IMAGE_PREFIX.fullmatch(text) or len(text) > 200:
        raise ValueError(f"expected a Docker repository name like {DEFAULT_IMAGE_PREFIX} (lowercase letters, digits, "
                         f"and . _ - / between them; no tag), got '{text}'")
    return text


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    key: str
    attribute: str
    kind: type
    default: object
    secret: bool
    container: bool
    choices: tuple[str, ...]
    minimum: int | None
    maximum: int | None
    doc: str
    check: typing.Callable[[str], object] | None = None
    #: The part of the cage it defines (network, sandbox, danger, mounts, limits, ssh); "" = none.
    cage: str = ""


def settings() -> Iterator[SettingInfo]:
    """Every setting in declaration order, with its metadata."""
    hints = typing.get_type_hints(Config)
    for field in dataclasses.fields(Config):
        if field.metadata.get("internal"):
            continue
        kind = hints[field.name]
        if kind == Path | None:
            kind = Path
        yield SettingInfo(
            key=field.name.upper(), attribute=field.name, kind=kind, default=field.default,
            secret=field.metadata["secret"], container=field.metadata["container"],
            choices=field.metadata["choices"], minimum=field.metadata["minimum"],
            maximum=field.metadata["maximum"], doc=field.metadata["doc"],
            check=field.metadata["check"], cage=field.metadata["cage"],
        )


_SETTINGS_BY_KEY = {info.key: info for info in settings()}


def default_home(environ: Mapping[str, str], user_home: Path) -> Path:
    """`$LLM_DOCKER_HOME`, else `~/.llm-docker`."""
    configured = environ.get("LLM_DOCKER_HOME", "").strip()
    if configured:
        return Path(os.path.expanduser(configured)).absolute()
    return user_home / ".llm-docker"


@dataclasses.dataclass(frozen=True)
class LoadedConfig:
    config: Config
    warnings: tuple[str, ...]


def load_config(home: Path, environ: Mapping[str, str], user_home: Path) -> LoadedConfig:
    """Read `llm-docker.conf`, then `.env`, then the environment; validate every value.

    Missing files are fine (defaults apply). Raises `ConfigError` on the first invalid
    value or malformed line, and `MisspeltSettingError` on a near-miss of a cage setting;
    other unknown keys become warnings (see the module).
    """
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    extra: dict[str, str] = {}
    warnings: list[str] = []
    for filename in (CONF_FILE, SECRETS_FILE):
        path = home / filename
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path}: cannot read: {error}") from None
        try:
            entries = parse_env_text(text, origin=str(path), home=user_home)
        except EnvFileError as error:
            raise ConfigError(str(error)) from None
        for entry in entries:
            where = f"{path}:{entry.line}"
            info = _SETTINGS_BY_KEY.get(entry.key)
            if info is None:
                if PROVIDER_KEY.match(entry.key):
                    extra[entry.key] = entry.value
                    sources[entry.key] = where
                else:
                    warnings.append(_unknown_key(entry.key, where))
                continue
            values[info.attribute] = _convert(info, entry.value, where=f"{where}: {info.key}")
            sources[info.key] = where
        if filename == SECRETS_FILE and path.stat().st_mode & 0o077:
            warnings.append(f"{path} is readable by other users — run: chmod 600 {path}")
    for key, info in _SETTINGS_BY_KEY.items():
        if key in environ:
            values[info.attribute] = _convert(info, environ[key], where=f"environment variable {key}")
            sources[key] = ENVIRONMENT_SOURCE
    _check_forward_env(str(values.get("forward_env", "")), where=sources.get("FORWARD_ENV", ""))
    return LoadedConfig(Config(**values, extra=extra, sources=sources), tuple(warnings))  # type: ignore[arg-type]  # values: checked per field above


def _convert(info: SettingInfo, raw: str, *, where: str) -> object:
    text = raw.strip()
    if info.kind is bool:
        if text.lower() not in _BOOLEANS:
            raise ConfigError(f"{where}: expected true/false/yes/no/on/off/1/0, got '{raw}'")
        return _BOOLEANS[text.lower()]
    if info.kind is int:
        if not re.fullmatch(r"[0-9]+", text):
            raise ConfigError(f"{where}: expected a whole number, got '{raw}'")
        number = int(text)
        if info.minimum is not None and number < info.minimum or info.maximum is not None and number > info.maximum:
            raise ConfigError(f"{where}: must be between {info.minimum} and {info.maximum}, got {number}")
        return number
    if info.kind is Path:
        return Path(text) if text else None
    if info.choices and text not in info.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(info.choices)}, got '{raw}'")
    if info.check is not None:
        try:
            info.check(text)
        except ValueError as error:
            raise ConfigError(f"{where}: {error}") from None
    return raw


def _check_forward_env(names: str, *, where: str) -> None:
    for name in (n.strip() for n in names.split(",")):
        if name and not forwardable(name):
            raise ConfigError(f"{where}: FORWARD_ENV: {name} may never be forwarded to the container")


def _unknown_key(key: str, where: str) -> str:
    """The warning for an unknown key, or `MisspeltSettingError` when the closest setting
    (any of the equally close ones) is a cage setting."""
    distances = {known: edit_distance(key.upper(), known) for known in _SETTINGS_BY_KEY}
    nearest = min(distances.values())
    if nearest > NEAR_MISS_DISTANCE:
        return f"{where}: unknown key {key} (ignored)"
    close = [known for known, distance in distances.items() if distance == nearest]
    for known in close:
        if _SETTINGS_BY_KEY[known].cage:
            raise MisspeltSettingError(where, key, known, _SETTINGS_BY_KEY[known].cage)
    return f"{where}: unknown key {key} (ignored) — did you mean {close[0]}?"


def edit_distance(first: str, second: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): the insertions, deletions,
    substitutions and swaps of two neighbours that turn `first` into `second`. A count of
    slips, unlike difflib's similarity ratio, which forgives long keys far more than short."""
    before: list[int] = []
    previous = list(range(len(second) + 1))
    for i, left in enumerate(first, 1):
        current = [i]
        for j, right in enumerate(second, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (left != right))
            if i > 1 and j > 1 and left == second[j - 2] and first[i - 2] == right:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, previous = previous, current
    return previous[-1]


def describe_value(config: Config, info: SettingInfo) -> str:
    """The value as the files would spell it, secrets masked."""
    value = getattr(config, info.attribute)
    if info.secret:
        return "(set, masked)" if value else ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
