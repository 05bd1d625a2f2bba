#!/bin/sh
# Last layer: make the guard-rails root-owned and read-only, let any uid use HOME=/root
# (the container runs as the invoking user's uid), and wire zsh's defaults.
set -eu
chown -R root:root /etc/claude-code /opt/llm-docker
chmod 0444 /etc/claude-code/managed-settings.json
chmod 0555 /etc/claude-code
chmod 0755 /usr/local/bin/llm-docker-entrypoint /usr/local/bin/llm-docker-session-event \
    /usr/local/bin/llm-docker-tmux /usr/local/bin/builder-api
chmod -R a+rX,go-w /opt/llm-docker
# openssh-server's package makes host keys at install: no image may carry a private key
# (every slot uses the install's own, mounted read-only at /etc/ssh/keys).
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
# Any uid may run with HOME=/root: sticky and world-writable, like /tmp.
chmod 1777 /root
# Projects are owned by the host user; git must not refuse them.
git config --system safe.directory '*'
grep -q llm-docker.zshrc /etc/zsh/zshrc 2>/dev/null || echo '. /etc/zsh/llm-docker.zshrc' >> /etc/zsh/zshrc
cat /opt/llm-docker/versions/*.txt > /opt/llm-docker/versions.txt
