"""Named chip presets: the formats a network is trained for, and the architecture flags they fix.

A :class:`Preset` is ``(formats, arch constraints)``: a :class:`~spec.arch.Formats` table plus the
:class:`~spec.arch.Arch` fields that the chip dictates (the rest, e.g. ``hidden`` and ``layers``,
stay free). :func:`resolve` turns what a user writes after ``models.train --formats`` into one:
a preset name of :data:`PRESETS`, or a JSON file in the bundle header's schema.

Presets (sources in ``shared/reference/papers.md``; [P] paper abstract, [R] review of the paper,
[D] this project's choice where the paper is silent):

``mgrade-hw``
    Today's defaults, ``Formats()``: 8-bit weights, 16-bit activations/state, 6-bit gate. No arch
    constraint.
``minimalist``
    MINIMALIST (Billaudelle et al., arXiv 2505.08599, section 5 of the digest): minGRU weights
    2-bit and biases 6-bit [R 5.2 item 2]; the gate a hard sigmoid quantised to 6 bits [R item 4];
    Heaviside (binary) outputs [R item 3]; a feed-forward stack of GRU blocks without skip
    connections or channel mixing [R item 1]. The core is a GRU block and its output comparator
    only [R, circuit], so there is no delay-line convolution and no normalisation either [D].
    The paper does not give where the binary point of the 2-bit levels and the 6-bit biases sits
    (the level voltages are UNKNOWN, 5.3) [D]: weights ``s2f2`` = {-0.5, -0.25, 0, 0.25} (with
    binary inputs, a sum over ~16 active inputs spans the hard sigmoid's +-2), biases ``s6f4`` =
    -2 .. 1.9375 in steps of 1/16 (the gate's active range, one bias step ~ one gate code). Every
    other role (encoder, decoder, state) keeps the ``mgrade-hw`` format: the paper leaves them open
    and keeps the state analog (not quantised), which the 16-bit ``h`` approximates.

A formats JSON file holds either the ``"formats"`` object of a bundle header (one entry per role,
:meth:`Formats.to_json`) or ``{"formats": {...}, "arch": {field: value}, "name": "..."}`` with
optional arch constraints. Every preset validates like every other format: :meth:`Preset.check`
runs :func:`spec.arch.check_formats` on the architecture it is applied to.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

from .arch import Arch, ArchError, Formats, check_formats
from .fixedpoint import Format, FormatError

__all__ = ["Preset", "PRESETS", "resolve", "preset_names", "MINIMALIST_FORMATS"]

_ARCH_FIELDS = {f.name for f in dataclasses.fields(Arch)}
#: Fields a preset may never fix: they belong to the task, not to the chip.
_TASK_FIELDS = {"d_in", "n_classes", "encoder"}


@dataclasses.dataclass(frozen=True)
class Preset:
    """A chip's formats and the architecture fields it fixes.

    name:    preset name (or ``file:PATH`` for a JSON file).
    formats: the :class:`Formats` every tensor uses.
    arch:    ``{Arch field: value}`` the chip dictates (e.g. ``{"mix": "none"}``).
    source:  where the numbers come from (one line).
    """

    name: str
    formats: Formats
    arch: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.formats, Formats):
            raise ArchError(f"preset {self.name!r}: formats must be a Formats, not {self.formats!r}")
        bad = set(self.arch) - _ARCH_FIELDS
        if bad:
            raise ArchError(f"preset {self.name!r}: unknown arch field(s) {sorted(bad)}")
        task = set(self.arch) & _TASK_FIELDS
        if task:
            raise ArchError(f"preset {self.name!r}: {sorted(task)} depend on the task, a preset cannot fix them")
        object.__setattr__(self, "arch", dict(self.arch))

    def conflicts(self, values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
        """``{field: (given, preset)}`` for each field of ``values`` the preset fixes otherwise."""
        return {k: (v, self.arch[k]) for k, v in values.items() if k in self.arch and v != self.arch[k]}

    def apply(self, arch: Arch, explicit: Mapping[str, Any] | None = None) -> Arch:
        """``arch`` with the preset's fields, validated with the formats (:meth:`check`).

        ``explicit``: fields the user set on purpose (e.g. command-line flags); one that the preset
        fixes to another value raises :class:`ArchError` naming both, instead of being overridden."""
        bad = self.conflicts(explicit or {})
        if bad:
            what = ", ".join(f"{k}={v[0]!r} (the preset needs {v[1]!r})" for k, v in bad.items())
            raise ArchError(f"formats preset {self.name!r} fixes {sorted(self.arch)}; conflicting explicit "
                            f"setting(s): {what}. Drop them or pick another preset")
        out = dataclasses.replace(arch, **self.arch)
        self.check(out)
        return out

    def check(self, arch: Arch) -> None:
        """Raise :class:`ArchError` unless ``arch`` has the preset's fields and fits its formats."""
        bad = self.conflicts({k: getattr(arch, k) for k in self.arch})
        if bad:
            raise ArchError(f"arch does not follow preset {self.name!r}: "
                            + ", ".join(f"{k}={v[0]!r} (needs {v[1]!r})" for k, v in bad.items()))
        try:
            check_formats(arch, self.formats)
        except FormatError as e:
            raise ArchError(f"preset {self.name!r}: {e}") from None

    def arch_for(self, d_in: int, n_classes: int, **kw: Any) -> Arch:
        """An :class:`Arch` for a task with the preset's fields (``kw``: the free ones)."""
        return self.apply(Arch(d_in=d_in, n_classes=n_classes, **{**kw, **self.arch}), explicit=kw)

    def to_json(self) -> dict:
        """The JSON file form :func:`resolve` reads back."""
        return {"name": self.name, "formats": self.formats.to_json(), "arch": dict(self.arch), "source": self.source}


