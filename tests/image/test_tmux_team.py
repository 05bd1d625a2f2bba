"""The `-tt` team helper (`llm-docker-tmux team`), run on the host against a private tmux server.

The helper is the image's own file; here it runs with `TMUX_TMPDIR` pointing at a throw-away
folder, so its tmux server is this test's alone (killed by its socket path, never by name),
and with fake `claude` / `opencode` commands first on PATH that record the argv each pane got
and signal a tmux channel once they run, so nothing waits on a clock.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pty
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HELPER = Path(__file__).resolve().parents[2] / "image/files/rootfs/usr/local/bin/llm-docker-tmux"
WAIT = 60  # seconds: a bound for a hung tmux, never a timing assertion

#: Records the argv, tells the test it started (tmux keeps the signal until someone waits),
#: then stays alive like an agent would.
FAKE_TOOL = """#!/bin/sh
printf '%s\\n' "$@" > "$TEAM_RECORDS/${TMUX_PANE#%}"
tmux wait-for -S "started-${TMUX_PANE#%}"
exec sleep 600
"""

CLAUDE_ARGV = ["claude", "--dangerously-skip-permissions", "--session-id", "0b6c2c52", "--model", "opus",
               "it's the boot prompt"]
PEER_ARGV = ["--dangerously-skip-permissions", "--model", "opus", "it's the boot prompt"]
HAIKU_ARGV = ["--model", "haiku", "--dangerously-skip-permissions", "it's the boot prompt"]


@dataclass(frozen=True)
class Pane:
    id: str
    left: int
    top: int
    width: int
    height: int
    role: str
    colour: str

    @property
    def bottom(self) -> int:
        return self.top + self.height


@dataclass(frozen=True)
class Rig:
    """A private tmux server's folder, the fake tools and what they recorded."""

    root: Path
    records: Path
    env: dict[str, str]

    @property
    def socket(self) -> Path:
        return self.root / f"tmux-{os.getuid()}" / "default"

    def helper(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(HELPER), *args], env=env or self.env, text=True, capture_output=True,
                              timeout=WAIT, check=False)

    def team(self, layout: str, argv: list[str]) -> list[Pane]:
        done = self.helper("team", "--layout", layout, "--detached", "--", *argv)
        assert done.returncode == 0, done.stderr
        panes = self.panes()
        for pane in panes:
            self.tmux("wait-for", f"started-{pane.id.lstrip('%')}")
        return panes

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], text=True, capture_output=True,
                              timeout=WAIT, check=True).stdout

    def panes(self) -> list[Pane]:
        out = self.tmux("list-panes", "-t", "=team", "-F",
                        "#{pane_id}\t#{pane_left}\t#{pane_top}\t#{pane_width}\t#{pane_height}"
                        "\t#{@team_role}\t#{@team_colour}")
        rows = [line.split("\t") for line in out.splitlines()]
        return [Pane(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4]), r[5], r[6]) for r in rows]

    def argv_of(self, pane: Pane) -> list[str]:
        return (self.records / pane.id.lstrip("%")).read_text().splitlines()

    def border(self, pane: Pane) -> str:
        """The pane's border title as tmux renders it (format expanded, styles still inline)."""
        return self.tmux("display-message", "-p", "-t", pane.id, "#{E:pane-border-format}").rstrip("\n")


def _kill_server(socket: Path) -> None:
    if socket.exists():
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True, timeout=WAIT, check=False)


@pytest.fixture
def rig() -> Iterator[Rig]:
    # a short folder: tmux socket paths must fit in sun_path (108 bytes)
    root = Path(tempfile.mkdtemp(prefix="ld-team-", dir="/tmp"))
    fake_bin, records = root / "bin", root / "records"
    fake_bin.mkdir()
    records.mkdir()
    for tool in ("claude", "opencode"):
        (fake_bin / tool).write_text(FAKE_TOOL)
        (fake_bin / tool).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update(PATH=f"{fake_bin}:{os.environ['PATH']}", TMUX_TMPDIR=str(root), TEAM_RECORDS=str(records))
    made = Rig(root, records, env)
    try:
        yield made
    finally:
        _kill_server(made.socket)
        shutil.rmtree(root, ignore_errors=True)


