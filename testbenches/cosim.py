"""Co-simulation of ``rtl`` against ``sim`` on whole sequences: build, run, compare, localise.

:func:`run_cocotb` streams sequences through the design under cocotb (:mod:`testbenches.tb_network`),
in Verilator (default) or Icarus Verilog (``simulator='icarus-2005'|'icarus-2012'``), comparing
every per-step output (step logits, the running logit accumulator and the saturation flags) with
:class:`sim.Network` bit for bit. The saturation flags (:func:`rtl.top.sat_layout`): per step and
per tensor of :func:`spec.names.saturation_names`, the RTL's flag must equal ``sim``'s "this step
counted at least one saturation event of this tensor" (``Result.saturation_steps > 0``); a
difference is a mismatch like any other (``output`` ``'sat'``, ``class`` the tensor's name).
On a mismatch, :func:`localise` rebuilds the design with the trace port and FST tracing and
re-runs the failing sequence in the plain C++ harness (:file:`testbenches/harness.cpp`), compares
every intermediate of every layer with ``sim``'s trace and reports the first differing
(step, tensor, channel), both values, and an FST waveform of the steps around it.
:func:`run_harness` runs the same job without Python (the speed reference of
``benchmarks/bench_rtl.py``).
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from rtl.addrmap import AddressMap
from rtl.top import cfg_layout, cycles_per_step, input_layout, output_layout, trace_layout
from spec.bundle import Bundle
from spec.fixedpoint import saturate

from . import layouts
from .build import BUILD, TOP, build_cocotb, build_harness, ensure_path, run_cocotb_test, verilog_feeder, verilog_for

__all__ = ["Expected", "expected", "run_cocotb", "run_harness", "localise", "CosimResult", "build_stream",
           "cfg_words", "sat_summary"]


@dataclasses.dataclass
class Expected:
    """What ``sim`` says, per sequence ``b``: ``logits[b]`` (T_b, C) step logits, ``acc[b]``
    (T_b, C) the running accumulator (readout 'mean'), ``final[b]`` (C,) the readout, and
    ``sat[name][b]`` (T_b,) the saturation events of tensor ``name`` in each step."""
    logits: list
    acc: list | None
    final: np.ndarray
    sat: dict | None = None

    def sat_flags(self, seqs=None) -> dict[str, np.ndarray]:
        """Per name, the concatenated per-step flags (events > 0) of sequences ``seqs`` (all)."""
        seqs = range(len(self.logits)) if seqs is None else seqs
        return {n: np.concatenate([v[b] for b in seqs]).astype(bool).astype(np.int64)
                for n, v in (self.sat or {}).items()}


def expected(bundle: Bundle, xs: list[np.ndarray], *, trace: bool = False):
    """Run ``sim.Network`` on the sequences ``xs`` (one padded batch); returns (Expected, Result)."""
    from sim import Network
    arch, fmts = bundle.arch, bundle.formats
    lens = np.array([len(x) for x in xs])
    T = int(lens.max())
    shape = (len(xs), T) + tuple(xs[0].shape[1:])
    X = np.zeros(shape, np.int64)
    for b, x in enumerate(xs):
        X[b, :len(x)] = x
    res = Network(bundle).run(X, lengths=lens if (lens < T).any() else None, trace=trace, saturation_steps=True)
    sl = res.step_logits
    logits = [sl[b, :lens[b]] for b in range(len(xs))]
    sat = {n: [c[b, :lens[b]] for b in range(len(xs))] for n, c in res.saturation_steps.items()}
    accs = None
    if arch.readout == "mean":
        acc = np.zeros((len(xs), arch.n_classes), np.int64)
        run = np.zeros_like(sl)
        for t in range(T):
            v = (t < lens)[:, None]
            acc = np.where(v, saturate(acc + sl[:, t], fmts.logit_acc)[0], acc)
            run[:, t] = acc
        accs = [run[b, :lens[b]] for b in range(len(xs))]
        if not np.array_equal(acc, res.logits):
            raise AssertionError("running accumulator disagrees with sim's readout")
    return Expected(logits, accs, res.logits, sat), res


@dataclasses.dataclass
class CosimResult:
    steps: int
    cycles: int
    wall: float                 # seconds of streaming (config excluded)
    cfg_wall: float
    build_wall: float
    bit_exact: bool
    mismatch: dict | None
    logits: list                # per sequence (C,) final RTL readout
    cycles_per_step: int
    harness: str = "cocotb"
    simulator: str = "verilator"
    x_cycles: int = 0           # clock edges at which an output port of the design held X/Z (4-state runs)
    cfg_cycles: int = 0         # feeder clock cycles from reset to streaming: configuration writes + 1
    preload: bool = False       # the weight memories started with the bundle in them (no configuration writes)
    micro: object = None        # the rtl.microarch.Microarch of the design
    trace: dict | None = None   # probe=True: every layer's intermediates, (steps, ...) int64
    outputs: dict | None = None  # decoded per-step outputs ('logits', 'acc'), (steps, C) int64

    def sat_steps(self) -> dict[str, int]:
        """Per tensor name (:func:`spec.names.saturation_names`), the steps in which the RTL raised its
        saturation flag (equal to ``sim``'s when ``bit_exact``)."""
        return {k[4:]: int(np.asarray(v).sum()) for k, v in (self.outputs or {}).items() if k.startswith("sat.")}

    def summary(self) -> dict:
        return {"steps": self.steps, "cycles": self.cycles, "wall_s": round(self.wall, 3),
                "steps_per_s": round(self.steps / self.wall, 1) if self.wall else None,
                "cycles_per_s": round(self.cycles / self.wall) if self.wall else None,
                "cycles_per_step": self.cycles_per_step, "bit_exact": self.bit_exact}


def sat_summary(r: CosimResult, exp: Expected) -> str:
    """One line on the saturation flags of a run: agreement with ``sim`` and, per tensor, the steps
    in which the flag was raised (only the tensors that saturated at all)."""
    m = r.mismatch
    if m is not None and m["output"] == "sat":
        return (f"DIFFER: sequence {m['seq']} step {m['step']}, tensor {m['class']}: RTL flag {m['got']} != "
                f"sim {m['expected']} (sim counted {'an' if m['expected'] else 'no'} event)")
    head = ("agree with sim/ at every step" if r.bit_exact else "agree up to the first mismatch") + \
        f" ({len(exp.sat or {})} tensors; flag = at least one saturation event in the step)"
    fired = {n: c for n, c in r.sat_steps().items() if c}
    return head + "; raised in: " + (", ".join(f"{n} {c} steps" for n, c in fired.items()) if fired else "no step")


def _inputs(bundle: Bundle, xs: list[np.ndarray]):
    arch, fmts = bundle.arch, bundle.formats
    lay = input_layout(arch, fmts)
    first = np.concatenate([np.eye(1, len(x), dtype=np.int64)[0] for x in xs])
    if arch.encoder == "linear":
        X = np.concatenate([np.asarray(x, np.int64).reshape(len(x), arch.d_in) for x in xs])
        return layouts.pack_ints(lay, {"first": first, "x": X}), lay
    tok = np.concatenate([np.asarray(x, np.int64).reshape(-1) for x in xs])
    return layouts.pack_ints(lay, {"first": first, "token": tok}), lay


def cfg_words(amap: AddressMap, tensors) -> list[int]:
    """The ``cfg`` stream payloads (:func:`rtl.top.cfg_layout`) that write ``tensors``: every
    configuration word is packed here, by the same packer as the input samples."""
    addrs, datas = amap.writes(tensors)
    return layouts.pack_ints(cfg_layout(amap), {"addr": addrs, "data": datas})


def run_cocotb(bundle: Bundle, xs: list[np.ndarray], exp: Expected | None = None, *,
               max_steps: int | None = None, workdir: Path | None = None, probe: bool = False,
               simulator: str = "verilator", preload: bool = False, micro=None, log=print) -> CosimResult:
    """Stream ``xs`` through the RTL under cocotb in Verilator; compare every output of every step
    (step logits and the running logit accumulator) with ``exp`` (computed by ``sim`` if None).

    Default: the bulk-fed, self-clocked feeder (:mod:`testbenches.feeder`, cocotb test
    ``stream_bulk``): the sequences go into the feeder's memory in runs of at most
    ``feeder.MAX_STEPS`` steps (one simulator process each; the bundle is loaded at the start of
    each), and the first mismatching run stops the job.
    ``probe``: instead, the design with its probe port, one Python wake-up per step (cocotb test
    ``stream_job``), returning every layer's intermediates of every step in ``CosimResult.trace``
    (block tests; slower, a separate cached build).
    ``max_steps``: only the first ``max_steps`` steps of the job (over all sequences).
    ``simulator``: ``"verilator"``, ``"icarus-2005"`` or ``"icarus-2012"`` (:data:`build.SIMULATORS`;
    the feeder path only); ``CosimResult.x_cycles`` counts the clock edges at which an output port
    of the design held X or Z (the run fails if any did).
    ``preload``: a design whose weight memories start with the bundle in them
    (:class:`rtl.top.MgradeTop` ``preload``, a Verilog and a simulator build of this bundle) instead
    of loading it through the configuration port, one element per clock (the shipped GSC bundle is
    106,060 writes: hours in Icarus); the feeder goes from reset straight to streaming
    (``CosimResult.cfg_cycles`` 1). The feeder path only.
    ``micro``: the design's :class:`rtl.microarch.Microarch` (default: the original design; a
    Verilog and a simulator build per microarchitecture); the bundle is written in its layout.
    Wall times in the result count the streaming only (configuration and start-up excluded).
    """
    from rtl.microarch import Microarch
    ensure_path()
    arch, fmts = bundle.arch, bundle.formats
    micro = (micro or Microarch()).check(arch)
    if exp is None:
        exp, _ = expected(bundle, xs)
    xs = list(xs)
    if max_steps:                                           # cut the job to its first max_steps steps
        kept, left = [], int(max_steps)
        for x in xs:
            if left <= 0:
                break
            kept.append(x[:left])
            left -= len(kept[-1])
        n = len(kept)
        cut = [len(x) for x in kept]
        logits = [lg[:c] for lg, c in zip(exp.logits[:n], cut, strict=True)]
        acc = None if exp.acc is None else [a[:c] for a, c in zip(exp.acc[:n], cut, strict=True)]
        sat = None if exp.sat is None else {k: [c[b][:cut[b]] for b in range(n)] for k, c in exp.sat.items()}
        exp = Expected(logits, acc, exp.final[:n], sat)
        xs = kept
    from .feeder import MAX_STEPS
    tb0 = time.time()
    amap = AddressMap(arch, fmts, micro=micro)
    cfg = [] if preload else cfg_words(amap, bundle.tensors)
    if probe and simulator != "verilator":
        raise ValueError("the probe path runs in Verilator only")
    if probe and preload:
        raise ValueError("the probe path loads the bundle through the configuration port")
    bdir, top = build_stream(arch, fmts, probe=probe, simulator=simulator,
                             preload=bundle.tensors if preload else None, micro=micro, log=log)
    build_wall = time.time() - tb0
    base = Path(workdir or tempfile.mkdtemp(prefix="cosim-", dir=_runs_dir()))
    # runs of whole sequences that fit the feeder's memories
    groups, cur, size = [], [], 0
    cap = len(xs) if probe else MAX_STEPS
    for b, x in enumerate(xs):
        if not probe and len(x) > MAX_STEPS:
            raise ValueError(f"sequence {b} has {len(x)} steps; the feeder holds {MAX_STEPS}")
        if cur and (size + len(x) > cap):
            groups.append(cur)
            cur, size = [], 0
        cur.append(b)
        size += len(x)
    groups.append(cur)
    tot = {"steps": 0, "cycles": 0, "wall": 0.0, "cfg_wall": 0.0, "x_cycles": 0, "cfg_cycles": 0}
    finals, outs, traces, mismatch, ok = [], [], [], None, True
    for g, idx in enumerate(groups):
        wd = base / f"run{g}" if len(groups) > 1 else base
        r = _run_group(bundle, [xs[b] for b in idx], [exp.logits[b] for b in idx],
                       None if exp.acc is None else [exp.acc[b] for b in idx], cfg, bdir, top, probe, wd,
                       simulator, exp_sat=exp.sat_flags(idx))
        for k in tot:
            tot[k] += r[k]
        finals += r["finals"]
        outs.append(r["outputs"])
        if r["trace"] is not None:
            traces.append(r["trace"])
        ok &= r["ok"]
        if r["mismatch"] is not None:
            mismatch = dict(r["mismatch"], seq=r["mismatch"]["seq"] + idx[0])
            break
        if not r["ok"]:
            break
    outputs = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]} if outs and outs[0] else {}
    trace = {k: np.concatenate([t[k] for t in traces]) for k in traces[0]} if traces else None
    return CosimResult(tot["steps"], tot["cycles"], tot["wall"], tot["cfg_wall"], build_wall, ok and mismatch is None,
                       mismatch, finals, cycles_per_step(arch, micro), trace=trace, outputs=outputs,
                       simulator=simulator, x_cycles=tot["x_cycles"], cfg_cycles=tot["cfg_cycles"], preload=preload,
                       micro=micro)


