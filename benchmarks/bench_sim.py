"""Throughput of the bit-accurate model (``sim.Network.run``) against a float PyTorch forward.

    python -m benchmarks.bench_sim                      # GSC size: batch 64 x 16,000 steps, H=64, L=2
    python -m benchmarks.bench_sim --steps 2000         # quicker
    OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_sim --torch-threads 1   # one core each

Workload: a random bundle (``spec.random_bundle``) of the GSC network: d_in = 1 (raw audio),
12 classes, taps 8, d_max 63, MLP mixer, affine norm, skips, mean readout, default formats;
random 16-bit PCM inputs. The PyTorch side is a plain float32 forward of the same network with the
same (real-valued) weights: conv as ``F.conv1d`` with a dilated sparse (d_max+1)-tap depthwise
kernel, minGRU gate/candidate as GEMMs over the whole sequence, the recurrence as a ``torch.lerp``
loop over time. Both use every core (BLAS / torch intra-op threads); both are timed in one run.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

__all__ = ["bench_sim", "torch_forward", "gsc_bundle"]


def gsc_bundle(hidden: int = 64, layers: int = 2, seed: int = 0):
    from spec import Arch, random_bundle
    arch = Arch(d_in=1, n_classes=12, hidden=hidden, layers=layers, taps=8, d_max=63)
    return random_bundle(arch, seed=seed)


def torch_forward(bundle, x_real, dtype=None):
    """Float forward of ``bundle``'s network in PyTorch. ``x_real``: (B, T, d_in) real inputs.
    Returns (B, C) summed logits (readout 'mean') or last-step logits."""
    import torch
    import torch.nn.functional as F_

    from sim.reference import float_params

    dtype = dtype or torch.float32
    A = bundle.arch
    P = {k: torch.as_tensor(v, dtype=torch.int64 if k.endswith("conv.delay") else dtype)
         for k, v in float_params(bundle).items()}
    with torch.inference_mode():
        x = torch.as_tensor(x_real, dtype=dtype)
        B, T = x.shape[:2]
        if A.encoder == "linear":
            a = x @ P["enc.w"].T + P["enc.b"]
        else:
            a = P["enc.table"][x.long()]
        H = A.hidden
        for i in range(A.layers):
            p = f"layers.{i}."
            if A.taps:
                # dense causal depthwise kernel: index j reads x[t - (d_max - j)]
                ker = torch.zeros(H, A.d_max + 1, dtype=dtype)
                ker.scatter_add_(1, A.d_max - P[p + "conv.delay"], P[p + "conv.w"])
                u = F_.conv1d(F_.pad(a.transpose(1, 2), (A.d_max, 0)), ker[:, None, :], groups=H).transpose(1, 2)
                if A.skip:
                    u = u + a
            else:
                u = a
            z = torch.clamp((u @ P[p + "rnn.wz"].T + P[p + "rnn.bz"]) / 4 + 0.5, 0, 1)
            hc = u @ P[p + "rnn.wh"].T + P[p + "rnn.bh"]
            h = torch.zeros(B, H, dtype=dtype)
            hs = torch.empty(B, T, H, dtype=dtype)
            for t in range(T):
                h = torch.lerp(h, hc[:, t], z[:, t])
                hs[:, t] = h
            o = hs if A.rnn_out == "linear" else (hs > 0).to(dtype)
            r = o + u if A.skip else o
            if A.mix != "none":
                E = A.mix_width
                pr = r @ P[p + "mix.w1"].T + P[p + "mix.b1"]
                m1 = torch.relu(pr) if A.mix == "mlp" else pr[..., :E] * torch.clamp(pr[..., E:] / 4 + 0.5, 0, 1)
                y = m1 @ P[p + "mix.w2"].T + P[p + "mix.b2"]
                y = y + r if A.skip else y
            else:
                y = r
            a = y * P[p + "norm.g"] + P[p + "norm.b"] if A.norm == "affine" else y
        step = a @ P["out.w"].T + P["out.b"]
        return step.sum(1) if A.readout == "mean" else step[:, -1]


def bench_sim(batch: int = 64, steps: int = 16000, hidden: int = 64, layers: int = 2, *,
              seed: int = 0, repeat: int = 1, torch_too: bool = True, torch_threads: int | None = None) -> dict:
    """Time ``Network.run`` (bit-accurate) and the float32 PyTorch forward on the same workload.

    Returns a dict: ``sim_s`` / ``torch_s`` (best of ``repeat`` wall seconds),
    ``sim_steps_per_s`` / ``torch_steps_per_s`` (time steps x batch per second),
    ``ratio`` (sim_s / torch_s), ``sim_cpu_s`` / ``torch_cpu_s`` / ``cpu_ratio`` (process CPU
    seconds, all threads: less sensitive to other jobs on a shared machine than wall time),
    ``argmax_agreement`` (sim vs torch predictions) and the workload.
    Threads: torch uses ``torch_threads`` (default: torch's own choice); NumPy's BLAS follows
    ``OPENBLAS_NUM_THREADS`` (set it in the environment, before Python starts).
    """
    import os

    from sim import Network

    bundle = gsc_bundle(hidden, layers, seed)
    rng = np.random.default_rng(seed)
    # speech-like amplitude: mostly well inside 16 bits
    x = np.clip(np.round(rng.standard_normal((batch, steps, 1)) * 3000), -32768, 32767).astype(np.int16)
    net = Network(bundle)
    out: dict = {"batch": batch, "steps": steps, "hidden": hidden, "layers": layers, "taps": 8, "d_max": 63,
                 "cores": os.cpu_count(), "loadavg_before": os.getloadavg()[0]}
    xr = x.astype(np.float64) * float(bundle.formats.x.lsb)
    if torch_too:
        import torch
        if torch_threads:
            torch.set_num_threads(torch_threads)
    # warm-up on a short slice (thread pools, allocator), then interleave the timed runs so that
    # both see the same machine load
    net.run(x[:, :256])
    if torch_too:
        torch_forward(bundle, xr[:, :256])
    best, best_t, cpu, cpu_t = (float("inf"),) * 4
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        res = net.run(x)
        best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
        if torch_too:
            t, c = time.perf_counter(), time.process_time()
            lt = torch_forward(bundle, xr)
            best_t, cpu_t = min(best_t, time.perf_counter() - t), min(cpu_t, time.process_time() - c)
    out["sim_s"] = best
    out["sim_cpu_s"] = cpu
    out["sim_steps_per_s"] = batch * steps / best
    out["saturations"] = int(sum(res.saturations.values()))
    if torch_too:
        out["torch_s"] = best_t
        out["torch_cpu_s"] = cpu_t
        out["cpu_ratio"] = cpu / cpu_t
        out["torch_steps_per_s"] = batch * steps / best_t
        out["torch_threads"] = torch.get_num_threads()
        out["ratio"] = best / best_t
        out["argmax_agreement"] = float(np.mean(lt.numpy().argmax(-1) == res.predictions))
    out["loadavg_after"] = os.getloadavg()[0]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--torch-threads", type=int, default=None)
    a = ap.parse_args(argv)
    r = bench_sim(a.batch, a.steps, a.hidden, a.layers, repeat=a.repeat, torch_threads=a.torch_threads)
    print(f"workload: batch {r['batch']} x {r['steps']} steps, H={r['hidden']}, L={r['layers']}, "
          f"taps {r['taps']}, d_max {r['d_max']}, {r['cores']} cores "
          f"(load average {r['loadavg_before']:.1f} before, {r['loadavg_after']:.1f} after)")
    print(f"sim.Network.run (bit-accurate): {r['sim_s']:.2f} s  = {r['sim_steps_per_s'] / 1e6:.3f} M steps*batch/s"
          f"  (CPU {r['sim_cpu_s']:.2f} s; {r['saturations']} saturation events)")
    if "torch_s" in r:
        print(f"torch float32 forward:          {r['torch_s']:.2f} s  = {r['torch_steps_per_s'] / 1e6:.3f} M "
              f"steps*batch/s  (CPU {r['torch_cpu_s']:.2f} s; {r['torch_threads']} threads)")
        print(f"ratio sim / torch: {r['ratio']:.2f}x wall, {r['cpu_ratio']:.2f}x CPU   "
              f"argmax agreement: {r['argmax_agreement']:.2f}")


if __name__ == "__main__":
    main()
