"""The network policy's planning, without Docker (`launch/network.py`)."""

from __future__ import annotations

import pytest

from launch.config import Config, ConfigError, load_config
from launch.network import (
    PRESETS,
    RESOLVER_UID,
    Internet,
    NetworkSettingError,
    dnsmasq_options,
    local_ipv4_addresses,
    local_ipv6_addresses,
    model_endpoint_problem,
    nft_ruleset,
    parse_egress_allow,
    parse_host_ports,
    plan_policy,
    probes,
)
from launch.tools import Tool


def policy(**changes: object):
    settings = dict(network_mode="gateway", internet_access=True, egress_allow="", lan_access=True, host_ports="",
                    resolver_hosts=None, tool=Tool.CLAUDE, environ={}, builder_api_port=None,
                    host_addresses=["127.0.0.1", "172.17.0.1", "192.0.2.2", "fd00::2"], agent_uid=1000)
    settings.update(changes)
    return plan_policy(**settings)


def output_chain(ruleset: str) -> list[str]:
    chain = ruleset.split("chain output {", 1)[1].split("}\n  chain input", 1)[0]
    return [line.strip() for line in chain.splitlines() if line.strip()]


def test_the_host_metadata_and_foreign_dns_close_before_the_lan_opens() -> None:
    rules = output_chain(nft_ruleset(policy()))
    lan = next(i for i, rule in enumerate(rules) if "10.0.0.0/8" in rule)
    for closed in ("@host4", "169.254.0.0/16", "fd00:ec2::254", "th dport { 53, 853 }"):
        position = next(i for i, rule in enumerate(rules) if closed in rule)
        assert position < lan and rules[position].endswith("goto closed")
    assert rules[1] == 'oif "lo" accept'
    assert rules[-1] == "accept"  # the internet, by default
    assert f"meta skuid {RESOLVER_UID} ip daddr @dns4" in rules[3]
    ruleset = nft_ruleset(policy())
    assert "172.17.0.1" in ruleset.split("set host4", 1)[1].split("\n", 1)[0]


def test_internet_off_keeps_the_lan_and_lan_off_closes_it() -> None:
    rules = output_chain(nft_ruleset(policy(internet_access=False)))
    assert any("10.0.0.0/8" in r and r.endswith("accept") for r in rules) and rules[-1] == "goto closed"
    rules = output_chain(nft_ruleset(policy(lan_access=False)))
    assert any("10.0.0.0/8" in r and r.endswith("goto closed") for r in rules) and rules[-1] == "accept"


def test_an_allow_list_lets_only_its_addresses_and_resolved_names_out() -> None:
    planned = policy(egress_allow="198.51.100.2 *.npmjs.org api.anthropic.com 2001:db8::/32")
    assert planned.internet is Internet.ALLOW_LIST
    ruleset = nft_ruleset(planned)
    assert "elements = { 198.51.100.2/32 }" in ruleset and "elements = { 2001:db8::/32 }" in ruleset
    rules = output_chain(ruleset)
    assert rules[-5:] == ["ip daddr @allow4 accept", "ip6 daddr @allow6 accept", "ip daddr @names4 accept",
                          "ip6 daddr @names6 accept", "goto closed"]
    options = dnsmasq_options(planned)
    assert "--server=/npmjs.org/@UPSTREAM@" in options and "--server=@UPSTREAM@" not in options
    assert "--nftset=/npmjs.org/api.anthropic.com/4#inet#llm_docker#names4,6#inet#llm_docker#names6" in options


def test_internet_off_wins_over_an_allow_list() -> None:
    planned = policy(internet_access=False, egress_allow="198.51.100.2")
    assert planned.internet is Internet.NONE and planned.allow_networks == ()


def test_presets_and_bad_entries() -> None:
    domains, networks = parse_egress_allow("@agent @registries", tool=Tool.CLAUDE,
                                           environ={"ANTHROPIC_BASE_URL": "https://llm.corp.example:8443/v1"})
    assert "api.anthropic.com" in domains and "registry.npmjs.org" in domains and "llm.corp.example" in domains
    assert set(PRESETS["registries"]) <= set(domains) and networks == ()
    for bad in ("@nope", "not_a_domain", "http://x.com", "localhost", "1.2.3.4/99"):
        with pytest.raises(NetworkSettingError):
            parse_egress_allow(bad)


