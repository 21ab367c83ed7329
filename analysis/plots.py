"""Figures of the studies (matplotlib, Agg-safe). Every function returns the Figure."""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from .cosim import compare

__all__ = ["farads", "plot_noise_grid", "plot_noise_panel", "plot_capacitor", "plot_default", "plot_precision",
           "plot_cosim", "plot_yield", "plot_codesign", "STM32N6_SRAM_BYTES", "REPO_CONFIG_PARAMS", "FOOTPRINT_NOTE"]

#: STM32N6 (STM32N657) on-chip SRAM: 4.2 MB (papers.md 1.2, perf.md 3.3), taken as 4.2e6 bytes.
STM32N6_SRAM_BYTES = 4.2e6
#: Parameter counts of the public mGRADE repository's configs, derived with papers.md 1.7's formula
#: (papers.md 1.8, tagged [D]): an estimate, NOT the paper's footprint (that one is UNKNOWN).
REPO_CONFIG_PARAMS = {"gsc12": 407_939, "gsc35": 407_939, "listops": 613_002}
FOOTPRINT_NOTE = "mGRADE paper's own footprint: UNKNOWN (papers.md 1.7)"

def farads(c: float) -> str:
    """``2.28e-10`` -> ``'228 pF'``."""
    for unit, f in (("uF", 1e-6), ("nF", 1e-9), ("pF", 1e-12), ("fF", 1e-15)):
        if abs(c) >= f:
            return f"{c / f:.3g} {unit}"
    return f"{c / 1e-15:.3g} fF"


_C = {"mean": "#1f77b4", "float": "#2ca02c", "exact": "#444444", "tol": "#d62728", "foot": "#9467bd",
      "stm": "#8c564b", "repo": "#e377c2"}


def _refs(ax, exact: float | None, refs: Mapping | None, tol: float | None = 0.01) -> None:
    refs = refs or {}
    if refs.get("float") is not None:
        ax.axhline(refs["float"], color=_C["float"], ls="--", lw=1.2,
                   label=f"float {refs['float']:.3f} (bundle meta{', n=' + str(refs['n']) if refs.get('n') else ''})")
    if exact is not None:
        ax.axhline(exact, color=_C["exact"], ls="-", lw=1.2, label=f"noise-free chip {exact:.3f} (sim, exact)")
        if tol:
            ax.axhline(exact - tol, color=_C["tol"], ls=":", lw=1, label=f"noise-free - {tol * 100:g} pt")


def plot_noise_panel(ax, res, refs: Mapping | None = None, tol: float = 0.01, readoff: bool = True) -> None:
    """One sweep: mean over seeds (line), min-max band, every seed (dots), reference lines."""
    x = res.x
    ax.fill_between(x, res.lo, res.hi, color=_C["mean"], alpha=0.18, lw=0, label="min-max over seeds")
    ax.errorbar(x, res.mean, yerr=res.std, color=_C["mean"], marker="o", ms=4, lw=1.5, capsize=3,
                label=f"mean +- std ({len(res.seeds)} seeds)")
    for j in range(res.acc.shape[1]):
        ax.plot(x, res.acc[:, j], ".", color=_C["mean"], ms=3, alpha=0.5)
    _refs(ax, res.exact, refs, tol)
    if res.sweep.log:
        ax.set_xscale("log")
    ax.set_xlabel(res.sweep.xlabel)
    ax.set_ylabel("accuracy")
    ax.set_title(res.sweep.title, fontsize=10)
    if readoff and res.sweep.name == "thermal":
        r = res.readoff(tol)
        if r.x_interp is not None:
            ax.axvline(r.x_interp, color=_C["tol"], lw=1, alpha=0.7)
            ax.annotate(f"C_min ~ {farads(r.x_interp)}" + (" (grid edge)" if r.status == "all_pass" else ""),
                        (r.x_interp, res.exact - tol), xytext=(6, -14), textcoords="offset points",
                        fontsize=8, color=_C["tol"])
    ax.grid(alpha=0.3, which="both")


