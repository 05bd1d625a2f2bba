"""`llm-docker doctor`: the install's SSH keys, and is every running slot's sshd reachable?

The keys (`supervisor/ssh_keys.py`) must be this user's, not symlinks, 0600 (folders
0700), and the pin must be the host key's: a pin that no longer matches makes every client
refuse every slot. Each running slot OF THIS INSTALL — its container mounts this
`$LLM_DOCKER_HOME/ssh` as the slot's keys; a slot of another install trusts other keys — is
probed once, the way the supervisor's probe does (`supervisor/tasks/ssh_probe.py`: the
install's client key, the pinned host key, `true`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import anyio
import asyncssh

from engine.client import Engine
from engine.errors import EngineError
from launch import ssh as plan
from launch.spec import LABEL_PREFIX
from supervisor.doctor.report import Finding, fail, ok, skip
from supervisor.ssh_keys import FILE_MODE, FOLDER_MODE, client_folder, keys_folder
from supervisor.tasks.ssh_probe import ensure_local_username, probe

SSH = "ssh"


def key_problems(state_home: Path) -> tuple[list[Finding], bool]:
    """(one finding per problem, or one "ok"; whether the keys exist). Blocks: a worker thread."""
    keys, client = keys_folder(state_home), client_folder(state_home)
    if not keys.exists() and not client.exists():
        return [ok(SSH, "the install's SSH keys are not made yet (the first launch makes them)")], False
    expected = [(keys, FOLDER_MODE, True), (keys / plan.HOST_KEY_FILE, FILE_MODE, False),
                (keys / plan.AUTHORIZED_KEYS_FILE, FILE_MODE, False), (client, FOLDER_MODE, True),
                (client / plan.CLIENT_KEY_FILE, FILE_MODE, False), (client / plan.KNOWN_HOSTS_FILE, FILE_MODE, False)]
    remake = (f"remove {keys} and {client} — the next launch makes new keys and a new pin (IDEs using "
              "`llm-docker ssh-config` must take the new config)")
    found = []
    for path, mode, folder in expected:
        problem = _entry_problem(path, mode, folder=folder)
        if problem is not None:
            message, fix = problem
            found.append(fail(SSH, message, fix or remake))
    if found:
        return found, False
    mismatch = _pin_problem(keys / plan.HOST_KEY_FILE, client / plan.KNOWN_HOSTS_FILE)
    if mismatch is not None:
        return [fail(SSH, mismatch, remake)], False
    return [ok(SSH, f"the install's keys are in place ({keys}, {client}: 0700/0600, the pin matches the host "
                    "key)")], True


def _entry_problem(path: Path, mode: int, *, folder: bool) -> tuple[str, str] | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return f"{path} is missing", ""
    except OSError as error:
        return f"{path} cannot be read ({error.strerror})", ""
    if stat.S_ISLNK(info.st_mode):
        return f"{path} is a symlink (llm-docker never follows one here)", ""
    if folder != stat.S_ISDIR(info.st_mode) or not (folder or stat.S_ISREG(info.st_mode)):
        return f"{path} is not a {'folder' if folder else 'regular file'}", ""
    if info.st_uid != os.getuid():
        return f"{path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})", f"chown {os.getuid()} {path}"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return (f"{path} has mode {stat.S_IMODE(info.st_mode):04o}: others may read it",
                f"chmod {mode:o} {path}")
    return None


def _pin_problem(host_key: Path, known_hosts: Path) -> str | None:
    try:
        public = asyncssh.read_private_key(str(host_key)).export_public_key("openssh").decode()
        pins = known_hosts.read_text(encoding="utf-8")
    except (OSError, ValueError, asyncssh.KeyImportError) as error:
        return f"the install's host key or pin cannot be read ({error})"
    if plan.known_hosts_line(public).strip() not in (line.strip() for line in pins.splitlines()):
        return (f"the pin in {known_hosts} is not the host key in {host_key}: every client refuses every slot "
                "(host key mismatch)")
    return None


def _mounts_install_keys(info: dict[str, Any], state_home: Path) -> bool:
    folder = keys_folder(state_home)
    sources = {str(folder), str(folder.resolve())}
    return any(mount.get("Destination") == plan.KEYS_TARGET and str(mount.get("Source", "")) in sources
               for mount in info.get("Mounts") or [])


async def slot_findings(docker: Engine, state_home: Path, *, timeout: float) -> list[Finding]:
    """One line per running slot of this install: its sshd answers, or why not."""
    found = await docker.containers.list(filters={"label": [LABEL_PREFIX + plan.LABEL_PORT], "status": ["running"]})
    slots = []
    for container in found:
        try:
            info = await container.show()
        except EngineError:
            continue  # gone meanwhile
        if _mounts_install_keys(info, state_home):
            slots.append((container.name, (info.get("Config") or {}).get("Labels") or {}))
    if not slots:
        return [ok(SSH, "no running slot of this install to reach")]
    ensure_local_username()
    client = client_folder(state_home)
    client_key = await anyio.to_thread.run_sync(asyncssh.read_private_key, str(client / plan.CLIENT_KEY_FILE))
    pins = await anyio.to_thread.run_sync(lambda: (client / plan.KNOWN_HOSTS_FILE).read_text(encoding="utf-8"))
    pinned = asyncssh.import_public_key(" ".join(next(line for line in pins.splitlines()
                                                      if line.startswith(plan.HOST_KEY_ALIAS + " ")).split()[1:3]))
    results: list[Finding] = []

    async def one(name: str, labels: dict[str, str]) -> None:
        port_text = labels.get(LABEL_PREFIX + plan.LABEL_PORT, "")
        slot = labels.get(LABEL_PREFIX + "slot") or "-"
        what = f"{labels.get(LABEL_PREFIX + 'tool', '?')} slot {slot} ({name})"
        if not port_text.isdigit():
            results.append(skip(SSH, f"{what}: no SSH port in its labels"))
            return
        user = labels.get(LABEL_PREFIX + plan.LABEL_USER, plan.FALLBACK_LOGIN)
        result = await probe(int(port_text), user, client_key, pinned, timeout=timeout)
        where = f"{plan.LOOPBACK}:{port_text}"
        if result.reachable:
            results.append(ok(SSH, f"{what}: sshd answers on {where} ({result.latency_ms or 0:.0f} ms)"))
        elif result.host_key_mismatch:
            results.append(fail(SSH, f"{what}: {where} answers with another host key ({result.error})",
                                "something else answers on its port, or $LLM_DOCKER_HOME/ssh was replaced: stop the "
                                "slot and launch it again"))
        else:
            results.append(fail(SSH, f"{what}: {where} unreachable ({result.error})",
                                "its sshd is down: launch the slot again (an image built with INSTALL_SSH=false has "
                                "no sshd — set LLM_DOCKER_SSH_ENABLED=false then)"))

    async with anyio.create_task_group() as group:
        for name, labels in slots:
            group.start_soon(one, name, labels)
    return sorted(results, key=lambda finding: finding.message)
