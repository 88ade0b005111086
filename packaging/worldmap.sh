#!/bin/sh
# Fetches Natural Earth's 1:110m land (public domain, naturalearthdata.com)
# as TopoJSON from the world-atlas package on npm (ISC licence), and puts
# land-110m.json and the package's licence into DIR (default data/map).
# `mailtrail map --land DIR/land-110m.json` draws it. Does nothing when the
# file is already there.
set -eu
dir=${1:-data/map}
if [ -s "$dir/land-110m.json" ]; then
	exit 0
fi
command -v npm >/dev/null 2>&1 || {
	echo "worldmap: npm is needed to fetch world-atlas (apt-get install npm)" >&2
	exit 1
}
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "worldmap: fetching world-atlas (Natural Earth land, about 250 kB) ..."
(cd "$tmp" && npm pack --silent world-atlas@2 >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
cp "$tmp/package/land-110m.json" "$dir/.land-110m.json.new"
mv "$dir/.land-110m.json.new" "$dir/land-110m.json"
cp "$tmp/package/LICENSE" "$dir/WORLD-ATLAS-LICENSE" 2>/dev/null || true
echo "worldmap: $dir/land-110m.json ready"
echo "worldmap: land from Natural Earth (public domain) via world-atlas (ISC)"
