"""``python -m testbenches.regress`` (``make regress``): long RTL-vs-model regressions.

Every stream test with many whole sequences (default: 100 GSC clips, 100 ListOps sequences,
20 of each other task; ``--n stream=N`` to change, ``--streams a,b`` to select), the sequences of
a stream split into chunks (``--chunk``; by default about 4 per worker, of at most 10 sequences),
each a cocotb run on the shared Verilator build, submitted to a Dask cluster (:mod:`analysis.cluster`): a local one of
``--jobs`` worker processes (default one per core), or an existing one named by ``--scheduler
tcp://HOST:PORT`` or ``$MGRADE_SCHEDULER``. Each finished chunk is stored under its content key
(stream, slice, bundle content, data source, the sources of ``spec/ sim/ rtl/ testbenches/ data/``)
in ``--store`` (default ``.cache/regress``): a re-run, or a run after an interruption, skips the
chunks already done (``--fresh`` runs them all again). A chunk whose worker dies is run again on
another worker. A progress bar counts the sequences. Prints per-stream and overall totals
(sequences, steps, clock cycles, wall time, bit-exact, RTL accuracy), writes ``results/regress.json``
and exits non-zero on any mismatch. ``--micro SPEC`` (``make regress MICRO=SPEC``): the RTL's
microarchitecture (:class:`rtl.microarch.Microarch` text, resolved against each stream's network;
default the fastest to simulate, :func:`testbenches.micro.fastest`; ``original`` the one-column-per-cycle
design); part of every chunk's key.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

import numpy as np

from analysis.cache import Cache, bundle_digest, key_of, tree_digest
from analysis.cluster import SCHEDULER_ENV, client_workers, get_client, n_workers, run_jobs, scheduler_address
from spec.bundle import BundleError

from .build import REPO
from .streams import STREAMS

#: Sequences per chunk at most (a chunk is the unit that is stored, retried and counted on the bar).
CHUNK_MAX = 10
#: Chunks per worker and stream at least, where the sequences allow (the bar moves, the load evens out).
CHUNKS_PER_WORKER = 4
#: The folders whose files a chunk's result depends on (code of the RTL, the model, the testbench, the data).
SOURCES = ("spec", "sim", "rtl", "testbenches", "data")

DEFAULT_N = {"gsc_stream": 100, "asc_stream": 100, "listops_stream": 100, "text_stream": 20, "image_stream": 20,
             "pathfinder_stream": 20, "retrieval_stream": 20}


class ChunkJob(NamedTuple):
    """One process's share of a stream: sequences ``offset .. offset + n - 1`` of a pool of ``pool``."""
    name: str
    offset: int
    n: int
    pool: int
    small: bool
    root: str | None
    bundle: str | None = None       # a user's bundle (--bundle) instead of the stream's shipped one
    micro: str | None = None        # the microarchitecture text (--micro; None: testbenches.micro.fastest)


@dataclasses.dataclass(kw_only=True)
class ChunkResult:
    """What one chunk's cocotb run gave (one entry of ``chunks`` in ``results/regress.json``)."""
    name: str
    seqs: int
    steps: int
    cycles: int
    wall: float
    bit_exact: bool
    mismatch: dict | None
    error: str | None = None    # the exception of a chunk that failed to run
    cached: bool = False        # read from the store of an earlier run (--store), not run now
    offset: int
    prints: list[str]           # content fingerprints of the sequences (not written to the JSON)
    correct: int                # RTL predictions equal to the labels
    bundle: str
    data: str
    t0: float
    t1: float
    micro: str = ""             # the microarchitecture the chunk ran at (rtl.microarch.Microarch)

    @classmethod
    def failed(cls, job: ChunkJob, error: BaseException) -> "ChunkResult":
        now = time.time()
        return cls(name=job.name, seqs=0, steps=0, cycles=0, wall=0.0, bit_exact=False, mismatch=None,
                   error=f"{type(error).__name__}: {error}", offset=job.offset, prints=[], correct=0,
                   bundle="?", data="?", t0=now, t1=now)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        del d["prints"]
        if self.error is None:
            del d["error"]
        if not self.cached:
            del d["cached"]
        return d

    def to_store(self) -> dict:
        """Everything, for the store of finished chunks (:meth:`from_store` reverses it)."""
        return dict(dataclasses.asdict(self), cached=False)

    @classmethod
    def from_store(cls, d: dict) -> "ChunkResult":
        fields = {f.name for f in dataclasses.fields(cls)} - {"cached"}
        return cls(**{k: v for k, v in d.items() if k in fields}, cached=True)

    def line(self) -> str:
        """The progress line printed when the chunk is done."""
        status = "ok" if self.bit_exact else f"MISMATCH {self.mismatch}"
        return (f"  {self.name:<18} seqs {self.offset}..{self.offset + self.seqs - 1}: {self.steps} steps, "
                f"{self.cycles} cycles, {self.wall:.1f} s, {status}" + (" (stored)" if self.cached else ""))


