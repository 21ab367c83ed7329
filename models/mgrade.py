"""mGRADE in PyTorch: float model and hardware-aware (quantised) model in one set of modules.

    x --encoder--> a0 --[layer]x L--> a_L --decoder--> logits_t --mean over t (or last)--> logits

    layer:  s  = a                              (delay-line sample; q_dl in the quantised model)
            u  = DelayConv(s) (+ a)             depthwise causal conv, K taps with learnable delays
            z  = hard_sigmoid(Wz u + bz)        gate
            hc = Wh u + bh                      linear, signed candidate
            h_t = (1 - z_t) h_{t-1} + z_t hc_t  minGRU, trained with a parallel scan
            o  = h  or  heaviside(h)            (+ u)
            y  = MLP / GLU (o) (+ o)
            a' = norm(y)                        BatchNorm over (batch, time) in float training,
                                                folded into a per-channel affine g*y+b for the chip

The structure is the hardware definition :class:`spec.arch.Arch` (skip, mix, norm, rnn_out,
readout, taps, d_max, gate_bits). Two modes:

* float (``model.qat == False``): real arithmetic; delays are real positions spread over the
  integer delays by a Gaussian (sigma annealed during training) or triangle kernel (DCLS).
* hardware-aware (after :meth:`MGRADE.quantize`): BatchNorm folded, delays rounded to integers,
  and every tensor of the README's table fake-quantised to its format (exact rounding rule and
  saturation forward, straight-through estimators backward). In ``eval()`` mode the forward pass
  runs ``sim``'s integer engine (:class:`sim.Network`) on torch tensors of the exported integer
  tensors instead: the very code of ``sim/``, so the same bits by construction.
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from sim import Network, Result
from spec.arch import Arch, Formats, TensorSpec, tensor_specs
from spec.bundle import Bundle
from spec.fixedpoint import quantize_real

from . import kernels
from .noise import ChipSampler, LayerNoise, draw_chip
from .quant import fq_act, fq_gate, fq_weight, heaviside
from .scan import linear_scan_sequential

__all__ = ["MGRADE", "MGRADELayer", "DelayConv", "MinGRU", "ChannelNorm", "Mixer", "seq_mask",
           "BUNDLE_PARAMETERS", "BundleParameter", "parameter_path"]


def seq_mask(lengths, B: int, T: int, device) -> torch.Tensor | None:
    """(B, T) bool mask of valid steps, or None when every sequence has all T steps."""
    if lengths is None:
        return None
    lengths = torch.as_tensor(lengths, device=device).long()
    return torch.arange(T, device=device)[None, :] < lengths[:, None]


#: Where each bundle tensor lives in :class:`MGRADE`: tensor name -> parameter path, both per
#: layer relative to ``layers.{i}.``. Names, shapes, format roles and the bundle order are
#: :func:`spec.arch.tensor_specs`'s; this table only adds the module side, so that export
#: (:meth:`MGRADE.integer_tensors`), import (:meth:`MGRADE.load_integer_tensors`) and the
#: training projection (:meth:`MGRADE.clamp_`) all read the same pairs.
BUNDLE_PARAMETERS: dict[str, str] = {
    "enc.w": "encoder.weight", "enc.b": "encoder.bias", "enc.table": "encoder.weight",
    "conv.w": "conv.weight", "conv.delay": "conv.pos",
    "rnn.wz": "rnn.wz.weight", "rnn.bz": "rnn.wz.bias", "rnn.wh": "rnn.wh.weight", "rnn.bh": "rnn.wh.bias",
    "mix.w1": "mix.w1.weight", "mix.b1": "mix.w1.bias", "mix.w2": "mix.w2.weight", "mix.b2": "mix.w2.bias",
    "norm.g": "norm.weight", "norm.b": "norm.bias",
    "out.w": "decoder.weight", "out.b": "decoder.bias",
}


def parameter_path(name: str) -> str:
    """The :class:`MGRADE` parameter path of bundle tensor ``name``, e.g. ``'layers.1.rnn.bz'``
    -> ``'layers.1.rnn.wz.bias'`` (:data:`BUNDLE_PARAMETERS`)."""
    if name.startswith("layers."):
        _, i, rest = name.split(".", 2)
        return f"layers.{i}.{BUNDLE_PARAMETERS[rest]}"
    return BUNDLE_PARAMETERS[name]


class BundleParameter(NamedTuple):
    """One bundle tensor of a model: its spec, the module holding it and the parameter."""
    spec: TensorSpec
    owner: nn.Module       # DelayConv for 'delay' (codes: owner.delays()), ChannelNorm for norm.*
    param: nn.Parameter


class _Q:
    """Quantisation context: the formats of the hardware-aware model, or identities (float)."""

    def __init__(self, fmts: Formats | None, gate_bits: int):
        self.fmts, self.gate_bits = fmts, gate_bits

    @property
    def on(self) -> bool:
        return self.fmts is not None

    def w(self, t, role):
        return fq_weight(t, getattr(self.fmts, role)) if self.on else t

    def a(self, t, role):
        return fq_act(t, getattr(self.fmts, role)) if self.on else t

    def gate(self, x):
        return fq_gate(x, self.gate_bits if self.on else None, self.fmts.h.rounding if self.on else "half_up")

    def lin(self, x, lin: nn.Linear, w_role: str):
        return F.linear(x, self.w(lin.weight, w_role), self.w(lin.bias, "bias"))


# ---------------------------------------------------------------------------------------------
# Delay-line convolution with learnable spacings
# ---------------------------------------------------------------------------------------------
class DelayConv(nn.Module):
    """Depthwise causal convolution, K taps per channel, tap k of channel c delayed by ``pos[c,k]``.

    ``u[t, c] = Σ_k w[c, k] · s[t - pos[c, k], c]`` with ``pos`` real in ``[0, d_max]`` during
    float training: tap k's weight is spread over the integer delays j = 0..d_max by
    ``phi(j - pos)``, a Gaussian of width ``sigma`` normalised over j (``interp='gauss'``, DCLS) or
    the triangle ``relu(1 - |j - pos|)`` (``'linear'``: linear interpolation between the two
    neighbouring integer delays). ``sigma`` is a buffer the trainer anneals (:meth:`set_sigma`).
    After :meth:`harden` the delays are rounded to integers (``floor(pos + 1/2)``, clipped to
    ``[0, d_max]``) and the convolution reads K samples of the delay line.
    """

    def __init__(self, hidden: int, taps: int, d_max: int, interp: str = "gauss", sigma: float = 1.0):
        super().__init__()
        if interp not in ("gauss", "linear"):
            raise ValueError(f"interp must be 'gauss' or 'linear', not {interp!r}")
        self.hidden, self.taps, self.d_max, self.interp = hidden, taps, d_max, interp
        self.weight = nn.Parameter(torch.empty(hidden, taps))
        self.pos = nn.Parameter(torch.empty(hidden, taps))
        self.register_buffer("sigma", torch.tensor(float(sigma)))
        self.register_buffer("hard", torch.tensor(False))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            bound = 1.0 / math.sqrt(self.taps)
            self.weight.uniform_(-bound, bound)
            # evenly spread taps over [0, d_max] (a dilated kernel), jittered per channel
            base = torch.linspace(0, self.d_max, self.taps)
            step = self.d_max / max(self.taps - 1, 1)
            jitter = (torch.rand(self.hidden, self.taps) - 0.5) * step * 0.5
            self.pos.copy_((base[None, :] + jitter).clamp(0, self.d_max))

    def set_sigma(self, sigma: float) -> None:
        self.sigma.fill_(float(sigma))

    def clamp_(self) -> None:
        """Keep positions inside ``[0, d_max]`` (call after each optimiser step)."""
        with torch.no_grad():
            self.pos.clamp_(0, self.d_max)

    def delays(self) -> torch.Tensor:
        """Integer delays: ``floor(pos + 1/2)`` clipped to ``[0, d_max]`` (int64, (H, K))."""
        return torch.floor(self.pos.detach().clamp(0, self.d_max) + 0.5).long().clamp(0, self.d_max)

    def harden(self) -> None:
        """Round the delays to integers for good (hardware-aware mode)."""
        with torch.no_grad():
            self.pos.copy_(self.delays().to(self.pos.dtype))
        self.hard.fill_(True)

    def basis(self) -> torch.Tensor:
        """(H, K, d_max + 1): how each tap spreads over the integer delays 0..d_max."""
        j = torch.arange(self.d_max + 1, device=self.pos.device, dtype=self.pos.dtype)
        dist = j[None, None, :] - self.pos.clamp(0, self.d_max)[..., None]
        if self.interp == "linear":
            return F.relu(1.0 - dist.abs())
        g = torch.exp(-0.5 * (dist / self.sigma.to(dist.dtype)) ** 2)
        return g / (g.sum(-1, keepdim=True) + 1e-12)

    def kernel(self, w: torch.Tensor) -> torch.Tensor:
        """(H, d_max + 1): the dense causal kernel, ``kernel[c, j]`` multiplies ``s[t - j, c]``."""
        return torch.einsum("hk,hkj->hj", w, self.basis())

    @staticmethod
    def _dense(s: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
        B, T, H = s.shape
        D = kern.shape[1] - 1
        if D >= 64 and T >= 256:                                  # FFT convolution
            n = 1 << (T + D).bit_length()
            S = torch.fft.rfft(s.transpose(1, 2), n=n)
            Kf = torch.fft.rfft(kern, n=n)
            return torch.fft.irfft(S * Kf[None], n=n)[..., :T].transpose(1, 2)
        xs = F.pad(s.transpose(1, 2), (D, 0))
        return F.conv1d(xs, kern.flip(-1).unsqueeze(1), groups=H).transpose(1, 2)

    def _sparse(self, s: torch.Tensor, w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Exact tap sum with integer delays d (H, K): K gathers from the zero-padded line."""
        B, T, H = s.shape
        D = self.d_max
        line = F.pad(s, (0, 0, D, 0))
        t_idx = torch.arange(T, device=s.device)[:, None] + D
        out = None
        for k in range(self.taps):
            v = w[:, k] * line.gather(1, (t_idx - d[:, k][None, :]).expand(B, T, H))
            out = v if out is None else out + v
        return out

    def forward(self, s: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """``s`` (B, T, H) -> (B, T, H); ``w`` overrides the tap weights (fake-quantised ones)."""
        w = self.weight if w is None else w
        if bool(self.hard):
            out = self._sparse(s, w, self.delays())
            if self.pos.requires_grad and torch.is_grad_enabled():
                soft = self._dense(s, self.kernel(w))              # STE for the positions
                out = out + (soft - soft.detach())
            return out
        return self._dense(s, self.kernel(w))


# ---------------------------------------------------------------------------------------------
# minGRU
# ---------------------------------------------------------------------------------------------
class MinGRU(nn.Module):
    """minGRU with a linear, signed candidate: gate and candidate depend on the input only.

    ``z_t = gate(Wz u_t + bz)``, ``hc_t = Wh u_t + bh``, ``h_t = (1 - z_t) h_{t-1} + z_t hc_t``.
    Training uses :func:`models.kernels.linear_recurrence` (a fused Triton kernel on CUDA, the
    parallel scan :func:`models.scan.linear_scan` elsewhere); ``sequential=True`` runs the same
    recurrence one step at a time.

    Hardware-aware mode with ``exact_state`` (the default): the chip rounds ``h`` at every step
    (:func:`sim.mingru.state_update`), which leaves a dead band of up to ``2**(b_z-1)/k``
    LSB around ``hc`` for a slow gate ``k``, something the real-valued scan does not have. The
    forward pass then uses the exact integer state sequence and the backward pass the scan's
    gradient (a straight-through estimator for the whole recurrence).

    Noise-aware training (``nz``, one layer of a chip instance, :mod:`models.noise`): the gate,
    the candidate and the state take the values of the noisy chip (reference-level errors and
    comparator noise in the gate, kT/C in the candidate, :func:`sim.mingru.state_sequence_sc` for
    the state), their gradients stay the clean path's (straight through), as for the exact state.
    """

    exact_state = True

    def __init__(self, hidden: int, z_init: tuple[float, float] = (1 / 64, 0.5)):
        super().__init__()
        self.wz = nn.Linear(hidden, hidden)
        self.wh = nn.Linear(hidden, hidden)
        with torch.no_grad():
            # gate bias: z = hard_sigmoid(b) log-uniform in z_init (time constants 1/z steps)
            lo, hi = math.log(z_init[0]), math.log(z_init[1])
            z = torch.exp(torch.empty(hidden).uniform_(lo, hi))
            self.wz.bias.copy_(4.0 * (z - 0.5))
            self.wz.weight.mul_(0.5)

    def gate_and_candidate(self, u: torch.Tensor, q: _Q, nz: LayerNoise | None = None):
        x = q.lin(u, self.wz, "w_rnn")
        y = q.lin(u, self.wh, "w_rnn")
        z = q.gate(x)
        hc = q.a(y, "h")
        if nz is not None:                     # the noisy chip's values, the clean path's gradients
            ud = u.detach()
            z = z + (nz.gate(x.detach(), ud, q.gate_bits, q.fmts.h.rounding) - z).detach()
            hc = hc + (nz.candidate(y.detach(), ud, q.fmts.h) - hc).detach()
        return z, hc

    def forward(self, u: torch.Tensor, q: _Q, sequential: bool = False, nz: LayerNoise | None = None
                ) -> torch.Tensor:
        nz = nz if q.on else None
        z, hc = self.gate_and_candidate(u, q, nz)
        scan = linear_scan_sequential if sequential else kernels.linear_recurrence
        h = scan(1.0 - z, z * hc)              # h_t = (1 - z_t) h_{t-1} + z_t hc_t
        if q.on and (self.exact_state or nz is not None):
            fh, bz = q.fmts.h, q.gate_bits
            k = torch.round(z.detach() * 2.0 ** bz).long()
            hc_codes = torch.round(hc.detach() * 2.0 ** fh.frac).long()
            with torch.no_grad():                # (B, T, H) codes: sim.mingru.state_sequence or its kernel
                states = kernels.sc_state_sequence(k, hc_codes, bz, fh) if nz is None else \
                    nz.states(k, hc_codes, bz, fh)       # sim.mingru.state_sequence_sc, the chip's errors
            h_chip = states.to(h.dtype) * 2.0 ** -fh.frac
            return h + (h_chip - h).detach()
        return q.a(h, "h")


# ---------------------------------------------------------------------------------------------
# Channel mixer and normalisation
# ---------------------------------------------------------------------------------------------
class Mixer(nn.Module):
    """MLP (``W2 relu(W1 r + b1) + b2``) or GLU (``W2 (p_a * hard_sigmoid(p_b)) + b2``, ``p = W1 r + b1``)."""

    def __init__(self, hidden: int, width: int, kind: str):
        super().__init__()
        self.kind, self.width = kind, width
        self.w1 = nn.Linear(hidden, 2 * width if kind == "glu" else width)
        self.w2 = nn.Linear(width, hidden)

    def forward(self, r: torch.Tensor, q: _Q) -> torch.Tensor:
        if self.kind == "mlp":
            m1 = F.relu(q.a(q.lin(r, self.w1, "w_mix"), "act"))
        else:
            p = q.lin(r, self.w1, "w_mix")
            m1 = q.a(q.a(p[..., :self.width], "act") * q.gate(p[..., self.width:]), "act")
        return q.a(q.lin(m1, self.w2, "w_mix"), "act")


class ChannelNorm(nn.Module):
    """Per-channel affine normalisation.

    Float training: BatchNorm over (batch, time), padded steps excluded, with running statistics.
    After :meth:`fold`: the affine map ``g * y + b`` with ``g = gamma / sqrt(var + eps)`` and
    ``b = beta - mean * g``, what the chip computes (one multiply, one add per channel and step).
    """

    def __init__(self, hidden: int, momentum: float = 0.05, eps: float = 1e-5,
                 gain_range: tuple[float, float] | None = None):
        super().__init__()
        self.gain_range = gain_range      # the chip's g range (formats.w_norm): BN's gain is clipped to it
        self.weight = nn.Parameter(torch.ones(hidden))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.register_buffer("running_mean", torch.zeros(hidden))
        self.register_buffer("running_var", torch.ones(hidden))
        self.register_buffer("folded", torch.tensor(False))
        self.momentum, self.eps = momentum, eps

    def forward(self, y: torch.Tensor, mask: torch.Tensor | None, q: _Q) -> torch.Tensor:
        if bool(self.folded):
            return q.a(q.w(self.weight, "w_norm") * y + q.w(self.bias, "bias"), "act")
        if self.training:
            if mask is None:
                mean = y.mean(dim=(0, 1))
                var = y.var(dim=(0, 1), unbiased=False)
                n = y.shape[0] * y.shape[1]
            else:
                m = mask.unsqueeze(-1).to(y.dtype)
                n = m.sum().clamp_min(1.0)
                mean = (y * m).sum(dim=(0, 1)) / n
                var = (((y - mean) ** 2) * m).sum(dim=(0, 1)) / n
                n = int(n.item())
            with torch.no_grad():
                unbiased = var * n / max(n - 1, 1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return (y - mean) * self.gain(var) + self.bias

    def gain(self, var: torch.Tensor) -> torch.Tensor:
        g = self.weight * torch.rsqrt(var + self.eps)
        return g if self.gain_range is None else g.clamp(*self.gain_range)

    @torch.no_grad()
    def fold(self) -> None:
        if bool(self.folded):
            return
        g = self.gain(self.running_var)
        b = self.bias - self.running_mean * g
        self.weight.copy_(g)
        self.bias.copy_(b)
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.folded.fill_(True)


# ---------------------------------------------------------------------------------------------
# Layer and network
# ---------------------------------------------------------------------------------------------
class MGRADELayer(nn.Module):
    def __init__(self, arch: Arch, interp: str = "gauss", sigma: float = 1.0,
                 gain_range: tuple[float, float] | None = None):
        super().__init__()
        H = arch.hidden
        self.arch = arch
        self.conv = DelayConv(H, arch.taps, arch.d_max, interp, sigma) if arch.taps else None
        self.rnn = MinGRU(H)
        self.mix = Mixer(H, arch.mix_width, arch.mix) if arch.mix != "none" else None
        self.norm = ChannelNorm(H, gain_range=gain_range) if arch.norm == "affine" else None

    def forward(self, a: torch.Tensor, mask, q: _Q, sequential: bool = False, nz: LayerNoise | None = None
                ) -> torch.Tensor:
        arch = self.arch
        if self.conv is not None:
            s = q.a(a, "dl")                                               # delay-line sample
            u = q.a(self.conv(s, q.w(self.conv.weight, "w_conv")), "act")  # Σ_k w line[t - d]
            if arch.skip:
                u = q.a(u + a, "act")
        else:
            u = a
        h = self.rnn(u, q, sequential, nz)                                 # minGRU
        if arch.rnn_out == "linear":
            o = q.a(h, "act")
        else:
            o = heaviside(h)
            if nz is not None and q.on and nz.has_heaviside:               # comparator offset + noise
                o = o + (nz.heaviside(h.detach(), q.fmts.h) - o).detach()
        r = q.a(o + u, "act") if arch.skip else o
        if self.mix is not None:
            m = self.mix(r, q)
            y = q.a(m + r, "act") if arch.skip else m
        else:
            y = r
        return self.norm(y, mask, q) if self.norm is not None else y


class MGRADE(nn.Module):
    """The mGRADE network for an :class:`spec.arch.Arch`.

    Inputs are what ``sim/`` takes: ``x`` (B, T, d_in) integer codes in ``formats.x`` for a linear
    encoder (float tensors are taken as real values), or (B, T) token ids for an embedding
    encoder; ``lengths`` (B,) for padded batches.

    Parameters beyond the architecture: ``interp`` ('gauss' | 'linear') and ``sigma`` of the
    learnable-delay kernel, ``formats`` the fixed-point formats used by :meth:`quantize`.

    Noise-aware training: :meth:`set_noise` gives the model a :class:`models.noise.ChipSampler`
    (``model.noise``); then every forward of the quantised model in training mode draws a new
    chip instance and fresh dynamic noise (:mod:`models.noise`). Evaluation (``eval()``: the
    integer path; ``path='float'``) stays noise-free, and so does everything exported.
    """

    #: noise-aware training's chips (:meth:`set_noise`); None: noise-free
    noise: ChipSampler | None = None

    def __init__(self, arch: Arch, formats: Formats | None = None, interp: str = "gauss",
                 sigma: float | None = None):
        super().__init__()
        self.arch = arch
        self.formats = formats or Formats()
        self.interp = interp
        sigma = float(sigma if sigma is not None else max(0.5, arch.d_max / (2 * max(arch.taps, 1))))
        H = arch.hidden
        if arch.encoder == "linear":
            self.encoder = nn.Linear(arch.d_in, H)
        else:
            self.encoder = nn.Embedding(arch.d_in, H)
            nn.init.normal_(self.encoder.weight, std=1.0)
        wn = self.formats.w_norm
        gain_range = (float(wn.min_value), float(wn.max_value))
        self.layers = nn.ModuleList(MGRADELayer(arch, interp, sigma, gain_range) for _ in range(arch.layers))
        self.decoder = nn.Linear(H, arch.n_classes)
        self.register_buffer("qat", torch.tensor(False))

    # -- configuration -------------------------------------------------------------------------
    @property
    def quantized(self) -> bool:
        return bool(self.qat)

    def config(self) -> dict:
        return {"arch": self.arch.to_json(), "formats": self.formats.to_json(), "interp": self.interp}

    def convs(self):
        return [layer.conv for layer in self.layers if layer.conv is not None]

    def set_sigma(self, sigma: float) -> None:
        for c in self.convs():
            c.set_sigma(sigma)

    @torch.no_grad()
    def quantize(self, formats: Formats | None = None, train_delays: bool = False) -> "MGRADE":
        """Switch to the hardware-aware model: fold the norms, round the delays, fake-quantise.

        ``train_delays``: keep learning the (now integer) delays through a straight-through
        estimator on the soft kernel; by default they are frozen at their rounded values.
        """
        if formats is not None:
            self.formats = formats
        for layer in self.layers:
            if layer.norm is not None:
                layer.norm.fold()
            if layer.conv is not None:
                layer.conv.harden()
                layer.conv.pos.requires_grad_(train_delays)
        self.qat.fill_(True)
        return self

    def _q(self) -> _Q:
        return _Q(self.formats if self.quantized else None, self.arch.gate_bits)

    def set_noise(self, noise, seed: int = 0, clean: float = 0.0) -> "MGRADE":
        """Noise-aware training at ``noise`` (a :class:`sim.NoiseModel`, a
        :class:`models.noise.ChipSampler`, or None for none): from now on each forward pass of the
        quantised model in training mode sees a new chip instance (static errors drawn by
        ``noise.realize``, chip ``n`` seeded from ``seed`` and ``n``) and fresh dynamic noise
        (a torch generator seeded by ``seed``), except a fraction ``clean`` of the batches, which run
        noise-free (:class:`models.noise.ChipSampler`). Not part of the state dict or the bundle."""
        self.noise = noise if noise is None or isinstance(noise, ChipSampler) else ChipSampler(noise, seed, clean)
        return self

    def draw_noise(self, device) -> list[LayerNoise] | None:
        """The next chip instance per layer, if this forward is noise-aware (quantised, training,
        a noise model set, not one of the sampler's noise-free batches), else None."""
        if self.noise is None or not self.quantized or not self.training:
            return None
        return draw_chip(self, self.noise, device, self.decoder.weight.dtype)

    # -- forward ---------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, q: _Q) -> torch.Tensor:
        if self.arch.encoder == "embedding":
            return q.w(self.encoder.weight, "act")[x.long()]
        dtype = self.decoder.weight.dtype
        xv = x.to(dtype) * 2.0 ** -self.formats.x.frac if not x.dtype.is_floating_point else x.to(dtype)
        return q.a(q.lin(xv, self.encoder, "w_enc"), "act")

    def step_logits(self, x: torch.Tensor, lengths=None, sequential: bool = False) -> torch.Tensor:
        """Per-step logits (B, T, C) of the float or fake-quantised model."""
        q = self._q()
        B, T = x.shape[0], x.shape[1]
        mask = seq_mask(lengths, B, T, x.device)
        a = self.encode(x, q)
        chip = self.draw_noise(x.device)
        for i, layer in enumerate(self.layers):
            a = layer(a, mask, q, sequential, None if chip is None else chip[i])
        return q.a(q.lin(a, self.decoder, "w_out"), "logit")

    def readout(self, steps: torch.Tensor, lengths=None) -> torch.Tensor:
        B, T = steps.shape[:2]
        if self.arch.readout == "last":
            idx = (torch.as_tensor(lengths, device=steps.device).long() - 1) if lengths is not None \
                else torch.full((B,), T - 1, device=steps.device, dtype=torch.long)
            return steps[torch.arange(B, device=steps.device), idx]
        mask = seq_mask(lengths, B, T, steps.device)
        if mask is None:
            return steps.mean(dim=1)
        m = mask.unsqueeze(-1).to(steps.dtype)
        return (steps * m).sum(dim=1) / m.sum(dim=1)

    def forward(self, x: torch.Tensor, lengths=None, *, sequential: bool = False, path: str = "auto",
                return_steps: bool = False):
        """Class logits (B, C), real-valued (mean readout: the mean over valid steps).

        ``path``: 'auto' (integer path for a quantised model in eval mode, else float/fake-quant),
        'float' (the float or fake-quantised forward), 'int' (the integer path; quantised only).
        """
        use_int = path == "int" or (path == "auto" and self.quantized and not self.training)
        if use_int:
            res = self.run_integer(x, lengths)
            f = self.formats.logit.frac
            steps = res.step_logits.to(self.decoder.weight.dtype) * 2.0 ** -f
            logits = res.logits.to(steps.dtype) * 2.0 ** -f
            if self.arch.readout == "mean":
                n = torch.full((x.shape[0],), x.shape[1], device=x.device) if lengths is None \
                    else torch.as_tensor(lengths, device=x.device)
                logits = logits / n.to(steps.dtype)[:, None]
        else:
            steps = self.step_logits(x, lengths, sequential)
            logits = self.readout(steps, lengths)
        return (logits, steps) if return_steps else logits

    # -- integer path ----------------------------------------------------------------------------
    def bundle_parameters(self) -> list[BundleParameter]:
        """Every tensor of :func:`spec.arch.tensor_specs` (bundle order) with its parameter."""
        out = []
        for spec in tensor_specs(self.arch):
            path = parameter_path(spec.name)
            out.append(BundleParameter(spec, self.get_submodule(path.rpartition(".")[0]), self.get_parameter(path)))
        return out

    def parameter_roles(self) -> dict[str, tuple[torch.Tensor, str]]:
        """Bundle tensor name -> (parameter, format role), for every parameter the chip stores
        (the delays, role 'delay', are handled by :meth:`DelayConv.delays`). An unfolded norm is
        left out: it holds BatchNorm's gamma and beta, not yet the chip's ``g`` and ``b``."""
        return {b.spec.name: (b.param, b.spec.role) for b in self.bundle_parameters()
                if b.spec.role != "delay" and not (isinstance(b.owner, ChannelNorm) and not b.owner.folded)}

    @torch.no_grad()
    def clamp_(self) -> None:
        """Project the parameters onto what the chip can hold (call after each optimiser step):
        tap positions into ``[0, d_max]``, every stored parameter into its format's range."""
        for c in self.convs():
            c.clamp_()
        for t, role in self.parameter_roles().values():
            f = getattr(self.formats, role)
            t.clamp_(float(f.min_value), float(f.max_value))

    @torch.no_grad()
    def integer_tensors(self, count: dict | None = None) -> dict[str, torch.Tensor]:
        """The bundle's integer tensors (int64, on the model's device) of the quantised model.

        Every parameter is rounded to its role's format by :func:`spec.fixedpoint.quantize_real`
        (the rule the fake quantiser applies in training); saturations go into ``count``.
        """
        if not self.quantized:
            raise RuntimeError("integer_tensors() needs a quantised model: call model.quantize() first "
                               "(or use models.export.bundle_from_model, which works on a copy)")
        out: dict[str, torch.Tensor] = {}
        for spec, owner, param in self.bundle_parameters():
            if spec.role == "delay":
                out[spec.name] = owner.delays()
                continue
            codes, n = quantize_real(param.detach(), getattr(self.formats, spec.role))
            out[spec.name] = codes
            if count is not None and n:
                count[spec.name] = count.get(spec.name, 0) + n
        return out

    @torch.no_grad()
    def run_integer(self, x, lengths=None, trace: bool = False) -> Result:
        """The quantised model's exact integer forward: ``sim``'s engine on this model's device.

        ``x``: (B, T, d_in) input codes (real samples are quantised to ``formats.x`` first) or
        (B, T) token ids; ``lengths``: optional (B,) valid steps. Returns a :class:`sim.Result`
        of torch tensors."""
        dev = self.decoder.weight.device
        x = torch.as_tensor(x, device=dev)
        if self.arch.encoder == "linear" and x.dtype.is_floating_point:
            x, _ = quantize_real(x, self.formats.x)
        tensors = {k: v.cpu().numpy() for k, v in self.integer_tensors().items()}
        return Network(Bundle(self.arch, self.formats, tensors)).run(x, lengths=lengths, trace=trace)

    @torch.no_grad()
    def load_integer_tensors(self, tensors: dict) -> "MGRADE":
        """Set the parameters of a quantised model to integer codes ``* 2**-frac`` (import)."""
        if not self.quantized:
            self.quantize()
        for spec, _, param in self.bundle_parameters():
            codes = torch.as_tensor(tensors[spec.name])
            if spec.role == "delay":
                param.copy_(codes.to(param.dtype))          # the positions are the integer delays
                continue
            v = codes.to(torch.float64) * 2.0 ** -getattr(self.formats, spec.role).frac
            param.copy_(v.to(param.dtype).reshape(param.shape))
        return self

    def quantized_copy(self, formats: Formats | None = None) -> "MGRADE":
        """A quantised deep copy (the float model stays as it is)."""
        return copy.deepcopy(self).quantize(formats)
