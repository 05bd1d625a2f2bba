"""`llm-docker ssh` and `llm-docker ssh-config`: OpenSSH clients into the running slots.

The running slots come from the engine's labels (`io.llm-docker.ssh-port` / `ssh-user`);
the client options from `launch.ssh.client_options`: the install's key and the host key
pinned per install, strict checking, nothing from the user's own known_hosts.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from engine.client import Engine, run_with_engine
from launch import ssh as plan
from launch.errors import EXIT_FAILURE, EXIT_USAGE, LlmDockerError
from launch.project import locate_project
from launch.spec import LABEL_PREFIX as LABEL
from supervisor.atomic import replace_atomically
from supervisor.ssh_keys import FILE_MODE, client_folder


async def running_targets(docker: Engine, *, project: str | None = None, tool: str | None = None,
                          slot: int | None = None) -> list[plan.SshTarget]:
    """Running slots with SSH, newest first, filtered by project token / tool / slot."""
    labels = [LABEL + plan.LABEL_PORT, LABEL + "tool"]
    labels += [f"{LABEL}project={project}"] if project else []
    labels += [f"{LABEL}tool={tool}"] if tool else []
    labels += [f"{LABEL}slot={slot}"] if slot else []
    found = await docker.containers.list(filters={"label": labels, "status": ["running"]})
    found.sort(key=lambda c: c.created, reverse=True)
    targets = []
    for container in found:
        values = container.labels
        port, slot_text = values.get(LABEL + plan.LABEL_PORT, ""), values.get(LABEL + "slot", "")
        if not port.isdigit():
            continue
        targets.append(plan.SshTarget(project=values.get(LABEL + "project", "project"),
                                      tool=values.get(LABEL + "tool", "?"),
                                      slot=int(slot_text) if slot_text.isdigit() else None, port=int(port),
                                      user=values.get(LABEL + plan.LABEL_USER, plan.FALLBACK_LOGIN)))
    return targets


def ssh_into(words: list[str], state_home: Path) -> int:
    """Replace this process with `ssh` into the one running slot the words name."""
    try:
        request = plan.parse_ssh_words(words)
    except LlmDockerError as error:
        print(f"llm-docker ssh: {error}", file=sys.stderr)
        return error.exit_code
    if request.directory is not None and not request.directory.is_dir():
        print(f"llm-docker ssh: {request.directory}: not an existing directory", file=sys.stderr)
        return EXIT_USAGE
    if shutil.which("ssh") is None:
        print("llm-docker ssh: needs OpenSSH's `ssh` client on this host", file=sys.stderr)
        return EXIT_FAILURE
    try:  # the project as a launch identifies it, without planning one
        layout = locate_project(request.directory, environ=os.environ, cwd=Path.cwd(), user_home=Path.home()).identity
    except LlmDockerError as error:
        print(f"llm-docker ssh: {error}", file=sys.stderr)
        return error.exit_code
    chosen: list[plan.SshTarget] = []

    async def body(docker: Engine) -> int:
        found = await running_targets(docker, project=layout.token, tool=request.tool, slot=request.slot)
        what = " ".join(filter(None, (request.tool, f"slot {request.slot}" if request.slot else "")))
        if not found:
            print(f"llm-docker ssh: no running {what + ' ' if what else ''}slot with SSH in {layout.root} — "
                  "`llm-docker status` lists the running slots", file=sys.stderr)
            return EXIT_FAILURE
        if len({(t.tool, t.slot) for t in found}) > 1:
            listed = ", ".join(f"{t.tool} {t.slot or '-'}" for t in found)
            print(f"llm-docker ssh: several slots run in {layout.root} ({listed}) — name TOOL and SLOT",
                  file=sys.stderr)
            return EXIT_USAGE
        chosen.append(found[0])
        return 0

    code = run_with_engine(body, prefix="llm-docker ssh")
    if code != 0:
        return code
    argv = plan.ssh_argv(chosen[0], client_folder(state_home), request.ssh_args)
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


def ssh_config(state_home: Path, *, write: bool) -> int:
    """Print (or `--write` to `$LLM_DOCKER_HOME/ssh-client/config`) one Host block per running slot."""
    texts: list[str] = []

    async def body(docker: Engine) -> int:
        targets = sorted(await running_targets(docker), key=lambda t: t.alias)
        texts.append(plan.ssh_config_text(targets, client_folder(state_home)))
        return 0

    code = run_with_engine(body, prefix="llm-docker ssh-config")
    if code != 0:
        return code
    text = f"# llm-docker: the running slots (regenerate with `llm-docker ssh-config --write`)\n\n{texts[0]}"
    if not write:
        sys.stdout.write(text)
        return 0
    folder = client_folder(state_home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = folder / plan.SSH_CONFIG_FILE
    replace_atomically(target, text.encode(), FILE_MODE)
    print(f"wrote {target} — add `Include {target}` at the top of ~/.ssh/config to use it")
    return 0
