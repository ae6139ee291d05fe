#!/usr/bin/env bash
# Installs Debian's Chromium for tests/dashboard.rs (a real browser opens the live dashboard),
# unless it is already there. Idempotent; needs root (as CI runs) and Debian's package mirror.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium-up.sh: /usr/bin/chromium is missing and apt-get is not available" >&2
    exit 1
fi
echo "chromium-up.sh: installing Debian's chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
