#!/usr/bin/env bash
# `ritma load` benchmark: how fast a store's sealed windows go into ClickHouse, and how many
# bytes per event they take there against the store itself.
#
# Makes a store of EVENTS synthetic events (`ritma synth --seed 5 --rate 300`, replayed with 2
# workers), starts Debian's ClickHouse 18.16 (tests/clickhouse/install-clickhouse.sh) as a child
# process on free loopback ports with the tests' minimal config, then ROUNDS interleaved rounds:
#   - `ritma load` into a fresh database bN: wall time from outside, the client's CPU
#     (/usr/bin/time) and the server's CPU (/proc/PID/stat) over the load;
#   - the baseline: ClickHouse's own ingestion of the same rows: each table, exported once
#     from b1 as RowBinary, streamed with `curl -T` into a fresh table of the same shape
#     (CREATE TABLE rN.t AS b1.t); the events table and all tables timed apart.
# Then sizes: OPTIMIZE TABLE ... FINAL of every table of b1, bytes on disk per table from
# system.parts against `du -sb` of the store and of its windows/ directory. Then, unless
# PERF=0, one more load under `perf record -a -g` (who uses the CPU, and the client's hotspots)
# and `ritma query s actors` as the floor of reading the store once.
# Prints markdown tables of the medians. Every command's exit status is checked.
# With RITMA_BIN_B set, every round also loads the same store with that second binary into a
# fresh database cN right after RITMA_BIN's load (an interleaved A/B on one store and server),
# and its row and the per-round ratio B/A are printed too.
#
#   benches/clickhouse/load.sh [EVENTS]        (default 1000000; ROUNDS=5, PERF=1)
#   RITMA_BIN=/var/tmp/ritma-bench-target/release/ritma benches/clickhouse/load.sh 1000000
#   RITMA_BIN=old/ritma RITMA_BIN_B=new/ritma PERF=0 benches/clickhouse/load.sh 1000000
set -euo pipefail

events="${1:-1000000}"
rounds="${ROUNDS:-5}"
ritma_b="${RITMA_BIN_B:-}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" clickhouse-load
server_bin=$("$repo/tests/clickhouse/install-clickhouse.sh" | tail -1)
ch_lib="$(dirname "$(dirname "$server_bin")")/lib/x86_64-linux-gnu"

# --- the store --------------------------------------------------------------------------
t_store=$(date +%s.%N)
"$ritma" synth --events "$events" --seed 5 --rate 300 --out t.rtrace >/dev/null
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 >/dev/null 2>"$work/replay.err"
rm t.rtrace
echo "store of $events events made in $(echo "$(date +%s.%N) - $t_store" | bc) s" >&2

# --- the server -------------------------------------------------------------------------
source "$repo/benches/clickhouse/server.sh"
version=$(sql 'SELECT version()')
# The server's CPU seconds so far (user + system).
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$ch_pid/stat"; }
# Wall seconds of "$@", its stdout kept in $1; the client's user+system CPU in $work/cpu and
# its peak RSS in KB in $work/rss.
timed() {
  local out=$1 t0 t1 rc=0
  shift
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S %M' -o "$work/time" "$@" >"$out" 2>"$work/timed.err" || rc=$?
  t1=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then
    echo "benchmark command failed (exit $rc): $*" >&2
    cat "$work/timed.err" "$out" >&2
    exit 1
  fi
  awk '{ print $1 + $2 }' "$work/time" >"$work/cpu"
  awk '{ print $3 }' "$work/time" >"$work/rss"
  echo "$t1 - $t0" | bc
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }

