"""Where cases run: local processes (default), in-process (serial), or a Dask distributed cluster.

Every executor has one operation, :meth:`Executor.map_unordered`, yielding ``(item, result)`` pairs in
completion order. The parent process alone writes results, so workers need no shared filesystem.
A task that raises (or whose worker dies) yields the exception as its result; the runner turns it
into an ``error`` row and the sweep goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, Protocol

from serveplan.errors import InputError

EXECUTORS = ("local", "serial", "dask")


class Executor(Protocol):
    """Runs a function over items, yielding results as they finish."""

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield ``(item, fn(item))`` (or ``(item, exception)``) in completion order."""
        ...

    def close(self, wait: bool = True) -> None:
        """Release workers (``wait=False``: do not wait for running work, e.g. after an interrupt)."""
        ...


class SerialExecutor:
    """Runs every item in this process, one after the other (for debugging and tiny runs)."""

    workers = 1

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        """Yield results in input order."""
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:
                yield item, exc

    def close(self, wait: bool = True) -> None:
        """Nothing to release."""


def _quiet_worker() -> None:
    """Discard a worker's standard output.

    Native solver libraries print progress there (e.g. HiGHS's MIP sub-solver), which would garble the
    parent's progress bar; results travel back as return values.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


class LocalExecutor:
    """A pool of ``workers`` fresh Python processes (``spawn``), one case at a time each.

    Parameters
    ----------
    workers : int, optional
        Number of processes; default: every core (:func:`os.cpu_count`).
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        """Submit every item, yield as they complete."""
        if not items:
            return
        if self._pool is None:
            # spawn, not fork: solver libraries and tqdm's monitor thread do not survive a fork safely.
            self._pool = ProcessPoolExecutor(
                max_workers=min(self.workers, len(items)), mp_context=mp.get_context("spawn"), initializer=_quiet_worker
            )
        futures: dict[Future, Any] = {self._pool.submit(fn, item): item for item in items}
        try:
            for fut in as_completed(futures):
                item = futures.pop(fut)
                exc = fut.exception()
                yield item, (exc if exc is not None else fut.result())
        finally:
            for fut in futures:
                fut.cancel()

    def close(self, wait: bool = True) -> None:
        """Shut the pool down (cancelling queued work)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """Cases as Dask futures: on a running scheduler, or on a local cluster started here.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``). Its workers must have serveplan (and any
        config plugins) installed. Without it, a :class:`distributed.LocalCluster` of ``workers``
        single-threaded processes is started on 127.0.0.1.
    workers : int, optional
        Workers of the local cluster; default every core.
    processes : bool, default True
        Local cluster workers as processes (False: threads in this process).
    """

    def __init__(self, scheduler: str | None = None, workers: int | None = None, *, processes: bool = True) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError(
                "the dask executor needs dask[distributed]", field="--executor", hint="pip install 'serveplan[dask]'"
            ) from None
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            n = max(1, workers or os.cpu_count() or 1)
            self.cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=processes,
                protocol="tcp://",
                host="127.0.0.1",
                dashboard_address=None,
            )
            self.client = Client(self.cluster)
        self.workers = len(self.client.scheduler_info().get("workers", {})) or (workers or 1)

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[tuple[Any, Any]]:
        """Submit every item as a future, yield as they complete."""
        from distributed import as_completed as dask_as_completed

        if not items:
            return
        futures = {self.client.submit(fn, item, pure=False): item for item in items}
        try:
            for fut in dask_as_completed(list(futures)):
                item = futures.pop(fut)
                if fut.status == "error":
                    yield item, fut.exception()
                else:
                    yield item, fut.result()
        finally:
            for fut in futures:
                fut.cancel()

    def close(self, wait: bool = True) -> None:
        """Close the client (and the local cluster, if started here)."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def make_executor(
    name: str = "local", *, workers: int | None = None, scheduler: str | None = None, processes: bool = True
) -> Executor:
    """The executor called ``name`` (``local``, ``serial`` or ``dask``)."""
    if name == "local":
        return LocalExecutor(workers)
    if name == "serial":
        return SerialExecutor()
    if name == "dask":
        return DaskExecutor(scheduler, workers, processes=processes)
    raise InputError("unknown executor", field="--executor", value=name, hint=f"choose one of {', '.join(EXECUTORS)}")
