#!/usr/bin/env bash
# Query benchmark (issue 5): each `ritma query` over a store of 1M synthetic events
# (~56 min of one host), against the floor of any scan of the same store: decompressing
# every block with the zstd tool. Run from anywhere:
#   benches/query/query.sh [EVENTS]   (default 1000000)
set -euo pipefail

events="${1:-1000000}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" query
"$ritma" synth --events "$events" --seed 5 --rate 300 --out t.rtrace >/dev/null
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 2>/dev/null
actor=$("$ritma" query s actors --exe /tmp/.x --json --limit 1 | sed 's/.*"actor":"\([0-9a-f]*\)".*/\1/')
shell=$("$ritma" query s actors --exe /tmp/.x --json --limit 1 | sed 's/.*"parent":"\([0-9a-f]*\)".*/\1/')

blocks() { find s/windows -path '*/blocks/*' -name '*.zst' -print0 | xargs -0 cat | zstd -dcq >/dev/null; }
t_floor=$(secs blocks)
printf '| query (%d events) | s | events/s | / zstd -d of all blocks |\n|---|---|---|---|\n' "$events"
printf '| zstd -d of all blocks | %.2f | %.0f | 1.0x |\n' "$t_floor" "$(echo "$events / $t_floor" | bc -l)"
for q in "actors" "actors --exe /tmp/.x" "events $actor" "tree $actor" "path /tmp/.x" "flow 203.0.113.9" \
         "taint $actor" "taint $shell" "cones"; do
    t=$(secs "$ritma" query s $q)
    name=$(echo "$q" | sed "s/$actor/ACTOR/; s/$shell/SHELL/")
    printf '| %s | %.2f | %.0f | %.1fx |\n' "$name" "$t" "$(echo "$events / $t" | bc -l)" "$(echo "$t / $t_floor" | bc -l)"
done
