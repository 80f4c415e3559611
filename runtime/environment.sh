# shellcheck shell=sh
# Sourced by every login shell of a sandbox (each terminal tab, each tmux window): the project's
# variables as they are now. The platform rewrites the folder when they change (the local backend
# writes it; on Kubernetes it is the `<name>-env` Secret mounted as a volume, which the kubelet
# refreshes), so new shells get the new values without a restart; processes already running keep
# the environment they started with. One file per variable: its name is the file's, its value the
# content.
# Installed as /etc/profile.d/fullstackagent-env.sh in the image; sourced by the local sandbox's
# /etc/profile.
fullstackagent_env_dir=${FULLSTACKAGENT_ENV_DIR:-/opt/fullstackagent/env}
if [ -d "$fullstackagent_env_dir" ]; then
    # Variables the sandbox started with that are gone now: removed from new shells too.
    # (The entrypoint wrote their names at start.)
    if [ -r "${FULLSTACKAGENT_RUN_DIR:-/tmp}/environment-keys" ]; then
        while IFS= read -r fullstackagent_key; do
            if [ -n "$fullstackagent_key" ] && [ ! -e "$fullstackagent_env_dir/$fullstackagent_key" ]; then
                unset "$fullstackagent_key"
            fi
        done <"${FULLSTACKAGENT_RUN_DIR:-/tmp}/environment-keys"
    fi
    for fullstackagent_file in "$fullstackagent_env_dir"/*; do
        [ -f "$fullstackagent_file" ] || continue
        fullstackagent_key=${fullstackagent_file##*/}
        # The terminal's credential is in the Secret for ttyd alone: never in a shell.
        [ "$fullstackagent_key" = TTYD_ACCESS_TOKEN ] && continue
        # The x keeps trailing newlines, which $(...) would strip.
        fullstackagent_value=$(cat "$fullstackagent_file"; printf x)
        export "$fullstackagent_key=${fullstackagent_value%x}"
    done
    unset fullstackagent_file fullstackagent_value
fi
unset fullstackagent_env_dir fullstackagent_key
