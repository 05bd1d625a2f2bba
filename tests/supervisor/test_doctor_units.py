"""`llm-docker doctor` without the engine: the verdicts and their formatting (pure), and the
checks that need only files — the config and provider keys (the real `load_config`), the
state database (real SQLite, made by the real store, then damaged) and the install's SSH
keys (made by the real `ensure_install_keys`, then damaged)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

from engine.kind import EngineIdentity, EngineKind
from launch.config import ConfigError, LoadedConfig, load_config
from supervisor.doctor import engine as doctor_engine
from supervisor.doctor.config import api_key_findings, config_findings
from supervisor.doctor.report import Finding, Status, exit_code, fail, json_rows, ok, skip, text_lines, warn
from supervisor.doctor.ssh import key_problems
from supervisor.doctor.state import examine_state
from supervisor.ssh_keys import ensure_install_keys
from supervisor.store import DATABASE, Launch, StateStore

# -- the report (pure) -----------------------------------------------------------------------


def test_exit_code_fails_on_a_failure_and_on_warnings_only_when_strict() -> None:
    healthy = [ok("engine", "Docker Engine"), skip("ssh", "not checked")]
    warned = [*healthy, warn("api-keys", "no key", "add it")]
    failed = [*warned, fail("config", "typo", "rename it")]
    assert [exit_code(healthy), exit_code(warned), exit_code(failed)] == [0, 0, 1]
    assert [exit_code(healthy, strict=True), exit_code(warned, strict=True)] == [0, 1]


def test_text_is_one_line_per_finding_with_its_fix_then_a_summary() -> None:
    findings = [ok("engine", "Docker Engine 27"),
                fail("config", "unknown key X\nsecond line \x1b[31m", "rename X to Y"),
                warn("api-keys", "no key", "add one")]
    lines = text_lines(findings)
    assert len(lines) == 4
    assert lines[0].startswith("ok    engine")
    # one line whatever the message holds, and no escape sequence reaches the terminal
    assert lines[1] == "FAIL  config    unknown key X second line  [31m — fix: rename X to Y"
    assert lines[2].endswith("no key — fix: add one") and lines[2].startswith("WARN")
    assert lines[3] == "PROBLEMS: 1 failed, 1 warning (exit 1)"
    assert text_lines(findings[:1])[-1] == "OK: every check passed"
    assert text_lines([findings[0], findings[2]])[-1].startswith("OK with 1 warning (exit 0")


def test_json_rows_have_exactly_name_status_message_fix() -> None:
    rows = json_rows([ok("engine", "fine"), fail("state", "corrupt", "mv it")])
    assert rows == [{"name": "engine", "status": "ok", "message": "fine", "fix": ""},
                    {"name": "state", "status": "fail", "message": "corrupt", "fix": "mv it"}]


def test_disk_space_thresholds() -> None:
    gib = doctor_engine.GIB
    verdicts = [doctor_engine.engine_space(Path("/var/lib/docker"), (Path("/var/lib/docker"), free, 100 * gib)).status
                for free in (1 * gib, 5 * gib, 50 * gib)]
    assert verdicts == [Status.FAIL, Status.WARN, Status.OK]
    home = [doctor_engine.home_space(Path("/h"), (Path("/h"), free, 100 * gib)).status
            for free in (100 * doctor_engine.MIB, 500 * doctor_engine.MIB, 5 * gib)]
    assert home == [Status.FAIL, Status.WARN, Status.OK]
    assert doctor_engine.home_space(Path("/h"), None).status is Status.WARN


def test_the_engine_root_is_measured_only_where_it_is_this_machines_folder() -> None:
    info = {"DockerRootDir": "/var/lib/docker"}

    def identity(kind: EngineKind, endpoint: str) -> EngineIdentity:
        return EngineIdentity(kind=kind, version="27.0", operating_system="Debian", endpoint=endpoint)

    local = identity(EngineKind.DOCKER_ENGINE, "unix:///var/run/docker.sock")
    assert doctor_engine.engine_root(local, info) == Path("/var/lib/docker")
    assert doctor_engine.engine_root(identity(EngineKind.DOCKER_DESKTOP, "unix:///x.sock"), info) is None
    assert doctor_engine.engine_root(identity(EngineKind.REMOTE, "tcp://10.0.0.5:2376"), info) is None
    assert doctor_engine.engine_root(local, {}) is None
    assert "Docker Engine 27.0 on Debian at unix:///var/run/docker.sock" in doctor_engine.engine_finding(local).message


# -- config and provider keys (the real loader) ------------------------------------------------


def _load(home: Path, environ: dict[str, str] | None = None) -> tuple[LoadedConfig | None, ConfigError | None]:
    try:
        return load_config(home, environ or {}, home.parent), None
    except ConfigError as error:
        return None, error


def test_a_typo_in_the_config_fails_with_the_key_it_meant(tmp_path: Path) -> None:
    (tmp_path / "llm-docker.conf").write_text("INTERNET_ACCES=false\n")
    [finding] = config_findings(tmp_path, *_load(tmp_path))
    assert finding.status is Status.FAIL
    assert "unknown key INTERNET_ACCES" in finding.message and "NOT in effect" in finding.message
    assert finding.fix == "rename INTERNET_ACCES to INTERNET_ACCESS (or remove the line)"


def test_an_env_file_others_can_read_fails_and_an_invalid_value_fails(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-1\n")
    (tmp_path / ".env").chmod(0o644)
    [finding] = config_findings(tmp_path, *_load(tmp_path))
    assert finding.status is Status.FAIL and finding.fix == f"chmod 600 {tmp_path / '.env'}"
    (tmp_path / ".env").chmod(0o600)
    assert [f.status for f in config_findings(tmp_path, *_load(tmp_path))] == [Status.OK]
    (tmp_path / "llm-docker.conf").write_text("PIDS_LIMIT=lots\n")
    [finding] = config_findings(tmp_path, *_load(tmp_path))
    assert finding.status is Status.FAIL and "PIDS_LIMIT" in finding.message


def test_provider_keys_per_tool(tmp_path: Path) -> None:
    def statuses(environ: dict[str, str]) -> list[Status]:
        loaded, _ = _load(tmp_path, environ)
        assert loaded is not None
        return [finding.status for finding in api_key_findings(tmp_path, loaded.config, environ)]

    assert statuses({}) == [Status.WARN, Status.WARN]
    assert statuses({"OPENAI_API_KEY": "sk-o"}) == [Status.WARN, Status.OK]  # claude needs Anthropic's
    assert statuses({"ANTHROPIC_AUTH_TOKEN": "t"}) == [Status.OK, Status.OK]
    assert statuses({"ANTHROPIC_API_KEY": "  "}) == [Status.WARN, Status.WARN]  # blank is missing
    (tmp_path / ".env").write_text("ANTHROPIC_API_KEY=sk-a\n")
    (tmp_path / ".env").chmod(0o600)
    loaded, _ = _load(tmp_path)
    assert loaded is not None
    found = api_key_findings(tmp_path, loaded.config, {})
    assert [f.status for f in found] == [Status.OK, Status.OK]
    assert found[0].message == f"claude: ANTHROPIC_API_KEY is set ({tmp_path / '.env'})"
    assert "sk-a" not in repr(found)  # never the key itself


# -- the state database (real SQLite) ----------------------------------------------------------


def _make_database(home: Path) -> Path:
    async def fill() -> None:
        async with StateStore.open(home) as store:
            for number in range(200):
                await store.record_launch(Launch(
                    run_id=f"run-{number}", tool="claude", project="/projects/" + "p" * 100, workdir="/w",
                    slot=None, terminal="tty", launcher_pid=1, launcher_start="1", container=f"c-{number}",
                    session_kind="fresh", session_id=f"s-{number}", started_at=time.time()))

    anyio.run(fill, backend="asyncio")
    return home / DATABASE


def _only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, findings
    return findings[0]


def test_a_sound_database_is_ok_and_left_exactly_as_it_was(tmp_path: Path) -> None:
    assert _only(examine_state(tmp_path, 10)).message.endswith("not created yet (the first launch makes it)")
    path = _make_database(tmp_path)
    before, listed = path.read_bytes(), sorted(os.listdir(tmp_path))
    found = _only(examine_state(tmp_path, 10))
    assert found.status is Status.OK and "intact" in found.message and "200 unfinished" in found.message
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == listed  # no -wal/-shm made either


def _damage_first_table_page(path: Path) -> None:
    """Garbage in a b-tree page header (its cell count): a structure quick_check reads."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for offset in range(page_size, len(data), page_size):
        if data[offset] in (0x05, 0x0D):  # an interior or leaf table page
            data[offset + 3:offset + 5] = b"\xff\xff"
            path.write_bytes(bytes(data))
            return
    raise AssertionError("no table page")


