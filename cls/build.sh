#!/bin/sh
# Build libcls_skyhook.so into DIR (default: cls/build) against the installed pyarrow.
set -eu
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m skyhook_dask.ceph.build_class "${1:-cls/build}" ${FORCE:+--force}
