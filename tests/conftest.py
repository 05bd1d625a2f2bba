from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiodocker
import pytest

from testbed.images import BUSYBOX_IMAGE, ensure_test_images
from testbed.isolation import Guard
from testbed.processes import PtyProcess
from testbed.unprivileged import User, sweep_dead_homes

_guard: Guard | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    """A session with Docker tests starts the guard: the user's images and slots recorded,
    decoys planted where there are none (`testbed.isolation`)."""
    global _guard
    if session.config.option.collectonly or not any(
            item.get_closest_marker("docker") or item.get_closest_marker("image") for item in session.items):
        return
    import anyio

    async def images() -> None:
        async with aiodocker.Docker() as client:
            await ensure_test_images(client)

    try:
        anyio.run(images, backend="asyncio")
    except Exception:  # noqa: BLE001 - no engine: the Docker tests fail loudly on their own
        return
    _guard = Guard(BUSYBOX_IMAGE)
    _guard.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A test that changed a user's image or slot fails the whole session."""
    if _guard is None:
        return
    problems = _guard.finish()
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        for problem in problems:
            if reporter is not None:
                reporter.write_line(f"ISOLATION FAILURE: {problem}", red=True, bold=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def isolation_guard() -> Guard:
    """This session's guard (a session with Docker tests always has one)."""
    assert _guard is not None, "the isolation guard did not start"
    return _guard


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Backend-neutral code is tested on both backends; Docker tests override this."""
    return request.param


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away $HOME (and with it ~/.llm-docker) for tests that plan launches."""
    home = tmp_path / "home" / "tester"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("LLM_DOCKER_HOME", raising=False)
    return home


@pytest.fixture
def state_home(user_home: Path) -> Path:
    return user_home / ".llm-docker"


@pytest.fixture
def project(user_home: Path) -> Path:
    folder = user_home / "Projects" / "app"
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def in_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(project)
    yield project


@pytest.fixture
async def docker() -> AsyncIterator[aiodocker.Docker]:
    """The real Docker engine. Absent engine = loud failure, never a skip."""
    client = aiodocker.Docker()
    try:
        await client.version()
    except Exception as error:  # noqa: BLE001 - any failure to reach the engine is fatal here
        await client.close()
        pytest.fail(f"the Docker engine is not reachable ({error}); start dockerd — these tests never skip",
                    pytrace=False)
    await ensure_test_images(client)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture(scope="session")
def docker_engine_ready() -> None:
    """Sync tests' gate: the engine answers and the test images exist (fails, never skips)."""
    import anyio

    async def check() -> None:
        client = aiodocker.Docker()
        try:
            await client.version()
            await ensure_test_images(client)
        except Exception as error:  # noqa: BLE001 - any failure to reach the engine is fatal here
            pytest.fail(f"the Docker engine is not reachable ({error}); start dockerd — these tests never skip",
                        pytrace=False)
        finally:
            await client.close()

    anyio.run(check, backend="asyncio")


@pytest.fixture
def pty_processes() -> Iterator[list[PtyProcess]]:
    """Launchers started in real pseudo-terminals; cleaned up whatever the test did."""
    started: list[PtyProcess] = []
    yield started
    for process in started:
        process.cleanup()


@pytest.fixture
def home(user_home: Path) -> Path:
    """A $HOME whose llm-docker runs the test image (busybox + the fake agent; it has no
    sshd, so SSH is off)."""
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text(f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n")
    return user_home


@pytest.fixture
def user() -> Iterator[User]:
    """An unprivileged user (a dedicated uid in the docker group) whose llm-docker runs the test
    image; the launcher, `llm-docker` and host `git` run as this uid through `user.run`,
    `user.popen` and `user.shell`."""
    sweep_dead_homes()
    person = User()
    person.write(person.state_home / "llm-docker.conf",
                 f"LLM_DOCKER_IMAGE={BUSYBOX_IMAGE}\nLLM_DOCKER_SSH_ENABLED=false\n", mode=0o600)
    person.state_home.chmod(0o700)
    try:
        yield person
    finally:
        person.cleanup()


@pytest.fixture(scope="session")
def agent_images(docker_engine_ready: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real agent images, built (or confirmed from the layer cache) once per session."""
    from testbed.agent_images import require_agent_images

    require_agent_images(tmp_path_factory.mktemp("image-build"))


@pytest.fixture
def model(tmp_path: Path) -> Iterator[str]:
    """The stub model API on the host's loopback; its base URL (127.0.0.1)."""
    from testbed.agent_images import stub_model

    with stub_model(tmp_path / "stub-model.jsonl") as url:
        yield url
