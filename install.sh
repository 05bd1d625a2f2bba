#!/usr/bin/env bash
# Install llm-docker into a virtual environment of its own and link `cld`, `ocd` and
# `llm-docker` onto PATH. Re-running upgrades in place; `--uninstall` removes it again.
#
# Why a venv of its own: Debian 12 / Ubuntu 24.04 refuse `pip install` into /usr/bin/python3
# (externally managed), and a venv needs nothing but Python's venv module (python3-venv).
# pipx and uv are not used even when present: pipx on Debian is the same venv plus another
# package, and uv ignores the system CA store unless told (a TLS-inspecting proxy breaks it).
#
#   where            a user                                      root (for everyone)
#   venv (Linux)     ${XDG_DATA_HOME:-~/.local/share}/llm-docker/venv   /usr/local/lib/llm-docker/venv
#   venv (macOS)     ~/Library/Application Support/llm-docker/venv     /usr/local/lib/llm-docker/venv
#   commands         ~/.local/bin                                /usr/local/bin
#
# System pieces (python3-venv, mmdebstrap and debootstrap, the Docker engine on Linux) are installed only as
# root, or through sudo with the user's consent (a prompt, or --yes); otherwise the script
# prints the command to run as root and stops before it changed anything.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: ./install.sh [--yes] [--no-engine]     install, or upgrade in place
       ./install.sh --uninstall [--purge]     remove the venv and the commands

  --yes        let sudo add the missing system pieces (python3-venv, mmdebstrap, debootstrap,
               the Docker engine) without asking
  --no-engine  do not install or start the Docker engine
  --uninstall  remove the venv and the cld/ocd/llm-docker links; your config folder
               (~/.llm-docker, or $LLM_DOCKER_HOME) stays unless --purge is given
  --purge      with --uninstall: remove the config folder too (settings, state, SSH keys)
EOF
}

say() { echo "install.sh: $*"; }
warn() { echo "install.sh: warning: $*" >&2; }
die() { echo "install.sh: $*" >&2; exit 1; }

yes=false engine=true mode=install purge=false
for arg in "$@"; do
    case $arg in
        -y | --yes) yes=true ;;
        --no-engine) engine=false ;;
        --uninstall) mode=uninstall ;;
        --purge) purge=true ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$arg' (see ./install.sh --help)" >&2; exit 2 ;;
    esac
done
if $purge && [ "$mode" != uninstall ]; then
    echo "install.sh: --purge goes with --uninstall (see ./install.sh --help)" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
os=$(uname -s)
if [ "$(id -u)" = 0 ]; then
    data=/usr/local/lib/llm-docker bin=/usr/local/bin
elif [ "$os" = Darwin ]; then
    data="$HOME/Library/Application Support/llm-docker" bin="$HOME/.local/bin"
else
    data="${XDG_DATA_HOME:-$HOME/.local/share}/llm-docker" bin="$HOME/.local/bin"
fi
venv=$data/venv
commands="cld ocd llm-docker"

