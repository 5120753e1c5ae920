"""coffea processors over Skyhook datasets: the same histograms and cut-flows as coffea's own
Runner over the ROOT files, on the local store and on Ceph, with coffea's three executors;
columns fetched lazily (only those the processor touches); preselection in the storage."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any

import awkward as ak
import cloudpickle
import coffea_processors
import dask.config
import loky
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory
from coffea_processors import (
    DimuonProcessor,
    JetElectronProcessor,
    broken,
    chunk_metadata,
    muon_count,
)
from distributed import Client, LocalCluster

from skyhook_dask import coffea as skyhook_coffea
from skyhook_dask.catalog.model import load_dataset
from skyhook_dask.data import sample_path
from skyhook_dask.exceptions import (
    DatasetNotFoundError,
    QuerySyntaxError,
    UnknownColumnError,
    UnknownTreeError,
)
from skyhook_dask.ingest.pipeline import write_dataset
from skyhook_dask.runtime.plugin import PLUGIN_NAME

# Pool processes and Dask workers get the processors by value: they need not import tests/.
cloudpickle.register_pickle_by_value(coffea_processors)

pytestmark = [
    # NanoAODSchema's notes on cross-references these sample files lack, in both runs alike.
    pytest.mark.filterwarnings("ignore:Missing cross-reference:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Branch .* already exists:RuntimeWarning"),
]

SAMPLES = [str(sample_path("nano_dy.root")), str(sample_path("nano_dimuon.root"))]
LABEL = "nano"  # the coffea dataset label of every run
OBJECT_SIZE = 100_000  # three objects per file
PROCESSORS: dict[str, Callable[[], Any]] = {
    "dimuon": DimuonProcessor,
    "jets": JetElectronProcessor,
}
EXECUTORS = ["iterative", "futures", "dask"]


# --- ground truth: coffea over the ROOT files, uproot ------------------------------------------


def runner_output(processor_instance: Any, fileset: dict[str, list[str]] | None = None) -> Any:
    runner = processor.Runner(processor.IterativeExecutor(status=False), schema=NanoAODSchema)
    return runner(
        fileset or {LABEL: SAMPLES}, treename="Events", processor_instance=processor_instance
    )


class Reference:
    """coffea's results over the ROOT files, computed once per module on first use."""

    def __init__(self) -> None:
        self._outputs: dict[str, Any] = {}
        self._columns: dict[str, set[str]] = {}

    def output(self, key: str) -> Any:
        if key not in self._outputs:
            name, _, min_muons = key.partition(":")
            instance = DimuonProcessor(int(min_muons)) if min_muons else PROCESSORS[name]()
            self._outputs[key] = runner_output(instance)
        return self._outputs[key]

    def columns(self, name: str) -> set[str]:
        """The branches coffea itself loads from the ROOT files for this processor."""
        if name not in self._columns:
            loaded: set[str] = set()
            for path in SAMPLES:
                log: list[Any] = []
                events = NanoEventsFactory.from_root(
                    {path: "Events"},
                    schemaclass=NanoAODSchema,
                    mode="virtual",
                    access_log=log,
                    metadata={"dataset": LABEL},
                ).events()
                PROCESSORS[name]().process(events)
                loaded |= {entry.branch for entry in log}
            self._columns[name] = loaded
        return self._columns[name]


@pytest.fixture(scope="module")
def reference() -> Reference:
    return Reference()


@pytest.fixture(scope="module")
def n_muon() -> list[np.ndarray]:
    return [uproot.open(path)["Events"]["nMuon"].array(library="np") for path in SAMPLES]


def assert_same(output: Any, expected: Any, where: str = "output") -> None:
    """Equal structure, equal histograms (axes and every bin), equal counts."""
    if isinstance(expected, dict):
        assert isinstance(output, dict), where
        assert set(output) == set(expected), where
        for key in expected:
            assert_same(output[key], expected[key], f"{where}[{key!r}]")
    elif hasattr(expected, "axes"):
        assert output.axes == expected.axes, where
        np.testing.assert_array_equal(output.values(flow=True), expected.values(flow=True))
        assert output == expected, where
    else:
        assert output == expected, where


