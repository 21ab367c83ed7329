"""Precision sweeps: re-quantise a bundle into narrower formats, measure accuracy and footprint.

* :func:`requantize_bundle` maps a :class:`spec.bundle.Bundle` to a new one with changed
  :class:`spec.arch.Formats` (and optionally ``gate_bits``): every tensor whose role's format
  changed is re-rounded from its old codes with :func:`spec.fixedpoint.requantize` (the new
  format's rounding rule, then saturation, counted), exactly as the contract converts any value
  into a format; widening is exact (a left shift). The result is validated by ``Bundle``.
* :func:`fit_format` picks the new format of a role for a bit width: drop fraction bits (LSBs)
  only as far as needed to keep the largest magnitude the role holds (from the tensors for
  weights, from a noise-free trace for ``h`` and ``dl``), i.e. a per-role power-of-two scale.
* :data:`KNOBS`: what the study narrows: ``z`` (gate bits ``b_z``), ``h`` (state/candidate),
  ``weights`` (every weight role: w_enc, w_conv, w_rnn, w_mix, w_out; biases, the normalisation
  scale and the embedding table keep their formats), ``dl`` (delay-line samples).
* :func:`run_precision` runs every variant (noise-free, exact sim) through the cached parallel
  engine of :mod:`analysis.sweeps` and records :func:`spec.arch.memory_footprint` of each.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from spec.arch import Formats, memory_footprint, tensor_specs
from spec.bundle import Bundle
from spec.fixedpoint import Format, requantize, round_shift

from .cache import Cache, bundle_digest
from .data import EvalData
from .sweeps import Task, pick_points, run_tasks

__all__ = ["requantize_bundle", "fit_format", "calibrate", "Knob", "KNOBS", "WEIGHT_ROLES", "variant",
           "PrecisionResult", "run_precision", "footprint_bytes"]

WEIGHT_ROLES = ("w_enc", "w_conv", "w_rnn", "w_mix", "w_out")


def requantize_bundle(bundle: Bundle, formats: Formats | dict | None = None, *, gate_bits: int | None = None,
                      note: str | None = None) -> Bundle:
    """A new bundle with ``formats`` (a full :class:`Formats` or ``{role: Format}`` changes) and
    optionally another ``gate_bits``; tensors of changed roles are re-rounded
    (``requantize(code, old.frac, new)``). ``meta['requantized']`` records the parent's digest,
    the changes and the number of saturated codes per tensor."""
    old = bundle.formats
    if formats is None:
        new = old
    elif isinstance(formats, Formats):
        new = formats
    else:
        new = old.replace(**formats)
    arch = bundle.arch if gate_bits is None else dataclasses.replace(bundle.arch, gate_bits=int(gate_bits))
    tensors, sats = {}, {}
    for s in tensor_specs(bundle.arch):
        a = bundle.tensors[s.name]
        if s.role == "delay" or getattr(old, s.role) == getattr(new, s.role):
            tensors[s.name] = a
            continue
        fo, fn = getattr(old, s.role), getattr(new, s.role)
        q, n = requantize(np.asarray(a, dtype=np.int64), fo.frac, fn)
        tensors[s.name] = q
        if n:
            sats[s.name] = int(n)
    changes = {r: f"{getattr(old, r).name}->{getattr(new, r).name}" for r in Formats.__dataclass_fields__
               if getattr(old, r) != getattr(new, r)}
    if arch.gate_bits != bundle.arch.gate_bits:
        changes["gate_bits"] = f"{bundle.arch.gate_bits}->{arch.gate_bits}"
    meta = dict(bundle.meta)
    meta["requantized"] = {"parent": bundle_digest(bundle), "changes": changes, "saturated": sats,
                           **({"note": note} if note else {})}
    return Bundle(arch, new, tensors, meta)


def _magnitude_bits(max_abs_code: int) -> int:
    """Bits of magnitude needed for codes up to ``max_abs_code`` (0 for 0)."""
    return int(max_abs_code).bit_length()


def fit_format(fmt: Format, bits: int, max_abs_code: int | None = None) -> Format:
    """The format of ``bits`` bits for values now held in ``fmt``.

    Narrower (``bits < fmt.bits``): keep as many fraction bits as the largest magnitude allows
    (``max_abs_code``, in codes of ``fmt``; None: ``fmt``'s full range), i.e. drop
    ``max(0, m - (bits - sign))`` LSBs where ``m`` is that magnitude's bit length; never more
    fraction bits than ``fmt``. Wider: the same range with more fraction bits.
    """
    if bits >= fmt.bits:
        return fmt.with_(bits=bits, frac=fmt.frac + (bits - fmt.bits))
    sign = 1 if fmt.signed else 0
    m = (fmt.bits - sign) if max_abs_code is None else min(fmt.bits - sign, _magnitude_bits(max_abs_code))
    drop = max(0, m - (bits - sign))
    new = fmt.with_(bits=bits, frac=fmt.frac - drop)
    if max_abs_code is not None and drop and round_shift(int(max_abs_code), drop, fmt.rounding) > new.max_int:
        new = new.with_(frac=new.frac - 1)                # rounding up would overflow the top code
    return new


def calibrate(bundle: Bundle, data: EvalData, n: int = 4, headroom: int = 1) -> dict[str, int]:
    """Largest |code| per role over ``bundle``'s tensors (weights, exact) and over a noise-free trace
    of ``n`` sequences of ``data`` (``h``: state and candidate; ``dl``: delay-line samples), the
    latter times ``2**headroom`` (a few sequences do not show the whole range)."""
    from sim import Network

    out: dict[str, int] = {}
    for s in tensor_specs(bundle.arch):
        if s.role != "delay":
            peak = int(np.abs(np.asarray(bundle.tensors[s.name], np.int64)).max(initial=0))
            out[s.role] = max(out.get(s.role, 0), peak)
    net = Network(bundle)
    hmax = dmax = 0
    for i in range(min(n, len(data))):
        L = int(data.lengths[i])
        r = net.run(np.asarray(data.x[i:i + 1, :L]).astype(np.int64), trace=True)
        for k, v in r.trace.items():
            if k.endswith(".h") or k.endswith(".hc"):
                hmax = max(hmax, int(np.abs(v).max(initial=0)))
            elif k.endswith(".s"):
                dmax = max(dmax, int(np.abs(v).max(initial=0)))
    out["h"] = hmax << headroom
    out["dl"] = dmax << headroom
    return out


@dataclasses.dataclass(frozen=True)
class Knob:
    """A precision knob: ``roles`` narrowed together (or the gate bits), swept over ``bits``."""

    name: str
    title: str
    roles: tuple
    bits: tuple

    def default_bits(self, bundle: Bundle) -> int:
        """The bundle's own width for this knob (the reference point of the sweep)."""
        if self.name == "z":
            return bundle.arch.gate_bits
        return max(getattr(bundle.formats, r).bits for r in self.roles)


KNOBS: dict[str, Knob] = {k.name: k for k in [
    Knob("z", "gate z (b_z bits)", (), (2, 3, 4, 5, 6, 7, 8)),
    Knob("h", "state h / candidate", ("h",), (6, 8, 10, 12, 14, 16)),
    Knob("weights", "weights (enc, conv, Wz/Wh, mixer, out)", WEIGHT_ROLES, (2, 3, 4, 5, 6, 8)),
    Knob("dl", "delay-line samples", ("dl",), (4, 6, 8, 10, 12, 16)),
]}


def variant(bundle: Bundle, knob: Knob, bits: int, ranges: dict[str, int] | None = None) -> Bundle:
    """``bundle`` with ``knob`` set to ``bits`` (formats from :func:`fit_format` with ``ranges``)."""
    if knob.name == "z":
        return requantize_bundle(bundle, gate_bits=bits, note=f"z: {bits} bits")
    roles = [r for r in knob.roles if _role_used(bundle, r)]
    ch = {r: fit_format(getattr(bundle.formats, r), bits, (ranges or {}).get(r)) for r in roles}
    return requantize_bundle(bundle, ch, note=f"{knob.name}: {bits} bits")


def _role_used(bundle: Bundle, role: str) -> bool:
    if role in ("h", "dl", "x", "act", "logit", "logit_acc"):
        return True
    return any(s.role == role for s in tensor_specs(bundle.arch))


def footprint_bytes(bundle: Bundle) -> dict[str, float]:
    """:func:`spec.arch.memory_footprint` in bytes."""
    return {k.replace("_bits", "_bytes"): v / 8 for k, v in memory_footprint(bundle.arch, bundle.formats).items()}


@dataclasses.dataclass
class PrecisionResult:
    knob: Knob
    bits: np.ndarray
    acc: np.ndarray
    footprint: np.ndarray          # total bytes per point
    formats: list                  # per point, {role: format name} (or gate bits)
    saturated: list                # per point, weight codes saturated by the re-rounding
    exact: float                   # the unmodified bundle
    default_bits: int
    default_footprint: float
    n: int

    def table(self) -> str:
        lines = [f"{self.knob.title}: default {self.default_bits} bits, accuracy {self.exact:.4f}, "
                 f"footprint {self.default_footprint / 1024:.2f} KiB (n={self.n})",
                 f"{'bits':>5} {'accuracy':>9} {'KiB':>9}  formats"]
        for i, b in enumerate(self.bits):
            lines.append(f"{int(b):5d} {self.acc[i]:9.4f} {self.footprint[i] / 1024:9.2f}  {self.formats[i]}"
                         + (f"  saturated {self.saturated[i]}" if self.saturated[i] else ""))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"knob": self.knob.name, "bits": self.bits.tolist(), "acc": self.acc.tolist(),
                "footprint_bytes": self.footprint.tolist(), "formats": self.formats, "exact": self.exact,
                "default_bits": self.default_bits, "n": self.n}