def build_stream(arch, fmts, *, probe: bool = False, simulator: str = "verilator", preload=None,
                 micro=None, log=print) -> tuple[Path, str]:
    """The cocotb build of ``arch``/``fmts`` (cached): the feeder wrapper around the design, or with
    ``probe`` the design with its probe port (Verilator). ``preload``: a bundle's tensors, baked into
    the design's weight memories (a build of that bundle; its feeder reads no configuration).
    ``micro``: the :class:`rtl.microarch.Microarch`. Returns (build dir, toplevel name)."""
    from spec.arch import tensor_specs

    from .feeder import TB_TOP
    vfile = verilog_for(arch, fmts, trace=probe, preload=preload, micro=micro, log=log)
    if probe:
        return build_cocotb(vfile, log=log), TOP
    amap = AddressMap(arch, fmts, micro=micro)
    # one write per element; none into preloaded memories
    n_words = 0 if preload is not None else sum(int(np.prod(t.shape)) for t in tensor_specs(arch))
    tb = verilog_feeder(vfile, layouts.nbits(cfg_layout(amap)), layouts.nbits(input_layout(arch, fmts)),
                        layouts.nbits(output_layout(arch, fmts)), max_cfg=n_words)
    return build_cocotb(vfile, top=TB_TOP, extra=(tb,), timing=True, simulator=simulator, log=log), TB_TOP