def _roles(panes: list[Pane]) -> list[str]:
    return [p.role for p in panes]


def _assert_lead_beside_stack(panes: list[Pane]) -> None:
    """The lead fills the left at full height; the others are stacked right, evenly."""
    lead, *stack = panes
    top, bottom = min(p.top for p in panes), max(p.bottom for p in panes)
    assert (lead.left, lead.top, lead.bottom) == (0, top, bottom)
    assert {p.left for p in stack} == {lead.left + lead.width + 1}
    assert len({p.width for p in stack}) == 1 and lead.width > stack[0].width
    assert [p.top for p in stack] == sorted(p.top for p in stack)  # in order, top to bottom
    assert stack[0].top == top and stack[-1].bottom == bottom
    for upper, lower in itertools.pairwise(stack):
        assert lower.top > upper.bottom  # stacked, no overlap
    assert max(p.height for p in stack) - min(p.height for p in stack) <= 1


def test_default_is_one_lead_and_three_stacked(rig: Rig) -> None:
    panes = rig.team("lead3", CLAUDE_ARGV)
    assert _roles(panes) == ["lead", "peer 1", "peer 2", "runner (haiku)"]
    _assert_lead_beside_stack(panes)


def test_two_is_side_by_side(rig: Rig) -> None:
    lead, runner = rig.team("pair", CLAUDE_ARGV)
    assert (lead.role, runner.role) == ("lead", "runner (haiku)")
    assert lead.left == 0 and runner.left == lead.width + 1
    assert (lead.top, lead.height) == (runner.top, runner.height)
    assert abs(lead.width - runner.width) <= 1


def test_three_is_one_lead_and_two_stacked(rig: Rig) -> None:
    panes = rig.team("lead2", CLAUDE_ARGV)
    assert _roles(panes) == ["lead", "peer 1", "runner (haiku)"]
    _assert_lead_beside_stack(panes)


def test_four_is_a_grid_with_the_runner_bottom_right(rig: Rig) -> None:
    panes = rig.team("grid", CLAUDE_ARGV)
    assert _roles(panes) == ["lead", "peer 1", "peer 2", "runner (haiku)"]
    lefts, tops = sorted({p.left for p in panes}), sorted({p.top for p in panes})
    assert len(lefts) == 2 and len(tops) == 2
    assert sorted((p.left, p.top) for p in panes) == [(x, y) for x in lefts for y in tops]
    lead, runner = panes[0], panes[-1]
    assert (lead.left, lead.top) == (lefts[0], tops[0])
    assert (runner.left, runner.top) == (lefts[1], tops[1])


def test_colours_and_titles_per_pane(rig: Rig) -> None:
    lead, peer1, peer2, runner = rig.team("lead3", CLAUDE_ARGV)
    assert lead.colour == "" and "fg=" not in rig.border(lead) and "lead" in rig.border(lead)
    assert rig.border(peer1).startswith("#[fg=colour141") and "peer 1" in rig.border(peer1)  # purple
    assert rig.border(peer2).startswith("#[fg=colour81,") and "peer 2" in rig.border(peer2)  # blue
    assert rig.border(runner).startswith("#[fg=colour208") and "runner (haiku)" in rig.border(runner)  # orange
    assert rig.tmux("show-options", "-w", "-v", "-t", lead.id, "pane-border-status").strip() == "top"
    titles = rig.tmux("list-panes", "-t", "=team", "-F", "#{pane_title}").splitlines()
    assert titles == ["lead", "peer 1", "peer 2", "runner (haiku)"]


def test_session_flags_only_for_the_lead_and_haiku_for_the_runner(rig: Rig) -> None:
    lead, peer1, peer2, runner = rig.team("lead3", CLAUDE_ARGV)
    assert rig.argv_of(lead) == CLAUDE_ARGV[1:]
    assert rig.argv_of(peer1) == rig.argv_of(peer2) == PEER_ARGV
    assert rig.argv_of(runner) == HAIKU_ARGV