# --- stores and executors ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    url = tmp_path_factory.mktemp("coffea-store").as_uri()
    write_dataset(url, SAMPLES, LABEL, object_size=OBJECT_SIZE)
    return url, LABEL


@pytest.fixture(scope="module")
def ceph_store(ceph_cluster: Any) -> tuple[str, str]:
    name = f"coffea-{os.urandom(6).hex()}"  # the pool is shared by the whole session
    write_dataset(ceph_cluster.url, SAMPLES, name, object_size=OBJECT_SIZE)
    return ceph_cluster.url, name


@pytest.fixture(params=["file", pytest.param("ceph", marks=pytest.mark.ceph)])
def store(request: pytest.FixtureRequest) -> tuple[str, str]:
    return store_named(request.param, request)


def store_named(kind: str, request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.getfixturevalue(f"{'local' if kind == 'file' else 'ceph'}_store")


def fileset(name: str) -> Any:
    """The dataset under the label the reference runs use."""
    return name if name == LABEL else {LABEL: name}


@pytest.fixture(scope="module")
def dask_client(dask_cluster: LocalCluster) -> Iterator[Client]:
    with Client(dask_cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def process_pool() -> Iterator[Any]:
    pool = loky.ProcessPoolExecutor(max_workers=2)  # reused by every FuturesExecutor run
    yield pool
    pool.shutdown()


def make_executor(kind: str, request: pytest.FixtureRequest) -> Any:
    if kind == "iterative":
        return processor.IterativeExecutor(status=False)
    if kind == "futures":
        pool = request.getfixturevalue("process_pool")
        return processor.FuturesExecutor(pool=pool, workers=2, status=False)
    return processor.DaskExecutor(client=request.getfixturevalue("dask_client"), status=False)


def objects_of(url: str, name: str) -> list[tuple[str, int, int]]:
    """(file, first event, stop event) of every object of the dataset, in order."""
    ds = load_dataset(url, name)
    return [
        (f.url or f.name, o.first_event, o.stop_event)
        for f in ds.files
        for o in f.tree("Events").objects
    ]


# --- the same results as coffea's Runner ---------------------------------------------------------


@pytest.mark.parametrize("name", PROCESSORS)
@pytest.mark.parametrize("kind", EXECUTORS)
def test_same_output_as_coffea_runner(
    store: tuple[str, str],
    kind: str,
    name: str,
    reference: Reference,
    request: pytest.FixtureRequest,
) -> None:
    url, dataset = store
    with dask.config.set({"skyhook.strict": True}):  # Ceph: the OSD's class does every scan
        output, report = skyhook_coffea.run(
            PROCESSORS[name](),
            fileset(dataset),
            store=url,
            executor=make_executor(kind, request),
            report=True,
        )
    assert_same(output, reference.output(name))
    total = sum(uproot.open(path)["Events"].num_entries for path in SAMPLES)
    assert output["cutflow"][LABEL]["events"] == total == report.rows_out == report.rows_in
    objects = objects_of(url, dataset)
    assert len(objects) > len(SAMPLES)  # files span several objects
    assert report.chunks == report.objects == len(objects)
    # Only the branches coffea loads from the ROOT files, each once per chunk...
    assert report.fetched == sorted(reference.columns(name))
    # one call per column at most; fewer once earlier chunks have shown which columns are used
    assert report.chunks <= report.calls <= report.chunks * len(report.columns)
    # ...which is a small part of the objects.
    assert 0 < report.bytes_returned * 20 < report.object_bytes


def test_runner_call_form_with_fileset(local_store: tuple[str, str]) -> None:
    url, name = local_store
    runner = skyhook_coffea.SkyhookRunner(
        processor.IterativeExecutor(status=False), store=url, savemetrics=True
    )
    skyhook_fileset = {
        "DY": {"dataset": name, "files": ["nano_dy.root"]},
        "Dimuon": {"dataset": name, "files": ["nano_dimuon.root"]},
    }
    output, report = runner(skyhook_fileset, DimuonProcessor(), treename="Events")
    expected = runner_output(DimuonProcessor(), {"DY": SAMPLES[:1], "Dimuon": SAMPLES[1:]})
    assert_same(output, expected)
    assert set(output["cutflow"]) == {"DY", "Dimuon"}
    assert report.chunks == len(objects_of(url, name))


@pytest.mark.parametrize("preselect", [None, "nMuon >= 1"])
def test_later_chunks_fetch_the_used_columns_in_one_call(
    local_store: tuple[str, str], preselect: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first chunk fetches each column as the processor touches it (and counts the
    preselected events); every later chunk of the same processor fetches those columns in one
    call, with the same output and the same bytes per column."""
    from skyhook_dask.coffea import chunks

    url, name = local_store

    def run(learn: bool) -> tuple[Any, Any]:
        with monkeypatch.context() as patch:
            patch.setattr(chunks, "_TOUCHED", chunks.OrderedDict())
            if not learn:
                patch.setattr(chunks, "_learn", lambda key, columns: None)
            return skyhook_coffea.run(
                DimuonProcessor(), name, store=url, preselect=preselect, report=True,
                executor=processor.IterativeExecutor(status=False),
            )  # fmt: skip

    lazy, lazy_report = run(learn=False)
    output, report = run(learn=True)
    assert_same(output, lazy)
    assert report.fetched == lazy_report.fetched and report.chunks == lazy_report.chunks > 2
    count_call = preselect is not None
    assert lazy_report.calls == report.chunks * (len(report.columns) + count_call)
    assert report.calls == len(report.columns) + count_call + report.chunks - 1
    assert report.rows_out == lazy_report.rows_out
    assert report.bytes_returned <= lazy_report.bytes_returned


def test_iterative_runs_read_the_next_chunk_ahead(
    local_store: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the iterative executor each chunk from the third on finds its scan already started
    (while the chunk before was processed); a scan started ahead that fails is made again."""
    from concurrent.futures import Future

    from skyhook_dask.coffea import chunks, mapping, readahead

    url, name = local_store
    taken: list[bool] = []
    original_take = readahead.ReadAhead.take

    def take(self: readahead.ReadAhead, item: Any) -> Any:
        ahead = original_take(self, item)
        taken.append(ahead is not None)
        return ahead

    monkeypatch.setattr(readahead.ReadAhead, "take", take)

    def run() -> tuple[Any, Any]:
        monkeypatch.setattr(chunks, "_TOUCHED", chunks.OrderedDict())  # nothing learned yet
        return skyhook_coffea.run(
            DimuonProcessor(), name, store=url, preselect="nMuon >= 1", report=True,
            executor=processor.IterativeExecutor(status=False),
        )  # fmt: skip

    output, report = run()
    # The first chunk shows which columns the processor touches; the second fetches them in
    # one call, and starts the third's; and so on.
    assert taken == [False, False] + [True] * (report.chunks - 2)
    assert report.calls == len(report.columns) + 1 + (report.chunks - 1)  # + one count

    def failing(self: mapping.ChunkColumns, names: Any, pool: Any) -> mapping.Ahead:
        future: Future[Any] = Future()
        future.set_exception(OSError("the storage went away"))
        return mapping.Ahead(self._wanted(names), future)

    monkeypatch.setattr(mapping.ChunkColumns, "fetch_ahead", failing)
    again, again_report = run()
    assert_same(again, output)
    assert again_report.calls == report.calls and again_report.fetched == report.fetched


def test_metadata_as_coffea_sets_it(local_store: tuple[str, str]) -> None:
    url, name = local_store
    output, report = skyhook_coffea.run(
        chunk_metadata,
        name,
        store=url,
        executor=processor.IterativeExecutor(status=False),
        metadata={"era": "2018"},
        report=True,
    )
    assert output["chunks"] == {(LABEL, f, "Events", a, b) for f, a, b in objects_of(url, name)}
    assert {chunk[1] for chunk in output["chunks"]} == set(SAMPLES)  # filename as given
    coffea_meta = runner_output(chunk_metadata, {LABEL: SAMPLES})["meta"]
    uuid_of = {m["filename"]: m["fileuuid"] for m in coffea_meta}  # coffea's, from ROOT
    for meta in output["meta"]:
        assert set(coffea_meta[0]) <= set(meta)
        assert meta["era"] == "2018" and meta["fileuuid"] == uuid_of[meta["filename"]] != ""
    assert output["events"] == sum(b - a for _, a, b in objects_of(url, name))
    # Metadata only: no column was fetched, nothing was asked of the storage.
    assert report.columns == {} and report.calls == 0 and report.bytes_returned == 0


# --- preselection in the storage -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "chunks_per_object"),
    [("file", 1), ("file", 2), pytest.param("ceph", 2, marks=pytest.mark.ceph)],
)
def test_preselection_runs_in_storage(
    kind: str,
    chunks_per_object: int,
    reference: Reference,
    n_muon: list[np.ndarray],
    request: pytest.FixtureRequest,
) -> None:
    url, dataset = store_named(kind, request)
    with dask.config.set({"skyhook.strict": True}):
        output, report = skyhook_coffea.run(
            DimuonProcessor(),
            fileset(dataset),
            store=url,
            preselect="nMuon >= 2",
            chunks_per_object=chunks_per_object,
            executor=processor.IterativeExecutor(status=False),
            report=True,
        )
    # Identical to coffea's Runner restricted the same way in Python.
    assert_same(output, reference.output("dimuon:2"))
    passing = sum(int(np.sum(counts >= 2)) for counts in n_muon)
    assert output["cutflow"][LABEL]["events"] == passing == report.rows_out
    # Objects with no passing event are skipped by their statistics; the rest are cut in the
    # storage, so the processor sees fewer events than the chunks hold.
    by_file = dict(zip(SAMPLES, n_muon, strict=True))
    kept = [(f, a, b) for f, a, b in objects_of(url, dataset) if np.any(by_file[f][a:b] >= 2)]
    assert report.objects == len(kept)
    assert report.objects_skipped == len(objects_of(url, dataset)) - len(kept)
    assert report.rows_in == sum(b - a for _, a, b in kept) > report.rows_out
    assert report.chunks == chunks_per_object * len(kept)


def test_preselection_with_indices_masks_and_math(local_store: tuple[str, str]) -> None:
    """The query language v2 in a preselection: the processor sees exactly the events awkward
    selects from the ROOT files."""
    url, name = local_store
    query = "Muon_pt[0] > 25 and sum(Jet_pt[abs(Jet_eta) < 2.4]) > 40 and sqrt(MET_sumEt) > 15"
    output, report = skyhook_coffea.run(
        DimuonProcessor(),
        name,
        store=url,
        preselect=query,
        executor=processor.IterativeExecutor(status=False),
        report=True,
    )
    expected = 0
    for path in SAMPLES:
        e = uproot.open(path)["Events"].arrays(["Muon_pt", "Jet_pt", "Jet_eta", "MET_sumEt"])
        leading = ak.fill_none(ak.firsts(e.Muon_pt) > np.float32(25), False)
        central = ak.sum(e.Jet_pt[abs(e.Jet_eta) < np.float32(2.4)], axis=1) > 40
        expected += int(ak.sum(leading & central & (np.sqrt(e.MET_sumEt) > np.float32(15))))
    assert output["cutflow"][LABEL]["events"] == report.rows_out == expected > 0


def test_preselection_that_nothing_passes(
    local_store: tuple[str, str], reference: Reference
) -> None:
    url, name = local_store
    output, report = skyhook_coffea.run(
        DimuonProcessor(),
        name,
        store=url,
        preselect="nMuon > 1000",
        executor=processor.IterativeExecutor(status=False),
        report=True,
    )
    assert_same(output, reference.output("dimuon:1001"))
    assert output["cutflow"][LABEL]["events"] == 0
    assert report.objects_skipped == len(objects_of(url, name))
    assert (report.chunks, report.rows_out, report.calls) == (1, 0, 0)  # one empty chunk


# --- executors -----------------------------------------------------------------------------------


def test_default_executor_follows_the_current_dask_client(
    local_store: tuple[str, str], dask_client: Client, n_muon: list[np.ndarray]
) -> None:
    url, name = local_store
    muons = sum(int(counts.sum()) for counts in n_muon)
    with dask_client.as_current():
        output = skyhook_coffea.run(muon_count, name, store=url)
    workers = set(dask_client.run(os.getpid).values())
    assert output["muons"] == muons
    assert output["pids"] and output["pids"] <= workers
    # Tasks used the worker plugin's connections: one per registered store and worker.
    opened = dask_client.run(
        lambda dask_worker: (
            dask_worker.plugins[PLUGIN_NAME].connections_opened,
            len(dask_worker.plugins[PLUGIN_NAME].store_urls),
        )
    )
    assert all(count == urls for count, urls in opened.values())
    # No current client: the chunks run here, one after the other.
    output = skyhook_coffea.run(muon_count, name, store=url)
    assert output == {"pids": {os.getpid()}, "muons": muons}


# --- errors --------------------------------------------------------------------------------------


def test_errors_name_what_is_wrong(local_store: tuple[str, str]) -> None:
    url, name = local_store
    iterative = processor.IterativeExecutor(status=False)

    def run(processor_instance: Any = None, **options: Any) -> Any:
        dataset = options.pop("dataset", name)
        instance = processor_instance or DimuonProcessor()
        return skyhook_coffea.run(instance, dataset, store=url, executor=iterative, **options)

    with pytest.raises(UnknownColumnError, match="nMuons") as unknown:
        run(preselect="nMuons >= 2")
    assert any("nano_dy.root" in note for note in unknown.value.__notes__)
    with pytest.raises(QuerySyntaxError):
        run(preselect="nMuon >=")
    with pytest.raises(ValueError, match="predicate"):
        run(preselect="select nMuon >= 2, project Muon_pt")
    with pytest.raises(DatasetNotFoundError, match="nano2"):
        run(dataset="nano2")
    with pytest.raises(UnknownTreeError, match="Missing"):
        run(treename="Missing")
    with pytest.raises(ValueError, match="chunks_per_object"):
        run(chunks_per_object=0)
    with pytest.raises(ValueError, match=r"expected keys 'dataset' \(default: the label\)"):
        run(dataset={LABEL: {"file": ["nano_dy.root"]}})
    with pytest.raises(TypeError, match="executor"):
        skyhook_coffea.run(DimuonProcessor(), name, store=url, executor=object())
    with pytest.raises(AttributeError, match="NoSuchCollection") as failed:
        run(broken)
    first = objects_of(url, name)[0]
    assert any(f"events {first[1]}..{first[2]} of {first[0]}" in n for n in failed.value.__notes__)


# --- coffea internals this integration relies on -------------------------------------------------


def test_coffea_internals_in_use() -> None:
    """Pins the coffea APIs the integration builds on, so an upgrade that moves them fails
    here, by name, rather than deep inside a run."""
    from coffea.nanoevents import transforms
    from coffea.nanoevents.mapping.base import BaseSourceMapping
    from coffea.nanoevents.util import quote, tuple_to_key

    params = list(inspect.signature(BaseSourceMapping.__init__).parameters)
    assert params[1:4] == ["fileopener", "start", "stop"]
    assert {"cache", "virtual"} <= set(params)
    for method in ("preload_column_source", "get_column_handle", "extract_column"):
        assert callable(getattr(BaseSourceMapping, method))
    factory = list(inspect.signature(NanoEventsFactory.__init__).parameters)
    assert factory[1:] == ["schema", "mapping", "partition_key", "mode"]
    for name in ("content", "offsets", "counts2offsets", "local2global", "nestedindex"):
        assert callable(getattr(transforms, name))
    assert quote("Muon_pt,!load") == "Muon_pt%2C%21load"
    assert tuple_to_key(("a/b", "Events", "0-3")) == "a%2Fb/Events/0-3"
    # Executors: copy(**fields), then executor(items, function, accumulator) -> (output, 0).
    iterative = processor.IterativeExecutor(status=False).copy(unit="chunk")
    assert iterative(["a", "b"], lambda item: {item: 1}, None) == ({"a": 1, "b": 1}, 0)
    fields = {f.name for f in dataclasses.fields(processor.DaskExecutor)}
    assert {"client", "heavy_input", "use_dataframes", "function_name"} <= fields
    assert callable(processor.accumulate)


# --- the mapping on its own: Arrow columns as lazy NanoEvents -----------------------------------


def test_object_columns_as_lazy_events() -> None:
    """Every kind of column an object may hold comes back as it was written; a column is
    fetched when first read, once; the event range and the preselection apply in storage."""
    from coffea.nanoevents import BaseSchema

    from skyhook_dask.coffea.mapping import ChunkColumns, ChunkSpec, make_events
    from skyhook_dask.formats.objects import write_object
    from skyhook_dask.query.binding import bind_predicate
    from skyhook_dask.query.parser import parse_query
    from skyhook_dask.storage import open_store

    jagged = pa.array([[1.5], [], [2.5, 3.5], [4.5], [], [6.0, 7.0]], pa.large_list(pa.float32()))
    table = pa.table(
        {
            "event_id": pa.array(range(100, 106), pa.int64()),
            "n": pa.array([1, 0, 2, 1, 0, 2], pa.uint32()),
            "pt": jagged,
            "hits": pa.array(
                [[[1], [2, 3]], [], [[4]], [[5, 6]], [], [[7], []]],
                pa.large_list(pa.large_list(pa.int16())),
            ),
            "xyz": pa.array([[i, i + 1, i + 2] for i in range(6)], pa.list_(pa.float64(), 3)),
            "ok": pa.array([True, False, True, True, False, True]),
            "label": pa.array(list("abcdef")),  # not a NanoEvents branch: left out
        }
    )
    url = f"memory://coffea-{os.urandom(4).hex()}"
    open_store(url).write("t/object", write_object(table))
    where = "the test table"
    preselect = bind_predicate(parse_query("select n >= 1").predicate, table.schema, where)
    for start, stop, predicate in [(100, 106, None), (101, 105, None), (100, 106, preselect)]:
        spec = ChunkSpec(
            url, "t/object", start, stop, (start, stop) == (100, 106), predicate, None, True
        )
        columns = ChunkColumns(spec, table.schema)
        events = make_events(columns, BaseSchema, {"dataset": "t"}, "u", "Events")
        assert sorted(events.fields) == ["hits", "n", "ok", "pt", "xyz"]
        assert columns.fetched == {}  # nothing read yet
        ids = pc.is_in(table["event_id"], pa.array(range(start, stop)))
        if predicate is not None:
            ids = pc.and_(ids, pc.greater_equal(table["n"], 1))
        expected = table.filter(ids)
        assert len(events) == expected.num_rows
        assert ak.to_list(events.pt) == expected["pt"].to_pylist()
        assert list(columns.fetched) == ["pt"]  # that column alone
        for name in ("pt", "hits", "xyz", "ok", "n"):  # pt again: from the chunk's cache
            assert ak.to_list(events[name]) == expected[name].to_pylist()
        assert sorted(columns.fetched) == ["hits", "n", "ok", "pt", "xyz"]
        assert columns.metrics.calls == 5 + (predicate is not None)  # + one count
