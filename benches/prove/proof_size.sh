#!/usr/bin/env bash
# Proof benchmark (issue 5): the size of `ritma prove` proofs and the time `ritma verify-proof`
# takes to check one, in a large store. Run from anywhere:
#   benches/prove/proof_size.sh [EVENTS] [EVENTS_PER_SECOND]
# (default 100,000,000 events at 10,000 events/s: 10,000 one-second windows, 2 h 47 min.)
set -euo pipefail

events="${1:-100000000}"
rate="${2:-10000}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" prove
t0=$(date +%s.%N)
"$ritma" synth --events "$events" --rate "$rate" --out t.rtrace >/dev/null 2>&1
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 2>/dev/null
t1=$(date +%s.%N)
store_bytes=$(du -sb s | cut -f1)
vkey="$(cat s/_meta/keys/signing.vkey)"
printf 'store: %d events, %d bytes (built in %.0f s)\n' "$events" "$store_bytes" "$(echo "$t1 - $t0" | bc)"
echo '| event (seq) | proof bytes | prove s (cache) | verify-proof s (median of 5) |'
echo '|---|---|---|---|'
for seq in 0 $((events / 2)) $((events - 1)); do
  cache=$(drop_caches)
  t_prove=$(secs "$ritma" prove s --seq "$seq" --out "p$seq")
  "$ritma" verify-proof "p$seq" --key "$vkey" >/dev/null
  times=$(for _ in 1 2 3 4 5; do secs "$ritma" verify-proof "p$seq" --key "$vkey"; done | sort -n)
  median=$(echo "$times" | sed -n 3p)
  printf '| %d | %d | %.3f (%s) | %.4f |\n' "$seq" "$(stat -c %s "p$seq")" "$t_prove" "$cache" "$median"
done
