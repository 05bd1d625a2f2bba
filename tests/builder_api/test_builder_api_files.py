"""builder-api's walls against a hostile project folder, in-process on asyncio and trio:
files opened at request time without following symlinks or blocking on FIFOs, logs the
API writes kept out of the project and free of forged lines, pins that hold while a script
runs, an allow-listed job environment, and caps with clear 429/503 answers.

(The same attacks from a real cage: tests/test_builder_api_cage_docker.py.)"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from builder_api.config import EventSettings
from builder_api.environment import job_environment
from builder_api.events import EventStore
from builder_api.jobs import parse_leaf
from builder_api.logs import LogCursor, tail
from builder_api.queue import BuildQueue
from builder_api.safefs import APPEND, READ, FileRefused, open_file
from builder_api.server import logs_home
from testbed.builder_api import AUTH, api_server

pytestmark = pytest.mark.anyio
SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- host-secret"


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A folder outside the project standing for the user's home: a key, a .bashrc."""
    folder = tmp_path / "host"
    folder.mkdir()
    (folder / "id_ed25519").write_text(SECRET + "\n")
    (folder / ".bashrc").write_text("# bashrc\n")
    return folder


# -- safefs ------------------------------------------------------------------------------------

def test_symlinks_fifos_and_dangling_links_are_refused(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "key.log").symlink_to(host / "id_ed25519")
    (root / "linked").symlink_to(host)
    (root / "logs" / "dangling.log").symlink_to(host / "created-by-the-api")
    os.mkfifo(root / "logs" / "fifo.log")
    for name in ("logs/key.log", "linked/id_ed25519", "logs/fifo.log"):
        with pytest.raises(FileRefused):
            open_file(root / name, root, READ)
    for name in ("logs/key.log", "linked/.bashrc", "logs/dangling.log", "logs/fifo.log"):
        with pytest.raises(FileRefused):
            open_file(root / name, root, APPEND, make_folders=True)
    assert not (host / "created-by-the-api").exists()
    assert (host / ".bashrc").read_text() == "# bashrc\n"
    with pytest.raises(FileRefused):
        tail(root / "logs" / "key.log", 10, root)
    assert tail(root / "logs" / "missing.log", 10, root) == ""
    with _no_block():  # a FIFO must never block a reader (SIGALRM would end the test)
        cursor = LogCursor(root / "logs" / "fifo.log", root)
        assert cursor.read() == ([], False)


class _no_block:
    def __enter__(self) -> None:
        import signal

        signal.alarm(5)

    def __exit__(self, *exc: object) -> None:
        import signal

        signal.alarm(0)


async def test_a_log_alias_swapped_for_a_symlink_returns_no_host_content(tmp_path: Path, host: Path) -> None:
    async with api_server(tmp_path) as client:
        log = tmp_path / "project" / "logs" / "app.log"
        assert (await client.get("/logs?file=app", headers=AUTH)).json()["text"] == "one\ntwo\nthree"
        log.unlink()
        log.symlink_to(host / "id_ed25519")  # after the config was loaded and checked
        refused = await client.get("/logs?file=app", headers=AUTH)
        assert refused.status_code == 403 and SECRET not in refused.text
        assert refused.json() == {"error": "log file refused: a symlink, or not a regular file", "file": "app"}
        log.unlink()
        os.mkfifo(log)
        with anyio.fail_after(5):
            assert (await client.get("/logs?file=app", headers=AUTH)).status_code == 403


async def test_the_events_file_in_the_project_is_never_followed(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True)
    events_file = root / "logs" / "events.jsonl"
    store = EventStore(EventSettings(events_file, max_bytes=2000, drop_bytes=500), lambda: root)
    store.append("first")
    events_file.unlink()
    events_file.symlink_to(host / ".bashrc")
    store.append("evil", {"agent_id": "x\ntouch /tmp/marker #"})
    assert (host / ".bashrc").read_text() == "# bashrc\n"
    assert store.query() == {"events": [], "count": 0, "total": 0}
    events_file.unlink()
    events_file.symlink_to(host / "dangling-target")
    store.append("evil")
    assert not (host / "dangling-target").exists()
    events_file.unlink()
    for number in range(60):  # rotation, through the folder's descriptor
        store.append("tick", {"n": number, "pad": "x" * 40})
    assert len(events_file.read_bytes()) <= 2000 and not events_file.is_symlink()