def test_host_ports_and_builder_api_port() -> None:
    assert parse_host_ports("5432, 8080 5432") == (5432, 8080)
    with pytest.raises(NetworkSettingError):
        parse_host_ports("0")
    assert policy(host_ports="5432", builder_api_port=6666).host_ports == (5432, 6666)


def test_the_resolvers_uid_is_never_the_agents() -> None:
    with pytest.raises(NetworkSettingError):
        policy(agent_uid=RESOLVER_UID)


def test_host_mode_has_no_policy() -> None:
    assert policy(network_mode="host").host_network


def test_probes_check_the_walls_with_udp_and_the_grants() -> None:
    planned = policy(lan_access=False, egress_allow="198.51.100.2", host_ports="5432")
    arguments = [p.argument() for p in probes(planned)]
    assert "resolve:dns:resolver.llm-docker.internal:0" in arguments
    for wall in ("block:udp:@gateway:9", "block:udp:169.254.169.254:80", "block:udp:@dns:53",
                 "block:udp:192.0.2.2:9", "block:udp:192.168.0.1:9", "block:udp:203.0.113.1:443",
                 "block:udp6:fd00::2:9"):
        assert wall in arguments
    assert "open:tcp:127.0.0.2:5432" in arguments and "open:udp:198.51.100.2:443" in arguments
    assert not any(a.startswith("block:") and ":127." in a for a in arguments)


def test_the_hosts_own_addresses_are_read_from_proc() -> None:
    trie = "Main:\n  +-- 0.0.0.0/0 3 0 4\n     |-- 127.0.0.1\n        /32 host LOCAL\n" \
           "     |-- 172.17.0.1\n        /32 host LOCAL\n     |-- 172.17.255.255\n        /32 link BROADCAST\n"
    assert local_ipv4_addresses(trie) == ("127.0.0.1", "172.17.0.1")
    assert local_ipv6_addresses("fd000000000000000000000000000002 04 40 00 82     eth0\n") == ("fd00::2",)


def test_settings_are_validated_at_load(tmp_path) -> None:
    (tmp_path / "llm-docker.conf").write_text("EGRESS_ALLOW=*.npmjs.org 10.0.0.0/8\nHOST_PORTS=5432\n"
                                              "LAN_ACCESS=false\nNETWORK_MODE=gateway\n")
    config = load_config(tmp_path, {}, tmp_path).config
    assert config.egress_allow == "*.npmjs.org 10.0.0.0/8" and not config.lan_access
    assert config.gateway_image_tag == "llm-docker-gateway:latest" and Config().network_mode == "gateway"
    (tmp_path / "llm-docker.conf").write_text("EGRESS_ALLOW=@nothing\n")
    with pytest.raises(ConfigError, match="EGRESS_ALLOW"):
        load_config(tmp_path, {}, tmp_path)
    (tmp_path / "llm-docker.conf").write_text("NETWORK_MODE=bridge\n")
    with pytest.raises(ConfigError, match="NETWORK_MODE"):
        load_config(tmp_path, {}, tmp_path)


def test_a_model_endpoint_the_policy_closes_is_named_before_the_launch() -> None:
    host = {"ANTHROPIC_BASE_URL": "http://host.docker.internal:8080"}
    assert "add 8080 to HOST_PORTS" in (model_endpoint_problem(policy(), host) or "")
    assert model_endpoint_problem(policy(host_ports="8080"), host) is None
    vendor = {"ANTHROPIC_BASE_URL": "https://api.anthropic.com"}
    assert model_endpoint_problem(policy(), vendor) is None
    assert "EGRESS_ALLOW does not list" in (model_endpoint_problem(policy(egress_allow="@npm"), vendor) or "")
    assert model_endpoint_problem(policy(egress_allow="*.anthropic.com"), vendor) is None
    assert "INTERNET_ACCESS=false" in (model_endpoint_problem(policy(internet_access=False), vendor) or "")
    assert model_endpoint_problem(policy(network_mode="host"), host) is None


