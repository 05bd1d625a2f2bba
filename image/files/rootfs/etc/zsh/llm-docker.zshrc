# llm-docker's zsh defaults (sourced by /etc/zsh/zshrc; your ~/.zshrc runs after it).
HISTFILE="${HISTFILE:-$HOME/.zsh_history}"
HISTSIZE=50000
SAVEHIST=50000
setopt HIST_IGNORE_DUPS HIST_IGNORE_SPACE SHARE_HISTORY AUTO_CD INTERACTIVE_COMMENTS
bindkey -e
autoload -Uz compinit && compinit -u -d "${XDG_CACHE_HOME:-$HOME/.cache}/zcompdump" 2>/dev/null
zstyle ':completion:*' menu select
autoload -Uz vcs_info
precmd() { vcs_info }
zstyle ':vcs_info:git:*' formats ' %F{141}(%b)%f'
setopt PROMPT_SUBST
PROMPT='%F{75}llm-docker%f %F{250}%~%f${vcs_info_msg_0_} %# '
alias ls='ls --color=auto' ll='ls -lah' grep='grep --color=auto'
for plugin in /usr/share/zsh-autosuggestions/zsh-autosuggestions.zsh \
              /usr/share/zsh-syntax-highlighting/zsh-syntax-highlighting.zsh \
              /usr/share/doc/fzf/examples/key-bindings.zsh; do
    [ -r "$plugin" ] && . "$plugin"
done
unset plugin
