#!/usr/bin/env bash
# Build OpenTofu's `tofu` (v1.6.3, from the Go module proxy: HashiCorp's and
# OpenTofu's release sites are not needed) into the directory the end-to-end
# tests use, unless it is already there: $TERRATASK_TOFU_BIN, else
# $(dirname $(go env GOCACHE))/terratask-tofu-bin/VERSION. Prints the
# directory on the last line of stdout. Newer OpenTofu tags carry replace
# directives and do not install this way.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${TERRATASK_TOFU_VERSION:-v1.6.3}
dir=${TERRATASK_TOFU_BIN:-}
if [ -z "$dir" ]; then
  dir="$(dirname "$(go env GOCACHE)")/terratask-tofu-bin/$version"
fi
if [ -x "$dir/tofu" ] && "$dir/tofu" version 2>/dev/null | grep -qx "OpenTofu ${version}"; then
  echo "OpenTofu $version already in $dir" >&2
  echo "$dir"
  exit 0
fi
mkdir -p "$(dirname "$dir")"
tmp=$(mktemp -d "$dir.tmp-XXXXXX")
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "building OpenTofu $version (cmd/tofu) into $dir" >&2
start=$(date +%s)
# dev=no as in OpenTofu's release builds: the binary reports "1.6.3", not
# "1.6.3-dev", so tofu_version pins match it as they match a release.
GOBIN="$tmp" GOFLAGS= go install -ldflags "-X github.com/opentofu/opentofu/version.dev=no" \
  "github.com/opentofu/opentofu/cmd/tofu@$version"
rm -rf "$dir" # an older build (a -dev version)
if ! mv -T "$tmp" "$dir" 2>/dev/null; then
  # Another build finished first.
  [ -x "$dir/tofu" ] || { echo "could not move $tmp to $dir" >&2; exit 1; }
fi
echo "built OpenTofu in $(( $(date +%s) - start ))s" >&2
echo "$dir"
