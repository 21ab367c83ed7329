"""The co-design study: accuracy against chip cost over the state capacitor and the bit widths.

A design point changes one knob of the ``mgrade-hw`` chip at :meth:`sim.NoiseModel.default`:

=============== ============================================ =========================================
axis            what changes                                 values (``AXES``)
=============== ============================================ =========================================
``capacitor``   the state capacitor C: kT/C (``Thermal``),   30 fF .. 3 pF
                leakage (``Leakage``) and charge injection
                (``ChargeInjection``) all see this C
``weight_bits`` ``formats.w_rnn`` = s{b}f{b-2} (range +-2    2 .. 8
                kept): the analog minGRU weights' levels
``state_bits``  ``formats.h`` = s{b}f{b-6} (range +-32       8 .. 16
                kept): the state's codes
``gate_bits``   ``arch.gate_bits`` (z bank of 2**b units)    3 .. 6
=============== ============================================ =========================================

plus the two presets of :mod:`spec.presets` as they are (``mgrade-hw`` at the default noise, and
``minimalist``, a network of its own architecture). Each point is fine-tuned noise-aware on the GPU
(``python -m analysis.codesign commands`` prints the ``models.train`` lines; each starts from the
task's shipped bundle, re-quantised to the point's formats) and evaluated here on ``sim/`` over
several chip instances of the point's noise model (:func:`analysis.chips.chip_yield`).

Cost (:class:`CostModel`, this project's proxies; no published figures exist for an SC recurrent
chip, so these are only this model's numbers):

* area proxy = analog capacitance / capacitor density + memory bits x bit-cell area, with the
  capacitance per minGRU channel: the sharing pair (state + candidate, 2 C), the gate's z bank
  (``2**b_z`` unit capacitors) and one capacitive level DAC per weight row (``2**w_bits`` units;
  rows: 2 H per layer, Wz and Wh); memory bits from :func:`spec.arch.memory_footprint`.
* energy proxy per step = C V**2 per charge-sharing event x events per step (``b_z`` serial
  phases per channel per layer, plus the candidate sample), the level DACs' charging
  (``2**w_bits`` C_u V**2 per row and step, an upper bound); digital multiply-accumulates per step
  counted separately (:func:`macs_per_step`, one per weight element of every matrix).
"""
from __future__ import annotations

import dataclasses
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Sequence

from sim.noise import ChargeInjection, Leakage, NoiseModel, Thermal
from spec.arch import Arch, Formats, memory_footprint, tensor_specs
from spec.fixedpoint import Format

__all__ = ["AXES", "CENTRE", "Point", "CostModel", "points", "point_arch", "macs_per_step", "train_command",
           "write_point_files", "REPO", "POINTS_DIR", "Row", "trained_points", "study", "cheapest_within"]

REPO = Path(__file__).resolve().parents[1]
#: Where the fine-tuned points live: ``<task>/<point name>.npz`` (+ its .formats/.noise/.metrics JSON).
POINTS_DIR = REPO / "models" / "bundles" / "codesign"

#: The values of each axis (the mgrade-hw value of each is in the list: the shared centre point).
AXES: dict[str, tuple] = {
    "capacitor": (30e-15, 100e-15, 300e-15, 1e-12, 3e-12),
    "weight_bits": (2, 3, 4, 6, 8),
    "state_bits": (8, 10, 12, 16),
    "gate_bits": (3, 4, 5, 6),
}
#: The centre (mgrade-hw at NoiseModel.default()).
CENTRE = {"capacitor": 100e-15, "weight_bits": 8, "state_bits": 16, "gate_bits": 6}

#: Fine-tuning per task on the GPU (models.train flags beyond the shipped bundle's own).
FINETUNE = {
    "listops": ["--limit", "10000", "--qat-epochs", "2", "--batch-size", "32", "--bucket", "8"],
    "asc40": ["--qat-epochs", "3", "--batch-size", "64", "--augment"],
}


#: The minimalist network, trained from scratch: the task's data flags.
MINIMALIST_EXTRA = {"listops": ["--limit", "20000", "--bucket", "8"], "asc40": ["--augment"]}


