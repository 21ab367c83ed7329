"""The network's hardware definition (mGRADE-HW): architecture, tensor formats, tensor list.

Everything a layer needs to agree with another layer lives here: which tensors exist, their
shapes, which :class:`~spec.fixedpoint.Format` each one uses, the gate quantiser and the widths
of the exact accumulators. ``models/`` (PyTorch), ``sim/`` (NumPy) and ``rtl/`` (Amaranth) read
these objects; none of them derives a format by hand.

Data flow of one time step (integer semantics; README "Fixed-point semantics" gives the table)::

    x_t --encoder--> a0 --[layer 0]--> a1 ... --[layer L-1]--> aL --decoder--> logit_t --(sum)--> logits

    layer:  s  = q_dl(a)                                   delay-line sample, pushed into the line
            u  = q_act(sum_k w[c,k] * line[c, t-d[c,k]])  (+ a, saturating, if skip)
            k  = gate(Wz u + bz)                           6-bit hard sigmoid code, z = k / 2**b_z
            hc = q_h(Wh u + bh)                            candidate
            h  = h + round((k * (hc - h)) / 2**b_z)        switched-capacitor charge sharing
            o  = q_act(h)  or  heaviside(h)                (+ u if skip)
            m  = MLP / GLU channel mixing                  (+ o if skip)
            a' = q_act(g * m + b)                          per-channel affine normalisation
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from .fixedpoint import Format, FormatError, Rounding, _clip, round_shift

__all__ = [
    "Arch", "Formats", "ArchError", "GATE_SCALE", "gate_code", "tensor_specs", "TensorSpec",
    "acc_frac", "acc_bound", "memory_footprint", "DEFAULT_FORMATS", "minimalist_arch",
]

#: The gate's scale, pinned: z = k / 2**b_z, k in 0 .. 2**b_z - 1, so z = 1.0 is unreachable.
#: It is what b_z serial halving charge-sharing phases produce (one per bit, LSB first), and
#: it keeps the update a shift. A bundle that declares another scale is rejected.
GATE_SCALE = "k/2^b (1.0 unreachable)"


class ArchError(ValueError):
    """An architecture or format table is invalid."""


_ENCODERS = ("linear", "embedding")
_MIXES = ("mlp", "glu", "none")
_NORMS = ("affine", "none")
_RNN_OUTS = ("linear", "heaviside")
_READOUTS = ("mean", "last")


@dataclasses.dataclass(frozen=True)
class Arch:
    """Shape and topology of an mGRADE-HW network.

    d_in:      input features per step (``encoder='linear'``) or vocabulary size (``'embedding'``).
    n_classes: classes of the readout.
    hidden:    H, channels of the residual stream and of the minGRU state.
    layers:    L.
    taps:      K taps of each channel's delay-line convolution; 0 means no convolution.
    d_max:     largest delay in steps; each channel's line holds d_max past samples.
    gate_bits: b_z, bits of the gate code (z = k / 2**b_z).
    mix:       channel mixing: 'mlp' (Linear-ReLU-Linear), 'glu' (Linear, a * hardsigmoid(b), Linear), 'none'.
    expand:    hidden width of the channel mixer, in multiples of H.
    norm:      'affine' (per-channel g*x+b, batch-norm folded at export) or 'none'.
    skip:      mGRADE's residual connections around conv, minGRU and mixer.
    rnn_out:   'linear' (state requantised to the activation format) or 'heaviside' (1 if h>0 else 0).
    readout:   'mean' (per-step logits summed in a wide accumulator; argmax = argmax of the mean)
               or 'last' (logits of the last step).
    """

    d_in: int
    n_classes: int
    hidden: int = 64
    layers: int = 2
    taps: int = 8
    d_max: int = 63
    gate_bits: int = 6
    encoder: str = "linear"
    mix: str = "mlp"
    expand: int = 2
    norm: str = "affine"
    skip: bool = True
    rnn_out: str = "linear"
    readout: str = "mean"

    def __post_init__(self) -> None:
        def pos(name, lo=1):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ArchError(f"arch.{name} must be an integer >= {lo}, not {v!r}")
        for n in ("d_in", "hidden", "layers", "expand"):
            pos(n)
        pos("n_classes", 2)
        pos("taps", 0)
        pos("d_max", 0)
        pos("gate_bits", 2)
        if self.gate_bits > 16:
            raise ArchError(f"arch.gate_bits must be <= 16, not {self.gate_bits}")
        if self.taps > self.d_max + 1:
            raise ArchError(f"arch.taps={self.taps} exceeds the d_max+1={self.d_max + 1} distinct delays")
        for name, allowed in (("encoder", _ENCODERS), ("mix", _MIXES), ("norm", _NORMS),
                              ("rnn_out", _RNN_OUTS), ("readout", _READOUTS)):
            if getattr(self, name) not in allowed:
                raise ArchError(f"arch.{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if not isinstance(self.skip, bool):
            raise ArchError(f"arch.skip must be a bool, not {self.skip!r}")

    @property
    def mix_width(self) -> int:
        """Width E of the mixer's hidden layer."""
        return self.expand * self.hidden

    @property
    def delay_bits(self) -> int:
        """Bits of one tap delay (an unsigned integer 0..d_max): ``ceil(log2(d_max + 1))``, at least 1."""
        return max(1, self.d_max.bit_length())

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> "Arch":
        if not isinstance(obj, dict):
            raise ArchError(f"arch must be an object, got {type(obj).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        extra = obj.keys() - names
        if extra:
            raise ArchError(f"arch: unknown field(s) {sorted(extra)}")
        try:
            return cls(**obj)
        except TypeError as e:
            raise ArchError(f"arch: {e}") from None


#: Roles of tensors. Every tensor in the network takes its format from exactly one role.
ROLES = {
    "x": "input samples (linear encoder); ignored for token inputs",
    "w_enc": "encoder weights / embedding table (embedding tables use 'act')",
    "bias": "all biases (aligned to their accumulator by a left shift)",
    "act": "residual stream, conv output, mixer activations",
    "dl": "delay-line samples (what the line's memory stores)",
    "w_conv": "delay-line convolution tap weights",
    "w_rnn": "minGRU gate and candidate projection weights (Wz, Wh)",
    "h": "minGRU candidate and state (the state capacitor)",
    "w_mix": "channel-mixer weights",
    "w_norm": "normalisation scale g",
    "w_out": "decoder weights",
    "logit": "per-step logits",
    "logit_acc": "the wide accumulator that sums per-step logits",
}


@dataclasses.dataclass(frozen=True)
class Formats:
    """One :class:`Format` per tensor role (see :data:`ROLES`)."""

    x: Format = Format(True, 16, 15)
    w_enc: Format = Format(True, 8, 6)
    bias: Format = Format(True, 16, 10)
    act: Format = Format(True, 16, 10)
    dl: Format = Format(True, 16, 10)
    w_conv: Format = Format(True, 8, 6)
    w_rnn: Format = Format(True, 8, 6)
    h: Format = Format(True, 16, 10)
    w_mix: Format = Format(True, 8, 6)
    w_norm: Format = Format(True, 12, 8)
    w_out: Format = Format(True, 8, 6)
    logit: Format = Format(True, 16, 8)
    logit_acc: Format = Format(True, 40, 8)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if not isinstance(getattr(self, f.name), Format):
                raise ArchError(f"formats.{f.name} must be a Format, not {getattr(self, f.name)!r}")
        if self.logit_acc.frac != self.logit.frac:
            raise ArchError("formats.logit_acc must have the same frac as formats.logit (it sums them)")
        if self.logit_acc.bits < self.logit.bits:
            raise ArchError("formats.logit_acc must be at least as wide as formats.logit")
        if not self.act.signed or not self.h.signed:
            raise ArchError("formats.act and formats.h must be signed")

    def replace(self, **changes: Format) -> "Formats":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name).to_json() for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, obj: Any) -> "Formats":
        if not isinstance(obj, dict):
            raise ArchError(f"formats must be an object, got {type(obj).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = set(names) - obj.keys()
        if missing:
            raise ArchError(f"formats: missing role(s) {sorted(missing)}")
        extra = obj.keys() - set(names)
        if extra:
            raise ArchError(f"formats: unknown role(s) {sorted(extra)}")
        try:
            return cls(**{n: Format.from_json(obj[n], where=f"formats.{n}") for n in names})
        except FormatError as e:
            raise ArchError(str(e)) from None


DEFAULT_FORMATS = Formats()


def gate_format(arch: Arch, fmts: Formats) -> Format:
    """Format of z itself: unsigned b_z bits, all fraction (z = k / 2**b_z)."""
    return Format(False, arch.gate_bits, arch.gate_bits, fmts.h.rounding)


# ---------------------------------------------------------------------------------------------
# Gate quantiser (the only nonlinearity with a non-trivial integer definition)
# ---------------------------------------------------------------------------------------------
def gate_code(acc, frac: int, bits: int, rounding: Rounding | str):
    """6-bit (``bits``) hard-sigmoid gate code from an exact accumulator.

    Real definition: ``z = clip(x/4 + 1/2, 0, 1 - 2**-bits)`` rounded to a multiple of
    ``2**-bits``, where ``x = acc * 2**-frac``. In integers::

        k = clip(round(acc / 2**(frac - bits + 2)) + 2**(bits-1), 0, 2**bits - 1)

    The slope 1/4 is the logistic sigmoid's slope at 0, and a shift. Clipping here is the hard
    sigmoid's definition, not an overflow, so it is not counted as a saturation.
    Returns the int64 code ``k`` (z = k / 2**bits).
    """
    s = frac - bits + 2
    if s < 0:
        raise FormatError(f"gate accumulator has {frac} fraction bits; needs >= {bits - 2}")
    k = round_shift(acc, s, rounding) + (1 << (bits - 1))
    return _clip(k, 0, (1 << bits) - 1)


# ---------------------------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    role: str          # a Formats field, or 'delay'
    doc: str

    def bounds(self, arch: Arch, fmts: Formats) -> tuple[int, int]:
        if self.role == "delay":
            return 0, arch.d_max
        f = getattr(fmts, self.role)
        return f.min_int, f.max_int


def tensor_specs(arch: Arch) -> list[TensorSpec]:
    """Every integer tensor of the network, in a fixed order, with shape and format role."""
    H, E, C = arch.hidden, arch.mix_width, arch.n_classes
    out: list[TensorSpec] = []
    if arch.encoder == "linear":
        out += [TensorSpec("enc.w", (H, arch.d_in), "w_enc", "encoder weights, x -> act"),
                TensorSpec("enc.b", (H,), "bias", "encoder bias")]
    else:
        out += [TensorSpec("enc.table", (arch.d_in, H), "act", "embedding table, token -> act")]
    for i in range(arch.layers):
        p = f"layers.{i}."
        if arch.taps:
            out += [TensorSpec(p + "conv.w", (H, arch.taps), "w_conv", "tap weights per channel"),
                    TensorSpec(p + "conv.delay", (H, arch.taps), "delay", "tap delays in steps, 0..d_max")]
        out += [TensorSpec(p + "rnn.wz", (H, H), "w_rnn", "gate projection"),
                TensorSpec(p + "rnn.bz", (H,), "bias", "gate bias"),
                TensorSpec(p + "rnn.wh", (H, H), "w_rnn", "candidate projection"),
                TensorSpec(p + "rnn.bh", (H,), "bias", "candidate bias")]
        if arch.mix != "none":
            e1 = 2 * E if arch.mix == "glu" else E
            out += [TensorSpec(p + "mix.w1", (e1, H), "w_mix", "mixer expansion"),
                    TensorSpec(p + "mix.b1", (e1,), "bias", "mixer expansion bias"),
                    TensorSpec(p + "mix.w2", (H, E), "w_mix", "mixer projection"),
                    TensorSpec(p + "mix.b2", (H,), "bias", "mixer projection bias")]
        if arch.norm == "affine":
            out += [TensorSpec(p + "norm.g", (H,), "w_norm", "normalisation scale"),
                    TensorSpec(p + "norm.b", (H,), "bias", "normalisation shift")]
    out += [TensorSpec("out.w", (C, H), "w_out", "decoder weights"),
            TensorSpec("out.b", (C,), "bias", "decoder bias")]
    return out


def acc_frac(in_fmt: Format, w_fmt: Format) -> int:
    """Fraction bits of an exact product accumulator."""
    return in_fmt.frac + w_fmt.frac


def _mag(f: Format) -> int:
    return max(abs(f.min_int), abs(f.max_int))


def acc_bound(n_terms: int, in_fmt: Format, w_fmt: Format, bias: Format | None = None,
              frac: int | None = None) -> int:
    """Largest |accumulator| of ``n_terms`` products plus an aligned bias: sizes RTL adders and
    proves that float64 BLAS is exact (the bound must stay below 2**53)."""
    b = n_terms * _mag(in_fmt) * _mag(w_fmt)
    if bias is not None:
        f = acc_frac(in_fmt, w_fmt) if frac is None else frac
        b += _mag(bias) << max(0, f - bias.frac)
    return b


def check_formats(arch: Arch, fmts: Formats) -> None:
    """Cross-checks between architecture and formats that a single Format cannot see."""
    accs = {"encoder": (fmts.x, fmts.w_enc, arch.d_in), "conv": (fmts.dl, fmts.w_conv, max(arch.taps, 1)),
            "minGRU": (fmts.act, fmts.w_rnn, arch.hidden), "mixer": (fmts.act, fmts.w_mix, arch.mix_width),
            "norm": (fmts.act, fmts.w_norm, 1), "decoder": (fmts.act, fmts.w_out, arch.hidden)}
    for name, (fi, fw, n) in accs.items():
        f = acc_frac(fi, fw)
        if fmts.bias.frac > f and name != "conv":
            raise ArchError(f"formats.bias.frac={fmts.bias.frac} is finer than the {name} accumulator "
                            f"({f} fraction bits); a bias must align by a left shift")
        bound = acc_bound(n, fi, fw, fmts.bias)
        if bound >= 2 ** 53:
            raise ArchError(f"{name} accumulator can reach {bound} >= 2**53: too wide for exact float64")
    if acc_frac(fmts.act, fmts.w_rnn) < arch.gate_bits - 2:
        raise ArchError("the gate accumulator needs at least gate_bits-2 fraction bits")


# ---------------------------------------------------------------------------------------------
# Memory footprint
# ---------------------------------------------------------------------------------------------
def memory_footprint(arch: Arch, fmts: Formats) -> dict[str, int]:
    """Bits the chip must hold, by kind: weights (incl. delays), delay-line buffer, state.

    Delays cost ceil(log2(d_max+1)) bits each. The delay line holds d_max past samples per
    channel per layer (delay 0 is the current sample). The state is one h per channel per layer
    plus the readout accumulator. Returns bits; divide by 8 for bytes.
    """
    weights = 0
    for t in tensor_specs(arch):
        n = math.prod(t.shape)
        bits = arch.delay_bits if t.role == "delay" else getattr(fmts, t.role).bits
        weights += n * bits
    dl = arch.layers * arch.hidden * arch.d_max * fmts.dl.bits if arch.taps else 0
    state = arch.layers * arch.hidden * fmts.h.bits
    state += arch.n_classes * (fmts.logit_acc.bits if arch.readout == "mean" else fmts.logit.bits)
    return {"weights_bits": weights, "delay_line_bits": dl, "state_bits": state,
            "total_bits": weights + dl + state}


def minimalist_arch(d_in: int, n_classes: int, hidden: int = 64, layers: int = 2) -> tuple[Arch, Formats]:
    """MINIMALIST's variant (the ``minimalist`` preset of :mod:`spec.presets`, which gives the sources):
    no skips, no channel mixing, no conv, no norm, Heaviside outputs, 2-bit minGRU weights, 6-bit biases."""
    from .presets import PRESETS

    p = PRESETS["minimalist"]
    return p.arch_for(d_in, n_classes, hidden=hidden, layers=layers), p.formats
