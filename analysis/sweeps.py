"""Noise sweeps: accuracy of a bundle as one switched-capacitor non-ideality grows.

* :data:`SWEEPS`: one :class:`Sweep` per non-ideality of :mod:`sim.noise` (kT/C against capacitor
  size, capacitor mismatch, leakage per step, charge injection, comparator offset, reference-level
  error), each a grid of physical values and a builder of the :class:`sim.NoiseModel` that has only
  that non-ideality (everything else ideal), so each curve isolates one effect.
* :func:`run_tasks`: the engine. One task per (point, seed); cached results are read first, the
  rest run on a Dask cluster (:mod:`analysis.cluster`: a local one of a worker process per core, one
  BLAS thread each, or the running cluster named by ``$MGRADE_SCHEDULER``; the data go to every
  worker once) with a tqdm bar, and each result is written to the cache as soon as it arrives.
* :func:`run_sweeps`: the sweeps of one bundle on one data set, plus the noise-free reference,
  as :class:`SweepResult` objects (accuracy per point and seed; mean, spread).
* :func:`run_default`: the chip at :meth:`sim.NoiseModel.default` (every non-ideality at its
  documented default) and each non-ideality alone at its default, per seed (:class:`DefaultResult`).
* :func:`smallest_within`: the read-off "smallest x that keeps the accuracy within ``tol`` of a
  reference" (e.g. the smallest capacitor within 1 point of the noise-free chip).
"""
from __future__ import annotations

import collections
import dataclasses
import math
import sys
from typing import Any, Callable, Sequence

import numpy as np

from sim.noise import ChargeInjection, Comparator, Leakage, Mismatch, NoiseModel, ReferenceLevels, Thermal

from .cache import Cache, bundle_digest, code_digest, key_of
from .cluster import get_client, n_workers, run_jobs, scheduler_address
from .data import EvalData
from .evaluate import evaluate

__all__ = ["Task", "run_tasks", "Sweep", "SWEEPS", "SweepResult", "run_sweeps", "exact_accuracy",
           "EFFECTS", "default_models", "DefaultResult", "run_default",
           "smallest_within", "ReadOff", "pick_points", "n_workers", "UNIT_CAP", "STATE_CAP", "T_STEP"]

#: Fixed parameters of the isolated sweeps (sim.noise defaults): the unit capacitor of the
#: mismatch model, the state capacitor of leakage/injection, the step period of leakage.
UNIT_CAP = Mismatch().unit_capacitance
STATE_CAP = Leakage().capacitance
T_STEP = Leakage().t_step


# ---------------------------------------------------------------------------------------------
# the engine
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Task:
    """One measurement: ``bundle`` with ``noise`` (None: exact) and ``seed``; ``tag`` is free."""

    bundle: Any
    noise: NoiseModel | None = None
    seed: int = 0
    tag: Any = None


def _work_on(task: Task, data: EvalData, batch: int) -> dict:
    """One task (on a Dask worker, ``data`` scattered to every worker once; or inline)."""
    return evaluate(task.bundle, data.x, data.y, data.lengths, noise=task.noise, seed=task.seed, batch=batch)


def task_key(bdig: str, data: EvalData, noise: NoiseModel | None, seed: int, batch: int) -> str:
    return key_of(kind="accuracy", bundle=bdig, data=data.digest, noise=noise,
                  seed=int(seed) if noise is not None else 0, batch=int(batch), code=code_digest())


