"""One clip through the bit-accurate model and the RTL: per-step traces and their bit-exact check.

* :func:`sim_stream` streams a clip through :meth:`sim.Network.step` (the chip's view: one sample
  in, one set of step logits out) and records, per step, the step logits, the running logit
  accumulator and every layer's state ``h``.
* :func:`sim_whole` runs the same clip through :meth:`sim.Network.run` (whole sequence, chunked,
  vectorised) with ``trace=True`` and returns the same quantities.
* :func:`rtl_trace` is the hook to the RTL: it streams the clip through the Verilator model
  (:func:`testbenches.cosim.run_harness`, the C++ harness built from ``rtl/``) and returns the same
  quantities as read from the chip's output and trace ports. It raises :class:`RTLUnavailable`
  (with the reason) if the RTL cannot be built or run here; it never substitutes sim's numbers.
* :func:`compare` reports, per quantity, whether two traces agree bit for bit, how many entries
  differ and the first differing step.
"""
from __future__ import annotations

import time

import numpy as np

from spec.bundle import Bundle
from spec.fixedpoint import saturate

__all__ = ["sim_stream", "sim_whole", "rtl_trace", "RTLUnavailable", "compare", "running_acc", "clip_input"]


class RTLUnavailable(RuntimeError):
    """The RTL side of the co-simulation cannot run here (no Verilator build, rtl/ unfinished...)."""


def clip_input(bundle: Bundle, x: np.ndarray, steps: int | None = None) -> np.ndarray:
    """One sequence as the model takes it: (T, d_in) int64 codes (linear) or (T,) token ids."""
    x = np.asarray(x).astype(np.int64)
    if bundle.arch.encoder == "linear" and x.ndim == 1:
        x = x.reshape(-1, bundle.arch.d_in)
    return x[:steps] if steps is not None else x


def running_acc(step_logits: np.ndarray, bundle: Bundle) -> np.ndarray:
    """(T, C) running readout after every step: the saturating sum in ``logit_acc`` (readout
    'mean') or the step logits themselves ('last')."""
    if bundle.arch.readout == "last":
        return step_logits.copy()
    fmt = bundle.formats.logit_acc
    cs = np.cumsum(step_logits, axis=0)
    if cs.size == 0 or (cs.min() >= fmt.min_int and cs.max() <= fmt.max_int):
        return cs
    out = np.empty_like(step_logits)
    acc = np.zeros(step_logits.shape[1], np.int64)
    for t in range(len(step_logits)):
        acc, _ = saturate(acc + step_logits[t], fmt)
        out[t] = acc
    return out


def sim_stream(bundle: Bundle, x: np.ndarray) -> dict:
    """Per-step trace of :meth:`sim.Network.step`: ``step_logits`` (T, C), ``acc`` (T, C),
    ``h`` {layer: (T, H)}, ``logits`` (C,) the final readout, ``wall_s``."""
    from sim import Network

    net = Network(bundle)
    x = np.asarray(x)
    T = len(x)
    L, H, C = bundle.arch.layers, bundle.arch.hidden, bundle.arch.n_classes
    st = net.init_state(1)
    logits = np.empty((T, C), np.int64)
    acc = np.empty((T, C), np.int64)
    hs = {i: np.empty((T, H), np.int64) for i in range(L)}
    t0 = time.time()
    for t in range(T):
        st, lg = net.step(st, x[t][None])
        logits[t] = lg[0]
        acc[t] = st.acc[0]
        for i in range(L):
            hs[i][t] = st.h[i][0]
    return {"step_logits": logits, "acc": acc, "h": hs, "logits": net.readout(st)[0],
            "saturations": dict(st.saturations), "wall_s": time.time() - t0, "path": "sim step()"}


def sim_whole(bundle: Bundle, x: np.ndarray) -> dict:
    """The same quantities from :meth:`sim.Network.run` (whole sequence, ``trace=True``)."""
    from sim import Network

    t0 = time.time()
    res = Network(bundle).run(np.asarray(x)[None], trace=True)
    sl = res.step_logits[0]
    return {"step_logits": sl, "acc": running_acc(sl, bundle),
            "h": {i: res.trace[f"layers.{i}.h"][0] for i in range(bundle.arch.layers)},
            "logits": res.logits[0], "saturations": dict(res.saturations), "trace": res.trace,
            "wall_s": time.time() - t0, "path": "sim run()"}


