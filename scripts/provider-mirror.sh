#!/usr/bin/env bash
# Build the hashicorp/time provider (v0.14.2, from the Go module proxy) into a
# Terraform filesystem mirror that the drift tests serve offline, unless it is
# already there: $TERRATASK_PROVIDER_MIRROR, else
# $(dirname $(go env GOCACHE))/terratask-provider-mirror. The binary lands at
# MIRROR/registry.terraform.io/hashicorp/time/0.14.2/linux_amd64/terraform-provider-time_v0.14.2
# (OS and architecture of this machine). Prints the mirror on the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.14.2
mirror=${TERRATASK_PROVIDER_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror="$(dirname "$(go env GOCACHE)")/terratask-provider-mirror"
fi
platform="$(go env GOOS)_$(go env GOARCH)"
dest="$mirror/registry.terraform.io/hashicorp/time/$version/$platform"
bin="$dest/terraform-provider-time_v$version"
if [ -x "$bin" ]; then
  echo "time provider $version already in $mirror" >&2
  echo "$mirror"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.tmp-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "building the time provider $version into $mirror" >&2
start=$(date +%s)
GOBIN="$tmp" GOFLAGS= go install "github.com/hashicorp/terraform-provider-time@v$version"
mv -f "$tmp/terraform-provider-time" "$bin"
echo "built the time provider in $(( $(date +%s) - start ))s" >&2
echo "$mirror"
