"""Training throughput on one GPU: float and hardware-aware phases, OLD against NEW recurrences.

    python -m benchmarks.bench_train --check --amp all --compile --out results/bench_train.json   # GPU
    python -m benchmarks.bench_train --device cpu --steps 200 --batch 2                           # smoke

Workloads (the GSC architecture of :func:`benchmarks.bench_sim.gsc_bundle`: H=64, L=2, taps 8,
d_max 63, MLP mixer (expand 2), affine norm, skips, mean readout):

* ``listops``: T = 2000 (ListOps length), embedding encoder over ListOps' 16 tokens, 10 classes, batch 256.
* ``gsc``: T = 16000 (one second of 16 kHz audio), linear encoder with d_in = 1, 12 classes, batch 64.

One training step = forward, cross-entropy on the class logits, backward (no optimiser step:
it is per parameter, not per time step). Throughput is time steps x batch per second.

Paths: OLD = :func:`models.scan.linear_scan` (Hillis-Steele rounds) and
:func:`sim.mingru.state_sequence` (one step per Python iteration), i.e. ``kernels.use_fused(False)``;
NEW = the Triton kernels of :mod:`models.kernels`. Float-phase variants (NEW path): ``fp32``
(TF32 off), ``tf32`` (TF32 matmuls/convolutions), ``bf16`` (autocast), ``compile``
(``torch.compile`` of the model, fp32). The hardware-aware phase (``model.quantize()``) runs in fp32:
its fake quantisers and integer codes need exact fp32 values.

Memory-bandwidth bound. Elements moved per time step x batch element by the float phase if every
pass below ran once at copy bandwidth, elementwise work fused into its neighbouring pass
(:func:`float_elements_per_step`), per layer, forward:

    conv            read a (H), write u = conv(a) + a (H)                    2H
    gate/candidate  read u (H), write Wz u, Wh u (2H)                       3H
    recurrence      read Wz u, Wh u (2H; z, 1-z, z hc fused), write h (H)   3H
    mixer W1        read h, u (2H), write r = h + u (H), W1 r (P)           3H + P
    mixer W2        read act(W1 r) (P), r (H), write y = W2 . + r (H)       2H + P
    norm            read y twice (statistics, affine), write a' (H)         3H

(P = expand H for the MLP, 2 expand H for the GLU; without skips or a mixer the terms drop).
The backward pass of each pass reads its output gradient and its saved inputs and writes its input
gradients: twice the forward's traffic. Plus the encoder (write a0: H, read x: d_in) and decoder
(read a_L: H, write C logits), likewise tripled. For the GSC arch: 20H per layer forward, 60H per
layer and step with the backward, 2 x 60 x 64 + 423 = 8103 elements, 32.4 kB in fp32 (16.2 kB
bf16) per time step x batch. Bound = measured device-to-device copy bandwidth (bytes read +
written, one large ``copy_``) / those bytes. It is shown next to the hardware-aware phase too, for
scale (that phase moves more: fake quantisers, integer codes).

``--check`` (CUDA): first the Triton kernels against the reference paths (linear_recurrence
forward and gradients, relative error; sc_state_sequence bit for bit against
sim.mingru.state_sequence on the GPU for every rounding rule, with saturation; the noisy
sc_state_sequence_noisy bit for bit against sim.mingru.state_sequence_sc's loop on the same GPU
tensors, with every non-ideality on and off, and both timed), then the timings.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["main", "WORKLOADS", "float_elements_per_step", "copy_bandwidth", "check_linear_recurrence",
           "check_sc_state_sequence", "check_sc_state_sequence_noisy", "bench_step"]

#: len(data.listops.VOCAB): pad, 10 digits, 4 operators, ']'
LISTOPS_VOCAB = 16
WORKLOADS = {
    "listops": dict(steps=2000, batch=256, encoder="embedding", d_in=LISTOPS_VOCAB, n_classes=10),
    "gsc": dict(steps=16000, batch=64, encoder="linear", d_in=1, n_classes=12),
}
#: relative error of the fp32 kernel against the float64 reference (forward and gradients)
FP32_REL_TOL = 1e-5


def make_arch(workload: str, hidden: int = 64, layers: int = 2):
    from spec import Arch
    w = WORKLOADS[workload]
    return Arch(d_in=w["d_in"], n_classes=w["n_classes"], hidden=hidden, layers=layers, taps=8, d_max=63,
                encoder=w["encoder"])


def float_elements_per_step(arch) -> int:
    """Elements the float phase moves per time step x batch element (forward + backward); the
    count of the module docstring."""
    H = arch.hidden
    per_layer = 3 * H + 3 * H + (2 * H if arch.taps else 0)           # gate/candidate, recurrence, conv
    if arch.mix != "none":
        P = arch.mix_width * (2 if arch.mix == "glu" else 1)
        per_layer += 3 * H + P + 2 * H + P
    if arch.norm == "affine":
        per_layer += 3 * H
    io = H + (arch.d_in if arch.encoder == "linear" else 0) + H + arch.n_classes
    return 3 * (arch.layers * per_layer + io)


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def copy_bandwidth(device, nbytes: int | None = None, repeat: int = 10) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write), one large ``copy_``."""
    nbytes = nbytes or (2 << 30 if device.type == "cuda" else 64 << 20)
    x = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    y = torch.empty_like(x)
    y.copy_(x)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        y.copy_(x)
    _sync(device)
    return 2 * nbytes * repeat / (time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------
# correctness of the kernels on the device
# ---------------------------------------------------------------------------------------------
def _rel(x: torch.Tensor, ref: torch.Tensor) -> float:
    return float((x.detach().double() - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def check_linear_recurrence(device, shapes=((3, 1000, 64), (2, 77, 20), (1, 5, 130)), seed: int = 0) -> dict:
    """Triton :func:`models.kernels.linear_recurrence` (fp32) against the float64 sequential
    recurrence with autograd: max relative error of h and of the gradients of a, b, h0; plus a
    float64 ``gradcheck`` of the kernel on a tiny size."""
    from models import kernels
    from models.scan import linear_scan_sequential
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for B, T, H in shapes:
        a = torch.rand(B, T, H, device=device, generator=g)
        b = torch.randn(B, T, H, device=device, generator=g)
        h0 = torch.randn(B, H, device=device, generator=g)
        w = torch.randn(B, T, H, device=device, generator=g)
        leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
        refs = [t.double().requires_grad_() for t in (a, b, h0)]
        h = kernels.linear_recurrence(*leaves)
        ref = linear_scan_sequential(*refs)
        gk = torch.autograd.grad((h * w).sum(), leaves)
        gr = torch.autograd.grad((ref * w.double()).sum(), refs)
        errs = {"h": _rel(h, ref.detach())}
        errs |= {f"grad_{n}": _rel(x, y) for n, x, y in zip(("a", "b", "h0"), gk, gr, strict=True)}
        out[f"{B}x{T}x{H}"] = errs
    tiny = [torch.rand(2, 9, 5, device=device, dtype=torch.float64, generator=g).requires_grad_(),
            torch.randn(2, 9, 5, device=device, dtype=torch.float64, generator=g).requires_grad_(),
            torch.randn(2, 5, device=device, dtype=torch.float64, generator=g).requires_grad_()]
    out["gradcheck_fp64"] = bool(torch.autograd.gradcheck(kernels.linear_recurrence, tiny))
    worst = max(v for e in out.values() if isinstance(e, dict) for v in e.values())
    out["max_rel_err"], out["ok"] = worst, worst < FP32_REL_TOL and out["gradcheck_fp64"]
    return out


def _random_codes(B, T, H, b_z, fmt, g, device):
    """k uniform in [0, 2**b_z) (with runs of the extremes), hc uniform in twice h's range (so
    that h saturates at both rails), h0 in h's range."""
    k = torch.randint(0, 1 << b_z, (B, T, H), device=device, generator=g)
    k[:, T // 3: T // 2] = (1 << b_z) - 1                    # fast gate: h follows hc into the rails
    lo, hi = 2 * fmt.min_int, 2 * fmt.max_int
    hc = torch.randint(lo, hi + 1, (B, T, H), device=device, generator=g)
    h0 = torch.randint(fmt.min_int, fmt.max_int + 1, (B, H), device=device, generator=g)
    return k, hc, h0


def check_sc_state_sequence(device, B: int = 3, T: int = 1000, H: int = 70, seed: int = 0) -> dict:
    """Triton :func:`models.kernels.sc_state_sequence` == :func:`sim.mingru.state_sequence`,
    bit for bit, on ``device`` tensors: every rounding rule, an int32 format (s16f10, b_z 6)
    and an int64 one (s40f20, b_z 12), with and without h0. Reports the states at the rails
    (saturation happened) and the number of differing codes."""
    from models import kernels
    from sim.mingru import state_sequence
    from spec import Format
    from spec.fixedpoint import Rounding
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for rounding in Rounding:
        for bits, frac, b_z in ((16, 10, 6), (40, 20, 12)):
            fmt = Format(True, bits, frac, rounding)
            k, hc, h0 = _random_codes(B, T, H, b_z, fmt, g, device)
            for init in (None, h0):
                got = kernels.sc_state_sequence(k, hc, b_z, fmt, h0=init)
                start = torch.zeros_like(hc[:, 0]) if init is None else init
                ref = state_sequence(start, k.movedim(1, 0), hc.movedim(1, 0), b_z=b_z, fmt_h=fmt).movedim(0, 1)
                rails = int(((ref == fmt.min_int) | (ref == fmt.max_int)).sum())
                out[f"{fmt.name}/{rounding.value}/b_z{b_z}/{'h0' if init is not None else 'zero'}"] = \
                    {"differ": int((got != ref).sum()), "at_rails": rails}
    out["ok"] = all(v["differ"] == 0 and v["at_rails"] > 0 for v in out.values())
    return out


def check_sc_state_sequence_noisy(device, B: int = 32, T: int = 1000, H: int = 64, seed: int = 0) -> dict:
    """Triton :func:`models.kernels.sc_state_sequence_noisy` == :func:`sim.mingru.state_sequence_sc`
    (its loop over steps, run on the same ``device`` tensors), bit for bit: every rounding rule,
    s16f10 with b_z 6, each non-ideality alone, all together and none; a chip of the size of
    NoiseModel.default()'s errors (gate mismatch 1 %, leak 1e-3 per step, injection 0.3 LSB,
    kT/C 2 LSB rms). Also the two timed (ms per call, all non-idealities on)."""
    from models import kernels
    from sim.mingru import state_sequence_sc
    from spec import Format
    from spec.fixedpoint import Rounding
    g = torch.Generator(device=device).manual_seed(seed)
    f64 = dict(device=device, dtype=torch.float64)
    b_z = 6
    n = 1 << b_z
    arrays = {"z_eff": (torch.arange(n, **f64) / n) * (1 + 0.01 * torch.randn(H, n, generator=g, **f64)),
              "leak": 1 - 1e-3 * torch.rand(H, generator=g, **f64),
              "offset": 0.3 * torch.randn(H, generator=g, **f64),
              "noise": 2.0 * torch.randn(T, B, H, generator=g, **f64)}
    out = {}
    for rounding in Rounding:
        fmt = Format(True, 16, 10, rounding)
        k, hc, _ = _random_codes(B, T, H, b_z, fmt, g, device)
        for case in ("none", *arrays, "all"):
            kw = {name: a for name, a in arrays.items() if case in (name, "all")}
            got = kernels.sc_state_sequence_noisy(k, hc, b_z, fmt, **kw)
            ref = state_sequence_sc(torch.zeros_like(hc[:, 0]), k.movedim(1, 0), hc.movedim(1, 0), b_z=b_z,
                                    fmt_h=fmt, **kw).movedim(0, 1)
            rails = int(((ref == fmt.min_int) | (ref == fmt.max_int)).sum())
            out[f"{rounding.value}/{case}"] = {"differ": int((got != ref).sum()), "at_rails": rails}
    ok = all(v["differ"] == 0 and v["at_rails"] > 0 for v in out.values())
    if device.type == "cuda":
        fmt = Format(True, 16, 10, Rounding.HALF_EVEN)
        for name, fn in (("kernel_ms", lambda: kernels.sc_state_sequence_noisy(k, hc, b_z, fmt, **arrays)),
                         ("loop_ms", lambda: state_sequence_sc(torch.zeros_like(hc[:, 0]), k.movedim(1, 0),
                                                               hc.movedim(1, 0), b_z=b_z, fmt_h=fmt, **arrays))):
            fn()
            torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize(device)
            out[name] = 1e3 * (time.perf_counter() - t0)
    out["ok"] = ok
    return out


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _precision(variant: str):
    """TF32 on for 'tf32' only (off otherwise, so 'fp32' is plain fp32); bf16 autocast for 'bf16'."""
    prev = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    tf32 = variant == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with torch.autocast("cuda", torch.bfloat16, enabled=variant == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = prev


def _inputs(arch, B: int, T: int, device, seed: int = 0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    if arch.encoder == "embedding":
        x = torch.randint(0, arch.d_in, (B, T), generator=g)
    else:
        x = torch.randn(B, T, arch.d_in, generator=g) * 0.3             # real audio samples
    return x.to(device), torch.randint(0, arch.n_classes, (B,), generator=g).to(device)


def bench_step(model, x, y, variant: str, repeat: int, warmup: int) -> dict:
    """Seconds per training step (forward, cross-entropy, backward) and peak memory."""
    device = x.device

    def step():
        with _precision(variant):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        for p in model.parameters():
            p.grad = None

    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        step()
    _sync(device)
    s = (time.perf_counter() - t0) / repeat
    mem = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    return {"s_per_step": s, "peak_mem_gib": mem}


def _model(arch, device, phase: str, seed: int = 0):
    from models import MGRADE
    torch.manual_seed(seed)
    m = MGRADE(arch).to(device).train()
    return m.quantize() if phase == "hw" else m


def run_case(workload: str, phase: str, path: str, variant: str, args, device, bw: float) -> dict:
    """One row of the table: a workload, a phase ('float' | 'hw'), a path ('old' | 'new') and a
    float-phase variant, timed; with the bandwidth bound in steps x batch / s."""
    from models import kernels
    arch = make_arch(workload, args.hidden, args.layers)
    w = WORKLOADS[workload]
    T, B = args.steps or w["steps"], args.batch or w["batch"]
    x, y = _inputs(arch, B, T, device)
    model = _model(arch, device, phase)
    if variant == "compile":
        model = torch.compile(model)
    row = {"workload": workload, "steps": T, "batch": B, "phase": phase, "path": path, "variant": variant}
    try:
        with kernels.use_fused(path == "new"):
            row |= bench_step(model, x, y, variant, args.repeat, args.warmup)
    except Exception as e:                                   # a variant that fails is reported, not fatal
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        return row
    elem_bytes = 2 if variant == "bf16" else 4
    row["steps_per_s"] = T * B / row["s_per_step"]
    row["bound_bytes_per_step"] = float_elements_per_step(arch) * elem_bytes
    row["bound_steps_per_s"] = bw / row["bound_bytes_per_step"]
    row["of_bound"] = row["steps_per_s"] / row["bound_steps_per_s"]
    return row


def _cases(args, device) -> list[tuple[str, str, str]]:
    """(phase, path, variant) to time: OLD and NEW of both phases in fp32, then the float variants."""
    out = [("float", "old", "fp32"), ("float", "new", "fp32")]
    if device.type == "cuda":
        amp = {"tf32": ["tf32"], "bf16": ["bf16"], "all": ["tf32", "bf16"]}.get(args.amp, [])
        out += [("float", "new", v) for v in amp]
        if args.compile:
            out.append(("float", "new", "compile"))
    return out + [("hw", "old", "fp32"), ("hw", "new", "fp32")]


def _print_row(r: dict, old: dict | None) -> None:
    head = f"{r['workload']:8s} {r['steps']:6d} {r['batch']:5d} {r['phase']:5s} {r['path']:4s} {r['variant']:8s}"
    if "error" in r:
        print(f"{head} failed: {r['error']}")
        return
    speed = f"{r['steps_per_s'] / old['steps_per_s']:7.1f}x" if old and "steps_per_s" in old else "        "
    mem = f"{r['peak_mem_gib']:7.1f}" if r["peak_mem_gib"] is not None else "      -"
    print(f"{head} {r['steps_per_s'] / 1e6:10.4g} {r['s_per_step'] * 1e3:10.1f} {speed} "
          f"{r['bound_steps_per_s'] / 1e6:9.1f} {100 * r['of_bound']:6.1f}% {mem}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--workloads", default="listops,gsc", help="comma-separated: " + ", ".join(WORKLOADS))
    ap.add_argument("--steps", type=int, default=None, help="time steps T (default: the workload's)")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: the workload's)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="timed steps per case")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per case (compilation, autotune)")
    ap.add_argument("--amp", default="none", choices=("none", "tf32", "bf16", "all"),
                    help="float-phase precision variants timed besides fp32 (CUDA)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile of the float phase (CUDA)")
    ap.add_argument("--check", action="store_true", help="first check the Triton kernels against the references")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)

    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    from models import kernels
    res = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "triton": kernels.triton_available(), "args": vars(args)}
    if args.check:
        if device.type != "cuda" or not kernels.triton_available():
            print("[check] skipped: needs CUDA and triton (the CPU paths are the references themselves)")
        else:
            res["check"] = {"linear_recurrence": check_linear_recurrence(device),
                            "sc_state_sequence": check_sc_state_sequence(device),
                            "sc_state_sequence_noisy": check_sc_state_sequence_noisy(device)}
            for name, c in res["check"].items():
                print(f"[check] {name}: {'OK' if c['ok'] else 'FAILED'}  {json.dumps(c)}")
    bw = copy_bandwidth(device)
    res["copy_bandwidth_GBps"] = bw / 1e9
    print(f"[bench] {res['device']}: copy bandwidth {bw / 1e9:.0f} GB/s (read + write); torch {torch.__version__}")
    print(f"{'workload':8s} {'T':>6s} {'B':>5s} {'phase':5s} {'path':4s} {'variant':8s} {'M step/s':>10s} "
          f"{'ms/step':>10s} {'vs old':>8s} {'bound M/s':>9s} {'of bnd':>7s} {'mem GiB':>7s}")
    res["runs"] = []
    for wl in args.workloads.split(","):
        old = {}
        for phase, path, variant in _cases(args, device):
            r = run_case(wl, phase, path, variant, args, device, bw)
            res["runs"].append(r)
            if path == "old":
                old[phase] = r
            _print_row(r, old.get(phase) if path == "new" else None)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
        print(f"[bench] wrote {args.out}")
    return res


if __name__ == "__main__":
    main()
