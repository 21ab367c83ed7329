"""Bit-accurate NumPy model of an mGRADE-HW network: whole sequence, streaming, traces, saturations.

Every number is an integer code and every operation follows the README's "Fixed-point semantics"
table, through the shared contract in ``spec`` (``round_shift``/``saturate``/``requantize``,
``gate_code``). The model is vectorised over the batch and, except for the minGRU recurrence,
over time:

* :meth:`Network.run` processes the sequence in chunks of ``T_c`` steps. Within a chunk, layer by
  layer, the encoder, delay line, convolution, both minGRU projections, the output, the mixer,
  the normalisation and the decoder are big array operations over ``T_c x B`` rows (the matmuls
  in float64 BLAS, exact below 2**53, proven once at construction with ``spec.arch.acc_bound``);
  only ``h`` steps through time, elementwise over ``B x H`` (:func:`sim.mingru.state_update`).
* :meth:`Network.step` is the same engine with ``T_c = 1`` on a :class:`State` (delay-line ring
  buffers, ``h`` per layer, the logit accumulator, the step count, saturation counts); its
  convolution reads the ring buffer directly (:func:`sim.delayline.conv_step`) where a chunk
  unrolls it (:func:`sim.delayline.conv_chunk`).

The whole-sequence result and a loop of ``step`` agree bit for bit, and both agree with a literal
step-by-step transcription of the README table (``tests/test_sim_network.py``).

Integers are held in int32 when every intermediate of the contract provably fits (default formats;
:func:`work_dtype`), else int64; results and traces are returned as int64.

Saturation counts: one key per tensor that can saturate, named like the trace keys ('enc',
'layers.{i}.{s,u,hc,h,o,r,m1,y,a}', 'logit', 'logit_acc'); a key counts *events* (an element
clipped at a rounding point of that tensor's computation: ``u`` counts the convolution's
requantisation and the skip add; ``y`` the mixer's second requantisation and its skip add; ``m1``
both GLU requantisations). With ``lengths``, steps past a sequence's length are computed (and
traced) but not counted. ``run(..., saturation_steps=True)`` also returns the events of every
step (``Result.saturation_steps``, (B, T) counts per name): what the RTL's per-step saturation flags
are compared with in the co-simulation.

Time-major layout inside the engine: a chunk is ``(T_c, B, features)``; the API is ``(B, T, ...)``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from spec.arch import Arch, Formats, acc_bound, gate_code, gate_format
from spec.bundle import Bundle
from spec.fixedpoint import align
from spec.names import saturation_names, trace_names

from . import mingru
from .delayline import conv_chunk, conv_step
from .noise import Chip, NoiseModel
from .quant import ExactGemm, OnDevice, SatCounter, array_namespace, device, is_numpy_namespace, round_real, xp_dtype

__all__ = ["Network", "Result", "State", "work_dtype"]

#: Default chunk of :meth:`Network.run`: about this many rows (steps x batch) per chunk; big
#: enough for efficient BLAS calls, small enough for the chunk's tensors to stay in cache.
_CHUNK_ROWS = 4096

@dataclasses.dataclass
class Result:
    """Output of :meth:`Network.run`.

    logits:      (B, C) int64: ``logit_acc`` codes (readout 'mean': sum of step logits over the
                 valid steps) or ``logit`` codes of the last valid step (readout 'last').
    step_logits: (B, T, C) int64 ``logit`` codes of every step.
    saturations: counts per tensor name (see :func:`saturation_names`).
    trace:       None, or every intermediate, (B, T, .) int64, keys :func:`trace_names`.
    saturation_steps: None, or (``run(saturation_steps=True)``) the events of every step, (B, T)
                 int64 per name of :func:`saturation_names` (summed over time: ``saturations``).

    The arrays are of the input's kind: NumPy arrays for NumPy input, torch tensors on the input's
    device for torch input.
    """

    logits: Any
    step_logits: Any
    saturations: dict[str, int]
    trace: dict[str, Any] | None = None
    saturation_steps: dict[str, Any] | None = None

    @property
    def predictions(self) -> Any:
        """(B,) argmax of the logits (first maximum on ties)."""
        return array_namespace(self.logits).argmax(self.logits, axis=-1)


@dataclasses.dataclass
class State:
    """Streaming state of a batch of ``B`` independent sequences.

    t:           steps taken.
    lines:       per layer, (B, H, d_max) delay-line ring buffer: the ``dl`` code of step
                 ``tau`` at ``[..., tau % d_max]`` (the last d_max samples); empty when taps = 0.
    h:           per layer, (B, H) minGRU state codes (``formats.h``).
                 (``lines`` and ``h`` are in the network's work dtype ``Network.wdt``: int32 when every
                 intermediate fits, else int64; like ``acc``, they are arrays of the namespace and
                 device the state was made for: NumPy, or torch with ``init_state(..., like=tensor)``.)
    acc:         (B, C) int64 the logit accumulator: running saturating sum (``logit_acc``
                 codes, readout 'mean') or the latest step's logits (``logit`` codes, 'last').
    saturations: counts so far, per tensor name.
    streams:     dynamic-noise generators per (layer, kind), or None without a noise model.
    """

    t: int
    lines: list[Any]
    h: list[Any]
    acc: Any
    saturations: dict[str, int]
    streams: dict[tuple[int, str], np.random.Generator] | None = None

    @property
    def batch(self) -> int:
        return self.acc.shape[0]

    def copy(self) -> "State":
        """A deep copy (noise streams included), e.g. to branch a stream."""
        import copy
        return copy.deepcopy(self)


def _mag(f) -> int:
    return max(abs(f.min_int), abs(f.max_int))


def _q_bound(bound: int, frac_in: int, fmt) -> int:
    """Largest magnitude seen inside ``q_fmt(x, frac_in)`` for ``|x| <= bound`` (round_shift's
    left shift or its rounding addend and mask)."""
    s = frac_in - fmt.frac
    return bound << -s if s < 0 else bound + (1 << s)


def work_dtype(arch: Arch, fmts: Formats) -> tuple[np.dtype, int]:
    """The integer dtype of the engine's arrays, and the largest magnitude it must hold.

    Every intermediate of the contract is bounded by its formats (``spec.arch.acc_bound`` for the
    accumulators); if all of them stay below 2**30 (default formats: 2**29) the engine computes
    in int32 (half the memory traffic of int64), else in int64. Results are returned as int64.
    """
    A, F = arch, fmts
    fa = F.act.frac
    b = [_mag(F.x), _mag(F.act), 2 * _mag(F.act)]
    if A.encoder == "linear":
        b.append(_q_bound(acc_bound(A.d_in, F.x, F.w_enc, F.bias), F.x.frac + F.w_enc.frac, F.act))
    if A.taps:
        b += [_q_bound(_mag(F.act), fa, F.dl),
              _q_bound(acc_bound(A.taps, F.dl, F.w_conv), F.dl.frac + F.w_conv.frac, F.act)]
    f_rnn = fa + F.w_rnn.frac
    acc_rnn = acc_bound(A.hidden, F.act, F.w_rnn, F.bias)
    b += [_q_bound(acc_rnn, f_rnn, F.h), acc_rnn + (1 << max(0, f_rnn - A.gate_bits + 2)) + (1 << A.gate_bits),
          (1 << A.gate_bits) * 2 * _mag(F.h) + (1 << A.gate_bits), _q_bound(_mag(F.h), F.h.frac, F.act),
          1 << fa]
    if A.mix != "none":
        f_mix = fa + F.w_mix.frac
        acc1 = acc_bound(A.hidden, F.act, F.w_mix, F.bias)
        b += [_q_bound(acc1, f_mix, F.act), acc1 + (1 << max(0, f_mix - A.gate_bits + 2)),
              _q_bound(_mag(F.act) << A.gate_bits, fa + A.gate_bits, F.act),
              _q_bound(acc_bound(A.mix_width, F.act, F.w_mix, F.bias), f_mix, F.act)]
    if A.norm == "affine":
        b.append(_q_bound(acc_bound(1, F.act, F.w_norm, F.bias), fa + F.w_norm.frac, F.act))
    b.append(_q_bound(acc_bound(A.hidden, F.act, F.w_out, F.bias), fa + F.w_out.frac, F.logit))
    m = max(b)
    if m >= 2 ** 62:
        raise ValueError(f"an intermediate of this network can reach {m} >= 2**62: formats too wide for int64")
    return (np.dtype(np.int32) if m < 2 ** 30 else np.dtype(np.int64)), m


class _Layer:
    """Integer parameters of one layer, prepared for the engine (in the work dtype)."""

    def __init__(self, net: "Network", i: int) -> None:
        A, F, t = net.arch, net.formats, net.bundle.layer(i)
        H, E, fa, wdt = A.hidden, A.mix_width, F.act.frac, net.wdt
        self.i = i
        self.prefix = f"layers.{i}."

        def gemm(w, b, f_acc, n_terms, fmt_in, fmt_w, what):
            return ExactGemm(w, align(np.asarray(b, np.int64), F.bias.frac, f_acc),
                             acc_bound(n_terms, fmt_in, fmt_w, F.bias), what=f"layer {i} {what}",
                             check=net.check_exact, out_dtype=wdt)

        consts: dict[str, np.ndarray] = {}
        if A.taps:
            consts["delays"] = np.asarray(t["conv.delay"], dtype=np.int64)
            consts["wconv"] = np.asarray(t["conv.w"], dtype=wdt)
        self.f_rnn = fa + F.w_rnn.frac
        self.rnn = gemm(np.concatenate([t["rnn.wz"], t["rnn.wh"]]), np.concatenate([t["rnn.bz"], t["rnn.bh"]]),
                        self.f_rnn, H, F.act, F.w_rnn, "minGRU")            # Wz and Wh in one GEMM
        if A.mix != "none":
            self.f_mix = fa + F.w_mix.frac
            self.mix1 = gemm(t["mix.w1"], t["mix.b1"], self.f_mix, H, F.act, F.w_mix, "mixer w1")
            self.mix2 = gemm(t["mix.w2"], t["mix.b2"], self.f_mix, E, F.act, F.w_mix, "mixer w2")
        if A.norm == "affine":
            self.f_norm = fa + F.w_norm.frac
            consts["g"] = np.asarray(t["norm.g"], dtype=wdt)
            consts["nb"] = align(np.asarray(t["norm.b"], np.int64), F.bias.frac, self.f_norm).astype(wdt)
        self.consts = OnDevice(**consts)


class Network:
    """The bit-accurate model of ``bundle``'s network: one integer engine for every array library.

    Inputs decide where it runs: NumPy arrays run it on the CPU (``sim/``), torch tensors (CPU or
    GPU) run the same code in torch (the trainer's hardware-aware evaluation); the weights follow
    the input to its device once and stay there. Results come back in the input's namespace.

    Parameters
    ----------
    bundle: a validated :class:`spec.bundle.Bundle`.
    noise:  optional :class:`sim.noise.NoiseModel`; its static errors are drawn once here (one chip
            instance, from ``noise.seed``), its dynamic noise per run/stream (``seed`` arguments).
            ``None`` runs the exact integer contract. (The noisy path runs on NumPy inputs.)
    chunk:  steps per chunk of :meth:`run` (default: about 4096 rows of ``T_c x B``).
    check_exact: convert every GEMM result with ``spec.fixedpoint.to_int64`` (re-verifies at run
            time what the construction-time bound already proves; slower).

    Attributes: ``arch``, ``formats``, ``noise``, ``chip`` (the drawn chip instance or None),
    ``wdt`` (the engine's integer dtype, :func:`work_dtype`).
    """

    def __init__(self, bundle: Bundle, noise: NoiseModel | None = None, *, chunk: int | None = None,
                 check_exact: bool = False) -> None:
        if not isinstance(bundle, Bundle):
            raise TypeError(f"Network needs a spec.bundle.Bundle, not {type(bundle).__name__}")
        if noise is not None and not isinstance(noise, NoiseModel):
            raise TypeError(f"noise must be a sim.noise.NoiseModel or None, not {type(noise).__name__}")
        if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
            raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
        self.bundle = bundle
        self.arch: Arch = bundle.arch
        self.formats: Formats = bundle.formats
        self.check_exact = check_exact
        self.chunk = chunk
        A, F = self.arch, self.formats
        self.wdt, self.max_magnitude = work_dtype(A, F)
        self.gate_rounding = gate_format(A, F).rounding
        if A.encoder == "linear":
            self.f_enc = F.x.frac + F.w_enc.frac
            self.enc = ExactGemm(bundle["enc.w"], align(np.asarray(bundle["enc.b"], np.int64), F.bias.frac, self.f_enc),
                                 acc_bound(A.d_in, F.x, F.w_enc, F.bias), what="encoder", check=check_exact,
                                 out_dtype=self.wdt)
        else:
            self.table = OnDevice(table=np.asarray(bundle["enc.table"], dtype=self.wdt))
        self.layers = [_Layer(self, i) for i in range(A.layers)]
        self.f_out = F.act.frac + F.w_out.frac
        self.dec = ExactGemm(bundle["out.w"], align(np.asarray(bundle["out.b"], np.int64), F.bias.frac, self.f_out),
                             acc_bound(A.hidden, F.act, F.w_out, F.bias), what="decoder", check=check_exact,
                             out_dtype=self.wdt)
        self.noise = noise
        self.chip: Chip | None = None if noise is None else noise.realize(A, F, bundle.tensors)
        self._sat_names = saturation_names(A)

    # -- streaming -------------------------------------------------------------------------------
    def init_state(self, batch: int, *, seed: int | None = None, like: Any = None) -> State:
        """Zero state for ``batch`` sequences (empty delay lines, h = 0, accumulator 0).
        ``seed``: dynamic-noise seed (default: the noise model's); ignored without noise.
        ``like``: an array whose namespace and device the state takes (default: NumPy)."""
        if not isinstance(batch, (int, np.integer)) or isinstance(batch, bool) or batch < 1:
            raise ValueError(f"batch must be a positive integer, not {batch!r}")
        xp, dev = (np, "cpu") if like is None else (array_namespace(like), device(like))
        self._check_namespace(xp)
        A = self.arch
        H, wdt = A.hidden, xp_dtype(xp, self.wdt)
        dmax = A.d_max if A.taps else 0
        return State(t=0,
                     lines=[xp.zeros((batch, H, dmax), dtype=wdt, device=dev) for _ in range(A.layers)],
                     h=[xp.zeros((batch, H), dtype=wdt, device=dev) for _ in range(A.layers)],
                     acc=xp.zeros((batch, A.n_classes), dtype=xp.int64, device=dev),
                     saturations={n: 0 for n in self._sat_names},
                     streams=None if self.chip is None else self.chip.streams(seed))

    def step(self, state: State, x_t: Any) -> tuple[State, Any]:
        """Advance every sequence of ``state`` by one step; ``state`` is updated in place and
        returned with the step's logits, (B, C) int64 ``logit`` codes.

        ``x_t``: (B, d_in) input codes (linear encoder) or (B,) token ids (embedding), in the
        state's namespace (NumPy unless the state was made ``like`` a torch tensor)."""
        x_t = self._as_array(x_t)
        xp = array_namespace(x_t)
        want = (state.batch, self.arch.d_in) if self.arch.encoder == "linear" else (state.batch,)
        if tuple(x_t.shape) != want:
            raise ValueError(f"step input has shape {tuple(x_t.shape)}; expected {want} "
                             f"({'(batch, d_in) input codes' if len(want) == 2 else '(batch,) token ids'})")
        x_t = self._check_values(x_t)
        logits = self._advance(state, x_t[None], None, None)
        return state, xp.astype(logits[0], xp.int64)

    def readout(self, state: State) -> Any:
        """Logits of the stream so far: the accumulator (mean) or the latest step's logits (last)."""
        return array_namespace(state.acc).asarray(state.acc, copy=True)

    # -- whole sequence --------------------------------------------------------------------------
    def run(self, x: Any, *, lengths: Any = None, trace: bool = False, seed: int | None = None,
            chunk: int | None = None, saturation_steps: bool = False) -> Result:
        """Run whole sequences.

        x:       (B, T, d_in) integer input codes in ``formats.x`` (linear encoder) or (B, T)
                 integer token ids in 0..d_in-1 (embedding). Never clipped: out-of-range raises.
                 A NumPy array (anything array-like) or a torch tensor: the result's arrays are of
                 the same kind, on the same device.
        lengths: optional (B,) valid lengths in 1..T (padded batch). Readout 'mean' sums steps
                 t < length, 'last' takes step length-1; saturations count valid steps only.
        trace:   keep every intermediate tensor (memory: B x T x features int64 each).
        seed:    dynamic-noise seed (default: the noise model's); ignored without noise.
        chunk:   steps per chunk (default: the network's); any value gives the same integers.
        saturation_steps: also count the saturation events of every step (``Result.saturation_steps``).
        """
        x = self._check_input(x)
        xp, dev = array_namespace(x), device(x)
        B, T = x.shape[:2]
        valid_all = None
        if lengths is not None:
            lengths = self._check_lengths(lengths, B, T, like=x)
            if bool((lengths < T).any()):
                valid_all = xp.arange(T, device=dev)[:, None] < lengths[None, :]   # (T, B)
        Tc = chunk or self.chunk or max(1, min(T, _CHUNK_ROWS // B))
        if not isinstance(Tc, (int, np.integer)) or Tc < 1:
            raise ValueError(f"chunk must be a positive integer, not {chunk!r}")
        st = self.init_state(B, seed=seed, like=x)
        xt = xp.moveaxis(x, 1, 0)                                             # (T, B, ...)
        step_logits = xp.empty((B, T, self.arch.n_classes), dtype=xp.int64, device=dev)
        tr: dict[str, list] | None = {n: [] for n in trace_names(self.arch)} if trace else None
        per_step = ({n: xp.zeros((T, B), dtype=xp.int64, device=dev) for n in self._sat_names}
                    if saturation_steps else None)
        for t0 in range(0, T, Tc):
            t1 = min(T, t0 + Tc)
            v = None if valid_all is None else valid_all[t0:t1]
            sd = None if per_step is None else {}
            step_logits[:, t0:t1] = xp.moveaxis(self._advance(st, xt[t0:t1], v, tr, sd), 0, 1)
            for n, c in (sd or {}).items():
                per_step[n][t0:t1] += c
        res_trace = None
        if tr is not None:
            res_trace = {k: xp.astype(xp.moveaxis(xp.concat(v, axis=0), 0, 1), xp.int64)
                         for k, v in tr.items() if k != "step_logits"}
            res_trace["step_logits"] = step_logits
        sat_steps = None if per_step is None else {n: xp.moveaxis(c, 0, 1) for n, c in per_step.items()}
        return Result(logits=st.acc, step_logits=step_logits, saturations=st.saturations, trace=res_trace,
                      saturation_steps=sat_steps)

    # -- input validation ------------------------------------------------------------------------
    @staticmethod
    def _as_array(x: Any) -> Any:
        """``x`` itself if it is an array of a supported library, else ``np.asarray(x)``."""
        try:
            array_namespace(x)
            return x
        except TypeError:
            return np.asarray(x)

    def _check_namespace(self, xp) -> None:
        if self.chip is not None and not is_numpy_namespace(xp):
            raise ValueError("a Network with a noise model runs on NumPy inputs only; pass NumPy arrays "
                             "(or build the Network without noise= for torch tensors)")

    def _check_values(self, x: Any) -> Any:
        xp = array_namespace(x)
        self._check_namespace(xp)
        if not xp.isdtype(x.dtype, "integral"):
            raise ValueError(f"inputs must be integer codes, got dtype {x.dtype} "
                             f"(convert real samples with spec.fixedpoint.quantize_real first)")
        linear = self.arch.encoder == "linear"
        out_dtype = xp_dtype(xp, self.wdt) if linear else xp.int64
        if math.prod(x.shape) == 0:
            return xp.astype(x, out_dtype)
        lo, hi = int(xp.min(x)), int(xp.max(x))
        if linear:
            f = self.formats.x
            if lo < f.min_int or hi > f.max_int:
                bad = lo if lo < f.min_int else hi
                n = int(xp.sum((x < f.min_int) | (x > f.max_int)))
                raise ValueError(f"input code {bad} is outside formats.x = {f.name} range "
                                 f"[{f.min_int}, {f.max_int}] ({n} value(s)); inputs are never clipped")
        elif lo < 0 or hi >= self.arch.d_in:
            bad = lo if lo < 0 else hi
            raise ValueError(f"token id {bad} is outside the vocabulary 0..{self.arch.d_in - 1}")
        return xp.astype(x, out_dtype, copy=False)

    def _check_input(self, x: Any) -> Any:
        x = self._as_array(x)
        A = self.arch
        shape = tuple(x.shape)
        if A.encoder == "linear":
            if x.ndim != 3 or shape[2] != A.d_in:
                raise ValueError(f"input must have shape (batch, steps, d_in={A.d_in}) for the linear "
                                 f"encoder, got {shape}")
        elif x.ndim != 2:
            raise ValueError(f"input must have shape (batch, steps) of token ids for the embedding "
                             f"encoder, got {shape}")
        if shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"input needs at least one sequence and one step, got shape {shape}")
        return self._check_values(x)

    @staticmethod
    def _check_lengths(lengths: Any, B: int, T: int, *, like: Any) -> Any:
        """``lengths`` checked, as int64 in the namespace and on the device of ``like``."""
        lengths = Network._as_array(lengths)
        if not array_namespace(lengths).isdtype(lengths.dtype, "integral"):
            raise ValueError(f"lengths must be integers, got dtype {lengths.dtype}")
        if tuple(lengths.shape) != (B,):
            raise ValueError(f"lengths must have shape ({B},), got {tuple(lengths.shape)}")
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1 or hi > T:
            raise ValueError(f"lengths must lie in 1..{T} (the number of steps), got {lo}..{hi}")
        xp = array_namespace(like)
        return xp.asarray(lengths, dtype=xp.int64, device=device(like))

    # -- the engine ------------------------------------------------------------------------------
    def _advance(self, st: State, xc: Any, valid: Any, tr: dict[str, list] | None, steps: dict | None = None) -> Any:
        """Process one chunk ``xc`` (T_c, B, ...) of steps ``st.t ..``; updates ``st``; returns the
        chunk's step logits (T_c, B, C). ``valid``: (T_c, B) mask of counted steps or None.
        ``steps``: a dict that receives the chunk's saturation events per step, (T_c, B) per name."""
        F = self.formats
        xp, dev = array_namespace(xc), device(xc)
        sat = SatCounter(st.saturations, valid, steps)

        def rec(name: str, value: Any) -> None:
            if tr is not None:
                tr[name].append(value)

        # encoder
        if self.arch.encoder == "linear":
            a = sat.q("enc", self.enc(xc), self.f_enc, F.act)
        else:
            a = self.table.get(xp, dev)["table"][xc]
        rec("enc", a)
        for L in self.layers:
            a = self._layer(L, L.consts.get(xp, dev), st, a, sat, valid, rec)
        # decoder and readout
        logits = sat.q("logit", self.dec(a), self.f_out, F.logit)
        self._accumulate(st, logits, valid, sat)
        st.t += xc.shape[0]
        return logits

    def _layer(self, L: _Layer, P: dict, st: State, a: Any, sat: SatCounter, valid, rec) -> Any:
        """One layer over a chunk: ``a`` (T_c, B, H) in, the layer's output ``a'`` out.
        ``P``: the layer's constants on the chunk's device."""
        A, F = self.arch, self.formats
        p, i = L.prefix, L.i
        chip = None if self.chip is None else self.chip.layers[i]
        u = self._conv(L, P, st, a, sat, rec) if A.taps else a
        rec(p + "u", u)
        # minGRU projections (both in one GEMM)
        H = A.hidden
        acc = L.rnn(u)
        acc_z, acc_h = acc[..., :H], acc[..., H:]
        if chip is None:
            k = gate_code(acc_z, L.f_rnn, A.gate_bits, self.gate_rounding)
            hc = sat.q(p + "hc", acc_h, L.f_rnn, F.h)
        else:
            k, hc = self._projections_sc(L, chip, st, u, acc_z, acc_h, sat)
        rec(p + "k", k)
        rec(p + "hc", hc)
        h = self._recur(L, chip, st, k, hc, valid, sat)
        rec(p + "h", h)
        o = self._output(L, chip, st, h, sat)
        rec(p + "o", o)
        if A.skip:
            r = sat.sat(p + "r", o + u, F.act)
            rec(p + "r", r)
        else:
            r = o
        y = self._mixer(L, r, sat, rec) if A.mix != "none" else r
        out = sat.q(p + "a", P["g"] * y + P["nb"], L.f_norm, F.act) if A.norm == "affine" else y
        rec(p + "a", out)
        return out

    def _conv(self, L: _Layer, P: dict, st: State, a: Any, sat: SatCounter, rec) -> Any:
        """Delay line and convolution (with the conv skip): ``u`` of the README table."""
        F, p = self.formats, L.prefix
        s = sat.q(p + "s", a, F.act.frac, F.dl)
        rec(p + "s", s)
        if s.shape[0] == 1:                      # streaming: read the ring buffer directly
            acc = conv_step(st.lines[L.i], s[0], P["delays"], P["wconv"], st.t)[None]
        else:
            acc = conv_chunk(st.lines[L.i], s, P["delays"], P["wconv"], st.t)
        u = sat.q(p + "u", acc, F.dl.frac + F.w_conv.frac, F.act)
        return sat.sat(p + "u", u + a, F.act) if self.arch.skip else u

    def _output(self, L: _Layer, chip, st: State, h: Any, sat: SatCounter) -> Any:
        """The minGRU output ``o``: requantised state (linear) or the comparator (heaviside)."""
        F = self.formats
        if self.arch.rnn_out == "linear":
            return sat.q(L.prefix + "o", h, F.h.frac, F.act)
        if chip is None or chip.heav_offset is None:
            return mingru.heaviside(h, F.act.frac)
        n = chip.heav_sigma * st.streams[(L.i, "heaviside")].standard_normal(h.shape)
        return mingru.heaviside(h, F.act.frac, offset=chip.heav_offset, noise=n)

    def _mixer(self, L: _Layer, r: Any, sat: SatCounter, rec) -> Any:
        """The channel mixer (MLP or GLU) with its skip: ``y`` of the README table."""
        A, F, p = self.arch, self.formats, L.prefix
        xp = array_namespace(r)
        E = A.mix_width
        pacc = L.mix1(r)
        if A.mix == "mlp":
            m1 = xp.clip(sat.q(p + "m1", pacc, L.f_mix, F.act), min=0)
        else:
            v = sat.q(p + "m1", pacc[..., :E], L.f_mix, F.act)
            g = gate_code(pacc[..., E:], L.f_mix, A.gate_bits, self.gate_rounding)
            m1 = sat.q(p + "m1", v * g, F.act.frac + A.gate_bits, F.act)
        rec(p + "m1", m1)
        m2 = sat.q(p + "y", L.mix2(m1), L.f_mix, F.act)
        y = sat.sat(p + "y", m2 + r, F.act) if A.skip else m2
        rec(p + "y", y)
        return y

    def _projections_sc(self, L: _Layer, chip, st: State, u, acc_z, acc_h, sat: SatCounter):
        """Gate code and candidate of the SC arrays: reference-level errors, comparator, kT/C."""
        A, F, i = self.arch, self.formats, L.i
        acc_z = acc_z if chip.dwz is None else acc_z + u.astype(np.float64) @ chip.dwz.T
        acc_h = acc_h if chip.dwh is None else acc_h + u.astype(np.float64) @ chip.dwh.T
        gn = None
        if chip.gate_sigma is not None:
            gn = chip.gate_sigma * st.streams[(i, "gate")].standard_normal(acc_z.shape)
        k = mingru.gate(acc_z, L.f_rnn, A.gate_bits, self.gate_rounding,
                        offset=chip.gate_offset if chip.gate_offset is not None else 0.0, noise=gn,
                        dtype=self.wdt)
        x = acc_h * (2.0 ** (F.h.frac - L.f_rnn))                             # real, in LSB of h
        if chip.sigma_candidate is not None:
            x = x + chip.sigma_candidate * st.streams[(i, "candidate")].standard_normal(acc_h.shape)
        lim = 2.0 ** (F.h.bits + 1)            # beyond this hc saturates anyway (and still counts)
        hc = sat.sat(L.prefix + "hc", round_real(np.clip(x, -lim, lim), F.h.rounding, self.wdt), F.h)
        return k, hc

    def _recur(self, L: _Layer, chip, st: State, k: Any, hc: Any, valid, sat: SatCounter) -> Any:
        """Run ``h`` through the chunk; returns (T_c, B, H) states, counts ``h`` saturations."""
        F, bz, i = self.formats, self.arch.gate_bits, L.i
        h0 = st.h[i]
        if chip is None:
            def update(h, k, hc, noise):
                return mingru.state_update(h, k, hc, b_z=bz, fmt_h=F.h)
            noise = None
            hs = mingru.state_sequence(h0, k, hc, b_z=bz, fmt_h=F.h)
        else:
            def update(h, k, hc, noise):
                return mingru.state_update_sc(h, k, hc, b_z=bz, fmt_h=F.h, z_eff=chip.z_eff, leak=chip.leak,
                                              offset=chip.offset, noise=noise)
            noise = None
            if chip.sigma_update is not None:
                noise = chip.sigma_update * st.streams[(i, "update")].standard_normal(hc.shape)
            hs = mingru.state_sequence_sc(h0, k, hc, b_z=bz, fmt_h=F.h, z_eff=chip.z_eff, leak=chip.leak,
                                          offset=chip.offset, noise=noise, out=np.empty(hc.shape, self.wdt))
        st.h[i] = hs[-1]
        # saturation events, counted in bulk. A clipped state sits at a range limit, so if no state
        # of the chunk touches one nothing was clipped (the exact update never clips: h + z(hc - h)
        # lies between two in-range codes). Otherwise re-evaluate the same update on the whole
        # chunk (every previous state is known now) and compare before/after saturation.
        if hs.min() > F.h.min_int and hs.max() < F.h.max_int:
            return hs
        xp = array_namespace(hs)
        h_prev = xp.concat([h0[None], hs[:-1]])
        _, unsat = update(h_prev, k, hc, noise)
        diff = hs != unsat
        if valid is not None:
            diff &= valid[..., None]
        n = int(xp.count_nonzero(diff))
        if n:
            st.saturations[L.prefix + "h"] = st.saturations.get(L.prefix + "h", 0) + n
            sat.add_steps(L.prefix + "h", xp.sum(xp.astype(diff, xp.int64), axis=-1))
        return hs

    def _accumulate(self, st: State, logits: Any, valid, sat: SatCounter) -> None:
        """The readout over the chunk: the latest valid step's logits ('last') or the saturating
        running sum ('mean'), into ``st.acc``."""
        F = self.formats
        xp = array_namespace(logits)
        if self.arch.readout == "last":
            if valid is None:
                st.acc = xp.astype(logits[-1], xp.int64)
            else:
                nv = xp.sum(xp.astype(valid, xp.int64), axis=0)
                sel = xp.nonzero(nv > 0)[0]
                st.acc[sel] = xp.astype(logits[nv[sel] - 1, sel], xp.int64)
            return
        lm = logits if valid is None else logits * xp.astype(valid[..., None], logits.dtype)
        fmt = F.logit_acc
        cs = xp.cumulative_sum(lm, axis=0, dtype=xp.int64) + st.acc                   # exact running sums
        if int(cs.min()) >= fmt.min_int and int(cs.max()) <= fmt.max_int:
            st.acc = cs[-1]                                                   # nothing saturated
            return
        acc, per = st.acc, []
        for t in range(lm.shape[0]):                                          # saturating sum, step by step
            x = acc + xp.astype(lm[t], xp.int64)
            if sat.steps is not None:                                         # the step's events, (B,)
                per.append(xp.sum(xp.astype((x < fmt.min_int) | (x > fmt.max_int), xp.int64), axis=-1))
            acc = SatCounter(sat.counts).sat("logit_acc", x, fmt, valid=None)
        if per:
            sat.add_steps("logit_acc", xp.stack(per))
        st.acc = acc
