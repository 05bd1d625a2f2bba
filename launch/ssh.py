"""SSH into a slot, planned: ports, login name, authorized keys, known_hosts and ssh-config.

Pure functions only (no sockets, no files): the effects live in `supervisor/ssh_keys.py`
(the install's keys), `supervisor/ssh_ports.py` (is a port free?), the probe task
(`supervisor/tasks/ssh_probe.py`) and the admin commands (`supervisor/ssh_command.py`).

The design, and why:

* sshd runs INSIDE the agent's container as the container's own user (the invoking uid):
  no root, no privilege separation, so the spec adds no capability for it (the default
  container port is 2222, not upstream's 22, so not even NET_BIND_SERVICE);
* one ed25519 host key per install (`$LLM_DOCKER_HOME/ssh/`), reused by every slot and
  launch, so the fingerprint never changes; it is pinned once, when it is made, in
  `$LLM_DOCKER_HOME/ssh-client/known_hosts` under the alias `llm-docker` (a folder that is
  never mounted into a container), and every client we start checks against that pin;
* what sshd trusts (`authorized_keys`: the user's keys plus the install's own client key)
  and the host key are mounted READ-ONLY, so the agent cannot edit them;
* each slot's host port is `LLM_DOCKER_SSH_HOST_PORT + slot - 1` on 127.0.0.1, moving to
  the next free one within +50 when taken (as upstream).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from launch.errors import LlmDockerError, UsageError

#: `$LLM_DOCKER_HOME/ssh/`: mounted read-only at `/etc/ssh/keys` (upstream's folder and target).
KEYS_FOLDER = "ssh"
KEYS_TARGET = "/etc/ssh/keys"
HOST_KEY_FILE = "ssh_host_ed25519_key"
AUTHORIZED_KEYS_FILE = "authorized_keys"
#: `$LLM_DOCKER_HOME/ssh-client/`: the install's client key and the host key pin; never mounted.
CLIENT_FOLDER = "ssh-client"
CLIENT_KEY_FILE = "id_ed25519"
KNOWN_HOSTS_FILE = "known_hosts"
SSH_CONFIG_FILE = "config"
#: `$LLM_DOCKER_HOME/ssh-status/<container>.json`: the probe's last result, out of the agent's reach.
STATUS_FOLDER = "ssh-status"
#: The name the host key is pinned under, whatever the port (`HostKeyAlias`).
HOST_KEY_ALIAS = "llm-docker"
#: How far past a slot's own port a launch looks for a free one (as upstream).
PORT_SPAN = 50
#: The login name when the launcher's own cannot be used (root, or not a plain name).
FALLBACK_LOGIN = "agent"
LOOPBACK = "127.0.0.1"

#: Container labels (after `io.llm-docker.`): the host port chosen, the login name.
LABEL_PORT = "ssh-port"
LABEL_USER = "ssh-user"

#: Public key types sshd accepts here (DSA is gone from OpenSSH).
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")

_LOGIN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_ALIAS_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class SshPortError(LlmDockerError):
    """No usable host port for a slot's SSH; the message names the range (one line). At
    launch it means the slot could not start (exit 1); planning turns a port that cannot
    exist (above 65535) into a `ConfigError` before anything runs."""


# -- authorized keys -----------------------------------------------------------------------


def parse_authorized_keys(text: str) -> tuple[str, ...]:
    """`LLM_DOCKER_SSH_AUTHORIZED_KEYS`: public keys separated by newlines or a literal `\\n`.

    Each key must be `TYPE BASE64 [comment]` whose base64 really encodes a key of TYPE, so a
    placeholder (`ssh-ed25519 AAAA... you@host`), a private key or a pasted fingerprint is a
    config error at once — not a silent "Permission denied" at the first login. Options
    (`command=`, `from=`) are refused: what a key may do is decided here, not in the key.
    The key text itself never appears in the message (the setting is kept as a secret)."""
    keys: list[str] = []
    lines = [line.strip() for line in text.replace("\\n", "\n").splitlines()]
    for number, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        where = f"key {number}" if len(lines) > 1 else "the key"
        if parts[0] not in KEY_TYPES:
            raise ValueError(f"{where} is not an SSH public key (expected 'ssh-ed25519 AAAA... comment', "
                             f"one per line or separated by \\n)")
        if len(parts) < 2 or not _encodes_type(parts[1], parts[0]):
            raise ValueError(f"{where} ({parts[0]}) has no valid key data — paste the whole line of the .pub file")
        keys.append(" ".join(parts))
    return tuple(keys)


def _encodes_type(data: str, key_type: str) -> bool:
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(blob) < 4:
        return False
    length = int.from_bytes(blob[:4], "big")
    return blob[4:4 + length] == key_type.encode() and len(blob) > 4 + length


def authorized_keys_text(user_keys: Iterable[str], install_key: str) -> str:
    """The `authorized_keys` sshd reads: the user's keys, then the install's own client key
    (used by the probe, `llm-docker ssh` and the ssh-config entries). No options on any line:
    forwarding and the command are decided by sshd's config, for every key alike."""
    lines = [*user_keys, install_key.strip()]
    return "".join(f"{line}\n" for line in dict.fromkeys(lines))


