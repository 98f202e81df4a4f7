#!/usr/bin/env bash
# Runs Ritma's whole test suite: installs what it needs when missing, then `cargo test`.
# Usage: ./test.sh   (as root on a fresh machine; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
# librdkafka (the Kafka client) is built from source with its configure script and make.
command -v make >/dev/null 2>&1 || need_apt+=(make)
# The eBPF object's rebuild check (ebpf/tests/object_rebuild.rs) compiles the C programs.
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
# tests/deploy.rs: setpriv runs ritma as a non-root user with the unit's capabilities, and
# systemd-analyze lints the unit (no running systemd needed); the linters' virtualenv needs venv.
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# tests/restart.rs runs `ritma run` on a shifted wall clock to cross hour boundaries.
command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "test.sh: installing ${need_apt[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found: install Rust 1.95 (rustup)" >&2; exit 1; }

# A real Kafka-protocol broker for tests/kafka.rs: tansu, built once into /var/tmp/ritma-tools.
RITMA_TANSU=$(tests/broker/install-tansu.sh | tail -n 1)
export RITMA_TANSU
# Debian's real ClickHouse server (18.16) for tests/clickhouse.rs, unpacked once into /var/tmp/ritma-tools.
RITMA_CLICKHOUSE=$(tests/clickhouse/install-clickhouse.sh | tail -n 1)
export RITMA_CLICKHOUSE
# The current ClickHouse engine (26.9, PyPI chdb-core) and two Parquet readers (pyarrow, duckdb)
# in a virtualenv, for the modern tables and the Parquet export.
RITMA_CLICKHOUSE_ENGINE=$(tests/clickhouse/install-engine.sh | tail -n 1)
export RITMA_CLICKHOUSE_ENGINE
# The Kubernetes manifest's and the Dockerfile's linters (PyPI), for tests/deploy.rs.
RITMA_DEPLOY_LINTERS=$(tests/deploy/install-linters.sh | tail -n 1)
export RITMA_DEPLOY_LINTERS

# Benchmarks are not run here (timing belongs in benches/RESULTS.md), but they must compile.
cargo bench --workspace --locked --no-run 2>&1 | tail -n 2
cargo test --workspace --locked 2>&1