def _run_group(bundle, xs, exp_logits, exp_acc, cfg_vals, bdir, top, probe, workdir, simulator="verilator",
               exp_sat=None) -> dict:
    arch, fmts = bundle.arch, bundle.formats
    ins, _ = _inputs(bundle, xs)
    lens = np.array([len(x) for x in xs])
    ends = np.cumsum(lens)
    of = layouts.fields(output_layout(arch, fmts))
    of["__width__"] = layouts.nbits(output_layout(arch, fmts))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    meta = {"out_fields": of, "n_classes": arch.n_classes, "max_steps": int(ends[-1]), "probe": probe,
            "dir": str(workdir), "sat_keys": [f"sat.{n}" for n in exp_sat or {}]}
    job, result = workdir / "job.npz", workdir / "result.npz"
    arrays = {"meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
              "seq_start": np.concatenate([[0], ends[:-1]]), "seq_end": ends,
              "exp_logits": np.concatenate(exp_logits)}
    if exp_acc is not None:
        arrays["exp_acc"] = np.concatenate(exp_acc)
    arrays.update({f"exp_sat.{n}": v for n, v in (exp_sat or {}).items()})     # per-step flags
    if probe:                               # wide payloads travel as decimal text
        arrays.update({"inputs_txt": np.frombuffer(" ".join(map(str, ins)).encode(), np.uint8),
                       "cfg_txt": np.frombuffer(" ".join(map(str, cfg_vals)).encode(), np.uint8)})
        plusargs, testcase = [], "stream_job"
    else:                                   # the feeder reads these with $readmemh
        (workdir / "cfg.hex").write_text("\n".join(format(v, "x") for v in cfg_vals) + "\n")
        (workdir / "in.hex").write_text("\n".join(format(v, "x") for v in ins) + "\n")
        (workdir / "out.hex").unlink(missing_ok=True)
        plusargs = [f"+mgrade_dir={workdir}", f"+n_cfg={len(cfg_vals)}", f"+n_in={len(ins)}"]
        testcase = "stream_bulk"
    np.savez(job, **arrays)
    result.unlink(missing_ok=True)
    n_tests, n_fail = run_cocotb_test(bdir, top=top, module="testbenches.tb_network", workdir=workdir,
                                      env={"MGRADE_JOB": str(job), "MGRADE_RESULT": str(result)},
                                      plusargs=plusargs, testcase=testcase, simulator=simulator)
    if not result.exists():
        tail = (workdir / "sim.log").read_text()[-3000:] if (workdir / "sim.log").exists() else ""
        raise RuntimeError(f"cocotb run produced no result (see {workdir}/sim.log):\n{tail}")
    r = np.load(result, allow_pickle=False)
    mismatch = json.loads(str(r["mismatch"]))
    steps = int(r["steps"])
    finals = []
    if steps:
        got = r["got_acc" if arch.readout == "mean" else "got_logits"]
        finals = [got[e - 1] for e in ends if e <= steps]
    trace = None
    if probe and steps:
        vals = [int(v) for v in bytes(r["probe_txt"]).decode().split()]
        trace = layouts.unpack(vals, trace_layout(arch, fmts))
    return {"steps": steps, "cycles": int(r["cycles"]), "wall": float(r["wall"]), "cfg_wall": float(r["cfg_wall"]),
            "x_cycles": int(r["x_cycles"]) if "x_cycles" in r.files else 0,
            "cfg_cycles": int(r["cfg_cycles"]) if "cfg_cycles" in r.files else 0,
            "ok": n_fail == 0 and n_tests >= 1 and steps == int(ends[-1]), "mismatch": mismatch,
            "finals": finals, "trace": trace, "outputs": {k[4:]: r[k] for k in r.files if k.startswith("got_")}}


