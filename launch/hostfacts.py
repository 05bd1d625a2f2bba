"""Everything a launch plan needs to know about the host, gathered in one place.

This is the only module of the planning stage that reads the file system or the process
state (besides `launch.liveness`, which reads /proc for the launcher's identity); the
planners (`launch.identity`, `launch.mounts`, `launch.command`, `launch.spec`) are pure
functions of a `HostFacts`, so tests can build one by hand.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import socket
import stat
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from launch.liveness import Here, process_start_time, read_here
from launch.mounts import OPTIONAL_DOTFILES, SHARED_CONFIG, SHARED_FOLDER
from launch.portability import linux_mechanisms
from launch.surface import GIT, GIT_PINNED_IN_COMMIT_MODE, GIT_WATCHED_IN_COMMIT_MODE, ROOT_ENTRIES, Kind, SurfaceFacts

BOOT_FILE = "BOOT.md"
CLAUDE_FILE = "CLAUDE.md"
MAX_BOOT_PROMPT_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class HostFacts:
    launch_dir: Path
    workspace: Path | None
    user_home: Path
    state_home: Path
    uid: int
    gid: int
    environ: Mapping[str, str]
    stdin_tty: bool
    git_toplevel: Path | None
    surface: SurfaceFacts
    dotfiles: tuple[str, ...]
    boot_prompt: str | None
    has_claude_md: bool
    launcher_pid: int
    launcher_start: str
    launch_id: str
    new_session_id: str
    platform: str = sys.platform
    tmux_available: bool = False
    #: Where the launcher runs (labels for `launch.liveness`): host id, boot id, PID namespace.
    host_id: str = ""
    boot_id: str = ""
    pid_namespace: str = ""
    #: The host's RAM in bytes and usable CPUs, for MEMORY_LIMIT/CPU_LIMIT=auto (0 = unknown).
    host_memory: int = 0
    host_cpus: int = 0
    #: The user's shared agent configuration that exists (see `mounts.SHARED_CONFIG`).
    shared_config: tuple[str, ...] = ()
    #: The host's own IP addresses at launch: the network policy closes every one of them.
    host_addresses: tuple[str, ...] = ()

    @property
    def here(self) -> Here:
        """Where the launcher runs, as `launch.liveness` records and compares it."""
        return Here(self.host_id, self.boot_id, self.pid_namespace, self.uid)


def gather_host_facts(launch_dir: Path, *, root: Path, user_home: Path, state_home: Path, workspace: Path | None,
                      toplevel: Path | None, environ: Mapping[str, str]) -> HostFacts:
    """Read the host facts for a launch from `launch_dir` (both folders already resolved;
    `toplevel` is `find_git_toplevel(launch_dir)` and `root` the project's root, which the
    caller needed for its guards: passed in, so they are found once)."""
    launch_id = uuid.uuid4().hex
    here = read_here()
    return HostFacts(
        launch_dir=launch_dir,
        workspace=workspace,
        user_home=user_home,
        state_home=state_home,
        uid=os.getuid(),
        gid=os.getgid(),
        environ=dict(environ),
        stdin_tty=sys.stdin is not None and sys.stdin.isatty(),
        git_toplevel=toplevel,
        surface=gather_surface(root),
        dotfiles=tuple(name for name in OPTIONAL_DOTFILES if (user_home / name).is_file()),
        shared_config=tuple(relative for entries in SHARED_CONFIG.values() for relative in entries
                            if entry_kind(state_home / SHARED_FOLDER / relative) in (Kind.FILE, Kind.DIRECTORY)),
        boot_prompt=read_boot_prompt(launch_dir / BOOT_FILE),
        has_claude_md=entry_kind(launch_dir / CLAUDE_FILE) is Kind.FILE,
        launcher_pid=os.getpid(),
        launcher_start=process_start_time(os.getpid()) or "",
        launch_id=launch_id,
        new_session_id=str(uuid.uuid4()),
        platform=sys.platform,
        tmux_available=shutil.which("tmux", path=environ.get("PATH")) is not None,
        host_id=here.host_id,
        boot_id=here.boot_id,
        pid_namespace=here.pidns,
        host_memory=_host_memory(),
        host_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0,
        host_addresses=host_addresses(),
    )


def host_addresses() -> tuple[str, ...]:
    """Every IPv4/IPv6 address of the host's network namespace: from procfs on Linux, from
    psutil elsewhere (and under the test switch of `launch.portability`) — the same set,
    so the network policy closes the host's own addresses on macOS too."""
    if not linux_mechanisms():
        return addresses_from_psutil()
    from launch.network import local_ipv4_addresses, local_ipv6_addresses

    def read(path: str) -> str:
        try:
            return Path(path).read_text()
        except OSError:
            return ""

    return local_ipv4_addresses(read("/proc/net/fib_trie")) + local_ipv6_addresses(read("/proc/net/if_inet6"))


def addresses_from_psutil() -> tuple[str, ...]:
    """The interfaces' IPv4 then IPv6 addresses, as `ipaddress` writes them (a link-local
    address without its `%zone`, as procfs has it); empty if the platform will not say."""
    import psutil

    try:
        interfaces = psutil.net_if_addrs()
    except (OSError, psutil.Error):
        return ()
    found: dict[int, list[str]] = {socket.AF_INET: [], socket.AF_INET6: []}
    for addresses in interfaces.values():
        for address in addresses:
            if address.family in found:
                text = str(ipaddress.ip_address(address.address.split("%", 1)[0]))
                if text not in found[address.family]:
                    found[address.family].append(text)
    return tuple(found[socket.AF_INET] + found[socket.AF_INET6])