@dataclasses.dataclass
class StreamTotals:
    """The totals of one stream over its chunks."""
    name: str
    seqs: int
    steps: int
    cycles: int
    correct: int
    distinct: int               # distinct pool indices run
    identical: int              # sequences identical in content to another (duplicates in the data)
    failing_chunks: int
    span: float                 # seconds from the first chunk's start to the last one's end (chunks run now)
    bundle: str
    data: str
    stored: int = 0             # sequences read from the store of an earlier run, not run now
    micro: str = ""             # the microarchitecture of its chunks

    @classmethod
    def of(cls, name: str, chunks: list[ChunkResult]) -> "StreamTotals":
        seqs = sum(r.seqs for r in chunks)
        run = [r for r in chunks if not r.cached] or chunks
        return cls(name=name, seqs=seqs, steps=sum(r.steps for r in chunks), cycles=sum(r.cycles for r in chunks),
                   correct=sum(r.correct for r in chunks),
                   distinct=len({i for r in chunks for i in range(r.offset, r.offset + r.seqs)}),
                   identical=seqs - len({h for r in chunks for h in r.prints}),
                   failing_chunks=sum(not r.bit_exact for r in chunks),
                   span=max(1e-9, max(r.t1 for r in run) - min(r.t0 for r in run)),
                   bundle=chunks[0].bundle, data=chunks[0].data, stored=sum(r.seqs for r in chunks if r.cached),
                   micro=next((r.micro for r in chunks if r.micro), ""))

    @property
    def bit_exact(self) -> bool:
        """Every chunk bit-exact, and no sequence counted twice (overlapping chunks)."""
        return self.failing_chunks == 0 and self.distinct == self.seqs

    def lines(self, jobs: int) -> list[str]:
        dup = f", {self.identical} identical in content (duplicates in the data)" if self.identical else ""
        stored = f" ({self.stored} from stored chunks)" if self.stored else ""
        return [f"{self.name:<18} {self.seqs:>4} seqs ({self.distinct} distinct{dup}) {self.steps:>9} steps "
                f"{self.cycles:>11} cycles  bit-exact {'yes' if self.bit_exact else 'NO'} "
                f"({self.failing_chunks} failing chunks)  RTL accuracy vs labels {self.correct}/{self.seqs} = "
                f"{100 * self.correct / max(1, self.seqs):.1f} %  "
                f"{(self.seqs - self.stored) / self.span * 3600:.0f} sequences/hour on {jobs} processes{stored}",
                f"{'':<18} bundle: {self.bundle}; data: {self.data}"
                + (f"; microarchitecture {self.micro}" if self.micro else "")]


@dataclasses.dataclass
class Totals:
    """The totals of the whole regression."""
    seqs: int
    steps: int
    cycles: int
    wall: float
    bit_exact: bool

    @classmethod
    def of(cls, streams: list[StreamTotals], wall: float) -> "Totals":
        return cls(seqs=sum(s.seqs for s in streams), steps=sum(s.steps for s in streams),
                   cycles=sum(s.cycles for s in streams), wall=wall, bit_exact=all(s.bit_exact for s in streams))

    def line(self, jobs: int) -> str:
        return (f"{'total':<18} {self.seqs:>4} seqs {self.steps:>9} steps {self.cycles:>11} cycles  "
                f"{self.wall:.0f} s wall on {jobs} processes ({self.cycles / self.wall:.0f} cycles/s, "
                f"{self.steps / self.wall:.0f} steps/s)  bit-exact {'yes' if self.bit_exact else 'NO'}")


def _chunk(job: ChunkJob) -> ChunkResult:
    """Run one chunk in this process (a worker of the pool)."""
    from .build import ensure_path
    from .cosim import run_cocotb
    from .micro import resolve
    from .streams import make_case
    ensure_path()
    t0 = time.time()
    case = make_case(job.name, n_seqs=job.n, small=job.small, root=job.root, offset=job.offset, pool=job.pool,
                     bundle_path=job.bundle)
    micro = resolve(job.micro, case.bundle.arch)
    r = run_cocotb(case.bundle, case.xs, micro=micro, log=lambda *a: None)
    preds = [int(np.argmax(logits)) for logits in r.logits]
    # content fingerprints: duplicates inside the data itself (the chunks' slices of the pool are disjoint)
    prints = [hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest() for x in case.xs]
    return ChunkResult(name=job.name, seqs=len(case.xs), steps=r.steps, cycles=r.cycles, wall=r.wall,
                       bit_exact=r.bit_exact, mismatch=r.mismatch, offset=job.offset, prints=prints,
                       correct=int(sum(p == int(y) for p, y in zip(preds, case.labels, strict=True))),
                       bundle=case.bundle_source, data=case.data_source, t0=t0, t1=time.time(), micro=str(micro))