def _claim_unused_pages(path: Path) -> None:
    """The header counts five pages more than any table uses (what a torn write can leave)."""
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[28:32] = (int.from_bytes(data[28:32], "big") + 5).to_bytes(4, "big")
    path.write_bytes(bytes(data) + b"\0" * page_size * 5)


@pytest.mark.parametrize("damage", ["page", "unused pages", "header"])
def test_a_corrupt_database_fails_with_the_move_aside_fix_and_is_not_touched(tmp_path: Path, damage: str) -> None:
    path = _make_database(tmp_path)
    if damage == "page":
        _damage_first_table_page(path)
    elif damage == "unused pages":
        _claim_unused_pages(path)
    else:
        path.write_bytes(b"garbage, not SQLite" * 100)
    before = path.read_bytes()
    found = _only(examine_state(tmp_path, 10))
    assert found.status is Status.FAIL and "is corrupt" in found.message, found
    if damage == "unused pages":  # quick_check's own words
        assert "is never used" in found.message and " and 2 more" in found.message
    assert found.fix.startswith(f"mv {path} {path}.broken")
    assert path.read_bytes() == before and sorted(os.listdir(tmp_path)) == [DATABASE]


def test_a_database_without_the_stores_columns_fails(tmp_path: Path) -> None:
    path = _make_database(tmp_path)
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE claims")
        connection.execute("CREATE TABLE claims (tool TEXT, session_id TEXT)")
    found = _only(examine_state(tmp_path, 10))
    assert found.status is Status.FAIL and "claims has columns tool, session_id" in found.message