def known_hosts_line(host_public_key: str) -> str:
    """The pin: `llm-docker <type> <base64>` (no comment), matched through `HostKeyAlias`."""
    key_type, data = host_public_key.split()[:2]
    return f"{HOST_KEY_ALIAS} {key_type} {data}\n"


# -- who logs in ---------------------------------------------------------------------------


def login_name(environ: Mapping[str, str], uid: int) -> str:
    """The container user's login name: the launcher's own (`$USER`) when it is a plain
    name, else `agent`. Never `root`: the container's user is the invoking uid, and sshd
    (running as that uid) can log in only that user."""
    name = environ.get("USER") or environ.get("LOGNAME") or ""
    if uid == 0 or name == "root" or not _LOGIN.match(name):
        return FALLBACK_LOGIN
    return name


# -- ports ---------------------------------------------------------------------------------


def slot_port(base: int, slot: int | None) -> int:
    """`base + slot - 1` (no slot: the base), as upstream."""
    return base + (slot - 1 if slot else 0)


def candidate_ports(base: int, slot: int | None) -> range:
    """The slot's own port, then the next `PORT_SPAN` (never past 65535)."""
    first = slot_port(base, slot)
    if first > 65535:
        raise SshPortError(f"SSH host port {first} for slot {slot} is above 65535 — lower LLM_DOCKER_SSH_HOST_PORT")
    return range(first, min(first + PORT_SPAN, 65535) + 1)


def choose_port(candidates: range, is_free: Callable[[int], bool]) -> int:
    """The first free port of `candidates` (asked one by one, so only as many ports are
    tried as needed); `SshPortError` naming the range when none is."""
    for port in candidates:
        if is_free(port):
            return port
    raise SshPortError(f"no free SSH host port in 127.0.0.1:{candidates.start}-{candidates.stop - 1} — free one, "
                       "or set LLM_DOCKER_SSH_HOST_PORT elsewhere (or LLM_DOCKER_SSH_ENABLED=false)")


# -- clients -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SshTarget:
    """One running slot, as a client reaches it."""

    project: str
    tool: str
    slot: int | None
    port: int
    user: str

    @property
    def alias(self) -> str:
        """`llm-docker-<project>-<slot>` (Claude) / `...-<slot>-opencode`: stable across
        launches, so an IDE's saved host keeps working (the port may move, the name not)."""
        name = f"llm-docker-{_ALIAS_UNSAFE.sub('-', self.project)}-{self.slot or 1}"
        return name if self.tool == "claude" else f"{name}-{self.tool}"


def client_options(client_folder: Path) -> list[str]:
    """`-o` options every client we start or configure uses: strict checking against the
    install's pin, the install's key, no agent or X11 forwarding, nothing from the user's
    default known_hosts."""
    return ["-o", f"HostKeyAlias={HOST_KEY_ALIAS}",
            "-o", f"UserKnownHostsFile={client_folder / KNOWN_HOSTS_FILE}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "CheckHostIP=no",
            "-o", f"IdentityFile={client_folder / CLIENT_KEY_FILE}",
            "-o", "ForwardAgent=no",
            "-o", "ForwardX11=no"]


def ssh_argv(target: SshTarget, client_folder: Path, extra: Iterable[str] = ()) -> list[str]:
    """`llm-docker ssh`: the OpenSSH command line that opens a shell in the slot."""
    return ["ssh", "-p", str(target.port), *client_options(client_folder), *extra, f"{target.user}@{LOOPBACK}"]


def ssh_config_text(targets: Iterable[SshTarget], client_folder: Path) -> str:
    """One `Host` block per running slot, for IDEs (Remote-SSH, JetBrains Gateway):
    strict host-key checking against the install's pin, so no prompt and no trust-on-first-use."""
    blocks = []
    for target in targets:
        options = client_options(client_folder)
        lines = [f"Host {target.alias}", f"    HostName {LOOPBACK}", f"    Port {target.port}",
                 f"    User {target.user}"]
        for option in options[1::2]:
            key, value = option.split("=", 1)
            lines.append(f'    {key} "{value}"' if " " in value else f"    {key} {value}")
        lines.append(f"    # {target.tool} slot {target.slot or '-'} of {target.project}")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