def test_words_after_a_double_dash_are_text_and_haiku_goes_before_it(rig: Rig) -> None:
    lead, runner = rig.team("pair", ["claude", "--resume", "abc", "--", "-c", "--model"])
    assert rig.argv_of(lead) == ["--resume", "abc", "--", "-c", "--model"]
    assert rig.argv_of(runner) == ["--model", "haiku", "--", "-c", "--model"]


def test_opencode_runner_keeps_its_argv_and_the_orange_title(rig: Rig) -> None:
    lead, runner = rig.team("pair", ["opencode", "--session", "ses_1", "--model", "anthropic/x", "--prompt", "hi"])
    assert rig.argv_of(lead) == ["--session", "ses_1", "--model", "anthropic/x", "--prompt", "hi"]
    assert rig.argv_of(runner) == ["--model", "anthropic/x", "--prompt", "hi"]
    assert runner.role == "runner" and rig.border(runner).startswith("#[fg=colour208")


def test_a_leaked_tmux_variable_does_not_nest_into_another_server(rig: Rig) -> None:
    """Inside tmux (TMUX set, as a host pane's would be) the helper still builds its own
    server's session and leaves the enclosing server alone."""
    outer = Path(tempfile.mkdtemp(prefix="ld-outer-", dir="/tmp"))
    outer_socket = outer / "sock"
    try:
        subprocess.run(["tmux", "-S", str(outer_socket), "new-session", "-d", "-s", "outer", "sleep 600"],
                       env=rig.env, timeout=WAIT, check=True)
        env = dict(rig.env, TMUX=f"{outer_socket},1,0", TMUX_PANE="%0")
        done = rig.helper("team", "--layout", "pair", "--detached", "--", *CLAUDE_ARGV, env=env)
        assert done.returncode == 0, done.stderr
        assert len(rig.panes()) == 2
        outer_sessions = subprocess.run(["tmux", "-S", str(outer_socket), "list-sessions", "-F", "#{session_name}"],
                                        text=True, capture_output=True, timeout=WAIT, check=True).stdout
        assert outer_sessions.split() == ["outer"]
    finally:
        _kill_server(outer_socket)
        shutil.rmtree(outer, ignore_errors=True)


def test_a_running_team_is_reused_not_duplicated(rig: Rig) -> None:
    rig.team("grid", CLAUDE_ARGV)
    again = rig.helper("team", "--layout", "pair", "--detached", "--", *CLAUDE_ARGV)
    assert again.returncode == 0 and "already running" in again.stderr
    assert len(rig.panes()) == 4


def test_unknown_layout_is_refused(rig: Rig) -> None:
    done = rig.helper("team", "--layout", "3x3", "--detached", "--", *CLAUDE_ARGV)
    assert done.returncode == 2 and "unknown team layout '3x3'" in done.stderr
    assert not rig.socket.exists()


def test_without_detached_it_attaches_a_terminal_to_the_team(rig: Rig) -> None:
    """The container's path: the helper ends by attaching (here to the running team, whose
    client-attached hook tells the test), and returns when that client detaches."""
    rig.team("lead2", CLAUDE_ARGV)
    rig.tmux("set-hook", "-g", "client-attached", "wait-for -S attached")
    main, sub = pty.openpty()
    drained: list[bytes] = []

    def drain() -> None:  # a full pty would stall the tmux client
        with contextlib.suppress(OSError):
            while chunk := os.read(main, 4096):
                drained.append(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with subprocess.Popen([str(HELPER), "team", "--layout", "lead2", "--", *CLAUDE_ARGV], env=rig.env,
                              stdin=sub, stdout=sub, stderr=sub, start_new_session=True) as proc:
            rig.tmux("wait-for", "attached")
            assert rig.tmux("list-clients", "-F", "#{session_name}").split() == ["team"]
            rig.tmux("detach-client", "-s", "team")
            assert proc.wait(timeout=WAIT) == 0
    finally:
        os.close(sub)
        reader.join(timeout=WAIT)
        os.close(main)
    assert len(rig.panes()) == 3  # attaching again built nothing new
