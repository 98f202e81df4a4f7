#!/usr/bin/env bash
# Restart time against store age: `ritma replay --wal` from the saved state (a) against
# sealing the whole WAL again (b, the behaviour before saved states), on stores of 1 and 6
# hours of synthetic input, and a real `ritma run` restart on the oldest (libfaketime).
#
#   benches/restart/run.sh [--ages 1,3,6] [--rate 1000] [--reps 5] [--live-reps 5]
#                          [--work DIR] [restart.py options, see restart.py --help]
#
# As root when --live-reps > 0 (eBPF). Builds the release `ritma` with CARGO_TARGET_DIR
# (default /var/tmp/ritma-bench-target) unless --ritma PATH is given; results go to
# --work (default /var/tmp/ritma-restart-bench/<date-time>/): results.json, results.md,
# commands.log (every command with its output and exit status).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-/var/tmp/ritma-bench-target}"

work=""
ritma=""
live=1
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --work) work="${2:?--work needs a directory}"; shift 2 ;;
        --ritma) ritma="${2:?--ritma needs a path}"; shift 2 ;;
        --live-reps) if [ "${2:?--live-reps needs a count}" = 0 ]; then live=0; fi; pass+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done
work="${work:-/var/tmp/ritma-restart-bench/$(date +%Y%m%d-%H%M%S)}"

command -v python3 >/dev/null || { echo "run.sh: needs python3" >&2; exit 1; }
if [ "$live" = 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run.sh: the live restarts need root (eBPF); --live-reps 0 skips them" >&2
        exit 1
    fi
    if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ]; then
        echo "run.sh: the live restarts need libfaketime (apt-get install faketime)" >&2
        exit 1
    fi
fi
mkdir -p "$work"
if [ -z "$ritma" ]; then
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p ritma-pipeline --bin ritma)
    ritma="$target/release/ritma"
fi
[ -x "$ritma" ] || { echo "run.sh: no ritma binary at $ritma" >&2; exit 1; }
# A copy, so a rebuild meanwhile does not change the binary under test.
cp "$ritma" "$work/ritma"

# exec: restart.py's exit status is this script's.
exec python3 "$here/restart.py" --ritma "$work/ritma" --work "$work" "${pass[@]}"
