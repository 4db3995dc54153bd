#!/usr/bin/env bash
# Build the Temporal server and its sql schema tool (the `server` and `sql`
# binaries of go.temporal.io/server, at the version go.mod requires) into the
# directory the fleet test (e2e/fleet) uses, unless they are already there:
# $TERRATASK_TEMPORAL_BIN, else $(dirname $(go env GOCACHE))/terratask-temporal-bin/VERSION.
# Prints the directory on the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(go list -m -f '{{.Version}}' go.temporal.io/server)
dir=${TERRATASK_TEMPORAL_BIN:-}
if [ -z "$dir" ]; then
  dir="$(dirname "$(go env GOCACHE)")/terratask-temporal-bin/$version"
fi
if [ -x "$dir/server" ] && [ -x "$dir/sql" ]; then
  echo "Temporal server $version binaries already in $dir" >&2
  echo "$dir"
  exit 0
fi
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$dir.tmp-XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "building the Temporal server $version (cmd/server, cmd/tools/sql) into $dir" >&2
start=$(date +%s)
GOBIN="$tmp" GOFLAGS= go install \
  "go.temporal.io/server/cmd/server@$version" \
  "go.temporal.io/server/cmd/tools/sql@$version"
if ! mv -T "$tmp" "$dir" 2>/dev/null; then
  # Another build finished first.
  [ -x "$dir/server" ] && [ -x "$dir/sql" ] || { echo "could not move $tmp to $dir" >&2; exit 1; }
fi
echo "built the Temporal server binaries in $(( $(date +%s) - start ))s" >&2
echo "$dir"
