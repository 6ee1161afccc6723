#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, offline. The browser test needs Chromium:
# installed here from Debian packages when missing (as root, or with sudo), in the background
# while the Python packages install (the two take minutes each on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium_pid=""
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    ( $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null ) &
    chromium_pid=$!
fi
bash scripts/setup.sh
if [ -n "$chromium_pid" ]; then
    wait "$chromium_pid"
fi
.venv/bin/python -m pytest "$@"
