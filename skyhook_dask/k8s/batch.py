"""The batch analysis a DaskJob runs: ingest ROOT files, run one query, write the result.

``skyhook k8s run-batch --dataset NAME --query QUERY --output FILE [INPUT ...]``. On a Dask
cluster (``--scheduler``, or ``$DASK_SCHEDULER_ADDRESS``, which the dask-kubernetes operator sets
in a job's pod) ingest and scans run as tasks on its workers; without one they run in this
process. Without inputs the bundled NanoAOD sample is ingested, so the job runs anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..exceptions import SkyhookError

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"


@dataclass(frozen=True)
class BatchResult:
    output: Path
    files: int
    rows: int


def _write_table(table: pa.Table, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    if output.suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, partial)
    elif output.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, partial)
    else:
        raise SkyhookError(f"--output {output}: write a .parquet or a .csv file")
    partial.replace(output)  # readers of the volume never see half a file


def run_batch(
    inputs: Sequence[str],
    dataset: str,
    query: str,
    output: str | os.PathLike[str],
    *,
    store: str | None = None,
    scheduler: str | None = None,
) -> BatchResult:
    """Ingest ``inputs`` as ``dataset`` (replacing it), run ``query`` on every file, and write
    the rows of all files, in file order, to ``output`` (.parquet or .csv)."""
    from ..client import SkyhookDM

    output = Path(output)
    if output.suffix not in (".parquet", ".csv"):
        raise SkyhookError(f"--output {output}: write a .parquet or a .csv file")
    if not inputs:
        from ..data import sample_path

        inputs = [str(sample_path())]
    scheduler = scheduler or os.environ.get(SCHEDULER_ENV) or None
    # Without a cluster the job stays in this process rather than starting a local one.
    sk = SkyhookDM().connect(scheduler, store=store, dask=scheduler is not None)
    client = sk.client  # this job's connection to the scheduler (None in-process)
    try:
        ds = sk.writeDataset(list(inputs), dataset, overwrite=True, progress=False)
        tables = sk.runQuery(ds, query)
    finally:
        sk.close()
        if client is not None:
            client.close()  # the cluster stays up; only this job's connection ends
    assert isinstance(tables, list)
    table = pa.concat_tables(tables, promote_options="default")
    _write_table(table, output)
    return BatchResult(output, len(ds.getFiles()), table.num_rows)
