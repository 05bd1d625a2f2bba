"""The optional `INSTALL_*` groups of the image: what each installs, and from where.

Every group installs only from the registries a corporate or air-gapped mirror can
carry — Debian's packages, the npm registry and PyPI — with the installed versions
recorded in the image (`/opt/llm-docker/versions/<group>.txt`). Nothing is piped from
the internet into a shell. What a group's upstream counterpart took from elsewhere
(GitHub release binaries, `cargo install --git`, `curl | bash` installers) is named
in `outside`, and the build says so when the group is enabled.
"""

from __future__ import annotations

import dataclasses

from launch.config import Config


@dataclasses.dataclass(frozen=True)
class InstallGroup:
    """One build-time group; `key` is its setting (`INSTALL_<NAME>`)."""

    name: str
    apt: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    outside: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"INSTALL_{self.name.upper()}"

    def enabled(self, config: Config) -> bool:
        return bool(getattr(config, self.key.lower()))


#: In Dockerfile order. A group's layer and every layer after it rebuild when its flag
#: flips, so the groups users flip most often come last.
GROUPS: tuple[InstallGroup, ...] = (
    # sshd for LLM_DOCKER_SSH_ENABLED (rarely flipped, so first); nss_wrapper gives the
    # container's uid — absent from the image's /etc/passwd — a login name for sshd only.
    InstallGroup("ssh", apt=("openssh-server", "openssh-sftp-server", "libnss-wrapper")),
    InstallGroup("tmux_vanilla", apt=("tmux",)),
    InstallGroup("tmux_team", apt=("tmux",)),
    InstallGroup("cpp", apt=("build-essential", "cmake", "gdb", "pkg-config")),
    InstallGroup("llvm_clang", apt=("clang", "lld", "lldb", "llvm", "clang-format", "clang-tidy", "clangd",
                                    "build-essential", "cmake")),
    InstallGroup("ruby", apt=("ruby-full", "ruby-dev", "bundler", "build-essential"),
                 outside=("cocoapods and rbenv (rubygems.org / GitHub): `gem install cocoapods` in the container "
                          "if your network allows",)),
    InstallGroup("media", apt=("ffmpeg", "sox", "pipx"), pip=("yt-dlp",)),
    InstallGroup("quake", apt=("clang", "make", "libsdl2-dev")),
    InstallGroup("ns", npm=("nativescript", "n")),
    InstallGroup("security", apt=("nmap", "sqlmap", "hydra", "john", "masscan", "whois", "dnsutils",
                                  "netcat-openbsd", "tcpdump", "gobuster", "dirb", "wfuzz"),
                 outside=("amass, nuclei, nikto and feroxbuster (GitHub release binaries / not in Debian main)",)),
    InstallGroup("browsing", apt=("chromium", "fonts-liberation"), npm=("playwright-core",),
                 outside=("chromium-headless-shell and the hyperframes skill (download at first use); "
                          "Debian's chromium runs headless with --headless",)),
    InstallGroup("tmux_recon", apt=("tmux",),
                 outside=("gavraz/recon (built from GitHub with cargo)",)),
    InstallGroup("tmux_codeman", apt=("tmux",),
                 outside=("Ark0N/Codeman (its installer is `curl | bash` from GitHub)",)),
    InstallGroup("tmux_claude", apt=("tmux",),
                 outside=("nielsgroen/claude-tmux (built from GitHub with cargo)",)),
)


def outside_notes(config: Config) -> list[str]:
    """One line per enabled group whose upstream software this build cannot install."""
    return [f"{group.key}: not installed — {note}" for group in GROUPS if group.enabled(config)
            for note in group.outside]
