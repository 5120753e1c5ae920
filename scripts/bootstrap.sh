#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install the package.
# Usage: bash scripts/bootstrap.sh [extras]     e.g. bash scripts/bootstrap.sh test,coffea,k8s
#
# The venv is built on the system's CPython 3.11 when present, because Debian's python3-rados
# binding (needed only for real Ceph) is compiled for it; any Python >= 3.11 works otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py=""
for candidate in /usr/bin/python3.11 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then py="$candidate"; break; fi
done
[ -n "$py" ] || { echo "error: no python3 found; apt-get install -y python3 python3-venv" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv || { echo "error: venv failed; apt-get install -y python3-venv" >&2; exit 1; }
    .venv/bin/python -m pip install -q --upgrade pip
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
.venv/bin/python -m pip install -q -e "$spec"
# Make Debian's rados binding importable when it is installed (no wheel exists on PyPI).
.venv/bin/python -m skyhook_dask.ceph.link_rados --quiet || true