# -- logs the API writes -------------------------------------------------------------------------

def queue_for(tmp_path: Path, build_log: Path, environ: dict[str, str] | None = None) -> tuple[BuildQueue, Path]:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    events = EventStore(EventSettings(None))
    return BuildQueue(project="app", root=lambda: root, events=events, build_log=build_log,
                      max_pending=lambda: 8, dedupe_window_s=lambda: 0, environ=environ), root


async def run_leaf(queue: BuildQueue, table: dict, *, agent_id: str = "tester"):
    from builder_api.jobs import resolve_command

    warnings: list[str] = []
    leaf = parse_leaf("job", table, warnings)
    root = queue._root()
    entry = queue.enqueue(job_name="job", argv=list(leaf.args), command=resolve_command(leaf, root),
                          timeout_s=leaf.timeout_s, kill_after_s=0, cwd=leaf.cwd, params={}, agent_id=agent_id,
                          job=leaf)
    with anyio.fail_after(20):
        await queue.wait(entry.id, 20)
    return entry


async def test_request_values_never_forge_a_line_and_logs_live_outside_the_project(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_DOCKER_HOME", str(tmp_path / "state"))
    home = logs_home("app")
    assert home == tmp_path / "state" / "builder-api" / "app" / "logs"
    queue, root = queue_for(tmp_path, home / "build.log")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        entry = await run_leaf(queue, {"command": "echo", "args": ["hi"]}, agent_id="x\ntouch /tmp/marker #")
        group.cancel_scope.cancel()
    assert entry.status == "done"
    lines = (home / "build.log").read_text().splitlines()
    assert not any(line.startswith("touch") for line in lines)
    assert '"x\\ntouch /tmp/marker #"' in lines[1]
    assert oct((home / "build.log").stat().st_mode & 0o777) == "0o600"
    assert not (root / "logs").exists()


async def test_a_build_log_inside_the_project_swapped_for_a_symlink_fails_the_job(tmp_path: Path,
                                                                                   host: Path) -> None:
    queue, root = queue_for(tmp_path, tmp_path / "project" / "logs" / "build.log")
    (root / "logs").mkdir(parents=True)
    (root / "logs" / "build.log").symlink_to(host / ".bashrc")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        entry = await run_leaf(queue, {"command": "sh", "args": ["-c", "touch ran"]})
        (root / "logs" / "build.log").unlink()
        (root / "logs" / "build.log").symlink_to(host / "dangling")
        second = await run_leaf(queue, {"command": "sh", "args": ["-c", "touch ran2"]})
        group.cancel_scope.cancel()
    assert (entry.status, entry.finished_reason) == ("failed", "build log refused")
    assert "nothing was run" in entry.log_tail and not (root / "ran").exists()
    assert second.status == "failed" and not (host / "dangling").exists()
    assert (host / ".bashrc").read_text() == "# bashrc\n"


# -- pins ----------------------------------------------------------------------------------------

ORIGINAL = "#!/bin/bash\nsleep 1\necho ORIGINAL-END\n"


def pinned_job(script: str, **extra: object) -> dict:
    digest = hashlib.sha256(ORIGINAL.encode()).hexdigest()
    return {"command": "bash", "args": [script], "command_hash": {"path": "scripts/deploy.sh",
                                                                   "sha256": f"sha256:{digest}"}, **extra}


async def test_a_pinned_script_rewritten_while_it_runs_runs_the_verified_bytes(tmp_path: Path) -> None:
    queue, root = queue_for(tmp_path, tmp_path / "logs" / "build.log")
    script = root / "scripts" / "deploy.sh"
    script.parent.mkdir(parents=True)
    script.write_text(ORIGINAL)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)

        async def swap() -> None:
            await anyio.sleep(0.5)  # bash is inside `sleep 1`; it reads on from this offset
            with script.open("r+") as handle:  # in place: same inode, like `cat > file`
                handle.write(f"#!/bin/bash\nsleep 1\ntouch {root}/PWNED\n")
            await anyio.sleep(1.5)
            script.write_text(ORIGINAL)  # restored: the pin matches again afterwards

        group.start_soon(swap)
        entry = await run_leaf(queue, pinned_job("scripts/deploy.sh"))
        await anyio.sleep(1.6)
        group.cancel_scope.cancel()
    assert entry.status == "done" and "ORIGINAL-END" in entry.log_tail
    assert not (root / "PWNED").exists(), "bash read the agent's rewrite of the pinned script"


