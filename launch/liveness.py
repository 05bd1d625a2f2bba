"""Is a container's launcher still alive? ALIVE, DEAD, or UNKNOWN — and UNKNOWN is alive.

`llm-docker gc`, `--clean` and the recovery at every launch remove what dead launchers
left behind. On a shared engine a launcher pid that is not visible *from here* proves
nothing: the launcher may run as another user, in another PID namespace (a container,
a sandbox), or on another host talking to the same engine. So a launcher is DEAD only
when that is provable from here:

* it ran on this host (same host id) in this PID namespace, and
* this host rebooted since (another boot id), or its pid is gone, or the pid now belongs
  to a process with another start time (pid reuse), or it is a zombie (killed, but its
  parent has not reaped it yet: it runs nothing).

Everything else — another host or PID namespace, an unreadable /proc entry, labels
missing because an older version made the container — is UNKNOWN and never removed.

`decide()` is the pure rule over gathered facts; `read_here()` and `read_process()` are
the readers of /proc; `launcher_liveness()` puts them together.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
from collections.abc import Mapping
from pathlib import Path

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
#: procfs: where a process's state and start time are read (Linux; absent on macOS).
PROC = Path("/proc")
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = Path("/proc/self/ns/pid")

#: The labels (after `io.llm-docker.`) that identify a launcher, besides launcher-pid/-start.
HOST_LABEL = "launcher-host"
BOOT_LABEL = "launcher-boot"
PIDNS_LABEL = "launcher-pidns"
UID_LABEL = "launcher-uid"


class Liveness(enum.Enum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # treated as alive: never removed


class ProcessState(enum.Enum):
    """What /proc says about a pid, from here."""

    RUNNING = "running"
    ZOMBIE = "zombie"
    GONE = "gone"
    UNREADABLE = "unreadable"


@dataclasses.dataclass(frozen=True)
class Here:
    """Where this process runs: the facts a launcher's record is compared with."""

    host_id: str
    boot_id: str
    pidns: str
    uid: int


@dataclasses.dataclass(frozen=True)
class Launcher:
    """What a container's labels (or a journal row) recorded about its launcher; empty
    strings / None where an older version recorded nothing."""

    pid: int
    start: str
    host_id: str = ""
    boot_id: str = ""
    pidns: str = ""
    uid: int | None = None


@dataclasses.dataclass(frozen=True)
class ProcessView:
    state: ProcessState
    start: str | None = None


def decide(launcher: Launcher, here: Here, process: ProcessView) -> Liveness:
    """The rule (pure): DEAD only when provably dead from here; see the module docstring."""
    if not (launcher.pid > 0 and launcher.host_id and launcher.boot_id and launcher.pidns):
        return Liveness.UNKNOWN  # made by an older version: nothing to compare with
    if launcher.host_id != here.host_id or launcher.pidns != here.pidns:
        return Liveness.UNKNOWN  # another host or PID namespace: its pid means nothing here
    if launcher.boot_id != here.boot_id:
        return Liveness.DEAD  # this host rebooted since: every process of that boot is gone
    if process.state in (ProcessState.GONE, ProcessState.ZOMBIE):
        return Liveness.DEAD
    if process.state is ProcessState.UNREADABLE or process.start is None:
        return Liveness.UNKNOWN
    if launcher.start and process.start != launcher.start:
        return Liveness.DEAD  # the pid was reused by another process
    return Liveness.ALIVE


def read_process(pid: int) -> ProcessView:
    """/proc/<pid>/stat from here: running (with its start time), zombie, gone or unreadable."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        if not (PROC / "self" / "stat").exists():
            # no procfs here (macOS, a sandbox): a missing entry proves nothing — never "gone"
            return ProcessView(ProcessState.UNREADABLE)
        return ProcessView(ProcessState.GONE)
    except OSError:
        return ProcessView(ProcessState.UNREADABLE)
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) < 20:
        return ProcessView(ProcessState.UNREADABLE)
    state = ProcessState.ZOMBIE if fields[0] in ("Z", "X", "x") else ProcessState.RUNNING
    return ProcessView(state, fields[19])


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot, from /proc), or None when it
    is gone or unreadable. With the pid it identifies a process even after pid reuse: what a
    launcher records about itself (`launcher-start`) and `decide` compares with."""
    return read_process(pid).start


def read_here() -> Here:
    """This process's host id (machine-id, else the hostname), boot id and PID namespace."""
    return Here(host_id=_host_id(), boot_id=_first_line(BOOT_ID_FILE), pidns=_pid_namespace(), uid=os.getuid())


def launcher_liveness(launcher: Launcher, here: Here | None = None) -> Liveness:
    return decide(launcher, here or read_here(), read_process(launcher.pid) if launcher.pid > 0
                  else ProcessView(ProcessState.UNREADABLE))


# -- container labels ------------------------------------------------------------------

def identity_labels(here: Here) -> dict[str, str]:
    """The labels (without the `io.llm-docker.` prefix) a launcher adds to its containers."""
    return {HOST_LABEL: here.host_id, BOOT_LABEL: here.boot_id, PIDNS_LABEL: here.pidns, UID_LABEL: str(here.uid)}


def launcher_from_labels(labels: Mapping[str, str], prefix: str) -> Launcher:
    def label(name: str) -> str:
        return (labels.get(prefix + name) or "").strip()

    pid, uid = label("launcher-pid"), label(UID_LABEL)
    return Launcher(pid=int(pid) if pid.isdigit() else 0, start=label("launcher-start"),
                    host_id=label(HOST_LABEL), boot_id=label(BOOT_LABEL), pidns=label(PIDNS_LABEL),
                    uid=int(uid) if uid.isdigit() else None)


# -- journal rows ------------------------------------------------------------------------
# The journal's `launcher_start` column carries the whole identity, so the state store's
# schema stays as it is: `<start>;host=<id>;boot=<id>;pidns=<inode>`. A plain number is a
# row of an older version (UNKNOWN).

def journal_start(start: str, here: Here) -> str:
    return f"{start};host={here.host_id};boot={here.boot_id};pidns={here.pidns}"


def launcher_from_journal(pid: int, text: str) -> Launcher:
    start, *parts = text.split(";")
    fields = dict(part.split("=", 1) for part in parts if "=" in part)
    return Launcher(pid=pid, start=start, host_id=fields.get("host", ""), boot_id=fields.get("boot", ""),
                    pidns=fields.get("pidns", ""))


def journal_liveness(pid: int, launcher_start: str, here: Here | None = None) -> Liveness:
    """The liveness of a journal row's launcher (`Launch.launcher_pid`, `.launcher_start`)."""
    return launcher_liveness(launcher_from_journal(pid, launcher_start), here)


# -- readers ------------------------------------------------------------------------------

def _first_line(path: Path) -> str:
    try:
        return path.read_text().strip().splitlines()[0].strip()
    except (OSError, IndexError):
        return ""


def _host_id() -> str:
    for path in MACHINE_ID_FILES:
        machine_id = _first_line(path)
        if machine_id:
            return machine_id
    return f"hostname:{socket.gethostname()}"


def _pid_namespace() -> str:
    """The inode of /proc/self/ns/pid (`pid:[4026531836]` -> `4026531836`)."""
    try:
        return str(os.stat(PID_NAMESPACE).st_ino)
    except OSError:
        return ""
