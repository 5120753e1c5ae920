"""The ``skyhook`` command line: demo, ingest, ls, schema, query, gc, verify, generate, ceph,
k8s.

Commands run in this process unless ``--scheduler ADDRESS`` (or ``$DASK_SCHEDULER_ADDRESS``)
names a Dask scheduler. Errors are one ``error:`` line (``--verbose`` adds the traceback).
Libraries are imported by the commands that need them, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .exceptions import DatasetExistsError, DuplicateFileError, IngestError, SkyhookError

if TYPE_CHECKING:
    import pyarrow as pa

DEMO_QUERY = "select nMuon >= 2 and any(Muon_pt > 20), project event_id nMuon Muon_pt Muon_eta"


class CommandError(SkyhookError):
    """A command cannot run as asked (a store that is not there, ...)."""


def _client(args: argparse.Namespace, creates_store: bool = False) -> Any:
    """The command's SkyhookDM; :func:`main` closes it (and any cluster it joined) at the end.

    A store directory given with ``--store`` or ``$SKYHOOK_STORE`` must exist, unless the
    command creates it (``ingest``, ``demo``).
    """
    from .client import SkyhookDM

    given = args.store or os.environ.get("SKYHOOK_STORE")
    if given and not creates_store:
        _check_store_exists(given)
    args.session = SkyhookDM().connect(args.scheduler, store=args.store)
    return args.session


def _check_store_exists(store: str) -> None:
    parts = urlsplit(store) if "://" in store else None
    if parts is not None and parts.scheme != "file":
        return  # other stores report their own errors when opened
    path = Path(unquote(parts.path)) if parts is not None else Path(store).expanduser()
    if not path.is_dir():
        raise CommandError(
            f"no store at {path}: give an existing store with --store, or create one with "
            "'skyhook ingest' or 'skyhook demo'"
        )


def _print_table(table: pa.Table, limit: int = 20) -> None:
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 12):
        print(table.slice(0, limit).to_pandas())
    if table.num_rows > limit:
        print(f"... {table.num_rows - limit} more rows")


def cmd_demo(args: argparse.Namespace) -> int:
    from .data import sample_path

    sk = _client(args, creates_store=True)
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
        f"{m.object_size:,} object bytes and returned {m.bytes_returned:,} bytes"
    )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    if (args.fileset is None) == (args.dataset is None or not args.urls):
        raise IngestError("give a DATASET and its files, or --fileset FILE.json (not both)")
    sk = _client(args, creates_store=True)
    compression = None if args.compression == "none" else args.compression
    options = {"object_size": args.object_size, "compression": compression, "trees": args.tree}
    options["overwrite"] = args.overwrite
    if args.append:
        if args.overwrite:
            raise IngestError("give --append or --overwrite, not both")
        options["mode"] = "append"
    options["allow_duplicates"] = args.allow_duplicates
    try:
        if args.fileset is not None:
            written = list(sk.writeFileset(args.fileset, **options).values())
        else:
            written = [sk.writeDataset(args.urls, args.dataset, **options)]
    except DatasetExistsError as exc:
        if "overwrite=True" not in str(exc):
            raise
        raise DatasetExistsError(
            str(exc).split(";")[0] + "; add --overwrite to replace it, --append to add the "
            "files to it, or choose another name"
        ) from None
    except DuplicateFileError as exc:
        message = str(exc).replace("allow_duplicates=True", "--allow-duplicates")
        raise DuplicateFileError(message) from None
    for ds in written:
        print(
            f"{ds.name}: {len(ds.getFiles())} files, {ds.getSize():,} bytes stored "
            f"(version {ds.version})"
        )
        for f in ds.getFiles():
            for s in f.skipped:
                print(f"  skipped {f.name}:{s['tree']}/{s['branch']}: {s['reason']}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    sk = _client(args)
    if not args.dataset and (args.versions or args.placement or args.version is not None):
        raise SkyhookError("--versions, --version and --placement need a DATASET")
    if not args.dataset:
        for name in sk.listDatasets():
            print(name)
        return 0
    if args.versions:
        for v in sk.listVersions(args.dataset):
            mark = "  (current)" if v.current else ""
            trees = ", ".join(f"{key}: {n:,}" for key, n in v.entries.items())
            print(
                f"{v.version:>4}  {v.created}  {v.files} files  {v.stored_bytes:,} bytes  "
                f"({trees}){mark}"
            )
        return 0
    ds = sk.getDataset(args.dataset, args.version)
    if args.placement:
        return _print_placement(ds)
    for f in ds.getFiles():
        print(f"{f.name}  {f.size or 0:,} bytes  (stored {f.stored_size:,})")
        for key, tree in f.trees.items():
            print(
                f"  {key}: {tree.entries} events, {len(tree.columns)} columns, "
                f"{len(tree.objects)} objects"
            )
    return 0


def _byte_size(text: str) -> int:
    """``65536``, ``64K``, ``64M`` or ``1G`` (binary units) as bytes."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    number, unit = (text[:-1], units[text[-1].upper()]) if text[-1:].upper() in units else (text, 1)
    try:
        value = int(float(number) * unit)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (e.g. 65536 or 64M)")
    return value


