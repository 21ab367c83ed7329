"""``python -m testbenches.regress`` (``make regress``): long RTL-vs-model regressions.

Every stream test with many whole sequences (default: 100 GSC clips, 100 ListOps sequences,
20 of each other task; ``--n stream=N`` to change, ``--streams a,b`` to select), the sequences of
a stream split over parallel processes (``--jobs``, default one per core), each process a cocotb
run on the shared Verilator build. Prints per-stream and overall totals (sequences, steps, clock
cycles, wall time, bit-exact, RTL accuracy) and exits non-zero on any mismatch.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from spec.bundle import BundleError

from .build import REPO
from .streams import STREAMS

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
    offset: int
    prints: list[str]           # content fingerprints of the sequences (not written to the JSON)
    correct: int                # RTL predictions equal to the labels
    bundle: str
    data: str
    t0: float
    t1: float

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
        return d

    def line(self) -> str:
        """The progress line printed when the chunk is done."""
        status = "ok" if self.bit_exact else f"MISMATCH {self.mismatch}"
        return (f"  {self.name:<18} seqs {self.offset}..{self.offset + self.seqs - 1}: {self.steps} steps, "
                f"{self.cycles} cycles, {self.wall:.1f} s, {status}")


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
    span: float                 # seconds from the first chunk's start to the last one's end
    bundle: str
    data: str

    @classmethod
    def of(cls, name: str, chunks: list[ChunkResult]) -> "StreamTotals":
        seqs = sum(r.seqs for r in chunks)
        return cls(name=name, seqs=seqs, steps=sum(r.steps for r in chunks), cycles=sum(r.cycles for r in chunks),
                   correct=sum(r.correct for r in chunks),
                   distinct=len({i for r in chunks for i in range(r.offset, r.offset + r.seqs)}),
                   identical=seqs - len({h for r in chunks for h in r.prints}),
                   failing_chunks=sum(not r.bit_exact for r in chunks),
                   span=max(1e-9, max(r.t1 for r in chunks) - min(r.t0 for r in chunks)),
                   bundle=chunks[0].bundle, data=chunks[0].data)

    @property
    def bit_exact(self) -> bool:
        """Every chunk bit-exact, and no sequence counted twice (overlapping chunks)."""
        return self.failing_chunks == 0 and self.distinct == self.seqs

    def lines(self, jobs: int) -> list[str]:
        dup = f", {self.identical} identical in content (duplicates in the data)" if self.identical else ""
        return [f"{self.name:<18} {self.seqs:>4} seqs ({self.distinct} distinct{dup}) {self.steps:>9} steps "
                f"{self.cycles:>11} cycles  bit-exact {'yes' if self.bit_exact else 'NO'} "
                f"({self.failing_chunks} failing chunks)  RTL accuracy vs labels {self.correct}/{self.seqs} = "
                f"{100 * self.correct / max(1, self.seqs):.1f} %  "
                f"{self.seqs / self.span * 3600:.0f} sequences/hour on {jobs} processes",
                f"{'':<18} bundle: {self.bundle}; data: {self.data}"]


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
    from .streams import make_case
    ensure_path()
    t0 = time.time()
    case = make_case(job.name, n_seqs=job.n, small=job.small, root=job.root, offset=job.offset, pool=job.pool,
                     bundle_path=job.bundle)
    r = run_cocotb(case.bundle, case.xs, log=lambda *a: None)
    preds = [int(np.argmax(logits)) for logits in r.logits]
    # content fingerprints: duplicates inside the data itself (the chunks' slices of the pool are disjoint)
    prints = [hashlib.sha1(np.ascontiguousarray(x).tobytes()).hexdigest() for x in case.xs]
    return ChunkResult(name=job.name, seqs=len(case.xs), steps=r.steps, cycles=r.cycles, wall=r.wall,
                       bit_exact=r.bit_exact, mismatch=r.mismatch, offset=job.offset, prints=prints,
                       correct=int(sum(p == int(y) for p, y in zip(preds, case.labels, strict=True))),
                       bundle=case.bundle_source, data=case.data_source, t0=t0, t1=time.time())


def _parse(argv) -> tuple[argparse.Namespace, dict[str, int], list[str]]:
    """The options, the sequences asked per stream (exits 2 on a bad ``--n``) and the selected
    stream names (unchecked)."""
    ap = argparse.ArgumentParser(prog="python -m testbenches.regress", description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", default=None, help="comma-separated stream names (default: all)")
    ap.add_argument("--n", action="append", default=[], help="stream=N sequences (repeatable)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--small", action="store_true", help="small random architectures (H=8)")
    ap.add_argument("--root", default=None, help="data root (default: shared archive, else fixture)")
    ap.add_argument("--json", default=str(REPO / "results" / "regress.json"), help="per-chunk results file")
    ap.add_argument("--bundle", default=None,
                    help="run this weight bundle (.npz) instead of the shipped ones; name its stream(s) with --streams")
    args = ap.parse_args(argv)
    if args.bundle and args.streams is None:
        ap.error("--bundle needs --streams: name the stream(s) of the bundle's task, e.g. --streams gsc_stream")
    counts = {name: DEFAULT_N.get(name, 10) for name in STREAMS}
    for spec in args.n:
        k, _, v = spec.partition("=")
        if k not in STREAMS or not v.isdigit() or int(v) < 1:
            ap.error(f"--n {spec!r}: expected STREAM=N with N >= 1 and STREAM one of {', '.join(STREAMS)}")
        counts[k] = int(v)
    return args, counts, [s for s in (args.streams or ",".join(STREAMS)).split(",") if s]


def _prepare(names: list[str], counts: dict[str, int], args) -> None:
    """Build every design first (once, before the workers start); cut a stream's count to its pool."""
    from .build import ensure_path
    from .cosim import build_stream
    from .streams import make_case
    ensure_path()
    for name in names:
        n = counts[name]
        case = make_case(name, n_seqs=1, small=args.small, root=args.root, pool=n, bundle_path=args.bundle)
        if case.pool_size < n:    # e.g. the committed fixture of a task whose archive is not here
            print(f"{name}: {case.data_source} holds {case.pool_size} sequences, not {n}: running {case.pool_size}",
                  flush=True)
            counts[name] = case.pool_size
        build_stream(case.bundle.arch, case.bundle.formats)