async def test_a_mismatching_pin_fails_the_job_with_a_clear_error(tmp_path: Path) -> None:
    queue, root = queue_for(tmp_path, tmp_path / "logs" / "build.log")
    script = root / "scripts" / "deploy.sh"
    script.parent.mkdir(parents=True)
    script.write_text(f"touch {root}/PWNED\n")
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        entry = await run_leaf(queue, pinned_job("./scripts/deploy.sh"))
        script.unlink()
        script.symlink_to(root / "elsewhere.sh")
        (root / "elsewhere.sh").write_text(ORIGINAL)  # the right bytes, behind a symlink
        linked = await run_leaf(queue, pinned_job("scripts/deploy.sh"))
        group.cancel_scope.cancel()
    assert (entry.status, entry.returncode, entry.finished_reason) == ("failed", 126, "command_hash_mismatch")
    assert "command_hash_mismatch: scripts/deploy.sh is " in entry.log_tail and "nothing was run" in entry.log_tail
    assert (linked.status, linked.finished_reason) == ("failed", "command_hash_mismatch")
    assert "symlink" in linked.log_tail
    assert not (root / "PWNED").exists()


def test_an_unenforceable_pin_is_warned_about() -> None:
    warnings: list[str] = []
    parse_leaf("make", {"command": "make", "command_hash": {"path": "Makefile", "sha256": "sha256:" + "0" * 64}},
               warnings)
    assert len(warnings) == 1 and "cannot be run from a verified copy" in warnings[0]
    warnings.clear()
    parse_leaf("make", {"command": "make", "args": ["-f", "Makefile"],
                        "command_hash": {"path": "Makefile", "sha256": "sha256:" + "0" * 64}}, warnings)
    assert warnings == []


# -- environment -----------------------------------------------------------------------------------

HOST_ENVIRONMENT = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/home/u", "LANG": "C.UTF-8",
                    "LC_TIME": "C", "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock", "DOCKER_HOST": "unix:///x.sock",
                    "AWS_SECRET_ACCESS_KEY": "aws-secret", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json",
                    "AZURE_CLIENT_SECRET": "az", "GITHUB_TOKEN": "ghp_x", "BUILDER_API_PASSWORD": "pw"}


def test_the_allow_list() -> None:
    env = job_environment({"MODE": "ci"}, ["DOCKER_HOST", "BUILDER_API_PASSWORD"], HOST_ENVIRONMENT)
    assert env == {"PATH": HOST_ENVIRONMENT["PATH"], "HOME": "/home/u", "LANG": "C.UTF-8", "LC_TIME": "C",
                   "DOCKER_HOST": "unix:///x.sock", "MODE": "ci"}