@dataclasses.dataclass(frozen=True)
class Point:
    """One chip: ``axis`` set to ``value`` (``axis='preset'``: ``value`` a preset name)."""

    axis: str
    value: object

    def __post_init__(self) -> None:
        if self.axis == "preset":
            if self.value not in ("mgrade-hw", "minimalist"):
                raise ValueError(f"preset point must be 'mgrade-hw' or 'minimalist', not {self.value!r}")
        elif self.axis not in AXES:
            raise ValueError(f"unknown axis {self.axis!r}; choose from {sorted(AXES)} or 'preset'")

    @property
    def name(self) -> str:
        if self.axis == "capacitor":
            return f"capacitor_{self.value * 1e15:g}fF"
        return f"{self.axis}_{self.value}"

    def knobs(self) -> dict:
        """The four knobs of this chip (the centre's where the point leaves one alone)."""
        k = dict(CENTRE)
        if self.axis in AXES:
            k[self.axis] = self.value
        return k

    def formats(self, base: Formats | None = None) -> Formats:
        """The point's formats: ``base`` (default mgrade-hw) with w_rnn and h set by the knobs."""
        from spec.presets import PRESETS
        if self.axis == "preset":
            return PRESETS[self.value].formats
        base = base or Formats()
        k = self.knobs()
        wb, hb = k["weight_bits"], k["state_bits"]
        return base.replace(w_rnn=Format(True, wb, wb - 2, base.w_rnn.rounding),
                            h=Format(True, hb, hb - 6, base.h.rounding))

    def gate_bits(self) -> int:
        return 6 if self.axis == "preset" else self.knobs()["gate_bits"]

    def noise(self) -> NoiseModel:
        """NoiseModel.default() with every state-capacitor effect at this point's C."""
        c = float(self.knobs()["capacitor"])
        d = NoiseModel.default()
        return d.replace(thermal=dataclasses.replace(d.thermal or Thermal(), capacitance=c),
                         leakage=dataclasses.replace(d.leakage or Leakage(), capacitance=c),
                         injection=dataclasses.replace(d.injection or ChargeInjection(), capacitance=c))


def points(axes: Sequence[str] = tuple(AXES), presets: bool = True) -> list[Point]:
    """Every point of ``axes`` (the centre once, as the ``mgrade-hw`` preset point), then the presets."""
    out = [Point(a, v) for a in axes for v in AXES[a] if v != CENTRE[a]]
    if presets:
        out += [Point("preset", "mgrade-hw"), Point("preset", "minimalist")]
    return out


def macs_per_step(arch: Arch) -> int:
    """Digital multiply-accumulates per time step: one per element of every weight matrix (encoder,
    taps, Wz, Wh, mixer, readout; biases, delays and tables excluded)."""
    return sum(math.prod(t.shape) for t in tensor_specs(arch)
               if t.role.startswith("w_") and t.role != "w_norm" and len(t.shape) == 2)


@dataclasses.dataclass(frozen=True)
class CostModel:
    """This project's area and energy proxies (the assumed densities are parameters).

    cap_density:  F per um**2 of the analog capacitors (MIM, ~2 fF/um**2).
    bit_area:     um**2 per memory bit (a 6T SRAM cell with its share of periphery, 65 nm class).
    unit_cap:     F, the unit capacitor of the z bank and the level DACs (sim.noise.Mismatch's C_u).
    v:            V, the swing of a charge-sharing event (sim.NoiseModel.v_fs).
    """

    cap_density: float = 2e-15
    bit_area: float = 0.5
    unit_cap: float = 1e-15
    v: float = 1.0

    def capacitance(self, arch: Arch, fmts: Formats, c_state: float) -> float:
        """Total analog capacitance, F: per channel 2 C + 2**b_z C_u; per weight row 2**w_bits C_u."""
        per_channel = 2 * c_state + (1 << arch.gate_bits) * self.unit_cap
        per_row = (1 << fmts.w_rnn.bits) * self.unit_cap
        return arch.layers * arch.hidden * (per_channel + 2 * per_row)

    def area_um2(self, arch: Arch, fmts: Formats, c_state: float) -> dict:
        cap = self.capacitance(arch, fmts, c_state)
        bits = memory_footprint(arch, fmts)["total_bits"]
        a_cap, a_mem = cap / self.cap_density, bits * self.bit_area
        return {"capacitance_pF": cap * 1e12, "memory_bits": bits, "area_cap_um2": a_cap, "area_mem_um2": a_mem,
                "area_um2": a_cap + a_mem}

    def energy_per_step_J(self, arch: Arch, fmts: Formats, c_state: float) -> dict:
        """Analog energy per step (C V**2 per event) and the digital MAC count."""
        share = arch.layers * arch.hidden * (arch.gate_bits + 1) * c_state * self.v ** 2
        dac = arch.layers * 2 * arch.hidden * (1 << fmts.w_rnn.bits) * self.unit_cap * self.v ** 2
        return {"energy_analog_J": share + dac, "energy_share_J": share, "energy_dac_J": dac,
                "macs_per_step": macs_per_step(arch)}

    def cost(self, arch: Arch, fmts: Formats, c_state: float) -> dict:
        return {**self.area_um2(arch, fmts, c_state), **self.energy_per_step_J(arch, fmts, c_state)}