def plot_noise_grid(results: Mapping, refs: Mapping | None = None, title: str = "", tol: float = 0.01,
                    ncols: int = 3):
    """All sweeps of one task, one panel each, sharing the accuracy axis."""
    res = list(results.values())
    nrows = int(np.ceil(len(res) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), sharey=True, squeeze=False)
    for ax, r in zip(axes.flat, res, strict=False):
        plot_noise_panel(ax, r, refs, tol)
    for ax in list(axes.flat)[len(res):]:
        ax.axis("off")
    h, lab = axes.flat[0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=min(5, len(lab)), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return fig


def plot_capacitor(results_by_task: Mapping, tol: float = 0.01):
    """Accuracy change from the noise-free chip against capacitor size, every task on one axis,
    with the tolerance band and each task's read-off."""
    fig, ax = plt.subplots(figsize=(6.2, 3.8))
    ax.axhspan(-tol * 100, tol * 100, color="0.9", label=f"within {tol * 100:g} pt of noise-free")
    for i, (task, res) in enumerate(results_by_task.items()):
        c = f"C{i}"
        ax.errorbar(res.x, (res.mean - res.exact) * 100, yerr=res.std * 100 if res.acc.shape[1] > 1 else None,
                    color=c, marker="o", ms=4, capsize=3, label=f"{task} (noise-free {res.exact:.3f}, n={res.n})")
        r = res.readoff(tol)
        if r.x_interp is not None:
            ax.axvline(r.x_interp, color=c, ls=":", lw=1)
            ax.annotate(farads(r.x_interp), (r.x_interp, -tol * 100), xytext=(4, -12 - 10 * i),
                        textcoords="offset points", color=c, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("capacitance C (F), kT/C only, 300 K, v_fs = 1 V")
    ax.set_ylabel("accuracy - noise-free (points)")
    ax.set_title("smallest capacitor within tolerance", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_default(results_by_task: Mapping, refs_by_task: Mapping | None = None, tol: float = 0.01):
    """Accuracy at ``NoiseModel.default()`` ('all') and with each non-ideality alone at its
    default: bars = mean over seeds, error bars = std, dots = every seed; reference lines per task."""
    items = list(results_by_task.items())
    fig, axes = plt.subplots(1, len(items), figsize=(5.2 * len(items), 3.6), sharey=True, squeeze=False)
    for ax, (task, r) in zip(axes[0], items, strict=True):
        xs = np.arange(len(r.configs))
        ax.bar(xs, r.mean, yerr=r.std, color=[_C["tol"] if c == "all" else _C["mean"] for c in r.configs],
               alpha=0.75, capsize=3, label=f"mean +- std ({len(r.seeds)} seeds)")
        for j in range(r.acc.shape[1]):
            ax.plot(xs, r.acc[:, j], ".", color="k", ms=3, alpha=0.6)
        _refs(ax, r.exact, (refs_by_task or {}).get(task), tol)
        ax.set_xticks(xs, [("ALL" if c == "all" else c) for c in r.configs], rotation=30, fontsize=8)
        ax.set_title(f"{task}: default noise model (n={r.n})", fontsize=10)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7, loc="upper right")
    axes[0][0].set_ylabel("accuracy")
    fig.tight_layout()
    return fig


def plot_precision(results: Mapping, refs: Mapping | None = None, task: str = "", title: str = ""):
    """Accuracy against bit width per knob (left axis) and the chip's memory footprint (right axis,
    bytes, log) with the STM32N6 SRAM budget and the repo-config estimate as reference lines."""
    res = list(results.values())
    fig, axes = plt.subplots(1, len(res), figsize=(4.0 * len(res), 3.6), sharey=True, squeeze=False)
    axes = axes[0]
    twins = []
    for ax, r in zip(axes, res, strict=True):
        ax.plot(r.bits, r.acc, "o-", color=_C["mean"], lw=1.6, ms=4, label="accuracy (noise-free sim)")
        ax.axvline(r.default_bits, color="0.6", lw=1, ls="-.", label="default width")
        _refs(ax, r.exact, refs, tol=0.01)
        ax.set_xlabel("bits")
        ax.set_title(r.knob.title, fontsize=9)
        ax.grid(alpha=0.3)
        tw = ax.twinx()
        tw.plot(r.bits, r.footprint, "s--", color=_C["foot"], ms=3, lw=1.2, label="chip memory footprint")
        tw.axhline(STM32N6_SRAM_BYTES, color=_C["stm"], lw=1.2, label="STM32N6 on-chip SRAM 4.2 MB")
        p = REPO_CONFIG_PARAMS.get(task)
        if p:
            tw.axhline(p, color=_C["repo"], lw=1.0, ls="--",
                       label=f"mGRADE repo config ~{p / 1e3:.0f}k params @ 1 B/param (papers.md 1.7/1.8 estimate)")
        tw.set_yscale("log")
        tw.set_ylim(min(r.footprint.min(), r.default_footprint) / 2, STM32N6_SRAM_BYTES * 2)
        twins.append(tw)
    axes[0].set_ylabel("accuracy")
    for tw in twins[:-1]:
        tw.set_yticklabels([])
    twins[-1].set_ylabel("memory footprint (bytes)", color=_C["foot"])
    h1, l1 = axes[0].get_legend_handles_labels()
    h2, l2 = twins[0].get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="lower center", ncol=3, fontsize=7.5, frameon=False,
               bbox_to_anchor=(0.5, -0.06))
    fig.text(0.99, 0.005, FOOTPRINT_NOTE, ha="right", va="bottom", fontsize=7.5, style="italic")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.96))
    return fig