async def test_a_job_sees_only_the_allow_list_its_env_and_what_it_names(tmp_path: Path) -> None:
    queue, _ = queue_for(tmp_path, tmp_path / "logs" / "build.log", HOST_ENVIRONMENT)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        plain = await run_leaf(queue, {"command": "env"})
        named = await run_leaf(queue, {"command": "env", "args": ["-u", "X"], "env": {"MODE": "ci"},
                                       "env_passthrough": ["DOCKER_HOST"]})
        group.cancel_scope.cancel()
    for forbidden in ("SSH_AUTH_SOCK", "DOCKER_HOST", "AWS_", "GOOGLE_", "AZURE_", "_TOKEN", "BUILDER_API_PASSWORD"):
        assert forbidden not in plain.log_tail
    assert "LC_TIME=C" in plain.log_tail and "HOME=/home/u" in plain.log_tail
    assert "DOCKER_HOST=unix:///x.sock" in named.log_tail and "MODE=ci" in named.log_tail
    assert "SSH_AUTH_SOCK" not in named.log_tail and "aws-secret" not in named.log_tail


def test_env_passthrough_is_validated() -> None:
    from builder_api.jobs import JobConfigError

    for bad in ("DOCKER_HOST", ["DOCKER HOST"], [1], ["*_TOKEN"]):
        with pytest.raises(JobConfigError, match="env_passthrough must be a list of variable names"):
            parse_leaf("j", {"command": "true", "env_passthrough": bad}, [])
    with pytest.raises(JobConfigError, match="env must be a table"):
        parse_leaf("j", {"command": "true", "env": {"A": 1}}, [])


# -- caps ---------------------------------------------------------------------------------------------

