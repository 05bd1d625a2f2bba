"""`llm-docker image status` on the tests' real agent images: what each part (the base, the
essentials, each INSTALL_* group that is on, the agent) costs, read from the layer history —
and the build's progress lines (elapsed time and ETA on one clock)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from image.certs import select_extra_certificates
from image.dockerfile import render
from image.groups import GROUPS
from image.layers import AGENT, BASE, ESSENTIALS, FILES, SETUP
from image.plan import plan_build
from image.timings import dockerfile_instructions
from launch.config import Config
from launch.tools import Tool
from testbed.agent_images import build_agent_images, write_test_config
from testbed.processes import run

pytestmark = [pytest.mark.docker, pytest.mark.image]

_STEP_LINE = re.compile(r"^\s+\[(\d+)/(\d+)\] .*\((?:(\d+)m)?(\d+)s, ETA (?:\d+m)?\d+s\)$", re.MULTILINE)
_SUMMARY = re.compile(r"built (\S+) \([^)]*\) in (?:(\d+)m)?(\d+)s; (\d+)/(\d+) steps from cache")


@pytest.fixture(scope="module")
def built(docker_engine_ready: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("image-status")
    result = build_agent_images(home)
    if result.returncode != 0:
        pytest.fail(f"building the agent images failed:\n{result.stderr[-4000:]}", pytrace=False)
    return home, result.stderr


def test_status_gives_each_part_its_size_and_they_add_up_to_the_image(built: tuple[Path, str]) -> None:
    home, _ = built
    write_test_config(home)
    result = run("llm-docker", "image", "status", "--json", cwd=home, home=home)
    assert result.returncode == 0, result.stderr
    claude = next(row for row in json.loads(result.stdout)["images"] if row["tool"] == "claude")
    parts = claude["parts"]
    # The test images are the defaults but INSTALL_BROWSING=false (testbed.agent_images).
    on = [group.name for group in GROUPS if group.enabled(Config()) and group.name != "browsing"]
    assert list(parts) == [BASE, SETUP, ESSENTIALS, *on, AGENT, FILES]
    assert "browsing" not in parts
    assert sum(parts.values()) == claude["size"]
    assert parts[BASE] > 50_000_000 and parts[ESSENTIALS] > 100_000_000 and parts[AGENT] > 50_000_000
    assert parts["ssh"] > 0 and parts["tmux_vanilla"] > 0
    text = run("llm-docker", "image", "status", cwd=home, home=home)
    assert re.search(r"^\s+ssh\s+\d+\.\d\d MB$", text.stdout, re.MULTILINE), text.stdout
    assert re.search(r"^\s+essentials\s+\d+\.\d\d MB$", text.stdout, re.MULTILINE), text.stdout


def test_build_lines_show_elapsed_and_eta_on_the_summarys_clock(built: tuple[Path, str]) -> None:
    _, output = built
    steps = _STEP_LINE.findall(output)
    summaries = _SUMMARY.findall(output)
    assert steps and summaries, output[-3000:]
    plan = plan_build(Config(), Tool.CLAUDE, select_extra_certificates("none"))
    instructions = len(dockerfile_instructions(render({g.key: g.enabled(Config()) for g in GROUPS})))
    # The builder's steps: the rendered Dockerfile's instructions (what the ETA plans), then
    # one LABEL per image label (instant).
    expected = instructions + len(plan.labels("base"))
    assert {int(total) for _, total, _, _ in steps} == {expected}
    assert all(int(total) == expected for *_, total in summaries)
    last_step = max(int(minutes or 0) * 60 + int(seconds) for _, _, minutes, seconds in steps)
    total = max(int(minutes or 0) * 60 + int(seconds) for _, minutes, seconds, _, _ in summaries)
    assert total >= last_step, output[-3000:]
