#!/usr/bin/env bash
# Range verify benchmark (issue 5): `ritma verify --from/--to` of one hour of a six-hour store
# against a full `ritma verify` of the same store. Run from anywhere:
#   benches/query/verify_range.sh [EVENTS_PER_SECOND]   (default 50: 1,080,000 events)
set -euo pipefail

rate="${1:-50}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" verify-range
events=$((rate * 6 * 3600))
"$ritma" synth --events "$events" --rate "$rate" --out t.rtrace >/dev/null
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 2>/dev/null

t_full=$(secs "$ritma" verify s)
t_hour=$(secs "$ritma" verify s --from 2026-11-01T03:00:00Z --to 2026-11-01T04:00:00Z)
"$ritma" verify s --from 2026-11-01T03:00:00Z --to 2026-11-01T04:00:00Z
printf '| verify, whole store (%d events, 6 h) | %.2f s | %.0f events/s |\n' "$events" "$t_full" "$(echo "$events / $t_full" | bc -l)"
printf '| verify --from/--to one hour | %.2f s | %.3fx the full verify |\n' "$t_hour" "$(echo "$t_hour / $t_full" | bc -l)"
