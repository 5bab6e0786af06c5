#!/usr/bin/env bash
# Builds etcd (tools/etcd-member: a few lines around go.etcd.io/etcd/server/v3/embed, pinned in its
# go.mod) into .tools/etcd-member/ for the etcd saga-log tests (test/helpers/etcd.ts) and the demo.
# Idempotent: the stamp records what was built (the pinned module version and a hash of the
# sources), so a warm run returns at once. Needs Go (the module proxy); a cold build takes ~1.5 min.
set -euo pipefail
cd "$(dirname "$0")/../.."

SRC="$PWD/tools/etcd-member"
OUT="$PWD/.tools/etcd-member"
STAMP="$PWD/.tools/stamps/etcd-member"
mkdir -p "$OUT" "$(dirname "$STAMP")"

command -v go >/dev/null || { echo "install-etcd: Go is required (builds etcd from the module proxy)" >&2; exit 1; }

version=$(sed -n 's/.*go\.etcd\.io\/etcd\/server\/v3 \(v[0-9][^ ]*\).*/\1/p' "$SRC/go.mod" | head -1)
want="etcd-server@$version $(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-16)"
if [[ -x "$OUT/etcd-member" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  echo "install-etcd: etcd-member $version already built"
  exit 0
fi
echo "install-etcd: building etcd-member ($version)"
(cd "$SRC" && GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -o "$OUT/etcd-member" .)
echo "$want" >"$STAMP"
echo "install-etcd: built $OUT/etcd-member ($version)"
