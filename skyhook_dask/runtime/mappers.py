"""Mappers: how the pipelines (ingest, queries) run their tasks -- here or on Dask workers.

A mapper is called as ``mapper(func, arguments, store_url=..., label=..., progress=...)`` and
returns
``[func(*args) for args in arguments]`` in order, or raises the first task's error (in
argument order) once every task has finished. :class:`InProcess` runs the tasks on a thread
pool of this process; :class:`OnDask` runs one task per argument tuple on the workers of a Dask
client (the scheduler as driver), with the worker plugin holding ``store_url``'s connection
and the driver's ``skyhook.*`` settings travelling with every task (a worker does not see the
driver's Dask config). Pipelines are written once against this call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import dask.config
from dask.base import tokenize

from .. import config
from .plugin import register_store_plugin, with_store

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["InProcess", "Mapper", "OnDask", "run_task"]

R = TypeVar("R")
LOCAL_SCHEMES = ("file:", "memory:")  # stores whose object class runs in the calling process
Task = Callable[..., Any]


class Mapper:
    """Runs ``func(*args)`` for every argument tuple; subclasses say where (:meth:`run`)."""

    in_process: ClassVar[bool] = True  # tasks run here, so they may show their own progress

    def __call__(
        self,
        func: Callable[..., R],
        arguments: Sequence[tuple[Any, ...]],
        *,
        store_url: str,
        label: str,
        progress: bool = False,
    ) -> list[R]:
        """Results in argument order; ``store_url`` is the store the tasks use, ``label``
        names them, ``progress`` asks for a progress bar where the mapper has one."""
        if not arguments:
            return []
        return self.run(func, list(arguments), store_url, label, progress)

    def run(self, func: Task, calls: list[Any], store_url: str, label: str, bar: bool) -> list:
        raise NotImplementedError


class InProcess(Mapper):
    """Tasks on a thread pool of this process (``threads``: default ``skyhook.max-in-flight``,
    at most one per core when the store runs its object class in this process; 1 runs them
    one after the other in this thread)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def run(self, func: Task, calls: list[Any], store_url: str, label: str, bar: bool) -> list:
        threads = self.threads or int(config.get("max-in-flight"))
        if self.threads is None and store_url.startswith(LOCAL_SCHEMES):
            # The calls are this process's own CPU work: threads beyond the cores only
            # contend for the GIL (1,000 small calls: 0.87 ms each on 2 threads, 1.67 on 16).
            threads = min(threads, os.cpu_count() or 1)
        threads = max(1, min(threads, len(calls)))
        if threads == 1:
            return [func(*args) for args in calls]
        with ThreadPoolExecutor(threads, thread_name_prefix=f"skyhook-{label}") as pool:
            return list(pool.map(lambda args: func(*args), calls))


def run_task(settings: dict[str, Any], store_url: str, func: Callable[..., R], *args: Any) -> R:
    """``func(*args)`` as a task: with the driver's ``skyhook.*`` ``settings``, and the worker's
    connection to ``store_url`` (reconnected once if the storage went away) serving every
    ``open_store(store_url)`` it makes (outside a worker: a connection of this process)."""
    with dask.config.set({"skyhook": settings}):
        return with_store(store_url, lambda _store: func(*args))


class OnDask(Mapper):
    """One task per argument tuple on the workers of ``client``, named ``(label-token, n)``."""

    in_process = False

    def __init__(self, client: Client) -> None:
        self.client = client

    def run(self, func: Task, calls: list[Any], store_url: str, label: str, bar: bool) -> list:
        from distributed import wait

        register_store_plugin(self.client, store_url)
        settings = dict(dask.config.get("skyhook"))
        prefix = f"{label}-{tokenize(store_url, func, calls, settings)}"
        futures: list[Future] = []
        try:
            futures = [
                self.client.submit(run_task, settings, store_url, func, *args, key=(prefix, n))
                for n, args in enumerate(calls)
            ]
            if bar:
                from distributed import progress as show

                show(futures)
            wait(futures)
            for future in futures:
                if future.status == "error":
                    future.result()  # raises the task's own exception
            return list(self.client.gather(futures))
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.cancel([f for f in futures if f.status == "pending"])
            raise
