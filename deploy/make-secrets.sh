#!/usr/bin/env bash
# Creates the docker secrets docker-compose.yml mounts, under deploy/secrets/ (or the folder given
# as the first argument). Existing files are kept, so running it again never changes a key that
# already encrypts data or a password PostgreSQL was initialised with.
set -euo pipefail

secrets_dir="${1:-$(cd "$(dirname "$0")" && pwd)/secrets}"
# The folder is private to the operator. The files themselves must be readable by the containers'
# unprivileged users (compose bind-mounts them with these permissions), hence 0644 inside 0700.
install -d -m 0700 "$secrets_dir"

random_urlsafe() {
    # $1 bytes of randomness, url-safe base64 without padding: safe inside a URL without escaping.
    head -c "$1" /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

write_once() {
    local name="$1" value="$2"
    if [[ -e "$secrets_dir/$name" ]]; then
        echo "kept    $secrets_dir/$name"
        return
    fi
    (umask 022 && printf '%s\n' "$value" > "$secrets_dir/$name")
    echo "created $secrets_dir/$name"
}

write_once secret_key "$(random_urlsafe 48)"
# A Fernet key is url-safe base64 of 32 random bytes, with its padding.
write_once field_encryption_keys "$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n')"
write_once postgres_password "$(random_urlsafe 24)"
write_once database_url "postgresql://fullstackagent:$(tr -d '\n' < "$secrets_dir/postgres_password")@postgres:5432/fullstackagent"
