#!/usr/bin/env bash
# Installs the PostgreSQL server (Debian package) when it is missing: the PostgreSQL saga-log
# tests start their own throwaway cluster from its binaries (test/helpers/postgres.ts).
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/postgres" > /dev/null || [ -n "${PG_BIN:-}" ]; then
  echo "install-postgres: found $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1 || echo "$PG_BIN")"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-postgres: PostgreSQL is missing; install the 'postgresql' package or set PG_BIN" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql > /dev/null
echo "install-postgres: installed $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
