#!/bin/sh
# Trust the extra CA certificates copied to /usr/local/share/ca-certificates/llm-docker/
# (EXTRA_CA_CERTS on the host) in the system store, which apt, curl, git, pip (PIP_CERT),
# Node (NODE_EXTRA_CA_CERTS) and npm (NPM_CONFIG_CAFILE) then all use.
set -eu
. /opt/llm-docker/install/lib.sh
if ! command -v update-ca-certificates >/dev/null 2>&1; then
    # A bare base: apt reaches the Debian mirror over plain HTTP (signed by apt's keys).
    apt_install ca-certificates
fi
count=$(find /usr/local/share/ca-certificates/llm-docker -name '*.crt' | wc -l)
update-ca-certificates >/dev/null
echo "extra CA certificates trusted: $count"