def _split(names: list[str], counts: dict[str, int], args) -> list[ChunkJob]:
    """One chunk per process and stream: one build check, few start-ups."""
    jobs = []
    for name in names:
        n = counts[name]
        per = max(1, -(-n // args.jobs))
        jobs += [ChunkJob(name, off, min(per, n - off), n, args.small, args.root, args.bundle)
                 for off in range(0, n, per)]
    return jobs


def _run(jobs: list[ChunkJob], workers: int) -> list[ChunkResult]:
    """Run the chunks over ``workers`` processes, printing each as it is done; a failed chunk is a
    failed regression, the others still count."""
    results = []
    with ProcessPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(_chunk, j) for j in jobs]
        for j, fut in zip(jobs, futures, strict=True):
            try:
                r = fut.result()
            except Exception as e:  # noqa: BLE001
                r = ChunkResult.failed(j, e)
                print(f"  {j.name:<18} seqs {j.offset}..{j.offset + j.n - 1}: FAILED {r.error}", flush=True)
            else:
                print(r.line(), flush=True)
            results.append(r)
    return results


def _write_json(path: Path, argv, jobs: int, totals: Totals, results: list[ChunkResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": " ".join(["python -m testbenches.regress", *(argv or sys.argv[1:])]),
                                "jobs": jobs, "wall_s": totals.wall, "bit_exact": totals.bit_exact,
                                "chunks": [r.to_json() for r in results]}, indent=1, default=str))


def main(argv=None) -> int:
    args, counts, names = _parse(argv)
    bad = [s for s in names if s not in STREAMS]
    if bad:
        print(f"unknown stream(s) {bad}; valid: {list(STREAMS)}", file=sys.stderr)
        return 2
    try:
        _prepare(names, counts, args)
    except (BundleError, ValueError) as e:      # a bundle that does not load or does not fit
        print(f"regress: {e}", file=sys.stderr)
        return 2
    jobs = _split(names, counts, args)
    t0 = time.time()
    results = _run(jobs, args.jobs)
    print("---- regression totals ----")
    streams = [StreamTotals.of(name, [r for r in results if r.name == name]) for name in names]
    for s in streams:
        print("\n".join(s.lines(args.jobs)))
    totals = Totals.of(streams, time.time() - t0)
    print(totals.line(args.jobs))
    out = Path(args.json)
    _write_json(out, argv, args.jobs, totals, results)
    print(f"per-chunk results: {out}")
    return 0 if totals.bit_exact else 1


if __name__ == "__main__":
    sys.exit(main())
