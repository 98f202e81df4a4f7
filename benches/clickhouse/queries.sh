#!/usr/bin/env bash
# Shipped ClickHouse queries against `ritma query` on the store, and the Parquet export.
#
# Makes a store of EVENTS synthetic events (`ritma synth --seed 5 --rate 300`, replayed with 2
# workers), starts Debian's ClickHouse 18.16 (tests/clickhouse/install-clickhouse.sh) as a child
# process on free loopback ports with the tests' minimal config (as benches/clickhouse/load.sh
# does), loads the store once with `ritma load s --clickhouse URL/?database=q`, then measures:
#   1. query latency: for each question (actors --exe .x, events ACTOR, tree ACTOR,
#      path /tmp/.x, flow 203.0.113.9, cones, loss, cone-hours, egress, new-binaries), ROUNDS
#      interleaved rounds of `ritma query s WHAT --json` then `ritma query --clickhouse URL WHAT
#      --json`, wall time from outside, output discarded; in round 1 the two outputs are compared
#      byte for byte (a difference is reported loudly but does not fail the run);
#   2. the Parquet export: ROUNDS interleaved rounds of the floor of reading the store
#      (`zstd -dc` of every block file to /dev/null), then `ritma export s --format parquet
#      --out pq` into a fresh pq, then `ritma export s --format parquet --ocsf --out oc` (OCSF
#      for Security Lake) into a fresh oc; wall time, events/s; then bytes of pq (and of its
#      events table alone) and of oc against the store (and its windows/ directory).
# Prints markdown tables of the medians [min–max]. Every command's exit status is checked.
#
#   benches/clickhouse/queries.sh [EVENTS]        (default 10000000; ROUNDS=5)
#   RITMA_BIN=/var/tmp/ritma-bench-target/release/ritma benches/clickhouse/queries.sh 10000000
set -euo pipefail

events="${1:-10000000}"
rounds="${ROUNDS:-5}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" clickhouse-queries
server_bin=$("$repo/tests/clickhouse/install-clickhouse.sh" | tail -1)
ch_lib="$(dirname "$(dirname "$server_bin")")/lib/x86_64-linux-gnu"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average at start: $(loadavg)" >&2

# --- the store --------------------------------------------------------------------------
t_store=$(date +%s.%N)
"$ritma" synth --events "$events" --seed 5 --rate 300 --out t.rtrace >/dev/null
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 >/dev/null 2>"$work/replay.err"
rm t.rtrace
store_s=$(echo "$(date +%s.%N) - $t_store" | bc)
echo "store of $events events made in $store_s s; load average $(loadavg)" >&2

# --- the server -------------------------------------------------------------------------
source "$repo/benches/clickhouse/server.sh"
version=$(sql 'SELECT version()')
# Wall seconds of "$@", its stdout kept in $1; a failure stops the benchmark.
timed() {
  local out=$1 t0 t1 rc=0
  shift
  t0=$(date +%s.%N)
  "$@" >"$out" 2>"$work/timed.err" || rc=$?
  t1=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then
    echo "benchmark command failed (exit $rc): $*" >&2
    cat "$work/timed.err" >&2
    head -c 2000 "$out" >&2
    exit 1
  fi
  echo "$t1 - $t0" | bc
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
minmax() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f–%.2f", lo, hi }'; }

# --- the load, once -----------------------------------------------------------------------
sql "CREATE DATABASE q"
curl_q="$url/?database=q"
load_s=$(timed "$work/load.out" "$ritma" load s --clickhouse "$curl_q")
n=$(sql "SELECT count() FROM q.events")
[ "$n" -eq "$events" ] || { echo "q.events has $n rows, not $events" >&2; exit 1; }
echo "loaded in $load_s s ($(grep -o '[0-9]* events, [0-9]* rows' "$work/load.out")); load average $(loadavg)" >&2

# --- 1. query latency ----------------------------------------------------------------------
"$ritma" query s actors --exe /tmp/.x --json --limit 1 >"$work/actor.json"
actor=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["actor"])' "$work/actor.json")
[ -n "$actor" ] || { echo "no actor with --exe /tmp/.x" >&2; exit 1; }
questions=("actors --exe .x" "events $actor" "tree $actor" "path /tmp/.x" "flow 203.0.113.9"
           "cones" "loss" "cone-hours" "egress" "new-binaries")