# --- interleaved rounds: ritma load, then the raw INSERTs -------------------------------
runs="$work/runs.tsv"   # round, load s, rows, events, client cpu, server cpu, raw events s, raw all s, raw server cpu, client rss KB
runs_b="$work/runs-b.tsv"   # round, load s, rows, events, client cpu, server cpu, client rss KB (RITMA_BIN_B)
: >"$runs"
: >"$runs_b"
# `ritma load` of the store into a fresh database $2 with binary $1, checked: prints
# "wall s, rows, events, client cpu, server cpu, client rss KB".
load_into() {
  local bin=$1 db=$2 c0 c1 t line ev rows n
  sql "CREATE DATABASE $db" >/dev/null
  c0=$(server_cpu)
  t=$(timed "$work/load-$db.out" "$bin" load s --clickhouse "$url/?database=$db")
  c1=$(server_cpu)
  line=$(grep -o '[0-9]* events, [0-9]* rows' "$work/load-$db.out")
  ev=${line%% events*}
  rows=$(echo "$line" | sed 's/.* events, \([0-9]*\) rows/\1/')
  [ "$ev" -eq "$events" ] || { echo "$db: ritma load says $ev events, the store has $events" >&2; exit 1; }
  n=$(sql "SELECT count() FROM $db.events")
  [ "$n" -eq "$events" ] || { echo "$db: $db.events has $n rows, not $events" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$rows" "$ev" "$(cat "$work/cpu")" "$(echo "$c1 - $c0" | bc)" "$(cat "$work/rss")"
}
for r in $(seq "$rounds"); do
  # Not in $(...): its `exit 1` on a failed check must stop the script, not a subshell.
  load_into "$ritma" "b$r" >"$work/a.tsv"
  IFS=$'\t' read -r t_load rows ev cpu_load scpu_load rss_load <"$work/a.tsv"
  if [ -n "$ritma_b" ]; then
    load_into "$ritma_b" "c$r" >"$work/b.tsv"
    printf '%s\t%s\n' "$r" "$(cat "$work/b.tsv")" >>"$runs_b"
    echo "round $r: RITMA_BIN_B load $(cut -f1 "$work/b.tsv") s" >&2
    sql "DROP DATABASE c$r"
  fi
  if [ "$r" -eq 1 ]; then
    tables=$(sql "SELECT name FROM system.tables WHERE database = 'b1' ORDER BY name")
    all_rows=0
    mkdir "$work/rb"
    for t in $tables; do
      sql "SELECT * FROM b1.$t FORMAT RowBinary" >"$work/rb/$t"
      all_rows=$((all_rows + $(sql "SELECT count() FROM b1.$t")))
    done
    rb_events=$(stat -c %s "$work/rb/events")
    rb_all=$(du -cb "$work"/rb/* | tail -1 | cut -f1)
  fi
  sql "CREATE DATABASE r$r"
  raw_all=0
  c2=$(server_cpu)
  for t in $tables; do
    sql "CREATE TABLE r$r.$t AS b1.$t"
    # -T streams the file (--data-binary @file reads it into memory, which curl caps at 1 GB).
    s=$(secs curl -sS --fail-with-body -X POST -H "Expect:" -T "$work/rb/$t" "$url/?query=INSERT+INTO+r$r.$t+FORMAT+RowBinary")
    [ "$t" = events ] && raw_events=$s
    raw_all=$(echo "$raw_all + $s" | bc)
  done
  c3=$(server_cpu)
  n=$(sql "SELECT count() FROM r$r.events")
  [ "$n" -eq "$events" ] || { echo "round $r: r$r.events has $n rows, not $events" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$t_load" "$rows" "$ev" "$cpu_load" \
    "$scpu_load" "$raw_events" "$raw_all" "$(echo "$c3 - $c2" | bc)" "$rss_load" >>"$runs"
  echo "round $r: load $t_load s ($rows rows), raw events $raw_events s, raw all tables $raw_all s" >&2
  sql "DROP DATABASE r$r"
  if [ "$r" -gt 1 ]; then sql "DROP DATABASE b$r"; fi
done

col() { cut -f"$1" "$runs"; }
m_load=$(col 2 | median); rows=$(col 3 | head -1)
m_cpu=$(col 5 | median); m_scpu=$(col 6 | median)
m_raw_ev=$(col 7 | median); m_raw_all=$(col 8 | median); m_raw_scpu=$(col 9 | median)
ratio() { col 2 | paste - <(col "$1") | awk '{ print $1 / $2 }' | median; }
echo
echo "ClickHouse $version; $events events, $rows rows from ritma load ($all_rows rows in all tables of b1 with its ledger); $rounds rounds"
echo
printf '| per run (median of %d, [min–max]) | wall s | rows/s | events/s | client CPU s | server CPU s | client peak RSS MB |\n|---|---|---|---|---|---|---|\n' "$rounds"
printf '| ritma load | %.2f [%s] | %.0f | %.0f | %.2f | %.2f | %.0f |\n' "$m_load" "$(col 2 | minmax)" \
  "$(echo "$rows / $m_load" | bc -l)" "$(echo "$events / $m_load" | bc -l)" "$m_cpu" "$m_scpu" "$(echo "$(col 10 | median) / 1024" | bc -l)"
if [ -n "$ritma_b" ]; then
  colb() { cut -f"$1" "$runs_b"; }
  mb_load=$(colb 2 | median); rows_b=$(colb 3 | head -1)
  printf '| ritma load, RITMA_BIN_B (%d rows) | %.2f [%s] | %.0f | %.0f | %.2f | %.2f | %.0f |\n' "$rows_b" "$mb_load" "$(colb 2 | minmax)" \
    "$(echo "$rows_b / $mb_load" | bc -l)" "$(echo "$events / $mb_load" | bc -l)" "$(colb 5 | median)" "$(colb 6 | median)" \
    "$(echo "$(colb 7 | median) / 1024" | bc -l)"
fi
printf '| raw RowBinary INSERT, events table (%d rows, %d bytes) | %.2f [%s] | %.0f | %.0f | | | |\n' "$events" "$rb_events" \
  "$m_raw_ev" "$(col 7 | minmax)" "$(echo "$events / $m_raw_ev" | bc -l)" "$(echo "$events / $m_raw_ev" | bc -l)"
printf '| raw RowBinary INSERT, all tables (%d rows, %d bytes) | %.2f [%s] | %.0f | %.0f | | %.2f | |\n' "$all_rows" "$rb_all" \
  "$m_raw_all" "$(col 8 | minmax)" "$(echo "$all_rows / $m_raw_all" | bc -l)" "$(echo "$events / $m_raw_all" | bc -l)" "$m_raw_scpu"
echo
printf 'ritma load / raw events INSERT: %.2fx (median of the per-round ratios %.2fx); / raw all tables: %.2fx (per round %.2fx)\n' \
  "$(echo "$m_load / $m_raw_ev" | bc -l)" "$(ratio 7)" "$(echo "$m_load / $m_raw_all" | bc -l)" "$(ratio 8)"
if [ -n "$ritma_b" ]; then
  printf 'RITMA_BIN_B / RITMA_BIN wall: %.2fx of the medians (median of the per-round ratios %.2fx)\n' \
    "$(echo "$mb_load / $m_load" | bc -l)" "$(colb 2 | paste - <(col 2) | awk '{ print $1 / $2 }' | median)"
fi

# --- bytes per event ----------------------------------------------------------------------
for t in $tables; do sql "OPTIMIZE TABLE b1.$t FINAL"; done
bcol=$(sql "SELECT name FROM system.columns WHERE database = 'system' AND table = 'parts' AND name IN ('bytes_on_disk', 'bytes') ORDER BY name = 'bytes_on_disk' DESC LIMIT 1")
echo
echo "system.parts column: $bcol"
echo
printf '| table (b1, after OPTIMIZE FINAL) | parts | rows | bytes on disk | bytes/event | compressed | uncompressed |\n|---|---|---|---|---|---|---|\n'
sql "SELECT table, count(), sum(rows), sum($bcol), sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.parts WHERE database = 'b1' AND active GROUP BY table ORDER BY sum($bcol) DESC FORMAT TSV" >"$work/parts.tsv"
awk -F'\t' -v n="$events" '{ printf "| %s | %d | %d | %d | %.1f | %d | %d |\n", $1, $2, $3, $4, $4 / n, $5, $6; b += $4 }
  END { printf "| all tables | | | %d | %.1f | | |\n", b, b / n }' "$work/parts.tsv"
ch_all=$(awk -F'\t' '{ b += $4 } END { print b }' "$work/parts.tsv")
ch_ev=$(awk -F'\t' '$1 == "events" { print $4 }' "$work/parts.tsv")
st_all=$(du -sb s | cut -f1)
st_win=$(du -sb s/windows | cut -f1)
st_blocks=$(find s/windows -path '*/blocks/*' -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)
echo
printf '| bytes | total | bytes/event |\n|---|---|---|\n'
printf '| store, whole (du -sb s) | %d | %.1f |\n' "$st_all" "$(echo "$st_all / $events" | bc -l)"
printf '| store, windows/ | %d | %.1f |\n' "$st_win" "$(echo "$st_win / $events" | bc -l)"
printf '| store, event blocks (windows/*/blocks) | %d | %.1f |\n' "$st_blocks" "$(echo "$st_blocks / $events" | bc -l)"
printf '| ClickHouse, all tables | %d | %.1f |\n' "$ch_all" "$(echo "$ch_all / $events" | bc -l)"
printf '| ClickHouse, events table | %d | %.1f |\n' "$ch_ev" "$(echo "$ch_ev / $events" | bc -l)"
echo
printf 'ClickHouse all tables / whole store: %.2fx; / windows/: %.2fx; events table / windows/: %.2fx; events table / event blocks: %.2fx\n' \
  "$(echo "$ch_all / $st_all" | bc -l)" "$(echo "$ch_all / $st_win" | bc -l)" \
  "$(echo "$ch_ev / $st_win" | bc -l)" "$(echo "$ch_ev / $st_blocks" | bc -l)"

# --- where the time goes ------------------------------------------------------------------
t_actors=$(secs "$ritma" query s actors)
echo
printf 'ritma query s actors (one read of the store): %.2f s\n' "$t_actors"
if [ "${PERF:-1}" = 1 ] && command -v perf >/dev/null; then
  sql "CREATE DATABASE p"
  perf record -q -a -g -F 499 -e cpu-clock -o "$work/perf.data" -- \
    "$ritma" load s --clickhouse "$url/?database=p" >"$work/perf-load.out" 2>"$work/perf.err" \
    || { echo "perf record of ritma load failed" >&2; cat "$work/perf.err" >&2; exit 1; }
  echo
  echo "perf (system-wide, cpu-clock, one load; $(grep -o '[0-9.]* s ([0-9]* rows/s)' "$work/perf-load.out")):"
  echo '```'
  # Each report to a file first: `| head` on a pipe would stop perf with SIGPIPE (pipefail).
  report() { perf report -i "$work/perf.data" --stdio -g none "$@" >"$work/report.txt" 2>/dev/null
             grep -v '^#' "$work/report.txt" | grep '%' | sed 's/ *- *- *$//' >"$work/report.lines"; }
  report --no-children --sort comm
  head -6 "$work/report.lines"
  echo '--- ritma (its one thread), self time by symbol, % of its samples'
  report --no-children --comm ritma --percentage relative --sort symbol
  head -20 "$work/report.lines"
  echo '--- ritma, time including callees (frame-pointer call graphs), % of its samples'
  report --children --comm ritma --percentage relative --sort symbol
  head -30 "$work/report.lines"
  echo '```'
fi