def _reason(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}"
    return msg if len(msg) <= 800 else msg[:400] + " [...] " + msg[-400:]


def rtl_trace(bundle: Bundle, x: np.ndarray, *, hidden: bool = True, log=None) -> dict:
    """The RTL side of the walkthrough: stream one clip through the Verilator model of ``rtl/``
    (:func:`testbenches.cosim.run_harness`, the C++ harness).

    Returns the same keys as :func:`sim_stream` (``step_logits``, ``acc``, ``logits``, and with
    ``hidden`` ``h`` per layer), every number read from the design's output port (``h`` from its
    trace port), plus ``cycles``, ``wall_s`` and ``path``. If the build with the trace port fails,
    the clip is run again without it: ``h`` is then absent and ``h_unavailable`` says why (the
    outputs are still the RTL's). Raises :class:`RTLUnavailable` with the reason if the RTL cannot
    be built or run at all. Nothing of ``sim``'s is ever put in its place.
    """
    try:
        from testbenches.cosim import run_harness
    except Exception as e:  # noqa: BLE001 - any import failure means: no RTL here
        raise RTLUnavailable(f"testbenches.cosim.run_harness is not importable: {_reason(e)}") from e
    x = np.asarray(x)
    T = len(x)
    quiet = log or (lambda *a, **k: None)
    t0 = time.time()
    h_unavailable = None
    out = None
    if hidden:
        try:
            out = run_harness(bundle, [x], trace_steps=(0, T), log=quiet)
        except Exception as e:  # noqa: BLE001 - retry without the trace port
            h_unavailable = f"the RTL build with the trace port failed: {_reason(e)}"
    if out is None:
        try:
            out = run_harness(bundle, [x], log=quiet)
        except Exception as e:  # noqa: BLE001 - build or run failure
            raise RTLUnavailable(f"the RTL harness failed: {_reason(e)}"
                                 + (f"; before that, {h_unavailable}" if h_unavailable else "")) from e
    o = out["outputs"]
    sl = np.asarray(o["logits"], np.int64).reshape(T, -1)
    acc = np.asarray(o["acc"], np.int64).reshape(T, -1) if "acc" in o else sl.copy()
    res = {"step_logits": sl, "acc": acc, "logits": acc[-1].copy(), "cycles": out.get("cycles"),
           "wall_s": time.time() - t0, "sim_wall_s": out.get("wall"), "path": "RTL (Verilator)"}
    if hidden and h_unavailable is None:
        tr = out.get("trace") or {}
        hs = {i: np.asarray(tr[f"layers.{i}.h"], np.int64).reshape(T, -1)
              for i in range(bundle.arch.layers) if f"layers.{i}.h" in tr}
        if len(hs) == bundle.arch.layers:
            res["h"] = hs
        else:
            h_unavailable = f"the trace port holds no h for layers {sorted(set(range(bundle.arch.layers)) - set(hs))}"
    if h_unavailable:
        res["h_unavailable"] = h_unavailable
    return res


def compare(a: dict, b: dict, keys=("step_logits", "acc", "h", "logits")) -> dict:
    """Per quantity: ``{"equal": bool, "mismatches": int, "first_step": int | None, "entries": int}``
    (``h`` per layer as ``h[i]``). Quantities missing on either side are left out."""
    out = {}

    def one(name, u, v):
        u, v = np.asarray(u), np.asarray(v)
        if u.shape != v.shape:
            out[name] = {"equal": False, "mismatches": None, "first_step": 0, "entries": int(u.size),
                         "note": f"shapes {u.shape} vs {v.shape}"}
            return
        diff = u != v
        first = None
        if diff.any():
            first = int(np.argwhere(diff)[0][0]) if diff.ndim else 0
        out[name] = {"equal": not diff.any(), "mismatches": int(diff.sum()), "first_step": first,
                     "entries": int(u.size)}

    for k in keys:
        if k not in a or k not in b:
            continue
        if k == "h":
            for i in sorted(set(a["h"]) & set(b["h"])):
                one(f"h[{i}]", a["h"][i], b["h"][i])
        else:
            one(k, a[k], b[k])
    return out
