"""Dask worker preload: ``dask worker --preload skyhook_dask.k8s.preload`` with ``$SKYHOOK_STORE``.

The worker installs the store plugin (:class:`skyhook_dask.runtime.plugin.StorePlugin`) for that URL
while it starts, so its connection is open before the first task arrives and tasks submitted by
any client reuse it. A client that registers the plugin itself (the driver does) replaces this
one with a plugin holding every URL it registered; nothing else changes.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Worker

STORE_ENV = "SKYHOOK_STORE"
logger = logging.getLogger(__name__)


async def dask_setup(worker: Worker) -> None:
    """Called by the worker for ``--preload``: install the store plugin for ``$SKYHOOK_STORE``."""
    from ..runtime.plugin import PLUGIN_NAME, StorePlugin

    url = os.environ.get(STORE_ENV, "").strip()
    if not url:
        logger.warning("%s is not set: worker %s holds no store connection", STORE_ENV, worker.name)
        return
    # The plugin logs (and survives) a store that cannot be opened yet: the first task retries.
    await worker.plugin_add(StorePlugin([url]), name=PLUGIN_NAME)
