#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, offline. The browser test needs Chromium, the
# PDF extraction test a real LaTeX-typeset manual (Debian's debian-reference-en): installed here
# from Debian packages when missing (as root, or with sudo), in the background while the Python
# packages install (the two take minutes each on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium_pid=""
browser=() manual=()
[ -x /usr/bin/chromium ] || browser=(chromium chromium-driver)
[ -f /usr/share/debian-reference/debian-reference.en.pdf ] || manual=(debian-reference-en)
if [ $(( ${#browser[@]} + ${#manual[@]} )) -gt 0 ] && command -v apt-get >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    (
        $SUDO apt-get update -qq
        [ ${#browser[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${browser[@]}" >/dev/null
        [ ${#manual[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${manual[@]}" >/dev/null
    ) &
    chromium_pid=$!
fi
bash scripts/setup.sh
if [ -n "$chromium_pid" ]; then
    wait "$chromium_pid"
fi
.venv/bin/python -m pytest "$@"
