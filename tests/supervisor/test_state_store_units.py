"""The state store with a real database in a tmp folder (aiosqlite: asyncio only): the slot
lease, the short save transaction with its claims re-check, and `StateError`."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from supervisor.sessions import Discovery
from supervisor.slots import busy_message
from supervisor.store import DATABASE, Launch, SavedSlot, SlotBusy, SlotMoved, StateError, StateStore, state_error


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite's thread talks to the loop through asyncio."""
    return "asyncio"


def launch(run_id: str, *, slot: int | None = 1, project: str = "/p", session: str | None = None,
           started: float | None = None, pid: int = 4242) -> Launch:
    return Launch(run_id=run_id, tool="claude", project=project, workdir="/w", slot=slot, terminal="tty:/dev/pts/9",
                  launcher_pid=pid, launcher_start="x", container=run_id, session_kind="fresh",
                  session_id=session, started_at=started or time.time())


# -- the slot lease ----------------------------------------------------------------------

@pytest.mark.anyio
async def test_a_busy_slot_is_refused_naming_its_holder(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        first = launch("a")
        await store.record_launches([first], holder_alive=lambda _: True)
        with pytest.raises(SlotBusy) as busy:
            await store.record_launches([launch("b")], holder_alive=lambda _: True)
        assert busy.value.holder == first and busy.value.alive
        message = busy_message(busy.value)
        assert "\n" not in message
        assert "tty:/dev/pts/9" in message and "pid 4242" in message
        assert "llm-docker attach claude 1" in message and "another --slot" in message
        # another slot, another project and slotless launches are not held
        await store.record_launches([launch("c", slot=2), launch("d", project="/q"), launch("e", slot=None)],
                                    holder_alive=lambda _: True)
        # the holder's liveness is reported, so a dead holder can be recovered first
        with pytest.raises(SlotBusy) as dead:
            await store.record_launches([launch("f")], holder_alive=lambda _: False)
        assert not dead.value.alive
        # once the holder's save closed its row, the slot is free
        assert await store.finish_launch(first, lambda claimed: "s1") == (True, "s1")
        await store.record_launches([launch("g")], holder_alive=lambda _: True)
        assert {x.run_id for x in await store.unfinished_launches()} == {"c", "d", "e", "g"}


@pytest.mark.anyio
async def test_leases_of_a_multi_slot_launch_are_all_or_none(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        await store.record_launches([launch("held", slot=2)])
        with pytest.raises(SlotBusy):
            await store.record_launches([launch(f"n{slot}", slot=slot) for slot in (1, 2, 3)])
        assert [x.run_id for x in await store.unfinished_launches()] == ["held"]  # slots 1 and 3 not taken
        await store.record_launches([launch(f"m{slot}", slot=slot) for slot in (1, 3, 4)])
        assert len(await store.unfinished_launches()) == 4


@pytest.mark.anyio
async def test_two_launches_of_one_slot_at_the_same_instant(tmp_path: Path) -> None:
    """Separate connections (as two launcher processes have), released together: exactly
    one takes the lease, every round."""
    for round_number in range(20):
        home = tmp_path / f"round-{round_number}"
        outcomes: list[str] = []
        go = anyio.Event()

        async def contender(name: str, home: Path = home, go: anyio.Event = go,
                            outcomes: list[str] = outcomes) -> None:  # bound per round
            async with StateStore.open(home) as store:
                await go.wait()
                try:
                    await store.record_launches([launch(name)], holder_alive=lambda _: True)
                    outcomes.append("leased")
                except SlotBusy as busy:
                    outcomes.append(f"busy:{busy.holder.run_id}")

        async with anyio.create_task_group() as group:
            group.start_soon(contender, "x")
            group.start_soon(contender, "y")
            await anyio.sleep(0.2)
            go.set()
        assert sorted(outcomes) in (["busy:x", "leased"], ["busy:y", "leased"]), outcomes


@pytest.mark.anyio
async def test_a_slot_saved_after_resolution_is_resolved_again(tmp_path: Path) -> None:
    async with StateStore.open(tmp_path) as store:
        resolved_at = time.time()
        earlier = launch("earlier", started=resolved_at - 5)
        await store.record_launches([earlier])
        await store.finish_launch(earlier, lambda claimed: "s-new")  # saved after we resolved
        with pytest.raises(SlotMoved):
            await store.record_launches([launch("late")], resolved_since=resolved_at)
        await store.record_launches([launch("late")], resolved_since=time.time())


# -- the save: decided inside a short transaction, from what was read before -----------------

@pytest.mark.anyio
async def test_claims_are_checked_again_inside_the_save(tmp_path: Path) -> None:
    """Discovery ran before the transaction; a session another launch claimed meanwhile is
    skipped for the next candidate — never shared."""
    async with StateStore.open(tmp_path) as store:
        a, b = launch("a", slot=1), launch("b", slot=2)
        await store.record_launches([a, b])
        found = Discovery(written=("s-new", "s-old"))  # what both discoveries saw
        assert await store.finish_launch(a, found.choose) == (True, "s-new")
        assert await store.finish_launch(b, found.choose) == (True, "s-old")
        assert await store.finish_launch(b, found.choose) == (False, None)
        exact = Discovery(from_events="s-new", problem=None)  # the events file is exact: no claims apply
        c = launch("c", slot=3)
        await store.record_launches([c])
        assert await store.finish_launch(c, exact.choose) == (True, "s-new")


# -- imported slots ----------------------------------------------------------------------------

@pytest.mark.anyio
async def test_imported_slots_never_replace_a_saved_one(tmp_path: Path) -> None:
    """`import_slots` inserts only what is new and says which rows those were: the slot a
    launch saved keeps its session, and a second row for one slot in the same import too."""
    async with StateStore.open(tmp_path) as store:
        own = launch("own", slot=1)
        await store.record_launches([own])
        assert await store.finish_launch(own, lambda claimed: "s-own") == (True, "s-own")
        ours = await store.slot("claude", "/p", 1)
        rows = [SavedSlot("claude", "/p", 1, "s-upstream-1", "/w", 1.0),  # saved by the launch: kept
                SavedSlot("claude", "/p", 2, "s-upstream-2", "/w", 2.0),
                SavedSlot("claude", "/p", 2, "s-twice", "/w", 3.0),  # the same slot again: the first wins
                SavedSlot("opencode", "/p", 1, "s-oc", "/w", 4.0),  # another tool's slot 1
                SavedSlot("claude", "/q", 1, "s-q", "/w", 5.0)]  # another project's slot 1
        assert await store.import_slots(rows) == [rows[1], rows[3], rows[4]]
        assert await store.slot("claude", "/p", 1) == ours
        assert [(r.tool, r.project, r.slot, r.session_id) for r in await store.slots()] == [
            ("claude", "/p", 1, "s-own"), ("claude", "/p", 2, "s-upstream-2"), ("claude", "/q", 1, "s-q"),
            ("opencode", "/p", 1, "s-oc")]
        assert await store.import_slots(rows) == []  # again: all there


@pytest.mark.anyio
async def test_an_import_is_all_or_nothing(tmp_path: Path) -> None:
    """One transaction: a row the schema refuses leaves no earlier row of the import behind,
    and the failure is the store's one-line `StateError`."""
    async with StateStore.open(tmp_path) as store:
        broken = SavedSlot("claude", "/p", 2, None, "/w", 2.0)  # type: ignore[arg-type]  # NOT NULL
        with pytest.raises(StateError) as error:
            await store.import_slots([SavedSlot("claude", "/p", 1, "s1", "/w", 1.0), broken])
        assert "NOT NULL" in str(error.value) and "\n" not in str(error.value)
        assert await store.slots() == []
        assert await store.import_slots([SavedSlot("claude", "/p", 1, "s1", "/w", 1.0)]) != []  # still usable


# -- StateError ----------------------------------------------------------------------------

@pytest.mark.anyio
async def test_a_corrupt_database_is_one_state_error(tmp_path: Path) -> None:
    (tmp_path / DATABASE).write_bytes(b"this is not SQLite at all\n" * 400)
    with pytest.raises(StateError) as error:
        async with StateStore.open(tmp_path):
            pass
    path = tmp_path / DATABASE
    assert str(error.value) == (f"state database {path} is corrupt (file is not a database) — "
                                f"move it aside: mv {path} {path}.broken")
    assert error.value.exit_code == 2


def test_state_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / DATABASE

    def sqlite_error(kind: type[sqlite3.Error], message: str, code: int) -> sqlite3.Error:
        error = kind(message)
        error.sqlite_errorcode = code
        return error

    full = state_error(path, sqlite_error(sqlite3.OperationalError, "database or disk is full", sqlite3.SQLITE_FULL))
    assert str(full) == (f"state database {path}: the disk is full — free space; "
                         "the slot's save finishes on the next launch")
    assert "the disk is full" in str(state_error(path, OSError(28, "No space left on device")))
    read_only = state_error(path, sqlite_error(sqlite3.OperationalError, "attempt to write a readonly database",
                                               sqlite3.SQLITE_READONLY))
    assert str(read_only).startswith(f"state database {path} is read-only (attempt to write a readonly database)"
                                     " — make it writable")
    other = state_error(path, sqlite3.OperationalError("something else"))
    assert str(other) == f"state database {path}: something else"
    assert all("\n" not in str(e) for e in (full, read_only, other))