# Is $1 ours to replace or remove: a link into an llm-docker venv, or the console script of an
# earlier `pip install` of llm-docker (what this script used to do)?
ours() {
    if [ -L "$1" ]; then
        case $(readlink "$1") in */llm-docker/venv/bin/*) return 0 ;; *) return 1 ;; esac
    fi
    grep -qs -e 'from cli\.launchers import' -e 'from cli\.admin import' "$1"
}

# The config folder, as llm-docker itself resolves it ($LLM_DOCKER_HOME, else ~/.llm-docker).
config_home() {
    "$venv/bin/python" -c 'import os, pathlib; from launch.config import default_home
print(default_home(os.environ, pathlib.Path.home()))' 2>/dev/null || echo "${LLM_DOCKER_HOME:-$HOME/.llm-docker}"
}

if [ "$mode" = uninstall ]; then
    home=$(config_home)
    removed=false
    for name in $commands; do
        if { [ -e "$bin/$name" ] || [ -L "$bin/$name" ]; } && ours "$bin/$name"; then
            rm -f "$bin/$name" && removed=true
        fi
    done
    if [ -d "$venv" ]; then
        rm -rf "$venv" && removed=true
        rmdir "$data" 2>/dev/null || true
    fi
    if $removed; then say "removed $venv and the commands in $bin"; else say "nothing installed in $venv"; fi
    if $purge; then
        case $home in "" | / | "$HOME" | "$HOME/") die "refusing to remove the config folder '$home'" ;; esac
        rm -rf "$home"
        say "removed the config folder $home"
    elif [ -d "$home" ]; then
        say "kept the config folder $home (./install.sh --uninstall --purge removes it)"
    fi
    say "images and containers stay in Docker (docker image ls 'llm-docker-*')"
    exit 0
fi

# A Python >= 3.11: the newest on PATH, then Homebrew's; one with a venv module wins.
python='' fallback=''
for candidate in python3.14 python3.13 python3.12 python3.11 /opt/homebrew/bin/python3 /usr/local/bin/python3 python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    "$path" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || continue
    if "$path" -c 'import ensurepip, venv' 2>/dev/null; then python=$path; break; fi
    fallback=${fallback:-$path}
done
python=${python:-$fallback}
if [ -z "$python" ]; then
    if [ "$os" = Darwin ]; then hint="brew install python@3.13, or the installer from python.org"
    else hint="e.g. apt-get install python3 python3-venv (Debian 12, Ubuntu 24.04)"; fi
    die "llm-docker needs Python 3.11 or newer and found none ($hint)"
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
for name in $commands; do
    if { [ -e "$bin/$name" ] || [ -L "$bin/$name" ]; } && ! ours "$bin/$name"; then
        die "$bin/$name exists and is not llm-docker's: move it away, then ./install.sh again"
    fi
done

# What only root can add: required (the venv module, the engine) and optional (mmdebstrap, else
# debootstrap, builds the first image's Debian base when no registry answers). Plain strings, not arrays:
# macOS's bash 3.2 calls an empty array unbound under `set -u`.
required='' optional='' engine_step=false
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    command -v apt-get >/dev/null 2>&1 ||
        die "$python has no venv module (ensurepip): install your system's Python venv package, then ./install.sh again"
    # Debian/Ubuntu split it off: python3-venv for the default python3, python3.X-venv for others
    if [ "$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" = "$version" ]; then
        required=python3-venv
    else
        required=python$version-venv
    fi
fi
if [ "$os" = Linux ] && command -v apt-get >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
        optional=debootstrap
    fi
    if ! command -v mmdebstrap >/dev/null 2>&1 && [ ! -x /usr/bin/mmdebstrap ]; then
        optional="${optional:+$optional }mmdebstrap"
    fi
fi
if $engine && ! docker info >/dev/null 2>&1; then
    if [ "$os" != Linux ]; then
        warn "no Docker engine answers: start Docker Desktop (or OrbStack, colima) before the first launch"
    elif [ -S /var/run/docker.sock ] && [ ! -w /var/run/docker.sock ]; then
        warn "the Docker engine runs but you may not use it: sudo usermod -aG docker $(id -un), then log in again"
    else
        engine_step=true
    fi
fi

packages="$required $optional" && packages=${packages# } && packages=${packages% }
what=$packages root_work=''
[ -n "$packages" ] && root_work="apt-get update && apt-get install -y $packages"
if $engine_step; then
    what="${what:+$what, }the Docker engine"
    root_work="${root_work:+$root_work && }$here/scripts/ensure-docker-engine"
fi
use_root=false
if [ -n "$root_work" ]; then
    if [ "$(id -u)" = 0 ]; then
        use_root=true
    elif command -v sudo >/dev/null 2>&1; then
        if ! $yes && [ -t 0 ]; then
            read -r -p "install.sh: run as root (sudo): $root_work? [y/N] " answer || answer=''
            case $answer in [yY]*) yes=true ;; esac
        fi
        # without a terminal sudo must not wait for a password nobody can type
        if $yes && { sudo -n true 2>/dev/null || { [ -t 0 ] && sudo -v; }; }; then use_root=true; fi
    fi
    if ! $use_root && { [ -n "$required" ] || $engine_step; }; then
        hint=''
        command -v sudo >/dev/null 2>&1 && ! $yes && hint=" (or ./install.sh --yes: through sudo)"
        $engine_step && hint="$hint (--no-engine: without the engine)"
        die "needs root to install $what — as root run: $root_work — then ./install.sh again$hint"
    fi
fi
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif [ -t 0 ]; then sudo "$@"; else sudo -n "$@"; fi
}

if [ -n "$packages" ]; then
    # shellcheck disable=SC2086 # (package names: split on purpose)
    if $use_root && { as_root apt-get update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq $packages >/dev/null; }; then
        say "installed $packages"
    elif [ -n "$required" ]; then
        die "installing $packages failed — as root run: apt-get update && apt-get install -y $packages"
    else
        say "note: without registry access the first image build needs debootstrap (apt-get install debootstrap as root)"
    fi
    "$python" -c 'import ensurepip, venv' 2>/dev/null || die "$python still has no venv module after installing $required"
fi

# The venv: kept while it runs the same Python, else made anew (the interpreter was removed
# or upgraded to a new minor version, or another Python is preferred now).
identity=$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable), "%d.%d" % sys.version_info[:2])')
if [ -d "$venv" ] && { [ "$(cat "$venv/llm-docker-python" 2>/dev/null)" != "$identity" ] ||
    ! "$venv/bin/python" -c '' 2>/dev/null; }; then
    say "making the venv anew (its Python changed, now $python $version, or it is incomplete)"
    rm -rf "$venv"
fi

fresh=false build=''
finish() {
    local status=$?
    [ -n "$build" ] && rm -rf "$build"
    if [ $status -ne 0 ] && $fresh; then rm -rf "$venv"; rmdir "$data" 2>/dev/null || true; fi
}
trap finish EXIT
if [ ! -d "$venv" ]; then
    fresh=true
    mkdir -p "$data"
    "$python" -m venv "$venv"
fi
# pip's own CA bundle (certifi) does not know a corporate TLS-inspecting proxy; the system
# store does (Debian's venv pip is patched to use it; a pip from PyPI or another distribution
# is not). macOS keeps such CAs in the Keychain, which pip >= 24.2 reads itself: no bundle.
if [ "$os" = Linux ] && [ -z "${PIP_CERT:-}" ] &&
    ! "$venv/bin/python" -m pip config list 2>/dev/null | grep -q '\.cert='; then
    for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/ca-bundle.pem; do
        if [ -r "$bundle" ]; then export PIP_CERT=$bundle; break; fi
    done
fi
# Build from a clean copy: setuptools leaves build/ and *.egg-info in the source folder, and a
# stale build/lib would put deleted modules back into the next upgrade.
build=$(mktemp -d "${TMPDIR:-/tmp}/llm-docker-install.XXXXXX")
for entry in "$here"/*; do
    case ${entry##*/} in build | dist | *.egg-info) ;; *) cp -R "$entry" "$build/" ;; esac
