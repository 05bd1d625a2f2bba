#!/bin/sh
# agent.sh claude|opencode|both — the agent CLIs from the npm registry, at the versions
# given by CLAUDE_CODE_VERSION / OPENCODE_VERSION (default: latest), recorded.
set -eu
. /opt/llm-docker/install/lib.sh
tool=$1
[ -z "${AGENT_REFRESH:-}" ] || echo "agent refresh: $AGENT_REFRESH"
packages=""
case $tool in
    claude) packages="@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION:-latest}" ;;
    opencode) packages="opencode-ai@${OPENCODE_VERSION:-latest}" ;;
    both) packages="@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION:-latest} opencode-ai@${OPENCODE_VERSION:-latest}" ;;
    *) echo "agent.sh: unknown tool '$tool' (claude, opencode or both)" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
npm_install $packages
# Both CLIs ship as one native binary per platform in optional npm packages; npm installs
# every variant whose os/cpu/libc fields match (OpenCode: x64 AND x64-baseline, ~180 MB
# each) and the postinstall hard-links the one this machine runs to bin/. The others are
# never used: remove each platform package that does not hold that binary.
for cli in claude-code/bin/claude.exe opencode-ai/bin/opencode.exe; do
    root=$(npm root -g)
    exe=$(find "$root/@anthropic-ai" "$root" -maxdepth 3 -path "*/$cli" 2>/dev/null | head -n 1)
    [ -n "$exe" ] && [ "$(stat -c %h "$exe")" -gt 1 ] || continue
    for platform in "${exe%/bin/*}"/node_modules/*/ "${exe%/bin/*}"/node_modules/@*/*/; do
        [ -d "$platform" ] || continue
        find "$platform" -samefile "$exe" | grep -q . || { echo "unused: $platform"; rm -rf "$platform"; }
    done
done
: > "$VERSIONS/agent.txt"
if command -v claude >/dev/null 2>&1; then
    echo "claude $(claude --version)" | tee -a "$VERSIONS/agent.txt"
fi
if command -v opencode >/dev/null 2>&1; then
    version=$(opencode --version)
    echo "opencode $version" | tee -a "$VERSIONS/agent.txt"
    # The session-events plugin (rootfs/opt/llm-docker/opencode/plugin) needs OpenCode's plugin
    # package next to it. OpenCode would install it at first start, but the folder is read-only
    # at run time, so it is installed here, at the version OpenCode itself asks for.
    mkdir -p /opt/llm-docker/opencode
    printf '{\n  "dependencies": {\n    "@opencode-ai/plugin": "%s"\n  }\n}\n' "$version" \
        > /opt/llm-docker/opencode/package.json
    (cd /opt/llm-docker/opencode && npm install --no-fund --no-audit --loglevel=error)
    # OpenCode writes this file into every config folder it loads; it must exist already.
    printf 'node_modules\npackage.json\npackage-lock.json\nbun.lock\n.gitignore' > /opt/llm-docker/opencode/.gitignore
fi
[ -s "$VERSIONS/agent.txt" ] || { echo "agent.sh: no agent CLI on PATH after install" >&2; exit 1; }
