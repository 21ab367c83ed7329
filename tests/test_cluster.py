"""analysis.cluster and ``make regress`` on Dask: a local 2-worker cluster, an existing cluster by
address, results stored by content key (a re-run skips them), a worker that dies mid-job (its job is
run again elsewhere and the totals come out as without the failure), a progress bar counting clips."""
from __future__ import annotations

import functools
import json
import os
import threading
import time
from pathlib import Path

import pytest

from analysis.cache import Cache, key_of
from analysis.cluster import SCHEDULER_ENV, client_workers, get_client, run_jobs, scheduler_address


def _square(x: int, log_dir: str) -> dict:
    """A job that leaves a file per run (so the test can count runs)."""
    Path(log_dir, f"{x}-{os.getpid()}-{time.monotonic_ns()}").touch()
    return {"x": x, "y": x * x, "pid": os.getpid()}


def _die_once(x: int, log_dir: str, flag_dir: str) -> dict:
    """Job 3 kills its worker process the first time it runs (the flag file says it did)."""
    flag = Path(flag_dir, f"died-{x}")
    if x == 3 and not flag.exists():
        flag.touch()
        os._exit(17)
    return _square(x, log_dir)


def _runs(log_dir: Path) -> list[int]:
    return sorted(int(p.name.split("-")[0]) for p in log_dir.iterdir())


@pytest.fixture(scope="module")
def client():
    return get_client(workers=2)


def test_scheduler_address_from_option_or_env(monkeypatch):
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert scheduler_address() is None
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://10.0.0.1:8786")
    assert scheduler_address() == "tcp://10.0.0.1:8786"
    assert scheduler_address("tcp://127.0.0.1:1") == "tcp://127.0.0.1:1"
    monkeypatch.setenv(SCHEDULER_ENV, "")
    assert scheduler_address() is None


def test_two_local_workers_store_and_resume(client, tmp_path):
    assert client_workers(client) == 2 and len(client.scheduler_info()["workers"]) == 2
    log, store = tmp_path / "log", tmp_path / "store"
    log.mkdir()
    xs = [1, 2, 3, 2, 4]                                    # 2 twice: one run
    keys = [key_of(kind="square", x=x) for x in xs]
    r1 = run_jobs(_square, xs, keys=keys, cache=Cache(store), extra=(str(log),), client=client, progress=False)
    assert [r["y"] for r in r1] == [1, 4, 9, 4, 16] and _runs(log) == [1, 2, 3, 4]
    # a re-run reads everything from the store: nothing runs; a new job runs alone
    c = Cache(store)
    r2 = run_jobs(_square, [*xs, 5], keys=[*keys, key_of(kind="square", x=5)], cache=c, extra=(str(log),),
                  client=client, progress=False)
    assert [r["y"] for r in r2] == [1, 4, 9, 4, 16, 25] and _runs(log) == [1, 2, 3, 4, 5]
    assert c.hits == 5 and c.misses == 1
    # reuse=False runs them again
    run_jobs(_square, [1], keys=keys[:1], cache=Cache(store), reuse=False, extra=(str(log),), client=client,
             progress=False)
    assert _runs(log) == [1, 1, 2, 3, 4, 5]


def test_a_dead_worker_s_job_runs_again(client, tmp_path):
    log, flags = tmp_path / "log", tmp_path / "flags"
    log.mkdir()
    flags.mkdir()
    xs = list(range(6))
    r = run_jobs(_die_once, xs, extra=(str(log), str(flags)), client=client, progress=False)
    assert (flags / "died-3").exists()                     # the worker did die
    # every job done; a result the dead worker held and had not handed over yet is computed again
    assert [d["y"] for d in r] == [x * x for x in xs] and sorted(set(_runs(log))) == xs
    # the cluster is whole again (the nanny restarted the worker)
    deadline = time.time() + 30
    while client_workers(client) < 2 and time.time() < deadline:
        time.sleep(0.2)
    assert client_workers(client) == 2


def test_a_failing_job_goes_to_on_error_or_raises(client):
    with pytest.raises(ZeroDivisionError):
        run_jobs(functools.partial(divmod, 1), [1, 0], client=client, progress=False)
    r = run_jobs(functools.partial(divmod, 1), [1, 0], client=client, progress=False,
                 on_error=lambda j, e: type(e).__name__)
    assert r == [(1, 0), "ZeroDivisionError"]


