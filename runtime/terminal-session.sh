#!/bin/sh
# What ttyd runs for each websocket, after it has checked the credential.
#
# Usage: terminal-session.sh [SESSION]   (ttyd passes SESSION from `?arg=SESSION`)
#
# Attaches to the tmux session SESSION (default `main`), creating it when needed,
# so a reconnect returns to the same shell and scrollback. The first terminal of
# the container's life starts Claude Code instead of a bare shell, or, when no
# Anthropic key is configured, a welcome that says how to get it.
set -eu

tmux_bin=${TMUX_BIN:-tmux}
claude_bin=${CLAUDE_BIN:-claude}
user_shell=${SHELL:-/bin/bash}
workdir=${WORKSPACE_DIR:-$HOME}
marker=${FULLSTACKAGENT_RUN_DIR:-/tmp}/fullstackagent-claude-started
# Spelled out rather than A-Za-z0-9: ranges in bracket expressions follow the
# locale's collation, and some locales put other letters inside them.
name_chars=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-

refuse() {
    printf 'terminal-session: %s\n' "$1" >&2
    # ttyd 1.7.7 neither forwards the output of, nor closes the websocket for, a
    # command that exits before ttyd has sent its first frames: the tab would hang
    # blank. A second's pause lets the message through and the close happen.
    sleep 1
    exit 2
}

# The name comes from the browser's URL: accept only what is safe as a tmux
# target and a file name, and never more than one.
if [ "$#" -eq 0 ]; then
    session=main
elif [ "$#" -eq 1 ]; then
    session=$1
else
    refuse "expected one session name, got $#"
fi
case $session in
    '' | *[!$name_chars]*) refuse "session names are 1 to 32 of A-Z a-z 0-9 _ -" ;;
esac
if [ "${#session}" -gt 32 ]; then
    refuse "session names are 1 to 32 of A-Z a-z 0-9 _ -"
fi

# True for exactly one terminal per container life. noclobber turns `>` into an
# exclusive create, so of two terminals opened at the same moment one wins; the
# entrypoint removes the marker at start.
claim_first_terminal() {
    (set -C && : >"$marker") 2>/dev/null
}

# Claude Code can run: it is installed and the user configured a key.
agent_ready() {
    command -v "$claude_bin" >/dev/null 2>&1 || return 1
    [ -n "${ANTHROPIC_AUTH_TOKEN:-}${ANTHROPIC_API_KEY:-}" ]
}

# Claude Code, then a login shell once it exits, so the tab stays usable.
# $0 is claude, $1 the shell. The prompt is read from the environment at run time
# rather than passed through tmux's command line, whose messages are size-limited;
# ${X:+--flag "$X"} adds the flag only when a prompt is set, as one argument.
# shellcheck disable=SC2016  # expanded by the inner shell, not this one
agent_then_shell='"$0" ${FULLSTACKAGENT_SYSTEM_PROMPT:+--append-system-prompt "$FULLSTACKAGENT_SYSTEM_PROMPT"}; exec "$1" -l'
# Without a key the first terminal says what the sandbox has and how to get the agent.
# shellcheck disable=SC2016  # expanded by the inner shell, not this one
welcome_then_shell='/bin/sh "$0"; exec "$1" -l'
welcome_bin=${WELCOME_BIN:-$(dirname -- "$0")/welcome.sh}
# Read by the tmux server when it starts (scrollback, status line): not set by
# each new session, which would redraw every other open terminal.
tmux_conf=${TMUX_CONF:-$(dirname -- "$0")/tmux.conf}

cd "$workdir" 2>/dev/null || cd "$HOME"

if ! command -v "$tmux_bin" >/dev/null 2>&1; then
    # No tmux: a plain shell per connection, gone on disconnect.
    if claim_first_terminal; then
        if agent_ready; then
            exec /bin/sh -c "$agent_then_shell" "$claude_bin" "$user_shell"
        fi
        exec /bin/sh -c "$welcome_then_shell" "$welcome_bin" "$user_shell"
    fi
    exec "$user_shell" -l
fi

# A ttyd started from inside tmux (a developer's machine) passes TMUX on, and
# tmux refuses to nest.
unset TMUX

if "$tmux_bin" has-session -t "=$session" 2>/dev/null; then
    exec "$tmux_bin" attach-session -t "=$session"
fi

set -- new-session -A -s "$session" -c "$workdir"
if claim_first_terminal; then
    if agent_ready; then
        set -- "$@" /bin/sh -c "$agent_then_shell" "$claude_bin" "$user_shell"
    else
        set -- "$@" /bin/sh -c "$welcome_then_shell" "$welcome_bin" "$user_shell"
    fi
fi
# -A attaches instead if another tab created the session between has-session and
# here. -f applies only when this starts the server.
exec "$tmux_bin" -f "$tmux_conf" "$@"
