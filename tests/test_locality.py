"""Placing object tasks beside their primary OSD, on a simulated host map (the real cluster
case: test_ceph_replicated.py)."""

from __future__ import annotations

from typing import Any

from skyhook_dask.runtime.locality import object_locality, preferred_workers

OSD_HOST = {0: "rack1-a", 1: "rack1-b", 2: "rack2-a", 3: "rack2-b"}
HOST_WORKERS = {
    "rack1-a": ["tcp://10.0.0.1:1"],
    "rack2-a": ["tcp://10.0.0.3:2", "tcp://10.0.0.3:1"],
}


def test_each_object_goes_to_the_workers_on_its_primarys_host() -> None:
    primaries = [0, 2, 1, None, 3, 0, 7]
    assert preferred_workers(primaries, OSD_HOST, HOST_WORKERS) == [
        ["tcp://10.0.0.1:1"],
        ["tcp://10.0.0.3:1", "tcp://10.0.0.3:2"],  # two workers on that host: either
        None,  # no worker on rack1-b: any worker
        None,  # no primary up
        None,
        ["tcp://10.0.0.1:1"],
        None,  # an OSD the CRUSH map does not place
    ]


def test_no_locality_off_ceph_or_without_declared_hosts(tmp_path: Any) -> None:
    class NoClient:
        def run(self, func: Any) -> dict[str, Any]:
            raise AssertionError("a file store has no OSDs: the workers are not asked")

    assert object_locality(NoClient(), tmp_path.as_uri(), ["a/b"]) is None  # type: ignore[arg-type]


def test_a_failing_placement_never_fails_the_query(monkeypatch: Any) -> None:
    from skyhook_dask.runtime import locality

    def unreachable(*args: Any) -> None:
        raise TimeoutError("the monitor did not answer")

    monkeypatch.setattr(locality, "object_locality", unreachable)
    client: Any = object()
    assert locality.place_reads("rados://pool", ["a", "b"], client) is False
    assert locality.place_reads("file:///tmp/x", ["a"], client) is False  # no OSDs there


def test_read_tasks_name_their_objects_through_fusion() -> None:
    """The object of a read_skyhook partition is found inside its fused task."""
    import uuid

    import skyhook_dask.dataframe as sd
    from skyhook_dask.data import DATA_DIR
    from skyhook_dask.ingest.pipeline import write_dataset
    from skyhook_dask.runtime.beside_data import _object_names
    from skyhook_dask.runtime.locality import place_reads

    url = f"memory://fused-{uuid.uuid4().hex}"
    dataset = write_dataset(url, [str(DATA_DIR / "nano_dimuon.root")], "d", object_size=2000,
                            trees=["Events"], progress=False)  # fmt: skip
    names = [o.name for _f, _t, o in dataset.objects()]
    frame = sd.read_skyhook("d", store=url, columns=["MET_pt"])
    graph = (frame.MET_pt * 2).optimize().__dask_graph__()
    # candidates (strings too: a histogram task's object name); the plugin keeps known objects
    found = {key[1]: set(_object_names(task)) & set(names) for key, task in graph.items()}
    assert found == {n: {name} for n, name in enumerate(names)}
    assert place_reads(url, names) is False  # no Dask client here: nothing to place
