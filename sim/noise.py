"""Switched-capacitor non-idealities of the minGRU core, on top of the exact model.

Design (kept on purpose): the noisy chip is still modelled on the integer LSB grid of the
contract. Each non-ideality is converted from physical units (farads, kelvin, volts, ohms,
seconds, coulombs) to *LSB of the quantity it disturbs* and added, as a real number, just
before one of the contract's rounding/decision points, which then rounds by the contract's rule:

===================== ======================================= ===================================
rounding point        contract (README)                       what is added there
===================== ======================================= ===================================
gate code ``k``       ``gate_code(Wz u + bz)``                comparator offset + noise (gate code
                                                              LSB); reference-level errors of Wz
candidate ``hc``      ``q_h(Wh u + bh)``                      kT/C of the candidate sample (h LSB);
                                                              reference-level errors of Wh
state update ``h``    ``h + round_h(k (hc - h) / 2**b_z)``    mismatch (``z_eff`` per channel and
                                                              code), leakage, charge injection,
                                                              kT/C of the ``b_z`` sharing phases
heaviside ``o``       ``h > 0``                               comparator offset + noise (h LSB)
===================== ======================================= ===================================

Everything else (encoder, delay line, convolution, mixer, normalisation, decoder) is digital and
stays exact. With every magnitude zero the noisy path gives bit for bit the exact result (tests
check it): the real-valued rounding :func:`sim.quant.round_real` is exact on integers / 2**s.

Voltage scales: ``NoiseModel.v_fs`` is the voltage span of the state's ``2**h.bits`` codes
(``V_lsb = v_fs / 2**h.bits``); ``v_fs_gate`` spans the gate digitiser's ``2**b_z`` codes;
:class:`ReferenceLevels` carries the span of the weight levels.

Randomness: static errors (mismatch, offsets, reference levels, leakage/injection spread) are one
*chip instance*, drawn once from ``NoiseModel.seed``; dynamic noise (kT/C, comparator noise) comes
from per-(layer, kind) streams seeded by the run's seed (default: derived from ``NoiseModel.seed``).
Each stream is consumed in time order whatever the chunking, so ``Network.run`` and a loop of
``Network.step`` see the same draws and agree bit for bit with noise too (same batch size).

Use::

    model = NoiseModel(thermal=Thermal(capacitance=50e-15), comparator=Comparator(), seed=3)  # any subset
    net = Network(bundle, noise=model)        # draws chip 3's static errors once
    net.run(x, seed=0); net.run(x, seed=1)    # two realisations of the dynamic noise on that chip
    model.describe(bundle.arch, bundle.formats)   # the magnitudes in LSB

Defaults are this project's choice (the chip's values are unknown; see
shared/reference/papers.md section 5.4), documented per field.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from spec.arch import Arch, Formats

__all__ = ["K_B", "Thermal", "Mismatch", "Leakage", "ChargeInjection", "Comparator", "ReferenceLevels",
           "NoiseModel", "Chip", "LayerChip", "STREAM_KINDS", "resolve"]

#: Boltzmann constant, J/K.
K_B = 1.380649e-23

#: Kinds of dynamic noise, one independent stream per (layer, kind).
STREAM_KINDS = ("candidate", "gate", "update", "heaviside")


def _nonneg(obj: Any, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
            raise ValueError(f"{type(obj).__name__}.{n} must be a number >= 0, not {v!r}")


def _pos(obj: Any, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ValueError(f"{type(obj).__name__}.{n} must be a number > 0, not {v!r}")


@dataclasses.dataclass(frozen=True)
class Thermal:
    """kT/C noise, frozen on a capacitor each time a switch opens.

    A share between two equal capacitors ``C`` freezes ``sigma_V**2 = k_B T / (2C)`` (the
    pair's total capacitance). The state update is ``b_z`` serial halving phases (README); the
    noise of phase ``i`` is halved by each of the ``b_z - 1 - i`` later phases, so the state
    ends with variance ``k_B T / (2C) * sum_{j<b_z} 4**-j = k_B T / (2C) * (4/3)(1 - 4**-b_z)``
    (-> 4/3 of one share). The candidate, sampled onto one capacitor ``C``, gets ``k_B T / C``
    (``candidate=True``). sigma in LSB = sigma_V / V_lsb, so it halves when ``C`` quadruples.
    """

    capacitance: float = 100e-15   #: F, each capacitor of a sharing pair (state cap = candidate cap)
    temperature: float = 300.0     #: K
    candidate: bool = True         #: also add the candidate capacitor's sampling noise to hc

    def __post_init__(self) -> None:
        _pos(self, "capacitance")
        _nonneg(self, "temperature")

    def share_sigma_v(self) -> float:
        """sigma_V of one share between two equal capacitors, volts."""
        return math.sqrt(K_B * self.temperature / (2 * self.capacitance))

    @staticmethod
    def phase_factor(b_z: int) -> float:
        """Variance factor of ``b_z`` serial halving phases: ``sum_{j<b_z} 4**-j``."""
        return (4.0 / 3.0) * (1.0 - 4.0 ** -b_z)

    def update_sigma_v(self, b_z: int) -> float:
        """sigma_V of the state after one full update (``b_z`` phases), volts."""
        return self.share_sigma_v() * math.sqrt(self.phase_factor(b_z))

    def candidate_sigma_v(self) -> float:
        """sigma_V of the candidate sampled on one capacitor, ``sqrt(k_B T / C)``, volts."""
        return math.sqrt(K_B * self.temperature / self.capacitance) if self.candidate else 0.0


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """Static capacitor mismatch of the gate's z ratio, Pelgrom-style.

    A unit capacitor ``C_u`` has relative error ``sigma_u = pelgrom / sqrt(C_u)`` (``pelgrom`` is
    A_C in sqrt(F): the default, 1e-2 * sqrt(1e-15), is 1 % for a 1 fF cap). Two schemes:

    * ``'bank'``: binary-weighted bank, bit ``i`` = ``2**i`` unit caps (absolute sigma
      ``sigma_u C_u sqrt(2**i)``, i.e. relative ``sigma_u / sqrt(2**i)``) plus one terminating
      unit cap; ``z_eff(k) = sum_i bit_i(k) C_i / (sum_i C_i + C_term)`` (ideal: ``k / 2**b_z``).
    * ``'serial'``: the README's ``b_z`` serial halving phases between the state cap and a
      transfer cap, both ``C_u(1 + sigma_u eps)``; ratio ``a = C_t / (C_s + C_t)`` per channel,
      ``z_eff(k) = sum_i bit_i(k) a (1 - a)**(b_z - 1 - i)`` (ideal ``a = 1/2``).

    One table ``z_eff[channel, code]`` per layer, drawn once per chip.
    """

    pelgrom: float = 1e-2 * math.sqrt(1e-15)   #: A_C, sqrt(F): sigma(dC/C) = A_C / sqrt(C)
    unit_capacitance: float = 1e-15             #: F, C_u
    scheme: str = "bank"                         #: 'bank' or 'serial'

    def __post_init__(self) -> None:
        _nonneg(self, "pelgrom")
        _pos(self, "unit_capacitance")
        if self.scheme not in ("bank", "serial"):
            raise ValueError(f"Mismatch.scheme must be 'bank' or 'serial', not {self.scheme!r}")

    def unit_sigma(self) -> float:
        """Relative sigma of one unit capacitor."""
        return self.pelgrom / math.sqrt(self.unit_capacitance)

    def z_table(self, rng: np.random.Generator, channels: int, b_z: int) -> np.ndarray:
        """Draw ``z_eff`` (channels, 2**b_z) for one layer."""
        su = self.unit_sigma()
        codes = np.arange(1 << b_z)
        bits = (codes[None, :] >> np.arange(b_z)[:, None]) & 1            # (b_z, 2**b_z), LSB first
        if self.scheme == "bank":
            w = 2.0 ** np.arange(b_z)
            caps = w * (1.0 + su / np.sqrt(w) * rng.standard_normal((channels, b_z)))
            term = 1.0 + su * rng.standard_normal((channels, 1))
            return (caps @ bits) / (caps.sum(axis=1, keepdims=True) + term)
        cs = 1.0 + su * rng.standard_normal((channels, 1))
        ct = 1.0 + su * rng.standard_normal((channels, 1))
        a = ct / (cs + ct)
        weights = a * (1.0 - a) ** (b_z - 1 - np.arange(b_z))[None, :]   # (channels, b_z)
        return weights @ bits


@dataclasses.dataclass(frozen=True)
class Leakage:
    """Decay of the held state through the switches' off-resistance between updates:
    ``h_held = h * exp(-t_step / (r_off * C))`` (towards code 0, the mid-rail reference).
    ``spread``: relative sigma of ``r_off`` per channel (log-normal), drawn once per chip."""

    r_off: float = 1e12            #: ohm
    capacitance: float = 100e-15   #: F, the state capacitor
    t_step: float = 62.5e-6        #: s, one time step (16 kHz)
    spread: float = 0.0            #: relative sigma of r_off across channels

    def __post_init__(self) -> None:
        _pos(self, "r_off", "capacitance")
        _nonneg(self, "t_step", "spread")

    def decay(self) -> float:
        """Per-step factor ``exp(-t_step / (r_off C))``."""
        return math.exp(-self.t_step / (self.r_off * self.capacitance))


@dataclasses.dataclass(frozen=True)
class ChargeInjection:
    """Charge injected onto the state node when a sampling switch opens: ``dV = Q / C`` per
    switch event. Static per channel, ``Q_c = charge * (1 + spread * eps_c)``. Over the ``b_z``
    serial phases the injection of phase ``i`` is halved by every later share, so one update
    shifts the state by ``(Q_c / C) * sum_{j<b_z} 2**-j = (Q_c / C) * 2 (1 - 2**-b_z)``."""

    charge: float = 0.01e-15       #: C, mean injected charge per switch opening
    capacitance: float = 100e-15   #: F, the state capacitor
    spread: float = 0.5            #: relative sigma across channels

    def __post_init__(self) -> None:
        _pos(self, "capacitance")
        _nonneg(self, "spread")
        if not isinstance(self.charge, (int, float)) or isinstance(self.charge, bool):
            raise ValueError(f"ChargeInjection.charge must be a number, not {self.charge!r}")

    @staticmethod
    def phase_factor(b_z: int) -> float:
        return 2.0 * (1.0 - 2.0 ** -b_z)

    def offset_v(self, rng: np.random.Generator, channels: int, b_z: int) -> np.ndarray:
        """Per-channel state shift per update, volts."""
        q = self.charge * (1.0 + self.spread * rng.standard_normal(channels))
        return q / self.capacitance * self.phase_factor(b_z)


@dataclasses.dataclass(frozen=True)
class Comparator:
    """A clocked comparator's input-referred static offset (per channel, drawn once) and noise
    (per decision), wherever a comparator decides: the heaviside output ``h > 0`` (in LSB of h)
    and the gate's code digitisation (in LSB of the gate code, ``v_fs_gate / 2**b_z``)."""

    offset: float = 1e-3      #: V, sigma of the static offset across comparators
    noise: float = 0.3e-3     #: V rms, per decision
    heaviside: bool = True    #: apply to the heaviside output comparator (rnn_out='heaviside')
    gate: bool = True         #: apply to the gate digitiser

    def __post_init__(self) -> None:
        _nonneg(self, "offset", "noise")


@dataclasses.dataclass(frozen=True)
class ReferenceLevels:
    """Static voltage errors of the weight reference levels of the SC projections ``Wz``, ``Wh``:
    each code level of each tensor has its own ``dV ~ N(0, sigma)``, so every weight with that
    code becomes ``w + dV / V_lsb_w`` (``V_lsb_w = v_fs / 2**w_rnn.bits``)."""

    sigma: float = 0.5e-3     #: V, sigma of each level's error
    v_fs: float = 1.0         #: V, span of the 2**bits weight levels

    def __post_init__(self) -> None:
        _nonneg(self, "sigma")
        _pos(self, "v_fs")


@dataclasses.dataclass
class LayerChip:
    """Static draws of one layer of one chip, in LSB units (``None``: non-ideality absent)."""

    z_eff: np.ndarray | None = None         # (H, 2**b_z) z per channel and code
    leak: np.ndarray | None = None          # (H,) per-step decay factor
    offset: np.ndarray | None = None        # (H,) state shift per update, LSB of h
    sigma_update: float | None = None       # kT/C per update, LSB of h
    sigma_candidate: float | None = None    # kT/C on hc, LSB of h
    gate_offset: np.ndarray | None = None   # (H,) gate code LSB
    gate_sigma: float | None = None
    heav_offset: np.ndarray | None = None   # (H,) LSB of h
    heav_sigma: float | None = None
    dwz: np.ndarray | None = None           # (H, H) weight errors of Wz, LSB of w_rnn
    dwh: np.ndarray | None = None           # (H, H) weight errors of Wh


@dataclasses.dataclass
class Chip:
    """One drawn chip instance: static errors per layer + how to seed its dynamic noise."""

    model: "NoiseModel"
    layers: list[LayerChip]

    def streams(self, seed: int | None = None) -> dict[tuple[int, str], np.random.Generator]:
        """Fresh dynamic-noise streams, one per (layer, kind). ``seed=None``: the model's."""
        seed = self.model.seed if seed is None else seed
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"a noise seed must be an integer >= 0, not {seed!r}")
        base = np.random.SeedSequence([1, int(seed)])
        kids = base.spawn(len(self.layers) * len(STREAM_KINDS))
        return {(i, kind): np.random.Generator(np.random.PCG64(kids[i * len(STREAM_KINDS) + j]))
                for i in range(len(self.layers)) for j, kind in enumerate(STREAM_KINDS)}


