#!/bin/sh
# Last layer: make the guard-rails root-owned and read-only, let any uid use HOME=/root
# (the container runs as the invoking user's uid), and wire zsh's defaults.
set -eu
# Only what needs a change is touched: a chown/chmod copies the whole file into this layer
# (OpenCode's plugin packages under /opt/llm-docker/opencode would be stored twice, ~55 MB).
find /etc/claude-code /opt/llm-docker \( ! -user root -o ! -group root \) -exec chown -h root:root {} +
chmod 0444 /etc/claude-code/managed-settings.json
chmod 0555 /etc/claude-code
chmod 0755 /usr/local/bin/llm-docker-entrypoint /usr/local/bin/llm-docker-session-event \
    /usr/local/bin/llm-docker-tmux /usr/local/bin/builder-api
# chmod -R a+rX,go-w /opt/llm-docker, file by file where it changes something:
find /opt/llm-docker ! -type l -perm /go+w -exec chmod go-w {} +
find /opt/llm-docker ! -type l ! -perm -a+r -exec chmod a+r {} +
find /opt/llm-docker \( -type d -o -type f -perm /a+x \) ! -perm -a+x -exec chmod a+x {} +
# openssh-server's package makes host keys at install: no image may carry a private key
# (every slot uses the install's own, mounted read-only at /etc/ssh/keys).
rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub
# Any uid may run with HOME=/root: sticky and world-writable, like /tmp.
chmod 1777 /root
# Projects are owned by the host user; git must not refuse them.
git config --system safe.directory '*'
grep -q llm-docker.zshrc /etc/zsh/zshrc 2>/dev/null || echo '. /etc/zsh/llm-docker.zshrc' >> /etc/zsh/zshrc
cat /opt/llm-docker/versions/*.txt > /opt/llm-docker/versions.txt
