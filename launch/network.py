"""The network policy of a launch: settings -> policy -> gateway container + agent network.

Pure planning, no effects. The policy is enforced OUTSIDE the agent's reach: a per-slot
gateway container (`image/gateway/`) holds the only `NET_ADMIN` of the slot, loads the
nftables ruleset planned here into its own network namespace and runs the policy's
resolver (Debian's dnsmasq); the agent's container joins that namespace
(`NetworkMode: container:<gateway>`) with every capability dropped, so the rules apply to
every packet it sends and no process of the cage can change them.

Why a shared namespace and not routing through a gateway: the agent's namespace would need
`NET_ADMIN` to get its route, and a route is something a process with that capability can
change; here the rules sit in the namespace the agent uses, owned by a container it cannot
reach (another PID namespace, no capabilities, no Docker socket).

What every mode closes, whatever the settings: the host (its loopback, every address it
has at launch, the bridge gateway, its abstract unix sockets — another network namespace),
link-local and cloud metadata (169.254.0.0/16, fe80::/10, fd00:ec2::254), DNS to anyone but
the policy's resolver (port 53 and DoT 853), and IPv6 (off in the gateway's namespace, and
the same rules drop it). Host services are reachable only as `host.docker.internal:PORT`
for the ports of `HOST_PORTS` (plus builder-api's with -a/-ab), through a forwarder the
supervisor runs on a unix socket only the gateway mounts (`supervisor/tasks/host_ports.py`).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from launch.errors import ConfigError
from launch.tools import Tool

#: The gateway image `llm-docker image build` makes from the same Debian base as the agents.
GATEWAY_IMAGE = "llm-docker-gateway:latest"
#: The uid of the policy's resolver inside the gateway: the one process whose packets may
#: reach the upstream resolvers (`meta skuid`). The agent may never run as it.
RESOLVER_UID = 65353
#: The address inside the namespace where `host.docker.internal` answers (the HOST_PORTS
#: forwarders listen here); on the namespace's own loopback, so nothing leaves it.
HOST_ADDRESS = "127.0.0.2"
#: A name only the policy's resolver knows: the verification resolves it.
RESOLVER_PROBE_NAME = "resolver.llm-docker.internal"
#: Where the gateway finds the HOST_PORTS sockets and the resolver's extra hosts file.
GATEWAY_PORTS_TARGET = "/run/llm-docker-gateway/ports"
#: Where a kept gateway listens for the slot's next launch (`gateway.sock`); mounted only there.
GATEWAY_LEASE_TARGET = "/run/llm-docker-gateway/lease"
GATEWAY_LEASE_SOCKET = "gateway.sock"
GATEWAY_HOSTS_TARGET = "/etc/llm-docker/hosts"
GATEWAY_CAPABILITIES = ("NET_ADMIN", "NET_BIND_SERVICE", "SETUID", "SETGID")

LAN4 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
LAN6 = ("fc00::/7",)
LINK_LOCAL4 = ("169.254.0.0/16",)
LINK_LOCAL6 = ("fe80::/10", "fd00:ec2::254/128")
#: Blocked-destination probes that never reach anything real even if the wall were broken
#: (documentation range), besides the host and metadata addresses.
BLOCKED_INTERNET_PROBE = "203.0.113.1"
BLOCKED_LAN_PROBE = "192.168.0.1"

#: Named parts of EGRESS_ALLOW (`@name`), expanded here so the shipped list is documented
#: in one place (README, "Network"). `@agent` is the launched tool's provider, plus the
#: host of ANTHROPIC_BASE_URL / OPENAI_BASE_URL when set.
PRESETS: dict[str, tuple[str, ...]] = {
    "claude": ("api.anthropic.com", "statsig.anthropic.com", "console.anthropic.com", "claude.ai",
               "*.claude.ai", "sentry.io", "*.sentry.io"),
    "opencode": ("opencode.ai", "*.opencode.ai", "models.dev", "api.anthropic.com", "api.openai.com",
                 "openrouter.ai", "api.z.ai"),
    "npm": ("registry.npmjs.org", "*.npmjs.org", "*.npmjs.com"),
    "pypi": ("pypi.org", "files.pythonhosted.org"),
    "debian": ("deb.debian.org", "security.debian.org"),
    "github": ("github.com", "*.github.com", "*.githubusercontent.com", "ghcr.io"),
}
PRESETS["registries"] = PRESETS["npm"] + PRESETS["pypi"] + PRESETS["debian"] + PRESETS["github"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class NetworkSettingError(ConfigError, ValueError):
    """A network setting that cannot be enforced; the message says what is expected (exit 2).
    Also a `ValueError`: the config's validators (`config._setting(check=...)`) raise that."""