def run_precision(bundle: Bundle, data: EvalData, knobs: Sequence[Knob] | None = None, *,
                  points: int | None = None, ranges: dict[str, int] | None = None, batch: int = 64,
                  cache: Cache | None = None, workers: int | None = None, progress: bool = True
                  ) -> dict[str, PrecisionResult]:
    """Accuracy (noise-free) and footprint of every knob at every bit width, in one pool.
    ``points``: bit widths per knob taken evenly from the knob's grid, the default always kept."""
    knobs = list(KNOBS.values()) if knobs is None else list(knobs)
    ranges = ranges if ranges is not None else calibrate(bundle, data)
    tasks = [Task(bundle, None, 0, ("exact",))]
    meta = {}
    for kb in knobs:
        d = kb.default_bits(bundle)
        grid = sorted(set(pick_points(kb.bits, points)) | {d})
        for b in grid:
            v = variant(bundle, kb, b, ranges)
            tasks.append(Task(v, None, 0, (kb.name, b)))
            fm = ({"gate_bits": b} if kb.name == "z" else
                  {r: getattr(v.formats, r).name for r in kb.roles if _role_used(bundle, r)})
            meta[(kb.name, b)] = (footprint_bytes(v)["total_bytes"], fm,
                                  sum(v.meta["requantized"]["saturated"].values()))
    res = run_tasks(tasks, data, batch=batch, cache=cache, workers=workers, progress=progress,
                    desc=f"precision sweeps {data.task}")
    exact = res[0]["accuracy"]
    out = {}
    for kb in knobs:
        rows = [(t.tag[1], r["accuracy"]) for t, r in zip(tasks, res, strict=True) if t.tag[0] == kb.name]
        bits = np.array([b for b, _ in rows])
        out[kb.name] = PrecisionResult(
            kb, bits, np.array([a for _, a in rows]), np.array([meta[(kb.name, b)][0] for b in bits]),
            [meta[(kb.name, b)][1] for b in bits], [meta[(kb.name, b)][2] for b in bits], exact,
            kb.default_bits(bundle), footprint_bytes(bundle)["total_bytes"], len(data))
    return out
