#!/usr/bin/env bash
# Soak test of `ritma run`: a long live capture at a steady event rate, sampled every
# 10 s (RSS, WAL and store bytes, events, loss, windows, seal latency p99, ingest lag),
# then the kept WAL sealed again (`ritma replay --wal`) and the store verified.
#
#   benches/soak/run.sh [--minutes M] [--rate EVENTS_PER_S] [--out DIR]
#                       [--fake-hour-offset S] [soak.py options, see soak.py --help]
#
# As root (eBPF). Defaults: 120 minutes at 20000 events/s into
# /var/tmp/ritma-soak/<date-time>/. Builds the release `ritma` with
# CARGO_TARGET_DIR (default /var/tmp/ritma-bench-target) unless --ritma PATH is given,
# compiles the load generator (benches/overhead/load.c) with gcc, and keeps matplotlib in
# a venv at $SOAK_VENV (default /var/tmp/ritma-tools/soak-venv, created when missing).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-/var/tmp/ritma-bench-target}"
venv="${SOAK_VENV:-/var/tmp/ritma-tools/soak-venv}"

out=""
ritma=""
fake=""
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --ritma) ritma="${2:?--ritma needs a path}"; shift 2 ;;
        --fake-hour-offset) fake="${2:?--fake-hour-offset needs seconds}"; pass+=("$1" "$2"); shift 2 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) pass+=("$1"); shift ;;
    esac
done
out="${out:-/var/tmp/ritma-soak/$(date +%Y%m%d-%H%M%S)}"

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: needs root (ritma run loads the eBPF sensor)" >&2
    exit 1
fi
command -v gcc >/dev/null || { echo "run.sh: needs gcc (the load generator)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run.sh: needs python3" >&2; exit 1; }
faketime_lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ -n "$fake" ] && [ ! -e "$faketime_lib" ]; then
    echo "run.sh: --fake-hour-offset needs libfaketime (apt-get install faketime)" >&2
    exit 1
fi

# matplotlib for the plot, only when the venv lacks it.
if ! "$venv/bin/python3" -c 'import matplotlib' 2>/dev/null; then
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib
    "$venv/bin/python3" -c 'import matplotlib'
fi

mkdir -p "$out"
if [ -z "$ritma" ]; then
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p ritma-pipeline --bin ritma)
    ritma="$target/release/ritma"
fi
[ -x "$ritma" ] || { echo "run.sh: no ritma binary at $ritma" >&2; exit 1; }
# A copy, so a rebuild meanwhile does not change the binary under test.
cp "$ritma" "$out/ritma"
gcc -O2 -Wall -Wextra -Werror -o "$out/ritma-overhead-load" "$repo/benches/overhead/load.c"

# exec: soak.py's exit status is this script's.
exec "$venv/bin/python3" "$here/soak.py" --ritma "$out/ritma" --load "$out/ritma-overhead-load" \
    --out "$out" --faketime-lib "$faketime_lib" "${pass[@]}"