class Internet(enum.Enum):
    ALL = "all"
    ALLOW_LIST = "allow-list"
    NONE = "none"


@dataclasses.dataclass(frozen=True)
class Probe:
    """One check run from inside the agent's namespace, as the agent's uid.

    `kind`: `block` (a UDP datagram must be refused by the wall at once: EPERM from the
    output hook, or no route — it never leaves the namespace), `open` (must not be refused:
    one datagram, or a TCP connect to a local HOST_PORTS forwarder), `resolve` (the
    policy's resolver answers `target`). UDP, because only a local refusal yields EPERM:
    a TCP reset or timeout could as well come from the far end. `target` may be `@gateway`
    (the bridge gateway = the host) or `@dns` (each upstream resolver), which only the
    gateway knows."""

    kind: str
    protocol: str
    target: str
    port: int = 0

    def argument(self) -> str:
        return f"{self.kind}:{self.protocol}:{self.target}:{self.port}"


@dataclasses.dataclass(frozen=True)
class NetworkPolicy:
    """What one slot's cage may reach. `host_network` = NETWORK_MODE=host (no policy)."""

    host_network: bool = False
    internet: Internet = Internet.ALL
    allow_domains: tuple[str, ...] = ()
    allow_networks: tuple[str, ...] = ()
    lan: bool = True
    host_ports: tuple[int, ...] = ()
    #: The host's own addresses at launch (always closed, besides the bridge gateway).
    host_addresses: tuple[str, ...] = ()
    #: An extra hosts file the resolver answers from (local names; tests map names here).
    resolver_hosts: Path | None = None
    #: Container ports published by the gateway (SSH, Codeman): let in.
    inbound_ports: tuple[int, ...] = ()

    def describe(self) -> str:
        """One line for `llm-docker status` and the log."""
        if self.host_network:
            return "host network (NETWORK_MODE=host: no policy)"
        internet = {Internet.ALL: "internet", Internet.NONE: "no internet",
                    Internet.ALLOW_LIST: f"internet only to {' '.join(self.allow_domains + self.allow_networks)}"}
        parts = [internet[self.internet], "LAN" if self.lan else "no LAN"]
        parts.append(f"host ports {','.join(map(str, self.host_ports))}" if self.host_ports else "no host")
        return "; ".join(parts)


# -- settings ----------------------------------------------------------------------------


def parse_host_ports(text: str) -> tuple[int, ...]:
    """`HOST_PORTS`: space- or comma-separated TCP ports (1..65535)."""
    ports: list[int] = []
    for word in re.split(r"[\s,]+", text.strip()):
        if not word:
            continue
        if not word.isdigit() or not 0 < int(word) < 65536:
            raise NetworkSettingError(f"expected TCP ports (1-65535) separated by spaces, got '{word}'")
        if int(word) not in ports:
            ports.append(int(word))
    return tuple(ports)


def _domain(word: str) -> str:
    name = word.lower().rstrip(".")
    bare = name[2:] if name.startswith("*.") else name
    labels = bare.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise NetworkSettingError(f"'{word}' is neither a domain (api.example.com, *.example.com), "
                                  "an IP address nor a CIDR, nor a preset (@registries)")
    return name


