#!/bin/sh
# The first terminal of a sandbox whose owner has no Anthropic key yet: what is here, how to run the
# app, and where to set the key. Read from the environment, so it is true in the image and locally.
set -u

bold=$(printf '\033[1m') reset=$(printf '\033[0m')
node_version=$(node --version 2>/dev/null || echo "not installed")

printf '%sWelcome to your FullstackAgent sandbox%s for %s.\n\n' "$bold" "$reset" "${PROJECT_NAME:-this project}"
printf 'Here you have Claude Code (claude), Node.js %s with npm, git, and psql.\n' "$node_version"
# shellcheck disable=SC2016  # $DATABASE_URL and $PORT are shown as the user types them
if [ -n "${DATABASE_URL:-}" ]; then
    printf 'Your project database is in $DATABASE_URL: try  psql "$DATABASE_URL"\n'
fi
# shellcheck disable=SC2016
printf 'Start your app on port $PORT (%s), e.g.  npm install && npm run dev -- --port $PORT\n\n' "${PORT:-3000}"
printf '%sThe coding agent needs an Anthropic API key.%s Set it in Settings -> Anthropic' "$bold" "$reset"
if [ -n "${FULLSTACKAGENT_SETTINGS_URL:-}" ]; then
    printf ':\n  %s\n' "$FULLSTACKAGENT_SETTINGS_URL"
else
    printf ' on the platform.\n'
fi
printf 'then open a new terminal tab and run  claude\n\n'
# The idle stop (README "Idle sandboxes stop"). The platform sees keep-awake's mark only in its
# local sandboxes (FULLSTACKAGENT_SANDBOX is their mark), not in a pod: say it only where it works.
printf 'A sandbox nobody uses is stopped after a while; opening it starts it again.\n'
if [ -n "${FULLSTACKAGENT_SANDBOX:-}" ]; then
    printf 'To keep it running without a terminal open (a server waiting for visitors):  keep-awake COMMAND\n'
fi
printf '\n'
