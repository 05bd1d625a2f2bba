#!/bin/sh
# First step of every image: make apt and dpkg fast and lean, whatever the base image.
# The same settings as Debian's own container images, written once so that every later
# install (essentials, each INSTALL_* group) inherits them:
# - dpkg skips fsync (a build layer is thrown away on failure anyway) and leaves out
#   documentation, man pages and translations (~160 MB), keeping licences (copyright)
#   and what the image's own files use (fzf's zsh key bindings);
# - apt installs no recommends, fetches no translations, keeps no downloaded .deb and
#   no binary package cache (~80 MB per layer otherwise), and retries a flaky mirror.
set -eu
mkdir -p /etc/dpkg/dpkg.cfg.d /etc/apt/apt.conf.d
cat > /etc/dpkg/dpkg.cfg.d/llm-docker <<'CFG'
force-unsafe-io
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-include=/usr/share/doc/fzf/examples/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
cat > /etc/apt/apt.conf.d/90llm-docker <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Keep-Downloaded-Packages "false";
Acquire::Languages "none";
Acquire::Retries "3";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo "apt and dpkg: no recommends, docs, translations or caches"