# -- a gateway kept for the slot's next launch ---------------------------------------------


def _kept_gateway(tmp_path, agent: str, *, keep_seconds: int = 600, **changes: object):
    from launch.network import gateway_slot_key, plan_gateway

    return plan_gateway(policy(**changes), agent_name=agent, agent_user="1000:1000",
                        labels={"io.llm-docker.launch-id": agent}, label_prefix="io.llm-docker.",
                        hostname="cage", image="gw:latest", published={2222: 8801}, loopback="127.0.0.1",
                        state_home=tmp_path, keep_seconds=keep_seconds,
                        slot_key=gateway_slot_key(1000, Tool.CLAUDE, "app-1234-0123456789ab", 2))


def test_link_local_host_addresses_stay_out_of_the_ruleset_their_rule_closes_them() -> None:
    """Every container's veth brings the host a new fe80:: address: in the ruleset, each
    launch's gateway would differ from the last, and none could be kept for the next."""
    planned = policy(host_addresses=["172.17.0.1", "fe80::42:6cff:fefd:8013", "fd00::2"])
    assert planned.host_addresses == ("172.17.0.1", "fd00::2")
    assert any("fe80::/10" in rule and rule.endswith("goto closed")  # still closed, by its own rule
               for rule in output_chain(nft_ruleset(planned)))


def test_two_launches_of_a_slot_plan_the_same_kept_gateway_but_its_labels_and_folder(tmp_path) -> None:
    from launch.network import GATEWAY_LEASE_TARGET

    first, second = _kept_gateway(tmp_path, "agent-aaaa"), _kept_gateway(tmp_path, "agent-bbbb")
    assert first.keep is not None and second.keep is not None
    assert first.keep.lease_folder != second.keep.lease_folder  # named after each launch
    assert first.keep.lease_folder.is_relative_to(tmp_path / "gateways")
    digest = "io.llm-docker.gateway-reuse"
    assert first.create["Labels"][digest] == second.create["Labels"][digest]
    assert first.create["Labels"]["io.llm-docker.gateway-slot"] == "1000.claude.app-1234-0123456789ab.2"
    mounts = {m["Target"]: m for m in first.create["HostConfig"]["Mounts"]}
    assert mounts[GATEWAY_LEASE_TARGET]["Source"] == str(first.keep.lease_folder)
    assert "LLM_DOCKER_KEEP_SECONDS=600" in first.create["Env"]


@pytest.mark.parametrize("change", [dict(internet_access=False), dict(egress_allow="198.51.100.2"),
                                    dict(lan_access=False), dict(host_addresses=["172.17.0.1", "172.18.0.1"]),
                                    dict(keep_seconds=60)])
def test_whatever_the_gateway_enforces_changes_its_reuse_digest(tmp_path, change: dict[str, object]) -> None:
    """A launch takes a kept gateway only with this digest equal: a policy that changed (a
    new host address to close, too) never runs on a gateway made for the old one."""
    digest = "io.llm-docker.gateway-reuse"
    before = _kept_gateway(tmp_path, "agent-aaaa").create["Labels"][digest]
    assert _kept_gateway(tmp_path, "agent-bbbb", **change).create["Labels"][digest] != before


def test_no_keeping_with_host_ports_or_when_switched_off(tmp_path) -> None:
    """HOST_PORTS sockets belong to the launch that relays them: such a gateway ends with it."""
    assert _kept_gateway(tmp_path, "agent-aaaa", host_ports="8080").keep is None
    hosts = tmp_path / "hosts"
    hosts.write_text("192.0.2.9 build.lan\n")  # its contents may change: no digest sees them
    assert _kept_gateway(tmp_path, "agent-aaaa", resolver_hosts=hosts).keep is None
    off = _kept_gateway(tmp_path, "agent-aaaa", keep_seconds=0)
    assert off.keep is None and "LLM_DOCKER_KEEP_SECONDS=0" in off.create["Env"]
    assert "io.llm-docker.gateway-slot" not in off.create["Labels"]
