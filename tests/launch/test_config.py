"""Config files: one format, typed values, precedence, errors that name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch import config as config_module
from launch.config import Config, ConfigError, MisspeltSettingError, edit_distance, load_config, settings
from launch.envfile import EnvFileError, parse_env_text
from testbed.processes import run_admin, run_offline as run_cli

HOME = Path("/home/u")


def values(text: str) -> dict[str, str]:
    return {e.key: e.value for e in parse_env_text(text, origin="f", home=HOME)}


@pytest.mark.parametrize(("text", "expected"), [
    ("A=1", {"A": "1"}),
    ("export A=1", {"A": "1"}),
    ("  A = spaced  ", {"A": "spaced"}),
    ("A=\"double quoted\"", {"A": "double quoted"}),
    ("A='single # not a comment'", {"A": "single # not a comment"}),
    ("A=\"x\" # trailing comment", {"A": "x"}),
    ("A=value # inline comment", {"A": "value"}),
    ("A=value#not-a-comment", {"A": "value#not-a-comment"}),
    ("A=\"line1\\nline2\"", {"A": "line1\nline2"}),
    ("A='raw\\n'", {"A": "raw\\n"}),
    ("A=\"q\\\"q\"", {"A": "q\"q"}),
    ("A=~/Projects", {"A": "/home/u/Projects"}),
    ("A=\"~/Projects\"", {"A": "/home/u/Projects"}),
    ("A=~", {"A": "/home/u"}),
    ("A=~other/x", {"A": "~other/x"}),
    ("A=", {"A": ""}),
    ("# comment\n\nA=1\nA=2", {"A": "2"}),
    ("A=a=b", {"A": "a=b"}),
])
def test_env_file_values(text: str, expected: dict[str, str]) -> None:
    assert values(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("no equals sign", "f:1: expected KEY=VALUE, got 'no equals sign'"),
    ("\n\n1A=x", "f:3: expected KEY=VALUE"),
    ("A=\"unterminated", "f:1: A: missing closing \""),
    ("A='x' y", "f:1: A: unexpected text after the closing quote: 'y'"),
    ("BAD-KEY=1", "f:1: expected KEY=VALUE"),
])
def test_env_file_errors(text: str, message: str) -> None:
    with pytest.raises(EnvFileError, match=None) as caught:
        parse_env_text(text, origin="f", home=HOME)
    assert str(caught.value).startswith(message)


def write(home: Path, conf: str = "", env: str = "") -> None:
    home.mkdir(parents=True, exist_ok=True)
    if conf:
        (home / "llm-docker.conf").write_text(conf)
    if env:
        (home / ".env").write_text(env)
        (home / ".env").chmod(0o600)


def test_defaults_are_upstream_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "none", {}, HOME).config
    assert config == Config()
    assert config.docker_dir == "/root/Projects"
    assert config.workspace_dir is None
    assert config.sandbox_enabled is True and config.internet_access is True
    assert config.log_max_kilobytes == 1024
    assert config.builder_api_port == 6666 and config.builder_api_host == "host.docker.internal"
    # deliberate differences: SSH on (key-only, as the container's user), container port 2222
    assert config.llm_docker_ssh_host_port == 8884 and config.llm_docker_ssh_port == 2222
    assert config.llm_docker_ssh_enabled is True
    assert config.claude_code_max_output_tokens == 48000
    assert config.install_browsing is True and config.install_security is False
    assert config.install_tmux_vanilla is True and config.install_tmux_recon is False


def test_every_upstream_variable_exists() -> None:
    keys = {info.key for info in settings()}
    upstream = """ANTHROPIC_API_KEY OPENAI_API_KEY ZAI_API_KEY BUILDER_API_PASSWORD CODEMAN_PASSWORD
    LLM_DOCKER_SSH_AUTHORIZED_KEYS DOCKER_DIR WORKSPACE_DIR SANDBOX_ENABLED INTERNET_ACCESS NODE_ENV
    EXIT_TO_DOCKER LOG_MAX_KILOBYTES BUILDER_API_HOST BUILDER_API_PORT LLM_DOCKER_SSH_ENABLED
    LLM_DOCKER_SSH_PORT LLM_DOCKER_SSH_HOST_PORT IS_SANDBOX CLAUDE_CODE_BUBBLEWRAP
    CLAUDE_CODE_MAX_OUTPUT_TOKENS INSTALL_SECURITY INSTALL_RUBY INSTALL_CPP INSTALL_LLVM_CLANG INSTALL_NS
    INSTALL_MEDIA INSTALL_QUAKE INSTALL_BROWSING INSTALL_TMUX_VANILLA INSTALL_TMUX_TEAM INSTALL_TMUX_RECON
    INSTALL_TMUX_CODEMAN INSTALL_TMUX_CLAUDE LLM_DOCKER_IMAGE""".split()
    assert set(upstream) <= keys


def test_precedence_env_over_dotenv_over_conf(tmp_path: Path) -> None:
    write(tmp_path, conf="BUILDER_API_PORT=7000\nNODE_ENV=development\nLOG_MAX_KILOBYTES=5\n",
          env="BUILDER_API_PORT=7001\nLOG_MAX_KILOBYTES=6\n")
    loaded = load_config(tmp_path, {"LOG_MAX_KILOBYTES": "7"}, HOME)
    config = loaded.config
    assert (config.node_env, config.builder_api_port, config.log_max_kilobytes) == ("development", 7001, 7)
    assert config.sources["NODE_ENV"] == f"{tmp_path}/llm-docker.conf:2"
    assert config.sources["BUILDER_API_PORT"] == f"{tmp_path}/.env:1"
    assert config.sources["LOG_MAX_KILOBYTES"] == "environment"
    assert "DOCKER_DIR" not in config.sources


@pytest.mark.parametrize("word,expected", [
    ("true", True), ("TRUE", True), ("yes", True), ("On", True), ("1", True),
    ("false", False), ("no", False), ("OFF", False), ("0", False), ("\"false\"", False),
])
def test_booleans(tmp_path: Path, word: str, expected: bool) -> None:
    write(tmp_path, conf=f"SANDBOX_ENABLED={word}\n")
    assert load_config(tmp_path, {}, HOME).config.sandbox_enabled is expected


@pytest.mark.parametrize(("conf", "message"), [
    ("\nSANDBOX_ENABLED=maybe",
     "llm-docker.conf:2: SANDBOX_ENABLED: expected true/false/yes/no/on/off/1/0, got 'maybe'"),
    ("BUILDER_API_PORT=70000", "llm-docker.conf:1: BUILDER_API_PORT: must be between 1 and 65535, got 70000"),
    ("LOG_MAX_KILOBYTES=-1", "llm-docker.conf:1: LOG_MAX_KILOBYTES: expected a whole number, got '-1'"),
    ("NODE_ENV=staging", "llm-docker.conf:1: NODE_ENV: expected one of production, development, got 'staging'"),
    ("garbage line", "llm-docker.conf:1: expected KEY=VALUE"),
    ("FORWARD_ENV=TMUX", "llm-docker.conf:1: FORWARD_ENV: TMUX may never be forwarded to the container"),
])
def test_invalid_values_name_file_line_and_key(tmp_path: Path, conf: str, message: str) -> None:
    write(tmp_path, conf=conf)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, {}, HOME)
    assert message in str(caught.value)
    assert str(tmp_path) in str(caught.value)


def test_invalid_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment variable INTERNET_ACCESS: expected true/false"):
        load_config(tmp_path, {"INTERNET_ACCESS": "sometimes"}, HOME)


def test_unknown_key_outside_the_cage_is_a_warning_with_a_suggestion(tmp_path: Path) -> None:
    write(tmp_path, conf="INSTALL_RUBBY=true\nWHATEVER=1\nINSTALL_PHP=true\nlog_max_kilobytes=5\n")
    loaded = load_config(tmp_path, {}, HOME)
    assert loaded.config.install_ruby is False
    assert loaded.warnings == (
        f"{tmp_path}/llm-docker.conf:1: unknown key INSTALL_RUBBY (ignored) — did you mean INSTALL_RUBY?",
        f"{tmp_path}/llm-docker.conf:2: unknown key WHATEVER (ignored)",
        f"{tmp_path}/llm-docker.conf:3: unknown key INSTALL_PHP (ignored) — did you mean INSTALL_CPP?",
        f"{tmp_path}/llm-docker.conf:4: unknown key log_max_kilobytes (ignored) — did you mean LOG_MAX_KILOBYTES?",
    )


CAGE_NEAR_MISSES = [
    ("INTERNET_ACCES=false", "INTERNET_ACCESS", "network"),  # one letter missing
    ("LAN_ACESS=false", "LAN_ACCESS", "network"),
    ("internet_access=false", "INTERNET_ACCESS", "network"),  # case alone
    ("EGRES_ALLOW=@npm", "EGRESS_ALLOW", "network"),
    ("HOST_PORT=5432", "HOST_PORTS", "network"),
    ("NETWROK_MODE=gateway", "NETWORK_MODE", "network"),  # two neighbours swapped: one slip
    ("SANDBOX_ENABLE=false", "SANDBOX_ENABLED", "sandbox"),
    ("DANGERMODE=false", "DANGER_MODE", "danger"),
    ("WORKSPACEDIR=/srv/ai", "WORKSPACE_DIR", "mounts"),
    ("DOCKER_DIRR=/work", "DOCKER_DIR", "mounts"),
    ("MEMORY_LIMT=2g", "MEMORY_LIMIT", "limits"),
    ("PID_LIMIT=100", "PIDS_LIMIT", "limits"),
    ("LLM_DOCKER_SSH_ENABLE=false", "LLM_DOCKER_SSH_ENABLED", "ssh"),
]


@pytest.mark.parametrize(("line", "meant", "cage"), CAGE_NEAR_MISSES, ids=[line for line, _, _ in CAGE_NEAR_MISSES])
def test_a_near_miss_of_a_cage_setting_is_an_error(tmp_path: Path, line: str, meant: str, cage: str) -> None:
    """`INTERNET_ACCES=false` as a warning left the internet open while its author believed
    it closed: for the settings that define the cage a near-miss refuses the launch."""
    write(tmp_path, conf=f"NODE_ENV=development\n{line}\n")
    key = line.split("=")[0]
    with pytest.raises(MisspeltSettingError) as caught:
        load_config(tmp_path, {}, HOME)
    assert str(caught.value) == (f"{tmp_path}/llm-docker.conf:2: unknown key {key} — did you mean {meant}? Refused: "
                                 f"a misspelt {cage} setting is NOT in effect; rename it to {meant} or remove the line")
    assert (caught.value.key, caught.value.meant, caught.value.exit_code) == (key, meant, 2)
    assert isinstance(caught.value, ConfigError)


def test_a_near_miss_in_the_secrets_file_is_an_error_too(tmp_path: Path) -> None:
    write(tmp_path, env="ANTHROPIC_API_KEY=sk-1\nLLM_DOCKER_SSH_AUTHORIZED_KEY=ssh-ed25519 AAAA x\n")
    with pytest.raises(MisspeltSettingError, match=r"\.env:2: unknown key LLM_DOCKER_SSH_AUTHORIZED_KEY — did you "
                                                   r"mean LLM_DOCKER_SSH_AUTHORIZED_KEYS\?"):
        load_config(tmp_path, {}, HOME)


def test_a_key_far_from_every_cage_setting_stays_a_warning(tmp_path: Path) -> None:
    write(tmp_path, conf="WORKSPACE=/srv/ai\nINTERNET=false\n")  # 4 and 7 slips away
    assert [w.rsplit(": ", 1)[1] for w in load_config(tmp_path, {}, HOME).warnings] == [
        "unknown key WORKSPACE (ignored)", "unknown key INTERNET (ignored)"]


def test_the_cage_settings_are_the_documented_set() -> None:
    """The module's docstring names the set; this pins it, so a new setting is a decision."""
    cage = {info.key: info.cage for info in settings() if info.cage}
    assert cage == {
        "DOCKER_DIR": "mounts", "WORKSPACE_DIR": "mounts",
        "SANDBOX_ENABLED": "sandbox", "FORWARD_ENV": "sandbox", "AGENT_GIT_COMMIT": "sandbox",
        "LLM_DOCKER_IMAGE": "sandbox", "DANGER_MODE": "danger",
        "INTERNET_ACCESS": "network", "NETWORK_MODE": "network", "EGRESS_ALLOW": "network", "LAN_ACCESS": "network",
        "HOST_PORTS": "network", "RESOLVER_HOSTS_FILE": "network", "GATEWAY_IMAGE": "network",
        "BUILDER_API_AUTOSTART": "network",
        "MEMORY_LIMIT": "limits", "CPU_LIMIT": "limits", "PIDS_LIMIT": "limits",
        "LLM_DOCKER_SSH_ENABLED": "ssh", "LLM_DOCKER_SSH_AUTHORIZED_KEYS": "ssh",
    }
    documented = config_module.__doc__ or ""
    assert all(f"`{key}`" in documented for key in cage)