def run_tasks(tasks: Sequence[Task], data: EvalData, *, batch: int = 64, cache: Cache | None = None,
              workers: int | None = None, progress: bool = True, desc: str = "tasks",
              scheduler: str | None = None) -> list[dict]:
    """Results of ``tasks`` on ``data`` (``evaluate``'s dicts, plus ``"cached"``), in task order.

    Cached results are taken as they are; identical tasks run once; the rest run on a Dask cluster:
    the one at ``scheduler`` or ``$MGRADE_SCHEDULER``, else a local one of ``workers`` processes
    (default: every core; 1, or a single task, runs inline). Each result is cached as soon as it is done.
    """
    from tqdm import tqdm

    cache = cache if cache is not None else Cache()
    workers = n_workers() if workers is None else max(1, int(workers))
    digests: dict[int, str] = {}
    keys = []
    for t in tasks:
        if id(t.bundle) not in digests:
            digests[id(t.bundle)] = bundle_digest(t.bundle)
        keys.append(task_key(digests[id(t.bundle)], data, t.noise, t.seed, batch))
    results: dict[str, dict] = {}
    todo: dict[str, Task] = {}
    for k, t in zip(keys, tasks, strict=True):
        if k in results or k in todo:
            continue
        hit = cache.get(k)
        if hit is not None:
            results[k] = dict(hit, cached=True)
        else:
            todo[k] = t
    bar = tqdm(total=len(keys), desc=desc, disable=not progress, file=sys.stderr, mininterval=1.0,
               dynamic_ncols=False, ncols=90)
    uses = collections.Counter(keys)          # identical tasks: one run advances the bar for each
    bar.update(len(keys) - sum(uses[k] for k in todo))

    def done(k: str, r: dict) -> None:
        cache.put(k, r)
        results[k] = dict(r, cached=False)
        bar.update(uses[k])

    try:
        if todo and not scheduler_address(scheduler) and (workers == 1 or len(todo) == 1):
            for k, t in todo.items():
                done(k, _work_on(t, data, batch))
        elif todo:
            client = get_client(scheduler, workers)
            data_f = client.scatter(data, broadcast=True, hash=False)
            fresh = run_jobs(_work_on, list(todo.values()), keys=list(todo), cache=cache, reuse=False,
                             extra=(data_f, batch),
                             weights=[uses[k] for k in todo], client=client, bar=bar)
            results.update({k: dict(r, cached=False) for k, r in zip(todo, fresh, strict=True)})
            data_f.release()
    finally:
        bar.close()
    return [results[k] for k in keys]


def exact_accuracy(bundle, data: EvalData, *, batch: int = 64, cache: Cache | None = None) -> dict:
    """The noise-free (bit-exact contract) result of ``bundle`` on ``data``."""
    return run_tasks([Task(bundle)], data, batch=batch, cache=cache, workers=1, progress=False)[0]


# ---------------------------------------------------------------------------------------------
# sweep definitions
# ---------------------------------------------------------------------------------------------
def _thermal(x: float, base: NoiseModel) -> NoiseModel:
    return base.replace(thermal=Thermal(capacitance=float(x)))


def _mismatch(x: float, base: NoiseModel) -> NoiseModel:
    # x = relative sigma of one unit capacitor: pelgrom = x * sqrt(C_u)
    return base.replace(mismatch=Mismatch(pelgrom=float(x) * math.sqrt(UNIT_CAP), unit_capacitance=UNIT_CAP))


def leak_r_off(fraction: float, capacitance: float = STATE_CAP, t_step: float = T_STEP) -> float:
    """Off-resistance that loses ``fraction`` of the held state per step: exp(-t/(R C)) = 1 - fraction."""
    return t_step / (capacitance * -math.log1p(-fraction))


def _leakage(x: float, base: NoiseModel) -> NoiseModel:
    return base.replace(leakage=Leakage(r_off=leak_r_off(float(x)), capacitance=STATE_CAP, t_step=T_STEP))


def _injection(x: float, base: NoiseModel) -> NoiseModel:
    return base.replace(injection=ChargeInjection(charge=float(x), capacitance=STATE_CAP))


def _comparator(x: float, base: NoiseModel) -> NoiseModel:
    return base.replace(comparator=Comparator(offset=float(x), noise=0.0))