@dataclasses.dataclass(frozen=True)
class NoiseModel:
    """Composes any subset of the non-idealities (``None`` = absent), seeded.

    ``NoiseModel()`` has none (but still runs the real-valued SC path: bit-exact with the
    contract); :meth:`default` has all of them at their defaults; :meth:`zero` has all of them at
    zero magnitude (also bit-exact, a test of the path).
    """

    thermal: Thermal | None = None
    mismatch: Mismatch | None = None
    leakage: Leakage | None = None
    injection: ChargeInjection | None = None
    comparator: Comparator | None = None
    references: ReferenceLevels | None = None
    v_fs: float = 1.0          #: V, span of the state's 2**h.bits codes (V_lsb = v_fs / 2**h.bits)
    v_fs_gate: float = 1.0     #: V, span of the gate digitiser's 2**b_z codes
    seed: int = 0              #: chip instance (static errors) and default dynamic seed

    def __post_init__(self) -> None:
        _pos(self, "v_fs", "v_fs_gate")
        for name, cls in (("thermal", Thermal), ("mismatch", Mismatch), ("leakage", Leakage),
                          ("injection", ChargeInjection), ("comparator", Comparator),
                          ("references", ReferenceLevels)):
            v = getattr(self, name)
            if v is not None and not isinstance(v, cls):
                raise ValueError(f"NoiseModel.{name} must be a {cls.__name__} or None, not {v!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"NoiseModel.seed must be an integer >= 0, not {self.seed!r}")

    @classmethod
    def default(cls, seed: int = 0, **overrides: Any) -> "NoiseModel":
        """Every non-ideality at its documented default."""
        kw = dict(thermal=Thermal(), mismatch=Mismatch(), leakage=Leakage(), injection=ChargeInjection(),
                  comparator=Comparator(), references=ReferenceLevels(), seed=seed)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def zero(cls, seed: int = 0) -> "NoiseModel":
        """Every non-ideality present with zero magnitude (bit-exact with the contract)."""
        return cls(thermal=Thermal(temperature=0.0), mismatch=Mismatch(pelgrom=0.0),
                   leakage=Leakage(r_off=math.inf), injection=ChargeInjection(charge=0.0, spread=0.0),
                   comparator=Comparator(offset=0.0, noise=0.0), references=ReferenceLevels(sigma=0.0),
                   seed=seed)

    def replace(self, **changes: Any) -> "NoiseModel":
        return dataclasses.replace(self, **changes)

    # -- JSON --------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Every field; a non-ideality as the dict of its fields, or None where absent. Strict JSON:
        an infinite value (``Leakage.r_off`` of :meth:`zero`) is written as the string ``"inf"``."""
        def num(v: Any) -> Any:
            return ("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v
        return {f.name: ({k: num(x) for k, x in dataclasses.asdict(v).items()} if dataclasses.is_dataclass(v)
                         else num(v))
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "NoiseModel":
        """Inverse of :meth:`to_json`. A missing non-ideality is absent (None); a missing field of
        a present one takes its default; unknown names are refused."""
        if not isinstance(d, dict):
            raise ValueError(f"a noise model is a JSON object, not {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - names)
        if bad:
            raise ValueError(f"unknown NoiseModel field(s) {bad}; known: {sorted(names)}")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            part = _PARTS.get(k)
            if part is None or v is None:
                kw[k] = v
                continue
            if not isinstance(v, dict):
                raise ValueError(f"NoiseModel.{k} must be an object of {part.__name__} fields or null, not {v!r}")
            fields = {f.name for f in dataclasses.fields(part)}
            if set(v) - fields:
                raise ValueError(f"unknown {part.__name__} field(s) {sorted(set(v) - fields)}; known: {sorted(fields)}")
            kw[k] = part(**{n: (float(x) if x in ("inf", "-inf") else x) for n, x in v.items()})
        return cls(**kw)

    # -- unit conversions ------------------------------------------------------------------------
    def v_lsb_h(self, fmts: Formats) -> float:
        """Volts per LSB of the state ``h`` (and candidate)."""
        return self.v_fs / 2.0 ** fmts.h.bits

    def v_lsb_gate(self, arch: Arch) -> float:
        """Volts per LSB of the gate code."""
        return self.v_fs_gate / 2.0 ** arch.gate_bits

    def describe(self, arch: Arch, fmts: Formats) -> dict[str, float]:
        """Magnitudes of the configured effects in LSB (what :meth:`realize` draws from), for reports:
        ``thermal_update_sigma`` / ``thermal_candidate_sigma`` (LSB of h), ``mismatch_unit_sigma``
        (relative), ``leak_per_step`` (fraction of h lost per step), ``injection_per_update`` (LSB of
        h, mean), ``comparator_gate_offset_sigma`` / ``comparator_gate_noise`` (gate LSB),
        ``comparator_h_offset_sigma`` / ``comparator_h_noise`` (LSB of h), ``reference_sigma``
        (LSB of w_rnn)."""
        vh, vg, bz = self.v_lsb_h(fmts), self.v_lsb_gate(arch), arch.gate_bits
        out: dict[str, float] = {}
        if self.thermal is not None:
            out["thermal_update_sigma"] = self.thermal.update_sigma_v(bz) / vh
            out["thermal_candidate_sigma"] = self.thermal.candidate_sigma_v() / vh
        if self.mismatch is not None:
            out["mismatch_unit_sigma"] = self.mismatch.unit_sigma()
        if self.leakage is not None:
            out["leak_per_step"] = 1.0 - self.leakage.decay()
        if self.injection is not None:
            i = self.injection
            out["injection_per_update"] = i.charge / i.capacitance * i.phase_factor(bz) / vh
        if self.comparator is not None:
            c = self.comparator
            out["comparator_gate_offset_sigma"] = c.offset / vg
            out["comparator_gate_noise"] = c.noise / vg
            out["comparator_h_offset_sigma"] = c.offset / vh
            out["comparator_h_noise"] = c.noise / vh
        if self.references is not None:
            out["reference_sigma"] = self.references.sigma / (self.references.v_fs / 2.0 ** fmts.w_rnn.bits)
        return out

    # -- instance --------------------------------------------------------------------------------
    def realize(self, arch: Arch, fmts: Formats, tensors: dict[str, np.ndarray]) -> Chip:
        """Draw one chip: the static errors of every layer, in LSB units."""
        def rng_for(component: int) -> np.random.Generator:
            # one stream per non-ideality: adding or removing one leaves the others' draws unchanged
            return np.random.Generator(np.random.PCG64(np.random.SeedSequence([0, self.seed, component])))

        H, bz = arch.hidden, arch.gate_bits
        vh, vg = self.v_lsb_h(fmts), self.v_lsb_gate(arch)
        layers = [LayerChip() for _ in range(arch.layers)]
        if self.thermal is not None:
            for lc in layers:
                lc.sigma_update = self.thermal.update_sigma_v(bz) / vh
                lc.sigma_candidate = self.thermal.candidate_sigma_v() / vh
        if self.mismatch is not None:
            rng = rng_for(1)
            for lc in layers:
                lc.z_eff = self.mismatch.z_table(rng, H, bz)
        if self.leakage is not None:
            rng, lk = rng_for(2), self.leakage
            for lc in layers:
                r = lk.r_off * np.exp(lk.spread * rng.standard_normal(H)) if lk.spread else np.full(H, lk.r_off)
                lc.leak = np.exp(-lk.t_step / (r * lk.capacitance))
        if self.injection is not None:
            rng = rng_for(3)
            for lc in layers:
                lc.offset = self.injection.offset_v(rng, H, bz) / vh
        if self.comparator is not None:
            rng, c = rng_for(4), self.comparator
            for lc in layers:
                go, ho = rng.standard_normal(H), rng.standard_normal(H)
                if c.gate:
                    lc.gate_offset = c.offset * go / vg
                    lc.gate_sigma = c.noise / vg
                if c.heaviside and arch.rnn_out == "heaviside":
                    lc.heav_offset = c.offset * ho / vh
                    lc.heav_sigma = c.noise / vh
        if self.references is not None:
            rng, fw = rng_for(5), fmts.w_rnn
            v_lsb_w = self.references.v_fs / 2.0 ** fw.bits
            for i, lc in enumerate(layers):
                for name in ("wz", "wh"):
                    w = np.asarray(tensors[f"layers.{i}.rnn.{name}"], dtype=np.int64)
                    if fw.max_int - fw.min_int < 1 << 16:      # a table of every level
                        err = self.references.sigma * rng.standard_normal(fw.max_int - fw.min_int + 1) / v_lsb_w
                        d = err[w - fw.min_int]
                    else:                                     # very wide weights: only the levels used
                        levels, inv = np.unique(w, return_inverse=True)
                        err = self.references.sigma * rng.standard_normal(levels.size) / v_lsb_w
                        d = err[inv].reshape(w.shape)
                    setattr(lc, "d" + name, d)
        return Chip(self, layers)


#: The non-idealities of :class:`NoiseModel`, by field name.
_PARTS: dict[str, type] = {"thermal": Thermal, "mismatch": Mismatch, "leakage": Leakage,
                           "injection": ChargeInjection, "comparator": Comparator, "references": ReferenceLevels}


def resolve(spec: "str | NoiseModel | None", seed: int | None = None) -> NoiseModel | None:
    """What a user writes for a noise model: ``'default'`` (:meth:`NoiseModel.default`), ``'zero'``
    (:meth:`NoiseModel.zero`), ``'none'``/``None`` (no noise model), a path to a JSON file
    (:meth:`NoiseModel.from_json`), or a :class:`NoiseModel` itself. ``seed``: replaces its seed."""
    if spec is None or isinstance(spec, NoiseModel):
        model = spec
    elif spec == "none":
        model = None
    elif spec == "default":
        model = NoiseModel.default()
    elif spec == "zero":
        model = NoiseModel.zero()
    else:
        import json
        from pathlib import Path
        p = Path(spec)
        if not p.is_file():
            raise ValueError(f"noise model {spec!r}: not 'default', 'zero', 'none' or a JSON file")
        try:
            model = NoiseModel.from_json(json.loads(p.read_text()))
        except (ValueError, TypeError) as e:
            raise ValueError(f"noise model {spec}: {e}") from None
    if model is not None and seed is not None:
        model = model.replace(seed=seed)
    return model
