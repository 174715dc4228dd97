#!/usr/bin/env bash
# Create benchmarks/.venv-peers with the pinned peer tools from
# benchmarks/peers-requirements.txt (MLflow for the tracking, registry and serving
# suites, DVC for the data suite, Prefect for the pipelines suite, Evidently for
# the monitoring suite, Feast for the features suite), resolved together: `pip check`
# must stay clean. Idempotent: does nothing when every pinned package is already
# installed at its pinned version.
#
# Usage: bash benchmarks/setup_peers.sh [--force]
#   PYTHON=python3.11 bash benchmarks/setup_peers.sh   # choose the interpreter
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${PEERS_VENV:-$here/.venv-peers}"
reqs="$here/peers-requirements.txt"
python="${PYTHON:-python3}"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$venv"
fi

# Print the "name==version" pins (comments and blank lines stripped).
pins() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$reqs" | grep -v '^$'
}

# True when every pin is satisfied by what is installed in the venv.
satisfied() {
    [[ -x "$venv/bin/python" ]] || return 1
    local pin name want have
    while read -r pin; do
        name="${pin%%==*}"
        want="${pin#*==}"
        have="$("$venv/bin/python" - "$name" <<'PY' 2>/dev/null || true
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
PY
)"
        [[ "$have" == "$want" ]] || return 1
    done < <(pins)
}

pinlist="$(pins | paste -sd' ' -)"

# The data suite runs `git init` before `dvc init` in each of its temporary repositories.
if ! command -v git >/dev/null 2>&1; then
    echo "peers: warning: git is not installed; the data suite (DVC) needs it" >&2
fi

if satisfied; then
    echo "peers: already installed in $venv ($pinlist)"
    exit 0
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "peers: creating virtual environment $venv"
    "$python" -m venv "$venv"
fi

echo "peers: installing $pinlist into $venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$reqs"

if ! satisfied; then
    echo "peers: installed versions do not match $reqs" >&2
    exit 1
fi
if ! "$venv/bin/python" -m pip check; then
    echo "peers: pip check found broken requirements in $venv" >&2
    exit 1
fi
echo "peers: ready ($pinlist)"
