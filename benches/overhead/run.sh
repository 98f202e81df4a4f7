#!/usr/bin/env bash
# Live-capture overhead benchmark: no sensor vs Ritma vs auditd vs bpftrace (README.md).
# Run as root from anywhere:
#   benches/overhead/run.sh [--quick] [--search] [--rss-minutes M] [overhead.py options]
# --quick: 1 repetition of 2000 iterations, 10 s search steps (a trial, not a result).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
work="${OVERHEAD_WORK:-/var/tmp/ritma-overhead-bench/$(date +%Y%m%d-%H%M%S)}"

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: needs root (eBPF sensors, auditd)" >&2
    exit 1
fi

missing=()
command -v auditd >/dev/null || missing+=(auditd)
command -v bpftrace >/dev/null || missing+=(bpftrace)
command -v bpftool >/dev/null || missing+=(bpftool)
command -v gcc >/dev/null || missing+=(gcc)
command -v python3 >/dev/null || missing+=(python3)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "run.sh: installing ${missing[*]}" >&2
    apt-get update -qq
    # Debian's postinst would start the system auditd: policy-rc.d in containers denies it,
    # elsewhere the driver refuses to run beside a running audit daemon.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

args=()
for a in "$@"; do
    if [ "$a" = "--quick" ]; then
        args+=(--reps 1 --iterations 2000 --search-duration 10)
    else
        args+=("$a")
    fi
done

mkdir -p "$target/overhead"
gcc -O2 -Wall -Wextra -Werror -o "$target/overhead/ritma-overhead-load" "$here/load.c"
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p ritma-pipeline)

exec python3 "$here/overhead.py" \
    --ritma "$target/release/ritma" \
    --load "$target/overhead/ritma-overhead-load" \
    --work "$work" \
    "${args[@]}"
