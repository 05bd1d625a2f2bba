#!/bin/sh
# The tools every llm-docker image has, all from Debian's packages (plus npm, pnpm and uv
# from their registries), in one apt transaction. Node >= 18 comes from the base image,
# or from Debian when it has none; npm >= 10 from the base image, or from the npm registry
# (lib.sh npm_bootstrap: Debian's npm is big and too old).
set -eu
. /opt/llm-docker/install/lib.sh
APT="ca-certificates curl wget git openssh-client gnupg zsh zsh-autosuggestions
zsh-syntax-highlighting fzf ripgrep jq sqlite3 python3 python3-pip python3-venv procps less
tree file unzip zip micro bat ncdu trash-cli gettext-base ncurses-term locales iproute2
iputils-ping telnet mtr-tiny"
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
npm_major() { npm --version 2>/dev/null | cut -d. -f1 || echo 0; }
if [ "$(node_major)" -lt 18 ]; then
    APT="$APT nodejs"
fi
# shellcheck disable=SC2086
apt_install $APT
[ "$(node_major)" -ge 18 ] || { echo "Node.js >= 18 is required, found $(node_major)" >&2; exit 1; }
if ! command -v npm >/dev/null 2>&1 || [ "$(npm_major)" -lt 10 ]; then
    npm_bootstrap
fi
[ -e /usr/local/bin/bat ] || ln -s /usr/bin/batcat /usr/local/bin/bat
npm_install pnpm
pip_install uv
# shellcheck disable=SC2086
record essentials $APT -- npm pnpm -- uv
echo "node $(node --version), npm $(npm --version)" >> "$VERSIONS/essentials.txt"
