#!/usr/bin/env bash
# The main job on a fresh machine: set up .venv, ingest a sample NanoAOD file into the embedded
# local store and run a select/project query on it. No Ceph needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/skyhook demo "$@"
