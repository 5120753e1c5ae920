"""The benchmark's data and queries: one generated ROOT file, its Skyhook dataset, a Parquet copy,
and the queries (a selectivity and a column set each) that every system answers.

Selectivity is controlled by a threshold on ``MET_pt`` (a flat float32 branch drawn from an
exponential distribution): the threshold for a fraction ``s`` is the value of the ``round(s *
events)``-th largest ``MET_pt``, so ``MET_pt >= t`` keeps that many events (a few more when
float32 values tie). Rows are spread evenly over every object, so statistics never let a
system skip data: every system pays for the whole range.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import uproot

from skyhook_dask.catalog.model import File, TreeInfo
from skyhook_dask.formats.objects import read_columns
from skyhook_dask.ingest.generate import GENERATOR_VERSION, generate_nanoaod
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.storage import open_store

TREE = "Events"
DATASET = "bench"
SELECTION_BRANCH = "MET_pt"
# Projected columns, in order: the first n of them make the n-column sets. Muon_pt leads every
# set (the "all" set too), so one checksum over it compares the systems' answers.
COLUMN_ORDER = (
    "Muon_pt",
    "Muon_eta",
    "Muon_phi",
    "MET_pt",
    "Jet_pt",
    "Jet_eta",
    "Jet_btagDeepFlavB",
    "Electron_pt",
    "PV_npvs",
    "HLT_IsoMu24",
)
CHECKSUM_COLUMN = COLUMN_ORDER[0]
SELECTIVITIES = (0.001, 0.01, 0.1, 1.0)
COLUMN_COUNTS: tuple[int | str, ...] = (1, 3, 10, "all")


@dataclass(frozen=True)
class QuerySpec:
    """One query: ``select MET_pt >= threshold`` projected to ``columns`` (None: all)."""

    selectivity: float
    n_columns: int | str  # 1, 3, 10 or "all"
    columns: tuple[str, ...] | None
    threshold: float
    expected_rows: int

    @property
    def text(self) -> str:
        """The query in the seed's language (what ``runQuery`` receives)."""
        select = f"select {SELECTION_BRANCH} >= {self.threshold!r}"
        return select if self.columns is None else f"{select}, project {', '.join(self.columns)}"

    def branches(self, all_branches: list[str]) -> list[str]:
        """ROOT branches a reader needs: the projection plus the selection branch."""
        wanted = list(all_branches) if self.columns is None else list(self.columns)
        return wanted + ([SELECTION_BRANCH] if SELECTION_BRANCH not in wanted else [])


@dataclass
class Workload:
    """Everything prepared once and shared by every case of a run."""

    root_path: Path
    store_url: str
    file: File
    parquet_dir: Path
    branches: list[str]  # every branch of the tree, in file order
    branch_bytes: dict[str, int]  # compressed basket bytes per ROOT branch
    parquet_bytes: dict[str, int]  # compressed column-chunk bytes per Parquet column
    parquet_footer_bytes: int
    met_pt: np.ndarray = field(repr=False)
    ingest: dict[str, float] = field(default_factory=dict)

    @property
    def tree(self) -> TreeInfo:
        return self.file.tree(TREE)

    @property
    def events(self) -> int:
        return int(self.tree.entries)

    def query(self, selectivity: float, n_columns: int | str) -> QuerySpec:
        return make_query(self.met_pt, selectivity, n_columns)


def make_query(met_pt: np.ndarray, selectivity: float, n_columns: int | str) -> QuerySpec:
    """The query that keeps about ``selectivity`` of the events, projected to ``n_columns``."""
    if not 0 < selectivity <= 1:
        raise ValueError(f"selectivity must be in (0, 1], not {selectivity}")
    if n_columns != "all" and not (isinstance(n_columns, int) and 0 < n_columns <= 10):
        raise ValueError(f"n_columns must be 1..{len(COLUMN_ORDER)} or 'all', not {n_columns!r}")
    ordered = np.sort(met_pt)[::-1]
    keep = max(1, round(selectivity * len(ordered)))
    threshold = float(ordered[keep - 1])  # a float32 value, exact as a Python float
    columns = None if n_columns == "all" else COLUMN_ORDER[: int(n_columns)]
    expected = int(np.count_nonzero(met_pt >= np.float32(threshold)))
    return QuerySpec(selectivity, n_columns, columns, threshold, expected)


# --- preparation -------------------------------------------------------------------------------


def default_data_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache, "skyhook", "bench")


