#!/usr/bin/env bash
# Fetches Chart.js from the npm registry into internal/dev/demo/chartjs (the
# HTML report inlines it). npm verifies the package's integrity.
set -euo pipefail
version=${1:-4.6.1}
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/internal/dev/demo/chartjs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "chart.js@$version" >/dev/null && tar xzf "chart.js-$version.tgz")
sed '/^\/\/# sourceMappingURL=/d' "$tmp/package/dist/chart.umd.min.js" >"$dest/chart.umd.min.js"
cp "$tmp/package/LICENSE.md" "$dest/LICENSE.md"
integrity=$(cd "$tmp" && npm view "chart.js@$version" dist.integrity)
sed -i -E "s/chart\.js\) [0-9.]+ /chart.js) $version /; s#chart\.js-[0-9.]+\.tgz#chart.js-$version.tgz#; s#\`sha512-[^\`]*\`#\`$integrity\`#" "$dest/README.md"
echo "Chart.js $version in $dest"