@pytest.mark.parametrize(("first", "second", "distance"), [
    ("", "", 0), ("", "AB", 2), ("INTERNET_ACCES", "INTERNET_ACCESS", 1), ("NETWROK", "NETWORK", 1),
    ("kitten", "sitting", 3), ("CA", "ABC", 3), ("abc", "cba", 2), ("LAN_ACCESS", "LAN_ACCESS", 0),
])
def test_edit_distance(first: str, second: str, distance: int) -> None:
    assert edit_distance(first, second) == distance == edit_distance(second, first)


def test_cld_refuses_a_cage_near_miss_before_it_touches_the_engine(tmp_path: Path) -> None:
    """A real `cld`: exit 2 and the one line, with no engine reachable at all — had it got as
    far as the engine it would have said so with 125; nothing is written to the state home."""
    home = tmp_path / "home"
    project = home / "app"
    project.mkdir(parents=True)
    write(home / ".llm-docker", conf="# mine\nINTERNET_ACCES=false\n")
    before = sorted(path.name for path in (home / ".llm-docker").iterdir())
    result = run_cli(["--", "-p", "hello"], cwd=project, home=home)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"cld: {home}/.llm-docker/llm-docker.conf:2: unknown key INTERNET_ACCES — did you mean "
                             "INTERNET_ACCESS? Refused: a misspelt network setting is NOT in effect; rename it to "
                             "INTERNET_ACCESS or remove the line\n")
    assert sorted(path.name for path in (home / ".llm-docker").iterdir()) == before