def _references(x: float, base: NoiseModel) -> NoiseModel:
    return base.replace(references=ReferenceLevels(sigma=float(x)))


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One non-ideality swept over ``values`` (physical units, see ``xlabel``).

    better: 'high' if a larger x means less disturbance (capacitance), else 'low'.
    """

    name: str
    title: str
    xlabel: str
    values: tuple
    build: Callable[[float, NoiseModel], NoiseModel]
    better: str = "low"
    log: bool = True
    note: str = ""

    def noise(self, x: float, base: NoiseModel | None = None) -> NoiseModel:
        return self.build(x, base if base is not None else NoiseModel())

    def with_points(self, n: int | None) -> "Sweep":
        return dataclasses.replace(self, values=tuple(pick_points(self.values, n)))


def pick_points(values: Sequence, n: int | None) -> list:
    """``n`` values spread evenly over ``values`` (ends included); all of them if ``n`` is None."""
    values = list(values)
    if n is None or n >= len(values):
        return values
    if n == 1:
        return [values[len(values) // 2]]
    idx = sorted({int(round(i * (len(values) - 1) / (n - 1))) for i in range(n)})
    return [values[i] for i in idx]


SWEEPS: dict[str, Sweep] = {s.name: s for s in [
    Sweep("thermal", "kT/C noise vs capacitor size", "capacitance C (F)",
          # up to 1 uF: the trained GSC model needs << 1 LSB of h per update (kT/C at the
          # 100 fF default is ~11 LSB); 1e-8 and 1e-6 (0.03 and 0.003 LSB) show the floor that
          # any perturbation at all sets (rounding ties of the exact contract flip)
          (1e-15, 1e-14, 1e-13, 3e-13, 1e-12, 3e-12, 1e-11, 3e-11, 1e-10, 3e-10, 1e-9, 1e-8, 1e-6), _thermal,
          better="high",
          note="Thermal(capacitance=C, 300 K): state update (b_z halving shares) and candidate sample"),
    Sweep("mismatch", "capacitor mismatch", "unit-capacitor sigma(dC/C)",
          (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1), _mismatch,
          note=f"Mismatch(bank), C_u = {UNIT_CAP:g} F: per-channel z_eff tables"),
    Sweep("leakage", "leakage", "state lost per step, 1 - exp(-t/(R_off C))",
          (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), _leakage,
          note=f"Leakage(C = {STATE_CAP:g} F, t_step = {T_STEP:g} s, R_off set from the fraction)"),
    Sweep("injection", "charge injection", "injected charge per switch Q (C)",
          (1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15), _injection,
          note=f"ChargeInjection(C = {STATE_CAP:g} F, spread 0.5): static per-channel state shift"),
    Sweep("comparator", "comparator offset", "offset sigma (V)",
          (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1), _comparator,
          note="Comparator(offset, noise=0): gate digitiser (v_fs_gate = 1 V over 2^b_z codes), heaviside"),
    Sweep("references", "reference-level error", "level sigma (V)",
          (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), _references,
          note="ReferenceLevels(sigma, v_fs = 1 V over 2^bits levels) of Wz, Wh"),
]}


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
class _PerSeed:
    """Statistics over seeds of ``acc[i, j]`` (row ``i`` a point or configuration, column ``j`` a seed)."""

    acc: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.acc.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.acc.std(axis=1, ddof=1) if self.acc.shape[1] > 1 else np.zeros(self.acc.shape[0])

    @property
    def lo(self) -> np.ndarray:
        return self.acc.min(axis=1)

    @property
    def hi(self) -> np.ndarray:
        return self.acc.max(axis=1)


@dataclasses.dataclass
class SweepResult(_PerSeed):
    """Accuracy of one sweep: ``acc[i, j]`` at ``x[i]`` for ``seeds[j]``; ``exact``: noise-free."""

    sweep: Sweep
    x: np.ndarray
    seeds: tuple
    acc: np.ndarray
    exact: float
    n: int
    cached: int = 0
    magnitudes: list = dataclasses.field(default_factory=list)   # per point, NoiseModel.describe() (LSB)

    def readoff(self, tol: float = 0.01, ref: float | None = None) -> "ReadOff":
        """Where the mean stays within ``tol`` of ``ref`` (default: the noise-free accuracy)."""
        return smallest_within(self.x, self.mean, self.exact if ref is None else ref, tol=tol,
                               better=self.sweep.better, log=self.sweep.log)

    def table(self) -> str:
        lines = [f"{self.sweep.title} ({self.sweep.xlabel}); noise-free {self.exact:.4f}, n={self.n}, "
                 f"seeds {list(self.seeds)}",
                 f"{'x':>12} {'mean':>8} {'std':>8} {'min':>8} {'max':>8}  magnitude on the chip"]
        for i, x in enumerate(self.x):
            mag = self.magnitudes[i] if i < len(self.magnitudes) else {}
            m = ", ".join(f"{k} {v:.3g}" for k, v in mag.items() if v)
            lines.append(f"{x:12.4g} {self.mean[i]:8.4f} {self.std[i]:8.4f} {self.lo[i]:8.4f} {self.hi[i]:8.4f}  {m}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"sweep": self.sweep.name, "x": self.x.tolist(), "seeds": list(self.seeds),
                "acc": self.acc.tolist(), "exact": self.exact, "n": self.n}


def run_sweeps(bundle, data: EvalData, sweeps: Sequence[Sweep] | None = None, seeds: Sequence[int] = (0, 1),
               *, base: NoiseModel | None = None, batch: int = 64, cache: Cache | None = None,
               workers: int | None = None, progress: bool = True, desc: str | None = None
               ) -> dict[str, SweepResult]:
    """Every (sweep, point, seed) of ``sweeps`` (default: all of :data:`SWEEPS`) plus the noise-free
    run, in one pool; returns ``{sweep name: SweepResult}``."""
    sweeps = list(SWEEPS.values()) if sweeps is None else list(sweeps)
    base = base if base is not None else NoiseModel()
    seeds = tuple(int(s) for s in seeds)
    tasks = [Task(bundle, None, 0, ("exact",))]
    for sw in sweeps:
        for i, x in enumerate(sw.values):
            for j, s in enumerate(seeds):
                tasks.append(Task(bundle, sw.noise(x, base), s, (sw.name, i, j)))
    res = run_tasks(tasks, data, batch=batch, cache=cache, workers=workers, progress=progress,
                    desc=desc or f"noise sweeps {data.task}")
    exact = res[0]["accuracy"]
    out = {}
    for sw in sweeps:
        acc = np.zeros((len(sw.values), len(seeds)))
        ncached = 0
        for t, r in zip(tasks, res, strict=True):
            if t.tag[0] == sw.name:
                acc[t.tag[1], t.tag[2]] = r["accuracy"]
                ncached += bool(r.get("cached"))
        mags = [_magnitudes(sw.noise(x, base), bundle) for x in sw.values]
        out[sw.name] = SweepResult(sw, np.asarray(sw.values, dtype=float), seeds, acc, exact, len(data), ncached,
                                   mags)
    return out


# ---------------------------------------------------------------------------------------------
# the default noise model
# ---------------------------------------------------------------------------------------------
#: The non-idealities of :class:`sim.NoiseModel`, by field name (the order of the studies).
EFFECTS = ("thermal", "mismatch", "leakage", "injection", "comparator", "references")


def default_models() -> dict[str, NoiseModel]:
    """``{"all": NoiseModel.default(), effect: that effect alone at its default, ...}``."""
    d = NoiseModel.default()
    out = {"all": d}
    for e in EFFECTS:
        out[e] = NoiseModel(v_fs=d.v_fs, v_fs_gate=d.v_fs_gate, **{e: getattr(d, e)})
    return out


@dataclasses.dataclass
class DefaultResult(_PerSeed):
    """Accuracy at the documented defaults: ``acc[i, j]`` for ``configs[i]`` ('all' = every
    non-ideality at its default, else that one alone) and ``seeds[j]``; ``exact``: noise-free."""

    configs: tuple
    seeds: tuple
    acc: np.ndarray
    exact: float
    n: int
    magnitudes: dict            # per config, NoiseModel.describe() (LSB)

    def get(self, config: str) -> np.ndarray:
        return self.acc[self.configs.index(config)]

    def table(self) -> str:
        lines = [f"NoiseModel.default(): noise-free {self.exact:.4f}, n={self.n}, seeds {list(self.seeds)}",
                 f"{'config':>12} {'mean':>8} {'std':>8} {'min':>8} {'max':>8}  magnitude on the chip"]
        for i, c in enumerate(self.configs):
            m = ", ".join(f"{k} {v:.3g}" for k, v in self.magnitudes.get(c, {}).items() if v)
            lines.append(f"{c:>12} {self.mean[i]:8.4f} {self.std[i]:8.4f} {self.lo[i]:8.4f} {self.hi[i]:8.4f}  "
                         + ("every effect at its default" if c == "all" else m))
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"configs": list(self.configs), "seeds": list(self.seeds), "acc": self.acc.tolist(),
                "exact": self.exact, "n": self.n}


def _magnitudes(nm: NoiseModel, bundle) -> dict:
    m = nm.describe(bundle.arch, bundle.formats)
    if bundle.arch.rnn_out != "heaviside":          # no output comparator on this chip
        m = {k: v for k, v in m.items() if not k.startswith("comparator_h_")}
    return m


def run_default(bundle, data: EvalData, seeds: Sequence[int] = (0, 1), *, batch: int = 64,
                cache: Cache | None = None, workers: int | None = None, progress: bool = True
                ) -> DefaultResult:
    """Accuracy of ``bundle`` at :meth:`NoiseModel.default` and with each non-ideality alone at its
    default, per seed, plus the noise-free run (one pool, cached)."""
    models = default_models()
    seeds = tuple(int(s) for s in seeds)
    tasks = [Task(bundle, None, 0, ("exact",))]
    for i, nm in enumerate(models.values()):
        tasks += [Task(bundle, nm, s, (i, j)) for j, s in enumerate(seeds)]
    res = run_tasks(tasks, data, batch=batch, cache=cache, workers=workers, progress=progress,
                    desc=f"default noise {data.task}")
    acc = np.zeros((len(models), len(seeds)))
    for t, r in zip(tasks[1:], res[1:], strict=True):
        acc[t.tag] = r["accuracy"]
    return DefaultResult(tuple(models), seeds, acc, res[0]["accuracy"], len(data),
                         {k: _magnitudes(nm, bundle) for k, nm in models.items()})


# ---------------------------------------------------------------------------------------------
# read-off
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReadOff:
    """``x_grid``: the last grid point (walking from the least to the most disturbed end) up to
    which every point is within tolerance; ``x_interp``: the crossing of ``ref - tol`` between it
    and the next point, interpolated linearly in accuracy against (log) x; ``status``:
    'ok', 'all_pass' (the whole grid is within tolerance: the limit lies beyond it), or
    'none_pass' (even the least disturbed point is not)."""

    x_grid: float | None
    x_interp: float | None
    status: str
    threshold: float

    def __str__(self) -> str:
        if self.status == "none_pass":
            return f"no point within tolerance (threshold {self.threshold:.4f})"
        s = f"{self.x_grid:.3g} on the grid, {self.x_interp:.3g} interpolated"
        return s + (" (whole grid passes: the limit lies beyond it)" if self.status == "all_pass" else "")


def smallest_within(x: Sequence[float], acc: Sequence[float], ref: float, tol: float = 0.01,
                    better: str = "high", log: bool = True) -> ReadOff:
    """Read the tolerance limit off an accuracy curve.

    ``better='high'`` (capacitance): the smallest x such that the accuracy at x and at every larger
    grid point is >= ``ref - tol``. ``better='low'`` (noise magnitudes): the largest such x. The
    interpolated value is where the straight line (in log x if ``log``) between the last passing
    and the first failing point crosses ``ref - tol``.
    """
    if better not in ("high", "low"):
        raise ValueError("better must be 'high' or 'low'")
    x = np.asarray(x, dtype=float)
    acc = np.asarray(acc, dtype=float)
    if x.shape != acc.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError("x and acc must be 1-D of the same, non-zero length")
    thr = ref - tol
    order = np.argsort(-x if better == "high" else x, kind="stable")   # least disturbed first
    xs, ys = x[order], acc[order]
    ok = ys >= thr - 1e-12
    if not ok[0]:
        return ReadOff(None, None, "none_pass", thr)
    j = int(np.argmin(ok)) if not ok.all() else len(ok)
    xg = float(xs[j - 1])
    if j == len(ok):
        return ReadOff(xg, xg, "all_pass", thr)
    x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
    f = (y0 - thr) / (y0 - y1) if y0 != y1 else 0.0
    if log and x0 > 0 and x1 > 0:
        xi = float(np.exp(np.log(x0) + f * (np.log(x1) - np.log(x0))))
    else:
        xi = float(x0 + f * (x1 - x0))
    return ReadOff(xg, xi, "ok", thr)
