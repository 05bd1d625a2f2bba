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

Everything else — another host or PID namespace, a process that cannot be read from here
(access denied, no procfs), where we run being unknown, labels missing because an older
version made the container — is UNKNOWN and never removed.

`decide()` is the pure rule over gathered facts; `read_here()` and `read_process()` are
the readers; `launcher_liveness()` puts them together. The readers live here, in the
planning layer, because a plan records the launcher's identity (`launch.hostfacts`) and
the cleanup compares with it: one module writes and reads the same format. They are
synchronous and cheap, and psutil is not one of the libraries planning must avoid.

Two readers, one format (`launch.portability` chooses):

* Linux: procfs — `/proc/<pid>/stat` (state, start time in clock ticks since boot, exact)
  and `/proc/sys/kernel/random/boot_id`.
* Everywhere else, and on Linux with the test switch: psutil. On Linux it yields the same
  clock ticks (create time minus boot time), so records of one reader are compared by the
  other; elsewhere the start is the kernel's creation time in epoch seconds (macOS records
  it once, at exec; clock changes do not move it). The boot is then only psutil's boot
  time (`btime:<seconds>`), which a clock change moves: such a boot id never proves a
  reboot on its own — the start time does (a process of an earlier boot started earlier).

A pid that psutil cannot find is gone only when `kill(pid, 0)` agrees (ESRCH): without
procfs, or for another user's process hidden from us, psutil cannot find live processes.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

from launch.portability import linux_mechanisms

MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
#: procfs: where a process's state and start time are read (Linux; absent on macOS).
PROC = Path("/proc")
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
PID_NAMESPACE = Path("/proc/self/ns/pid")
#: A boot id made from psutil's boot time: moved by clock changes, so it never proves a reboot.
APPROXIMATE_BOOT_PREFIX = "btime:"
#: The PID namespace where the platform has none (macOS, the BSDs): one pid space per host.
NO_PID_NAMESPACES = "none"

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
    if not (here.host_id and here.boot_id and here.pidns):
        return Liveness.UNKNOWN  # where we run cannot be read: nothing is provable from here
    if launcher.host_id != here.host_id or launcher.pidns != here.pidns:
        return Liveness.UNKNOWN  # another host or PID namespace: its pid means nothing here
    if launcher.boot_id != here.boot_id and _exact_boot(launcher.boot_id) and _exact_boot(here.boot_id):
        return Liveness.DEAD  # this host rebooted since: every process of that boot is gone
    if process.state in (ProcessState.GONE, ProcessState.ZOMBIE):
        return Liveness.DEAD
    if process.state is ProcessState.UNREADABLE or process.start is None:
        return Liveness.UNKNOWN
    if launcher.start and _start_kind(launcher.start) != _start_kind(process.start):
        return Liveness.UNKNOWN  # recorded in another form than read here: not comparable
    if launcher.start and process.start != launcher.start:
        return Liveness.DEAD  # the pid was reused by another process
    return Liveness.ALIVE


def _exact_boot(boot_id: str) -> bool:
    """A kernel boot id (not psutil's boot time, which a clock change moves)."""
    return not boot_id.startswith(APPROXIMATE_BOOT_PREFIX)


def _start_kind(start: str) -> str:
    """Clock ticks since boot (Linux) or epoch seconds (psutil elsewhere)."""
    return "ticks" if start.isdigit() else "epoch"


def read_process(pid: int) -> ProcessView:
    """The process `pid` from here: running (with its start time), zombie, gone or
    unreadable — through procfs on Linux, else through psutil (`launch.portability`)."""
    if pid <= 0:
        return ProcessView(ProcessState.UNREADABLE)  # kill(0, ...) would mean our process group
    return read_proc_stat(pid) if linux_mechanisms() else read_with_psutil(pid)


def read_proc_stat(pid: int) -> ProcessView:
    """/proc/<pid>/stat from here (Linux)."""
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


def read_with_psutil(pid: int) -> ProcessView:
    """The process through psutil (macOS, the BSDs; Linux with the test switch)."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            status = process.status()
            created = process.create_time()
        start = _psutil_start(created)
    except psutil.ZombieProcess:
        return ProcessView(ProcessState.ZOMBIE)
    except psutil.NoSuchProcess:
        return ProcessView(ProcessState.GONE if _no_such_pid(pid) else ProcessState.UNREADABLE)
    except (psutil.Error, OSError, ValueError):  # AccessDenied; no boot time to subtract
        return ProcessView(ProcessState.UNREADABLE)
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        return ProcessView(ProcessState.ZOMBIE, start)
    return ProcessView(ProcessState.RUNNING, start)


def _psutil_start(created: float) -> str:
    """The start in the platform's one format: clock ticks since boot on Linux (what procfs
    says, exactly: psutil adds the boot time to them), epoch seconds elsewhere."""
    if sys.platform.startswith("linux"):
        return str(round((created - psutil.boot_time()) * os.sysconf("SC_CLK_TCK")))
    return f"{created:.6f}"


def _no_such_pid(pid: int) -> bool:
    """`kill(pid, 0)` says ESRCH: no process has this pid in our PID namespace. EPERM (another
    user's) or success means it exists, whatever psutil could not read."""
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.ESRCH
    return False


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot on Linux, epoch seconds
    elsewhere), or None when it is gone or unreadable. With the pid it identifies a process even after pid reuse: what a
    launcher records about itself (`launcher-start`) and `decide` compares with."""
    return read_process(pid).start


def read_here() -> Here:
    """This process's host id (machine-id, else the hostname), boot id and PID namespace."""
    return Here(host_id=_host_id(), boot_id=_boot_id(), pidns=_pid_namespace(), uid=os.getuid())


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


def _boot_id() -> str:
    """The kernel's boot id (Linux), else psutil's boot time (`btime:<seconds>`), else ""."""
    if linux_mechanisms():
        boot_id = _first_line(BOOT_ID_FILE)
        if boot_id:
            return boot_id
    try:
        return f"{APPROXIMATE_BOOT_PREFIX}{int(psutil.boot_time())}"
    except (psutil.Error, OSError, RuntimeError, ValueError):
        return ""


def _pid_namespace() -> str:
    """The inode of /proc/self/ns/pid (`pid:[4026531836]` -> `4026531836`); `none` where the
    platform has no PID namespaces; "" on a Linux that does not say (nothing is judged).

    Read with the test switch too: it is a fact about where a launcher ran, not a way to
    watch it, and without it a pid of another namespace would be judged here."""
    if not sys.platform.startswith("linux"):
        return NO_PID_NAMESPACES
    try:
        return str(os.stat(PID_NAMESPACE).st_ino)
    except OSError:
        return ""
