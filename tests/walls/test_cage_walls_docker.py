"""The cage's walls, attacked from a real cage: nothing the agent writes is run by the host.

Each test starts `cld` as an unprivileged user (a dedicated uid in the docker group) on the real
engine; the fake agent of the test image plays the hostile agent (`--fake-sh CMD` runs a
shell script inside the cage). Afterwards the test runs the host's own `git status` and
`git commit` *as the user* and reads the settings, and checks that no payload ran: every
payload would create a marker file under the user's home on the host, a path that does not
exist inside the cage. Every step of an attack prints `BREACH:<step>` only if it worked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from testbed.processes import field, project_containers, wait_until
from testbed.unprivileged import User

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine_ready")]

CAGE_PROJECT = "/root/Projects"


def repository(user: User, name: str = "app") -> Path:
    project = user.project(name)
    user.shell("git init -q -b main && git commit -q --allow-empty -m init", cwd=project, check=True)
    return project


def hostile(user: User, project: Path, script: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """One launch whose agent runs `script` in the cage; the launch must end normally."""
    result = user.run("cld", *extra, "--", "-p", "x", "--fake-sh", script, cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def payload(marker: Path) -> str:
    return f"#!/bin/sh\ntouch {marker}\n"


def fsmonitor_config(marker: Path) -> str:
    return f'[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = \\"touch {marker}\\"\\n'


def breaches(result: subprocess.CompletedProcess[str]) -> list[str]:
    return field(result.stdout, "BREACH")


def host_git_runs_nothing(user: User, project: Path, *markers: Path) -> None:
    """The user's next `git status` and `git commit` on the host run none of the payloads."""
    status = user.shell("git status --porcelain", cwd=project)
    commit = user.shell("git commit -q --allow-empty -m by-the-user", cwd=project)
    assert status.returncode == 0, status.stderr
    assert commit.returncode == 0, commit.stderr
    for marker in markers:
        assert not marker.exists(), f"the host ran the agent's payload: {marker} exists"


def test_commondir_redirection_and_moving_git_away_fail(user: User) -> None:
    project = repository(user)
    fsmonitor, hook = user.home / "PWNED-fsmonitor", user.home / "PWNED-hook"
    script = (
        f"echo ../.x > .git/commondir && echo BREACH:commondir; "
        f"mkdir -p .x/hooks && cp -a .git/HEAD .git/objects .git/refs .x/ 2>/dev/null; "
        f"printf '{fsmonitor_config(fsmonitor)}' > .x/config; "
        f"printf '{payload(hook)}' > .x/hooks/pre-commit; chmod +x .x/hooks/pre-commit; "
        f"mv .git .git-moved && echo BREACH:mv-git; "
        f"rm -rf .git 2>/dev/null; test -d .git || echo BREACH:rm-git; "
        f"mkdir -p .git/hooks && printf '{payload(hook)}' > .git/hooks/pre-commit && echo BREACH:new-hook; "
        f"printf '{fsmonitor_config(fsmonitor)}' >> .git/config && echo BREACH:config; "
        f"echo edited > README.md && echo DID:edit"
    )
    result = hostile(user, project, script)
    assert breaches(result) == []
    assert field(result.stdout, "DID") == ["edit"]  # the agent still does its job
    assert (project / "README.md").read_text() == "edited\n"
    assert not (project / ".git/commondir").exists()
    host_git_runs_nothing(user, project, fsmonitor, hook)


def test_existing_tool_settings_cannot_be_moved_replaced_or_edited(user: User) -> None:
    project = repository(user)
    original = '{"permissions": {}}\n'
    for relative in (".claude/settings.json", ".vscode/tasks.json", ".github/workflows/ci.yml"):
        user.write(project / relative, original)
    hooks = '{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"touch /x"}]}]}}'
    steps = []
    for folder, file in ((".claude", "settings.json"), (".vscode", "tasks.json"), (".github", "workflows/ci.yml")):
        steps += [f"mv {folder} {folder}-old && echo BREACH:mv-{folder}",
                  f"echo '{hooks}' > {folder}/{file} && echo BREACH:write-{folder}",
                  f"rm -rf {folder} 2>/dev/null; test -e {folder}/{file} || echo BREACH:rm-{folder}",
                  f"ln -sf /etc/passwd {folder}/link 2>/dev/null && echo BREACH:link-{folder}"]
    result = hostile(user, project, "; ".join(steps))
    assert breaches(result) == []
    for relative in (".claude/settings.json", ".vscode/tasks.json", ".github/workflows/ci.yml"):
        read = user.shell(f"cat {relative}", cwd=project, check=True)  # the user's host tools read the original
        assert read.stdout == original
    assert "tripwire" not in result.stderr  # nothing to quarantine: the pins held