async def test_a_full_queue_answers_429(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        api = client.api
        api.apply_config(replace(api.config, build=replace(api.config.build, max_pending=1, dedupe_window_s=0)))
        first = await client.post("/job/sleep", headers=AUTH)
        assert first.status_code == 202
        with anyio.fail_after(10):
            while client.api.queue.current is None:
                await anyio.sleep(0.02)
        assert (await client.post("/job/echo", json={"params": {"word": "a"}}, headers=AUTH)).status_code == 202
        full = await client.post("/job/echo", json={"params": {"word": "b"}}, headers=AUTH)
        assert full.status_code == 429 and full.json()["error"] == "pending queue at capacity (1)"
        await client.delete("/current/cancel", headers=AUTH)


def test_the_history_forgets_old_ids(tmp_path: Path) -> None:
    queue, _ = queue_for(tmp_path, tmp_path / "b.log")
    for _ in range(100):
        entry = queue.enqueue(job_name="x", argv=[], command=Path("/bin/true"), timeout_s=1, kill_after_s=0,
                              cwd=".", params={}, agent_id="")
        queue.cancel_pending(entry.id)
    assert len(queue._by_id) <= 21


def inotify_instances(pid: int | str = "self") -> int:
    folder = Path(f"/proc/{pid}/fd")
    count = 0
    for link in folder.iterdir():
        try:
            count += os.readlink(link) == "anon_inode:inotify"
        except OSError:
            pass
    return count


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the `websockets` client is asyncio-only
async def test_300_followers_share_one_watcher_and_the_caps_answer_503(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async with api_server(tmp_path) as client:
        api = client.api
        api.apply_config(replace(api.config, security=replace(api.config.security, max_ws_clients=300,
                                                                max_followers=300)))
        url = f"ws://{client.base_url.host}:{client.base_url.port}/ws?logs=app"
        before = inotify_instances()
        sockets = []
        try:
            for _ in range(300):
                sockets.append(await connect(url, additional_headers=AUTH, proxy=None, ping_interval=None))
                await sockets[-1].recv()  # hello
            assert api.followers.watched_files == 1 and api.followers.clients == 300
            assert inotify_instances() == before, "a follower opened its own inotify instance"
            with pytest.raises(InvalidStatus) as refused:
                await connect(url, additional_headers=AUTH, proxy=None)
            assert refused.value.response.status_code == 503
            assert json.loads(refused.value.response.body)["error"] == "too many WebSocket clients"
            with (tmp_path / "project" / "logs" / "app.log").open("a") as log:
                log.write("for everyone\n")

            async def line(socket) -> str:
                while (frame := json.loads(await socket.recv()))["type"] != "log":
                    pass
                return frame["line"]

            with anyio.fail_after(20):
                received = []
                async with anyio.create_task_group() as group:
                    for socket in sockets:
                        group.start_soon(lambda s=socket: _collect(line, s, received))
            assert received == ["for everyone"] * 300
        finally:
            for socket in sockets:
                await socket.close()
        with anyio.fail_after(10):
            while api.followers.clients:
                await anyio.sleep(0.05)
        assert api.followers.watched_files == 0


async def _collect(line, socket, received: list[str]) -> None:
    received.append(await line(socket))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_follower_cap_answers_503(tmp_path: Path) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async with api_server(tmp_path) as client:
        api = client.api
        api.apply_config(replace(api.config, security=replace(api.config.security, max_followers=1)))
        url = f"ws://{client.base_url.host}:{client.base_url.port}/ws"
        async with connect(url + "?logs=app", additional_headers=AUTH, proxy=None) as first:
            await first.recv()
            with pytest.raises(InvalidStatus) as refused:
                await connect(url + "?logs=app", additional_headers=AUTH, proxy=None)
            assert refused.value.response.status_code == 503
            assert json.loads(refused.value.response.body)["error"] == "too many log followers"
            async with connect(url + "?logs=,", additional_headers=AUTH, proxy=None) as events_only:
                assert json.loads(await events_only.recv())["logs"] == []


def test_the_caps_are_configurable(tmp_path: Path) -> None:
    from builder_api.config import load

    config_file = tmp_path / "builder-api.toml"
    (tmp_path / "p").mkdir()
    config_file.write_text(f'[project.app]\nroot = "{tmp_path / "p"}"\nport = 1\npassword = "x"\n'
                           '[project.app.security]\nmax_ws_clients = 3\nmax_followers = 5\n'
                           '[project.app.build]\nmax_pending = 2\n'
                           '[project.app.runtime]\nenv_passthrough = ["DOCKER_HOST"]\n')
    config = load("app", config_file, {})
    assert (config.security.max_ws_clients, config.security.max_followers, config.build.max_pending) == (3, 5, 2)
    assert config.runtime.env_passthrough == ("DOCKER_HOST",)
    shutil.rmtree(tmp_path / "p")


def test_tail_of_a_sparse_terabyte_without_a_newline_reads_a_bounded_end(tmp_path: Path) -> None:
    """`/logs?file=…&n=1` on an agent's `truncate -s 1T app.log`: read backwards until a
    newline that never comes, each step copying all before — now a bounded read."""
    from builder_api.logs import MAX_LINE_BYTES, MAX_TAIL_BYTES

    root = tmp_path / "p"
    (root / "logs").mkdir(parents=True)
    with (root / "logs" / "app.log").open("wb") as log:
        log.truncate(1 << 40)
    with _no_block():
        shown = tail(root / "logs" / "app.log", 1, root)
    assert shown.startswith("\0" * MAX_LINE_BYTES) and f"[{MAX_TAIL_BYTES - MAX_LINE_BYTES} bytes cut]" in shown
    (root / "logs" / "app.log").write_text("one\ntwo\nthree\n")
    assert tail(root / "logs" / "app.log", 2, root) == "two\nthree"


def test_an_events_query_reads_and_answers_a_bounded_amount(tmp_path: Path) -> None:
    """The events file may be the agent's: a sparse terabyte without a newline is one endless
    line; ten thousand 60 KB records would be a 600 MB answer."""
    from builder_api import events

    root = tmp_path / "project"
    root.mkdir()
    events_file = root / "events.jsonl"
    store = EventStore(EventSettings(events_file), lambda: root)
    with events_file.open("wb") as sparse:
        sparse.truncate(1 << 40)
    with _no_block():
        assert store.query(n=10)["events"] == []
    big = json.dumps({"type": "big", "text": "x" * 60_000}) + "\n"
    events_file.write_text(big * 100 + json.dumps({"type": "last"}) + "\n")
    answer = store.query(n=10_000)
    assert answer["total"] == 101 and answer["events"][-1] == {"type": "last"}
    assert len(json.dumps(answer["events"])) <= events.QUERY_ANSWER_BYTES < 100 * len(big)
