"""A slot's network gateway on the engine: start it, prove its policy, end it.

One task holds each gateway for its whole life (`GatewayRun.hold`): it creates it, attaches
to it (stdin too) BEFORE starting it, and reads the attach stream until the gateway's
verdict. The gateway proves its own policy right after loading it: its entrypoint runs the
checks in its namespace — the one the agent's container joins — as the agent's uid with no
capability, and prints "llm-docker-gateway: verified" only if every check passed (no
polling, no `docker exec` round trip). The agent's container may be created meanwhile
(it only names the gateway's namespace) but is started only after that line; any failure
is one line and no agent runs: fail closed.

The attach stream is also the gateway's lease: the gateway is created with `StdinOnce` and
ends when its stdin does, and with `AutoRemove` the engine removes it then. So when the
supervisor's connection closes — a normal end, a crash, a SIGKILL of the launcher — the
gateway goes away without anyone waiting for it: ending it costs the launch one signal,
the engine tears its network down after the user's prompt is back.

`GatewayHolders` owns those tasks for one launch. `supervisor.launcher` opens it BEFORE the
rest of the supervisor is imported, and starts every slot's gateway at once (`early`): the
engine sets up the gateway's network while Python loads the supervisor and the launch
takes its leases. The container task then `take`s the gateway whose create body matches its
final spec (else the early one is removed and a new one started), so what runs is always
exactly what the launch planned. A refused launch removes the early gateways on its way out.

A gateway may be kept for the slot's next launch (`GATEWAY_KEEP_SECONDS`, plain Docker
Engine on Linux): at the end, once the agent's container is gone, its lease just closes
and it waits on its lease socket, in a folder of the state home that only it mounts. The
slot's next launch finds it by its slot label and takes it only by connecting to its lease
socket (a gateway in a session removes that socket: a busy one is never taken nor removed),
only when it enforces exactly what this launch planned (the digest label) with the planned
image; it gets the policy proved again and the verdict, and renames it to this launch's
gateway name: the agent then joins a namespace that exists already. Idle ones that enforce
something else are ended. Nobody came within the time: the gateway ends by itself, and the engine removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from engine.client import Engine
from engine.containers import Container
from engine.errors import EngineError
from engine.streams import AttachStream
from launch.errors import LlmDockerError
from launch.network import (
    GATEWAY_FOLDER_NAME,
    GATEWAY_LEASE_SOCKET,
    GATEWAY_LEASE_TARGET,
    LABEL_GATEWAY_REUSE,
    LABEL_GATEWAY_SLOT,
    LABEL_PROBE_USER,
    LABEL_PROBES,
    GatewaySpec,
    gateway_name,
)
from launch.spec import LABEL_PREFIX
from supervisor.gateway_folders import sweep_gateway_folders

if TYPE_CHECKING:
    from launch.plan import LaunchPlan

READY_LINE = b"llm-docker-gateway: ready"
VERIFIED_LINE = b"llm-docker-gateway: verified"
#: Upper bound for the gateway to load its rules and start its resolver.
READY_SECONDS = 20.0
#: Upper bound for the checks from inside the cage (every probe is bounded in the image).
VERIFY_SECONDS = 30.0
PROBE_COMMAND = "/usr/local/sbin/llm-docker-gateway-probe"
REMOVE_GRACE_SECONDS = 1
#: Upper bound for ending (or removing) a gateway, whatever else happens.
END_SECONDS = 15.0
#: How long a gateway that must confirm its removal (`GatewayRun.confirm_removal`) gets before it is forced.
REMOVAL_SECONDS = 5.0
#: Upper bound for a launch's sweep of gone gateways' host folders on its way out.
SWEEP_SECONDS = 2.0
#: The supervisor's last word on a gateway's lease when it may be kept: without it (a crash,
#: a SIGKILL, a signal), the lease's end ends the gateway.
KEEP_WORD = b"keep\n"
#: How long a kept gateway's checks may take (its rules and resolver run already; each
#: check is bounded in the image): past it, a new gateway is started instead.
KEPT_VERIFY_SECONDS = 5.0
#: How long connecting to a kept gateway's lease socket may take.
LEASE_CONNECT_SECONDS = 1.0
#: The most a kept gateway's session may say before its verdict (its checks: a line each).
LEASE_SAYS_BYTES = 64 * 1024


class GatewayError(LlmDockerError):
    """The gateway could not be started or its policy did not verify; one line, exit 1
    (no agent was started)."""


def prepare_ports_folder(folder: Path) -> None:
    """The HOST_PORTS folder must exist before the gateway that mounts it is created
    (`tasks.host_ports` listens in it; both may prepare it, in any order)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.parent.chmod(0o755)
    folder.chmod(0o755)


