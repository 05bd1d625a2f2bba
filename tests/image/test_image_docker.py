"""The real agent image, built offline, with the real Claude Code and OpenCode inside.

Everything goes through the product's own commands (`cld`, `ocd`, `llm-docker`); the
model behind the agents is `testbed.stub_model` on the host's loopback, which a cage reaches
only as `host.docker.internal` on a port its network policy grants (`HOST_PORTS`).
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiodocker
import pytest

from launch.identity import project_state_home
from launch.tools import Tool
from testbed.agent_images import build_agent_images, cage_url, model_access, stub_model, write_test_config
from testbed.isolation import suite_image_tag
from testbed.processes import run, slot_session

pytestmark = [pytest.mark.docker, pytest.mark.image]

#: The tests' own agent images (LLM_DOCKER_IMAGE_PREFIX=llm-docker-test), never the user's.
CLAUDE_IMAGE = suite_image_tag(Tool.CLAUDE)
OPENCODE_IMAGE = suite_image_tag(Tool.OPENCODE)
CLAUDE_VERSION = re.compile(r"^\d+\.\d+\.\d+ \(Claude Code\)$", re.MULTILINE)


@pytest.fixture(scope="session")
def agent_images(docker_engine_ready: None, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("image-build")
    result = build_agent_images(home)
    if result.returncode != 0:
        pytest.fail(f"building the agent images failed:\n{result.stderr[-4000:]}", pytrace=False)


@pytest.fixture
def home(user_home: Path, agent_images: None) -> Path:
    write_test_config(user_home)
    return user_home


@pytest.fixture
def model(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "stub-model.jsonl"
    with stub_model(log) as url:
        yield url, log


def agent_env(url: str) -> dict[str, str]:
    return {**model_access(url), "ANTHROPIC_API_KEY": "sk-stub-key",
            "FORWARD_ENV": "DISABLE_TELEMETRY,DISABLE_ERROR_REPORTING", "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1"}


def requests_of(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def docker_run(image: str, *command: str, entrypoint: str = "sh", stdin: str = "", **env: str) -> str:
    arguments = ["docker", "run", "--rm", "-i", "--entrypoint", entrypoint]
    for key, value in env.items():
        arguments += ["-e", f"{key}={value}"]
    result = subprocess.run([*arguments, image, *command], input=stdin, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_first_launch_builds_the_image_and_the_second_reuses_it(project: Path, home: Path) -> None:
    # Untag the image but keep its layers (noprune): the launch must notice and build it.
    subprocess.run(["docker", "image", "rm", "--no-prune", CLAUDE_IMAGE], check=True, capture_output=True)
    first = run("cld", "--", "--version", cwd=project, home=home, timeout=1800)
    assert first.returncode == 0, first.stderr
    assert CLAUDE_VERSION.search(first.stdout), first.stdout
    assert f"image {CLAUDE_IMAGE} not found — building it now" in first.stderr
    assert re.search(rf"built {re.escape(CLAUDE_IMAGE)} \([\d.]+ [GM]B\) in \S+; \d+/\d+ steps from cache",
                     first.stderr)
    second = run("cld", "--", "--version", cwd=project, home=home)
    assert second.returncode == 0, second.stderr
    assert CLAUDE_VERSION.search(second.stdout)
    assert "build" not in second.stderr and "stale" not in second.stderr, second.stderr


def test_ocd_prints_opencode_version(project: Path, home: Path) -> None:
    result = run("ocd", "--", "--version", cwd=project, home=home)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+", result.stdout.strip()), result.stdout


def test_claude_slot_answers_saves_and_resumes(project: Path, home: Path, model: tuple[str, Path]) -> None:
    url, log = model
    first = run("cld", "--slot", "1", "--", "-p", "ping", cwd=project, home=home, **agent_env(url))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "STUB-ANSWER: ping"
    # The managed settings are valid: Claude Code prints no complaint about any rule.
    assert "Permission deny rule" not in first.stderr and "managed" not in first.stderr, first.stderr
    session = slot_session(home, "claude", project, 1)
    sessions = project_state_home(home / ".llm-docker", project) / "claude/.claude/projects/-root-Projects-app"
    assert session is not None and (sessions / f"{session}.jsonl").is_file()
    assert [p.stem for p in sessions.glob("*.jsonl")] == [session]

    again = run("cld", "-c", "--slot", "1", "--", "-p", "again", cwd=project, home=home, **agent_env(url))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "STUB-ANSWER: again"
    assert slot_session(home, "claude", project, 1) == session
    transcript = (sessions / f"{session}.jsonl").read_text()
    assert "ping" in transcript and "again" in transcript
    assert [p.stem for p in sessions.glob("*.jsonl")] == [session]
    assert [r["user"] for r in requests_of(log) if r.get("path") == "/v1/messages"] == ["ping", "again"]


def write_opencode_config(home: Path, url: str) -> Path:
    """The user's shared OpenCode config: read-only in every project's agent home."""
    config = home / ".llm-docker/shared/opencode/opencode.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({
        "$schema": "https://opencode.ai/config.json",
        "provider": {"stub": {"npm": "@ai-sdk/openai-compatible", "name": "Stub",
                              "options": {"baseURL": f"{cage_url(url)}/v1", "apiKey": "stub"},
                              "models": {"stub-model": {"name": "Stub"}}}},
        "model": "stub/stub-model", "autoupdate": False, "share": "disabled",
    }, indent=2))
    return config


def test_opencode_slot_answers_saves_and_resumes(project: Path, home: Path, model: tuple[str, Path]) -> None:
    url, log = model
    config = write_opencode_config(home, url)
    before = config.read_bytes()
    first = run("ocd", "--slot", "1", "--", "run", "ping", cwd=project, home=home, **model_access(url))
    assert first.returncode == 0, first.stderr
    assert "STUB-ANSWER: ping" in first.stdout
    database = project_state_home(home / ".llm-docker", project) / "opencode/.local/share/opencode/opencode.db"
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT id FROM session WHERE directory='/root/Projects/app'").fetchall()
    assert len(rows) == 1
    assert slot_session(home, "opencode", project, 1) == rows[0][0]

    again = run("ocd", "-c", "--slot", "1", "--", "run", "again", cwd=project, home=home, **model_access(url))
    assert again.returncode == 0, again.stderr
    assert "STUB-ANSWER: again" in again.stdout
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM session").fetchone()[0] == 1
    assert slot_session(home, "opencode", project, 1) == rows[0][0]
    assert config.read_bytes() == before, "the user's OpenCode config must never be rewritten"
    assert "again" in [r.get("user") for r in requests_of(log)]


def test_opencode_template_is_seeded_only_when_the_user_has_none(project: Path, home: Path) -> None:
    config = project_state_home(home / ".llm-docker", project) / "opencode/.config/opencode/opencode.json"
    assert run("ocd", "--", "--version", cwd=project, home=home).returncode == 0
    seeded = json.loads(config.read_text())
    assert seeded["autoupdate"] is False and seeded["permission"]["external_directory"] == "deny"
    config.write_text('{"model": "mine/edited"}\n')
    assert run("ocd", "--", "--version", cwd=project, home=home).returncode == 0
    assert config.read_text() == '{"model": "mine/edited"}\n'


ATTACKS = {
    "append": "echo '{}' >> /etc/claude-code/managed-settings.json",
    "replace": "echo '{}' > /tmp/m && mv /tmp/m /etc/claude-code/managed-settings.json",
    "remove": "rm -f /etc/claude-code/managed-settings.json",
    "chmod": "chmod 666 /etc/claude-code/managed-settings.json",
    "new-file": "echo '{}' > /etc/claude-code/managed-settings.d.json",
    "dir-chmod": "chmod 777 /etc/claude-code",
    "entrypoint": "echo 'exit 0' >> /usr/local/bin/llm-docker-entrypoint",
    "templates": "echo x > /opt/llm-docker/templates/opencode.json",
}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("user", ["0:0", "1000:1000"])
@pytest.mark.anyio
async def test_the_agent_cannot_modify_the_managed_settings(project: Path, home: Path, user: str) -> None:
    # The launch's own create body, run here without its gateway (host networking): this test
    # is about the file system, the network walls are tests/test_network_docker.py's.
    dry = run("cld", "--dry-run", cwd=project, home=home, NETWORK_MODE="host")
    assert dry.returncode == 0, dry.stderr
    body = json.loads(dry.stdout)["create"]
    for mount in body["HostConfig"]["Mounts"]:  # a dry run creates no folders; a launch would
        Path(mount["Source"]).mkdir(parents=True, exist_ok=True)
    script = "; ".join(f"if ({command}) 2>/dev/null; then echo BROKEN:{name}; else echo HELD:{name}; fi"
                       for name, command in ATTACKS.items())
    script += "; sha256sum /etc/claude-code/managed-settings.json"
    body.update({"Cmd": ["sh", "-c", script], "User": user, "Tty": False, "OpenStdin": False,
                 "AttachStdin": False, "StdinOnce": False})
    docker = aiodocker.Docker()
    try:
        container = await docker.containers.create(body)
        try:
            await container.start()
            await container.wait(timeout=60)
            output = "".join(await container.log(stdout=True, stderr=True))
        finally:
            await container.delete(force=True)
    finally:
        await docker.close()
    assert [line for line in output.splitlines() if line.startswith("HELD:")] == [f"HELD:{n}" for n in ATTACKS], output
    baked = Path(__file__).parents[2] / "image/files/rootfs/etc/claude-code/managed-settings.json"
    assert hashlib.sha256(baked.read_bytes()).hexdigest() in output


def test_session_hook_appends_the_session_to_the_events_file() -> None:
    output = docker_run(CLAUDE_IMAGE, "-c", "llm-docker-session-event claude; llm-docker-session-event claude "
                        "</dev/null; echo garbage | llm-docker-session-event claude; echo rc=$?; cat /tmp/events",
                        stdin='{"session_id":"abc-123","source":"startup","cwd":"/x"}',
                        LLM_DOCKER_EVENTS="/tmp/events")
    assert output.splitlines() == ["rc=0", '{"tool":"claude","session_id":"abc-123","source":"startup"}']
    settings = json.loads(docker_run(CLAUDE_IMAGE, "/etc/claude-code/managed-settings.json", entrypoint="cat"))
    hook = settings["hooks"]["SessionStart"][0]["hooks"][0]["command"]
    assert hook == "/usr/local/bin/llm-docker-session-event claude"


def test_exit_to_docker_drops_to_a_shell_after_the_tool(project: Path, home: Path) -> None:
    result = run("cld", "--", "--version", cwd=project, home=home, EXIT_TO_DOCKER="true")
    assert result.returncode == 0, result.stderr
    assert CLAUDE_VERSION.search(result.stdout)
    assert "claude exited (code 0). Dropped to a container shell" in result.stderr


def test_the_image_trusts_the_hosts_extra_ca_certificates() -> None:
    host_certificates = sorted(Path("/usr/local/share/ca-certificates").rglob("*.crt"))
    assert host_certificates, "this test needs the host's extra CA certificates (EXTRA_CA_CERTS=auto)"
    bundle = docker_run(CLAUDE_IMAGE, "-c", "cat $NODE_EXTRA_CA_CERTS")
    for certificate in host_certificates:
        body = "".join(line for line in certificate.read_text().splitlines() if not line.startswith("-----"))
        assert body in bundle.replace("\n", ""), f"{certificate} is not in the image's CA bundle"


def test_the_image_has_the_essentials_and_records_versions() -> None:
    output = docker_run(CLAUDE_IMAGE, "-c", "for t in zsh git rg jq sqlite3 tmux python3 node npm fzf micro "
                        "batcat uv pnpm claude; do command -v $t >/dev/null || echo MISSING:$t; done; "
                        "node -p 'process.versions.node.split(\".\")[0]'; cat /opt/llm-docker/versions.txt")
    assert "MISSING" not in output, output
    assert int(output.splitlines()[0]) >= 18
    assert re.search(r"^claude \d+\.\d+\.\d+ \(Claude Code\)$", output, re.MULTILINE)
    assert re.search(r"^apt zsh=\S+$", output, re.MULTILINE)
    assert "opencode" not in docker_run(CLAUDE_IMAGE, "-c", "command -v opencode || true")


def test_a_flipped_install_flag_makes_the_image_stale_and_build_redoes_only_that_group(
        project: Path, home: Path) -> None:
    stale = run("cld", "--", "--version", cwd=project, home=home, INSTALL_TMUX_RECON="true")
    assert stale.returncode == 0, stale.stderr
    assert (f"image {CLAUDE_IMAGE} is stale: INSTALL_TMUX_RECON false → true — run `cld --build`"
            in stale.stderr), stale.stderr
    try:
        rebuilt = run("cld", "--build", "--", "--version", cwd=project, home=home, timeout=1800,
                      INSTALL_TMUX_RECON="true")
        assert rebuilt.returncode == 0, rebuilt.stderr
        first_rebuilt = int(re.search(r"\[(\d+)/\d+\] RUN \S+group.sh tmux_recon", rebuilt.stderr).group(1))
        cached, total = map(int, re.search(r"(\d+)/(\d+) steps from cache", rebuilt.stderr).groups())
        # Steps 1-2 (ARG before FROM, FROM) never say "Using cache"; 3 .. first_rebuilt-1 all do.
        assert cached == first_rebuilt - 3, rebuilt.stderr
        assert "INSTALL_TMUX_RECON: not installed — gavraz/recon" in rebuilt.stderr
        fresh = run("cld", "--", "--version", cwd=project, home=home, INSTALL_TMUX_RECON="true")
        assert "stale" not in fresh.stderr and "build" not in fresh.stderr, fresh.stderr
    finally:
        restored = run("cld", "--build", "--", "--version", cwd=project, home=home, timeout=1800)
        assert restored.returncode == 0, restored.stderr
    status = json.loads(run("llm-docker", "image", "status", "--json", cwd=project, home=home).stdout)
    claude = next(row for row in status["images"] if row["tool"] == "claude")
    assert claude["present"] and claude["stale"] == []


def test_bad_build_settings_are_one_line_errors(project: Path, home: Path) -> None:
    for setting, expected in (("EXTRA_CA_CERTS=/nonexistent/ca.crt", "EXTRA_CA_CERTS: /nonexistent/ca.crt: no such"),
                              ("CLAUDE_CODE_VERSION=1.0;rm -rf /", "CLAUDE_CODE_VERSION: '1.0;rm -rf /' is not")):
        key, value = setting.split("=", 1)
        for program, args in (("cld", ("--", "--version")), ("llm-docker", ("image", "build", "--tool", "claude"))):
            result = run(program, *args, cwd=project, home=home, **{key: value})
            assert result.returncode == 2, result.stderr
            assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_the_banner_names_the_tool_and_image_on_a_terminal() -> None:
    result = subprocess.run(["docker", "run", "--rm", "-t", "-e", "LLM_DOCKER_TOOL=claude", "-e",
                             f"LLM_DOCKER_IMAGE={CLAUDE_IMAGE}", CLAUDE_IMAGE, "true"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"llm-docker\S* · claude · image {re.escape(CLAUDE_IMAGE)} · \d+\.\d+\.\d+ \(Claude Code\)",
                     result.stdout), result.stdout
    piped = subprocess.run(["docker", "run", "--rm", CLAUDE_IMAGE, "true"], capture_output=True, text=True,
                           timeout=60)
    assert piped.stdout == "" and piped.stderr == "", "no banner when the output is not a terminal"


def test_opencode_plugin_reports_its_session(model: tuple[str, Path]) -> None:
    url, _ = model
    config = json.dumps({"provider": {"stub": {"npm": "@ai-sdk/openai-compatible", "name": "Stub",
                                               "options": {"baseURL": f"{url}/v1", "apiKey": "stub"},
                                               "models": {"stub-model": {"name": "Stub"}}}},
                         "model": "stub/stub-model", "autoupdate": False, "share": "disabled"})
    script = ("mkdir -p $HOME/.config/opencode /tmp/p && cd /tmp/p && cat > $HOME/.config/opencode/opencode.json "
              "&& opencode run hello >/dev/null && sqlite3 $HOME/.local/share/opencode/opencode.db "
              "'select id from session' && cat $LLM_DOCKER_EVENTS")
    result = subprocess.run(["docker", "run", "--rm", "-i", "--network", "host", "--user", "1000:1000",
                             "-e", "HOME=/tmp/home", "-e", "LLM_DOCKER_EVENTS=/tmp/events", "--entrypoint", "sh",
                             OPENCODE_IMAGE, "-c", script], input=config, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    session, event = result.stdout.splitlines()
    assert json.loads(event) == {"tool": "opencode", "session_id": session, "source": "created"}


def test_update_on_start_refreshes_the_agent_layer_once_a_day(project: Path, home: Path) -> None:
    first = run("cld", "--", "--version", cwd=project, home=home, timeout=900, UPDATE_ON_START="true")
    assert first.returncode == 0, first.stderr
    assert f"UPDATE_ON_START: refreshing the agent in {CLAUDE_IMAGE}" in first.stderr
    agent_step = re.search(r"\[(\d+)/\d+\] RUN /opt/llm-docker/install/agent.sh", first.stderr)
    cached = int(re.search(r"(\d+)/\d+ steps from cache", first.stderr).group(1))
    assert agent_step and cached == int(agent_step.group(1)) - 3, first.stderr
    again = run("cld", "--", "--version", cwd=project, home=home, UPDATE_ON_START="true")
    assert again.returncode == 0 and "refreshing" not in again.stderr and "stale" not in again.stderr
    without = run("cld", "--", "--version", cwd=project, home=home)
    assert without.returncode == 0 and "build" not in without.stderr and "stale" not in without.stderr
