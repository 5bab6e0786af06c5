#!/usr/bin/env bash
# Builds the real translators that test/integration/istio-translation.test.ts runs offline
# (docs/istio.md, "How this is tested without a cluster"), into .tools/:
#   .tools/bin/egctl             Envoy Gateway's CLI (`egctl x translate`), github.com/envoyproxy/gateway
#                                at the version whose CRDs install-k8s-tools.sh installs (Go module proxy)
#   .tools/bin/istio-translate   tools/istio-translate: istio-agent's bootstrap generation and istiod's
#                                xDS generation (pilot's FakeDiscoveryServer), istio.io/istio pinned in
#                                its go.mod (Go module proxy); version stamped as Istio's own dev builds
#                                do (`<VERSION file>-dev`), which istiod reads from the node metadata
#   .tools/istio-translate/envoy_bootstrap.json
#                                istio-agent's bootstrap template from the same istio.io/istio module
#                                (in the proxy image: /var/lib/istio/envoy/envoy_bootstrap_tmpl.json)
# Idempotent: each stamp records what was built (the pinned version; for istio-translate also a hash
# of its sources), so a warm run returns at once. Needs Go (1.26.x). Cold, on a shared 2-core
# machine: egctl ~7 min, istio-translate ~14 min (most of both: Kubernetes' client libraries, which
# the second build then finds in Go's build cache).
set -euo pipefail
cd "$(dirname "$0")/../.."

ENVOY_GATEWAY_VERSION=v1.9.1

TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
STAMPS="$TOOLS/stamps"
SRC="$PWD/tools/istio-translate"
mkdir -p "$BIN" "$STAMPS" "$TOOLS/istio-translate"

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

istio=$(sed -n 's/^[[:space:]]*istio\.io\/istio \(v[^ ]*\).*/\1/p' "$SRC/go.mod" | head -1)
want="istio.io/istio@$istio $(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-16)"
template="$TOOLS/istio-translate/envoy_bootstrap.json"
if [[ -x "$BIN/istio-translate" && -f "$template" && -f "$STAMPS/istio-translate" && "$(cat "$STAMPS/istio-translate")" == "$want" ]]; then
  echo "install-translators: istio-translate (istio.io/istio $istio) already built"
else
  echo "install-translators: building istio-translate (istio.io/istio $istio)"
  # The module's directory (downloaded first: `go list -m` alone does not fetch it).
  dir=$(cd "$SRC" && go mod download istio.io/istio && go list -m -f '{{.Dir}}' istio.io/istio)
  [[ -f "$dir/VERSION" ]] || { echo "install-translators: no istio.io/istio module directory ($dir)" >&2; exit 1; }
  version="$(cat "$dir/VERSION")-dev"
  (cd "$SRC" && go build -trimpath -ldflags "-X istio.io/istio/pkg/version.buildVersion=$version" -o "$BIN/istio-translate" .)
  install -m 0644 "$dir/tools/packaging/common/envoy_bootstrap.json" "$template"
  echo "$want" >"$STAMPS/istio-translate"
fi
echo "install-translators: egctl $ENVOY_GATEWAY_VERSION, istio-translate (istio.io/istio $istio) in $BIN"