done
say "installing llm-docker into $venv …"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "$build"
installed=$("$venv/bin/cld" --version) || die "the installed cld does not run (see above)"
echo "$identity" >"$venv/llm-docker-python"
mkdir -p "$bin"
for name in $commands; do
    ln -sfn "$venv/bin/$name" "$bin/$name"
done

if $engine_step; then
    say "installing or starting the Docker engine (scripts/ensure-docker-engine, up to a minute) …"
    log=$(mktemp "${TMPDIR:-/tmp}/llm-docker-engine.XXXXXX")
    if as_root "$here/scripts/ensure-docker-engine" >"$log" 2>&1; then
        rm -f "$log"
        docker info >/dev/null 2>&1 ||
            warn "the Docker engine runs but you may not use it: sudo usermod -aG docker $(id -un), then log in again"
    else
        warn "the Docker engine did not start (its output: $log) — start one before the first launch"
    fi
fi

say "installed $installed in $venv"
say "commands: $bin/cld, $bin/ocd, $bin/llm-docker"
case ":$PATH:" in
    *":$bin:"*) ;;
    *)
        case ${SHELL##*/} in zsh) profile=~/.zshrc ;; bash) profile=~/.bashrc ;; *) profile=~/.profile ;; esac
        say "$bin is not on your PATH: add this line to $profile, then open a new shell:"
        echo "    export PATH=\"$bin:\$PATH\""
        ;;
esac
say "config folder: $(config_home)"
say "next step: llm-docker init"
