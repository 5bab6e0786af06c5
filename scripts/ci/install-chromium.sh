#!/usr/bin/env bash
# Installs Debian's Chromium for the admin UI test (test/integration/ui-*.test.ts drives it with
# playwright-core, which downloads no browser of its own). Idempotent: does nothing when
# /usr/bin/chromium is there already.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -n 1)"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -n 1)"
