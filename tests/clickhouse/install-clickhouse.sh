#!/usr/bin/env bash
# Installs Debian's real ClickHouse server (18.16, the one bookworm ships) for the loader's
# tests, only when missing: the two .debs are unpacked into a folder kept between CI runs
# (not installed, so no daemon is started and nothing listens on 8123/9000), and only the
# shared libraries the server links are installed with apt. The tests start the server as a
# child process with a config of their own. Prints the server binary as the last line.
#
#   tests/clickhouse/install-clickhouse.sh   # -> /var/tmp/ritma-tools/clickhouse-18.16-1/usr/sbin/clickhouse-server
#
# Run it as LD_LIBRARY_PATH=<folder>/usr/lib/x86_64-linux-gnu <binary> --config-file=…
# Environment: RITMA_TOOLS overrides the cache folder (default /var/tmp/ritma-tools).
# A cold install takes about 20 s; a warm one is a few file checks.
set -euo pipefail

version=18.16.1+ds-7.3+b2
tools=${RITMA_TOOLS:-/var/tmp/ritma-tools}
# Bump the folder's suffix when the version changes, so a cached older server is not used.
dest="$tools/clickhouse-18.16-1"
server="$dest/usr/sbin/clickhouse-server"
# The libraries clickhouse-common and clickhouse-server depend on (their Depends fields).
libs=(libboost-filesystem1.74.0 libboost-program-options1.74.0 libcapnp-0.9.2 libcctz2
      libcpuinfo0 libdouble-conversion3 libfarmhash0 libicu72 libjemalloc2 liblz4-1 libmariadb3
      libmetrohash1 libpocodata80 libpocodataodbc80 libpocofoundation80 libpocomongodb80
      libpoconet80 libpoconetssl80 libpocoutil80 libpocoxml80 librdkafka1 libre2-9 libssl3
      libzstd1 zlib1g)

missing_libs() {
    local missing=()
    for p in "${libs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    echo "${missing[@]}"
}

mkdir -p "$tools"
exec 9>"$tools/.clickhouse.lock"
flock 9

need=$(missing_libs)
if [ -n "$need" ]; then
    echo "install-clickhouse.sh: installing the server's libraries: $need" >&2
    apt-get update -qq >&2
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >&2
fi

# The marker is written last: a killed unpack has none and is made again.
if [ ! -f "$dest/.installed" ]; then
    echo "install-clickhouse.sh: unpacking clickhouse-server $version into $dest" >&2
    rm -rf "$dest" "$dest.debs"
    mkdir -p "$dest.debs"
    (cd "$dest.debs" && apt-get download -qq "clickhouse-common=$version" "clickhouse-server=$version" >&2) || {
        apt-get update -qq >&2
        (cd "$dest.debs" && apt-get download -qq "clickhouse-common=$version" "clickhouse-server=$version" >&2)
    }
    mkdir -p "$dest"
    for deb in "$dest.debs"/*.deb; do dpkg-deb -x "$deb" "$dest"; done
    rm -rf "$dest.debs"
    touch "$dest/.installed"
fi
echo "$server"
