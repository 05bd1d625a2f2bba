"""Path guards: judged on resolved paths, so no spelling of a dangerous folder slips through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from launch.guards import MIN_SEGMENTS, PathRefused, check_docker_dir, check_host_folder

HOME = Path("/home/u")
STATE = Path("/home/u/.llm-docker")


def check(path: str, *, home: Path = HOME, state: Path = STATE) -> Path:
    return check_host_folder(Path(path), role="WORKSPACE_DIR", user_home=home, state_home=state)


@pytest.mark.parametrize(("path", "message"), [
    ("/", "is a system folder"),
    ("/home/u", "is your home directory"),
    ("/home/u/", "is your home directory"),             # slipped through upstream (docs/upstream.md#path-guards)
    ("/home/u/Projects/..", "is your home directory"),  # '..' collapses first
    ("/home", "is a system folder"),
    ("/Users", "is a system folder"),
    ("/tmp", "is a system folder"),
    ("/usr/local", "is a system folder"),
    ("/tmp/foo", "too shallow (fewer than 3 path segments)"),
    ("/opt/x", "too shallow"),
    ("relative/a/b", "is relative — use an absolute path"),  # upstream accepted relative paths
    ("/home/u/.llm-docker", "overlaps llm-docker's own state folder"),
    ("/home/u/.llm-docker/claude/x", "overlaps llm-docker's own state folder"),
])
def test_refused(path: str, message: str) -> None:
    with pytest.raises(PathRefused) as caught:
        check(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "—" in str(caught.value)  # every refusal says what to do instead


@pytest.mark.parametrize("path", ["/home/u/Projects", "/home/u/Projects/ai", "/opt/a/b", "/srv/x/y/z"])
def test_accepted(path: str) -> None:
    assert check(path) == Path(path)


def test_ancestor_of_home_is_refused() -> None:
    with pytest.raises(PathRefused, match="contains your home directory"):
        check("/data/users", home=Path("/data/users/u/home"), state=Path("/data/users/u/home/.llm-docker"))


def test_symlink_to_home_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "h" / "user"
    (home / "Projects").mkdir(parents=True)
    link = tmp_path / "h" / "user" / "Projects" / "ws"
    link.symlink_to(home)
    with pytest.raises(PathRefused, match="is your home directory"):
        check(str(link), home=home, state=home / ".llm-docker")
    (tmp_path / "root-link").symlink_to("/")
    with pytest.raises(PathRefused, match="system folder"):
        check(str(tmp_path / "root-link"), home=home, state=home / ".llm-docker")


@pytest.mark.parametrize(("path", "message"), [
    ("relative", "must be an absolute container path"),
    ("/", "container system path"),
    ("/root", "container system path"),
    ("/root/", "container system path"),
    ("/opt", "container system path"),
    ("/usr/local/x", "under a container system path"),
    ("/etc/x", "under a container system path"),
    ("/root/Projects/../..", "container system path"),
    ("/root/.claude", "collides with the persistence mount /root/.claude"),
    ("/root/.claude/x", "collides with the persistence mount"),
    ("/root/.config", "collides with the persistence mount"),
    ("/root/.local", "collides with the persistence mount /root/.local/share/opencode"),
    ("/root/.claude.json", "collides"),
    ("/etc/ssh", "under a container system path"),
])
def test_docker_dir_refused(path: str, message: str) -> None:
    with pytest.raises(PathRefused) as caught:
        check_docker_dir(path)
    assert message in str(caught.value)


@pytest.mark.parametrize(("path", "normal"), [
    ("/root/Projects", "/root/Projects"), ("/root/Projects/", "/root/Projects"),
    ("/workspace", "/workspace"), ("/opt/x", "/opt/x"), ("/home/x", "/home/x"), ("//work//x", "/work/x"),
])
def test_docker_dir_accepted(path: str, normal: str) -> None:
    assert check_docker_dir(path) == normal


# -- property-based: build a real tree with symlinks, throw generated paths at the guard ---

SEGMENTS = st.sampled_from(["a", "b", "home", "user", "..", ".", "", "link-root", "link-home",
                            "link-up", "Projects", ".llm-docker", "x y"])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A sandbox root with a home inside it, and symlinks that point at dangerous places."""
    base = tmp_path_factory.mktemp("guards")
    home = base / "home" / "user"
    for folder in ("Projects/a/b", "a/b", ".llm-docker/a"):
        (home / folder).mkdir(parents=True)
    (home / "Projects" / "link-root").symlink_to("/")
    (home / "Projects" / "link-home").symlink_to(home)
    (home / "Projects" / "a" / "link-up").symlink_to("../..")
    return base, home


def _ancestors_or_self(path: Path) -> set[Path]:
    return {path, *path.parents}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segments=st.lists(SEGMENTS, min_size=0, max_size=8), absolute_start=st.booleans(),
       trailing_slash=st.booleans())
def test_no_generated_path_escapes(tree: tuple[Path, Path], segments: list[str], absolute_start: bool,
                                   trailing_slash: bool) -> None:
    _, home = tree
    start = str(home / "Projects") if absolute_start else "/"
    raw = os.path.join(start, *segments) + ("/" if trailing_slash else "")
    state = home / ".llm-docker"
    try:
        accepted = check(raw, home=home, state=state)
    except PathRefused:
        return
    resolved = Path(raw).resolve()
    # The invariants, stated independently of how the guard computes them:
    assert accepted == resolved
    assert resolved != Path("/") and len(resolved.parts) - 1 >= MIN_SEGMENTS
    assert home not in _ancestors_or_self(resolved) or resolved != home
    assert not home.is_relative_to(resolved)              # never the home or an ancestor of it
    assert not resolved.is_relative_to(state) and not state.is_relative_to(resolved)
    # A spelling variant of the same folder gets the same verdict.
    assert check(raw.rstrip("/") + "/.", home=home, state=state) == accepted


@settings(deadline=None)
@given(st.lists(st.sampled_from(["root", "Projects", "..", ".", "", ".claude", "etc", "usr", "x"]),
                max_size=6))
def test_no_generated_docker_dir_hits_a_protected_place(segments: list[str]) -> None:
    raw = "/" + "/".join(segments)
    try:
        normal = check_docker_dir(raw)
    except PathRefused:
        return
    for protected in ("/", "/root", "/etc", "/usr", "/root/.claude", "/root/.config"):
        assert normal != protected
    for prefix in ("/etc/", "/usr/", "/root/.claude/", "/root/.config/"):
        assert not normal.startswith(prefix)
    assert normal == os.path.normpath(normal)
