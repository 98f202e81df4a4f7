# Sourced by the store benchmarks (benches/case/export.sh, benches/query/*.sh): a scratch
# directory removed on exit, the store lock dir inside it, a release build of `ritma`, and a
# timer. Sets $repo, $work and $ritma and leaves the caller in $work.
# shellcheck shell=bash
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "/var/tmp/ritma-$1-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export RITMA_LOCK_DIR="$work/locks"
# RITMA_BIN runs a given binary instead (a copy, so a long run survives rebuilds meanwhile).
if [ -z "${RITMA_BIN:-}" ]; then
  (cd "$repo" && cargo build -q --release -p ritma-pipeline)
fi
ritma="${RITMA_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/ritma}"
cd "$work"

# Seconds `"$@"` takes, its output discarded; a command that fails stops the benchmark
# (a failing query must not be timed as a fast one).
secs() {
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$work/secs.err" || rc=$?
  t1=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then
    echo "benchmark command failed (exit $rc): $*" >&2
    cat "$work/secs.err" >&2
    exit 1
  fi
  echo "$t1 - $t0" | bc
}

# Drops the page cache so the next read comes from disk (needs root); says whether it did.
drop_caches() {
  if [ -w /proc/sys/vm/drop_caches ]; then
    sync && echo 3 >/proc/sys/vm/drop_caches && echo "cold cache"
  else
    echo "warm cache (not root: caches not dropped)"
  fi
}
