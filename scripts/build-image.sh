#!/usr/bin/env bash
# Build the skyhook-dask container image from this checkout.
#
# Usage: bash scripts/build-image.sh [options]
#   --tag TAG          image tag (default skyhook-dask:latest; also tagged skyhook-dask:VERSION)
#   --base IMAGE       base image (default python:3.11-slim-bookworm)
#   --local-base       make the base with mmdebstrap (Debian bookworm + python3, ceph-common,
#                      python3-rados) and import it as localhost/skyhook-base:bookworm, for
#                      machines that cannot pull from a registry; implies --offline
#   --with-compiler    with --local-base: add g++, rados-objclass-dev, libradospp-dev (for cls)
#   --offline          build with --network none (everything comes from the build context)
#   --target NAME      client (default) or cls: the object class for OSD images, whose files
#                      are then copied to --cls-out (default build/cls)
#   --extras LIST      the package's extras installed in the image (default coffea,k8s)
#   --engine NAME      podman, docker or buildah (default: the first one found)
#   --context DIR      where the build context is prepared (default build/image)
#   --no-layers        podman/buildah: keep no intermediate layers (much faster with vfs storage)
#
# Python packages are built as wheels on this machine, pinned to the versions installed in
# $PYTHON's environment (default .venv/bin/python), so the image build needs no package index.
set -euo pipefail
cd "$(dirname "$0")/.."

tag="skyhook-dask:latest"
base=""
local_base=0
with_compiler=0
offline=0
target="client"
extras="coffea,k8s"
engine="${CONTAINER_ENGINE:-}"
context="build/image"
cls_out="build/cls"
python="${PYTHON:-.venv/bin/python}"
no_layers=0
local_base_tag="localhost/skyhook-base:bookworm"

die() { echo "error: $*" >&2; exit 1; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        --tag) tag="$2"; shift 2 ;;
        --base) base="$2"; shift 2 ;;
        --local-base) local_base=1; offline=1; shift ;;
        --with-compiler) with_compiler=1; shift ;;
        --offline) offline=1; shift ;;
        --target) target="$2"; shift 2 ;;
        --extras) extras="$2"; shift 2 ;;
        --engine) engine="$2"; shift 2 ;;
        --context) context="$2"; shift 2 ;;
        --cls-out) cls_out="$2"; shift 2 ;;
        --no-layers) no_layers=1; shift ;;
        -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$target" in client | cls) ;; *) die "--target is client or cls, not $target" ;; esac
if [ -z "$engine" ]; then
    for candidate in podman docker buildah; do
        if command -v "$candidate" >/dev/null 2>&1; then engine="$candidate"; break; fi
    done
fi
[ -n "$engine" ] || die "no container engine found: apt-get install -y podman (or docker.io)"
[ -x "$python" ] || die "$python not found: run scripts/bootstrap.sh first, or set PYTHON"
build_cmd=("$engine" build)
# RUN --mount needs BuildKit (the default from Docker 23 on).
[ "$engine" = docker ] && export DOCKER_BUILDKIT=1
[ "$engine" = buildah ] && build_cmd=(buildah bud)

image_exists() {
    if [ "$engine" = docker ]; then docker image inspect "$1" >/dev/null 2>&1
    else "$engine" inspect --type image "$1" >/dev/null 2>&1; fi
}

# --- the base image ---------------------------------------------------------------------------
if [ "$local_base" = 1 ]; then
    packages="python3,python3-pip,python3-venv,ceph-common,python3-rados"
    base="$local_base_tag"
    if [ "$with_compiler" = 1 ]; then
        packages="$packages,g++,rados-objclass-dev,libradospp-dev"
        base="${local_base_tag}-dev"
    fi
    if ! image_exists "$base"; then
        command -v mmdebstrap >/dev/null 2>&1 || die "--local-base needs mmdebstrap"
        rootfs="$(mktemp -d)"
        trap 'rm -rf "$rootfs"' EXIT
        echo "making the base image $base with mmdebstrap ..."
        mmdebstrap --quiet --variant=minbase --include="$packages" bookworm "$rootfs/rootfs.tar" \
            "deb http://deb.debian.org/debian bookworm main" \
            "deb http://deb.debian.org/debian bookworm-updates main" \
            "deb http://deb.debian.org/debian-security bookworm-security main"
        "$engine" import "$rootfs/rootfs.tar" "$base" >/dev/null
        rm -rf "$rootfs"
        trap - EXIT
    fi
fi

# --- the build context: Dockerfile, entrypoint, wheels ----------------------------------------
mkdir -p "$context/wheels"
cp docker/Dockerfile docker/entrypoint.sh "$context/"
constraints="$context/constraints.txt"
"$python" -m pip freeze --exclude-editable | grep -v '^skyhook-dask' >"$constraints.new"
stamp="$(cat "$constraints.new"; echo "extras=$extras")"
if [ ! -f "$context/wheels/.stamp" ] || [ "$(cat "$context/wheels/.stamp")" != "$stamp" ]; then
    echo "building wheels for skyhook-dask[$extras] and its dependencies ..."
    rm -f "$context"/wheels/*.whl
    "$python" -m pip wheel --quiet --constraint "$constraints.new" --wheel-dir "$context/wheels" \
        ".[$extras]"
    printf '%s' "$stamp" >"$context/wheels/.stamp"
else
    # Dependencies unchanged: only the project's own wheel is rebuilt.
    rm -f "$context"/wheels/skyhook_dask-*.whl
    "$python" -m pip wheel --quiet --no-deps --wheel-dir "$context/wheels" .
fi
mv "$constraints.new" "$constraints"
wheel="$(ls "$context"/wheels/skyhook_dask-*.whl)"
version="$(basename "$wheel" | cut -d- -f2)"
echo "skyhook-dask[$extras]==$version" >"$context/requirements.txt"

# --- the image --------------------------------------------------------------------------------
args=(--file "$context/Dockerfile")
[ -n "$base" ] && args+=(--build-arg "BASE=$base")
[ "$offline" = 1 ] && args+=(--network none)
[ "$no_layers" = 1 ] && [ "$engine" != docker ] && args+=(--layers=false)
if [ "$target" = client ]; then
    "${build_cmd[@]}" "${args[@]}" --target client --tag "$tag" "$context"
    "$engine" tag "$tag" "${tag%:*}:$version"
    echo "built $tag (and ${tag%:*}:$version)"
else
    cls_tag="${tag%:*}-cls:$version"
    "${build_cmd[@]}" "${args[@]}" --target cls --tag "$cls_tag" "$context"
    "$engine" tag "$cls_tag" "${tag%:*}-cls:latest"
    # A scratch image has no command; `create` only needs one to be named.
    container="$("$engine" create "$cls_tag" /none)"
    rm -rf "$cls_out" && mkdir -p "$cls_out"
    "$engine" cp "$container:/usr" "$cls_out/"
    "$engine" cp "$container:/opt" "$cls_out/"
    "$engine" rm "$container" >/dev/null
    echo "built $cls_tag (and ${tag%:*}-cls:latest); its files, in $cls_out:"
    (cd "$cls_out" && find . -type f | sort)
fi