def _runs_dir() -> Path:
    d = BUILD / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _words(values: list[int], width: int) -> np.ndarray:
    nw = max(1, (width + 31) // 32)
    out = np.zeros((len(values), nw), np.uint32)
    for w in range(nw):
        out[:, w] = [(v >> (32 * w)) & 0xFFFFFFFF for v in values]
    return out


def run_harness(bundle: Bundle, xs: list[np.ndarray], *, trace_steps: tuple[int, int] | None = None,
                fst_steps: tuple[int, int] | None = None, fst_path: Path | None = None,
                workdir: Path | None = None, micro=None, log=print) -> dict:
    """Run the job in the plain C++ harness. Returns outputs (decoded), cycles, wall seconds and,
    with ``trace_steps``, the decoded trace port of those steps (a build with the trace port).
    ``micro``: the design's :class:`rtl.microarch.Microarch` (default: the original design)."""
    arch, fmts = bundle.arch, bundle.formats
    with_trace = trace_steps is not None
    waves = fst_steps is not None
    vfile = verilog_for(arch, fmts, trace=with_trace, micro=micro, log=log)
    exe = build_harness(vfile, waves=waves, trace_port=with_trace, log=log)
    amap = AddressMap(arch, fmts, micro=micro)
    cfg_vals = cfg_words(amap, bundle.tensors)
    cfgw = _words(cfg_vals, layouts.nbits(cfg_layout(amap)))
    ins, il = _inputs(bundle, xs)
    inw = _words(ins, layouts.nbits(il))
    ol = output_layout(arch, fmts)
    out_words = max(1, (layouts.nbits(ol) + 31) // 32)
    tl = trace_layout(arch, fmts)
    tr_words = max(1, (layouts.nbits(tl) + 31) // 32) if with_trace else 0
    n = len(ins)
    tf, tt = trace_steps or (0, 0)
    ff, ft = fst_steps or (0, 0)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="harness-", dir=_runs_dir()))
    workdir.mkdir(parents=True, exist_ok=True)
    job, res = workdir / "job.bin", workdir / "result.bin"
    hdr = np.array([0x4852474D, len(cfg_vals), cfgw.shape[1], n, inw.shape[1], out_words, tr_words,
                    tf, tt, ff, ft], np.uint32)
    with open(job, "wb") as fh:
        fh.write(hdr.tobytes() + cfgw.tobytes() + inw.tobytes())
    import subprocess
    cmd = [str(exe), str(job), str(res)] + ([str(fst_path)] if waves and fst_path else [])
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"harness failed ({p.returncode}): {p.stderr[-2000:]}")
    raw = np.fromfile(res, np.uint8)
    cycles, ns = np.frombuffer(raw[:16].tobytes(), np.uint64)
    body = np.frombuffer(raw[16:].tobytes(), np.uint32)
    outw = body[:n * out_words].reshape(n, out_words)
    out = {"cycles": int(cycles), "wall": float(ns) * 1e-9, "steps": n,
           "outputs": layouts.unpack(None, ol, words=outw)}
    if with_trace and tt > tf:
        trw = body[n * out_words:].reshape(tt - tf, tr_words)
        out["trace"] = layouts.unpack(None, tl, words=trw)
    return out


