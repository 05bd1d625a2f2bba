"""MEMORY_LIMIT / CPU_LIMIT / PIDS_LIMIT: validated settings, HostConfig fields (no Docker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from launch.config import Config, ConfigError, load_config
from launch.limits import AUTO_MEMORY_CAP
from launch.tools import Tool
from testbed.plans import create_body as spec
from testbed.processes import run_admin, run_offline as run_cli

GIB = 1024**3


def test_defaults_limit_memory_cpu_and_pids() -> None:
    host = spec(Tool.CLAUDE, "", host_memory=24 * GIB, host_cpus=8)["HostConfig"]
    assert host["Memory"] == 12 * GIB and host["MemorySwap"] == host["Memory"]  # half the RAM, no extra swap
    assert host["NanoCpus"] == 7 * 10**9  # all CPUs but one
    assert host["PidsLimit"] == 4096
    big = spec(Tool.CLAUDE, "", host_memory=256 * GIB, host_cpus=1)["HostConfig"]
    assert big["Memory"] == AUTO_MEMORY_CAP and big["NanoCpus"] == 10**9


@pytest.mark.parametrize(("memory", "cpus", "pids", "expected"), [
    ("64m", "1.5", 100, {"Memory": 64 * 1024**2, "MemorySwap": 64 * 1024**2, "NanoCpus": 1_500_000_000,
                         "PidsLimit": 100}),
    ("4g", "2", 4096, {"Memory": 4 * GIB, "MemorySwap": 4 * GIB, "NanoCpus": 2 * 10**9, "PidsLimit": 4096}),
    ("1.5G", "0.25", 64, {"Memory": 3 * GIB // 2, "MemorySwap": 3 * GIB // 2, "NanoCpus": 250_000_000,
                          "PidsLimit": 64}),
    ("none", "none", 4096, {"PidsLimit": 4096}),
])
def test_explicit_limits(memory: str, cpus: str, pids: int, expected: dict[str, int]) -> None:
    config = Config(memory_limit=memory, cpu_limit=cpus, pids_limit=pids)
    host = spec(Tool.OPENCODE, "", config, host_memory=24 * GIB, host_cpus=8)["HostConfig"]
    fields = {key: host[key] for key in ("Memory", "MemorySwap", "NanoCpus", "PidsLimit") if key in host}
    assert fields == expected


@pytest.mark.parametrize(("line", "message"), [
    ("MEMORY_LIMIT=lots", "MEMORY_LIMIT: expected auto, none or a size like 4g or 512m, got 'lots'"),
    ("MEMORY_LIMIT=1m", "MEMORY_LIMIT: must be at least 6m"),
    ("MEMORY_LIMIT=-4g", "MEMORY_LIMIT: expected auto"),
    ("CPU_LIMIT=many", "CPU_LIMIT: expected auto, none or a number of CPUs like 2 or 1.5, got 'many'"),
    ("CPU_LIMIT=0.001", "CPU_LIMIT: expected auto"),
    ("PIDS_LIMIT=8", "PIDS_LIMIT: must be between 16 and 4194304, got 8"),
    ("PIDS_LIMIT=lots", "PIDS_LIMIT: expected a whole number"),
])
def test_bad_values_are_config_errors(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "llm-docker.conf").write_text(f"# limits\n{line}\n")
    with pytest.raises(ConfigError, match=r"llm-docker.conf:2: ") as error:
        load_config(tmp_path, {}, tmp_path)
    assert message in str(error.value)


def test_bad_value_is_one_line_and_exit_2(project: Path, user_home: Path) -> None:
    state = user_home / ".llm-docker"
    state.mkdir()
    (state / "llm-docker.conf").write_text("MEMORY_LIMIT=12 apples\n")
    result = run_cli(["--dry-run"], cwd=project, home=user_home)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "MEMORY_LIMIT" in result.stderr
    (state / "llm-docker.conf").write_text("")
    too_many = run_cli(["--dry-run"], cwd=project, home=user_home, extra_env={"MEMORY_LIMIT": "1g",
                                                                            "CPU_LIMIT": "4096"})
    assert too_many.returncode == 2 and too_many.stderr.count("\n") == 1
    assert "CPU_LIMIT=4096 is more than the" in too_many.stderr
    fine = run_cli(["--dry-run"], cwd=project, home=user_home, extra_env={"MEMORY_LIMIT": "1g", "CPU_LIMIT": "1"})
    host = json.loads(fine.stdout)["create"]["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (GIB, GIB, 10**9)


def test_config_command_shows_the_limits(tmp_path: Path) -> None:
    (tmp_path / "llm-docker.conf").write_text("MEMORY_LIMIT=8g\n")
    lines = {line.split("=", 1)[0]: line for line in run_admin(tmp_path, "config").stdout.splitlines()}
    assert lines["MEMORY_LIMIT"].startswith("MEMORY_LIMIT=8g") and "llm-docker.conf:1" in lines["MEMORY_LIMIT"]
    assert lines["CPU_LIMIT"].startswith("CPU_LIMIT=auto") and lines["CPU_LIMIT"].endswith("# default")
    assert lines["PIDS_LIMIT"].startswith("PIDS_LIMIT=4096")
