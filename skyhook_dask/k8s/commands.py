"""``skyhook k8s ...``: render the Kubernetes manifests, run them on this machine, run the batch
job of a DaskJob.

skyhook k8s render KIND [--image IMAGE] [--store URL] [...] [-o FILE]
skyhook k8s run-local FILE.yaml [FILE.yaml ...] [--engine podman|docker] [--volumes-dir DIR]
skyhook k8s run-batch --dataset NAME --query QUERY --output FILE [INPUT ...]
"""

from __future__ import annotations

import argparse
import inspect
import shlex
import sys
from pathlib import Path
from typing import Any

# option dest -> (the parameter of the make_* function it sets, the option as typed)
_RENDER_OPTIONS = {
    "name": ("name", "--name"),
    "image": ("image", "--image"),
    "store": ("store", "--store"),
    "workers": ("workers", "--workers"),
    "threads": ("threads", "--threads"),
    "memory": ("memory", "--memory"),
    "dataset": ("dataset", "--dataset"),
    "query": ("query", "--query"),
    "output": ("output", "--output"),
    "inputs": ("inputs", "--input"),
    "args": ("args", "--args"),
    "ceph_image": ("ceph_image", "--ceph-image"),
    "pool": ("pool", "--pool"),
    "replicas": ("replicas", "--replicas"),
    "conf": ("conf_text", "--conf"),
    "keyring": ("keyring_text", "--keyring"),
}


HELP = "Kubernetes manifests and the batch job they run"


def add_k8s_commands(actions: Any) -> None:
    """Add ``render``, ``run-local`` and ``run-batch`` to ``skyhook k8s``'s subparsers."""
    from . import KINDS

    kinds = "; ".join(f"{kind}: {what}" for kind, (what, _) in KINDS.items())
    render = actions.add_parser(
        "render", help="print (or write) manifests as YAML", description=f"Kinds: {kinds}."
    )
    render.add_argument("kind", choices=list(KINDS))
    render.add_argument("-o", "--out", type=Path, help="write to this file instead of stdout")
    render.add_argument("--name", help="the object's name (pod, cluster, job)")
    render.add_argument("--image", help="container image (pod, cluster, job)")
    render.add_argument("--store", help="store URL given to the pods as $SKYHOOK_STORE")
    render.add_argument("--workers", type=int, help="Dask workers (cluster, job)")
    render.add_argument("--threads", type=int, help="threads per worker (cluster, job)")
    render.add_argument("--memory", help="memory per worker, e.g. 4Gi (cluster, job)")
    render.add_argument("--dataset", help="dataset the job ingests (job)")
    render.add_argument("--query", help="the job's query (job)")
    render.add_argument("--output", help="result file on the job's volume (job)")
    render.add_argument(
        "--input", dest="inputs", action="append", help="ROOT file or URL to ingest (job; repeat)"
    )
    render.add_argument("--args", type=shlex.split, help="the pod's command line, quoted (pod)")
    render.add_argument("--ceph-image", help="Ceph image with the skyhook class (rook)")
    render.add_argument("--pool", help="the RADOS pool (rook)")
    render.add_argument("--replicas", type=int, help="pool replicas (rook)")
    render.add_argument("--conf", type=_read_text, help="ceph.conf to embed (ceph-config)")
    render.add_argument("--keyring", type=_read_text, help="keyring file to embed (ceph-config)")
    render.set_defaults(func=cmd_render)

    local = actions.add_parser(
        "run-local",
        help="run rendered manifests' containers here, as the dask-kubernetes operator would",
        description="Run the DaskCluster, DaskJob or Pod of rendered documents (with their "
        "ConfigMaps, Secrets and PersistentVolumeClaims) as containers on this machine, on the "
        "host network: a scheduler, its workers, then the job, whose logs stream here and whose "
        "exit status is this command's. Every container is removed at the end.",
    )
    local.add_argument("files", nargs="+", metavar="FILE.yaml", help="rendered documents")
    local.add_argument("--engine", choices=["podman", "docker"], help="default: the first found")
    local.add_argument(
        "--volumes-dir",
        type=Path,
        default=Path("skyhook-volumes"),
        help="where a PersistentVolumeClaim's folder is made (default ./skyhook-volumes)",
    )
    local.set_defaults(func=cmd_run_local)

    batch = actions.add_parser(
        "run-batch",
        help="ingest ROOT files, run one query, write the result (what a DaskJob runs)",
        description="Ingest INPUTs (default: a bundled sample) as a dataset, run a query, write "
        "the rows to a .parquet or .csv file. Runs on the Dask cluster at --scheduler or "
        "$DASK_SCHEDULER_ADDRESS, else in this process.",
    )
    batch.add_argument("inputs", nargs="*", help="ROOT files or URLs")
    batch.add_argument("--dataset", required=True)
    batch.add_argument("--query", required=True)
    batch.add_argument("--output", required=True, help="a .parquet or .csv file")
    batch.add_argument("--store", help="store URL (default $SKYHOOK_STORE or the embedded store)")
    batch.add_argument("--scheduler", help="Dask scheduler (default $DASK_SCHEDULER_ADDRESS)")
    batch.set_defaults(func=cmd_run_batch)


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror}") from exc


def render_params(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The parameters of ``render(kind)`` given on the command line; an option the kind does
    not take is an error, not silently dropped."""
    from . import KINDS

    accepted = inspect.signature(KINDS[kind][1]).parameters
    params: dict[str, Any] = {}
    for dest, (param, option) in _RENDER_OPTIONS.items():
        value = getattr(args, dest, None)
        if value is None:
            continue
        if param not in accepted:
            raise ValueError(f"{option} does not apply to `render {kind}`")
        params[param] = value
    return params


def cmd_render(args: argparse.Namespace) -> int:
    from . import render

    try:
        text = render(args.kind, **render_params(args.kind, args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_run_local(args: argparse.Namespace) -> int:
    from .local_run import run_local

    return run_local(args.files, engine=args.engine, volumes_dir=args.volumes_dir)


def cmd_run_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    result = run_batch(
        args.inputs,
        args.dataset,
        args.query,
        args.output,
        store=args.store,
        scheduler=args.scheduler,
    )
    print(
        f"dataset {args.dataset}: {result.files} file(s); {result.rows} rows written to "
        f"{result.output}"
    )
    return 0
