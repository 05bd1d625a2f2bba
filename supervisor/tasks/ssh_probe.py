"""The SSH reachability probe: is each slot's sshd there, and is it the install's?

Per slot, once its container has started (never before — the launch is not delayed), then
every LLM_DOCKER_SSH_PROBE_SECONDS (quicker while sshd starts, backing off while it is
down): connect to 127.0.0.1:<the slot's port> with the install's own client key (never
the user's), verify the host key against the install's pin (`supervisor.ssh_keys`), run
`true`, and time it. Each result is written atomically to
`$LLM_DOCKER_HOME/ssh-status/<container>.json` — outside every container, so the agent
cannot forge it — for `llm-docker status`, and logged; the judgement (`launch.ssh.judge`)
gives the terminal ONE notice when SSH goes away or the host key stops matching, and one
when it is back. Idle cost: one handshake per interval per slot, nothing in between.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from launch import ssh as plan
from launch.spec import LABEL_PREFIX
from supervisor.atomic import replace_atomically
from supervisor.context import SlotRun, Supervisor
from supervisor.printable import printable
from supervisor.ssh_keys import status_folder

if TYPE_CHECKING:
    import asyncssh

NAME = "ssh_probe"

#: One probe (connect, authenticate, run `true`) takes milliseconds; this bounds a stuck one.
PROBE_TIMEOUT_SECONDS = 10.0
#: The most of an SSH error's reason (the server's words) kept.
MAX_REASON_CHARS = 200


async def run(supervisor: Supervisor) -> None:
    keys = supervisor.ssh_keys
    if keys is None:
        return
    import asyncssh  # here, not at import: a launch without SSH never pays for it (~0.2 s)

    ensure_local_username()
    client_key = await anyio.to_thread.run_sync(asyncssh.read_private_key, str(keys.client_key))
    pinned = asyncssh.import_public_key(keys.pinned_host_key)
    folder = status_folder(supervisor.state_home)
    await anyio.to_thread.run_sync(lambda: folder.mkdir(mode=0o700, parents=True, exist_ok=True))

    async def watch(supervisor: Supervisor, slot: SlotRun) -> None:
        await watch_slot(supervisor, slot, client_key, pinned, folder / f"{slot.spec.name}.json")

    await supervisor.for_each_slot(watch)


async def watch_slot(supervisor: Supervisor, slot: SlotRun, client_key: asyncssh.SSHKey,
                     pinned: asyncssh.SSHKey, status_file: Path) -> None:
    """Probe one slot from its start until its container is gone; then drop its status."""
    labels = slot.spec.create.get("Labels") or {}
    port_text = labels.get(LABEL_PREFIX + plan.LABEL_PORT, "")
    if not port_text.isdigit():
        return
    port, user = int(port_text), labels.get(LABEL_PREFIX + plan.LABEL_USER, plan.FALLBACK_LOGIN)
    interval = float(supervisor.plan.config.llm_docker_ssh_probe_seconds)
    try:
        async with anyio.create_task_group() as group:
            async def stop_when_gone() -> None:
                await slot.container_gone.wait()
                group.cancel_scope.cancel()

            group.start_soon(stop_when_gone)
            await _write(status_file, plan.status_record(port, None, None))
            await slot.started.wait()
            await _probe_loop(supervisor, slot, port, user, client_key, pinned, status_file, interval)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: status_file.unlink(missing_ok=True))


async def _probe_loop(supervisor: Supervisor, slot: SlotRun, port: int, user: str, client_key: asyncssh.SSHKey,
                      pinned: asyncssh.SSHKey, status_file: Path, interval: float) -> None:
    health, delay, started = plan.Health.STARTING, 0.0, time.monotonic()
    while True:
        result = await probe(port, user, client_key, pinned)
        checked_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        await _write(status_file, plan.status_record(port, result, checked_at))
        supervisor.log.debug("ssh-probe", container=slot.spec.name, port=port, reachable=result.reachable,
                             latency_ms=result.latency_ms, error=result.error)
        health_before = health
        health, message = plan.judge(health, result, time.monotonic() - started)
        if health != health_before:
            supervisor.log.info("ssh-health", container=slot.spec.name, port=port, health=health, error=result.error)
        if message is not None:
            supervisor.notice(f"{slot.label}: {message}")
        delay = plan.next_delay(health, delay, interval)
        await anyio.sleep(delay)


async def probe(port: int, user: str, client_key: asyncssh.SSHKey, pinned: asyncssh.SSHKey, *,
                timeout: float = PROBE_TIMEOUT_SECONDS) -> plan.ProbeResult:
    """One probe. Only the pinned host key is trusted; nothing of the user's SSH setup
    (config, agent, known_hosts, keys) is read."""
    import asyncssh

    began = time.perf_counter()
    try:
        with anyio.fail_after(timeout):
            async with asyncssh.connect(
                    plan.LOOPBACK, port, username=user, client_keys=[client_key], known_hosts=([pinned], [], []),
                    config=[], agent_path=None, agent_forwarding=False, password=None, kbdint_auth=False,
                    password_auth=False, gss_auth=False, preferred_auth="publickey",
                    connect_timeout=timeout) as connection:
                # nothing of what the cage's side prints is kept (its shell's rc files can print
                # without end): only the exit status counts
                completed = await connection.run("true", check=False, stdin=asyncssh.DEVNULL,
                                                 stdout=asyncssh.DEVNULL, stderr=asyncssh.DEVNULL)
    except asyncssh.HostKeyNotVerifiable as error:
        return plan.ProbeResult(reachable=False, error=f"host key mismatch: {_reason(error)}", host_key_mismatch=True)
    except TimeoutError:
        return plan.ProbeResult(reachable=False, error=f"no answer within {timeout:g}s")
    except asyncssh.PermissionDenied as error:
        return plan.ProbeResult(reachable=False, error=f"login refused: {_reason(error)}")
    except (OSError, asyncssh.Error) as error:
        return plan.ProbeResult(reachable=False, error=_describe(error))
    latency = (time.perf_counter() - began) * 1000
    if completed.exit_status != 0:
        return plan.ProbeResult(reachable=False, latency_ms=latency,
                                error=f"the login shell failed (exit {completed.exit_status})")
    return plan.ProbeResult(reachable=True, latency_ms=latency)


def ensure_local_username() -> None:
    """asyncssh asks `getpass.getuser()` for every client connection, which fails for a uid
    with no passwd entry and no $USER (a container-like host, a test user): give it the uid."""
    try:
        getpass.getuser()
    except (KeyError, OSError):
        os.environ["LOGNAME"] = str(os.getuid())


def _describe(error: BaseException) -> str:
    import asyncssh

    if isinstance(error, asyncssh.Error):
        return _reason(error)
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error) or type(error).__name__


async def _write(path: Path, record: dict[str, object]) -> None:
    content = json.dumps(record, sort_keys=True).encode() + b"\n"
    await anyio.to_thread.run_sync(replace_atomically, path, content, 0o600)


def _reason(error: asyncssh.Error) -> str:
    """An SSH error's reason: often the server's own text — the cage's sshd chooses it (a
    DISCONNECT message), so it is cut short and made printable before anyone shows it."""
    return printable(error.reason[:MAX_REASON_CHARS]) if error.reason else type(error).__name__