def _parse(argv) -> tuple[argparse.Namespace, dict[str, int], list[str]]:
    """The options, the sequences asked per stream (exits 2 on a bad ``--n``) and the selected
    stream names (unchecked)."""
    ap = argparse.ArgumentParser(prog="python -m testbenches.regress", description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default=None, help="comma-separated stream names (default: all)")
    ap.add_argument("--n", action="append", default=[], help="stream=N sequences (repeatable)")
    ap.add_argument("--jobs", type=int, default=n_workers(),
                    help="worker processes of the local Dask cluster (default: one per core)")
    ap.add_argument("--scheduler", default=None,
                    help=f"address of a running Dask scheduler, tcp://HOST:PORT (default: ${SCHEDULER_ENV}, "
                         "else a local cluster of --jobs workers)")
    ap.add_argument("--chunk", type=int, default=None,
                    help=f"sequences per chunk (default: a quarter of an even share per worker, at most {CHUNK_MAX})")
    ap.add_argument("--store", default=str(REPO / ".cache" / "regress"),
                    help="folder of finished chunks by content key (a re-run skips them)")
    ap.add_argument("--fresh", action="store_true", help="run every chunk again (still storing the results)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--small", action="store_true", help="small random architectures (H=8)")
    ap.add_argument("--root", default=None, help="data root (default: shared archive, else fixture)")
    ap.add_argument("--json", default=str(REPO / "results" / "regress.json"), help="per-chunk results file")
    ap.add_argument("--bundle", default=None,
                    help="run this weight bundle (.npz) instead of the shipped ones; name its stream(s) with --streams")
    ap.add_argument("--micro", default=None,
                    help="RTL microarchitecture, e.g. simd=8 or proj=8,mix=8 (rtl.microarch.Microarch); 'original' "
                         "the one-column-per-cycle design; default: the fastest to simulate (testbenches.micro)")
    args = ap.parse_args(argv)
    if args.bundle and args.streams is None:
        ap.error("--bundle needs --streams: name the stream(s) of the bundle's task, e.g. --streams gsc_stream")
    if args.jobs < 1 or (args.chunk is not None and args.chunk < 1):
        ap.error("--jobs and --chunk need at least 1")
    counts = {name: DEFAULT_N.get(name, 10) for name in STREAMS}
    for spec in args.n:
        k, _, v = spec.partition("=")
        if k not in STREAMS or not v.isdigit() or int(v) < 1:
            ap.error(f"--n {spec!r}: expected STREAM=N with N >= 1 and STREAM one of {', '.join(STREAMS)}")
        counts[k] = int(v)
    return args, counts, [s for s in (args.streams or ",".join(STREAMS)).split(",") if s]


def _prepare(names: list[str], counts: dict[str, int], args) -> dict[str, dict]:
    """Build every design first (once, before the workers start); cut a stream's count to its pool.
    Returns, per stream, what its chunks' results depend on besides their slice (the key parts)."""
    from .build import ensure_path
    from .cosim import build_stream
    from .micro import resolve
    from .streams import make_case
    ensure_path()
    parts = {}
    for name in names:
        n = counts[name]
        case = make_case(name, n_seqs=1, small=args.small, root=args.root, pool=n, bundle_path=args.bundle)
        if case.pool_size < n:    # e.g. the committed fixture of a task whose archive is not here
            print(f"{name}: {case.data_source} holds {case.pool_size} sequences, not {n}: running {case.pool_size}",
                  flush=True)
            counts[name] = case.pool_size
        micro = resolve(args.micro, case.bundle.arch)      # MicroarchError (a ValueError): exit 2
        print(f"{name}: microarchitecture {micro} (rtl.top.cycles_per_step {_cycles(case.bundle.arch, micro)})",
              flush=True)
        build_stream(case.bundle.arch, case.bundle.formats, micro=micro)
        parts[name] = {"bundle": bundle_digest(case.bundle), "data": case.data_source, "micro": str(micro)}
    return parts