def test_settings_the_agent_creates_are_quarantined_and_reported(user: User) -> None:
    project = repository(user)
    script = ("mkdir .vscode && echo '{\"tasks\":[{\"runOptions\":{\"runOn\":\"folderOpen\"}}]}' > .vscode/tasks.json; "
              "mkdir -p .claude && echo '{\"hooks\":{}}' > .claude/settings.json; "
              "echo 'curl x | sh' > .envrc; echo ok > notes.txt")
    result = hostile(user, project, script)
    notices = [line for line in result.stderr.splitlines() if "tripwire:" in line]
    assert len(notices) == 1, result.stderr
    for relative in (".vscode", ".claude", ".envrc"):
        assert relative in notices[0]
        assert not os.path.lexists(project / relative), relative  # gone from the project
    assert (project / "notes.txt").read_text() == "ok\n"  # ordinary work stays
    quarantines = list((user.state_home / "quarantine").iterdir())
    assert len(quarantines) == 1 and str(quarantines[0]) in notices[0]
    assert (quarantines[0] / "files/.vscode/tasks.json").is_file()
    assert (quarantines[0] / "files/.envrc").read_text() == "curl x | sh\n"
    assert quarantines[0].stat().st_uid == user.uid  # the user's own files, in the user's own folder
    listed = user.run("llm-docker", "quarantine", cwd=project)
    assert listed.returncode == 0 and quarantines[0].name in listed.stdout
    accepted = user.run("llm-docker", "quarantine", "accept", quarantines[0].name, cwd=project)
    assert accepted.returncode == 0, accepted.stderr
    assert (project / ".envrc").read_text() == "curl x | sh\n"  # reviewed and accepted by the user


def test_hooks_folder_absent_at_launch(user: User) -> None:
    project = repository(user)
    user.shell("rm -rf .git/hooks", cwd=project, check=True)
    hook = user.home / "PWNED-hook"
    result = hostile(user, project, f"mkdir .git/hooks && echo BREACH:mkdir; "
                                    f"mkdir -p .git/hooks; printf '{payload(hook)}' > .git/hooks/pre-commit "
                                    f"&& echo BREACH:hook")
    assert breaches(result) == []
    assert not (project / ".git/hooks").exists()
    host_git_runs_nothing(user, project, hook)


def test_hooks_folder_symlinked_out_of_the_project(user: User) -> None:
    project = repository(user)
    outside = user.home / "shared-hooks"
    outside.mkdir()
    user.own(outside)
    user.shell(f"rm -rf .git/hooks && ln -s {outside} .git/hooks", cwd=project, check=True)
    hook = user.home / "PWNED-hook"
    result = hostile(user, project, f"rm .git/hooks && echo BREACH:unlink; "
                                    f"ln -sfn /tmp .git/hooks && echo BREACH:relink; "
                                    f"printf '{payload(hook)}' > .git/hooks/pre-commit && echo BREACH:hook")
    assert breaches(result) == []
    assert os.readlink(project / ".git/hooks") == str(outside)
    assert list(outside.iterdir()) == []
    host_git_runs_nothing(user, project, hook)