def test_provider_keys_in_files_are_kept_for_the_container(tmp_path: Path) -> None:
    write(tmp_path, conf="ANTHROPIC_BASE_URL=http://127.0.0.1:9\nCLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n")
    loaded = load_config(tmp_path, {}, HOME)
    assert loaded.warnings == ()
    assert loaded.config.extra == {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
                                   "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def test_world_readable_secrets_file_warns(tmp_path: Path) -> None:
    write(tmp_path, env="ANTHROPIC_API_KEY=sk-x\n")
    (tmp_path / ".env").chmod(0o644)
    assert any("chmod 600" in w for w in load_config(tmp_path, {}, HOME).warnings)


def test_workspace_tilde_expansion(tmp_path: Path) -> None:
    write(tmp_path, conf="WORKSPACE_DIR=~/Projects/ai\n")
    assert load_config(tmp_path, {}, HOME).config.workspace_dir == Path("/home/u/Projects/ai")




def test_config_command_masks_secrets_and_shows_sources(tmp_path: Path) -> None:
    write(tmp_path, conf="NODE_ENV=development\n",
          env="ANTHROPIC_API_KEY=sk-ant-SECRET123\nBUILDER_API_PASSWORD=hunter2\nOPENAI_ORG_TOKEN_KEY=tok-SECRET\n")
    result = run_admin(tmp_path, "config")
    assert result.returncode == 0, result.stderr
    assert "SECRET" not in result.stdout and "hunter2" not in result.stdout
    lines = {line.split("=", 1)[0]: line for line in result.stdout.splitlines()}
    assert "(set, masked)" in lines["ANTHROPIC_API_KEY"] and f"{tmp_path}/.env:1" in lines["ANTHROPIC_API_KEY"]
    assert lines["NODE_ENV"].startswith("NODE_ENV=development") and "llm-docker.conf:1" in lines["NODE_ENV"]
    assert lines["DOCKER_DIR"].endswith("# default")
    assert "llm-docker-claude:latest" in lines["LLM_DOCKER_IMAGE"]


def test_config_command_json_and_errors(tmp_path: Path) -> None:
    import json

    result = run_admin(tmp_path, "config", "--json")
    document = json.loads(result.stdout)
    assert {"key": "SANDBOX_ENABLED", "value": "true", "source": "default"} in document["settings"]
    write(tmp_path, conf="SANDBOX_ENABLED=perhaps\n")
    result = run_admin(tmp_path, "config")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "SANDBOX_ENABLED" in result.stderr


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [info.key for info in settings() if f"| `{info.key}` |" not in readme]
    assert missing == []
