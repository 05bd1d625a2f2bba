"""builder-api: job tables, request validation (the locked 400 shapes), command pins, and
the TOML composition of one project's view (docs/upstream.md#builder-api-config)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from builder_api.config import ConfigError, load
from builder_api.jobs import (
    CommandRefused,
    HubJob,
    JobConfigError,
    LeafJob,
    ValidationFailed,
    parse_job,
    resolve_command,
    validate_and_substitute,
    value_preview,
    verify_command_hash,
)
from launch import errors
from testbed.processes import run

TEST_JOB = {
    "command": "echo", "args": ["{word}", "--flag", "{opt}", "{{container}}"],
    "placeholders": {"word": {"regex": "[a-z]+", "max_len": 5},
                     "opt": {"regex": "x|y", "required": False}},
}


def leaf(table: dict | None = None) -> LeafJob:
    job = parse_job("echo", table or TEST_JOB, [])
    assert isinstance(job, LeafJob)
    return job


def failure(params: object) -> dict:
    with pytest.raises(ValidationFailed) as caught:
        validate_and_substitute(leaf(), params, "/job/echo")
    return caught.value.body()


def test_substitution_drops_omitted_optionals_and_keeps_reserved_tokens() -> None:
    assert validate_and_substitute(leaf(), {"word": "abc"}, "/job/echo") == (
        ["abc", "--flag", "{{container}}"], {"word": "abc"})
    assert validate_and_substitute(leaf(), {"opt": "y", "word": "ab"}, "/job/echo")[0] == [
        "ab", "--flag", "y", "{{container}}"]


@pytest.mark.parametrize(("params", "expected"), [
    ([1], {"field": "params", "reason": "wrong_type", "expected": "object", "value_preview": "[1]"}),
    ({"nope": "x"}, {"field": "nope", "reason": "unknown_param", "expected": ["opt", "word"],
                     "value_preview": "'x'"}),
    ({}, {"field": "word", "reason": "missing_required"}),
    ({"word": 5}, {"field": "word", "reason": "wrong_type", "expected": "string", "value_preview": "5"}),
    ({"word": None}, {"field": "word", "reason": "wrong_type", "expected": "string"}),
    ({"word": "abcdef"}, {"field": "word", "reason": "max_len_exceeded", "expected": 5,
                          "value_preview": "'abcdef'"}),
    ({"word": "ABC"}, {"field": "word", "reason": "regex_mismatch", "expected": "[a-z]+",
                       "value_preview": "'ABC'"}),
])
def test_validation_failures_have_the_locked_shape(params: object, expected: dict) -> None:
    assert failure(params) == {"error": "validation_failed", "endpoint": "/job/echo", **expected}


def test_value_preview_is_cut_at_64() -> None:
    assert value_preview("a" * 10) == "'aaaaaaaaaa'"
    long = value_preview("b" * 100)
    assert len(long) == 64 and long.endswith("...")


@pytest.mark.parametrize(("table", "message"), [
    ({"command": ""}, "command must be a non-empty string"),
    ({"command": "x", "args": ["--filter={t}"], "placeholders": {"t": {"regex": "a"}}}, "embeds a placeholder"),
    ({"command": "x", "args": ["{t}"]}, "undeclared placeholder"),
    ({"command": "x", "placeholders": {"t": {"regex": "a"}}}, "aren't referenced"),
    ({"command": "x", "args": ["{{host}}"]}, "unknown reserved token"),
    ({"command": "x", "cwd": "../up"}, "cwd must be relative"),
    ({"command": "x", "timeout_s": 0}, "timeout_s must be >= 1"),
    ({"command": "x", "args": ["{t}"], "placeholders": {"t": {"regex": "("}}}, "does not compile"),
    ({"command": "x", "command_hash": {"path": "a", "sha256": "abc"}}, "64 hex digits"),
    ({"command": "x", "mutates_filesystem": "yes"}, "must be true or false"),
    ({"platforms": {"web": {"command": "x"}}, "command": "y"}, "is a hub"),
])
def test_bad_job_tables(table: dict, message: str) -> None:
    with pytest.raises(JobConfigError, match=message):
        parse_job("job", table, [])


def test_unknown_fields_warn_and_shell_braces_are_fine() -> None:
    warnings: list[str] = []
    job = parse_job("awk", {"command": "awk", "args": ["{print $1}", "{}"], "sha256": "old"}, warnings)
    assert isinstance(job, LeafJob) and job.args == ("{print $1}", "{}")
    assert len(warnings) == 1 and "sha256" in warnings[0] and "unknown field" in warnings[0]


def test_hubs_parse_their_leaves() -> None:
    hub = parse_job("test", {"description": "tests", "platforms": {"web": {"command": "npm"},
                                                                   "api": {"command": "pytest"}}}, [])
    assert isinstance(hub, HubJob) and sorted(hub.platforms) == ["api", "web"]
    assert hub.platforms["api"].name == "test@api"


def test_command_resolution_and_pins(tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "build.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho hi\n")
    job = parse_job("build", {"command": "scripts/build.sh", "command_hash": {
        "path": "scripts/build.sh", "sha256": "sha256:" + hashlib.sha256(script.read_bytes()).hexdigest()}}, [])
    assert isinstance(job, LeafJob)
    resolved = resolve_command(job, tmp_path)
    assert resolved == script
    verify_command_hash(job, tmp_path, resolved)
    script.write_text("#!/bin/sh\nrm -rf /\n")
    with pytest.raises(CommandRefused) as caught:
        verify_command_hash(job, tmp_path, resolved)
    assert caught.value.body["error"] == "command_hash_mismatch" and caught.value.body["job"] == "build"
    escape = parse_job("x", {"command": "../outside.sh"}, [])
    with pytest.raises(CommandRefused, match="command_not_found"):
        resolve_command(escape, tmp_path)
    assert resolve_command(parse_job("sh", {"command": "sh"}, []), tmp_path).name == "sh"


# -- the TOML composition --------------------------------------------------------------------

def write_config(folder: Path, base: str, shards: dict[str, str] | None = None) -> Path:
    path = folder / "api" / "builder-api.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(base)
    for name, text in (shards or {}).items():
        (folder / "api" / "projects").mkdir(exist_ok=True)
        shard = folder / "api" / "projects" / f"{name}.toml"
        shard.write_text(text)
        shard.chmod(0o644)
    return path


def test_jobs_compose_global_language_project(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    path = write_config(tmp_path, """
[jobs.lint]
command = "echo"
[jobs.test]
command = "echo"
args = ["global"]
[language.python.jobs.test]
command = "echo"
args = ["python"]
[verb.deploy]
platforms = ["web", "api"]
required_param = "platform"
""", {"app": f"""
[project.app]
root = "{tmp_path / 'app'}"
port = 6701
languages = ["python", "unknown"]
password = "${{TEST_BUILDER_PASSWORD}}"
[project.app.jobs.deploy.platforms.web]
command = "echo"
[project.app.logs]
app = "logs/app.log"
"""})
    config = load("app", path, {"TEST_BUILDER_PASSWORD": "s3cret"})
    assert list(config.jobs) == ["lint", "test", "deploy"]
    assert config.jobs["test"].args == ("python",)
    assert config.password == "s3cret" and config.auth_reads is True and config.bind == "127.0.0.1"
    assert config.verbs["deploy"].platforms == ("web", "api")
    assert config.log_aliases["app"] == tmp_path / "app" / "logs" / "app.log"
    assert config.shard_paths == (tmp_path / "api" / "projects" / "app.toml",)
    with pytest.raises(ConfigError, match=r"TEST_BUILDER_PASSWORD set neither in the environment"):
        load("app", path, {})  # an unset variable is refused, never an open API


@pytest.mark.parametrize(("block", "message"), [
    ('root = "/nonexistent-builder-root"\nport = 1', "is not an existing directory"),
    ('root = "{root}"', "port missing or invalid"),
    ('root = "{root}"\nport = 1\nbind = "0.0.0.0"', "a password is required"),
    ('root = "{root}"\nport = 1\n[project.app.logs]\nx = "../../etc/passwd"', "escapes project root"),
    ('root = "{root}"\nport = 1\n[project.app.runtime]\nenabled = true', "needs a start_command"),
    ('root = "{root}"\nport = 1\n[project.app.jobs.bad]\ncommand = ""', "command must be a non-empty"),
])
def test_bad_configs_are_one_line_errors(tmp_path: Path, block: str, message: str) -> None:
    (tmp_path / "app").mkdir()
    path = write_config(tmp_path, "[project.app]\n" + block.format(root=tmp_path / "app") + "\n")
    with pytest.raises(ConfigError, match=message):
        load("app", path, {})


def test_missing_project_duplicates_and_shard_rules(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    with pytest.raises(ConfigError, match="host config not found"):
        load("app", tmp_path / "missing.toml", {})
    path = write_config(tmp_path, "[jobs.a]\ncommand='x'\n[jobs.a]\ncommand='y'\n")
    with pytest.raises(ConfigError, match=r"duplicate table header\(s\): \[jobs.a\] on lines \[1, 3\]"):
        load("app", path, {})
    path = write_config(tmp_path, "", {"app": f'[project.other]\nroot = "{tmp_path}"\nport = 1\n'})
    with pytest.raises(ConfigError, match=r"must contain exactly \[project.app\]"):
        load("app", path, {})
    path = write_config(tmp_path, "", {"app": f'[project.app]\nroot = "{tmp_path}"\nport = 1\n'})
    (tmp_path / "api" / "projects" / "app.toml").chmod(0o666)
    with pytest.raises(ConfigError, match="world-writable"):
        load("app", path, {})
    (tmp_path / "api" / "projects" / "app.toml").chmod(0o644)
    with pytest.raises(ConfigError, match=r"Known projects: \['app'\]"):
        load("nope", path, {})


# -- typed values: a wrong type is one line naming the key (exit 2 from `llm-docker api`) ------

WRONG_TYPES = [
    ("[project.app.runtime]\nstop_timeout_s = \"x\"", "[project.app.runtime].stop_timeout_s must be a number, got 'x'"),
    ("[project.app.runtime]\nstop_timeout_s = \"5\"", "[project.app.runtime].stop_timeout_s must be a number, got '5'"),
    ("[project.app.runtime]\nenabled = \"false\"\nstart_command = \"true\"",
     "[project.app.runtime].enabled must be true or false (a TOML boolean, unquoted), got 'false'"),
    ("auth_reads = \"false\"",
     "[project.app].auth_reads must be true or false (a TOML boolean, unquoted), got 'false'"),
    ("[project.app.security]\nmax_body_bytes = \"big\"",
     "[project.app.security].max_body_bytes must be a number, got 'big'"),
    ("[project.app.security]\nmax_body_bytes = true",
     "[project.app.security].max_body_bytes must be a number, got True"),
    ("[project.app.build]\ntimeout_s = 1.5", "[project.app.build].timeout_s must be a whole number, got 1.5"),
    ("[project.app.build]\ndedupe_window_s = \"5\"", "[project.app.build].dedupe_window_s must be a number, got '5'"),
    ("[project.app.events]\nmax_bytes = [1]", "[project.app.events].max_bytes must be a number, got [1]"),
    ("bind = 127", "[project.app].bind must be a string, got 127"),
    ("runtime = 3", "[project.app.runtime] must be a table, got 3"),
    ("[project.app.runtime]\nstop_signal = 15", "[project.app.runtime].stop_signal must be a string, got 15"),
]


@pytest.mark.parametrize(("block", "message"), WRONG_TYPES)
def test_a_value_of_the_wrong_type_is_a_config_error_naming_its_key(tmp_path: Path, block: str, message: str) -> None:
    (tmp_path / "app").mkdir()
    path = write_config(tmp_path, f'[project.app]\nroot = "{tmp_path / "app"}"\nport = 1\npassword = "pw"\n{block}\n')
    with pytest.raises(ConfigError) as error:
        load("app", path, {})
    assert str(error.value) == message
    assert error.value.exit_code == 2 and isinstance(error.value, errors.ConfigError)


def test_llm_docker_api_exits_2_with_one_line_on_a_wrong_type(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    path = write_config(tmp_path, f'[project.app]\nroot = "{tmp_path / "app"}"\nport = 1\npassword = "pw"\n'
                                  '[project.app.runtime]\nenabled = "false"\n')
    result = run("llm-docker", "api", "--project", "app", "--config", str(path), cwd=tmp_path, home=tmp_path)
    assert result.returncode == 2
    assert result.stderr == ("[builder-api] CONFIG ERROR: [project.app.runtime].enabled must be true or false "
                             "(a TOML boolean, unquoted), got 'false'\n")


def test_typed_values_of_the_right_type_load(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    path = write_config(tmp_path, f'[project.app]\nroot = "{tmp_path / "app"}"\nport = 1\npassword = "pw"\n'
                                  'auth_reads = false\n[project.app.runtime]\nenabled = true\nstart_command = "true"\n'
                                  'stop_timeout_s = 2.5\nstop_signal = "INT"\n'
                                  '[project.app.build]\ndedupe_window_s = 0\n')
    config = load("app", path, {})
    assert (config.auth_reads, config.runtime.enabled, config.runtime.stop_timeout_s) == (False, True, 2.5)
    assert config.runtime.stop_signal == 2 and config.build.dedupe_window_s == 0.0
