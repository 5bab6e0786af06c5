#!/usr/bin/env bash
# Installs what the Kubernetes manifest tests need into .tools/ (project-local, git-ignored):
#   .tools/bin/kustomize          renders deploy/kubernetes            (Go module proxy)
#   .tools/bin/kubectl-validate   checks the rendered objects with the apiserver's own validation
#                                 code: built-in Kubernetes schemas ship inside it (1.23–1.30),
#                                 CRDs are read from a directory      (Go module proxy)
#   .tools/k8s-crds/              the CRDs (with their openAPIV3Schema) of the kinds deploy/ uses:
#                                 Istio from istio.io/api, Envoy Gateway and Gateway API from
#                                 github.com/envoyproxy/gateway's chart (Go module proxy)
# Idempotent: a tool already at its pinned version is left alone. Needs Go (any recent 1.2x).
# Pins are here and nowhere else; docs/istio.md says why these tools.
set -euo pipefail
cd "$(dirname "$0")/../.."

KUSTOMIZE_VERSION=v5.8.1
KUBECTL_VALIDATE_VERSION=v0.0.4
ISTIO_API_VERSION=v1.31.4
ENVOY_GATEWAY_VERSION=v1.9.1

TOOLS="$PWD/.tools"
BIN="$TOOLS/bin"
CRDS="$TOOLS/k8s-crds"
STAMPS="$TOOLS/stamps"
mkdir -p "$BIN" "$STAMPS"

command -v go >/dev/null || { echo "install-k8s-tools: Go is required (go install from the module proxy)" >&2; exit 1; }

# go install <module>@<version> unless the stamp says it is already there.
install_tool() {
  local name=$1 module=$2 version=$3
  local stamp="$STAMPS/$name"
  if [[ -x "$BIN/$name" && -f "$stamp" && "$(cat "$stamp")" == "$module@$version" ]]; then
    echo "install-k8s-tools: $name $version already installed"
    return
  fi
  echo "install-k8s-tools: go install $module@$version"
  GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "$module@$version"
  echo "$module@$version" >"$stamp"
}

install_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
install_tool kubectl-validate sigs.k8s.io/kubectl-validate "$KUBECTL_VALIDATE_VERSION"

# The module's directory in the module cache (downloads the module zip once).
module_dir() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p'
}

# The last word names the set of files copied below: change it when the set changes.
crd_stamp="istio.io/api@$ISTIO_API_VERSION github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION files:2"
if [[ -f "$STAMPS/k8s-crds" && "$(cat "$STAMPS/k8s-crds")" == "$crd_stamp" && -d "$CRDS" ]]; then
  echo "install-k8s-tools: CRDs already in place ($crd_stamp)"
else
  echo "install-k8s-tools: CRDs from $crd_stamp"
  istio=$(module_dir "istio.io/api@$ISTIO_API_VERSION")
  eg=$(module_dir "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION")
  eg_crds="$eg/charts/gateway-helm/charts/crds/crds"
  rm -rf "$CRDS"
  mkdir -p "$CRDS"
  cp "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$CRDS/istio.yaml"
  cp "$eg_crds/generated/gateway.envoyproxy.io_envoyextensionpolicies.yaml" "$CRDS/envoy-gateway-envoyextensionpolicies.yaml"
  cp "$eg_crds/generated/gateway.envoyproxy.io_envoyproxies.yaml" "$CRDS/envoy-gateway-envoyproxies.yaml"
  cp "$eg_crds/gatewayapi-crds.yaml" "$CRDS/gateway-api.yaml"
  chmod -R u+w "$CRDS"
  echo "$crd_stamp" >"$STAMPS/k8s-crds"
fi

echo "install-k8s-tools: $("$BIN/kustomize" version) | kubectl-validate $KUBECTL_VALIDATE_VERSION | CRDs in $CRDS"
