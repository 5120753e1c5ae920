"""Run coffea processors over Skyhook datasets, with coffea's own executors.

:func:`run` gives what ``coffea.processor.Runner(executor, schema=NanoAODSchema)(fileset,
treename="Events", processor_instance=processor)`` gives over the original ROOT files, but
reads the ingested objects: one chunk per object (or ``chunks_per_object`` parts of one), each
processed as NanoEvents whose columns are fetched only when the processor first touches them --
one ``scan`` call on the object per column, that column alone, with the preselection evaluated
inside the storage (:mod:`skyhook_dask.coffea.mapping`). Later chunks run by the same process
fetch the columns the processor touched before in a single call -- with the iterative
executor, started while the chunk before is processed (:mod:`skyhook_dask.coffea.readahead`).

The chunks (:mod:`skyhook_dask.coffea.chunks`) go through coffea's executors the way
``Runner`` drives them: ``executor(items, function, accumulator)`` with a picklable function
per chunk, outputs merged by ``coffea.processor.accumulate``.
:class:`~coffea.processor.IterativeExecutor`, :class:`~coffea.processor.FuturesExecutor` and
:class:`~coffea.processor.DaskExecutor` all work; with Dask the store is registered with the
client's worker plugin, so tasks reuse each worker's connection. :class:`SkyhookRunner` is the
same in ``Runner``'s call form.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cloudpickle
import lz4.frame
from coffea import processor as coffea_processor
from coffea.nanoevents import NanoAODSchema

from .. import config
from ..query.parser import Query
from .chunks import (
    ChunkProcessor,
    DatasetSpec,
    Payload,
    RunReport,
    SkyhookWorkItem,
    work_items,
)
from .readahead import ReadAhead

__all__ = ["RunReport", "SkyhookRunner", "SkyhookWorkItem", "run", "work_items"]


# --- executors ---------------------------------------------------------------------------------


def _current_client() -> Any:
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


@contextmanager
def _executor_for(
    executor: Any, store_urls: Sequence[str], payload: Payload, name: str
) -> Iterator[tuple[Any, Payload | None]]:
    """The executor to run with (a copy, as Runner makes), and the payload the function must
    carry (None when a DaskExecutor broadcasts it to the workers once)."""
    if executor is None:
        client = _current_client()
        executor = (
            coffea_processor.DaskExecutor(client=client)
            if client is not None
            else coffea_processor.IterativeExecutor()
        )
    if not isinstance(executor, coffea_processor.executor.ExecutorBase):
        raise TypeError(f"executor must be a coffea executor, not {type(executor).__name__}")
    options = {"unit": "chunk", "function_name": name}
    if not isinstance(executor, coffea_processor.DaskExecutor):
        yield executor.copy(**options), payload
        return
    if executor.use_dataframes:
        raise ValueError("DaskExecutor(use_dataframes=True) is not supported over Skyhook")
    from distributed import Client

    from ..runtime.plugin import register_store_plugin

    client = executor.client or _current_client()
    owned = None
    if client is None:  # as Runner does: a local cluster for this run only
        owned = client = Client(threads_per_worker=1, dashboard_address=":0")
    try:
        for url in store_urls:
            register_store_plugin(client, url)
        yield executor.copy(client=client, heavy_input=payload, **options), None
    finally:
        if owned is not None:
            owned.close()


# --- running -----------------------------------------------------------------------------------


def run(
    processor: Any,
    dataset: DatasetSpec,
    *,
    store: str | os.PathLike[str] | None = None,
    executor: Any = None,
    preselect: str | Query | None = None,
    treename: str = "Events",
    chunks_per_object: int = 1,
    metadata: Mapping[str, Any] | None = None,
    schema: Any = NanoAODSchema,
    report: bool = False,
) -> Any:
    """Run a coffea processor (a ``ProcessorABC`` or a function of events) over a dataset.

    ``dataset``: a dataset name in ``store`` (default: the ``skyhook`` default store), a
    :class:`~skyhook_dask.catalog.model.Dataset`, or a coffea-like fileset ``{label: name | Dataset
    | {"dataset": ..., "files": [...], "treename": ..., "metadata": {...}}}``; the label is
    ``events.metadata["dataset"]``. ``executor``: a coffea Iterative, Futures or Dask executor
    (default: Dask when a distributed client is current, else iterative). ``preselect``: a
    predicate in the query language (``"nMuon >= 2"``), evaluated in the storage, so the
    processor sees only passing events. ``metadata`` is added to ``events.metadata``.

    Returns the accumulated output (after ``postprocess``), or ``(output, RunReport)`` with
    ``report=True``.
    """
    if not isinstance(processor, coffea_processor.ProcessorABC) and not callable(processor):
        raise TypeError("processor must be a coffea ProcessorABC or a function of events")
    items, schemas, skipped = work_items(
        dataset,
        store=store,
        preselect=preselect,
        treename=treename,
        chunks_per_object=chunks_per_object,
        metadata=metadata,
    )
    if not items:
        raise ValueError("the fileset names no files to process")
    payload = Payload(lz4.frame.compress(cloudpickle.dumps(processor)), schemas)
    strict = bool(config.get("strict"))
    compression = config.compression("result-compression")
    urls = sorted({item.store_url for item in items})
    with _executor_for(executor, urls, payload, type(processor).__name__) as (exe, inline):
        # One chunk after another in this process: the next chunk's scan runs meanwhile.
        ahead = ReadAhead(items) if isinstance(exe, coffea_processor.IterativeExecutor) else None
        try:
            function = ChunkProcessor(schema, strict, compression, inline, ahead)
            result = exe(items, function, None)
        finally:
            if ahead is not None:
                ahead.close()
    wrapped, exception = result if isinstance(result, tuple) else (result, 0)
    if exception != 0:  # a recoverable FuturesExecutor kept what finished
        exception.partial_output = wrapped["out"] if wrapped else None
        raise exception
    output = wrapped["out"]
    postprocess = getattr(processor, "postprocess", None)
    if callable(postprocess):
        done = postprocess(output)
        output = output if done is None else done
    if not report:
        return output
    summary: RunReport = wrapped["report"]
    sizes = {item.object_name: item.object_bytes for item in items if item.object_name}
    summary.objects, summary.object_bytes = len(sizes), sum(sizes.values())
    summary.objects_skipped = skipped
    return output, summary


@dataclass
class SkyhookRunner:
    """``coffea.processor.Runner``'s call form over Skyhook datasets::

        runner = SkyhookRunner(processor.FuturesExecutor(workers=4), store="rados://skyhook")
        out = runner({"DY": "dy_dataset", "Data": {"dataset": "data", "files": ["a.root"]}},
                     processor_instance=MyProcessor(), treename="Events")

    With ``savemetrics=True`` it returns ``(output, RunReport)``, as Runner returns metrics.
    """

    executor: Any = None
    store: str | None = None
    schema: Any = NanoAODSchema
    preselect: str | Query | None = None
    chunks_per_object: int = 1
    savemetrics: bool = False

    def __call__(
        self, fileset: DatasetSpec, processor_instance: Any, *, treename: str = "Events"
    ) -> Any:
        return run(
            processor_instance,
            fileset,
            store=self.store,
            executor=self.executor,
            preselect=self.preselect,
            treename=treename,
            chunks_per_object=self.chunks_per_object,
            schema=self.schema,
            report=self.savemetrics,
        )