def test_existing_cluster_by_env(monkeypatch):
    from distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        monkeypatch.setenv(SCHEDULER_ENV, cluster.scheduler_address)
        c = get_client()
        assert c.scheduler.address == cluster.scheduler_address and client_workers(c) == 1
        assert run_jobs(abs, [-1, -2], progress=False) == [1, 2]
        # the sweeps' engine goes there too (the data scattered to the cluster), with inline's results
        import numpy as np

        from analysis.data import EvalData
        from analysis.sweeps import SWEEPS, Task, run_tasks
        from spec import Arch, random_bundle
        b = random_bundle(Arch(d_in=1, n_classes=4, hidden=8, layers=1, taps=2, d_max=3), seed=3, scale=0.5)
        rng = np.random.default_rng(1)
        d = EvalData(rng.integers(-30000, 30000, size=(6, 24, 1)).astype(np.int16), rng.integers(0, 4, 6),
                     np.full(6, 24), "synthetic", list("abcd"), "test")
        tasks = [Task(b), Task(b, SWEEPS["thermal"].noise(1e-16), 1)]
        there = run_tasks(tasks, d, batch=3, cache=Cache(False), progress=False)
        monkeypatch.delenv(SCHEDULER_ENV)
        here = run_tasks(tasks, d, batch=3, cache=Cache(False), workers=1, progress=False)
        assert [r["predictions"] for r in there] == [r["predictions"] for r in here]
        assert "work_on" in cluster.scheduler.task_prefixes            # the cluster ran them
        c.close()


# ---------------------------------------------------------------------------------------------
# make regress: real cocotb chunks of the small ListOps network (4 fixture sequences)
# ---------------------------------------------------------------------------------------------
REGRESS = ["--small", "--root", "fixture", "--streams", "listops_stream", "--n", "listops_stream=4",
           "--jobs", "2", "--chunk", "1"]


def _dying_chunk(flag_dir: str, job):
    """The real chunk; the chunk of sequence 1 kills its worker 0.5 s into its first run."""
    from testbenches.regress import _chunk
    flag = Path(flag_dir, f"died-{job.offset}")
    if job.offset == 1 and not flag.exists():
        flag.touch()
        threading.Timer(0.5, os._exit, (17,)).start()
    return _chunk(job)


def _totals(path: Path) -> dict:
    d = json.loads(path.read_text())
    chunks = sorted(d["chunks"], key=lambda c: c["offset"])
    return {"bit_exact": d["bit_exact"], "jobs": d["jobs"],
            "chunks": [{k: c[k] for k in ("offset", "seqs", "steps", "cycles", "correct", "bit_exact")}
                       for c in chunks]}


@pytest.mark.rtl
@pytest.mark.xdist_group("rtl_listops_stream")
def test_regress_on_two_workers_resumes_and_survives_a_dead_worker(tmp_path, capfd):
    from testbenches import regress
    from testbenches.streams import make_case

    store = tmp_path / "store"
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    assert regress.main([*REGRESS, "--store", str(store), "--json", str(a)]) == 0
    out, err = capfd.readouterr()
    assert "4 sequences in 4 chunks on a local Dask cluster (2 workers)" in out
    assert "4 seqs (4 distinct)" in out and "bit-exact yes" in out
    assert "4/4" in err                                     # the progress bar counted the sequences
    want = _totals(a)
    case = make_case("listops_stream", n_seqs=4, small=True, root="fixture")
    assert sum(ch["steps"] for ch in want["chunks"]) == sum(len(x) for x in case.xs)
    assert want["bit_exact"] and want["jobs"] == 2 and [ch["seqs"] for ch in want["chunks"]] == [1, 1, 1, 1]

    # a re-run: every chunk from the store, same totals
    assert regress.main([*REGRESS, "--store", str(store), "--json", str(b)]) == 0
    out, _ = capfd.readouterr()
    assert out.count("(stored)") == 4 and "(4 from stored chunks)" in out
    assert _totals(b) == want and all(ch["cached"] for ch in json.loads(b.read_text())["chunks"])

    # a worker dies in the middle of a chunk: that chunk runs again elsewhere, the totals are the same
    flags = tmp_path / "flags"
    flags.mkdir()
    assert regress.main([*REGRESS, "--store", str(tmp_path / "store2"), "--json", str(c)],
                        chunk=functools.partial(_dying_chunk, str(flags))) == 0
    assert (flags / "died-1").exists()
    assert _totals(c) == want
    assert not any("cached" in ch for ch in json.loads(c.read_text())["chunks"])
