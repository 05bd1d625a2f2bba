"""The launcher liveness rule (`launch.liveness`): DEAD only when provably dead from here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from launch import liveness
from launch.liveness import (
    Here,
    Launcher,
    Liveness,
    ProcessState,
    ProcessView,
    decide,
    identity_labels,
    journal_liveness,
    journal_start,
    launcher_from_journal,
    launcher_from_labels,
    read_here,
    read_process,
)
from launch.portability import PORTABLE_ONLY_VARIABLE

HERE = Here(host_id="host-a", boot_id="boot-1", pidns="4026531836", uid=1000)
RUNNING = ProcessView(ProcessState.RUNNING, "777")


def launcher(**changes: object) -> Launcher:
    fields: dict[str, object] = {"pid": 4242, "start": "777", "host_id": "host-a", "boot_id": "boot-1",
                                 "pidns": "4026531836", "uid": 1000}
    fields.update(changes)
    return Launcher(**fields)


@pytest.mark.parametrize(("record", "process", "expected"), [
    (launcher(), RUNNING, Liveness.ALIVE),
    (launcher(), ProcessView(ProcessState.ZOMBIE, "777"), Liveness.DEAD),   # killed, not reaped
    (launcher(), ProcessView(ProcessState.GONE), Liveness.DEAD),
    (launcher(), ProcessView(ProcessState.RUNNING, "999"), Liveness.DEAD),  # pid reused
    (launcher(boot_id="boot-0"), RUNNING, Liveness.DEAD),                   # the host rebooted since
    (launcher(host_id="host-b"), ProcessView(ProcessState.GONE), Liveness.UNKNOWN),
    (launcher(host_id="host-b", boot_id="boot-0"), ProcessView(ProcessState.GONE), Liveness.UNKNOWN),
    (launcher(pidns="4026532000"), ProcessView(ProcessState.GONE), Liveness.UNKNOWN),
    (launcher(pidns="4026532000", boot_id="boot-0"), ProcessView(ProcessState.GONE), Liveness.UNKNOWN),
    (launcher(), ProcessView(ProcessState.UNREADABLE), Liveness.UNKNOWN),
    (launcher(host_id="", boot_id="", pidns=""), ProcessView(ProcessState.GONE), Liveness.UNKNOWN),  # old labels
    (launcher(pid=0), ProcessView(ProcessState.GONE), Liveness.UNKNOWN),
])
def test_decision(record: Launcher, process: ProcessView, expected: Liveness) -> None:
    assert decide(record, HERE, process) is expected


def test_labels_and_journal_round_trip() -> None:
    labels = {"io.llm-docker." + key: value for key, value in identity_labels(HERE).items()}
    labels |= {"io.llm-docker.launcher-pid": "4242", "io.llm-docker.launcher-start": "777"}
    assert launcher_from_labels(labels, "io.llm-docker.") == launcher()
    assert launcher_from_journal(4242, journal_start("777", HERE)) == launcher(uid=None)
    old_row = launcher_from_journal(4242, "777")  # written by an older version
    assert decide(old_row, HERE, ProcessView(ProcessState.GONE)) is Liveness.UNKNOWN


def test_reader_sees_this_process_and_a_real_zombie() -> None:
    here = read_here()
    assert here.host_id and here.boot_id and here.pidns.isdigit() and here.uid == os.getuid()
    me = read_process(os.getpid())
    assert me.state is ProcessState.RUNNING and me.start
    assert journal_liveness(os.getpid(), journal_start(me.start, here)) is Liveness.ALIVE
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = read_process(child.pid).start
        assert start is not None
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while read_process(child.pid).state is not ProcessState.ZOMBIE:  # killed, not yet reaped
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert journal_liveness(child.pid, journal_start(start, here)) is Liveness.DEAD
    finally:
        child.wait()
    assert read_process(child.pid).state is ProcessState.GONE


def test_without_procfs_a_launcher_is_never_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No procfs (a sandbox; macOS has none at all): a pid that cannot be looked up proves
    nothing, so recovery must never take a live terminal's launcher for dead."""
    monkeypatch.setattr(liveness, "PROC", tmp_path)  # an empty folder: no procfs at all
    assert liveness.read_proc_stat(os.getpid()).state is ProcessState.UNREADABLE
    here = liveness.Here(host_id="h", boot_id="b", pidns="1", uid=0)
    record = Launcher(pid=os.getpid(), start="1", host_id="h", boot_id="b", pidns="1")
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)
    assert liveness.launcher_liveness(record, here) is Liveness.UNKNOWN
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "stat").write_text("1 (x) S")
    assert liveness.read_proc_stat(os.getpid()).state is ProcessState.GONE  # procfs present, pid absent: gone


