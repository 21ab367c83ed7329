"""Jobs on a Dask distributed cluster: the one engine under ``make regress`` and the sweeps of ``analysis/``.

* :func:`get_client`: a :class:`distributed.Client` for ``scheduler`` (``tcp://HOST:PORT``), else
  for ``$MGRADE_SCHEDULER``, else for a :class:`distributed.LocalCluster` of ``workers`` processes
  (one thread each) on this machine, started on first use and kept for the life of the process
  (a notebook that runs five sweeps starts its workers once).
* :func:`run_jobs`: run ``fn(job)`` for every job, in parallel on that client, and return the results
  in job order. A job with a content key whose result is already in the :class:`analysis.cache.Cache`
  is not run again (resumable: an interrupted run picks up where it stopped), identical keys run once,
  each fresh result is stored the moment it arrives, a progress bar counts the jobs' weights (clips,
  sequences, tasks) as they finish. A job whose worker process dies (crash, out of memory, a lost
  machine) is run again on another worker by the scheduler, up to ``distributed.scheduler.allowed-failures``
  times (Dask's default: 3); ``retries`` re-runs a job that raised.

With an existing cluster, every worker must import this repository's packages at the same version
(install the project into the workers' environment, e.g. the same ``.venv`` on a shared file
system) and see the same data roots; the results cache lives with the client (this process).
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import Any, Callable, Sequence

from .cache import Cache

__all__ = ["SCHEDULER_ENV", "scheduler_address", "n_workers", "get_client", "client_workers", "close_local",
           "run_jobs"]

#: The environment variable that names an existing Dask scheduler (``tcp://HOST:PORT``).
SCHEDULER_ENV = "MGRADE_SCHEDULER"


def n_workers() -> int:
    """The cores this process may use (the default number of local workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def scheduler_address(scheduler: str | None = None) -> str | None:
    """``scheduler`` if given, else ``$MGRADE_SCHEDULER`` if set and not empty, else None (a local cluster)."""
    return scheduler or os.environ.get(SCHEDULER_ENV) or None


_LOCK = threading.Lock()
_CLIENTS: dict[Any, Any] = {}       # ("remote", address) or ("local", workers) -> Client


def get_client(scheduler: str | None = None, workers: int | None = None):
    """The client of this process for ``scheduler`` (see :func:`scheduler_address`) or for a local
    cluster of ``workers`` processes (default: every core). Clients are kept and reused."""
    from distributed import Client, LocalCluster

    address = scheduler_address(scheduler)
    n = max(1, int(workers)) if workers else n_workers()
    key = ("remote", address) if address else ("local", n)
    with _LOCK:
        c = _CLIENTS.get(key)
        if c is not None and c.status == "running":
            return c
        if address:
            c = Client(address, set_as_default=False)
        else:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
            c = Client(cluster, set_as_default=False)
        _CLIENTS[key] = c
        return c


def client_workers(client) -> int:
    """Threads of the cluster behind ``client`` (its parallelism; 1 if it has no worker yet)."""
    return max(1, sum(client.nthreads().values()))


def close_local() -> None:
    """Close every client of this process, and the local clusters it started."""
    with _LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for c in clients:
        cluster = c.cluster
        try:
            c.close()
            if cluster is not None:
                cluster.close()
        except Exception:  # noqa: BLE001 - closing at exit: nothing left to report to
            pass


atexit.register(close_local)


def run_jobs(fn: Callable, jobs: Sequence, *, keys: Sequence[str | None] | None = None, cache: Cache | None = None,
             reuse: bool = True,
             encode: Callable[[Any], dict] = lambda r: r, decode: Callable[[dict], Any] = lambda d: d,
             weights: Sequence[int] | None = None, extra: tuple = (), client=None, scheduler: str | None = None,
             workers: int | None = None, retries: int = 0, on_error: Callable[[Any, BaseException], Any] | None = None,
             report: Callable[[Any, Any, bool], str | None] | None = None, progress: bool = True,
             desc: str = "jobs", unit: str = "jobs", bar=None) -> list:
    """``[fn(job, *extra) for job in jobs]``, computed on a Dask cluster.

    keys:     a content key per job (:func:`analysis.cache.key_of`), None for a job that is not stored;
              a stored result is decoded instead of run, identical keys run once.
    cache:    where results are stored (``encode(result)``: a JSON-able dict; ``decode`` reverses it).
    reuse:    False: run every job, stored or not (and store the new results).
    weights:  what each job adds to the progress bar when it is done (e.g. its clips; default 1).
    extra:    further arguments of every call (e.g. a Dask future of data scattered once to every worker).
    client:   the Dask client (default :func:`get_client` ``(scheduler, workers)``).
    retries:  re-runs of a job that raised (a lost worker's job is re-run by the scheduler anyway).
    on_error: ``on_error(job, exception)`` gives the result of a job that failed (not stored); without
              it the first failure is raised.
    report:   ``report(job, result, cached)`` gives a line to print (stdout, above the bar) per job.
    bar:      a tqdm bar of the caller's to advance (else one of ``desc``, ``unit``, shown if ``progress``).
    """
    from tqdm import tqdm

    jobs = list(jobs)
    keys = [None] * len(jobs) if keys is None else list(keys)
    weights = [1] * len(jobs) if weights is None else [int(w) for w in weights]
    if not len(keys) == len(weights) == len(jobs):
        raise ValueError("run_jobs: keys and weights need one entry per job")
    cache = cache if cache is not None else Cache(False)
    results: list = [None] * len(jobs)
    done = [False] * len(jobs)
    todo: dict[Any, list[int]] = {}             # key (or the job's index) -> indices of the jobs it gives
    hits: dict[int, Any] = {}
    for i, k in enumerate(keys):                # stored results first: the bar starts at them
        if k is not None:
            hit = cache.get(k) if reuse and k not in todo else None
            if hit is not None:
                hits[i] = decode(hit)
                continue
        todo.setdefault(k if k is not None else ("job", i), []).append(i)
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=sum(weights), desc=desc, unit=unit, disable=not progress, file=sys.stderr,
                   mininterval=1.0, dynamic_ncols=False, ncols=100, initial=sum(weights[i] for i in hits))
    else:
        bar.update(sum(weights[i] for i in hits))

    def finish(i: int, r: Any, cached: bool) -> None:
        results[i], done[i] = r, True
        if not cached:
            bar.update(weights[i])
        line = report(jobs[i], r, cached) if report else None
        if line:
            bar.write(line, file=sys.stdout)
            sys.stdout.flush()

    try:
        for i, r in hits.items():
            finish(i, r, True)
        if todo:
            client = client if client is not None else get_client(scheduler, workers)
            from distributed import as_completed
            futures = {client.submit(fn, jobs[idx[0]], *extra, retries=retries, pure=False): k
                       for k, idx in todo.items()}
            try:
                for fut in as_completed(futures, loop=client.loop):
                    k = futures[fut]
                    try:
                        r = fut.result()
                    except Exception as e:  # noqa: BLE001 - a failed job is the caller's to judge
                        if on_error is None:
                            raise
                        for i in todo[k]:
                            finish(i, on_error(jobs[i], e), False)
                        continue
                    if not isinstance(k, tuple):
                        cache.put(k, encode(r))
                    for i in todo[k]:
                        finish(i, r, False)
                    fut.release()
            except BaseException:           # a failure, or Ctrl-C: the cluster stops the rest (what is done is stored)
                client.cancel(list(futures))
                raise
    finally:
        if own_bar:
            bar.close()
    assert all(done)
    return results
