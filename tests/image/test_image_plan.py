"""The image build's pure parts: certificates, groups, Dockerfile, plan, digest, staleness,
apt sources, the build-output parser and the progress display. No engine needed."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import anyio
import pytest

from image.base import DEFAULT_MIRROR, debian_source
from image.build import _StreamParser
from image.certs import CertificateError, select_extra_certificates
from image.dockerfile import render
from image.groups import GROUPS, outside_notes
from image.plan import BuildInputError, build_arguments, plan_build, staleness
from image.progress import BuildProgress, format_duration, format_size
from launch.config import Config, settings
from launch.tools import Tool

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
NO_CERTIFICATES = select_extra_certificates("none")


# -- extra CA certificates -------------------------------------------------------------------

def test_auto_takes_the_hosts_certificates(tmp_path: Path) -> None:
    (tmp_path / "corp").mkdir()
    (tmp_path / "corp" / "proxy.crt").write_bytes(PEM)
    (tmp_path / "readme.txt").write_text("not a certificate")
    chosen = select_extra_certificates("auto", host_folder=tmp_path)
    assert [name for name, _ in chosen.files] == ["01-proxy.crt"]
    assert "EXTRA_CA_CERTS=auto" in chosen.describe()


def test_auto_without_host_certificates_is_empty(tmp_path: Path) -> None:
    assert select_extra_certificates("auto", host_folder=tmp_path / "missing").files == ()


@pytest.mark.parametrize("value", ["none", "", "off", "NONE"])
def test_none_trusts_nothing(value: str) -> None:
    assert select_extra_certificates(value).files == ()


def test_a_file_and_a_folder(tmp_path: Path) -> None:
    single = tmp_path / "one.pem"
    single.write_bytes(PEM)
    assert select_extra_certificates(str(single)).files == (("01-one.crt", PEM),)
    folder = tmp_path / "many"
    folder.mkdir()
    for name in ("b.crt", "a.crt"):
        (folder / name).write_bytes(PEM)
    assert [n for n, _ in select_extra_certificates(str(folder)).files] == ["01-a.crt", "02-b.crt"]


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "no such file or folder"),
    ("empty-folder", "has no .crt file"),
    ("not-pem", "is not a PEM certificate"),
])
def test_bad_certificate_settings(tmp_path: Path, setup: str, message: str) -> None:
    target = tmp_path / setup
    if setup == "empty-folder":
        target.mkdir()
    elif setup == "not-pem":
        target.write_text("hello")
    with pytest.raises(CertificateError, match=message):
        select_extra_certificates(str(target))


# -- groups and the Dockerfile ---------------------------------------------------------------

def test_every_install_setting_is_a_group_and_every_group_a_setting() -> None:
    install_settings = {info.key for info in settings() if info.key.startswith("INSTALL_")}
    assert install_settings == {group.key for group in GROUPS}


def test_groups_install_only_from_the_registries_by_name() -> None:
    for group in GROUPS:
        for package in (*group.apt, *group.npm, *group.pip):
            assert "/" not in package.lstrip("@").split("/", 1)[-1] and ":" not in package, package


def test_the_dockerfile_has_one_arg_and_run_per_group_in_order() -> None:
    text = render({"INSTALL_TMUX_VANILLA": True})
    assert "@GROUPS@" not in text and "FROM ${BASE_IMAGE}" in text
    positions = []
    for group in GROUPS:
        arg = f"ARG {group.key}="
        run = f'RUN /opt/llm-docker/install/group.sh {group.name} "${group.key}"'
        assert text.count(arg) == 1 and text.count(run) == 1, group.key
        assert text.index(arg) < text.index(run)
        positions.append(text.index(run))
    assert positions == sorted(positions)
    assert "ARG INSTALL_TMUX_VANILLA=true" in text and "ARG INSTALL_RUBY=false" in text
    assert text.index("install/agent.sh") > positions[-1], "the agent comes after the shared group layers"


def test_outside_notes_name_only_enabled_groups() -> None:
    config = dataclasses.replace(Config(), install_security=True, install_cpp=True,
                                 install_browsing=False)
    notes = outside_notes(config)
    assert len(notes) == 1 and notes[0].startswith("INSTALL_SECURITY: not installed — amass")


# -- the plan ------------------------------------------------------------------------------------

def test_build_arguments_follow_the_config() -> None:
    args = build_arguments(dataclasses.replace(Config(), install_ruby=True, claude_code_version="2.1.0"),
                           Tool.CLAUDE)
    assert args["INSTALL_RUBY"] == "true" and args["INSTALL_CPP"] == "false"
    assert args["TOOL"] == "claude" and args["CLAUDE_CODE_VERSION"] == "2.1.0"
    assert args["BASE_IMAGE"] == "node:24"


@pytest.mark.parametrize("version", ["1.0; rm -rf /", "$(id)", "", "latest latest"])
def test_bad_versions_are_refused(version: str) -> None:
    with pytest.raises(BuildInputError, match="is not an npm version"):
        build_arguments(dataclasses.replace(Config(), opencode_version=version), Tool.OPENCODE)


def test_the_plan_is_deterministic_and_per_tool() -> None:
    claude = plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES)
    assert claude.digest == plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES).digest
    assert claude.context_tar() == plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES).context_tar()
    opencode = plan_build(Config(), Tool.OPENCODE, NO_CERTIFICATES)
    assert (claude.tag, opencode.tag) == ("llm-docker-claude:latest", "llm-docker-opencode:latest")
    assert claude.digest != opencode.digest


def test_the_context_has_the_dockerfile_files_and_certificates(tmp_path: Path) -> None:
    (tmp_path / "x.crt").write_bytes(PEM)
    plan = plan_build(Config(), Tool.CLAUDE, select_extra_certificates(str(tmp_path)))
    with tarfile.open(fileobj=io.BytesIO(plan.context_tar())) as archive:
        members = {member.name: member for member in archive.getmembers()}
        assert archive.extractfile("ca/01-x.crt").read() == PEM
    assert {"Dockerfile", "ca", "install/essentials.sh", "rootfs/etc/claude-code/managed-settings.json",
            "rootfs/usr/local/bin/llm-docker-entrypoint"} <= set(members)
    assert members["install/group.sh"].mode == 0o755
    assert members["rootfs/etc/claude-code/managed-settings.json"].mode == 0o644
    assert all(member.mtime == 0 for member in members.values() if member.isfile())


def test_an_empty_certificate_folder_still_exists_in_the_context() -> None:
    with tarfile.open(fileobj=io.BytesIO(plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES).context_tar())) as archive:
        assert archive.getmember("ca").isdir()


def test_staleness_says_what_changed(tmp_path: Path) -> None:
    built = plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES)
    labels = built.labels("llm-docker-base:bookworm")
    assert staleness(labels, built) == []
    flipped = plan_build(dataclasses.replace(Config(), install_ruby=True), Tool.CLAUDE, NO_CERTIFICATES)
    assert staleness(labels, flipped) == ["INSTALL_RUBY false → true"]
    (tmp_path / "x.crt").write_bytes(PEM)
    with_ca = plan_build(Config(), Tool.CLAUDE, select_extra_certificates(str(tmp_path)))
    assert staleness(labels, with_ca) == ["the extra CA certificates changed"]
    edited = dict(labels, **{"io.llm-docker.image-files": "0" * 64, "io.llm-docker.image-inputs": "x"})
    assert staleness(edited, built) == ["llm-docker's image files changed"]
    older = dict(edited, **{"io.llm-docker.version": "0.0.1"})
    assert "built by llm-docker 0.0.1" in staleness(older, built)[0]
    assert staleness({}, built) == ["it was not built by llm-docker's image build (no input label)"]
    assert staleness(None, built) == staleness({}, built)
    assert json.loads(labels["io.llm-docker.image-args"])["INSTALL_RUBY"] == "false"


# -- the Debian base's sources ---------------------------------------------------------------------

DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_CODENAME=bookworm\n'


def test_deb822_sources() -> None:
    sources = ("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
               "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security/\n"
               "Suites: bookworm-security\nComponents: main\n")
    source = debian_source(DEBIAN_12, [sources])
    assert (source.suite, source.mirror, source.security) == (
        "bookworm", "http://mirror.example/debian", "http://mirror.example/debian-security")
    assert "deb http://mirror.example/debian-security bookworm-security main" in source.sources_list()


def test_one_line_sources_with_options() -> None:
    source = debian_source(DEBIAN_12.replace("bookworm", "trixie"),
                           ["# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian trixie main\n"])
    assert (source.suite, source.mirror, source.tag) == ("trixie", "http://m.example/debian",
                                                         "llm-docker-base:trixie")


def test_non_debian_hosts_get_the_default_mirror() -> None:
    source = debian_source("ID=fedora\nVERSION_CODENAME=\n", ["[fedora]\nbaseurl=http://x\n"])
    assert (source.suite, source.mirror) == ("bookworm", DEFAULT_MIRROR)


def test_a_file_mirror_is_not_used_for_debootstrap() -> None:
    assert debian_source(DEBIAN_12, ["deb file:///srv/mirror bookworm main\n"]).mirror == DEFAULT_MIRROR


# -- build output and progress ---------------------------------------------------------------------

def progress_to(buffer: io.StringIO, log: Path, **kwargs: bool) -> BuildProgress:
    return BuildProgress(buffer, log, interactive=False, **kwargs)


def test_the_parser_counts_steps_and_cached_steps(tmp_path: Path) -> None:
    buffer = io.StringIO()
    progress = progress_to(buffer, tmp_path / "build.log")
    parser = _StreamParser(progress)
    for chunk in ["Step 1/4 : ARG BASE_IMAGE=node:24\n", "Step 2/4 : FROM ${BASE_IMAGE}\n ---> 34d4\n",
                  "Step 3/4 : COPY ca/ /x\n ---> Using cache\n ---> 1a2b\nStep 4/4 : RUN inst",
                  "all.sh\n ---> Running in 77\nhello from the step\n"]:
        parser.feed(chunk)
    parser.flush()
    progress.close()
    assert (parser.steps, parser.cached, parser.current) == (4, 1, "[4/4] RUN install.sh")
    shown = buffer.getvalue()
    assert "[3/4] COPY ca/ /x" in shown and "[4/4] RUN install.sh" in shown
    assert "ARG BASE_IMAGE" not in shown and "hello from the step" not in shown
    log = (tmp_path / "build.log").read_text()
    assert "hello from the step" in log and "ARG BASE_IMAGE" in log


def test_verbose_streams_every_line(tmp_path: Path) -> None:
    buffer = io.StringIO()
    progress = progress_to(buffer, tmp_path / "build.log", verbose=True)
    progress.step("[1/1] RUN x")
    progress.output("line one")
    progress.close()
    assert "line one" in buffer.getvalue()


def test_the_live_display_on_a_terminal(tmp_path: Path) -> None:
    buffer = io.StringIO()
    progress = BuildProgress(buffer, tmp_path / "build.log", interactive=True)
    progress.step("[7/9] RUN /opt/llm-docker/install/essentials.sh")
    progress.output("Setting up zsh")
    progress.close()
    shown = buffer.getvalue()
    assert "[7/9] RUN /opt/llm-docker/install/essentials.sh" in shown and "Setting up zsh" in shown


@pytest.mark.anyio
async def test_ticking_stops_with_its_block(tmp_path: Path) -> None:
    progress = BuildProgress(io.StringIO(), tmp_path / "build.log", interactive=True)
    progress.step("[1/1] RUN sleep")
    with anyio.fail_after(5):
        async with progress.ticking(interval=0.01):
            await anyio.sleep(0.05)
    progress.close()


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (65, "1m05s"), (3725, "1h02m")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(("size", "text"), [(512, "512 B"), (1_850_000_000, "1.85 GB"), (42_000_000, "42.00 MB")])
def test_format_size(size: int, text: str) -> None:
    assert format_size(size) == text


def test_an_agent_refresh_is_not_a_change() -> None:
    plain = plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES)
    refreshed = plan_build(Config(), Tool.CLAUDE, NO_CERTIFICATES, refresh="2026-11-27")
    assert refreshed.digest == plain.digest
    assert staleness(plain.labels("base"), refreshed) == []
    assert refreshed.labels("base")["io.llm-docker.agent-refresh"] == "2026-11-27"
    assert refreshed.docker_build_args("llm-docker-base:bookworm")["AGENT_REFRESH"] == "2026-11-27"
    assert refreshed.docker_build_args("llm-docker-base:bookworm")["BASE_IMAGE"] == "llm-docker-base:bookworm"


def test_the_refresh_stamp_is_daily_and_only_with_update_on_start() -> None:
    from image.ensure import refresh_stamp

    assert refresh_stamp(Config()) == ""
    daily = dataclasses.replace(Config(), update_on_start=True)
    assert refresh_stamp(daily, now=0) != refresh_stamp(daily, now=2 * 86400)
    assert refresh_stamp(daily, now=1000) == refresh_stamp(daily, now=1000)