def point_arch(point: Point, base: Arch) -> Arch:
    """The network of ``point`` for the task's shipped architecture ``base``."""
    from spec.presets import PRESETS
    if point.axis == "preset":
        return PRESETS[point.value].apply(base)
    return dataclasses.replace(base, gate_bits=point.gate_bits())


def train_command(task: str, point: Point, bundle: str, out_dir: str, train_args: dict, *,
                  noise_clean: float = 0.5, time_budget: float | None = None, python: str = sys.executable
                  ) -> list[str]:
    """The ``models.train`` argv of one point's noise-aware fine-tune (GPU): from ``bundle`` (the
    task's shipped one, re-quantised to the point), ``--formats``/``--noise`` files written beside
    the bundle ``out_dir/<name>.npz``. The minimalist preset is a different network: trained from
    scratch (float then QAT) with the task's own flags."""
    out = Path(out_dir)
    name = point.name
    a = train_args
    argv = [python, "-m", "models.train", "--task", task, "--hidden", str(a["hidden"]),
            "--layers", str(a["layers"]), "--lr", str(a["lr"]), "--wd", str(a.get("wd", 0.05)),
            "--label-smoothing", str(a.get("label_smoothing", 0.0)), "--frame", str(a.get("frame", 1)),
            "--noise", str(out / f"{name}.noise.json"), "--noise-seed", "0", "--noise-clean", str(noise_clean),
            "--out", str(out / name), "--export", str(out / f"{name}.npz"), "--no-progress"]
    if a.get("data_root"):
        argv += ["--data-root", a["data_root"]]
    if point.axis == "preset" and point.value == "minimalist":
        argv += ["--formats", "minimalist", "--epochs", "30", "--qat-epochs", "10",
                 "--batch-size", str(a.get("batch_size", 32)), *MINIMALIST_EXTRA.get(task, [])]
    else:
        argv += ["--taps", str(a["taps"]), "--d-max", str(a["d_max"]), "--gate-bits", str(point.gate_bits()),
                 "--formats", str(out / f"{name}.formats.json"), "--init", bundle, "--epochs", "0",
                 *FINETUNE[task]]
    if time_budget:
        argv += ["--time-budget", str(time_budget)]
    return argv


def write_point_files(point: Point, out_dir: str | Path) -> None:
    """The point's ``--noise`` and ``--formats`` JSON files."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{point.name}.noise.json").write_text(json.dumps(point.noise().to_json(), indent=1))
    (out / f"{point.name}.formats.json").write_text(json.dumps({"formats": point.formats().to_json(),
                                                                "name": point.name}, indent=1))


# ---------------------------------------------------------------------------------------------
# the study: evaluate the fine-tuned points on sim/ and put them on the cost axes
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    """One design point of one task, measured. Accuracies on ``sim/``: ``exact`` noise-free,
    ``acc`` one per chip instance of the point's noise model (:attr:`mean`, :attr:`std`)."""

    point: Point
    label: str
    exact: float
    acc: list
    cost: dict
    fine_tuned: bool = True

    @property
    def mean(self) -> float:
        return float(sum(self.acc) / len(self.acc))

    @property
    def std(self) -> float:
        m = self.mean
        return float(math.sqrt(sum((a - m) ** 2 for a in self.acc) / len(self.acc)))