def root_file(data_dir: Path, events: int, seed: int, extra_branches: int) -> Path:
    """The generated input (made once per arguments and generator version, then reused:
    generation is deterministic)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    name = f"nanoaod-v{GENERATOR_VERSION}-{events}ev-seed{seed}-x{extra_branches}.root"
    path = data_dir / name
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.part")
        generate_nanoaod(partial, events, seed=seed, n_extra_branches=extra_branches)
        partial.replace(path)
    return path


def ingest(root_path: Path, store_url: str, object_size: int) -> tuple[File, dict[str, float]]:
    """Write the dataset (replacing an earlier one) and time it."""
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    dataset = write_dataset(
        store_url, [str(root_path)], DATASET, object_size=object_size, overwrite=True,
        progress=False,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    file = dataset.getFiles()[0]
    tree = file.tree(TREE)
    source = root_path.stat().st_size
    stored = sum(o.bytes for o in tree.objects)
    arrow = sum(o.uncompressed_bytes for o in tree.objects)
    stats = {
        "events": tree.entries,
        "wall_s": wall,
        "client_cpu_s": cpu,
        "objects": len(tree.objects),
        "object_size_target": object_size,
        "source_bytes": source,
        "stored_bytes": stored,
        "arrow_bytes": arrow,
        "events_per_s": tree.entries / wall,
        "source_mb_per_s": source / wall / 1e6,
        "arrow_mb_per_s": arrow / wall / 1e6,
    }
    return file, stats


def write_parquet(store_url: str, tree: TreeInfo, out_dir: Path) -> Path:
    """The same rows and columns as Parquet: one file per object (pyarrow's defaults)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.parquet"):
        old.unlink()
    store = open_store(store_url)
    for seq, entry in enumerate(tree.objects):
        table = read_columns(store.read(entry.name), None, entry.name)
        pq.write_table(table, out_dir / f"part-{seq:05d}.parquet")
    return out_dir


def parquet_sizes(parquet_dir: Path) -> tuple[dict[str, int], int]:
    """Compressed bytes of each top-level column over all files, and the footers' bytes."""
    per_column: dict[str, int] = {}
    footers = 0
    for path in sorted(parquet_dir.glob("*.parquet")):
        meta = pq.ParquetFile(path).metadata
        footers += meta.serialized_size + 8  # footer plus its length and magic
        for rg in range(meta.num_row_groups):
            group = meta.row_group(rg)
            for col in range(group.num_columns):
                chunk = group.column(col)
                top = chunk.path_in_schema.split(".")[0]
                per_column[top] = per_column.get(top, 0) + chunk.total_compressed_size
    return per_column, footers


def branch_sizes(root_path: Path) -> tuple[list[str], dict[str, int], np.ndarray]:
    """Branch names (file order), compressed basket bytes per branch, and ``MET_pt``."""
    with uproot.open(root_path) as f:
        tree = f[TREE]
        names = [b.name for b in tree.branches]
        sizes = {b.name: int(b.compressed_bytes) for b in tree.branches}
        met = tree[SELECTION_BRANCH].array(library="np")
    return names, sizes, np.asarray(met, dtype=np.float32)


def prepare(
    data_dir: Path,
    work_dir: Path,
    store_url: str,
    *,
    events: int,
    seed: int,
    extra_branches: int,
    object_size: int,
) -> Workload:
    """Generate (or reuse) the ROOT file, ingest it, write its Parquet copy, size everything."""
    root_path = root_file(data_dir, events, seed, extra_branches)
    file, ingest_stats = ingest(root_path, store_url, object_size)
    parquet_dir = write_parquet(store_url, file.tree(TREE), work_dir / "parquet")
    names, sizes, met = branch_sizes(root_path)
    per_column, footers = parquet_sizes(parquet_dir)
    return Workload(
        root_path=root_path,
        store_url=store_url,
        file=file,
        parquet_dir=parquet_dir,
        branches=names,
        branch_bytes=sizes,
        parquet_bytes=per_column,
        parquet_footer_bytes=footers,
        met_pt=met,
        ingest=ingest_stats,
    )


def arrow_checksum(table: pa.Table) -> float:
    """Sum of the flattened checksum column as float64 (the same for every system's answer)."""
    import pyarrow.compute as pc

    column = table.column(CHECKSUM_COLUMN)
    if pa.types.is_large_list(column.type) or pa.types.is_list(column.type):
        column = pc.list_flatten(column)
    return float(pc.sum(column.cast(pa.float64())).as_py() or 0.0)


__all__ = [
    "COLUMN_COUNTS",
    "COLUMN_ORDER",
    "SELECTIVITIES",
    "QuerySpec",
    "Workload",
    "arrow_checksum",
    "default_data_dir",
    "make_query",
    "prepare",
]
