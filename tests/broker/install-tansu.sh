#!/usr/bin/env bash
# Installs tansu (a Kafka-protocol broker written in Rust, crates.io, Apache-2.0) for the
# end-to-end tests of the Kafka sink, only when it is missing from the cache that CI keeps
# between runs. Prints the binary's path as the last line of stdout; cargo's output goes to
# stderr.
#
#   tests/broker/install-tansu.sh            # -> /var/tmp/ritma-tools/tansu-0.6.0/bin/tansu
#
# Environment: RITMA_TOOLS overrides the cache folder (default /var/tmp/ritma-tools).
#
# Built with the `dynostore` feature only: the broker is run with the in-memory storage engine
# (memory://). The sqlite engine (feature `libsql`) would double the build time and is not used.
# A cold install builds ~400 crates: 21 minutes on 2 busy cores (27 CPU-minutes), measured
# 2026-12-07; a warm one is a file check.
#
# The install goes to a temporary root next to the cache and is renamed into place only when
# it finished and the binary ran, so a killed install never leaves a half-installed cache; its
# own temporary target folder is removed afterwards. Concurrent runs are serialised with flock.
set -euo pipefail

TANSU_VERSION=0.6.0
tools=${RITMA_TOOLS:-/var/tmp/ritma-tools}
dest="$tools/tansu-$TANSU_VERSION"
bin="$dest/bin/tansu"

if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi

command -v cargo >/dev/null 2>&1 || { echo "install-tansu.sh: cargo not found" >&2; exit 1; }
mkdir -p "$tools"

# One install at a time; the lock is released when this script exits.
exec 9>"$tools/.tansu.lock"
flock 9
if [ -x "$bin" ]; then # another run installed it while this one waited
    echo "$bin"
    exit 0
fi

# Leftovers of a killed install (holding the lock, no other install is running).
rm -rf "$tools/.tansu-$TANSU_VERSION".*

tmp=$(mktemp -d "$tools/.tansu-$TANSU_VERSION.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "install-tansu.sh: building tansu $TANSU_VERSION (cold install, 15-25 minutes on 2 cores)" >&2
start=$(date +%s)
cargo install "tansu@$TANSU_VERSION" --locked --features dynostore \
    --root "$tmp/root" --target-dir "$tmp/target" 1>&2
"$tmp/root/bin/tansu" --help >/dev/null

rm -rf "$dest" # a cache folder without an executable binary: replace it
mv -T "$tmp/root" "$dest"
echo "install-tansu.sh: installed in $(( $(date +%s) - start )) s" >&2
echo "$bin"
