"""Object tasks placed beside their data: on a Dask worker on the host of the object's primary
OSD when there is one, else on any worker.

A worker says which storage host it sits on with the environment variable
``SKYHOOK_OSD_HOST`` (the Kubernetes manifests set it to the node's name, the CRUSH host of a
Rook OSD on that node). The OSDs' hosts come from the cluster's CRUSH map (``osd tree``), each
object's primary OSD from :mod:`skyhook_dask.storage.placement`. Workers that declare nothing,
and stores other than Ceph, leave scheduling to Dask as before.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..storage import open_store
from ..storage.placement import pool_map

if TYPE_CHECKING:
    from distributed import Client

HOST_ENV = "SKYHOOK_OSD_HOST"


def worker_host() -> str | None:
    """The storage host this process declares (run on each worker)."""
    return os.environ.get(HOST_ENV) or None


def osd_hosts(store: Any) -> dict[int, str]:
    """Each OSD's CRUSH host, from the monitor's ``osd tree``."""
    tree = store.mon_command({"prefix": "osd tree", "format": "json"})
    return {
        child: node["name"]
        for node in tree["nodes"]
        if node.get("type") == "host"
        for child in node.get("children", [])
    }


def preferred_workers(
    primaries: Sequence[int | None],
    osd_host: Mapping[int, str],
    host_workers: Mapping[str, Sequence[str]],
) -> list[list[str] | None]:
    """For each object (its primary OSD), the workers on that OSD's host; None where no worker
    sits there (or the object has no primary up), so that any worker may take it."""
    preferred: list[list[str] | None] = []
    for osd in primaries:
        host = osd_host.get(osd) if osd is not None else None
        workers = host_workers.get(host) if host is not None else None
        preferred.append(sorted(workers) if workers else None)
    return preferred


def object_locality(
    client: Client, store_url: str, names: Sequence[str]
) -> list[list[str] | None] | None:
    """The workers beside each of ``names``; None when no worker declares a host or the
    store has no OSDs to be beside."""
    store = open_store(store_url)
    if not hasattr(store, "mon_command"):
        return None
    declared: dict[str, str | None] = client.run(worker_host)
    host_workers: dict[str, list[str]] = defaultdict(list)
    for address, host in declared.items():
        if host:
            host_workers[host].append(address)
    if not host_workers:
        return None
    mapping = pool_map(store)
    primaries = [mapping.place(name).primary for name in names]
    return preferred_workers(primaries, osd_hosts(store), host_workers)


def _remember(workers: dict[str, list[str]], dask_scheduler: Any = None) -> None:
    """On the scheduler: add ``workers`` to what its BesideData plugin knows."""
    from .beside_data import PLUGIN_NAME, BesideData

    plugin = dask_scheduler.plugins.get(PLUGIN_NAME)
    if plugin is None:
        plugin = BesideData()
        dask_scheduler.add_plugin(plugin, name=PLUGIN_NAME)
    plugin.workers.update(workers)


def place_reads(store_url: str, names: Sequence[str], client: Client | None = None) -> bool:
    """When ``client`` (default: this process's Dask client, if any) has workers that declare
    storage hosts, tell its scheduler where ``names`` live, so that the tasks reading them run
    beside them. Never fails a read: True when placed."""
    if not store_url.startswith("rados:"):
        return False  # only Ceph has OSDs to be beside
    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):
            return False  # no distributed client: local schedulers have no placement
    try:
        beside = object_locality(client, store_url, names)
        if not beside:
            return False
        workers = {name: w for name, w in zip(names, beside, strict=True) if w}
        client.run_on_scheduler(_remember, workers)
        return True
    except Exception as exc:  # placement only speeds things up
        logging.getLogger(__name__).warning("reads not placed beside their OSDs: %s", exc)
        return False