def test_worktree_gitfile_and_its_git_folders(user: User) -> None:
    main = repository(user, "main")
    user.shell("git worktree add -q ../wt -b wt", cwd=main, check=True)
    worktree = main.parent / "wt"
    fsmonitor, hook = user.home / "PWNED-fsmonitor", user.home / "PWNED-hook"
    main_git = main / ".git"
    script = (
        f"test -f {main_git}/HEAD && echo SEEN:common; "
        f"printf 'gitdir: ../.y\\n' > .git && echo BREACH:gitfile; "
        f"mv .git .git-old && echo BREACH:mv-gitfile; "
        f"printf '{fsmonitor_config(fsmonitor)}' >> {main_git}/config && echo BREACH:main-config; "
        f"printf '{payload(hook)}' > {main_git}/hooks/pre-commit && echo BREACH:main-hook; "
        f"printf '{fsmonitor_config(fsmonitor)}' > {main_git}/worktrees/wt/config.worktree && echo BREACH:wt-config"
    )
    result = hostile(user, worktree, script)
    assert breaches(result) == []
    assert field(result.stdout, "SEEN") == ["common"]  # git inside can read the history
    assert (worktree / ".git").read_text().startswith("gitdir: ")
    host_git_runs_nothing(user, worktree, fsmonitor, hook)
    host_git_runs_nothing(user, main, fsmonitor, hook)


def test_submodule_git_folders_and_gitfile(user: User) -> None:
    library = repository(user, "lib-src")
    project = repository(user)
    user.shell(f"git -c protocol.file.allow=always submodule add -q {library} lib && git commit -q -m sub",
               cwd=project, check=True)
    fsmonitor, hook = user.home / "PWNED-fsmonitor", user.home / "PWNED-hook"
    script = (
        f"printf '{payload(hook)}' > .git/modules/lib/hooks/pre-commit && echo BREACH:module-hook; "
        f"printf '{fsmonitor_config(fsmonitor)}' >> .git/modules/lib/config && echo BREACH:module-config; "
        f"printf 'gitdir: ../.evil\\n' > lib/.git && echo BREACH:lib-gitfile; "
        f"mv lib/.git lib/.git-old && echo BREACH:mv-lib-gitfile; "
        f"echo change > lib/file.txt && echo DID:edit-submodule"
    )
    result = hostile(user, project, script)
    assert breaches(result) == []
    assert field(result.stdout, "DID") == ["edit-submodule"]
    host_git_runs_nothing(user, project, fsmonitor, hook)
    commit = user.shell("git add file.txt && git commit -q -m in-lib", cwd=project / "lib")
    assert commit.returncode == 0, commit.stderr
    assert not hook.exists() and not fsmonitor.exists()


def test_a_project_without_git_gets_no_agent_made_repository(user: User) -> None:
    project = user.project("plain")
    fsmonitor = user.home / "PWNED-fsmonitor"
    result = hostile(user, project, f"mkdir -p .git/refs .git/objects && echo 'ref: refs/heads/main' > .git/HEAD && "
                                    f"printf '{fsmonitor_config(fsmonitor)}' > .git/config && echo PLANTED")
    assert "tripwire:" in result.stderr and ".git" in result.stderr
    assert not (project / ".git").exists()
    user.shell("git status", cwd=project)
    assert not fsmonitor.exists()


def test_agent_home_is_per_project(user: User) -> None:
    """What an agent writes into its home (`~/.claude/settings.json`: hooks for every
    session) in one project is not what another project's agent gets."""
    first, second = user.project("a"), user.project("b")
    planted = '{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"touch /tmp/x"}]}]}}'
    hostile(user, first, f"echo '{planted}' > /root/.claude/settings.json && echo PLANTED")
    other = hostile(user, second, "cat /root/.claude/settings.json 2>/dev/null || echo NONE:settings")
    assert planted not in other.stdout
    homes = list((user.state_home / "projects").iterdir())
    assert len(homes) == 2
    assert [h for h in homes if (h / "claude/.claude/settings.json").exists()] == \
           [h for h in homes if h.name.startswith("a-")]
    assert json.loads((next(h for h in homes if h.name.startswith("a-")) / "claude/.claude/settings.json")
                      .read_text())["hooks"]


