"""Float64 reference of the same network: what the fixed-point model approximates.

Same topology and the same weights (real value = code * lsb, delays as integers), but no
rounding and no saturation anywhere, and the continuous hard sigmoid ``z = clip(x/4 + 1/2, 0, 1)``
for the minGRU gate and the GLU gate. Heaviside outputs stay ``1.0 if h > 0 else 0``.

Written independently of :mod:`sim.network` (plain whole-sequence float64 code, a Python loop
only for ``h``), so that agreement between the two is evidence, not a tautology:
with very wide formats the fixed-point model converges to this reference
(``tests/test_sim_reference.py``); :func:`deviation` measures how far the default formats are.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from spec.arch import tensor_specs
from spec.bundle import Bundle

from .network import Network, Result

__all__ = ["float_params", "Reference", "ReferenceResult", "deviation"]


def float_params(bundle: Bundle) -> dict[str, np.ndarray]:
    """Real values of every tensor (``code * lsb``); delays stay integer steps."""
    out = {}
    for s in tensor_specs(bundle.arch):
        a = np.asarray(bundle[s.name])
        if s.role == "delay":
            out[s.name] = a.astype(np.int64)
        else:
            out[s.name] = a.astype(np.float64) * float(getattr(bundle.formats, s.role).lsb)
    return out


def _hard_sigmoid(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 4.0 + 0.5, 0.0, 1.0)


@dataclasses.dataclass
class ReferenceResult:
    """Real-valued counterpart of :class:`sim.network.Result` (same keys in ``trace``; ``k`` holds z)."""

    logits: np.ndarray            # (B, C): sum of step logits over valid steps (mean) or last valid step
    step_logits: np.ndarray       # (B, T, C)
    trace: dict[str, np.ndarray] | None = None


class Reference:
    """Float64 forward pass of ``bundle``'s network."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.arch = bundle.arch
        self.formats = bundle.formats
        self.p = float_params(bundle)

    def run(self, x: Any, *, lengths: Any = None, trace: bool = False) -> ReferenceResult:
        """``x`` as for :meth:`Network.run` (integer input codes or token ids)."""
        A, P = self.arch, self.p
        x = np.asarray(x)
        tr: dict[str, np.ndarray] = {}
        if A.encoder == "linear":
            xr = x.astype(np.float64) * float(self.formats.x.lsb)
            a = xr @ P["enc.w"].T + P["enc.b"]
        else:
            a = P["enc.table"][x]
        B, T = a.shape[:2]
        tr["enc"] = a
        for i in range(A.layers):
            a = self._layer(i, a, tr)
        step = a @ P["out.w"].T + P["out.b"]
        tr["step_logits"] = step
        if lengths is None:
            lengths = np.full(B, T)
        lengths = np.asarray(lengths, dtype=np.int64)
        if A.readout == "mean":
            mask = np.arange(T)[None, :] < lengths[:, None]
            logits = (step * mask[..., None]).sum(axis=1)
        else:
            logits = step[np.arange(B), lengths - 1]
        return ReferenceResult(logits, step, tr if trace else None)

    def _layer(self, i: int, a: np.ndarray, tr: dict) -> np.ndarray:
        A, P = self.arch, self.p
        p = f"layers.{i}."
        B, T, H = a.shape
        if A.taps:
            tr[p + "s"] = a
            d, w = P[p + "conv.delay"], P[p + "conv.w"]
            ap = np.concatenate([np.zeros((B, A.d_max, H)), a], axis=1)
            t = np.arange(T)[:, None]
            ch = np.arange(H)[None, :]
            u = np.zeros_like(a)
            for k in range(A.taps):
                u += w[:, k] * ap[:, A.d_max - d[:, k][None, :] + t, ch]
            if A.skip:
                u = u + a
        else:
            u = a
        tr[p + "u"] = u
        z = _hard_sigmoid(u @ P[p + "rnn.wz"].T + P[p + "rnn.bz"])
        hc = u @ P[p + "rnn.wh"].T + P[p + "rnn.bh"]
        h = np.zeros((B, H))
        hs = np.empty_like(hc)
        for t in range(T):
            h = h + z[:, t] * (hc[:, t] - h)
            hs[:, t] = h
        tr[p + "k"], tr[p + "hc"], tr[p + "h"] = z, hc, hs
        o = hs if A.rnn_out == "linear" else (hs > 0).astype(np.float64)
        tr[p + "o"] = o
        r = o + u if A.skip else o
        if A.skip:
            tr[p + "r"] = r
        if A.mix != "none":
            E = A.mix_width
            pr = r @ P[p + "mix.w1"].T + P[p + "mix.b1"]
            m1 = np.maximum(pr, 0.0) if A.mix == "mlp" else pr[..., :E] * _hard_sigmoid(pr[..., E:])
            tr[p + "m1"] = m1
            y = m1 @ P[p + "mix.w2"].T + P[p + "mix.b2"]
            if A.skip:
                y = y + r
            tr[p + "y"] = y
        else:
            y = r
        out = y * P[p + "norm.g"] + P[p + "norm.b"] if A.norm == "affine" else y
        tr[p + "a"] = out
        return out


def _real(net: Network, res: Result) -> tuple[np.ndarray, np.ndarray]:
    F = net.formats
    acc_lsb = float((F.logit_acc if net.arch.readout == "mean" else F.logit).lsb)
    return res.logits * acc_lsb, res.step_logits * float(F.logit.lsb)


def deviation(bundle: Bundle, x: Any, *, lengths: Any = None, net: Network | None = None) -> dict[str, float]:
    """How far the bit-accurate model is from the float64 reference on input ``x``.

    Returns (real units; ``rel`` = divided by the reference's largest magnitude):
    ``logits_max_abs``, ``logits_rel``, ``step_logits_max_abs``, ``step_logits_rms``,
    ``step_logits_rel``, ``argmax_agreement`` (fraction of sequences with the same prediction),
    and per layer ``layers.{i}.h_rms`` / ``layers.{i}.h_rel`` (state error) and
    ``layers.{i}.a_rms`` (layer output error). Steps past ``lengths`` are included in the
    per-step figures.
    """
    net = net or Network(bundle)
    res = net.run(x, lengths=lengths, trace=True)
    ref = Reference(bundle).run(x, lengths=lengths, trace=True)
    F = net.formats
    lg, st = _real(net, res)
    out: dict[str, float] = {}
    scale = max(float(np.abs(ref.logits).max()), 1e-300)
    out["logits_max_abs"] = float(np.abs(lg - ref.logits).max())
    out["logits_rel"] = out["logits_max_abs"] / scale
    d = st - ref.step_logits
    out["step_logits_max_abs"] = float(np.abs(d).max())
    out["step_logits_rms"] = float(np.sqrt(np.mean(d ** 2)))
    out["step_logits_rel"] = out["step_logits_max_abs"] / max(float(np.abs(ref.step_logits).max()), 1e-300)
    out["argmax_agreement"] = float(np.mean(np.argmax(lg, -1) == np.argmax(ref.logits, -1)))
    for i in range(net.arch.layers):
        p = f"layers.{i}."
        hd = res.trace[p + "h"] * float(F.h.lsb) - ref.trace[p + "h"]
        out[p + "h_rms"] = float(np.sqrt(np.mean(hd ** 2)))
        out[p + "h_rel"] = float(np.abs(hd).max()) / max(float(np.abs(ref.trace[p + "h"]).max()), 1e-300)
        ad = res.trace[p + "a"] * float(F.act.lsb) - ref.trace[p + "a"]
        out[p + "a_rms"] = float(np.sqrt(np.mean(ad ** 2)))
    return out
