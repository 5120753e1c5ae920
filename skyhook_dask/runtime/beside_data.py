"""The scheduler plugin that places tasks reading Skyhook objects beside their primary OSD.

Runs on the Dask scheduler; :func:`skyhook_dask.runtime.locality.place_reads` tells it which
workers sit beside which objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

PLUGIN_NAME = "skyhook-beside-data"


class BesideData(SchedulerPlugin):
    """A scheduler plugin that places each new task reading Skyhook objects beside the first
    of them it knows a worker for. Dask fuses the reader's tasks with what follows them, so
    the task keys no longer name the objects; the objects are found in the task itself (its
    partitions' :class:`~skyhook_dask.dataframe.partitions.Part`, a histogram task's object
    name)."""

    name = PLUGIN_NAME

    def __init__(self) -> None:
        self.workers: dict[str, list[str]] = {}  # object name -> the workers beside it

    def update_graph(self, scheduler: Any, *, tasks: Sequence[Any] = (), **_: Any) -> None:
        if not self.workers:
            return
        for key in tasks:
            ts = scheduler.tasks.get(key)
            if ts is None or ts.worker_restrictions or ts.run_spec is None:
                continue
            for name in _object_names(ts.run_spec):
                workers = self.workers.get(name)
                if workers:
                    ts.worker_restrictions = set(workers)
                    ts.loose_restrictions = True
                    break


def _object_names(node: Any, depth: int = 0) -> Iterator[str]:
    """The names of the objects a task spec may read, outermost first: those of its Part
    arguments, and its string arguments (a histogram task's object name)."""
    if depth > 20:
        return
    if isinstance(node, str):
        yield node
        return
    objects = getattr(node, "objects", None)
    if isinstance(objects, tuple) and objects and isinstance(objects[0], tuple):
        yield from (entry[0] for entry in objects)
        return
    if isinstance(node, dict):
        children: Iterable[Any] = node.values()
    elif isinstance(node, list | tuple):
        children = node
    else:
        children = [*getattr(node, "args", ()), *getattr(node, "kwargs", {}).values()]
        value = getattr(node, "value", None)
        if value is not None and value is not node:
            children = [*children, value]
    for child in children:
        yield from _object_names(child, depth + 1)