def test_a_repository_planted_in_a_sub_folder_is_quarantined(user: User) -> None:
    """git finds the nearest `.git` from the folder it runs in: a repository the agent
    makes in `src/` would run its config when the user runs git there."""
    project = repository(user)
    user.write(project / "src/main.c", "int main;\n")
    fsmonitor = user.home / "PWNED-fsmonitor"
    result = hostile(user, project, f"mkdir -p src/.git/refs src/.git/objects && "
                                    f"echo 'ref: refs/heads/main' > src/.git/HEAD && "
                                    f"printf '{fsmonitor_config(fsmonitor)}' > src/.git/config && echo PLANTED")
    assert "PLANTED" in result.stdout
    assert "tripwire:" in result.stderr and "src/.git" in result.stderr
    assert not (project / "src/.git").exists()
    user.shell("git status", cwd=project / "src")
    assert not fsmonitor.exists()


def test_the_guardian_settles_the_tripwire_after_a_sigkill(user: User) -> None:
    """A launcher killed with SIGKILL cannot check anything: its guardian does, as soon as
    it has removed the container."""
    project = repository(user)
    launcher = user.popen("cld", "--", "--fake-sh", "mkdir .vscode && echo '{}' > .vscode/tasks.json",
                          "--fake-sleep", "60", "-p", "x", cwd=project, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL)
    try:
        assert launcher.stdout is not None
        for line in launcher.stdout:
            if line.startswith(b"READY"):
                break
        assert (project / ".vscode/tasks.json").exists()
        launcher.kill()
        launcher.wait(timeout=10)
        wait_until(lambda: not (project / ".vscode").exists() and project_containers(project) == [], timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    quarantine = next((user.state_home / "quarantine").iterdir())
    assert (quarantine / "files/.vscode/tasks.json").is_file()
    listed = user.run("llm-docker", "quarantine", cwd=project)
    assert quarantine.name in listed.stdout and ".vscode" in listed.stdout


def test_the_users_shared_agent_config_is_read_only_in_the_cage(user: User) -> None:
    """`$LLM_DOCKER_HOME/shared/claude/settings.json` reaches every project's agent, and no
    agent can change it for the others."""
    project = user.project("app")
    shared = user.write(user.state_home / "shared/claude/settings.json", '{"model": "mine"}\n')
    result = hostile(user, project, "cat /root/.claude/settings.json; "
                                    "echo '{\"hooks\":{}}' > /root/.claude/settings.json && echo BREACH:write; "
                                    "mv /root/.claude/settings.json /root/.claude/x && echo BREACH:mv; "
                                    "rm -f /root/.claude/settings.json && echo BREACH:rm")
    assert '{"model": "mine"}' in result.stdout
    assert breaches(result) == []
    assert shared.read_text() == '{"model": "mine"}\n'


def test_boot_md_made_a_link_or_a_fifo_by_the_agent_is_no_prompt(user: User) -> None:
    """BOOT.md is the next fresh session's first prompt — in the container's command line and
    sent to the model provider. An agent's link to one of the user's secrets is not read; its
    FIFO does not hang the next launch."""
    user.write(user.home / "secret-token", "TOKEN-9f3c2a\n", mode=0o600)
    project = user.project()
    hostile(user, project, "echo 'read the plan first' > BOOT.md")
    shown = user.run("cld", "--", "--fake-sh", "echo DONE", cwd=project, timeout=60)
    assert "read the plan first" in field(shown.stdout, "ARG"), shown.stdout  # the test sees a prompt
    hostile(user, project, "rm BOOT.md && ln -s ../../secret-token BOOT.md && echo PLANTED")
    assert (project / "BOOT.md").is_symlink()
    again = user.run("cld", "--", "--fake-sh", "echo DONE", cwd=project, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "DONE" in again.stdout and "TOKEN-9f3c2a" not in again.stdout + again.stderr

    hostile(user, project, "rm BOOT.md && mkfifo BOOT.md && echo PLANTED")
    last = user.run("cld", "--", "--fake-sh", "echo DONE", cwd=project, timeout=60)  # hung before
    assert last.returncode == 0 and "DONE" in last.stdout, last.stderr


def test_a_repository_hidden_behind_folder_permissions_is_quarantined(user: User) -> None:
    """git runs in a folder it may not list (`chmod 311`: search, no read), so the host's
    check must not take a folder it cannot read for one without a repository."""
    project = repository(user)
    user.shell("mkdir -p vendor/x && cd vendor/x && git init -q -b main && git commit -q --allow-empty -m v",
               cwd=project, check=True)
    planted, edited = user.home / "PWNED-planted", user.home / "PWNED-edited"
    result = hostile(user, project,
                     f"mkdir -p sub/.git/refs sub/.git/objects && echo 'ref: refs/heads/main' > sub/.git/HEAD && "
                     f"printf '{fsmonitor_config(planted)}' > sub/.git/config && chmod 311 sub && "
                     f"printf '{fsmonitor_config(edited)}' > vendor/x/.git/config && chmod 311 vendor/x/.git && "
                     "echo PLANTED")
    assert "PLANTED" in result.stdout
    assert "tripwire:" in result.stderr and "sub (replaced)" in result.stderr, result.stderr
    assert "vendor/x/.git" in result.stderr, result.stderr
    assert not (project / "sub").exists() and not (project / "vendor/x/.git").exists()
    user.shell("git status", cwd=project / "vendor/x")
    host_git_runs_nothing(user, project, planted, edited)


def test_a_run_folder_chain_deeper_than_python_recurses_is_removed_and_the_slot_saved(user: User) -> None:
    """The agent writes into its run folder (the events file's folder): removing it at the
    save recursed once per level and died of a RecursionError."""
    project = user.project()
    result = user.run("cld", "--slot", "1", "--", "-p", "x", "--fake-sh",
                      'cd "$(dirname "$LLM_DOCKER_EVENTS")" && i=0 && '
                      'while [ $i -lt 3000 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done && echo DEEP',
                      cwd=project, timeout=300)
    assert result.returncode == 0 and "DEEP" in result.stdout, result.stderr
    assert "Traceback" not in result.stderr and "slot 1 saved" in result.stderr, result.stderr
    assert not any((user.state_home / "runs").iterdir())


def test_names_and_ids_the_agent_chose_cannot_drive_the_users_terminal(user: User) -> None:
    """The tripwire's notice names the folders it moved, the save names the session: an
    escape sequence in either (OSC 52 writes the clipboard in many terminals) is shown, not sent."""
    project = repository(user)
    result = user.run("cld", "--slot", "1", "--", "-p", "x", "--fake-sh",
                      "d=\"$(printf 'x\\033]52;c;QUFBQQ==\\007y')\" && mkdir \"$d\" && "
                      "echo 'echo hi' > \"$d/.envrc\" && "
                      "printf '{\"session_id\": \"\\\\u001b]52;c;QUFBQQ==\\\\u0007\"}\\n' >> \"$LLM_DOCKER_EVENTS\" && "
                      "echo PLANTED", cwd=project)
    assert result.returncode == 0 and "PLANTED" in result.stdout, result.stderr
    assert "tripwire:" in result.stderr and "x?]52;c;QUFBQQ==?y/.envrc" in result.stderr, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    listed = user.run("llm-docker", "slots", cwd=project)
    assert "\x1b" not in listed.stdout + listed.stderr


def test_a_gitfile_the_agent_writes_cannot_bring_another_repository_into_a_cage(user: User) -> None:
    """While slot 1 runs, its agent writes `sub/.git` naming another project's repository;
    a launch from `sub` (its own project now) mounts only git folders that name it back."""
    secret = repository(user, "secret")
    project = repository(user, "app")
    (project / "sub").mkdir()
    user.own(project / "sub")
    first = user.popen("cld", "--slot", "1", "--", "-p", "x", "--fake-sh",
                       f"printf 'gitdir: {secret}/.git\\n' > sub/.git && echo PLANTED && sleep 15", cwd=project,
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: (project / "sub/.git").is_file(), timeout=60)
        second = user.run("cld", "--", "-p", "x", "--fake-sh",
                          f"test -e {secret}/.git/HEAD && echo BREACH:secret-history; echo DONE", cwd=project / "sub")
        assert "DONE" in second.stdout, second.stderr
        assert breaches(second) == []
    finally:
        first.wait(timeout=120)
