#!/usr/bin/env bash
# Builds the real translators that test/integration/istio-translation.test.ts runs offline
# (docs/istio.md, "How this is tested without a cluster"), into .tools/:
#   .tools/bin/egctl   Envoy Gateway's CLI (`egctl x translate`), github.com/envoyproxy/gateway at the
#                      version whose CRDs install-k8s-tools.sh installs (Go module proxy)
# Idempotent: the stamp records what was built, so a warm run returns at once. Needs Go (1.26.x).
# Cold: ~14 min on a shared 2-core machine (egctl pulls in Kubernetes' client libraries).
set -euo pipefail
cd "$(dirname "$0")/../.."

ENVOY_GATEWAY_VERSION=v1.9.1

TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
mkdir -p "$BIN" "$STAMPS"

command -v go >/dev/null || { echo "install-translators: Go is required (builds from the module proxy)" >&2; exit 1; }
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

want="github.com/envoyproxy/gateway/cmd/egctl@$ENVOY_GATEWAY_VERSION"
if [[ -x "$BIN/egctl" && -f "$STAMPS/egctl" && "$(cat "$STAMPS/egctl")" == "$want" ]]; then
  echo "install-translators: egctl $ENVOY_GATEWAY_VERSION already installed"
else
  echo "install-translators: go install $want"
  GOBIN="$BIN" go install -trimpath "$want"
  echo "$want" >"$STAMPS/egctl"
fi

echo "install-translators: egctl $ENVOY_GATEWAY_VERSION in $BIN"
