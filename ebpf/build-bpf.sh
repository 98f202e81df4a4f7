#!/usr/bin/env bash
# Rebuilds the committed eBPF object bpf/ritma.bpf.o from bpf/ritma.bpf.c (needs clang and
# libbpf-dev: `apt-get install -y clang libbpf-dev`). Usage: ebpf/build-bpf.sh [OUT_DIR]
# The build is reproducible: run from bpf/ with relative paths and the compile directory
# mapped to ".", so no absolute path reaches the object's debug info; the same clang gives
# the same bytes (tests/object_rebuild.rs checks it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "${1:-$here/bpf}" && cd "${1:-$here/bpf}" && pwd)"
cd "$here/bpf"
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 \
    -Wall -Werror \
    -fdebug-compilation-dir=. -fdebug-prefix-map="$here/bpf"=. \
    -I. -c ritma.bpf.c -o "$out/ritma.bpf.o"