def trained_points(task: str, root: Path = POINTS_DIR) -> list[tuple[Point, Path]]:
    """The fine-tuned bundles of ``task`` present under ``root/<task>/``, in :func:`points` order."""
    have = {p.stem: p for p in (Path(root) / task).glob("*.npz")}
    return [(pt, have[pt.name]) for pt in points() if pt.name in have]


def study(task: str, data, seeds: Sequence[int], *, plain=None, noise_aware=None, root: Path = POINTS_DIR,
          cost: CostModel | None = None, batch: int = 64, cache=None, workers: int | None = None) -> list[Row]:
    """Every fine-tuned point of ``task`` (:func:`trained_points`), plus the shipped ``plain`` bundle
    and the ``noise_aware`` one at NoiseModel.default() (the mgrade-hw chip, not / fully fine-tuned
    for it): noise-free and over the chip instances ``seeds`` of each point's noise model, on
    ``data`` (:class:`analysis.data.EvalData`), cached, with each point's cost."""
    from spec.bundle import load_bundle

    from .sweeps import Task, run_tasks
    cost = cost or CostModel()
    entries = [(pt, load_bundle(path), pt.name, True) for pt, path in trained_points(task, root)]
    centre = Point("preset", "mgrade-hw")
    for b, label, tuned in ((plain, "shipped bundle (not noise-aware)", False),
                            (noise_aware, "noise-aware bundle", True)):
        if b is not None:
            entries.append((centre, b, label, tuned))
    tasks = []
    for pt, b, *_ in entries:
        nm = pt.noise()
        tasks += [Task(b, None, 0)] + [Task(b, nm, int(s)) for s in seeds]
    res = run_tasks(tasks, data, batch=batch, cache=cache, workers=workers, desc=f"co-design {task}")
    rows, k = [], 0
    for pt, b, label, tuned in entries:
        r = res[k:k + 1 + len(seeds)]
        k += 1 + len(seeds)
        rows.append(Row(pt, label, float(r[0]["accuracy"]), [float(x["accuracy"]) for x in r[1:]],
                        cost.cost(b.arch, b.formats, float(pt.knobs()["capacitor"])), tuned))
    return rows


def cheapest_within(rows: Sequence[Row], reference: float, tol: float = 0.01, key: str = "area_um2"):
    """The row of least ``key`` cost whose mean accuracy over chips is within ``tol`` of
    ``reference`` (e.g. the float accuracy); None if no point reaches it."""
    ok = [r for r in rows if r.mean >= reference - tol]
    return min(ok, key=lambda r: r.cost[key]) if ok else None


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.codesign commands --task listops --out runs/codesign [--budget S]``: write
    each point's noise/formats files and print its fine-tune command (one per line, for a GPU
    machine: run them there, in parallel, and bring the bundles back to ``results/codesign/``)."""
    import argparse

    from spec.bundle import load_bundle
    ap = argparse.ArgumentParser(prog="python -m analysis.codesign", description=main.__doc__.split("\n")[0])
    ap.add_argument("what", choices=("commands",))
    ap.add_argument("--task", required=True, choices=sorted(FINETUNE))
    ap.add_argument("--out", required=True, help="folder of the points' files and bundles")
    ap.add_argument("--bundle", default=None, help="start bundle (default models/bundles/<task>.npz)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--budget", type=float, default=None, help="--time-budget of each fine-tune, s")
    ap.add_argument("--axes", default=",".join(AXES))
    ap.add_argument("--python", default=sys.executable, help="the interpreter in the commands")
    args = ap.parse_args(argv)
    bundle = args.bundle or f"models/bundles/{args.task}.npz"      # relative: the commands run in the repo
    ta = dict(load_bundle(bundle).meta["train_args"])
    if args.data_root:
        ta["data_root"] = args.data_root
    out = Path(args.out) / args.task
    for p in points([a for a in args.axes.split(",") if a]):
        write_point_files(p, out)
        print(shlex.join(train_command(args.task, p, bundle, str(out), ta, time_budget=args.budget,
                                                  python=args.python)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
