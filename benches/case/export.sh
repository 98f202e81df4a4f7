#!/usr/bin/env bash
# Case export benchmark (issue 5): export a case naming one whole hour of a store and verify
# the bundle, against the plain baseline of copying the same hour's files (`cp -a`) and
# verifying the whole store. Run from anywhere:
#   benches/case/export.sh [EVENTS_PER_SECOND]   (default 100: 360,000 events in the hour)
set -euo pipefail

rate="${1:-100}"
source "$(dirname "${BASH_SOURCE[0]}")/../store_bench.sh" case
# Two hours of one host at RATE events/s; hour 00 is sealed whole.
events=$((rate * 7200))
"$ritma" synth --events "$events" --rate "$rate" --out t.rtrace >/dev/null
"$ritma" keys init --out s --node synth-0 >/dev/null
"$ritma" replay t.rtrace --out s --workers 2 2>/dev/null
"$ritma" keys new alice --out alice.key >/dev/null
"$ritma" case open s bench --approver alice.key.vkey >/dev/null
"$ritma" case add s bench --from 2026-11-01T00:00:00Z --to 2026-11-01T01:00:00Z >/dev/null

sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t_copy=$(secs cp -a s/windows/2026/11/01/00 hour-copy)
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t_export=$(secs "$ritma" case export s bench --out b)
t_verify_bundle=$(secs "$ritma" verify b)
t_verify_store=$(secs "$ritma" verify s)
"$ritma" verify b
bundle_bytes=$(du -sb b | cut -f1)
hour_bytes=$(du -sb hour-copy | cut -f1)
hour_events=$((rate * 3600))
printf '| events in the hour | %d |\n' "$hour_events"
printf '| export (s) | %.2f | %.0f events/s |\n' "$t_export" "$(echo "$hour_events / $t_export" | bc -l)"
printf '| cp -a of the hour (s) | %.2f | export / cp = %.1fx |\n' "$t_copy" "$(echo "$t_export / $t_copy" | bc -l)"
printf '| verify bundle (s) | %.2f | %.0f events/s |\n' "$t_verify_bundle" "$(echo "$hour_events / $t_verify_bundle" | bc -l)"
printf '| verify store, 2 h (s) | %.2f | |\n' "$t_verify_store"
printf '| bundle bytes | %d | hour dir %d bytes (%.3fx) |\n' "$bundle_bytes" "$hour_bytes" "$(echo "$bundle_bytes / $hour_bytes" | bc -l)"