def _split(names: list[str], counts: dict[str, int], args, workers: int) -> list[ChunkJob]:
    """Each stream in chunks of ``--chunk`` sequences, by default a quarter of an even share per
    worker (:data:`CHUNKS_PER_WORKER`), at most :data:`CHUNK_MAX` (a lost or interrupted chunk costs
    little; the bar moves; one chunk's start-up, about 5 s with the shipped GSC bundle, is small
    against its clips, about 30 s each)."""
    jobs = []
    for name in names:
        n = counts[name]
        per = args.chunk or min(CHUNK_MAX, max(1, -(-n // (CHUNKS_PER_WORKER * workers))))
        jobs += [ChunkJob(name, off, min(per, n - off), n, args.small, args.root, args.bundle, args.micro)
                 for off in range(0, n, per)]
    return jobs


def _cycles(arch, micro) -> int:
    from rtl.top import cycles_per_step
    return cycles_per_step(arch, micro)


def _versions() -> dict:
    out = {}
    for pkg in ("cocotb", "verilator", "amaranth", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _qualname(fn) -> str:
    fn = getattr(fn, "func", fn)                # a functools.partial: its function
    return f"{fn.__module__}.{fn.__qualname__}"


def chunk_key(job: ChunkJob, parts: dict, code: str, versions: dict, runner: str = "testbenches.regress._chunk") -> str:
    """The content key of a chunk's result: the stream and slice, the bundle's content, the data
    source, the microarchitecture, the sources that compute it (:data:`SOURCES`), the simulator's
    versions and the function that runs a chunk (a stand-in of a test never shares results with the
    real one)."""
    return key_of(kind="regress-chunk", name=job.name, offset=job.offset, n=job.n, pool=job.pool, small=job.small,
                  bundle=parts["bundle"], data=parts["data"], micro=parts.get("micro"), code=code,
                  versions=versions, runner=runner)


def _failed(job: ChunkJob, error: BaseException) -> ChunkResult:
    r = ChunkResult.failed(job, error)
    print(f"  {job.name:<18} seqs {job.offset}..{job.offset + job.n - 1}: FAILED {r.error}", flush=True)
    return r


def _run(jobs: list[ChunkJob], keys: list[str], store: Cache, client, *, reuse: bool = True, progress: bool = True,
         chunk=None) -> list[ChunkResult]:
    """Run the chunks on ``client``'s cluster (the stored ones are read instead), printing each as it
    is done; a failed chunk is a failed regression, the others still count. ``chunk``: the function
    that runs one chunk in a worker (default :func:`_chunk`)."""
    return run_jobs(chunk or _chunk, jobs, keys=keys, cache=store, reuse=reuse, encode=ChunkResult.to_store,
                    decode=ChunkResult.from_store, weights=[j.n for j in jobs], client=client, on_error=_failed,
                    report=lambda j, r, cached: r.line() if r.error is None else None, progress=progress,
                    desc="regress", unit="seq")


def _write_json(path: Path, argv, jobs: int, totals: Totals, results: list[ChunkResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": " ".join(["python -m testbenches.regress", *(argv or sys.argv[1:])]),
                                "jobs": jobs, "wall_s": totals.wall, "bit_exact": totals.bit_exact,
                                "chunks": [r.to_json() for r in results]}, indent=1, default=str))


def main(argv=None, *, chunk=None) -> int:
    """The command line. ``chunk``: the function that runs one chunk in a worker (default :func:`_chunk`)."""
    args, counts, names = _parse(argv)
    bad = [s for s in names if s not in STREAMS]
    if bad:
        print(f"unknown stream(s) {bad}; valid: {list(STREAMS)}", file=sys.stderr)
        return 2
    try:
        parts = _prepare(names, counts, args)
    except (BundleError, ValueError) as e:      # a bundle that does not load or does not fit
        print(f"regress: {e}", file=sys.stderr)
        return 2
    client = get_client(args.scheduler, args.jobs)
    workers = client_workers(client)
    where = scheduler_address(args.scheduler) or "a local Dask cluster"
    jobs = _split(names, counts, args, workers)
    code, versions = tree_digest(*SOURCES), _versions()
    chunk = chunk or _chunk
    keys = [chunk_key(j, parts[j.name], code, versions, _qualname(chunk)) for j in jobs]
    store = Cache(args.store)
    print(f"{sum(j.n for j in jobs)} sequences in {len(jobs)} chunks on {where} ({workers} workers); "
          f"finished chunks stored in {store.root}", flush=True)
    t0 = time.time()
    try:
        results = _run(jobs, keys, store, client, reuse=not args.fresh, progress=not args.no_progress, chunk=chunk)
    except KeyboardInterrupt:
        print(f"interrupted: the finished chunks are stored in {store.root}; the same command runs only the rest",
              file=sys.stderr)
        return 130
    workers = max(workers, client_workers(client))     # a batch-queue cluster's workers arrive while it runs
    print("---- regression totals ----")
    streams = [StreamTotals.of(name, [r for r in results if r.name == name]) for name in names]
    for s in streams:
        print("\n".join(s.lines(workers)))
    totals = Totals.of(streams, time.time() - t0)
    print(totals.line(workers))
    out = Path(args.json)
    _write_json(out, argv, workers, totals, results)
    print(f"per-chunk results: {out}")
    return 0 if totals.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
