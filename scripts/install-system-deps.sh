#!/usr/bin/env bash
# Installs the Debian packages the platform needs when they are missing: tmux (terminals that
# survive a disconnect) and bubblewrap (the local sandboxes' isolation); with `test`, Chromium for
# the browser tests too. Needs root (CI runs as root); otherwise says what to install.
#   usage: install-system-deps.sh [run|test]
set -euo pipefail

missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
if [ "${1:-test}" = test ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
