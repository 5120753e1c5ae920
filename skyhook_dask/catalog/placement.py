"""How a dataset's objects spread over the OSDs of a Ceph cluster.

From the cluster's own mapping (:mod:`skyhook_dask.storage.placement`): for each OSD, the
objects and bytes it serves as primary and the copies it holds.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import SkyhookError
from ..storage.placement import PoolMap, pool_map
from .model import Dataset


def dataset_placement(dataset: Dataset, mapping: PoolMap | None = None) -> dict[str, Any]:
    """``{"pool", "pg_num", "epoch", "objects", "bytes", "groups", "osds": {id: counts}}``;
    each OSD's counts are ``primary_objects``, ``primary_bytes``, ``copies``, ``copy_bytes``."""
    store = dataset.store
    if not hasattr(store, "mon_command"):
        raise SkyhookError(
            f"placement over OSDs exists only on a Ceph store (rados://...); dataset "
            f"{dataset.name!r} is on {store.url}"
        )
    mapping = mapping or pool_map(store)
    osds: dict[int, dict[str, int]] = {}

    def counts(osd: int) -> dict[str, int]:
        zero = {"primary_objects": 0, "primary_bytes": 0, "copies": 0, "copy_bytes": 0}
        return osds.setdefault(osd, zero)

    total_bytes, groups = 0, set()
    objects = [obj for _file, _tree, obj in dataset.objects()]
    for obj in objects:
        placed = mapping.place(obj.name)
        groups.add(placed.pg)
        total_bytes += obj.bytes
        if placed.primary is not None:
            counts(placed.primary)["primary_objects"] += 1
            counts(placed.primary)["primary_bytes"] += obj.bytes
        for osd in placed.acting:
            counts(osd)["copies"] += 1
            counts(osd)["copy_bytes"] += obj.bytes
    return {
        "pool": mapping.pool,
        "pg_num": mapping.pg_num,
        "epoch": mapping.epoch,
        "objects": len(objects),
        "bytes": total_bytes,
        "groups": len(groups),
        "osds": dict(sorted(osds.items())),
    }