def test_psutil_without_procfs_never_says_gone_for_a_live_process(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """psutil without procfs answers "no such process" even for itself: only `kill(pid, 0)`
    saying ESRCH makes a pid gone."""
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(tmp_path))
    assert liveness.read_with_psutil(os.getpid()).state is ProcessState.UNREADABLE
    assert liveness.read_with_psutil(_dead_pid()).state is ProcessState.GONE


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_both_readers_agree_on_the_same_processes() -> None:
    """procfs and psutil give the same start (clock ticks since boot): a record one of them
    wrote is judged correctly by the other (the test switch mixes them across processes)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (os.getpid(), child.pid):
            assert liveness.read_proc_stat(pid) == liveness.read_with_psutil(pid)
            assert liveness.read_proc_stat(pid).state is ProcessState.RUNNING
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while liveness.read_proc_stat(child.pid).state is not ProcessState.ZOMBIE:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert liveness.read_with_psutil(child.pid).state is ProcessState.ZOMBIE
    finally:
        child.kill()
        child.wait()
    assert liveness.read_with_psutil(child.pid).state is ProcessState.GONE
    assert read_process(0).state is ProcessState.UNREADABLE  # never kill(0): our process group


def test_the_switch_chooses_the_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(liveness, "PROC", tmp_path)  # the procfs reader sees nothing
    monkeypatch.delenv(PORTABLE_ONLY_VARIABLE, raising=False)
    assert read_process(os.getpid()).state is ProcessState.UNREADABLE
    assert not read_here().boot_id.startswith(liveness.APPROXIMATE_BOOT_PREFIX)
    monkeypatch.setenv(PORTABLE_ONLY_VARIABLE, "1")
    assert read_process(os.getpid()).state is ProcessState.RUNNING  # psutil, not liveness.PROC
    here = read_here()
    assert here.boot_id.startswith(liveness.APPROXIMATE_BOOT_PREFIX) and here.pidns.isdigit()


APPROXIMATE = Here(host_id="host-a", boot_id="btime:1700000000", pidns="4026531836", uid=1000)


@pytest.mark.parametrize(("record", "here", "process", "expected"), [
    # psutil's boot time moves with the clock: a different one alone proves nothing ...
    (launcher(boot_id="btime:1700000042"), APPROXIMATE, RUNNING, Liveness.ALIVE),
    # ... and neither does one boot id of each kind (a launcher and a reader on either side of the switch)
    (launcher(boot_id="btime:1700000042"), HERE, RUNNING, Liveness.ALIVE),
    (launcher(), APPROXIMATE, RUNNING, Liveness.ALIVE),
    # the start time still tells: a process of an earlier boot, or a reused pid, started at another time
    (launcher(boot_id="btime:1600000000"), APPROXIMATE, ProcessView(ProcessState.RUNNING, "999"), Liveness.DEAD),
    (launcher(boot_id="btime:1600000000"), APPROXIMATE, ProcessView(ProcessState.GONE), Liveness.DEAD),
    # a start recorded in another form than the one read here is not comparable
    (launcher(start="1700000123.250000"), HERE, RUNNING, Liveness.UNKNOWN),
    (launcher(start="1700000123.250000"), HERE, ProcessView(ProcessState.RUNNING, "1700000123.250000"),
     Liveness.ALIVE),
    # where we run cannot be read (no procfs, no psutil boot time): nothing is provable
    (launcher(), Here(host_id="host-a", boot_id="", pidns="", uid=1000), ProcessView(ProcessState.GONE),
     Liveness.UNKNOWN),
    (launcher(), Here(host_id="host-a", boot_id="", pidns="4026531836", uid=1000), ProcessView(ProcessState.GONE),
     Liveness.UNKNOWN),
])
def test_decision_across_readers(record: Launcher, here: Here, process: ProcessView, expected: Liveness) -> None:
    assert decide(record, here, process) is expected
