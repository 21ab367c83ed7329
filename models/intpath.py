"""The hardware-aware model's evaluation path: the README's integer arithmetic, row by row, in PyTorch.

Everything here is exact integer arithmetic on ``torch.int64`` tensors, written with the
contract's own operations (:func:`spec.fixedpoint.requantize`, :func:`~spec.fixedpoint.saturate`,
:func:`~spec.fixedpoint.round_shift`, :func:`~spec.fixedpoint.align`, :func:`spec.arch.gate_code`).
Matrix products run in float64 and come back through :func:`~spec.fixedpoint.to_int64`; they are
exact because every partial sum is an integer below :func:`spec.arch.acc_bound` < 2**53 (asserted).

Only the switched-capacitor state update depends on the previous step, so every other row is
evaluated for all time steps at once and the state update runs as a loop over time
(:func:`sc_state_update`, the one place where ``h`` changes). The result is what ``sim/``
computes for the same bundle and input, bit for bit.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Mapping

import numpy as np
import torch

from spec.arch import Arch, Formats, acc_bound, acc_frac, gate_code
from spec.fixedpoint import Format, align, requantize, round_shift, saturate, to_int64

__all__ = ["IntResult", "run_integer", "sc_state_update", "as_int_tensors", "saturation_points",
           "sc_state_sequence"]


@dataclasses.dataclass
class IntResult:
    """Integer outputs: ``logits`` (B, C) in ``logit_acc`` (mean readout: the sum over valid steps)
    or ``logit`` (last readout), ``step_logits`` (B, T, C) in ``logit``, saturation counts by
    tensor, the trace (only with ``trace=True``) and the argmax ``predictions`` (B,)."""

    logits: torch.Tensor
    step_logits: torch.Tensor
    saturations: dict[str, int]
    trace: dict[str, torch.Tensor]
    predictions: torch.Tensor


def as_int_tensors(tensors: Mapping[str, object], device=None) -> dict[str, torch.Tensor]:
    """Bundle tensors (NumPy or torch, any integer dtype) as int64 torch tensors."""
    out = {}
    for k, v in tensors.items():
        t = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v)
        out[k] = t.to(device=device, dtype=torch.int64)
    return out


def sc_state_update(h: torch.Tensor, k: torch.Tensor, hc: torch.Tensor, gate_bits: int, h_fmt: Format):
    """README "SC state update": ``h = sat_h(h + round_h((k * (hc - h)) / 2**b_z))``.

    ``h + z (hc - h)`` with ``z = k / 2**b_z``: charge sharing between the state capacitor and the
    z-weighted bank. Returns ``(h, number_of_saturations)``.
    """
    return saturate(h + round_shift(k * (hc - h), gate_bits, h_fmt.rounding), h_fmt)


@torch.no_grad()
def sc_state_sequence(k: torch.Tensor, hc: torch.Tensor, gate_bits: int, h_fmt: Format) -> torch.Tensor:
    """All states (B, T, H) of :func:`sc_state_update` from ``h = 0``, without saturation counts
    (no host synchronisation per step): the hardware-aware training forward uses it."""
    h = torch.zeros_like(hc[:, 0])
    out = torch.empty_like(hc)
    for t in range(hc.shape[1]):
        h = (h + round_shift(k[:, t] * (hc[:, t] - h), gate_bits, h_fmt.rounding)).clamp_(h_fmt.min_int,
                                                                                           h_fmt.max_int)
        out[:, t] = h
    return out


def saturation_points(arch: Arch) -> list[str]:
    """Names of the points that can saturate (the keys of ``IntResult.saturations``), as in
    the trace: a key counts events at every rounding point of that tensor (``u``: the conv's
    requantisation and the skip add; ``y``: the mixer's projection and its skip add; ``m1``: both
    GLU requantisations)."""
    out = ["enc"] if arch.encoder == "linear" else []
    for i in range(arch.layers):
        p = f"layers.{i}."
        out += [p + "s", p + "u"] if arch.taps else []
        out += [p + "hc", p + "h"]
        out += [p + "o"] if arch.rnn_out == "linear" else []
        out += [p + "r"] if arch.skip else []
        out += [p + "m1", p + "y"] if arch.mix != "none" else []
        out += [p + "a"] if arch.norm == "affine" else []
    return out + ["logit"] + (["logit_acc"] if arch.readout == "mean" else [])


def run_integer(arch: Arch, fmts: Formats, tensors: Mapping[str, torch.Tensor], x, lengths=None,
                trace: bool = False) -> IntResult:
    """Run the network on integer inputs.

    x: (B, T, d_in) codes in ``fmts.x`` (linear encoder) or (B, T) token ids (embedding encoder).
    lengths: (B,) valid steps per sequence (padded batches); the readout uses steps ``t < length``.
    """
    dev = next(iter(tensors.values())).device
    P = {k: v.to(dev, torch.int64) for k, v in tensors.items()}
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dev)
    if x.dtype.is_floating_point:
        x = to_int64(x)
    x = x.to(torch.int64)
    B, T = x.shape[0], x.shape[1]
    H, C, bz = arch.hidden, arch.n_classes, arch.gate_bits
    fa = fmts.act.frac
    sats: Counter = Counter({n: 0 for n in saturation_points(arch)})
    tr: dict[str, torch.Tensor] = {}

    def count(name, v, fmt, n):           # v: (B, T, ...) before saturation; padded steps do not count
        if n:
            m = valid.reshape(valid.shape + (1,) * (v.dim() - 2))
            n = int((((v < fmt.min_int) | (v > fmt.max_int)) & m).sum())
        if n:
            sats[name] += n

    def q(acc, frac, fmt, name):          # q_F(acc, f): round to F's grid, saturate, count
        v = round_shift(acc, frac - fmt.frac, fmt.rounding)
        codes, n = saturate(v, fmt)
        count(name, v, fmt, n)
        return codes

    def sat(v, fmt, name):                # sat_F(v): saturate only, count
        codes, n = saturate(v, fmt)
        count(name, v, fmt, n)
        return codes

    def sat_acc(v, fmt, name):            # readout accumulator (B, C): every step given counts
        codes, n = saturate(v, fmt)
        sats[name] += n
        return codes

    def mac(v, w, fin, fw, b=None):       # exact W·v (+ b aligned to the accumulator)
        n = w.shape[1]
        assert acc_bound(n, fin, fw, fmts.bias if b is not None else None) < 2 ** 53
        acc = to_int64(torch.matmul(v.to(torch.float64), w.to(torch.float64).T))
        if b is not None:
            acc = acc + align(b, fmts.bias.frac, acc_frac(fin, fw))
        return acc

    def keep(name, v):
        if trace:
            tr[name] = v

    if lengths is None:
        lengths_t = torch.full((B,), T, dtype=torch.int64, device=dev)
    else:
        lengths_t = torch.as_tensor(np.asarray(lengths) if not isinstance(lengths, torch.Tensor) else lengths)
        lengths_t = lengths_t.to(dev, torch.int64)
        if lengths_t.numel() != B or lengths_t.min() < 1 or lengths_t.max() > T:
            raise ValueError(f"lengths must be {B} values in 1..{T}")
    valid = torch.arange(T, device=dev)[None, :] < lengths_t[:, None]   # (B, T) steps that count

    # ---- encoder -------------------------------------------------------------------------
    if arch.encoder == "linear":
        if x.dim() != 3 or x.shape[2] != arch.d_in:
            raise ValueError(f"linear encoder expects x of shape (B, T, {arch.d_in}), got {tuple(x.shape)}")
        if not fmts.x.contains(x.cpu().numpy()):
            raise ValueError(f"input codes outside {fmts.x.name}")
        a = q(mac(x, P["enc.w"], fmts.x, fmts.w_enc, P["enc.b"]), acc_frac(fmts.x, fmts.w_enc), fmts.act, "enc")
    else:
        if x.dim() != 2:
            raise ValueError(f"embedding encoder expects token ids of shape (B, T), got {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= arch.d_in):
            raise ValueError(f"token ids outside 0..{arch.d_in - 1}")
        a = P["enc.table"][x]                                            # a0 = table[token]
    keep("enc", a)

    for i in range(arch.layers):
        p = f"layers.{i}."
        # ---- delay line + convolution ---------------------------------------------------
        if arch.taps:
            s = q(a, fa, fmts.dl, p + "s")                                # s = q_dl(a)
            keep(p + "s", s)
            D = arch.d_max
            w, d = P[p + "conv.w"], P[p + "conv.delay"]                  # (H, K)
            line = torch.cat([s.new_zeros(B, D, H), s], dim=1)           # line[c, t-d] = 0 for t-d < 0
            t_idx = torch.arange(T, device=dev)[:, None] + D             # position of s_t in line
            acc = torch.zeros_like(s)
            for kk in range(arch.taps):
                idx = (t_idx - d[:, kk][None, :]).expand(B, T, H)
                acc = acc + w[:, kk] * line.gather(1, idx)               # Σ_k w[c,k] line[c, t-d[c,k]]
            u = q(acc, fmts.dl.frac + fmts.w_conv.frac, fmts.act, p + "u")
            if arch.skip:
                u = sat(u + a, fmts.act, p + "u")                        # conv skip
        else:
            u = a
        keep(p + "u", u)

        # ---- minGRU: gate and candidate -------------------------------------------------
        f_rnn = acc_frac(fmts.act, fmts.w_rnn)
        k = gate_code(mac(u, P[p + "rnn.wz"], fmts.act, fmts.w_rnn, P[p + "rnn.bz"]), f_rnn, bz,
                      fmts.h.rounding)                                     # k in 0..2^b_z - 1
        hc = q(mac(u, P[p + "rnn.wh"], fmts.act, fmts.w_rnn, P[p + "rnn.bh"]), f_rnn, fmts.h, p + "hc")
        keep(p + "k", k)
        keep(p + "hc", hc)

        # ---- SC state update, step by step ----------------------------------------------
        h = torch.zeros(B, H, dtype=torch.int64, device=dev)
        hs = []
        for t in range(T):
            h_new, n = sc_state_update(h, k[:, t], hc[:, t], bz, fmts.h)
            if n:                                                         # count valid steps only
                h_unsat = h + round_shift(k[:, t] * (hc[:, t] - h), bz, fmts.h.rounding)
                out_of_range = (h_unsat < fmts.h.min_int) | (h_unsat > fmts.h.max_int)
                sats[p + "h"] += int((out_of_range & valid[:, t, None]).sum())
            h = h_new
            hs.append(h)
        h = torch.stack(hs, dim=1)
        keep(p + "h", h)

        # ---- output + rnn skip -----------------------------------------------------------
        if arch.rnn_out == "linear":
            o = q(h, fmts.h.frac, fmts.act, p + "o")
        else:
            o = (h > 0).to(torch.int64) << fa                              # 1.0 or 0
        keep(p + "o", o)
        r = sat(o + u, fmts.act, p + "r") if arch.skip else o
        keep(p + "r", r)

        # ---- channel mixer ---------------------------------------------------------------
        f_mix = acc_frac(fmts.act, fmts.w_mix)
        if arch.mix == "none":
            y = r
        else:
            pre = mac(r, P[p + "mix.w1"], fmts.act, fmts.w_mix, P[p + "mix.b1"])
            if arch.mix == "mlp":
                m1 = q(pre, f_mix, fmts.act, p + "m1").clamp_min(0)        # ReLU
            else:
                E = arch.mix_width
                val = q(pre[..., :E], f_mix, fmts.act, p + "m1")
                gk = gate_code(pre[..., E:], f_mix, bz, fmts.h.rounding)
                m1 = q(val * gk, fa + bz, fmts.act, p + "m1")              # value * gate(p[E:])
            keep(p + "m1", m1)
            m2 = q(mac(m1, P[p + "mix.w2"], fmts.act, fmts.w_mix, P[p + "mix.b2"]), f_mix, fmts.act, p + "y")
            y = sat(m2 + r, fmts.act, p + "y") if arch.skip else m2
        keep(p + "y", y)

        # ---- normalisation (folded affine) ----------------------------------------------
        if arch.norm == "affine":
            f_n = acc_frac(fmts.act, fmts.w_norm)
            acc = P[p + "norm.g"] * y + align(P[p + "norm.b"], fmts.bias.frac, f_n)
            a = q(acc, f_n, fmts.act, p + "a")
        else:
            a = y
        keep(p + "a", a)

    # ---- decoder + readout -----------------------------------------------------------------
    l = q(mac(a, P["out.w"], fmts.act, fmts.w_out, P["out.b"]), acc_frac(fmts.act, fmts.w_out),
          fmts.logit, "logit")
    if arch.readout == "mean":
        lv = torch.where(valid.unsqueeze(-1), l, torch.zeros_like(l))
        if T * max(-fmts.logit.min_int, fmts.logit.max_int) <= fmts.logit_acc.max_int:
            logits = lv.sum(dim=1)                 # no partial sum can leave logit_acc
        else:
            acc = torch.zeros(B, C, dtype=torch.int64, device=dev)
            for t in range(T):
                acc = sat_acc(acc + lv[:, t], fmts.logit_acc, "logit_acc")
            logits = acc
    else:
        logits = l[torch.arange(B, device=dev), lengths_t - 1]
    return IntResult(logits, l, dict(sats), tr, logits.argmax(dim=-1))