def _print_placement(dataset: Any) -> int:
    from .catalog.placement import dataset_placement

    spread = dataset_placement(dataset)
    print(f"{dataset.name}: {spread['objects']:,} data objects, {spread['bytes']:,} bytes in "
          f"{spread['groups']} of the {spread['pg_num']} placement groups of pool "
          f"{spread['pool']!r} (OSD map epoch {spread['epoch']})")  # fmt: skip
    print(f"{'osd':>6} {'primary objects':>16} {'primary bytes':>16} {'copies':>8} "
          f"{'copy bytes':>16}")  # fmt: skip
    for osd, n in spread["osds"].items():
        print(f"{'osd.' + str(osd):>6} {n['primary_objects']:>16,} {n['primary_bytes']:>16,} "
              f"{n['copies']:>8,} {n['copy_bytes']:>16,}")  # fmt: skip
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
    import pyarrow as pa

    sk = _client(args)
    ds = sk.getDataset(args.dataset, args.version)
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


def cmd_hist(args: argparse.Namespace) -> int:
    sk = _client(args)
    dataset = sk.getDataset(args.dataset, args.version)
    bins = args.edges if args.edges else args.bins
    value_range = None if args.edges or args.range is None else tuple(args.range)
    h = sk.histogram(dataset, args.value, bins=bins, range=value_range, where=args.where,
                     weight=args.weight)  # fmt: skip
    print(h)
    flow = h.view(flow=True)
    total = flow["value"].sum() if args.weight else flow.sum()
    meta = h.metadata
    print(f"{total:g} entries ({meta['rows_selected']} events selected of {meta['rows_in']}; "
          f"{meta['bytes_returned']} bytes from storage)")  # fmt: skip
    if args.output:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots()
        h.plot1d(ax=axes)
        figure.savefig(args.output)
        print(f"wrote {args.output}")
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


def cmd_generate(args: argparse.Namespace) -> int:
    from .ingest.generate import generate_nanoaod

    out = generate_nanoaod(
        args.path,
        args.events,
        seed=args.seed,
        n_extra_branches=args.extra_branches,
        compression=None if args.compression == "none" else args.compression,
        rntuple=args.rntuple,
    )
    print(f"wrote {args.events} events to {out}")
    return 0


