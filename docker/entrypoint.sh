#!/bin/sh
# Entry point of the skyhook-dask image.
#   image                        print this help
#   image /ws/script.py [ARGS]   run a Python script (a first argument ending in .py)
#   image skyhook demo           run a command (skyhook, dask, ceph, python, ...)
set -e

usage() {
    cat <<'EOF'
skyhook-dask container image

  docker run --rm -v "$PWD:/ws" -w /ws IMAGE /ws/script.py [ARGS]   run your script
  docker run --rm IMAGE skyhook demo                                ingest a sample and query it
  docker run --rm IMAGE skyhook --help                              the command line
  docker run --rm IMAGE dask worker tcp://scheduler:8786 --preload skyhook_dask.k8s.preload

The store is $SKYHOOK_STORE (a file:// directory or rados://POOL?conf=...&name=client.NAME);
without it, an embedded store in the container's home directory. Mount the Ceph configuration
and keyring under /etc/ceph to reach a Ceph cluster.
EOF
}

if [ "$#" -eq 0 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
    usage
    exit 0
fi

case "$1" in
    *.py)
        exec python "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
