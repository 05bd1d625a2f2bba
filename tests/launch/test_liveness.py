"""The launcher liveness rule (`launch.liveness`): DEAD only when provably dead from here."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    """macOS has no /proc: a pid that cannot be looked up there proves nothing, so recovery
    must never take a live terminal's launcher for dead."""
    monkeypatch.setattr(liveness, "PROC", tmp_path)  # an empty folder: no procfs at all
    assert liveness.read_process(os.getpid()).state is ProcessState.UNREADABLE
    here = liveness.Here(host_id="h", boot_id="b", pidns="1", uid=0)
    record = Launcher(pid=os.getpid(), start="1", host_id="h", boot_id="b", pidns="1")
    assert liveness.launcher_liveness(record, here) is Liveness.UNKNOWN
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "stat").write_text("1 (x) S")
    assert liveness.read_process(os.getpid()).state is ProcessState.GONE  # procfs present, pid absent: gone