def _host_memory() -> int:
    """Physical RAM in bytes (0 if the platform will not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def find_git_toplevel(start: Path) -> Path | None:
    """The nearest ancestor holding `.git` (a folder, or a file for worktrees)."""
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return None


def read_boot_prompt(path: Path) -> str | None:
    """BOOT.md, the fresh session's first prompt: a regular file only. An agent may have made
    it a link to one of the user's secrets (the prompt goes into the container's command line
    and to the model provider) or a FIFO (every later launch in the folder would hang)."""
    text = (read_small_file(path, MAX_BOOT_PROMPT_BYTES) or "").strip()
    return text or None


# -- the host-executed surface (see launch.surface) -----------------------------------------

MAX_SUBMODULES = 64
MAX_SMALL_FILE_BYTES = 64 * 1024
_GITFILE = re.compile(r"^gitdir:\s*(.+?)\s*$", re.MULTILINE)
_SUBMODULE_PATH = re.compile(r"^\s*path\s*=\s*(.+?)\s*$", re.MULTILINE)
_CORE_WORKTREE = re.compile(r"^\s*worktree\s*=\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_HOOKS_PATH = re.compile(r"^\s*hookspath\s*=\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


def entry_kind(path: Path) -> Kind:
    """What `path` is, without following a symlink at its end (parents must be real folders)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return Kind.ABSENT
    if stat.S_ISDIR(mode):
        return Kind.DIRECTORY
    if stat.S_ISREG(mode):
        return Kind.FILE
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    return Kind.OTHER


def read_small_file(path: Path, limit: int = MAX_SMALL_FILE_BYTES) -> str | None:
    """At most `limit` bytes of a regular file, never following a symlink and never blocking
    on a FIFO; None for anything else. Project files may have been written by an agent."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        return os.read(descriptor, limit).decode("utf-8", errors="replace")
    except OSError:
        return None
    finally:
        os.close(descriptor)


def inside_without_symlinks(root: Path, relative: str) -> bool:
    """Whether `relative` is a plain path below `root` whose every parent folder is a real
    folder: a bind mount of it can never be redirected out of the project."""
    parts = Path(relative).parts
    if not parts or Path(relative).is_absolute() or any(part in ("", ".", "..") for part in parts):
        return False
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        if entry_kind(folder) is not Kind.DIRECTORY:
            return False
    return True


def gather_surface(root: Path) -> SurfaceFacts:
    """The project's host-executed surface as it is now (see `launch.surface`)."""
    entries = {name: entry_kind(root / name) for name in ROOT_ENTRIES}
    git = entries[GIT]
    if git is Kind.DIRECTORY:
        for name in GIT_PINNED_IN_COMMIT_MODE + GIT_WATCHED_IN_COMMIT_MODE:
            entries[f"{GIT}/{name}"] = entry_kind(root / GIT / name)
        config = read_small_file(root / GIT / "config") or ""
        for match in _HOOKS_PATH.finditer(config):
            hooks = match.group(1).strip('"').rstrip("/")
            if hooks and inside_without_symlinks(root, hooks) and not hooks.startswith(GIT):
                entries[hooks] = entry_kind(root / hooks)
    modules = read_small_file(root / ".gitmodules") or ""
    for match in list(_SUBMODULE_PATH.finditer(modules))[:MAX_SUBMODULES]:
        relative = f"{match.group(1).strip(chr(34)).rstrip('/')}/{GIT}"
        if inside_without_symlinks(root, relative):
            entries[relative] = entry_kind(root / relative)
    external = external_git_dirs(root) if git is Kind.FILE else ()
    return SurfaceFacts(entries=entries, external_git_dirs=external)


def external_git_dirs(root: Path) -> tuple[Path, ...]:
    """For `.git` as a file (a worktree, a submodule): the git folder it names and that
    folder's common folder — only real git folders (HEAD + objects) that name this folder
    back as their worktree, never an arbitrary host folder. The agent can write the gitfile
    (in a folder it later launches from, say); it cannot write the back-link in a git
    folder outside the project, so it cannot pick another of the user's repositories."""
    text = read_small_file(root / GIT) or ""
    match = _GITFILE.search(text)
    if match is None:
        return ()
    git_dir = (root / match.group(1)).resolve()
    if not _names_back(git_dir, root):
        return ()
    common_text = read_small_file(git_dir / "commondir")
    common = (git_dir / common_text.strip()).resolve() if common_text and common_text.strip() else git_dir
    chosen: list[Path] = []
    for folder in (common, git_dir):
        if any(folder.is_relative_to(done) for done in chosen):
            continue
        if (folder / "HEAD").is_file() and (common / "objects").is_dir() and not root.is_relative_to(folder):
            chosen.append(folder)
    return tuple(chosen)


def _names_back(git_dir: Path, root: Path) -> bool:
    """Whether the git folder `git_dir` is `root`'s by git's own records: a linked
    worktree's `gitdir` file names `root/.git`; a submodule's `core.worktree` names `root`."""
    linked = (read_small_file(git_dir / "gitdir") or "").strip()
    if linked and (git_dir / linked).resolve() == (root / GIT).resolve():
        return True
    config = read_small_file(git_dir / "config") or ""
    return any((git_dir / match.group(1).strip('"')).resolve() == root.resolve()
               for match in _CORE_WORKTREE.finditer(config))