def plot_cosim(x: np.ndarray, traces: Sequence[dict], classes: Sequence[str] | None = None,
               sample_rate: float | None = None, title: str = "", reference: int = 0, note: str | None = None):
    """Input, hidden states of every layer, step logits and running readout over time (from
    ``traces[reference]``), and the per-step disagreement of every other trace with it; ``note``
    (e.g. why the RTL did not run) is printed in the last panel."""
    ref = traces[reference]
    T = len(ref["step_logits"])
    t = np.arange(T) / sample_rate if sample_rate else np.arange(T)
    tl = "time (s)" if sample_rate else "step"
    L = len(ref["h"])
    fig, axes = plt.subplots(3 + L, 1, figsize=(9, 2.0 * (3 + L)), sharex=True)
    ax = axes[0]
    xv = np.asarray(x).reshape(T, -1)
    if xv.shape[1] > 1 and sample_rate:          # frames of samples: draw the sample stream
        F = xv.shape[1]
        ax.plot(np.arange(T * F) / (sample_rate * F), xv.ravel(), lw=0.4, color="0.3")
    else:
        ax.plot(t, xv if xv.shape[1] > 1 else xv[:, 0], lw=0.5, color="0.3")
    ax.set_ylabel("input code")
    ax.set_title(title, fontsize=10)
    for i in range(L):
        ax = axes[1 + i]
        h = ref["h"][i]
        lim = np.abs(h).max() or 1
        ax.imshow(h.T, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest",
                  extent=(t[0], t[-1] if T > 1 else 1, h.shape[1] - 0.5, -0.5))
        ax.set_ylabel(f"layer {i}\nh channel")
    ax = axes[1 + L]
    C = ref["step_logits"].shape[1]
    pred = int(np.argmax(ref["logits"]))
    for c in range(C):
        ax.plot(t, ref["step_logits"][:, c], lw=1.2 if c == pred else 0.5,
                color=f"C{c % 10}", label=(classes[c].strip("_") if classes else str(c)) if C <= 12 else None)
        # (matplotlib hides labels that start with '_', e.g. '_silence_')
    ax.set_ylabel("step logits\n(codes)")
    if C <= 12:
        ax.legend(fontsize=6, ncol=6, loc="upper left")
    ax = axes[2 + L]
    steps = np.arange(1, T + 1)[:, None]
    for c in range(C):
        ax.plot(t, ref["acc"][:, c] / steps[:, 0] if ref["acc"].ndim == 2 else ref["acc"], lw=1.2 if c == pred else 0.5,
                color=f"C{c % 10}")
    ax.set_ylabel("readout / t\n(mean logit)")
    name = classes[pred] if classes else str(pred)
    ax.annotate(f"prediction: {name}", (0.99, 0.9), xycoords="axes fraction", ha="right", fontsize=8)
    extra = [tr for k, tr in enumerate(traces) if k != reference]
    txt = []
    for tr in extra:
        diff = compare(tr, ref, keys=("step_logits", "acc", "h"))
        n = sum(d["entries"] if d["mismatches"] is None else d["mismatches"] for d in diff.values())
        what = "step logits, readout" + (", h" if tr.get("h") else " (h not read: trace port unavailable)")
        txt.append(f"{tr['path']} vs {ref['path']}: {n} differing entries ({what})")
    if note:
        txt.append(note if len(note) <= 110 else note[:107] + "...")
    if txt:
        ax.text(0.01, 0.05, "\n".join(txt), transform=ax.transAxes, fontsize=8, va="bottom",
                bbox=dict(fc="white", ec="0.7", alpha=0.9))
    ax.set_xlabel(tl)
    fig.tight_layout()
    return fig


