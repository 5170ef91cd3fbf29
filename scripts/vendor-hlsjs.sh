#!/usr/bin/env bash
# Vendor hls.js (the light build) into the dashboard's static files from the npm registry: the panel's stream
# preview plays the proxy's HLS with it. Usage: scripts/vendor-hlsjs.sh [version]
set -euo pipefail
version="${1:-1.5.20}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "hls.js@${version}" >/dev/null && tar xzf "hls.js-${version}.tgz")
out="$here/src/aceorch/dashboard/static/hls.light.min.js"
{
  printf '/*! hls.js %s (hls.light.min.js), vendored from the npm package hls.js@%s by scripts/vendor-hlsjs.sh.\n' "$version" "$version"
  printf ' * Copyright (c) 2017 Dailymotion (http://www.dailymotion.com). Licensed under the Apache License, Version 2.0:\n'
  printf ' * http://www.apache.org/licenses/LICENSE-2.0 */\n'
  cat "$work/package/dist/hls.light.min.js"
} >"$out"
echo "wrote $out"