# -- the probe's judgement ------------------------------------------------------------------

#: Until a slot's sshd first answers, probe quickly (it starts with the container) ...
FIRST_RETRY_SECONDS = 0.2
#: ... and say it is unreachable only if it has not answered after this long.
STARTUP_GRACE_SECONDS = 30.0
#: While failing, the interval grows up to this many times the normal one (a dead sshd
#: costs nearly nothing); one success brings it back.
BACKOFF_LIMIT = 4


class Health:
    """What the probe last concluded about a slot's SSH."""

    STARTING = "starting"
    UP = "up"
    DOWN = "down"
    MISMATCH = "mismatch"


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """One probe: connect, verify the host key against the pin, run `true`."""

    reachable: bool
    latency_ms: float | None = None
    error: str | None = None
    host_key_mismatch: bool = False


def judge(previous: str, result: ProbeResult, elapsed: float, *,
          grace: float = STARTUP_GRACE_SECONDS) -> tuple[str, str | None]:
    """(new health, the ONE notice for the slot's terminal or None).

    A notice only on a change between healthy and unhealthy (plus a host key that stops
    matching, which is always news): a slot whose sshd stays down says so once, not
    every interval. While starting, failures are expected until `grace` has passed."""
    if result.host_key_mismatch:
        if previous == Health.MISMATCH:
            return previous, None
        return Health.MISMATCH, ("SSH: the slot's host key does NOT match the install's pinned key — something "
                                 "else answers on its port, or $LLM_DOCKER_HOME/ssh was replaced; clients refuse it")
    if result.reachable:
        if previous in (Health.DOWN, Health.MISMATCH):
            return Health.UP, "SSH: reachable again"
        return Health.UP, None
    if previous == Health.STARTING and elapsed < grace:
        return previous, None
    if previous in (Health.STARTING, Health.UP):
        return Health.DOWN, f"SSH: unreachable ({result.error or 'no answer'}) — the agent goes on; " \
                            "`llm-docker status` shows when it is back"
    return previous, None


def next_delay(health: str, previous_delay: float, interval: float) -> float:
    """Seconds until the next probe: quick retries while starting, the interval while up,
    a back-off up to `BACKOFF_LIMIT` intervals while down."""
    if health == Health.UP:
        return interval
    if health == Health.STARTING:
        return min(max(previous_delay * 2, FIRST_RETRY_SECONDS), interval)
    return min(max(previous_delay * 2, interval), interval * BACKOFF_LIMIT)


def status_record(port: int, result: ProbeResult | None, checked_at: str | None) -> dict[str, object]:
    """`ssh` of `llm-docker status --json`: {port, reachable, latency_ms, checked_at, error}
    (`reachable` None until the first probe)."""
    if result is None:
        return {"port": port, "reachable": None, "latency_ms": None, "checked_at": None, "error": None}
    latency = None if result.latency_ms is None else round(result.latency_ms, 1)
    return {"port": port, "reachable": result.reachable, "latency_ms": latency, "checked_at": checked_at,
            "error": result.error}


# -- `llm-docker ssh` words -------------------------------------------------------------------

TOOLS = ("claude", "opencode")


@dataclasses.dataclass(frozen=True)
class SshRequest:
    """`llm-docker ssh [TOOL] [SLOT] [DIR] [-- ssh args]`, parsed."""

    tool: str | None = None
    slot: int | None = None
    directory: Path | None = None
    ssh_args: tuple[str, ...] = ()


def parse_ssh_words(words: list[str]) -> SshRequest:
    """TOOL, SLOT and DIR in any order before `--` (a tool name, a number, anything else is
    the folder); everything after `--` goes to ssh as it is. `UsageError` (exit 2) otherwise."""
    extra: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, extra = words[:at], words[at + 1:]
    tool = slot = directory = None
    for word in words:
        if word in TOOLS and tool is None:
            tool = word
        elif word.isdigit() and slot is None:
            slot = int(word)
            if not 1 <= slot <= 99:
                raise UsageError(f"the slot must be between 1 and 99, got {word}")
        elif directory is None and not word.startswith("-"):
            directory = Path(word)
        else:
            raise UsageError(f"unexpected '{word}' — usage: llm-docker ssh [TOOL] [SLOT] [DIR] [-- ssh args]")
    return SshRequest(tool, slot, directory, tuple(extra))
