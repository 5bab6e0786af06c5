#!/usr/bin/env bash
# Installs what `npm run bench` needs, idempotently and project-locally:
#   .tools/bin/vegeta   load generator (Go module proxy, pinned)
#   .tools/bin/dtm      the DTM peer v1.19.0 (Go module proxy, pinned)
#   .tools/bin/extproc-min  the smallest ext_proc server (bench/extproc-min, Go), a pass-through baseline
#   redis-server, postgresql   Debian packages (DTM's Redis store; sagamesh's PostgreSQL log)
#   matplotlib          into the project .venv (bench/requirements.txt), for bench/plot.py
# Nothing is started here: bench/run.ts starts and stops every server on loopback itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
BIN=$TOOLS/bin
mkdir -p "$BIN"

VEGETA_VERSION=v12.12.0
DTM_VERSION=v1.19.0

have_version() { [ -x "$1" ] && [ -f "$1.version" ] && [ "$(cat "$1.version")" = "$2" ]; }

if ! have_version "$BIN/vegeta" "$VEGETA_VERSION"; then
  echo "--- vegeta $VEGETA_VERSION"
  GOBIN=$BIN go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  echo "$VEGETA_VERSION" > "$BIN/vegeta.version"
fi

if ! have_version "$BIN/dtm" "$DTM_VERSION"; then
  echo "--- dtm $DTM_VERSION"
  # `go install github.com/dtm-labs/dtm@v1.19.0` fails here: the proxy refuses the module's version
  # list, which go install reads for deprecation notices. Building it from a throwaway module that
  # requires exactly that version gives the same binary.
  SRC=$TOOLS/src/dtm
  mkdir -p "$SRC"
  cat > "$SRC/go.mod" <<GOMOD
module sagamesh.local/bench-dtm

go 1.22

require github.com/dtm-labs/dtm $DTM_VERSION
GOMOD
  cat > "$SRC/tools.go" <<'GOSRC'
//go:build tools

package tools

import _ "github.com/dtm-labs/dtm"
GOSRC
  (cd "$SRC" && go mod tidy && GOBIN=$BIN go install -ldflags "-X main.Version=$DTM_VERSION" github.com/dtm-labs/dtm)
  echo "$DTM_VERSION" > "$BIN/dtm.version"
fi

# Rebuilt when its source changes: the stamp is the hash of the module's files.
EXTPROC_MIN_STAMP=$(cat bench/extproc-min/go.mod bench/extproc-min/go.sum bench/extproc-min/main.go | sha256sum | cut -c1-16)
if ! have_version "$BIN/extproc-min" "$EXTPROC_MIN_STAMP"; then
  echo "--- extproc-min"
  (cd bench/extproc-min && go build -o "$BIN/extproc-min" .)
  echo "$EXTPROC_MIN_STAMP" > "$BIN/extproc-min.version"
fi

need_apt=()
command -v redis-server > /dev/null || need_apt+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "--- apt: ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

PY=$ROOT/.venv/bin/python
if [ ! -x "$PY" ]; then python3 -m venv "$ROOT/.venv"; fi
if ! "$PY" -c 'import matplotlib' > /dev/null 2>&1; then
  echo "--- matplotlib"
  "$PY" -m pip install -q -r bench/requirements.txt
fi
echo "bench tools ready in $BIN"
