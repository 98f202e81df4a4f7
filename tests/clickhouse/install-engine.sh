#!/usr/bin/env bash
# Installs the current ClickHouse engine and two independent Parquet readers for tests, only
# when missing: PyPI's chdb-core (the ClickHouse 26.9 engine as an in-process library; there is
# no server to install here) with lz4 for tests/clickhouse/chdb_http.py, the small HTTP front the
# loader's tests put over it, and pyarrow and duckdb, which read `ritma export`'s files back,
# in a virtualenv kept between CI runs. Prints the virtualenv's python as the last line of stdout.
#
#   tests/clickhouse/install-engine.sh   # -> /var/tmp/ritma-tools/clickhouse-engine-2/bin/python3
#
# Environment: RITMA_TOOLS overrides the cache folder (default /var/tmp/ritma-tools).
# A cold install takes about a minute; a warm one is a file check.
set -euo pipefail

# Bump the folder's suffix when the pins change, so a cached older set is not used.
pins=(chdb-core==26.9.0 lz4==4.4.5 pyarrow==26.0.1 duckdb==2.0.1)
tools=${RITMA_TOOLS:-/var/tmp/ritma-tools}
dest="$tools/clickhouse-engine-2"

# The marker is written last: a killed install has none and is made again.
if [ -f "$dest/.installed" ]; then
    echo "$dest/bin/python3"
    exit 0
fi
command -v python3 >/dev/null 2>&1 || { echo "install-engine.sh: python3 not found" >&2; exit 1; }
mkdir -p "$tools"
exec 9>"$tools/.clickhouse-engine.lock"
flock 9
if [ -f "$dest/.installed" ]; then
    echo "$dest/bin/python3"
    exit 0
fi
echo "install-engine.sh: installing ${pins[*]} into $dest" >&2
rm -rf "$dest"
python3 -m venv "$dest" >&2
"$dest/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
"$dest/bin/python3" -c 'import chdb, pyarrow, duckdb; print("chdb engine", chdb.query("SELECT version()", "CSV"), "pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__)' >&2
touch "$dest/.installed"
echo "$dest/bin/python3"
