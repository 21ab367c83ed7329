"""Execute every notebook in ``notebooks/`` top to bottom (nbclient); non-zero exit if a cell fails.

    python -m analysis.run_notebooks                  # small setting (CI), unless MGRADE_NB_SETTING=full
    MGRADE_NB_SETTING=full python -m analysis.run_notebooks   # `make notebooks`: the committed figures
    python -m analysis.run_notebooks notebooks/01_noise_sweeps.ipynb   # only these

Setting: ``MGRADE_NB_SETTING`` is set to ``small`` unless it already says ``full``; the kernels
inherit it (see :mod:`analysis.settings`). The kernels run in ``notebooks/`` with the repository
root on ``PYTHONPATH``. Executed copies (with outputs) go to ``.cache/notebooks-<setting>/``; in
the full setting they are also written back over ``notebooks/*.ipynb`` (``--no-inplace`` keeps
the committed files unchanged), so the committed notebooks show the full results.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .settings import ENV, REPO

NB_DIR = REPO / "notebooks"


def notebooks(paths: list[str] | None = None) -> list[Path]:
    if paths:
        return [Path(p).resolve() for p in paths]
    return sorted(NB_DIR.glob("*.ipynb"))


def execute(path: Path, *, timeout: int, inplace: bool, out_dir: Path) -> float:
    """Run one notebook; returns its wall time. Raises ``nbclient.exceptions.CellExecutionError``."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}}, coalesce_streams=True,
                            record_timing=False)
    t0 = time.time()
    try:
        client.execute()
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / path.name)
    if inplace:
        nbformat.write(nb, path)
    return time.time() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m analysis.run_notebooks", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per cell (default 900 small, 7200 full)")
    ap.add_argument("--no-inplace", action="store_true", help="full setting: do not write outputs back")
    args = ap.parse_args(argv)

    if os.environ.get(ENV, "").strip().lower() != "full":
        os.environ[ENV] = "small"
    setting = os.environ[ENV]
    pp = os.environ.get("PYTHONPATH", "")
    if str(REPO) not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([pp] if pp else []))
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    timeout = args.timeout or (900 if setting == "small" else 7200)
    inplace = setting == "full" and not args.no_inplace
    out_dir = REPO / ".cache" / f"notebooks-{setting}"
    paths = notebooks(args.paths)
    if not paths:
        print(f"no notebooks in {NB_DIR}", file=sys.stderr)
        return 1
    print(f"[notebooks] setting {setting}: {len(paths)} notebook(s); executed copies in {out_dir}"
          + ("; outputs written back in place" if inplace else ""), flush=True)
    failed = []
    t_all = time.time()
    for p in paths:
        print(f"[notebooks] {p.name} ...", flush=True)
        try:
            dt = execute(p, timeout=timeout, inplace=inplace, out_dir=out_dir)
            print(f"[notebooks] {p.name}: ok in {dt:.1f} s", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failing notebook, then fail
            failed.append(p.name)
            print(f"[notebooks] {p.name}: FAILED\n{e}", file=sys.stderr, flush=True)
    print(f"[notebooks] {len(paths) - len(failed)}/{len(paths)} ok in {time.time() - t_all:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