def _common_options(parser: argparse.ArgumentParser, defaults: bool, store: bool = True) -> None:
    """``--store``, ``--scheduler`` and ``--verbose``, before or after the command.

    The command's own copies default to "not given" so they never undo the global ones.
    """

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default(False), help="tracebacks on errors"
    )
    if not store:
        return
    parser.add_argument(
        "--store",
        default=default(None),
        help="store URL (file:///dir, rados://pool?conf=...) or directory; "
        "default $SKYHOOK_STORE or ~/.local/share/skyhook",
    )
    parser.add_argument(
        "--scheduler",
        default=default(os.environ.get("DASK_SCHEDULER_ADDRESS")),
        help="run on this Dask scheduler (host:port); default $DASK_SCHEDULER_ADDRESS, "
        "else in this process",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyhook", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _common_options(common, defaults=False)
    verbose = argparse.ArgumentParser(add_help=False)
    _common_options(verbose, defaults=False, store=False)

    def command(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=func)
        return p

    command("demo", cmd_demo, "ingest a bundled NanoAOD sample and run a query on it")
    p = command("ingest", cmd_ingest, "ingest ROOT files (paths or URLs) as a dataset")
    p.add_argument("dataset", nargs="?")
    p.add_argument("urls", nargs="*")
    p.add_argument(
        "--fileset",
        metavar="FILE.json",
        help="a coffea fileset: one dataset per entry, named by its label (no DATASET, no files)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.add_argument(
        "--append", action="store_true", help="add the files to the dataset as its next version"
    )
    p.add_argument(
        "--allow-duplicates",
        action="store_true",
        help="with --append, add a file even if the dataset already holds it (same ROOT UUID)",
    )
    p.add_argument(
        "--object-size", type=_byte_size, help="target object size: bytes, or with K/M/G (64M)"
    )
    p.add_argument("--compression", choices=["lz4", "zstd", "none"], default="lz4")
    p.add_argument(
        "--tree",
        action="append",
        help="ingest only this tree (name, path or key; repeat for more); default: every tree",
    )
    p = command("ls", cmd_ls, "list datasets, or the files and trees of one")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--versions", action="store_true", help="list the dataset's versions")
    p.add_argument("--version", type=int, metavar="K", help="the dataset as it was at version K")
    p.add_argument(
        "--placement", action="store_true", help="objects and bytes per OSD (Ceph stores)"
    )
    p = command("schema", cmd_schema, "show a file's directories, trees and branches")
    p.add_argument("dataset")
    p.add_argument("--file", help="file name (default: the first)")
    p.add_argument("--json", action="store_true", help="print the schema dict as JSON")
    p = command("query", cmd_query, "run 'select <predicate>, project <columns>' on a dataset")
    p.add_argument("dataset")
    p.add_argument("query")
    p.add_argument("--version", type=int, metavar="K", help="the dataset as it was at version K")
    p.add_argument("--file", help="only this file of the dataset")
    p.add_argument("-o", "--output", help="write the result to a .parquet or .csv file")
    p.add_argument("--limit", type=int, default=20, help="rows to print")
    p = command("hist", cmd_hist, "fill a histogram of a value inside the storage")
    p.add_argument("dataset")
    p.add_argument("value", help="what to fill, e.g. 'Jet_pt[abs(Jet_eta) < 1]'")
    p.add_argument("--version", type=int, metavar="K", help="the dataset as it was at version K")
    p.add_argument("--bins", type=int, default=50, help="number of regular bins")
    p.add_argument("--range", type=float, nargs=2, metavar=("LOW", "HIGH"))
    p.add_argument("--edges", type=float, nargs="+", help="variable bin edges instead")
    p.add_argument("--where", help="event selection, e.g. 'count(Jet_pt > 40) >= 2'")
    p.add_argument("--weight", help="weight per event or per element")
    p.add_argument("-o", "--output", help="save a plot (.png, .pdf, .svg)")
    p = command("gc", cmd_gc, "delete objects no version of a dataset refers to")
    p.add_argument("dataset", nargs="?")
    p = command(
        "verify", cmd_verify, "check every object's checksum and format against the manifest"
    )
    p.add_argument("dataset", nargs="?")
    p = command("generate", cmd_generate, "write a synthetic NanoAOD-like ROOT file")
    p.add_argument("path", help="output .root file")
    p.add_argument("--events", type=int, default=10_000, help="number of events")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--extra-branches", type=int, default=50, help="filler flat branches")
    p.add_argument("--compression", choices=["zstd", "zlib", "lz4", "none"], default="zstd")
    p.add_argument("--rntuple", action="store_true", help="write RNTuples, not TTrees")
    from .ceph import commands as ceph
    from .k8s import commands as k8s

    # Their subcommands have options of their own (k8s render --store): only --verbose here.
    ceph.add_ceph_commands(_group(sub, "ceph", ceph.HELP, ceph.__doc__, verbose))
    k8s.add_k8s_commands(_group(sub, "k8s", k8s.HELP, k8s.__doc__, verbose))
    return parser


def _group(sub: Any, name: str, help: str, description: str | None, common: Any) -> Any:
    """A command with subcommands (``skyhook ceph up``): the subparsers to add them to."""
    parser = sub.add_parser(
        name,
        help=help,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest=f"{name}_command", required=True)
    add_parser = actions.add_parser

    def with_common(*args: Any, **kwargs: Any) -> Any:
        return add_parser(*args, parents=[common, *kwargs.pop("parents", [])], **kwargs)

    actions.add_parser = with_common  # every subcommand takes --verbose too
    return actions


def _warn(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"warning: {message}", file=sys.stderr)  # one line, no source line


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.verbose:
        warnings.showwarning = _warn
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (skyhook schema x | head): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # one line for the user; the traceback on request
        if args.verbose:
            traceback.print_exc()
        message = str(exc) if isinstance(exc, SkyhookError) else f"{type(exc).__name__}: {exc}"
        hint = "" if args.verbose else " (--verbose for details)"
        first, _, rest = message.partition("\n")
        print(f"error: {first}{hint if not isinstance(exc, SkyhookError) else ''}", file=sys.stderr)
        if rest and isinstance(exc, SkyhookError):  # a query with its caret
            print(rest, file=sys.stderr)
        return 1
    finally:
        if getattr(args, "session", None) is not None:
            args.session.close()


if __name__ == "__main__":
    sys.exit(main())
