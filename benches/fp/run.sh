#!/usr/bin/env bash
# False positives of the cone library on benign workloads: `ritma run` captures each workload
# alone, and the cone matches it sealed are counted per cone next to the workload's event count
# and wall time (issue 25). Needs root, network access to crates.io's cache and Debian's
# mirrors, and a release build of ritma.
# Usage: benches/fp/run.sh [WORKLOAD…]   (default: build apt pip)
#   build  cargo build of the whole workspace into a fresh target under /tmp:
#          build scripts written and run from /tmp, as a compiler does
#   apt    apt-get reinstalls coreutils (dpkg replaces binaries in /usr/bin) and installs jq
#   pip    a virtualenv under /tmp and a pip install from PyPI into it
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
work="${FP_WORK:-/var/tmp/ritma-fp-bench/$(date +%Y%m%d-%H%M%S)}"
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(build apt pip)

if [ "$(id -u)" -ne 0 ]; then
    echo "run.sh: needs root (eBPF)" >&2
    exit 1
fi
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p ritma-pipeline)
ritma="$target/release/ritma"
mkdir -p "$work"

workload() {
    case "$1" in
    build)
        rm -rf /tmp/ritma-fp-build
        (cd "$repo" && CARGO_TARGET_DIR=/tmp/ritma-fp-build cargo build -q --offline --workspace)
        rm -rf /tmp/ritma-fp-build
        ;;
    apt)
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall coreutils >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq jq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
        ;;
    pip)
        rm -rf /tmp/ritma-fp-venv
        python3 -m venv /tmp/ritma-fp-venv
        /tmp/ritma-fp-venv/bin/pip install -q --no-cache-dir six==1.16.0 idna==3.10
        rm -rf /tmp/ritma-fp-venv
        ;;
    *)
        echo "run.sh: unknown workload $1" >&2
        exit 2
        ;;
    esac
}

for w in "${workloads[@]}"; do
    out="$work/$w"
    mkdir -p "$out"
    "$ritma" run --out "$out/store" --node "fp-$w" 2>"$out/run.stderr" &
    pid=$!
    for _ in $(seq 600); do
        [ -d "$out/store/wal" ] && break
        kill -0 "$pid" 2>/dev/null || { echo "run.sh: ritma run exited: $(cat "$out/run.stderr")" >&2; exit 1; }
        sleep 0.1
    done
    sleep 1
    start=$(date +%s.%N)
    workload "$w"
    end=$(date +%s.%N)
    sleep 1
    kill -TERM "$pid"
    wait "$pid" || { echo "run.sh: ritma run failed: $(tail -5 "$out/run.stderr")" >&2; exit 1; }
    "$ritma" query "$out/store" cones --json >"$out/cones.jsonl"
    "$ritma" query "$out/store" hours --json >"$out/hours.jsonl"
    echo "$start $end" >"$out/span"
    echo "run.sh: $w done" >&2
done

python3 "$here/report.py" "$work" "${workloads[@]}"
