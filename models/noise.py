"""Noise-aware training: the chip non-idealities of :class:`sim.NoiseModel` in the torch forward.

Nothing here re-defines a non-ideality. The physics and its conversion to LSB are
:mod:`sim.noise`'s: every batch draws a fresh chip instance with
:meth:`sim.NoiseModel.realize` (the same function ``sim.Network(bundle, noise=...)`` calls, on the
model's current integer ``Wz``, ``Wh`` codes), and its arrays are moved to torch. The SC state
update with mismatch, leakage, charge injection and kT/C is :func:`sim.mingru.state_sequence_sc`
itself, run on torch tensors. What this module adds is only *where* each LSB-valued error enters
the fake-quantised forward, mirroring ``sim/network.py``:

==================== ================================== =============================================
sim/network.py       what is added (LSB of)             torch forward (:class:`models.mgrade.MinGRU`)
==================== ================================== =============================================
``_projections_sc``  ``u @ dwz.T``, ``u @ dwh.T``        to the pre-activations ``Wz u + bz``, ``Wh u +
                     (reference levels, w_rnn)          bh`` (errors in value units, ``2**-w_rnn.frac``)
``_projections_sc``  gate offset + noise (gate code)    to the gate's pre-rounding value
                                                        ``(x/4 + 1/2) 2**b_z``, before round and clip
``_projections_sc``  kT/C of the candidate (h)          to ``hc * 2**h.frac`` before round and saturate
``_recur``           ``z_eff``, leak, injection offset, :func:`sim.mingru.state_sequence_sc` on the
                     kT/C of the update (h)             gate and candidate codes
``_output``          comparator offset + noise (h)      to ``h * 2**h.frac`` before ``> 0``
==================== ================================== =============================================

Values come from the noisy chip, gradients from the clean fake-quantised path (straight through):
``v = v_clean + (v_noisy - v_clean).detach()`` for the gate, the candidate, the state and the
Heaviside output. The noisy values are computed from the *same* float tensors as the clean ones
with the errors added just before the same rounding, so with every magnitude zero
(:meth:`sim.NoiseModel.zero`) they are the clean values bit for bit, and so are the gradients.

Randomness: chip ``n`` of a :class:`ChipSampler` (the ``n``-th batch) has the static seed
:meth:`ChipSampler.chip_seed` ``(n)``, a function of the sampler's seed and ``n``; dynamic noise is
drawn with a torch generator on the batch's device, seeded by the sampler's seed, in sim's
time-major layout ``(T, B, H)``, scaled by the chip's sigmas. :meth:`ChipSampler.state_dict`
holds both, for resuming.

Per-batch cost: one ``realize`` (NumPy, ``O(L (H 2**b_z + H**2))`` draws; with reference levels
also the ``Wz``, ``Wh`` codes copied to the host), a few small host-to-device copies, four
``(T, B, H)`` normal draws per layer, and the state update: on CUDA one Triton kernel
(:func:`models.kernels.sc_state_sequence_noisy`), elsewhere :func:`sim.mingru.state_sequence_sc`'s
loop over the ``T`` steps.
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from sim.noise import LayerChip, NoiseModel
from spec.arch import Arch, Formats
from spec.fixedpoint import Format, quantize_real

from .kernels import sc_state_sequence_noisy
from .quant import round_rule

__all__ = ["ChipSampler", "LayerNoise", "draw_chip"]


class ChipSampler:
    """A sequence of chip instances of one :class:`sim.NoiseModel`, and their dynamic noise.

    ``noise``: the non-idealities and their magnitudes (its own ``seed`` is not used: chip ``n``
    has :meth:`chip_seed` ``(n)``); ``seed``: the seed of the whole sequence (``--noise-seed``);
    ``clean``: the fraction of training batches that run on the ideal chip instead (``--noise-clean``).

    Why ``clean``: the chip's errors are not all zero-mean. Charge injection shifts every state by a
    positive amount per update, which a slow gate integrates into a drift of hundreds of LSB; a
    network trained only on noisy chips learns to lean on that drift and loses its noise-free
    accuracy (ListOps, measured: 46 % -> 16 % noise-free while 38 % on noisy chips). Mixing in
    noise-free batches asks for a network that is right on both.
    """

    def __init__(self, noise: NoiseModel, seed: int = 0, clean: float = 0.0) -> None:
        if not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a sim.NoiseModel, not {type(noise).__name__}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"a noise seed must be an integer >= 0, not {seed!r}")
        if not isinstance(clean, (int, float)) or isinstance(clean, bool) or not 0.0 <= clean < 1.0:
            raise ValueError(f"the fraction of noise-free batches must be in [0, 1), not {clean!r}")
        self.noise, self.seed, self.clean = noise, int(seed), float(clean)
        self.chips = 0                                  # chips drawn so far
        self.batches = 0                                # batches asked for so far (noisy or clean)
        self._gen: dict[str, torch.Generator] = {}      # dynamic noise, one generator per device
        self._gen_state: dict[str, torch.Tensor] = {}   # states to restore on first use

    def chip_seed(self, n: int) -> int:
        """The static seed (``NoiseModel.seed``) of chip ``n``: 63 bits of ``SeedSequence([seed, n])``."""
        return int(np.random.SeedSequence([self.seed, n]).generate_state(1, np.uint64)[0] >> np.uint64(1))

    def next_is_clean(self) -> bool:
        """Whether the next batch runs noise-free: batch ``n`` is clean with probability ``clean``,
        decided by ``SeedSequence([seed, n, 1])`` (reproducible, and resumable by the count)."""
        n, self.batches = self.batches, self.batches + 1
        if self.clean == 0.0:
            return False
        u = np.random.default_rng(np.random.SeedSequence([self.seed, n, 1])).random()
        return bool(u < self.clean)

    def next_chip(self, arch: Arch, fmts: Formats, tensors: dict[str, np.ndarray]):
        """Draw the next chip instance (:meth:`sim.NoiseModel.realize`); returns a :class:`sim.noise.Chip`."""
        chip = self.noise.replace(seed=self.chip_seed(self.chips)).realize(arch, fmts, tensors)
        self.chips += 1
        return chip

    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._gen:
            g = torch.Generator(device=device)
            g.manual_seed(self.seed)
            if key in self._gen_state:
                g.set_state(self._gen_state.pop(key))
            self._gen[key] = g
        return self._gen[key]

    def standard_normal(self, layer: int, kind: str, shape: tuple[int, ...], device, dtype) -> torch.Tensor:
        """Standard normal draws for the dynamic noise of ``kind`` (``sim.noise.STREAM_KINDS``) in
        ``layer``; ``shape`` is time-major, ``(T, B, H)``, like sim's streams."""
        return torch.randn(shape, generator=self.generator(device), device=device, dtype=dtype)

    def state_dict(self) -> dict:
        gens = {k: g.get_state() for k, g in self._gen.items()}
        gens.update({k: v for k, v in self._gen_state.items() if k not in gens})
        return {"noise": self.noise.to_json(), "seed": self.seed, "clean": self.clean, "chips": self.chips,
                "batches": self.batches, "generators": gens}

    def load_state_dict(self, state: dict) -> None:
        """Continue a sequence (same noise model and seed): the chip count and generator states."""
        if state.get("seed") != self.seed or state.get("noise") != self.noise.to_json() or \
                float(state.get("clean", 0.0)) != self.clean:
            raise ValueError("the checkpoint's noise model, noise seed or noise-free fraction differs from this run's")
        self.chips = int(state["chips"])
        self.batches = int(state.get("batches", self.chips))
        self._gen = {}
        self._gen_state = {k: v.cpu() for k, v in state.get("generators", {}).items()}

    def __deepcopy__(self, memo) -> "ChipSampler":
        """A copy that continues the same sequence (generators re-created from their states, so a
        model on any device deep-copies)."""
        new = copy.copy(self)
        new._gen, new._gen_state = {}, {k: v.clone() for k, v in self.state_dict()["generators"].items()}
        return new

    def __repr__(self) -> str:
        return f"ChipSampler(seed={self.seed}, clean={self.clean}, chips={self.chips}, noise={self.noise!r})"