def test_the_database_check_is_bounded(tmp_path: Path) -> None:
    _make_database(tmp_path)
    found = _only(examine_state(tmp_path, 0))  # the progress handler interrupts SQLite at once
    assert found.status is Status.WARN and "did not finish within 0 s" in found.message


# -- the install's SSH keys (made by the real code) ----------------------------------------------


def test_ssh_keys_made_by_a_launch_are_ok_and_each_damage_is_named(tmp_path: Path) -> None:
    [found], usable = key_problems(tmp_path)
    assert found.status is Status.OK and "not made yet" in found.message and not usable
    ensure_install_keys(tmp_path, ())
    [found], usable = key_problems(tmp_path)
    assert found.status is Status.OK and usable, found

    client_key = tmp_path / "ssh-client" / "id_ed25519"
    client_key.chmod(0o644)
    [found], usable = key_problems(tmp_path)
    assert found.status is Status.FAIL and not usable
    assert "mode 0644" in found.message and found.fix == f"chmod 600 {client_key}"
    client_key.chmod(0o600)

    # another host key on disk than the one pinned: every client would refuse every slot
    other = tmp_path / "other"
    ensure_install_keys(other, ())
    host_key = tmp_path / "ssh" / "ssh_host_ed25519_key"
    shutil.copyfile(other / "ssh" / "ssh_host_ed25519_key", host_key)
    [found], usable = key_problems(tmp_path)
    assert found.status is Status.FAIL and "host key mismatch" in found.message

    host_key.unlink()
    host_key.symlink_to(other / "ssh" / "ssh_host_ed25519_key")
    [found], usable = key_problems(tmp_path)
    assert found.status is Status.FAIL and "is a symlink" in found.message