def parse_egress_allow(text: str, *, tool: Tool | None = None,
                       environ: Mapping[str, str] | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`EGRESS_ALLOW` -> (domains, networks). Presets (`@name`) expand to their documented
    domains; `@agent` to the tool's provider (plus a custom `*_BASE_URL` host). Raises
    `NetworkSettingError` on anything that is not a domain, IP, CIDR or preset."""
    domains: list[str] = []
    networks: list[str] = []
    for word in text.split():
        if word.startswith("@"):
            name = word[1:].lower()
            if name == "agent":
                names = list(PRESETS[(tool or Tool.CLAUDE).value])
                for key in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
                    host = urlsplit((environ or {}).get(key, "")).hostname
                    if host:
                        names.append(host)
            elif name in PRESETS:
                names = list(PRESETS[name])
            else:
                raise NetworkSettingError(f"unknown preset '{word}' (known: @agent, "
                                          f"{', '.join('@' + key for key in PRESETS)})")
            for entry in names:
                _add_entry(entry, domains, networks)
            continue
        _add_entry(word, domains, networks)
    return tuple(domains), tuple(networks)


def _add_entry(word: str, domains: list[str], networks: list[str]) -> None:
    try:
        network = ipaddress.ip_network(word, strict=False)
    except ValueError:
        name = _domain(word)
        if name not in domains:
            domains.append(name)
        return
    if str(network) not in networks:
        networks.append(str(network))


def check_egress_allow(text: str) -> None:
    """Config-time validation of EGRESS_ALLOW (`launch.config`)."""
    parse_egress_allow(text)


# -- planning ----------------------------------------------------------------------------


def plan_policy(*, network_mode: str, internet_access: bool, egress_allow: str, lan_access: bool,
                host_ports: str, resolver_hosts: Path | None, tool: Tool, environ: Mapping[str, str],
                builder_api_port: int | None, host_addresses: Iterable[str],
                inbound_ports: Iterable[int] = (), agent_uid: int | None = None) -> NetworkPolicy:
    """The policy of one launch from its settings (all validated again here: the planner
    trusts nothing it did not check)."""
    if network_mode == "host":
        return NetworkPolicy(host_network=True)
    if agent_uid == RESOLVER_UID:
        raise NetworkSettingError(f"uid {RESOLVER_UID} is reserved for the policy's resolver; "
                                  "launch as another user or set NETWORK_MODE=host")
    domains, networks = parse_egress_allow(egress_allow, tool=tool, environ=environ)
    if not internet_access:
        internet = Internet.NONE
    elif domains or networks:
        internet = Internet.ALLOW_LIST
    else:
        internet = Internet.ALL
    ports = list(parse_host_ports(host_ports))
    if builder_api_port is not None and builder_api_port not in ports:
        ports.append(builder_api_port)
    return NetworkPolicy(
        internet=internet,
        allow_domains=domains if internet is Internet.ALLOW_LIST else (),
        allow_networks=networks if internet is Internet.ALLOW_LIST else (),
        lan=lan_access, host_ports=tuple(ports),
        # link-local ones are closed by the ruleset's own rules, whatever they are; they come
        # and go with every container's veth, and would make each launch's ruleset differ
        host_addresses=tuple(dict.fromkeys(str(ipaddress.ip_address(a)) for a in host_addresses
                                           if not ipaddress.ip_address(a).is_link_local)),
        resolver_hosts=resolver_hosts, inbound_ports=tuple(sorted(set(inbound_ports))))


def _elements(values: Iterable[str]) -> str:
    listed = ", ".join(values)
    return f" elements = {{ {listed} }};" if listed else ""


def _split_families(values: Iterable[str]) -> tuple[list[str], list[str]]:
    v4: list[str] = []
    v6: list[str] = []
    for value in values:
        (v6 if ipaddress.ip_network(value, strict=False).version == 6 else v4).append(value)
    return v4, v6


#: A closed destination is rejected, not silently dropped, so tools fail at once instead of
#: hanging: TCP gets a reset, anything else an ICMP "administratively prohibited" — and a
#: local sender gets EPERM from the output hook, which no remote host can ever produce:
#: that is what the checks from the cage look for.
REJECT = "goto closed"


def nft_ruleset(policy: NetworkPolicy) -> str:
    """The nftables ruleset the gateway loads into the slot's namespace.

    Output is default-deny; the order matters: the namespace's own loopback, replies,
    the resolver's upstream queries (its uid only), then every always-closed destination
    (DNS elsewhere, link-local/metadata, the host) BEFORE the LAN and internet verdicts —
    the bridge gateway is in 172.16/12 and must never be let in as "LAN". Input lets in
    only replies and the published ports."""
    host4, host6 = _split_families(policy.host_addresses)
    allow4, allow6 = _split_families(policy.allow_networks)
    lines = [
        "table inet llm_docker {",
        f"  set host4 {{ type ipv4_addr; flags interval;{_elements(host4)} }}",
        f"  set host6 {{ type ipv6_addr; flags interval;{_elements(host6)} }}",
        "  set dns4 { type ipv4_addr; }",
        "  set dns6 { type ipv6_addr; }",
        f"  set allow4 {{ type ipv4_addr; flags interval;{_elements(allow4)} }}",
        f"  set allow6 {{ type ipv6_addr; flags interval;{_elements(allow6)} }}",
        "  set names4 { type ipv4_addr; flags timeout; }",
        "  set names6 { type ipv6_addr; flags timeout; }",
        "  chain closed {",
        "    meta l4proto tcp reject with tcp reset",
        "    reject with icmpx admin-prohibited",
        "  }",
        "  chain output {",
        "    type filter hook output priority filter; policy drop;",
        '    oif "lo" accept',
        "    ct state established,related accept",
        f"    meta skuid {RESOLVER_UID} ip daddr @dns4 meta l4proto {{ tcp, udp }} th dport 53 accept",
        f"    meta skuid {RESOLVER_UID} ip6 daddr @dns6 meta l4proto {{ tcp, udp }} th dport 53 accept",
        "    meta l4proto { tcp, udp } th dport { 53, 853 } " + REJECT,
        f"    ip daddr {{ {', '.join(LINK_LOCAL4)} }} " + REJECT,
        f"    ip6 daddr {{ {', '.join(LINK_LOCAL6)} }} " + REJECT,
        "    ip daddr @host4 " + REJECT,
        "    ip6 daddr @host6 " + REJECT,
        "    ip daddr { 0.0.0.0/8, 127.0.0.0/8, 224.0.0.0/4, 255.255.255.255 } " + REJECT,
        "    ip6 daddr { ::1, ff00::/8 } " + REJECT,
    ]
    lan_verdict = "accept" if policy.lan else REJECT
    lines += [f"    ip daddr {{ {', '.join(LAN4)} }} {lan_verdict}",
              f"    ip6 daddr {{ {', '.join(LAN6)} }} {lan_verdict}"]
    if policy.internet is Internet.ALL:
        lines.append("    accept")
    elif policy.internet is Internet.ALLOW_LIST:
        lines += ["    ip daddr @allow4 accept", "    ip6 daddr @allow6 accept",
                  "    ip daddr @names4 accept", "    ip6 daddr @names6 accept"]
    if policy.internet is not Internet.ALL:
        lines.append("    " + REJECT)
    inbound = ", ".join(str(port) for port in policy.inbound_ports)
    lines += [
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        *([f"    tcp dport {{ {inbound} }} accept"] if inbound else []),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _dnsmasq_domain(name: str) -> str:
    """dnsmasq's `/example.com/` matches the domain and every name under it, so
    `*.example.com` and `example.com` both become it (documented: a wildcard includes the
    domain itself)."""
    return name[2:] if name.startswith("*.") else name


def dnsmasq_options(policy: NetworkPolicy) -> list[str]:
    """The policy's resolver: dnsmasq on the namespace's loopback, as RESOLVER_UID.

    With an allow-list it forwards ONLY the allowed domains (a name outside the list is
    never sent upstream, so DNS is no side channel) and puts every address it answers for
    them into the nft sets the ruleset lets through. The upstream servers are the ones
    Docker gave the gateway (`@UPSTREAM@` is replaced by the gateway with them)."""
    options = ["--no-hosts", "--no-resolv", "--no-poll", "--bind-interfaces",
               "--listen-address=127.0.0.1", "--port=53", "--user=llm-docker-resolver",
               "--group=llm-docker-resolver", "--cache-size=1000", "--domain-needed", "--bogus-priv",
               f"--host-record={RESOLVER_PROBE_NAME},{HOST_ADDRESS}",
               f"--host-record=host.docker.internal,{HOST_ADDRESS}"]
    if policy.resolver_hosts is not None:
        options.append(f"--addn-hosts={GATEWAY_HOSTS_TARGET}")
    if policy.internet is Internet.ALLOW_LIST:
        domains = list(dict.fromkeys(_dnsmasq_domain(d) for d in policy.allow_domains))
        for domain in domains:
            options.append(f"--server=/{domain}/@UPSTREAM@")
        if domains:
            options.append(f"--nftset=/{'/'.join(domains)}/4#inet#llm_docker#names4,6#inet#llm_docker#names6")
    else:
        options.append("--server=@UPSTREAM@")
    return options


def probes(policy: NetworkPolicy) -> tuple[Probe, ...]:
    """What the supervisor checks from inside the cage before the agent's first
    instruction (and `llm-docker status --check` again): the resolver answers, granted
    host ports and allow-listed addresses are not refused by the wall, and the host, the
    metadata service, outside resolvers and whatever the policy closes are refused at once.
    A blocked probe never leaves the namespace when the wall holds."""
    found = [Probe("resolve", "dns", RESOLVER_PROBE_NAME),
             Probe("block", "udp", "@gateway", 9),
             Probe("block", "udp", "169.254.169.254", 80),
             Probe("block", "udp6", "fd00:ec2::254", 80),
             Probe("block", "udp", "@dns", 53)]
    found += [Probe("block", "udp6" if ":" in address else "udp", address, 9)
              for address in policy.host_addresses
              if not ipaddress.ip_address(address).is_loopback and not ipaddress.ip_address(address).is_link_local][:4]
    found += [Probe("open", "tcp", HOST_ADDRESS, port) for port in policy.host_ports]
    if not policy.lan:
        found.append(Probe("block", "udp", BLOCKED_LAN_PROBE, 9))
    if policy.internet is not Internet.ALL and not _allowed(policy, BLOCKED_INTERNET_PROBE):
        found.append(Probe("block", "udp", BLOCKED_INTERNET_PROBE, 443))
    for network in policy.allow_networks[:1]:
        first = ipaddress.ip_network(network)
        address = first.network_address if first.num_addresses == 1 else next(first.hosts())
        found.append(Probe("open", "udp6" if first.version == 6 else "udp", str(address), 443))
    return tuple(found)


def _allowed(policy: NetworkPolicy, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(n) for n in policy.allow_networks)


# -- the gateway container -----------------------------------------------------------------


def gateway_name(container_name: str) -> str:
    """The gateway of a slot is named after its agent container, so recovery finds it from
    the journal's container name alone."""
    return f"{container_name}-gateway"


LABEL_GATEWAY_FOR = "gateway-for"
LABEL_POLICY = "network-policy"
LABEL_PROBES = "network-probes"
LABEL_PROBE_USER = "network-probe-user"
#: A kept gateway's slot (`gateway_slot_key`): the next launch of that slot looks for it.
LABEL_GATEWAY_SLOT = "gateway-slot"
#: The digest of what a kept gateway enforces (`reuse_digest`): reused only when equal.
LABEL_GATEWAY_REUSE = "gateway-reuse"


def gateway_create(policy: NetworkPolicy, *, image: str, hostname: str, labels: Mapping[str, str],
                   label_prefix: str, agent_name: str, agent_user: str, ports_folder: Path | None,
                   published: Mapping[int, int], loopback: str, keep: GatewayKeep | None = None) -> dict[str, Any]:
    """The Engine API create body of a slot's gateway: the one container of the slot with
    `NET_ADMIN` (plus what dnsmasq needs to bind port 53 and drop to its uid), IPv6 off,
    publishing the slot's ports, with the ruleset and resolver options in its environment
    (not secret: `docker inspect` may show them)."""
    mounts = []
    if ports_folder is not None:
        mounts.append({"Type": "bind", "Source": str(ports_folder), "Target": GATEWAY_PORTS_TARGET,
                       "ReadOnly": False})
    if policy.resolver_hosts is not None:
        mounts.append({"Type": "bind", "Source": str(policy.resolver_hosts), "Target": GATEWAY_HOSTS_TARGET,
                       "ReadOnly": True})
    if keep is not None:
        mounts.append({"Type": "bind", "Source": str(keep.lease_folder), "Target": GATEWAY_LEASE_TARGET,
                       "ReadOnly": False})
    host_config: dict[str, Any] = {
        "Init": True,
        "NetworkMode": "bridge",
        "ExtraHosts": [f"host.docker.internal:{HOST_ADDRESS}"],
        "CapDrop": ["ALL"],
        "CapAdd": list(GATEWAY_CAPABILITIES),
        "SecurityOpt": ["no-new-privileges:true"],
        "Sysctls": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"},
        "Mounts": mounts,
        "Memory": 64 * 1024 * 1024,
        "PidsLimit": 64,
        # the engine removes it once it ends: ending it is one signal, and nothing waits
        # for the teardown of its network (`supervisor.gateway.GatewayRun`)
        "AutoRemove": True,
    }
    body: dict[str, Any] = {
        "Image": image,
        "Hostname": hostname,
        "Env": [
            "LLM_DOCKER_NFT=" + nft_ruleset(policy),
            "LLM_DOCKER_DNSMASQ=" + "\n".join(dnsmasq_options(policy)),
            "LLM_DOCKER_HOST_PORTS=" + " ".join(str(p) for p in policy.host_ports),
            "LLM_DOCKER_HOST_ADDRESS=" + HOST_ADDRESS,
            "LLM_DOCKER_ALLOW_DOMAINS=" + " ".join(_dnsmasq_domain(d) for d in policy.allow_domains),
            # the checks it runs on itself, as the agent's uid, before it says "verified"
            "LLM_DOCKER_PROBES=" + " ".join(p.argument() for p in probes(policy)),
            "LLM_DOCKER_PROBE_USER=" + agent_user,
            # it lives as long as the supervisor's attach stream: stdin EOF ends it
            "LLM_DOCKER_LEASE=stdin",
            # then kept this long for the slot's next launch (0: it ends with its first lease)
            f"LLM_DOCKER_KEEP_SECONDS={keep.seconds if keep is not None else 0}",
        ],
        "Labels": {
            **labels,
            label_prefix + LABEL_GATEWAY_FOR: agent_name,
            label_prefix + LABEL_POLICY: policy.describe(),
            label_prefix + LABEL_PROBES: json.dumps([p.argument() for p in probes(policy)]),
            label_prefix + LABEL_PROBE_USER: agent_user,
        },
        # the lease: the supervisor attaches stdin before start; when that connection
        # closes (normal end, crash, SIGKILL), the engine closes stdin and the gateway ends
        "OpenStdin": True,
        "StdinOnce": True,
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "HostConfig": host_config,
    }
    if published:
        host_config["PortBindings"] = {f"{container}/tcp": [{"HostIp": loopback, "HostPort": str(host)}]
                                       for container, host in published.items()}
        body["ExposedPorts"] = {f"{container}/tcp": {} for container in published}
    if keep is not None:
        body["Labels"][label_prefix + LABEL_GATEWAY_SLOT] = keep.slot_key
        body["Labels"][label_prefix + LABEL_GATEWAY_REUSE] = reuse_digest(body)
    return body


@dataclasses.dataclass(frozen=True)
class GatewayKeep:
    """A gateway kept after its launch for the slot's next one (`GATEWAY_KEEP_SECONDS`):
    that launch's agent joins a namespace that exists already, instead of waiting for the
    engine to make one (the most of a launch's time above `docker run`)."""

    #: How long it waits for the slot's next launch, in seconds.
    seconds: int
    #: Which launches may take it: the user's, the tool's, the project's and the slot's.
    slot_key: str
    #: Host folder of its lease socket (`$LLM_DOCKER_HOME/gateways/<digest>/lease`).
    lease_folder: Path


def gateway_slot_key(uid: int, tool: Tool, project_key: str, slot: int | None) -> str:
    """What a kept gateway is labelled with, and found by: one slot of one project (its
    state key: name and a digest of its path), one tool and one user (a kept gateway is
    never another user's or another project's)."""
    return f"{uid}.{tool.value}.{project_key}.{slot if slot is not None else 0}"


def reuse_digest(body: Mapping[str, Any]) -> str:
    """The digest of everything a gateway enforces and offers — image, environment (the
    ruleset, the resolver, the checks), capabilities, published ports, mounts — but its
    labels (the launch that made it) and its lease folder (named after that launch): the
    next launch of the slot takes a kept gateway only when this is its own plan's digest."""
    normal = json.loads(json.dumps(body))
    normal.pop("Labels", None)
    host_config = normal.get("HostConfig") or {}
    for mount in host_config.get("Mounts") or ():
        if mount.get("Target") == GATEWAY_LEASE_TARGET:
            mount["Source"] = ""
    return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class GatewaySpec:
    """A slot's gateway: its name, create body, policy, and the checks that must pass
    before the agent starts."""

    name: str
    create: dict[str, Any]
    policy: NetworkPolicy
    probes: tuple[Probe, ...]
    #: `uid:gid` the checks run as: the agent's own.
    probe_user: str
    #: Host folder of the HOST_PORTS sockets (None without host ports).
    ports_folder: Path | None
    #: Kept for the slot's next launch after this one (None: it ends with this launch).
    keep: GatewayKeep | None = None


# -- host facts (pure parsers; `launch.hostfacts` reads the files) ---------------------------


def local_ipv4_addresses(fib_trie: str) -> tuple[str, ...]:
    """The host's own IPv4 addresses from `/proc/net/fib_trie` (`/32 host LOCAL` leaves)."""
    found: list[str] = []
    previous = ""
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|--"):
            previous = text[3:].strip()
        elif text.startswith("/32 host LOCAL") and previous and previous not in found:
            found.append(previous)
    return tuple(found)


def local_ipv6_addresses(if_inet6: str) -> tuple[str, ...]:
    """The host's own IPv6 addresses from `/proc/net/if_inet6`."""
    found: list[str] = []
    for line in if_inet6.splitlines():
        words = line.split()
        if words and len(words[0]) == 32:
            address = str(ipaddress.IPv6Address(int(words[0], 16)))
            if address not in found:
                found.append(address)
    return tuple(found)


GATEWAYS_FOLDER = "gateways"
#: The name of a gateway's host folder in `GATEWAYS_FOLDER` (`gateway_ports_folder`'s digest).
GATEWAY_FOLDER_NAME = re.compile(r"[0-9a-f]{12}")


def plan_gateway(policy: NetworkPolicy, *, agent_name: str, agent_user: str, labels: Mapping[str, str],
                 label_prefix: str, hostname: str, image: str, published: Mapping[int, int], loopback: str,
                 state_home: Path, keep_seconds: int = 0, slot_key: str = "") -> GatewaySpec:
    """A slot's gateway. Its HOST_PORTS sockets live in `$LLM_DOCKER_HOME/gateways/<name>/`,
    a folder no agent container mounts. It is kept for the slot's next launch when
    `keep_seconds` and `slot_key` say so, and it has neither HOST_PORTS (their sockets are
    the launch's own) nor a resolver hosts file; such a gateway ends with its launch."""
    name = gateway_name(agent_name)
    ports_folder = gateway_ports_folder(state_home, name) if policy.host_ports else None
    keep = None
    # not with HOST_PORTS (the launch's own relays) or a resolver hosts file (its contents
    # may change between launches, and the planned digest would not see it)
    if keep_seconds > 0 and slot_key and ports_folder is None and policy.resolver_hosts is None:
        keep = GatewayKeep(seconds=keep_seconds, slot_key=slot_key,
                           lease_folder=gateway_ports_folder(state_home, name).parent / "lease")
    create = gateway_create(policy, image=image, hostname=hostname, labels=labels, label_prefix=label_prefix,
                            agent_name=agent_name, agent_user=agent_user, ports_folder=ports_folder,
                            published=published, loopback=loopback, keep=keep)
    return GatewaySpec(name=name, create=create, policy=policy, probes=probes(policy), probe_user=agent_user,
                       ports_folder=ports_folder, keep=keep)


def gateway_ports_folder(state_home: Path, gateway: str) -> Path:
    """`$LLM_DOCKER_HOME/gateways/<short digest of the gateway's name>/ports`: short, because
    a unix socket's path has at most 107 bytes; derived from the name, so recovery finds it."""
    return state_home / GATEWAYS_FOLDER / hashlib.sha256(gateway.encode()).hexdigest()[:12] / "ports"


def join_gateway(body: dict[str, Any], gateway: str) -> None:
    """Make an agent's create body join its gateway's namespace. Docker refuses a hostname,
    extra hosts and published ports on a container that joins another's network: the
    gateway carries them (and its /etc/hosts and resolv.conf are the agent's)."""
    host_config = body["HostConfig"]
    host_config["NetworkMode"] = f"container:{gateway}"
    for key in ("ExtraHosts", "PortBindings"):
        host_config.pop(key, None)
    for key in ("Hostname", "ExposedPorts"):
        body.pop(key, None)


# -- does the policy let the agent reach its model? -----------------------------------------

MODEL_URL_VARIABLES = ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL")
HOST_ALIAS = "host.docker.internal"


def model_endpoint_problem(policy: NetworkPolicy, environ: Mapping[str, str]) -> str | None:
    """One line when a configured model endpoint (`*_BASE_URL`) is closed by the policy —
    said before the agent starts, because an agent CLI only retries and times out."""
    if policy.host_network:
        return None
    for variable in MODEL_URL_VARIABLES:
        url = urlsplit(environ.get(variable, ""))
        host = (url.hostname or "").lower()
        if not host:
            continue
        try:
            port = url.port or (443 if url.scheme == "https" else 80)
        except ValueError:
            continue
        if host == HOST_ALIAS:
            if port not in policy.host_ports:
                return (f"{variable} points at the host ({host}:{port}), which the network policy closes — "
                        f"add {port} to HOST_PORTS")
            continue
        if policy.internet is Internet.ALLOW_LIST and not _names_allowed(policy, host):
            return f"{variable} points at {host}, which EGRESS_ALLOW does not list — add it (or @agent)"
        if policy.internet is Internet.NONE and not _is_address(host):
            return f"{variable} points at {host}, but INTERNET_ACCESS=false closes the internet"
    return None


def _names_allowed(policy: NetworkPolicy, host: str) -> bool:
    if _is_address(host):
        return _allowed(policy, host)
    return any(host == domain or (domain.startswith("*.") and (host == domain[2:] or host.endswith(domain[1:])))
               for domain in policy.allow_domains)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
