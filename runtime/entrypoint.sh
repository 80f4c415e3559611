#!/bin/sh
# Sandbox entrypoint: check the terminal token, seed a fresh home, then run ttyd.
#
# Every path is an environment variable with the image's value as default, so the
# same script runs outside the image (tests, the platform's `local` backend).
set -eu

TTYD_BIN=${TTYD_BIN:-ttyd}
TEMPLATE_DIR=${TEMPLATE_DIR:-/opt/fullstackagent/template}
BASHRC_TEMPLATE=${BASHRC_TEMPLATE:-/opt/fullstackagent/bashrc}
FULLSTACKAGENT_RUN_DIR=${FULLSTACKAGENT_RUN_DIR:-/tmp}
script_dir=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
TERMINAL_SESSION_BIN=${TERMINAL_SESSION_BIN:-$script_dir/terminal-session.sh}

# The platform relays the terminal as user `agent`; it must build the same
# credential (docs: runtime/README.md, "Terminal protocol").
TTYD_USERNAME=agent
MIN_TOKEN_LENGTH=32

config_error() {
    # 78 is EX_CONFIG from sysexits.h: the container is misconfigured, a restart
    # with the same environment will fail the same way.
    printf 'entrypoint: %s\n' "$1" >&2
    exit 78
}

token=${TTYD_ACCESS_TOKEN:-}
if [ -z "$token" ]; then
    config_error "TTYD_ACCESS_TOKEN is not set; refusing to serve a terminal without authentication"
fi
if [ "${#token}" -lt "$MIN_TOKEN_LENGTH" ]; then
    # Say how long it must be, never what it is.
    config_error "TTYD_ACCESS_TOKEN is shorter than $MIN_TOKEN_LENGTH characters; refusing to start"
fi
# Keep the token out of every process ttyd spawns: shells, Claude Code and the
# user's app would otherwise inherit it and could print it (`env`, crash dumps).
unset TTYD_ACCESS_TOKEN

port=${TTYD_PORT:-7681}
case $port in
    '' | *[!0123456789]*) config_error "TTYD_PORT must be a port number, got '$port'" ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    config_error "TTYD_PORT must be between 1 and 65535, got '$port'"
fi

workdir=${WORKSPACE_DIR:-$HOME}

home_is_empty() {
    for entry in "$HOME"/* "$HOME"/.[!.]* "$HOME"/..?*; do
        # An unmatched glob stays literal; -L also counts dangling symlinks.
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        # A freshly formatted ext4 volume claim holds only lost+found.
        [ "$entry" = "$HOME/lost+found" ] && continue
        return 1
    done
    return 0
}

seed_home() {
    if [ -d "$TEMPLATE_DIR" ]; then
        cp -R "$TEMPLATE_DIR"/. "$HOME"/
    else
        printf 'entrypoint: no starter template at %s; home left without one\n' "$TEMPLATE_DIR" >&2
    fi
    if [ -f "$BASHRC_TEMPLATE" ]; then
        cp "$BASHRC_TEMPLATE" "$HOME/.bashrc"
    fi
    # tmux and ttyd start login shells, which read .profile and not .bashrc.
    cat >"$HOME/.profile" <<'EOF'
# Login shells (every terminal tab) read this file; the settings live in .bashrc.
if [ -n "${BASH_VERSION:-}" ] && [ -f "$HOME/.bashrc" ]; then
    . "$HOME/.bashrc"
fi
EOF
    printf 'entrypoint: seeded %s with the starter template\n' "$HOME" >&2
}

mkdir -p "$HOME"
if home_is_empty; then
    seed_home
fi
mkdir -p "$workdir" "$FULLSTACKAGENT_RUN_DIR"

# Claude Code's first run asks for a theme and whether to trust the folder before
# it takes a task. The sandbox is the user's own workspace, made for the agent:
# answer both once, in a home that has no Claude Code settings yet. The user can
# change either in Claude Code later.
if [ ! -e "$HOME/.claude.json" ]; then
    printf '{"hasCompletedOnboarding": true, "theme": "dark", "projects": {"%s": {"hasTrustDialogAccepted": true}}}\n' \
        "$workdir" >"$HOME/.claude.json"
fi

# This script runs once per container life, so clearing the marker here is what
# makes "Claude Code starts in the first terminal" hold after `docker restart` too,
# where /tmp survives.
rm -f "$FULLSTACKAGENT_RUN_DIR/fullstackagent-claude-started"

# The names of the variables the sandbox starts with (the environment folder's,
# which the platform keeps equal to them at start): a new shell unsets those that
# have gone from the folder since (runtime/environment.sh).
env_dir=${FULLSTACKAGENT_ENV_DIR:-/opt/fullstackagent/env}
: >"$FULLSTACKAGENT_RUN_DIR/environment-keys"
if [ -d "$env_dir" ]; then
    for file in "$env_dir"/*; do
        if [ -f "$file" ]; then printf '%s\n' "${file##*/}"; fi
    done >"$FULLSTACKAGENT_RUN_DIR/environment-keys"
fi

# The token reaches ttyd as `-c user:token` on its command line: ttyd 1.7.7 has no
# environment variable or file option for the credential (`ttyd --help`). In the
# image that is acceptable: /proc/<pid>/cmdline is readable only inside the
# container's PID namespace, i.e. by code already running in this sandbox as the
# terminal's own user, which has everything the token grants. Run outside a
# container (the `local` backend), every user of the host can read it with `ps`
# unless /proc is mounted with hidepid=2. It is in no environment, URL or log.
#
# -d 1 keeps ttyd's log to errors: at its default level it prints the credential
# (base64 of user:token) at startup and every rejected client token.
# No -O (origin check): the platform's relay connects server-side, and without a
# browser holding the token there is no cross-site request to stop.
set -- -p "$port" -W -a -d 1 -w "$workdir" -c "$TTYD_USERNAME:$token"
if [ -n "${TTYD_INTERFACE:-}" ]; then
    set -- "$@" -i "$TTYD_INTERFACE"
fi

# ttyd runs as a child, not exec'd: when it crashes it is started again alone,
# and the tmux server with the user's shells, the agent and their apps (which
# daemonised away from ttyd) live on; the browser reconnects into the same
# session. A ttyd that cannot stay up (5 exits within 5 s of starting, in a row)
# ends the sandbox with its status, so the platform sees it and backs off.
# TERM/INT/HUP (stop) end ttyd and then this script.
ttyd_pid=
stop_terminal() {
    [ -n "$ttyd_pid" ] && kill -TERM "$ttyd_pid" 2>/dev/null
    exit 0
}
trap stop_terminal TERM INT HUP
quick_exits=0
while :; do
    started=$(date +%s)
    "$TTYD_BIN" "$@" "$TERMINAL_SESSION_BIN" &
    ttyd_pid=$!
    # wait returns early (status > 128) when a trapped signal arrives; the trap exits.
    status=0
    wait "$ttyd_pid" || status=$?
    if [ $(($(date +%s) - started)) -lt 5 ]; then
        quick_exits=$((quick_exits + 1))
    else
        quick_exits=0
    fi
    if [ "$quick_exits" -ge 5 ]; then
        printf 'entrypoint: ttyd exited %s times in a row right after starting (status %s); giving up\n' \
            "$quick_exits" "$status" >&2
        exit "$status"
    fi
    printf 'entrypoint: ttyd exited (status %s); starting it again\n' "$status" >&2
    sleep "$quick_exits"
done
