"""The ``skyhook`` command line: demo, ingest, ls, schema, query, gc, verify, generate, ceph,
k8s."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from .exceptions import SkyhookError

DEMO_QUERY = "select nMuon >= 2 and any(Muon_pt > 20), project event_id nMuon Muon_pt Muon_eta"


def _client(args: argparse.Namespace):
    """The command's SkyhookDM; :func:`main` closes it (and any cluster it started) at the end."""
    from .client import SkyhookDM

    args.session = SkyhookDM().connect(store=args.store)
    return args.session


def _print_table(table: pa.Table, limit: int = 20) -> None:
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 12):
        print(table.slice(0, limit).to_pandas())
    if table.num_rows > limit:
        print(f"... {table.num_rows - limit} more rows")


def cmd_demo(args: argparse.Namespace) -> int:
    from .data import sample_path

    sk = _client(args)
    sample = sample_path("nano_dimuon.root")
    print(f"store: {sk.store_url}")
    print(f"ingesting {sample.name} as dataset 'demo' ...")
    t0 = time.perf_counter()
    ds = sk.writeDataset([str(sample)], "demo", overwrite=True, progress=False)
    f = ds.getFiles()[0]
    trees = ", ".join(
        f"{k} ({t.entries} events, {len(t.objects)} objects)" for k, t in f.trees.items()
    )
    print(f"  {ds.getSize():,} bytes stored in {time.perf_counter() - t0:.2f} s; trees: {trees}")
    print(f"query: {DEMO_QUERY}")
    table = sk.runQuery(f, DEMO_QUERY)
    _print_table(table)
    m = sk.last_metrics
    print(
        f"{table.num_rows} of {m.rows_in} events selected; storage read {m.bytes_read:,} of "
        f"{m.object_size:,} object bytes and returned {m.bytes_returned:,}"
    )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    sk = _client(args)
    compression = None if args.compression == "none" else args.compression
    options = {"object_size": args.object_size, "compression": compression, "trees": args.tree}
    ds = sk.writeDataset(args.urls, args.dataset, overwrite=args.overwrite, **options)
    print(f"{ds.name}: {len(ds.getFiles())} files, {ds.getSize():,} bytes stored")
    for f in ds.getFiles():
        for s in f.skipped:
            print(f"  skipped {f.name}:{s['tree']}/{s['branch']}: {s['reason']}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    sk = _client(args)
    if not args.dataset:
        for name in sk.listDatasets():
            print(name)
        return 0
    ds = sk.getDataset(args.dataset)
    for f in ds.getFiles():
        print(f"{f.name}  {f.size or 0:,} bytes  (stored {f.stored_size:,})")
        for key, tree in f.trees.items():
            print(
                f"  {key}: {tree.entries} events, {len(tree.columns)} columns, "
                f"{len(tree.objects)} objects"
            )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    ds = _client(args).getDataset(args.dataset)
    files = [ds.file(args.file)] if args.file else ds.getFiles()[:1]
    for f in files:
        if args.json:
            print(json.dumps(f.getSchema(), indent=2))
            continue
        for node in f.getRoot().walk():
            depth = 0
            parent = node.getParent()
            while parent is not None:
                depth, parent = depth + 1, parent.getParent()
            dtype = node.getDataType()
            print(
                f"{'  ' * depth}{node.getName()}  [{node.getClassType()}]"
                + (f" {dtype}" if dtype else "")
            )
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    sk = _client(args)
    ds = sk.getDataset(args.dataset)
    files = [ds.file(args.file)] if args.file else ds.getFiles()
    tables = [sk.runQuery(f, args.query) for f in files]
    table = pa.concat_tables(tables) if tables else pa.table({})
    if args.output:
        out = Path(args.output)
        if out.suffix == ".csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, out)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, out)
        print(f"wrote {table.num_rows} rows to {out}")
    else:
        _print_table(table, args.limit)
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .ingest.pipeline import collect_garbage

    sk = _client(args)
    names = [args.dataset] if args.dataset else sk.listDatasets()
    removed = [n for name in names for n in collect_garbage(sk.store, name)]
    print(f"removed {len(removed)} unreferenced objects")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .catalog.verify import verify_dataset

    sk = _client(args)
    names = [args.dataset] if args.dataset else sk.listDatasets()
    ok = True
    for name in names:
        report = verify_dataset(sk.store, name)
        print(report)
        ok = ok and report.ok
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skyhook", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument(
            "--store",
            help="store URL (file:///dir, rados://pool?conf=...); "
            "default $SKYHOOK_STORE or ~/.local/share/skyhook",
        )
        p.set_defaults(func=func)
        return p

    command("demo", cmd_demo, "ingest a bundled NanoAOD sample and run a query on it")
    p = command("ingest", cmd_ingest, "ingest ROOT files (paths or URLs) as a dataset")
    p.add_argument("dataset")
    p.add_argument("urls", nargs="+")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument("--object-size", type=int, help="target object size in bytes")
    p.add_argument("--compression", choices=["lz4", "zstd", "none"], default="lz4")
    p.add_argument(
        "--tree",
        action="append",
        help="ingest only this tree (name, path or key; repeat for more); default: every tree",
    )
    p = command("ls", cmd_ls, "list datasets, or the files and trees of one")
    p.add_argument("dataset", nargs="?")
    p = command("schema", cmd_schema, "show a file's directories, trees and branches")
    p.add_argument("dataset")
    p.add_argument("--file", help="file name (default: the first)")
    p.add_argument("--json", action="store_true", help="print the schema dict as JSON")
    p = command("query", cmd_query, "run 'select <predicate>, project <columns>' on a dataset")
    p.add_argument("dataset")
    p.add_argument("query")
    p.add_argument("--file", help="only this file of the dataset")
    p.add_argument("-o", "--output", help="write the result to a .parquet or .csv file")
    p.add_argument("--limit", type=int, default=20, help="rows to print")
    p = command("gc", cmd_gc, "delete objects no published dataset refers to")
    p.add_argument("dataset", nargs="?")
    p = command(
        "verify", cmd_verify, "check every object's checksum and format against the manifest"
    )
    p.add_argument("dataset", nargs="?")
    from .ingest import generate

    p = sub.add_parser("generate", help="write a synthetic NanoAOD-like ROOT file")
    generate.add_arguments(p)
    p.set_defaults(func=generate.run)
    from .ceph import commands as ceph
    from .k8s import commands as k8s

    ceph.add_ceph_commands(_group(sub, "ceph", ceph.HELP, ceph.__doc__))
    k8s.add_k8s_commands(_group(sub, "k8s", k8s.HELP, k8s.__doc__))
    return parser


def _group(sub: Any, name: str, help: str, description: str | None) -> Any:
    """A command with subcommands (``skyhook ceph up``): the subparsers to add them to."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.add_subparsers(dest=f"{name}_command", required=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SkyhookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if getattr(args, "session", None) is not None:
            args.session.close()


if __name__ == "__main__":
    sys.exit(main())
