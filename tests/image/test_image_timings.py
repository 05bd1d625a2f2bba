"""The build's ETA and sizes, pure parts: step names, first-build estimates, the recorded
step times (a file under the state folder: never a symlink followed, never a FIFO blocked
on), the progress's plan/ETA/durations, the bootstrap command and the per-part sizes of an
image's layer history. No engine needed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from image.base import DebianSource, bootstrap_command, local_base_tag
from image.build import _StreamParser, step_keys
from image.certs import select_extra_certificates
from image.dockerfile import render
from image.groups import GROUPS
from image.layers import AGENT, BASE, ESSENTIALS, FILES, SETUP, layer_part, part_sizes, shown_parts
from image.plan import plan_build
from image.progress import BuildProgress
from image.timings import (
    BASE_BOOTSTRAP_STEP,
    FIRST_BUILD,
    dockerfile_instructions,
    expected_seconds,
    first_build_estimate,
    load_step_times,
    save_step_times,
    step_key,
)
from launch.config import Config
from launch.tools import Tool

SOURCE = DebianSource("bookworm", "http://deb.debian.org/debian", "http://deb.debian.org/debian-security")


# -- step names and estimates ------------------------------------------------------------------

def test_instructions_join_continuations_and_skip_comments() -> None:
    text = "# a comment\nARG A=1\n\nENV X=1 \\\n    Y=2\nRUN a \\\n  && b\n"
    assert dockerfile_instructions(text) == ["ARG A=1", "ENV X=1  Y=2", "RUN a  && b"]


def test_the_rendered_dockerfile_has_one_step_per_instruction_with_arguments_filled_in() -> None:
    plan = plan_build(Config(), Tool.CLAUDE, select_extra_certificates("none"))
    keys = step_keys(plan)
    instructions = dockerfile_instructions(render({g.key: g.enabled(Config()) for g in GROUPS}))
    assert len(keys) == len(instructions)
    assert 'RUN /opt/llm-docker/install/agent.sh "claude"' in keys
    assert any(key.startswith('RUN /opt/llm-docker/install/group.sh ssh "true"') for key in keys)
    assert any(key.startswith('RUN /opt/llm-docker/install/group.sh cpp "false"') for key in keys)


def test_step_key_fills_both_spellings_and_keeps_unknown_names() -> None:
    assert step_key("FROM ${BASE_IMAGE}", {"BASE_IMAGE": "b:1"}) == "FROM b:1"
    assert step_key('RUN x "$TOOL"   $OTHER', {"TOOL": "claude"}) == 'RUN x "claude" $OTHER'


def test_first_build_estimates_tell_an_enabled_group_from_a_switched_off_one() -> None:
    enabled = first_build_estimate('RUN /opt/llm-docker/install/group.sh browsing "true" --apt chromium')
    disabled = first_build_estimate('RUN /opt/llm-docker/install/group.sh browsing "false" --apt chromium')
    assert enabled > 10 * disabled
    assert first_build_estimate("RUN /opt/llm-docker/install/essentials.sh") == FIRST_BUILD["essentials.sh"]
    assert first_build_estimate("ARG X=1") < 1
    assert first_build_estimate(BASE_BOOTSTRAP_STEP) == FIRST_BUILD[BASE_BOOTSTRAP_STEP]
    assert expected_seconds("ARG X=1", {"ARG X=1": 7.0}) == 7.0


# -- the recorded step times -------------------------------------------------------------------

def test_step_times_round_trip_and_ignore_what_is_not_a_duration(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "build-steps.json"
    save_step_times(path, {"RUN a": 12.5, "ARG b": 0.1})
    assert load_step_times(path) == {"RUN a": 12.5, "ARG b": 0.1}
    path.write_text(json.dumps({"RUN a": "soon", "RUN b": True, "RUN c": -1, "RUN d": 3}))
    assert load_step_times(path) == {"RUN d": 3.0}
    path.write_text("not json")
    assert load_step_times(path) == {}
    assert load_step_times(tmp_path / "missing.json") == {}


def test_step_times_never_follow_a_symlink_nor_block_on_a_fifo(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"RUN a": 1}))
    link = tmp_path / "build-steps.json"
    link.symlink_to(target)
    assert load_step_times(link) == {}
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert load_step_times(fifo) == {}


# -- the progress: plan, ETA, one clock, durations ------------------------------------------------

def quiet_progress(tmp_path: Path) -> BuildProgress:
    return BuildProgress(io.StringIO(), tmp_path / "logs" / "build.log", interactive=False)


def test_the_eta_is_the_rest_of_the_plan(tmp_path: Path) -> None:
    progress = quiet_progress(tmp_path)
    assert progress.remaining() is None
    progress.plan([("a", 10.0), ("b", 20.0), ("c", 30.0)])
    assert progress.remaining() == 60.0
    progress.step("[2/3] b", key="b")
    remaining = progress.remaining()
    assert remaining is not None and 30.0 <= remaining <= 50.0
    progress.step("[3/3] c", key="c")
    remaining = progress.remaining()
    assert remaining is not None and 0.0 <= remaining <= 30.0
    progress.close()


def test_a_step_not_in_the_plan_keeps_the_eta_where_it_was(tmp_path: Path) -> None:
    progress = quiet_progress(tmp_path)
    progress.plan([("a", 10.0), ("b", 20.0)])
    progress.step("a", key="a")
    progress.step("something else", key="zzz")
    remaining = progress.remaining()
    assert remaining is not None and 20.0 <= remaining <= 30.0
    progress.close()


def test_the_step_lines_show_elapsed_and_eta(tmp_path: Path) -> None:
    buffer = io.StringIO()
    progress = BuildProgress(buffer, tmp_path / "build.log", interactive=False)
    progress.plan([("RUN a", 65.0)])
    progress.step("[1/1] RUN a", key="RUN a")
    progress.close()
    # 65 s expected, a moment spent: 1m04s or 1m05s to go.
    assert "[1/1] RUN a  (0s, ETA 1m0" in buffer.getvalue(), buffer.getvalue()


def test_only_steps_that_ran_are_recorded_and_merged_into_the_file(tmp_path: Path) -> None:
    progress = quiet_progress(tmp_path)
    save_step_times(progress.durations_path, {"RUN old": 5.0, "RUN a": 99.0})
    parser = _StreamParser(progress, {"TOOL": "claude"})
    parser.feed('Step 1/3 : RUN a\n ---> Running in 1\nStep 2/3 : COPY b /b\n ---> Using cache\n'
                'Step 3/3 : RUN agent.sh "$TOOL"\n ---> Running in 2\n')
    parser.flush()
    progress.finish_steps()
    assert set(progress.durations) == {"RUN a", 'RUN agent.sh "claude"'}
    progress.record_durations()
    recorded = load_step_times(progress.durations_path)
    assert set(recorded) == {"RUN old", "RUN a", 'RUN agent.sh "claude"'} and recorded["RUN a"] < 99.0
    assert progress.durations == {}
    progress.close()


# -- the base --------------------------------------------------------------------------------

def test_mmdebstrap_is_told_to_skip_fsync_and_docs_and_gets_every_apt_source(tmp_path: Path) -> None:
    command = bootstrap_command("/usr/bin/mmdebstrap", SOURCE, tmp_path / "rootfs")
    assert "--variant=minbase" in command and "--dpkgopt=force-unsafe-io" in command
    assert "--format=tar" in command and "--skip=output/dev" in command  # the engine provides /dev
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in command
    assert command[-3:] == SOURCE.sources_list().splitlines()
    fallback = bootstrap_command("/usr/sbin/debootstrap", SOURCE, tmp_path / "rootfs")
    assert fallback[1] == "--variant=minbase" and fallback[-1] == SOURCE.mirror
    assert not any(word.startswith("--dpkgopt") for word in fallback)


@pytest.mark.parametrize(("configured", "tag"), [("local", "llm-docker-base:bookworm"),
                                                  ("local:mine-base:1", "mine-base:1"),
                                                  ("local:", None), ("node:24", None), ("localhost/x", None)])
def test_local_base_tag(configured: str, tag: str | None) -> None:
    assert local_base_tag(configured, SOURCE) == tag


# -- what each part of an image costs ------------------------------------------------------------

def history_row(created_by: str, size: int) -> dict[str, object]:
    return {"CreatedBy": created_by, "Size": size, "Id": "<missing>", "Tags": None}


#: Shaped like the engine's `docker history` of an agent image (newest first).
HISTORY = [
    history_row("/bin/sh -eu -c #(nop)  LABEL io.llm-docker.version=0.1.0", 0),
    history_row("|18 TOOL=claude /bin/sh -eu -c /opt/llm-docker/install/finish.sh", 40),
    history_row("/bin/sh -eu -c #(nop) COPY dir:abc in / ", 30),
    history_row('|18 TOOL=claude /bin/sh -eu -c /opt/llm-docker/install/agent.sh "$TOOL"', 400),
    history_row('|11 INSTALL_BROWSING=false /bin/sh -eu -c /opt/llm-docker/install/group.sh browsing '
                '"$INSTALL_BROWSING" --apt chromium', 0),
    history_row('|2 INSTALL_CPP=false /bin/sh -eu -c /opt/llm-docker/install/group.sh cpp "$INSTALL_CPP" --apt x', 0),
    history_row('|1 INSTALL_SSH=true /bin/sh -eu -c /opt/llm-docker/install/group.sh ssh "$INSTALL_SSH" --apt y', 4),
    history_row("/bin/sh -eu -c #(nop) COPY file:1 in /opt/llm-docker/install/ ", 1),
    history_row("/bin/sh -eu -c /opt/llm-docker/install/essentials.sh", 300),
    history_row("/bin/sh -eu -c /opt/llm-docker/install/apt-setup.sh && /opt/llm-docker/install/ca-certificates.sh",
                2),
    history_row("/bin/sh -eu -c #(nop) COPY dir:2 in /usr/local/share/ca-certificates/llm-docker/ ", 3),
    history_row("/bin/sh -c #(nop)  SHELL [/bin/sh -eu -c]", 0),
    history_row("/bin/sh -c #(nop)  CMD [\"bash\"]", 0),
    history_row("/bin/sh -c #(nop) ADD file:495e in / ", 126),
]


def test_layer_sizes_add_up_by_part() -> None:
    sizes = part_sizes(HISTORY)
    assert sizes == {BASE: 126, SETUP: 5, ESSENTIALS: 300, FILES: 71, "ssh": 4, "cpp": 0, "browsing": 0,
                     AGENT: 400}
    assert sum(sizes.values()) == sum(int(str(row["Size"])) for row in HISTORY)


def test_switched_off_groups_are_not_shown_and_the_order_is_the_builds() -> None:
    shown = shown_parts(part_sizes(HISTORY), {"INSTALL_SSH": "true", "INSTALL_CPP": "false"})
    assert list(shown) == [BASE, SETUP, ESSENTIALS, "ssh", AGENT, FILES]


def test_an_image_that_is_not_ours_is_all_base() -> None:
    assert part_sizes([history_row("/bin/sh -c #(nop) ADD file:1 in / ", 9),
                       history_row("/bin/sh -c apt-get install x", 5)]) == {BASE: 14}


def test_a_layer_is_named_by_the_script_it_ran() -> None:
    assert layer_part('|3 A=1 /bin/sh -eu -c /opt/llm-docker/install/group.sh tmux_team "$A" --apt tmux') == "tmux_team"
    assert layer_part("/bin/sh -eu -c #(nop) COPY file:x in /opt/llm-docker/install/group.sh ") == FILES


def test_the_live_line_on_a_terminal_shows_the_eta(tmp_path: Path) -> None:
    buffer = io.StringIO()
    progress = BuildProgress(buffer, tmp_path / "build.log", interactive=True)
    progress.plan([("RUN a", 30.0), ("RUN b", 3600.0)])
    progress.step("[1/2] RUN a", key="RUN a")
    progress.close()
    assert "[1/2] RUN a" in buffer.getvalue() and "ETA 1h0" in buffer.getvalue(), buffer.getvalue()
