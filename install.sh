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
python3 -m pip install -q --disable-pip-version-check .
echo "install.sh: installed $(cld --version); config lives in \${LLM_DOCKER_HOME:-~/.llm-docker}"
