#!/usr/bin/env bash
# Shipping benchmark (kafka.py): ritma ship → broker → ritma ingest against a raw
# produce + consume of the same message values, OCSF messages/s, and the shipping lag of
# `ritma run --kafka-brokers` under load. Root is needed for the lag phase (eBPF).
#   benches/kafka/run.sh [kafka.py options, e.g. --phases e2e --reps 5 --events 2000000]
# The broker is tansu (RITMA_TANSU, default the path tests/broker/install-tansu.sh installs
# to) with its in-memory engine: not Apache Kafka. Results go to $KAFKA_BENCH_WORK
# (default /var/tmp/ritma-kafka-bench/DATE): results.json, lag-*.csv, the PNG.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
work="${KAFKA_BENCH_WORK:-/var/tmp/ritma-kafka-bench/$(date +%Y%m%d-%H%M%S)}"
tansu="${RITMA_TANSU:-/var/tmp/ritma-tools/tansu-0.6.0/bin/tansu}"
venv="${KAFKA_BENCH_VENV:-/var/tmp/ritma-tools/venv}"

if [ ! -x "$tansu" ]; then
    echo "run.sh: no tansu at $tansu (tests/broker/install-tansu.sh, or set RITMA_TANSU)" >&2
    exit 1
fi
# matplotlib for the plot, cbor2 to read the shipping cursor.
if ! "$venv/bin/python3" -c 'import matplotlib, cbor2' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q matplotlib cbor2
fi
command -v gcc >/dev/null || { echo "run.sh: needs gcc (the load generator)" >&2; exit 1; }

(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p ritma-pipeline)
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -p ritma-benches --bin kafka_bench)
mkdir -p "$work"
# Copies, so a rebuild meanwhile does not change the binaries under test.
cp "$target/release/ritma" "$target/release/kafka_bench" "$work/"

exec "$venv/bin/python3" "$here/kafka.py" \
    --ritma "$work/ritma" --bench "$work/kafka_bench" --tansu "$tansu" \
    --work "$work" --png "${KAFKA_BENCH_PNG:-$work/kafka-lag.png}" "$@"