def _t(a, device, dtype) -> torch.Tensor | None:
    return None if a is None else torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


@dataclasses.dataclass
class LayerNoise:
    """One layer of one chip on a device: :class:`sim.noise.LayerChip`'s arrays as tensors (LSB
    units, as sim holds them; the reference-level errors ``dwz``, ``dwh`` in value units, i.e.
    times ``2**-w_rnn.frac``), and where its dynamic noise comes from."""

    layer: int
    chip: LayerChip                          # the NumPy draws themselves
    sampler: ChipSampler
    z_eff: torch.Tensor | None               # (H, 2**b_z) float64
    leak: torch.Tensor | None                # (H,) float64
    offset: torch.Tensor | None              # (H,) float64, LSB of h
    gate_offset: torch.Tensor | None         # (H,) gate code LSB
    heav_offset: torch.Tensor | None         # (H,) LSB of h
    dwz: torch.Tensor | None                 # (H, H) value units
    dwh: torch.Tensor | None

    @classmethod
    def of(cls, i: int, lc: LayerChip, sampler: ChipSampler, fmts: Formats, device, dtype) -> "LayerNoise":
        w = 2.0 ** -fmts.w_rnn.frac
        return cls(i, lc, sampler, _t(lc.z_eff, device, torch.float64), _t(lc.leak, device, torch.float64),
                   _t(lc.offset, device, torch.float64), _t(lc.gate_offset, device, dtype),
                   _t(lc.heav_offset, device, dtype),
                   None if lc.dwz is None else _t(lc.dwz * w, device, dtype),
                   None if lc.dwh is None else _t(lc.dwh * w, device, dtype))

    def _draw(self, kind: str, sigma: float | None, like: torch.Tensor, dtype=None) -> torch.Tensor | None:
        """``sigma`` x standard normal, time-major draws moved to ``like``'s (B, T, H) layout."""
        if sigma is None:
            return None
        B, T = like.shape[0], like.shape[1]
        n = self.sampler.standard_normal(self.layer, kind, (T, B) + tuple(like.shape[2:]), like.device,
                                         dtype or like.dtype)
        return sigma * n.movedim(0, 1)

    # -- the projections (sim: Network._projections_sc) ------------------------------------------
    def gate(self, x: torch.Tensor, u: torch.Tensor, bits: int, rounding) -> torch.Tensor:
        """Noisy gate ``z = k / 2**bits`` from the clean pre-activation ``x = Wz u + bz`` (what
        :func:`models.quant.fq_gate` takes): reference-level errors ``u @ dwz.T`` into ``x``, the
        comparator's offset and noise (gate code LSB) into ``(x/4 + 1/2) 2**bits`` before the
        rounding and the clip. No gradient."""
        with torch.no_grad():
            if self.dwz is not None:
                x = x + F.linear(u, self.dwz)
            n = float(1 << bits)
            v = (x * 0.25 + 0.5) * n                          # fq_gate's value, then the chip's errors
            if self.gate_offset is not None:
                v = v + self.gate_offset
            noise = self._draw("gate", self.chip.gate_sigma, v)
            if noise is not None:
                v = v + noise
            return round_rule(v.clamp(0.0, n - 1.0), rounding) / n

    def candidate(self, y: torch.Tensor, u: torch.Tensor, fmt_h: Format) -> torch.Tensor:
        """Noisy candidate from the clean pre-activation ``y = Wh u + bh`` (what
        :func:`models.quant.fq_act` takes): reference-level errors into ``y``, kT/C of the
        candidate sample (LSB of h) into ``y * 2**h.frac`` before the rounding and the saturation."""
        with torch.no_grad():
            if self.dwh is not None:
                y = y + F.linear(u, self.dwh)
            scale = 2.0 ** fmt_h.frac
            v = y * scale
            noise = self._draw("candidate", self.chip.sigma_candidate, v)
            if noise is not None:
                v = v + noise
            return round_rule(v.clamp(fmt_h.min_int, fmt_h.max_int), fmt_h.rounding) / scale

    # -- the state update (sim: Network._recur) ---------------------------------------------------
    def states(self, k: torch.Tensor, hc: torch.Tensor, b_z: int, fmt_h: Format) -> torch.Tensor:
        """(B, T, H) state codes of the noisy SC update: :func:`sim.mingru.state_sequence_sc` over
        time with this chip's ``z_eff``, leak, injection offset and kT/C draws (on CUDA its Triton
        kernel, :func:`models.kernels.sc_state_sequence_noisy`). ``k``, ``hc``: (B, T, H) int64 gate
        and candidate codes; the initial state is 0."""
        with torch.no_grad():
            noise = None
            if self.chip.sigma_update is not None:
                B, T = hc.shape[0], hc.shape[1]
                noise = self.chip.sigma_update * self.sampler.standard_normal(
                    self.layer, "update", (T, B) + tuple(hc.shape[2:]), hc.device, torch.float64)
            return sc_state_sequence_noisy(k, hc, b_z, fmt_h, z_eff=self.z_eff, leak=self.leak, offset=self.offset,
                                           noise=noise)

    # -- the output comparator (sim: Network._output) --------------------------------------------
    @property
    def has_heaviside(self) -> bool:
        return self.heav_offset is not None

    def heaviside(self, h: torch.Tensor, fmt_h: Format) -> torch.Tensor:
        """Noisy comparator ``h * 2**h.frac + offset + noise > 0`` (LSB of h), as 0.0 / 1.0."""
        with torch.no_grad():
            v = h * 2.0 ** fmt_h.frac + self.heav_offset
            noise = self._draw("heaviside", self.chip.heav_sigma, v)
            if noise is not None:
                v = v + noise
            return (v > 0).to(h.dtype)


def rnn_codes(model) -> dict[str, np.ndarray]:
    """The integer ``Wz``, ``Wh`` codes of every layer (what ``realize`` reads for the
    reference-level errors), as the bundle would hold them."""
    f = model.formats.w_rnn
    out = {}
    for i, layer in enumerate(model.layers):
        for name in ("wz", "wh"):
            codes, _ = quantize_real(getattr(layer.rnn, name).weight.detach(), f)
            out[f"layers.{i}.rnn.{name}"] = codes.cpu().numpy()
    return out


def draw_chip(model, sampler: ChipSampler, device, dtype) -> list[LayerNoise] | None:
    """The next chip of ``sampler`` for the quantised ``model``, per layer, on ``device``; None when
    this batch is one of the sampler's noise-free ones."""
    if sampler.next_is_clean():
        return None
    tensors = rnn_codes(model) if sampler.noise.references is not None else {}
    chip = sampler.next_chip(model.arch, model.formats, tensors)
    return [LayerNoise.of(i, lc, sampler, model.formats, device, dtype) for i, lc in enumerate(chip.layers)]
