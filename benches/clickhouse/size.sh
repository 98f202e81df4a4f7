#!/usr/bin/env bash
# Bytes per event in ClickHouse's current engine against the store: the modern tables of
# deploy/clickhouse/schema.sql (LowCardinality, Delta/DoubleDelta/ZSTD codecs), which Debian's
# 18.16 server (benches/clickhouse/load.sh) cannot hold.
#
# Makes a store of EVENTS synthetic events (`ritma synth --seed 5 --rate 300`, replayed with 2
# workers, as load.sh does), starts the ClickHouse 26.9 engine (PyPI's chdb-core, from
# tests/clickhouse/install-engine.sh) behind tests/clickhouse/chdb_http.py on a free loopback
# port, loads the store with `ritma load`, runs OPTIMIZE TABLE … FINAL on every table, and
# prints bytes on disk per table (system.parts) against `du -sb` of the store and of its
# windows/ directory. Sizes do not vary from run to run: one run. Every exit status is checked.
#
#   benches/clickhouse/size.sh [EVENTS]        (default 1000000)
#   RITMA_BIN=/var/tmp/ritma-bench-target/release/ritma benches/clickhouse/size.sh 1000000
set -euo pipefail

events="${1:-1000000}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" clickhouse-size
py=$("$repo/tests/clickhouse/install-engine.sh" | tail -1)

"$ritma" synth --events "$events" --seed 5 --rate 300 --out t.rtrace >/dev/null
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 >/dev/null 2>"$work/replay.err"
rm t.rtrace

"$py" "$repo/tests/clickhouse/chdb_http.py" "$work/engine" "$work/port" >"$work/front.log" 2>&1 &
front=$!
trap 'kill "$front" 2>/dev/null || true; wait "$front" 2>/dev/null || true; rm -rf "$work"' EXIT
for i in $(seq 600); do
  [ -s "$work/port" ] && break
  kill -0 "$front" 2>/dev/null || { echo "the engine front exited:" >&2; cat "$work/front.log" >&2; exit 1; }
  [ "$i" -eq 600 ] && { echo "the engine front did not start in 60 s" >&2; exit 1; }
  sleep 0.1
done
url="http://127.0.0.1:$(cat "$work/port")"
sql() {
  local out
  out=$(curl -sS --fail-with-body "$url/" --data-binary "$1") || { echo "query failed: $1: $out" >&2; exit 1; }
  printf '%s\n' "$out"
}
version=$(sql 'SELECT version()')
sql 'CREATE DATABASE m' >/dev/null
t0=$(date +%s.%N)
"$ritma" load s --clickhouse "$url/?database=m" >"$work/load.out" 2>"$work/load.err" || {
  echo "ritma load failed:" >&2; cat "$work/load.err" >&2; exit 1; }
load_s=$(echo "$(date +%s.%N) - $t0" | bc)
loaded=$(sql 'SELECT count() FROM m.events')
[ "$loaded" -eq "$events" ] || { echo "m.events holds $loaded rows, not $events" >&2; exit 1; }
for t in $(sql "SELECT name FROM system.tables WHERE database = 'm' ORDER BY name"); do
  sql "OPTIMIZE TABLE m.$t FINAL" >/dev/null
done

st_all=$(du -sb s | cut -f1)
st_win=$(du -sb s/windows | cut -f1)
sql "SELECT table, count(), sum(rows), sum(bytes_on_disk), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts WHERE database = 'm' AND active GROUP BY table ORDER BY sum(bytes_on_disk) DESC FORMAT TSV" >"$work/parts.tsv"
ch_all=$(awk -F'\t' '{ s += $4 } END { print s }' "$work/parts.tsv")
ch_ev=$(awk -F'\t' '$1 == "events" { print $4 }' "$work/parts.tsv")

echo "ClickHouse engine $version (chdb-core); $events events; loaded in $load_s s through the emulated HTTP front (not a load-rate figure)"
echo
printf '| table (after OPTIMIZE FINAL) | parts | rows | bytes on disk | bytes/event | compressed | uncompressed |\n|---|---|---|---|---|---|---|\n'
awk -F'\t' -v n="$events" '{ printf "| %s | %d | %d | %d | %.1f | %d | %d |\n", $1, $2, $3, $4, $4 / n, $5, $6 }' "$work/parts.tsv"
echo
printf '| column (largest 12) | table | compressed bytes | bytes/event |\n|---|---|---|---|\n'
sql "SELECT name, table, data_compressed_bytes FROM system.columns WHERE database = 'm' ORDER BY data_compressed_bytes DESC LIMIT 12 FORMAT TSV" |
  awk -F'\t' -v n="$events" '{ printf "| %s | %s | %d | %.2f |\n", $1, $2, $3, $3 / n }'
echo
printf '| bytes | total | bytes/event |\n|---|---|---|\n'
printf '| ClickHouse 26.9, all tables | %d | %.1f |\n' "$ch_all" "$(echo "$ch_all / $events" | bc -l)"
printf '| ClickHouse 26.9, events | %d | %.1f |\n' "$ch_ev" "$(echo "$ch_ev / $events" | bc -l)"
printf '| store, whole (du -sb s) | %d | %.1f |\n' "$st_all" "$(echo "$st_all / $events" | bc -l)"
printf '| store, windows/ | %d | %.1f |\n' "$st_win" "$(echo "$st_win / $events" | bc -l)"
echo
printf 'all tables / whole store: %.2fx; events / windows/: %.2fx\n' \
  "$(echo "$ch_all / $st_all" | bc -l)" "$(echo "$ch_ev / $st_win" | bc -l)"
