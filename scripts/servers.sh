#!/usr/bin/env bash
# Builds the real servers the tests and the demo run (nsqd, nsqlookupd,
# influxd, kapacitord) from their Go modules into a git-ignored cache keyed
# by version: .cache/servers/<name>-<version>/<binary>. A binary already in
# the cache is not rebuilt. The comments at each build say why it needs what
# it needs.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/.cache/servers"
work="$top/.cache/build-servers"
mkdir -p "$cache" "$work"

# NSQ_VERSION, INFLUXDB_VERSION, KAPACITOR_VERSION: set in one place.
. "$top/internal/testutil/stack/versions.env"
# influxd 1.8 and kapacitord 1.5 vendor an old ugorji codec that panics at
# start when compiled with Go >= 1.22; the proxy serves this toolchain.
OLD_TOOLCHAIN=go1.21.13

# build <name> <version> <module> <go-version> <toolchain> <replaces> <pkg>...
build() {
  local name=$1 version=$2 module=$3 gover=$4 toolchain=$5 replaces=$6
  shift 6
  local out="$cache/$name-$version"
  local missing=0
  for pkg in "$@"; do
    [ -x "$out/$(basename "$pkg")" ] || missing=1
  done
  if [ "$missing" = 0 ]; then
    return 0
  fi
  echo "servers: building $name $version (once; cached in $out)" >&2
  local dir="$work/$name-$version"
  rm -rf "$dir"
  mkdir -p "$dir" "$out.tmp"
  cat >"$dir/go.mod" <<EOF
module mailtick.local/servers/$name

go $gover

require $module $version

$replaces
EOF
  printf 'package tools\n\nimport (\n' >"$dir/tools.go"
  for pkg in "$@"; do
    printf '\t_ "%s"\n' "$pkg" >>"$dir/tools.go"
  done
  printf ')\n' >>"$dir/tools.go"
  sed -i '1i //go:build tools\n' "$dir/tools.go"
  (
    cd "$dir"
    export GOTOOLCHAIN=$toolchain GOFLAGS=-mod=mod CGO_ENABLED=0
    go mod tidy -e >/dev/null 2>&1 || true
    for pkg in "$@"; do
      go build -trimpath -ldflags "-s -w" -o "$out.tmp/" "$pkg"
    done
  )
  rm -rf "$out"
  mv "$out.tmp" "$out"
}

build nsq "$NSQ_VERSION" github.com/nsqio/nsq 1.21 local \
  "replace github.com/judwhite/go-svc => github.com/mreiferson/go-svc v1.2.2-0.20210815184239-7a96e00010f6" \
  github.com/nsqio/nsq/apps/nsqd github.com/nsqio/nsq/apps/nsqlookupd

build influxdb "$INFLUXDB_VERSION" github.com/influxdata/influxdb 1.13 "$OLD_TOOLCHAIN" "" \
  github.com/influxdata/influxdb/cmd/influxd

build kapacitor "$KAPACITOR_VERSION" github.com/influxdata/kapacitor 1.13 "$OLD_TOOLCHAIN" \
  "replace (
	gopkg.in/fsnotify.v1 => github.com/fsnotify/fsnotify v1.4.2
	github.com/prometheus/prometheus => github.com/goller/prometheus v1.6.1-0.20170502220046-58298e738211
)" \
  github.com/influxdata/kapacitor/cmd/kapacitord github.com/influxdata/kapacitor/cmd/kapacitor

ls -1 "$cache"
