#!/usr/bin/env bash
# The whole test suite: installs the Debian packages it needs (when run as root), builds .venv,
# and runs pytest. The tests bring up real Ceph clusters (cephx, bluestore, one OSD and three, the
# skyhook object class built against pyarrow's Arrow C++) in temporary directories themselves,
# and build and run the container image with podman; an XRootD server serves root:// sources.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k query`.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(ceph-mon ceph-osd ceph-common python3-rados librados-dev rados-objclass-dev
          libradospp-dev g++ python3-venv podman buildah mmdebstrap runc xrootd-server)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "note: Ceph tests will be skipped; to run them: sudo apt-get install -y ${missing[*]}" >&2
    fi
fi
bash scripts/bootstrap.sh test,coffea,k8s,xrootd
.venv/bin/ruff check .
.venv/bin/ruff format --check .
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest's 5 means no test was collected (e.g. a -k that matched nothing): not a failure of the code.
if [ "$rc" = 5 ]; then echo "no tests collected"; exit 0; fi
exit "$rc"
