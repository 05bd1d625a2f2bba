#!/usr/bin/env bash
# Install llm-docker on this machine: the Docker engine if it is missing (Debian/Ubuntu),
# then the Python package with its `cld`, `ocd` and `llm-docker` commands.
set -euo pipefail
cd "$(dirname "$0")"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "install.sh: llm-docker needs Python 3.11 or newer" >&2
    exit 1
fi
scripts/ensure-docker-engine
# debootstrap builds the local Debian base when no registry can serve BASE_IMAGE.
if ! command -v debootstrap >/dev/null 2>&1 && [ ! -x /usr/sbin/debootstrap ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    else
        echo "install.sh: note: without registry access the first image build needs debootstrap" \
             "(sudo apt-get install debootstrap)" >&2
    fi
fi
python3 -m pip install -q --disable-pip-version-check .
echo "install.sh: installed $(cld --version); config lives in ${LLM_DOCKER_HOME:-$HOME/.llm-docker}"