def plot_yield(results_by_task: Mapping, refs_by_task: Mapping | None = None, title: str = ""):
    """Chip yield (:class:`analysis.chips.YieldResult` per task): histogram of the chips' accuracies
    (left axis) and their empirical CDF (right axis), with the mean, the accuracy 95 % of chips
    reach (5th percentile) and the noise-free and float references."""
    refs_by_task = refs_by_task or {}
    n = len(results_by_task)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.6), squeeze=False)
    for ax, (task, r) in zip(axes[0], results_by_task.items(), strict=True):
        a = np.sort(r.acc)
        lo, hi = min(a[0], r.exact), max(a[-1], r.exact)
        step = 1.0 / max(r.n, 1)                           # accuracies are multiples of 1/n
        width = max(step, (hi - lo) / 30)
        bins = np.arange(lo - width / 2, hi + width, width)
        ax.hist(a, bins=bins, color=_C["mean"], alpha=0.45, label=f"{r.n_chips} chips")
        ax.set_xlabel(f"accuracy ({r.n} test examples per chip)")
        ax.set_ylabel("chips")
        ax2 = ax.twinx()
        ax2.step(np.r_[a[0], a], np.r_[0.0, np.arange(1, len(a) + 1) / len(a)], where="post", color=_C["foot"],
                 lw=1.3)
        ax2.set_ylim(0, 1.02)
        ax2.set_ylabel("fraction of chips <= accuracy (ECDF)")
        ax.axvline(r.mean, color=_C["mean"], lw=1.5, label=f"mean {r.mean:.3f} (std {r.std:.3f})")
        ax.axvline(r.p5, color=_C["tol"], lw=1.5, ls="--", label=f"95 % of chips reach {r.p5:.3f}")
        ax.axvline(r.exact, color=_C["exact"], lw=1.2, label=f"noise-free chip {r.exact:.3f}")
        ref = refs_by_task.get(task) or {}
        if ref.get("float") is not None:
            ax.axvline(ref["float"], color=_C["float"], ls=":", lw=1.2, label=f"float {ref['float']:.3f} (meta)")
        ax.set_title(f"{task}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


_AXIS_STYLE = {"capacitor": ("o", "#1f77b4"), "weight_bits": ("s", "#ff7f0e"), "state_bits": ("^", "#2ca02c"),
               "gate_bits": ("D", "#9467bd"), "preset": ("*", "#d62728")}


def _point_label(row) -> str:
    p = row.point
    if p.axis == "capacitor":
        return farads(p.value)
    if p.axis == "preset":
        return row.label if row.label != p.name else p.value
    return f"{p.axis.split('_')[0]} {p.value}b"


def plot_codesign(rows_by_task: Mapping, refs_by_task: Mapping | None = None, tol: float = 0.01,
                  costs: Sequence[tuple[str, str, float]] = (("area_um2", "area proxy (mm$^2$)", 1e-6),
                                                             ("energy_analog_J", "analog energy per step (pJ)", 1e12))):
    """The co-design study (:func:`analysis.codesign.study` rows per task): mean accuracy over chip
    instances (bars: std) against each cost proxy, one marker per axis, the presets and shipped
    bundles as stars; float accuracy and float - ``tol`` as horizontal lines; the cheapest point
    within ``tol`` of float ringed."""
    from .codesign import cheapest_within
    refs_by_task = refs_by_task or {}
    n = len(rows_by_task)
    fig, axes = plt.subplots(len(costs), n, figsize=(6.2 * n, 4.0 * len(costs)), squeeze=False)
    for j, (task, rows) in enumerate(rows_by_task.items()):
        ref = (refs_by_task.get(task) or {}).get("float")
        for i, (key, xlabel, scale) in enumerate(costs):
            ax = axes[i][j]
            seen = set()
            for r in rows:
                m, c = _AXIS_STYLE[r.point.axis]
                c = c if r.fine_tuned else "0.5"
                lab = r.point.axis if r.point.axis not in seen else None
                seen.add(r.point.axis)
                ax.errorbar(r.cost[key] * scale, r.mean, yerr=r.std, fmt=m, color=c, ms=9 if m == "*" else 6,
                            capsize=2, label=lab)
                ax.annotate(_point_label(r), (r.cost[key] * scale, r.mean), fontsize=6.5, xytext=(3, 3),
                            textcoords="offset points")
            if ref is not None:
                ax.axhline(ref, color=_C["float"], ls=":", lw=1.2, label=f"float {ref:.3f}")
                ax.axhline(ref - tol, color=_C["tol"], ls="--", lw=1, label=f"float - {tol * 100:.0f} pt")
                best = cheapest_within(rows, ref, tol, key)
                if best is not None:
                    ax.plot(best.cost[key] * scale, best.mean, "o", ms=16, mfc="none", mec=_C["tol"], mew=1.5)
            ax.set_xscale("log")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("accuracy, mean over chips (sim/)")
            ax.set_title(f"{task}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            if i == 0:
                ax.legend(fontsize=7, loc="lower right", framealpha=0.9)
    fig.tight_layout()
    return fig
