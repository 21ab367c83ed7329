"""The accuracy table of the shipped bundles, read from what each bundle recorded at training.

    python -m models.report                       # every bundle in models/bundles, as a Markdown table
    python -m models.report models/bundles/gsc12.npz --commands

Per bundle: the task, the data it was trained and tested on (split rule, sizes), the float model's
test accuracy, the hardware-aware model's (its exact integer path, which is what ``sim/`` computes)
and ``sim/``'s own, next to the mGRADE paper's figure for the task, and the chip memory the bundle
implies (``spec.arch.memory_footprint``: weights incl. delays, delay-line buffer, state), in bytes,
and the RTL clock cycles per step of the network on the original microarchitecture (one input
column per cycle, stages in sequence: :func:`rtl.top.cycles_per_step`, the cycle model the RTL
tests check against simulation), so each accuracy stands next to what it costs on the chip.
``--commands`` also prints the training command that produced each bundle (from its meta).
Nothing here is typed in by hand: a figure missing from a bundle prints as ``-``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spec.arch import memory_footprint
from spec.bundle import BundleError, load_bundle

BUNDLES = Path(__file__).resolve().parent / "bundles"

#: the mGRADE paper's accuracies (shared/reference/papers.md), for the task each bundle is closest to
PAPER = {"gsc35": "94.7 (GSC-35)", "gsc12": "94.7 (GSC-35, other task)", "listops": "61.9", "text": "87.3",
         "retrieval": "88.1", "image": "87.1", "pathfinder": "94.9"}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * float(v):.2f}"


def _data(meta: dict) -> str:
    d = meta.get("data", {})
    tr, te = d.get("train", {}), d.get("test", {})
    rule = te.get("split_rule") or te.get("split") or ""
    src = te.get("source", "")
    return f"{tr.get('n', '?')} train / {te.get('n', '?')} test; {src}{'; ' + rule if rule else ''}"


def _framed(bundle, meta: dict) -> bool:
    """Audio fed ``d_in`` samples per step (``--frame``), not one."""
    return bundle.arch.encoder == "linear" and meta.get("train_args", {}).get("frame", 1) > 1


def command(meta: dict, path: Path) -> str:
    a = meta.get("train_args", {})
    if not a:
        return "-"
    flags = ["--task", a["task"]]
    for k in ("frame", "epochs", "qat_epochs", "hidden", "layers", "taps", "d_max", "batch_size", "bucket", "lr",
              "wd", "label_smoothing", "time_budget", "seed", "init"):
        if k in a and a[k] not in (None, 0, 0.0) and not (k == "frame" and a[k] == 1) or k in ("taps", "seed"):
            flags += [f"--{k.replace('_', '-')}", str(a.get(k))]
    for k in ("augment", "no_skip"):
        if a.get(k):
            flags.append(f"--{k.replace('_', '-')}")
    for opt in a.get("data_opt") or []:          # e.g. Pathfinder's set size, n=50000
        flags += ["--data-opt", opt]
    try:
        path = path.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return f"python -m models.train {' '.join(flags)} --out runs/{a['task']} --export {path}"


def rows(paths) -> list[dict]:
    # imported here, not at the top: amaranth is loaded only when a table is made
    from rtl.top import cycles_per_step

    out = []
    for p in paths:
        try:
            b = load_bundle(p)
        except BundleError as e:
            raise SystemExit(f"error: {e}") from e
        m = b.meta or {}
        acc = m.get("accuracy", {})
        mem = memory_footprint(b.arch, b.formats)
        out.append({"path": p, "task": m.get("task", "?"), "data": _data(m), "float": _pct(acc.get("float")),
                    "qat": _pct(acc.get("qat")), "sim": _pct(acc.get("sim")), "n": acc.get("n_test", "-"),
                    "paper": PAPER.get(m.get("task"), "-"), "arch": f"H={b.arch.hidden} L={b.arch.layers} "
                    f"K={b.arch.taps} D={b.arch.d_max}" + (f" frame {b.arch.d_in}" if _framed(b, m) else ""),
                    "bytes": {k[:-5]: v // 8 for k, v in mem.items()}, "cycles": cycles_per_step(b.arch),
                    "cmd": command(m, p)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", nargs="*", type=Path)
    ap.add_argument("--commands", action="store_true")
    a = ap.parse_args(argv)
    paths = a.bundles or sorted(BUNDLES.glob("*.npz"))
    if not paths:
        print(f"no bundles in {BUNDLES}", file=sys.stderr)
        return 2
    print("| task | model | float % | hardware-aware % | sim/ % | n test | paper % | memory bytes "
          "(weights + delay line + state = total) | RTL cycles/step | data |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rs = rows(paths)
    for r in rs:
        by = r["bytes"]
        print(f"| {r['task']} | {r['arch']} | {r['float']} | {r['qat']} | {r['sim']} | {r['n']} | {r['paper']} | "
              f"{by['weights']} + {by['delay_line']} + {by['state']} = {by['total']} | {r['cycles']} | {r['data']} |")
    if a.commands:
        print()
        for r in rs:
            print(f"{r['task']}: {r['cmd']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
