#!/usr/bin/env bash
# Re-create the vendored front-end files from the npm registry (they are committed: CI needs no npm).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent htmx.org@2.0.11 leaflet@1.9.4 >/dev/null)
tar xzf "$tmp/htmx.org-2.0.11.tgz" -C "$tmp" && cp "$tmp/package/dist/htmx.min.js" static/vendor/htmx-2.0.11.min.js
rm -rf "$tmp/package" && tar xzf "$tmp/leaflet-1.9.4.tgz" -C "$tmp"
mkdir -p static/vendor/leaflet-1.9.4
cp -r "$tmp/package/dist/leaflet.js" "$tmp/package/dist/leaflet.css" "$tmp/package/dist/images" static/vendor/leaflet-1.9.4/
echo "vendored htmx 2.0.11 and leaflet 1.9.4 into static/vendor/"