def prepare_lease_folder(folder: Path) -> None:
    """A kept gateway's lease folder must exist before the gateway that mounts it is created.
    Its root (no capability to override file modes) makes its socket there, so the folder is
    writable by all — inside the user's private state home, where no other user reaches it
    (and the supervisor checks who answers: `_lease_peer_ok`)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.parent.parent.chmod(0o700)  # the gateway reaches its folder through its bind mount
    folder.parent.chmod(0o755)
    folder.chmod(0o777)


_PEER_CREDENTIALS = struct.Struct("3i")


def _lease_peer_ok(stream: anyio.abc.SocketStream) -> bool:
    """Only the engine's root (a rootful engine) or the user (a rootless one) may be the
    gateway at the other end of a lease socket."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    _, uid, _ = _PEER_CREDENTIALS.unpack(raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        _PEER_CREDENTIALS.size))
    return uid in (0, os.getuid())


def _lease_socket_ok(folder: int) -> bool:
    """The lease socket is there (the gateway waits: idle), a socket itself (never a link)
    made by the engine's root or the user; `folder` is the lease folder, opened."""
    try:
        info = os.stat(GATEWAY_LEASE_SOCKET, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISSOCK(info.st_mode) and info.st_uid in (0, os.getuid())


async def _connect_lease(folder: Path) -> anyio.abc.SocketStream:
    """Connect to a kept gateway's lease socket (bounded: a socket that does not accept is
    not waiting for us). Through the opened folder (`/proc/self/fd/N/…`): a socket path
    may hold 107 bytes, and a user's state folder can be longer than that; the folder
    itself is never a link followed."""
    descriptor = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not _lease_socket_ok(descriptor):
            raise OSError(f"no lease socket waits in {folder}")
        with anyio.fail_after(LEASE_CONNECT_SECONDS):
            return await anyio.connect_unix(f"/proc/self/fd/{descriptor}/{GATEWAY_LEASE_SOCKET}")
    finally:
        os.close(descriptor)


class GatewayRun:
    """One slot's gateway from create to its end, held by ONE task (`hold`)."""

    def __init__(self, spec: GatewaySpec, lease: anyio.abc.SocketStream | None = None,
                 container: Container | None = None) -> None:
        self.spec = spec
        #: A kept gateway this launch took: its lease connection (verified already) and container.
        self._lease = lease
        self._kept_container = container
        #: May this gateway be kept when it is released (`release(keep=True)`)?
        self.keepable = False
        #: It was kept at its release (it waits for the slot's next launch).
        self.kept = False
        #: A kept gateway's host folder (named after the launch that made it), removed when it ends.
        self.kept_folder: Path | None = None
        self._keep = False
        #: Set once the gateway exists and its image is known (or it could not be created);
        #: `image_id` is its image (None: unknown — `take` replaces the gateway).
        self.created = anyio.Event()
        self.image_id: str | None = None
        #: Set once the verdict is known; `error` is None when the policy verified.
        self.settled = anyio.Event()
        self.error: str | None = None
        self.ended = anyio.Event()
        #: Set once the engine's answer to the start is known; `running`: it started.
        self.start_known = anyio.Event()
        self.running = False
        self.adopted = False
        self._release = anyio.Event()
        self._discard = False
        self._keep_folder = False
        self._ending = False
        #: Wait for the engine's removal after the SIGTERM and force it when it does not come
        #: (Podman: a gateway that outlived its SIGTERM was seen to stay); Docker's AutoRemove
        #: is left off the exit path.
        self.confirm_removal = False

    @property
    def claimed(self) -> bool:
        """A kept gateway this launch claimed (not one it created)."""
        return self._kept_container is not None

    async def verified(self) -> None:
        """Return once the policy verified; raise `GatewayError` (one line) otherwise."""
        await self.settled.wait()
        if self.error is not None:
            raise GatewayError(self.error)

    def release(self, *, discard: bool = False, keep_folder: bool = False, keep: bool = False) -> None:
        """End the gateway: one signal, the engine removes it (`discard`: remove it now and
        wait for that — its name is about to be reused; `keep`: end only its lease, when it
        is `keepable` — it waits for the slot's next launch)."""
        self._discard = self._discard or discard
        self._keep_folder = self._keep_folder or keep_folder
        self._keep = self._keep or (keep and self.keepable and self.spec.keep is not None)
        self._release.set()

    async def _say_keep(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        """When released to be kept: say "keep" on the lease (`send`), then it is `kept`;
        not said (the connection failed), the lease's end ends it."""
        if not (self._keep and not self._discard and self.error is None):
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(END_SECONDS), contextlib.suppress(Exception):
            await send(KEEP_WORD)
            self.kept = True

    async def hold(self, docker: Engine) -> None:
        if self._kept_container is not None:
            await self._hold_kept(self._kept_container)
            return
        container: Container | None = None
        started = False
        creating = False
        try:
            try:
                if self.spec.ports_folder is not None:
                    await anyio.to_thread.run_sync(prepare_ports_folder, self.spec.ports_folder)
                if self.spec.keep is not None:
                    await anyio.to_thread.run_sync(prepare_lease_folder, self.spec.keep.lease_folder)
                creating = True
                container = await docker.containers.create(self.spec.create, name=self.spec.name)
                creating = False
            except EngineError as error:
                creating = False
                self.error = f"the network gateway cannot be created: {error}"
            except Exception as error:  # noqa: BLE001 - engine unreachable, folder refused: no gateway
                self.error = f"the network gateway cannot be created: {error}"
            if container is None:
                return
            async with container.attach(stdin=True, stdout=True, stderr=True, logs=False) as stream:
                said = bytearray()
                with anyio.move_on_after(READY_SECONDS + VERIFY_SECONDS) as waited:
                    try:
                        try:
                            # started first: the engine's start is the slot's critical path,
                            # the image's id is only needed once the slot `take`s its gateway
                            await container.start()
                            started = self.running = True
                        finally:
                            self.start_known.set()
                            await self._learn_image(container)
                        while VERIFIED_LINE not in said and (message := await stream.read_out()) is not None:
                            said += message.data
                    except EngineError as error:
                        self.error = f"the network gateway did not start: {error}"
                if self.error is None and VERIFIED_LINE not in said:
                    self.error = _failure(said, timed_out=waited.cancelled_caught)
                self.settled.set()
                if self.error is None:
                    async with anyio.create_task_group() as group:
                        group.start_soon(_drain, stream)
                        await self._release.wait()
                        group.cancel_scope.cancel()
                    # its last word on the lease; then the stream closes (stdin EOF): kept
                    await self._say_keep(stream.write_in)
                    if not self.kept:
                        # still attached: the signal first, then the stream closes (stdin EOF)
                        with anyio.CancelScope(shield=True), anyio.move_on_after(END_SECONDS):
                            await self._end(container, started)
        finally:
            self.created.set()
            self.start_known.set()
            if self.error is None and not self.settled.is_set():
                self.error = "the network gateway was not started (the launch ended)"
            self.settled.set()
            with anyio.CancelScope(shield=True), anyio.move_on_after(END_SECONDS):
                if container is None and creating:  # cancelled while the engine created it
                    container = docker.containers.get(self.spec.name)
                if container is not None and not self.kept:
                    await self._end(container, started)
                if not self._keep_folder and not self.kept:
                    for folder in _folders(self.spec):
                        await anyio.to_thread.run_sync(shutil.rmtree, folder, True)
            self.ended.set()

    async def _hold_kept(self, container: Container) -> None:
        """Hold a kept gateway this launch took (verified, renamed: `GatewayHolders.take`)
        until its release: then close the lease (kept once more) or end it."""
        assert self._lease is not None
        lease = self._lease
        self.running = True
        self.created.set()
        self.start_known.set()
        self.settled.set()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(_drain_lease, lease)
                await self._release.wait()
                group.cancel_scope.cancel()
            await self._say_keep(lease.send)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(END_SECONDS):
                if not self.kept:
                    await self._end(container, True)  # still connected: the signal first
                with contextlib.suppress(Exception):
                    await lease.aclose()
                if not self.kept and self.kept_folder is not None:
                    await anyio.to_thread.run_sync(shutil.rmtree, self.kept_folder, True)
            self.ended.set()

    async def _learn_image(self, container: Container) -> None:
        """The image the gateway was created from (`take` compares it with the planned one);
        unknown stays None, and `take` then starts a new gateway rather than trust this one."""
        try:
            self.image_id = (await container.show()).get("Image")
        except Exception:  # noqa: BLE001 - the engine's answer is missing: the image is unknown
            self.image_id = None
        finally:
            self.created.set()

    async def _end(self, container: Container, started: bool) -> None:
        if self._ending:
            return
        self._ending = True
        try:
            if started and not self._discard:
                # SIGTERM: the engine answers at once (SIGKILL would wait for the teardown);
                # AutoRemove does the rest, and the closed stdin ends it anyway
                await container.kill(signal="SIGTERM")
                if not self.confirm_removal:
                    return
                with anyio.move_on_after(REMOVAL_SECONDS):
                    await container.wait(condition="removed")
                    return
        except EngineError:
            pass  # not running any more (it failed, or ended): removed below, or by the engine
        except Exception:  # noqa: BLE001 - the engine went away: the lease ends the gateway
            return
        await remove_gateway_container(container)


def _digest(spec: GatewaySpec) -> str | None:
    """The reuse digest `spec` carries (None: it is not a gateway that may be kept)."""
    value = (spec.create.get("Labels") or {}).get(LABEL_PREFIX + LABEL_GATEWAY_REUSE)
    return value if isinstance(value, str) else None


def _lease_folder(spec: GatewaySpec, candidate: Container) -> Path | None:
    """A kept gateway's lease folder, from its mounts — only one of this user's gateway
    folders, as `plan_gateway` names them (None: not one)."""
    assert spec.keep is not None
    folder = next((Path(str(m.get("Source", ""))) for m in candidate.summary.get("Mounts") or ()
                   if m.get("Destination") == GATEWAY_LEASE_TARGET), None)
    if folder is None or folder.name != "lease" or not GATEWAY_FOLDER_NAME.fullmatch(folder.parent.name) \
            or folder.parent.parent != spec.keep.lease_folder.parent.parent:
        return None
    return folder


def _folders(spec: GatewaySpec) -> list[Path]:
    """The host folders of a gateway of this launch (`$LLM_DOCKER_HOME/gateways/<digest>/`)."""
    found = [spec.ports_folder.parent] if spec.ports_folder is not None else []
    if spec.keep is not None:
        found.append(spec.keep.lease_folder.parent)
    return found


async def _drain_lease(lease: anyio.abc.SocketStream) -> None:
    """Read what a kept gateway's session still says, so it never backs up."""
    with contextlib.suppress(Exception):
        while True:
            await lease.receive()


async def _drain(stream: AttachStream) -> None:
    """Read what the gateway still says, so its output never backs up."""
    with contextlib.suppress(Exception):
        while await stream.read_out() is not None:
            pass


def _failure(said: bytes | bytearray, *, timed_out: bool) -> str:
    lines = [line.strip() for line in said.decode(errors="replace").strip().splitlines() if line.strip()]
    failed = [line.removeprefix("FAIL ") for line in lines if line.startswith("FAIL")]
    if failed:
        return (f"the network policy did not verify ({failed[0]}"
                f"{f' and {len(failed) - 1} more' if len(failed) > 1 else ''})")
    if timed_out:
        done = READY_LINE in said
        return (f"the network policy checks did not finish within {VERIFY_SECONDS:.0f} s" if done else
                f"the network gateway was not ready within {READY_SECONDS:.0f} s")
    return ("the network gateway stopped before its policy was in place"
            + (f": {lines[-1]}" if lines else ""))


async def remove_gateway_container(container: Container) -> None:
    """Remove now and wait for it (bounded: an engine that never confirms does not hold up
    the launch); gone already (404) or being removed by the engine (409) is fine."""
    try:
        await container.delete(force=True)
    except EngineError as error:
        if error.status == 409:
            with contextlib.suppress(EngineError), anyio.move_on_after(REMOVAL_SECONDS):
                await container.wait(condition="removed")
        elif error.status != 404:
            raise
    except Exception:  # noqa: BLE001 - the engine went away: the lease ends the gateway
        pass


class GatewayHolders:
    """The gateways of one launch, each held by a task of ONE task group."""

    def __init__(self, docker: Engine | None, group: TaskGroup | None) -> None:
        self._docker = docker
        self._group = group
        self.runs: dict[str, GatewayRun] = {}
        #: Set once the engine is known to need it (Podman): every gateway confirms its removal.
        self.confirm_removal = False
        #: Per agent container name: the SSH host port its early gateway publishes (and
        #: the notice if that port had to move), for the lease step to keep.
        self.ssh_ports: dict[str, tuple[int, str | None]] = {}
        #: The planned image's id per reference, asked once for every slot's `take`
        #: (after `ensure_gateway_image`; a failed answer is not kept).
        self._image_ids: dict[str, str] = {}
        self._inspecting = anyio.Lock()
        #: Gateways may be kept and taken (`allow_keeping`: a plain Docker Engine).
        self.keeping = False
        #: Per agent container name: the SSH port of the kept gateway found for its slot.
        self.kept_ssh_ports: dict[str, tuple[int, str | None]] = {}
        #: Set once the early start is over (`take` waits for it; set at once without one).
        self.early_done = anyio.Event()
        self.early_done.set()

    def allow_keeping(self, allowed: bool) -> None:
        """The engine is known: on a plain Docker Engine (a unix socket in a bind mount is
        the host's own), gateways are kept after their launch and taken by the next."""
        self.keeping = allowed
        for run in self.runs.values():
            run.keepable = allowed and run.spec.keep is not None

    def confirm_removals(self) -> None:
        """The engine needs it (Podman): every gateway, started or to come, waits for its
        removal after the SIGTERM and forces it when it does not come."""
        self.confirm_removal = True
        for run in self.runs.values():
            run.confirm_removal = True

    def start(self, spec: GatewaySpec) -> GatewayRun:
        assert self._group is not None and self._docker is not None
        return self._hold(GatewayRun(spec))

    def _hold(self, run: GatewayRun) -> GatewayRun:
        assert self._group is not None and self._docker is not None
        run.confirm_removal = self.confirm_removal
        run.keepable = self.keeping and run.spec.keep is not None
        self.runs[run.spec.name] = run
        self._group.start_soon(run.hold, self._docker, name=f"gateway {run.spec.name}")
        return run

    async def held_ssh_port(self, agent_name: str) -> tuple[int, str | None] | None:
        """The SSH port the slot's early gateway publishes, once the engine started it (so
        the port is bound: its own); None when it has none or could not start (the lease
        step then chooses a port, not counting this launch's own gateways). Waits for the
        early start: a kept gateway being claimed publishes the slot's port, its own."""
        await self.early_done.wait()
        if agent_name in self.kept_ssh_ports:
            return self.kept_ssh_ports[agent_name]
        early = self.ssh_ports.get(agent_name)
        run = self.runs.get(gateway_name(agent_name))
        if early is None or run is None:
            return None
        await run.start_known.wait()
        return early if run.running else None

    async def take(self, spec: GatewaySpec) -> GatewayRun:
        """The running gateway for `spec`: the early one (started, or a kept one claimed)
        when its create body and image are exactly the ones planned now, else a kept one
        claimed now, else a new one (the early one removed first)."""
        await self.early_done.wait()
        run = self.runs.get(spec.name)
        if run is not None and not run.adopted:
            await run.created.wait()
            if run.spec.create == spec.create and run.image_id is not None \
                    and run.image_id == await self._image_id(spec):
                run.adopted = True
                return run
            run.release(discard=True, keep_folder=True)
            await run.ended.wait()
        if spec.keep is not None and self.keeping:
            kept = await self._claim_kept(spec, await self._image_id(spec))
            if kept is not None:
                kept.adopted = True
                return self._hold(kept)
        run = self.start(spec)
        run.adopted = True
        return run

    async def _claim_kept(self, spec: GatewaySpec, image: str | None,
                          found: list[Container] | None = None) -> GatewayRun | None:
        """A kept gateway of `spec`'s slot, verified and renamed to `spec.name`, when one
        enforces exactly `spec` with `image` and is idle (its lease socket answers: one
        connection at a time, so no other launch holds it). Idle ones that enforce something
        else are ended, stopped ones removed (they hold the slot's SSH port); a running one
        that does not answer is left alone — another launch of the slot may be using it (a
        launch without a slot number takes no lease)."""
        assert self._docker is not None and spec.keep is not None
        if found is None:
            try:
                found = await self._docker.containers.list(
                    all=True, filters={"label": [f"{LABEL_PREFIX}{LABEL_GATEWAY_SLOT}={spec.keep.slot_key}"]})
            except EngineError:
                return None
        taken: GatewayRun | None = None
        for candidate in sorted(found, key=lambda c: c.created, reverse=True):
            try:
                state = candidate.summary.get("State")
                if state in ("exited", "dead"):
                    await remove_gateway_container(candidate)
                elif state != "running":
                    continue  # being created or started by a launch of the slot: not ours
                elif candidate.labels.get(LABEL_PREFIX + LABEL_GATEWAY_REUSE) != _digest(spec) \
                        or candidate.summary.get("ImageID") != image or taken is not None:
                    await self._retire(spec, candidate)
                else:
                    taken = await self._claim(spec, candidate)
            except Exception:  # noqa: BLE001 - the engine's answer missing: this one is left as it is
                continue
        return taken

    async def _retire(self, spec: GatewaySpec, candidate: Container) -> None:
        """End an idle kept gateway this launch will not take: its session closed without
        "keep" ends it; waited for, as its port is the slot's."""
        lease = await self._connect_idle(spec, candidate)
        if lease is None:
            return
        with contextlib.suppress(Exception):
            await lease.aclose()
        await remove_gateway_container(candidate)

    async def _connect_idle(self, spec: GatewaySpec, candidate: Container) -> anyio.abc.SocketStream | None:
        """A connection to a kept gateway's lease socket if it waits there (idle), else None."""
        folder = _lease_folder(spec, candidate)
        if folder is None:
            return None
        lease: anyio.abc.SocketStream | None = None
        try:
            lease = await _connect_lease(folder)
            if _lease_peer_ok(lease):
                return lease
        except (OSError, TimeoutError):
            pass
        if lease is not None:
            with contextlib.suppress(Exception):
                await lease.aclose()
        return None

    async def _claim(self, spec: GatewaySpec, candidate: Container) -> GatewayRun | None:
        """Connect to an idle kept gateway, get its checks' verdict, rename it."""
        assert self._docker is not None
        lease = await self._connect_idle(spec, candidate)
        if lease is None:
            return None
        try:
            said = bytearray()
            with anyio.fail_after(KEPT_VERIFY_SECONDS):
                while VERIFIED_LINE not in said and len(said) < LEASE_SAYS_BYTES:
                    said += await lease.receive()
            if VERIFIED_LINE not in said:
                raise OSError("the kept gateway did not verify")
            container = self._docker.containers.get(candidate.id)
            await container.rename(spec.name)
        except (OSError, TimeoutError, anyio.EndOfStream, anyio.BrokenResourceError, EngineError):
            with contextlib.suppress(Exception):
                await lease.aclose()  # without "keep": it ends
            return None
        run = GatewayRun(spec, lease=lease, container=container)
        folder = _lease_folder(spec, candidate)
        run.kept_folder = folder.parent if folder is not None else None
        run.image_id = str(candidate.summary.get("ImageID"))
        return run

    async def _image_id(self, spec: GatewaySpec) -> str | None:
        """The id of the image `spec` names: one inspection per launch, however many slots
        take their gateway at the same moment (they all start after the image was made sure of)."""
        assert self._docker is not None
        reference = spec.create["Image"]
        async with self._inspecting:
            if reference not in self._image_ids:
                try:
                    found = (await self._docker.images.inspect(reference)).get("Id")
                except EngineError:
                    return None
                if found is None:
                    return None
                self._image_ids[reference] = found
            return self._image_ids[reference]

    async def start_early(self, plan: LaunchPlan) -> None:
        """Start every slot's gateway as planned, before the leases (`take` checks them):
        a kept one claimed where one is idle and exactly as planned (beside the imports),
        else a new one. Only the gateway is planned here (`slot_gateway`): the agent's spec
        waits for the slot's session, and is built once, by the lease step."""
        try:
            await self._start_early(plan)
        finally:
            self.early_done.set()

    async def _start_early(self, plan: LaunchPlan) -> None:
        from launch.spec import slot_container_name, slot_gateway

        assert self._docker is not None
        kept = await self._kept_for(plan)
        if kept:
            async with anyio.create_task_group() as group:
                for planned in plan.slots:
                    if planned.slot in kept:
                        group.start_soon(self._claim_early, plan, planned.slot, kept[planned.slot])
        taken: set[int] | None = None
        for planned in plan.slots:
            slot = planned.slot
            agent = slot_container_name(plan, slot)
            if gateway_name(agent) in self.runs:
                continue  # its kept gateway, claimed
            port: int | None = None
            if plan.config.llm_docker_ssh_enabled:
                from supervisor.ssh_ports import choose_host_port, claimed_ports

                try:
                    if taken is None:
                        taken = await claimed_ports(self._docker, exclude=self.runs)
                    port, moved = choose_host_port(plan.config.llm_docker_ssh_host_port, slot, taken)
                except Exception:  # noqa: BLE001 - the lease step chooses again, and says why
                    return
                taken.add(port)
            spec = slot_gateway(plan, slot, ssh_host_port=port)
            if spec is None:
                continue
            if port is not None:
                self.ssh_ports[agent] = (port, moved)
            self.start(spec)

    async def _claim_early(self, plan: LaunchPlan, slot: int | None, found: list[Container]) -> None:
        """Claim the slot's kept gateway before the slot's lease, planned with the port it
        publishes (the slot's own). Should another launch get the slot, this one lets it go,
        kept again (`gateway_holders`)."""
        from launch import ssh as ssh_plan
        from launch.spec import slot_container_name, slot_gateway

        newest = max(found, key=lambda c: c.created)
        label = newest.labels.get(LABEL_PREFIX + ssh_plan.LABEL_PORT, "")
        port = int(label) if label.isdigit() else None
        spec = slot_gateway(plan, slot, ssh_host_port=port)
        if spec is None or spec.keep is None:
            return
        run = await self._claim_kept(spec, str(newest.summary.get("ImageID", "")), found)
        if run is not None:
            self._hold(run)
            if port is not None:
                self.kept_ssh_ports[slot_container_name(plan, slot)] = (port, None)

    async def _kept_for(self, plan: LaunchPlan) -> dict[int | None, list[Container]]:
        """The gateways with the label of each of this launch's slots, when this launch may
        keep gateways at all (which of them is idle and exactly as planned: `_claim_kept`)."""
        from launch.spec import slot_gateway_key

        assert self._docker is not None
        keys = {key: planned.slot for planned in plan.slots
                if (key := slot_gateway_key(plan, planned.slot)) is not None}
        if not keys:
            return {}
        try:
            listed = await self._docker.containers.list(
                all=True, filters={"label": [LABEL_PREFIX + LABEL_GATEWAY_SLOT]})
        except EngineError:
            return {}
        found: dict[int | None, list[Container]] = {}
        for container in listed:
            key = container.labels.get(LABEL_PREFIX + LABEL_GATEWAY_SLOT)
            if key is not None and key in keys:
                found.setdefault(keys[key], []).append(container)
        return found


@contextlib.asynccontextmanager
async def gateway_holders(plan: LaunchPlan, *, early: bool) -> AsyncIterator[GatewayHolders]:
    """The launch's gateway holders (`early`: start every slot's gateway now). On the way
    out, every gateway no slot took is removed; the others end when their slot releases
    them, or now."""
    if not plan.gateway:
        yield GatewayHolders(None, None)
        return
    docker = Engine()
    try:
        async with anyio.create_task_group() as group:
            holders = GatewayHolders(docker, group)
            if early:
                holders.early_done = anyio.Event()
                group.start_soon(holders.start_early, plan)
            try:
                yield holders
            finally:
                for run in list(holders.runs.values()):
                    # a kept gateway claimed early that no slot took (no agent joined it)
                    # waits for the next launch; one a slot took is kept by that slot or ends
                    run.release(discard=not run.adopted and not run.claimed, keep=run.claimed and not run.adopted)
    finally:
        with anyio.CancelScope(shield=True):
            # every gateway of this launch has ended or is kept: the folders of the ones that
            # ended elsewhere (kept ones nobody took, removed ones) go now, bounded
            with anyio.move_on_after(SWEEP_SECONDS), contextlib.suppress(Exception):
                await sweep_gateway_folders(docker, plan.facts.state_home)
            await docker.close()


async def run_probes(docker: Engine, gateway: str, probes: list[str], user: str) -> tuple[bool, list[str]]:
    """Run the checks in `gateway`'s namespace as `user`; (all passed, one line per check)."""
    with anyio.fail_after(VERIFY_SECONDS):
        result = await docker.containers.get(gateway).exec_run([PROBE_COMMAND, *probes], user=user)
    lines = result.output.decode(errors="replace").strip().splitlines()
    return result.exit_code == 0, lines


async def check_running(docker: Engine, info: dict[str, Any]) -> tuple[bool, list[str]]:
    """Re-run a running gateway's checks from its labels (`llm-docker status --check`)."""
    labels = (info.get("Config") or {}).get("Labels") or {}
    probes = json.loads(labels.get(LABEL_PREFIX + LABEL_PROBES, "[]"))
    user = labels.get(LABEL_PREFIX + LABEL_PROBE_USER, "65534:65534")
    return await run_probes(docker, info.get("Id", ""), probes, user)


async def remove_gateway(docker: Engine, name: str, ports_folder: Path | None = None) -> None:
    """Remove a gateway (404 = already gone) and its HOST_PORTS folder."""
    container = docker.containers.get(name)
    try:
        await container.delete(force=True)
    except EngineError as error:
        if error.status == 409:  # the engine is removing it already (AutoRemove)
            with contextlib.suppress(EngineError):
                await container.wait(condition="removed")
        elif error.status != 404:
            raise
    finally:
        if ports_folder is not None:
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(ports_folder.parent, ignore_errors=True))
