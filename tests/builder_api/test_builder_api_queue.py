"""builder-api's queue with real processes, on asyncio and trio: FIFO, dedupe, the pending
cap, timeouts and cancels that kill whole process groups, and no orphan on shutdown."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from builder_api.config import EventSettings
from builder_api.events import EventStore, Mailbox
from builder_api.queue import BuildQueue, QueueFull
from testbed.processes import running

pytestmark = pytest.mark.anyio
SH = Path(shutil.which("sh") or "/bin/sh")


@asynccontextmanager
async def running_queue(tmp_path: Path, *, max_pending: int = 32, dedupe: float = 5.0,
                        find_container=None) -> AsyncIterator[tuple[BuildQueue, EventStore]]:
    events = EventStore(EventSettings(tmp_path / "events.jsonl"))
    queue = BuildQueue(project="app", root=lambda: tmp_path, events=events, build_log=tmp_path / "logs" / "build.log",
                       max_pending=lambda: max_pending, dedupe_window_s=lambda: dedupe, find_container=find_container)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        yield queue, events
        group.cancel_scope.cancel()


def sh(queue: BuildQueue, script: str, *, timeout_s: int = 30, name: str = "sh", kill_after_s: int = 0):
    return queue.enqueue(job_name=name, argv=["-c", script], command=SH, timeout_s=timeout_s,
                         kill_after_s=kill_after_s, cwd=".", params={}, agent_id="tester")


async def wait_for_file(path: Path) -> str:
    with anyio.fail_after(10):
        while not path.exists() or not path.read_text().strip():
            await anyio.sleep(0.02)
    return path.read_text()


async def test_jobs_run_in_order_with_their_output_and_events(tmp_path: Path) -> None:
    async with running_queue(tmp_path) as (queue, events):
        mailbox = Mailbox()
        with events.subscribe(mailbox):
            first = sh(queue, "echo first; exit 0", name="a")
            second = sh(queue, "echo second >&2; exit 3", name="b")
            with anyio.fail_after(10):
                await queue.wait(second.id, 10)
            assert (first.status, first.returncode) == ("done", 0)
            assert (second.status, second.returncode) == ("failed", 3)
            assert first.log_tail.startswith("\n=== build") and "first" in first.log_tail
            assert "second" in second.log_tail and "first" not in second.log_tail
            assert first.started_at is not None and second.started_at >= first.finished_at
            kinds = []
            while len(mailbox):
                kinds.append((await mailbox.get())["record"]["type"])
        assert kinds == ["job_enqueued", "job_enqueued", "job_started", "job_finished", "job_started",
                         "job_finished"]
        public = second.public()
        assert list(public)[:15] == ["id", "agent_id", "args", "status", "returncode", "queued_at", "started_at",
                                     "finished_at", "command", "timeout_s", "elapsed_s", "queued_at_iso",
                                     "started_at_iso", "finished_at_iso", "log_tail"]
        assert events.query(event_type="job_finished")["count"] == 2


async def test_dedupe_and_the_pending_cap(tmp_path: Path) -> None:
    async with running_queue(tmp_path, max_pending=1) as (queue, _):
        running = sh(queue, "sleep 5", name="slow")
        with anyio.fail_after(5):
            while queue.current is None:
                await anyio.sleep(0.01)
        assert sh(queue, "sleep 5", name="slow") is running  # same argv while running: the same entry
        waiting = sh(queue, "echo next", name="next")
        with pytest.raises(QueueFull, match=r"pending queue at capacity \(1\)"):
            sh(queue, "echo third", name="third")
        assert queue.cancel_pending(waiting.id) is waiting and waiting.status == "cancelled"
        assert sh(queue, "echo next", name="next") is waiting  # dedupe returns the cancelled entry
        await queue.cancel_current()


async def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    async with running_queue(tmp_path) as (queue, _):
        entry = sh(queue, f"sleep 100 & echo $! > {tmp_path}/child; sleep 100; wait", timeout_s=1, kill_after_s=1)
        child = int(await wait_for_file(tmp_path / "child"))
        with anyio.fail_after(10):
            await queue.wait(entry.id, 10)
        assert (entry.status, entry.returncode, entry.finished_reason) == ("failed", -1, "timeout")
        with anyio.fail_after(5):
            while running(child):
                await anyio.sleep(0.05)


async def test_cancel_current_kills_the_group(tmp_path: Path) -> None:
    async with running_queue(tmp_path) as (queue, _):
        entry = sh(queue, f"sleep 100 & echo $! > {tmp_path}/child; sleep 100; wait")
        child = int(await wait_for_file(tmp_path / "child"))
        with anyio.fail_after(10):
            cancelled = await queue.cancel_current()
        assert cancelled is entry and entry.status == "cancelled" and entry.returncode == -15
        assert not running(child)
        assert await queue.cancel_current() is None


async def test_a_signal_nobody_asked_for_is_not_a_cancel(tmp_path: Path) -> None:
    async with running_queue(tmp_path) as (queue, _):
        entry = sh(queue, "kill -KILL $$")
        with anyio.fail_after(10):
            await queue.wait(entry.id, 10)
        assert (entry.status, entry.returncode, entry.finished_reason) == ("failed", -9, "killed by signal 9")


async def test_shutdown_leaves_no_orphan(tmp_path: Path) -> None:
    async with running_queue(tmp_path) as (queue, _):
        sh(queue, f"sleep 100 & echo $! > {tmp_path}/child; sleep 100; wait")
        child = int(await wait_for_file(tmp_path / "child"))
    assert not running(child)


async def test_container_token_and_cwd_failures_show_their_own_reason(tmp_path: Path) -> None:
    async def no_container(project: str) -> str | None:
        return None

    async with running_queue(tmp_path, find_container=no_container) as (queue, _):
        noise = sh(queue, "echo SECRET-OUTPUT-OF-ANOTHER-BUILD", name="noise")
        entry = queue.enqueue(job_name="exec", argv=["{{container}}"], command=SH, timeout_s=5, kill_after_s=0,
                              cwd=".", params={}, agent_id="")
        with anyio.fail_after(10):
            await queue.wait(entry.id, 10)
        assert noise.status == "done"
        assert (entry.status, entry.returncode) == ("failed", 126)
        assert "SECRET-OUTPUT" not in entry.log_tail and "no running container" in entry.log_tail


async def test_the_mailbox_drops_the_oldest_when_full() -> None:
    mailbox = Mailbox(capacity=3)
    for number in range(5):
        mailbox.put(number)
    assert mailbox.dropped == 2
    assert [await mailbox.get() for _ in range(3)] == [2, 3, 4]
    with anyio.move_on_after(0.05) as timer:
        await mailbox.get()
    assert timer.cancelled_caught


async def test_a_pinned_file_swapped_after_enqueue_is_not_run(tmp_path: Path) -> None:
    import hashlib

    script = tmp_path / "build.sh"
    script.write_text("echo original > ran.txt\n")
    pin = (script, hashlib.sha256(script.read_bytes()).hexdigest())
    async with running_queue(tmp_path) as (queue, _):
        blocker = sh(queue, "sleep 0.5", name="blocker")
        entry = queue.enqueue(job_name="pinned", argv=[str(script)], command=SH, timeout_s=5, kill_after_s=0,
                              cwd=".", params={}, agent_id="", pin=pin)
        script.write_text("echo swapped > ran.txt\n")  # after the request-time check, before exec
        with anyio.fail_after(10):
            await queue.wait(entry.id, 10)
        assert blocker.status == "done"
        assert (entry.status, entry.returncode, entry.finished_reason) == ("failed", 126, "command_hash_mismatch")
        assert not (tmp_path / "ran.txt").exists()


async def test_a_group_member_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    async with running_queue(tmp_path) as (queue, _):
        entry = sh(queue, f"(trap '' TERM; exec sleep 100) & echo $! > {tmp_path}/child; sleep 100", kill_after_s=1)
        child = int(await wait_for_file(tmp_path / "child"))
        with anyio.fail_after(10):
            await queue.cancel_current()
        assert entry.status == "cancelled"
        assert not running(child), "the leader exited on SIGTERM; its stubborn child must still be killed"
