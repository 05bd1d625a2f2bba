"""Planning (`launch.plan`): what every slot shares is decided once, as typed fields of the
plan; specs are built from it per slot. No Docker."""

from __future__ import annotations

from pathlib import Path

import pytest

import launch.identity
import launch.plan
from launch.argv import LaunchRequest, parse_argv
from launch.config import Config
from launch.errors import ConfigError, LlmDockerError
from launch.limits import LimitError
from launch.plan import BuilderApiEndpoint, BuilderApiUnavailable, plan_launch, slot_specs
from launch.session import SessionKind
from launch.spec import OFFLINE_NETWORK, PublishedPorts, slot_gateway
from launch.tools import Tool
from testbed.plans import NEW_SESSION, host_facts, plan_of

APP = Path("/home/u/Projects/app")


def request(*words: str, tool: Tool = Tool.CLAUDE) -> LaunchRequest:
    return parse_argv(tool, list(words), cwd=APP, is_dir=lambda p: False)


def test_the_plan_carries_what_every_slot_shares_as_typed_fields() -> None:
    plan = plan_of(request("3"))
    assert plan.image == "llm-docker-claude:latest"
    assert plan.network_mode == "bridge"  # SSH is published
    assert plan.gateway and not plan.policy.host_network
    assert plan.ports == PublishedPorts(ssh=2222, codeman=None)
    assert (plan.project.root, plan.project.token, plan.project.workdir) == (APP, "app", "/root/Projects/app")
    assert plan.project_home.parent == Path("/home/u/.llm-docker/projects")
    assert plan.limits["PidsLimit"] > 0
    # one SlotPlan per slot, each with its own fresh session
    assert [slot.slot for slot in plan.slots] == [1, 2, 3]
    assert all(slot.session.kind is SessionKind.FRESH for slot in plan.slots)
    assert len({slot.session.session_id for slot in plan.slots}) == 3
    # the specs agree with the plan, instead of the plan being read back out of them
    specs = slot_specs(plan)
    assert [spec.create["Image"] for spec in specs] == [plan.image] * 3
    assert len({spec.name for spec in specs}) == 3
    assert [spec.session for spec in specs] == [slot.session for slot in plan.slots]
    assert [spec.create["Labels"]["io.llm-docker.ssh-port"] for spec in specs] == ["8884", "8885", "8886"]


def test_a_single_launch_is_one_slot_with_the_facts_session() -> None:
    plan = plan_of(request("--slot", "2"))
    assert [(slot.slot, slot.session.session_id) for slot in plan.slots] == [(2, NEW_SESSION)]


def test_network_mode_and_gateway_follow_the_config() -> None:
    host = plan_of(request(), Config(network_mode="host", llm_docker_ssh_enabled=False))
    assert host.network_mode == "host" and not host.gateway
    assert slot_gateway(host, None) is None and slot_specs(host)[0].gateway is None
    offline = plan_of(request(), Config(internet_access=False))
    assert offline.network_mode == OFFLINE_NETWORK
    codeman = plan_of(request("-tc"), Config(llm_docker_ssh_enabled=False))
    assert codeman.ports == PublishedPorts(ssh=None, codeman=3000)


def test_the_early_gateway_is_the_one_the_slot_spec_plans() -> None:
    """`supervisor.gateway` starts it before the session is known: it must be the same."""
    plan = plan_of(request("2"))
    for slot in plan.slots:
        early = slot_gateway(plan, slot.slot, ssh_host_port=9000)
        assert early is not None
        spec = launch.plan.container_spec(plan, slot, ssh_host_port=9000)
        assert spec.gateway == early


def test_settings_that_cannot_work_are_refused_while_planning() -> None:
    """Not later, when the supervisor builds a slot's spec: by then the engine was contacted."""
    with pytest.raises(ConfigError, match="above 65535"):
        plan_of(request("--slot", "3"), Config(llm_docker_ssh_host_port=65535))
    with pytest.raises(LimitError, match="more than the 2 CPUs"):
        plan_of(request(), Config(cpu_limit="8"), host_facts(host_cpus=2))


def test_the_builder_api_is_loaded_once_and_only_when_the_launch_uses_it(in_project: Path, user_home: Path) -> None:
    asked: list[str] = []

    def loader(project: str) -> BuilderApiEndpoint:
        asked.append(project)
        return BuilderApiEndpoint(7123, "from-the-toml", config=object())

    plain = plan_launch(LaunchRequest(Tool.CLAUDE), environ={}, cwd=in_project, user_home=user_home,
                        builder_api=loader)
    assert asked == [] and plain.builder_api is None
    plan = plan_launch(LaunchRequest(Tool.CLAUDE, api=True), environ={}, cwd=in_project, user_home=user_home,
                       builder_api=loader)
    assert asked == ["app"]
    endpoint = plan.builder_api_endpoint
    assert endpoint is not None and (endpoint.port, endpoint.password) == (7123, "from-the-toml")
    assert plan.config.builder_api_password == "from-the-toml"  # the server's, not .env's
    env = dict(item.split("=", 1) for item in slot_specs(plan)[0].create["Env"])
    assert env["BUILDER_API_PORT"] == "7123"
    assert 7123 in plan.policy.host_ports
    assert asked == ["app"]  # building specs loads nothing


def test_an_unavailable_builder_api_is_planned_as_such() -> None:
    plan = plan_of(request("-a"), builder_api=BuilderApiUnavailable("no [project.app]"))
    assert plan.builder_api == BuilderApiUnavailable("no [project.app]") and plan.builder_api_endpoint is None
    assert not any(item.startswith("BUILDER_API_PASSWORD=") for item in slot_specs(plan)[0].create["Env"])


def test_the_project_root_and_docker_dir_are_found_once(in_project: Path, user_home: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    roots: list[Path] = []
    real_root = launch.identity.project_root

    def counting_root(*args: object, **kwargs: object) -> Path:
        roots.append(real_root(*args, **kwargs))
        return roots[-1]

    checks: list[str] = []
    real_check = launch.plan.check_docker_dir

    def counting_check(docker_dir: str) -> str:
        checks.append(docker_dir)
        return real_check(docker_dir)

    monkeypatch.setattr(launch.identity, "project_root", counting_root)
    monkeypatch.setattr(launch.plan, "check_docker_dir", counting_check)
    plan = plan_launch(LaunchRequest(Tool.CLAUDE, windows=3), environ={}, cwd=in_project, user_home=user_home)
    slot_specs(plan)
    assert roots == [in_project] and len(checks) == 1


def test_refusals_are_llm_docker_errors_with_exit_2(user_home: Path) -> None:
    with pytest.raises(LlmDockerError) as refused:
        plan_launch(LaunchRequest(Tool.CLAUDE), environ={}, cwd=user_home, user_home=user_home)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