MINIMALIST_FORMATS = Formats().replace(w_rnn=Format(True, 2, 2), bias=Format(True, 6, 4))

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("mgrade-hw", Formats(), {}, source="this project's defaults (spec.arch.Formats())"),
    Preset("minimalist", MINIMALIST_FORMATS,
           {"gate_bits": 6, "rnn_out": "heaviside", "skip": False, "mix": "none", "taps": 0, "d_max": 0,
            "norm": "none"},
           source="MINIMALIST, arXiv 2505.08599 (shared/reference/papers.md section 5.2): 2-bit weights, 6-bit "
                  "biases, 6-bit hard-sigmoid gate, Heaviside outputs, no skips, no channel mixing; binary "
                  "points, no conv and no norm are this project's choice"),
]}


def preset_names() -> list[str]:
    return list(PRESETS)


def resolve(spec: str | os.PathLike | Preset) -> Preset:
    """A preset by name, or read from a JSON file (see the module docstring); raises
    :class:`ArchError` with what is wrong. Names are tried first; anything else must be a file."""
    if isinstance(spec, Preset):
        return spec
    s = str(spec)
    if s in PRESETS:
        return PRESETS[s]
    p = Path(s)
    if not p.is_file():
        raise ArchError(f"--formats {s!r}: neither a preset ({', '.join(PRESETS)}) nor a JSON file")
    try:
        obj = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ArchError(f"{p}: not a readable JSON file: {e}") from None
    if not isinstance(obj, dict):
        raise ArchError(f"{p}: expected a JSON object (a bundle header's 'formats', or "
                        f"{{'formats': ..., 'arch': ...}}), got {type(obj).__name__}")
    if "formats" in obj:
        extra = obj.keys() - {"formats", "arch", "name", "source"}
        if extra:
            raise ArchError(f"{p}: unknown key(s) {sorted(extra)} (allowed: formats, arch, name, source)")
        fobj, arch = obj["formats"], obj.get("arch") or {}
        if not isinstance(arch, dict):
            raise ArchError(f"{p}: 'arch' must be an object of Arch fields")
        name, source = obj.get("name") or f"file:{p}", obj.get("source") or str(p)
    else:
        fobj, arch, name, source = obj, {}, f"file:{p}", str(p)
    try:
        fmts = Formats.from_json(fobj)
    except (ArchError, FormatError) as e:
        raise ArchError(f"{p}: {e}") from None
    return Preset(str(name), fmts, arch, source=str(source))