qruns="$work/qruns.tsv"   # question index, round, store s, clickhouse s
: >"$qruns"
diffs="$work/diffs.txt"
: >"$diffs"
declare -a rows_store rows_ch same
for r in $(seq "$rounds"); do
  for i in "${!questions[@]}"; do
    # shellcheck disable=SC2086  # the question is words
    ts=$(timed "$work/store.out" "$ritma" query s ${questions[$i]} --json)
    # shellcheck disable=SC2086
    tc=$(timed "$work/ch.out" "$ritma" query --clickhouse "$curl_q" ${questions[$i]} --json)
    printf '%s\t%s\t%s\t%s\n' "$i" "$r" "$ts" "$tc" >>"$qruns"
    if [ "$r" -eq 1 ]; then
      rows_store[i]=$(wc -l <"$work/store.out")
      rows_ch[i]=$(wc -l <"$work/ch.out")
      if cmp -s "$work/store.out" "$work/ch.out"; then
        same[i]=yes
      else
        same[i]=NO
        {
          echo "### OUTPUTS DIFFER: ${questions[$i]/$actor/ACTOR} (store ${rows_store[i]} lines, clickhouse ${rows_ch[i]} lines)"
          diff "$work/store.out" "$work/ch.out" | head -20 || true
        } >>"$diffs"
      fi
    fi
  done
  echo "round $r of queries done; load average $(loadavg)" >&2
done
la_queries=$(loadavg)

# --- 2. the Parquet export -------------------------------------------------------------------
floor() { find s/windows -path '*/blocks/*' -name '*.zst' -print0 | xargs -0 zstd -dcq >/dev/null; }
eruns="$work/eruns.tsv"   # round, zstd floor s, export s, OCSF export s
: >"$eruns"
for r in $(seq "$rounds"); do
  tf=$(secs floor)
  rm -rf pq oc
  te=$(timed "$work/export.out" "$ritma" export s --format parquet --out pq)
  [ -d pq/events ] || { echo "export wrote no pq/events" >&2; exit 1; }
  to=$(timed "$work/ocsf.out" "$ritma" export s --format parquet --ocsf --out oc)
  [ -d oc/ritma-process-activity ] || { echo "export --ocsf wrote no process activity" >&2; exit 1; }
  printf '%s\t%s\t%s\t%s\n' "$r" "$tf" "$te" "$to" >>"$eruns"
  echo "round $r: zstd floor $tf s, export $te s, export --ocsf $to s" >&2
done
la_export=$(loadavg)
# The tests' engine venv has pyarrow (tests/clickhouse/install-engine.sh); else python3's.
py=/var/tmp/ritma-tools/clickhouse-engine-2/bin/python3
[ -x "$py" ] || py=python3
pq_rows=""
if "$py" -c 'import pyarrow' 2>/dev/null; then
  pq_rows=$("$py" -c 'import pyarrow.dataset as d; print(d.dataset("pq/events", format="parquet", partitioning="hive").count_rows())')
  [ "$pq_rows" -eq "$events" ] || { echo "pq/events has $pq_rows rows, not $events" >&2; exit 1; }
fi
oc_rows=""
if "$py" -c 'import pyarrow' 2>/dev/null; then
  oc_rows=$("$py" -c 'import glob, pyarrow.parquet as p; print(sum(p.ParquetFile(f).metadata.num_rows for f in glob.glob("oc/**/*.parquet", recursive=True)))')
  [ "$oc_rows" -ge "$events" ] || { echo "oc has $oc_rows rows, fewer than $events events" >&2; exit 1; }
fi
oc_all=$(du -sb oc | cut -f1)
pq_all=$(du -sb pq | cut -f1)
pq_ev=$(du -sb pq/events | cut -f1)
st_all=$(du -sb s | cut -f1)
st_win=$(du -sb s/windows | cut -f1)
st_blocks=$(find s/windows -path '*/blocks/*' -name '*.zst' -print0 | du -cb --files0-from=- | tail -1 | cut -f1)