def localise(bundle: Bundle, x: np.ndarray, step: int, *, window: int = 2, out_dir: Path | None = None,
             rtl_bundle: Bundle | None = None, micro=None, log=print) -> dict:
    """First differing (step, tensor, channel) of one sequence, with an FST of the steps around it.

    Re-runs sequence ``x`` up to ``step + 1`` in the C++ harness built with the trace port and FST
    tracing, compares every layer's intermediates of every step with ``sim``'s trace in the order
    the hardware computes them (:func:`spec.names.trace_names`: ``enc``, then per layer
    :func:`spec.names.layer_trace_names`, then the logits),
    and returns ``{"step", "tensor", "layer", "channel", "rtl", "sim", "fst"}``. ``rtl_bundle``
    (tests of this machinery): load these weights into the RTL instead of ``bundle``'s. ``micro``:
    the design's :class:`rtl.microarch.Microarch`.
    """
    from spec.names import trace_names
    last = min(len(x), step + 1)
    xs = [np.asarray(x)[:last]]
    _, res = expected(bundle, xs, trace=True)
    out_dir = Path(out_dir or _runs_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    fst = out_dir / f"mismatch_step{step}.fst"
    lo = max(0, step - window)
    h = run_harness(rtl_bundle or bundle, xs, trace_steps=(0, last), fst_steps=(lo, last), fst_path=fst,
                    micro=micro, log=log)
    tr = h["trace"]
    order = [k for k in trace_names(bundle.arch) if k != "step_logits"]     # the logits come last, below
    for t in range(last):
        for key in order:
            got, exp = tr[key][t], res.trace[key][0, t]
            bad = np.flatnonzero(got != exp)
            if len(bad):
                c = int(bad[0])
                layer = int(key.split(".")[1]) if key.startswith("layers.") else None
                return {"step": t, "tensor": key, "layer": layer, "channel": c, "rtl": int(got[c]),
                        "sim": int(exp[c]), "fst": str(fst), "fst_steps": [lo, last]}
        got = h["outputs"]["logits"][t]
        exp = res.step_logits[0, t]
        bad = np.flatnonzero(got != exp)
        if len(bad):
            c = int(bad[0])
            return {"step": t, "tensor": "logits", "layer": None, "channel": c, "rtl": int(got[c]),
                    "sim": int(exp[c]), "fst": str(fst), "fst_steps": [lo, last]}
    return {"step": None, "tensor": None, "fst": str(fst), "fst_steps": [lo, last]}