# --- report -------------------------------------------------------------------------------------
echo
echo "ClickHouse $version; $events events (store made in $store_s s, loaded once in $load_s s); $rounds rounds"
echo "load average: after the queries $la_queries, after the export $la_export"
echo
printf '| question | rows | store s, median [min–max] | ClickHouse s, median [min–max] | ClickHouse / store (median of per-round ratios) | same bytes |\n|---|---|---|---|---|---|\n'
for i in "${!questions[@]}"; do
  awk -F'\t' -v i="$i" '$1 == i { print $3 }' "$qruns" >"$work/s.col"
  awk -F'\t' -v i="$i" '$1 == i { print $4 }' "$qruns" >"$work/c.col"
  awk -F'\t' -v i="$i" '$1 == i { print $4 / $3 }' "$qruns" >"$work/r.col"
  rows="${rows_store[i]}"
  [ "${rows_store[i]}" = "${rows_ch[i]}" ] || rows="${rows_store[i]} / ${rows_ch[i]}"
  printf '| %s | %s | %.2f [%s] | %.2f [%s] | %.2fx (%.2fx) | %s |\n' "${questions[$i]/$actor/ACTOR}" "$rows" \
    "$(median <"$work/s.col")" "$(minmax <"$work/s.col")" "$(median <"$work/c.col")" "$(minmax <"$work/c.col")" \
    "$(echo "$(median <"$work/c.col") / $(median <"$work/s.col")" | bc -l)" "$(median <"$work/r.col")" "${same[i]}"
done
if [ -s "$diffs" ]; then
  echo
  echo "!!!!!!!! store and ClickHouse outputs differ for some questions:"
  cat "$diffs"
fi
m_floor=$(cut -f2 "$eruns" | median)
m_exp=$(cut -f3 "$eruns" | median)
m_oc=$(cut -f4 "$eruns" | median)
echo
printf '| per run (median of %d, [min–max]) | wall s | events/s | / zstd floor |\n|---|---|---|---|\n' "$rounds"
printf '| zstd -dc of every block file (floor) | %.2f [%s] | %.0f | 1.00x |\n' "$m_floor" "$(cut -f2 "$eruns" | minmax)" \
  "$(echo "$events / $m_floor" | bc -l)"
printf '| ritma export --format parquet | %.2f [%s] | %.0f | %.2fx (per round %.2fx) |\n' "$m_exp" "$(cut -f3 "$eruns" | minmax)" \
  "$(echo "$events / $m_exp" | bc -l)" "$(echo "$m_exp / $m_floor" | bc -l)" "$(awk -F'\t' '{ print $3 / $2 }' "$eruns" | median)"
printf '| ritma export --format parquet --ocsf | %.2f [%s] | %.0f | %.2fx (per round %.2fx; / the tables export %.2fx) |\n' "$m_oc" "$(cut -f4 "$eruns" | minmax)" \
  "$(echo "$events / $m_oc" | bc -l)" "$(echo "$m_oc / $m_floor" | bc -l)" "$(awk -F'\t' '{ print $4 / $2 }' "$eruns" | median)" \
  "$(awk -F'\t' '{ print $4 / $3 }' "$eruns" | median)"
echo
[ -n "$pq_rows" ] && echo "pyarrow: pq/events holds $pq_rows rows"
printf '| bytes | total | bytes/event |\n|---|---|---|\n'
printf '| Parquet, all tables (du -sb pq) | %d | %.1f |\n' "$pq_all" "$(echo "$pq_all / $events" | bc -l)"
printf '| Parquet, events table (pq/events) | %d | %.1f |\n' "$pq_ev" "$(echo "$pq_ev / $events" | bc -l)"
printf '| OCSF Parquet, all classes (du -sb oc; %s rows) | %d | %.1f |\n' "${oc_rows:-?}" "$oc_all" "$(echo "$oc_all / $events" | bc -l)"
printf '| store, whole (du -sb s) | %d | %.1f |\n' "$st_all" "$(echo "$st_all / $events" | bc -l)"
printf '| store, windows/ | %d | %.1f |\n' "$st_win" "$(echo "$st_win / $events" | bc -l)"
printf '| store, event blocks | %d | %.1f |\n' "$st_blocks" "$(echo "$st_blocks / $events" | bc -l)"
echo
printf 'Parquet all / whole store: %.2fx; Parquet events / windows/: %.2fx; Parquet events / event blocks: %.2fx; OCSF / whole store: %.2fx; OCSF / windows/: %.2fx\n' \
  "$(echo "$pq_all / $st_all" | bc -l)" "$(echo "$pq_ev / $st_win" | bc -l)" "$(echo "$pq_ev / $st_blocks" | bc -l)" \
  "$(echo "$oc_all / $st_all" | bc -l)" "$(echo "$oc_all / $st_win" | bc -l)"
ls pq >"$work/pq.tables"
echo "Parquet tables: $(tr '\n' ' ' <"$work/pq.tables")"
