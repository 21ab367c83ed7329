"""Triton kernels behind :mod:`models.kernels` (imported only on CUDA with triton installed).

Layout of every tensor: (B, T, H) contiguous, time on dim 1, channels contiguous. Every kernel runs
one program per (batch row, block of ``BLOCK_H`` channels) and walks time in order, so each load
and store is a row of ``BLOCK_H`` consecutive channels (coalesced) and the state stays in registers.

* :func:`recurrence_fwd` / :func:`recurrence_bwd`: ``h_t = a_t h_{t-1} + b_t`` and its reverse
  recurrence. Time is walked in tiles of ``BLOCK_T`` steps: a tile of a and b is loaded at once
  (many loads in flight, not one latency per step), scanned inside the tile with
  ``tl.associative_scan`` of affine maps, and the state entering the tile is carried in with one
  multiply-add. Accumulation in fp32 (fp64 for fp64 inputs).
* :func:`sc_state_sequence`: the integer SC update ``h = clip(h + round_h(k (hc - h) >> b_z))``,
  which is not associative (rounding and clipping at every step): a step loop, unrolled by
  ``BLOCK_T``; the tile's states are collected in registers and stored once per tile, so that no
  store sits between the tile's loads of k and hc (which are independent of h) and they can all
  be issued ahead of the dependent arithmetic.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["recurrence_fwd", "recurrence_bwd", "sc_state_sequence", "sc_state_sequence_noisy", "blocks"]

_ROUNDING = {"floor": 0, "half_up": 1, "half_even": 2}


@triton.jit
def _affine(a1, b1, a2, b2):
    # (a1, b1) then (a2, b2): x -> a2 (a1 x + b1) + b2
    return a1 * a2, a2 * b1 + b2


@triton.jit
def _last_row(x, rows, BLOCK_T: tl.constexpr):
    # the tile's last row as a (BLOCK_H,) vector (registers cannot be indexed by row)
    return tl.sum(tl.where(rows[:, None] == BLOCK_T - 1, x, 0.0), axis=0)


@triton.jit
def _program_tile(h0_ptr, T, H, HAS_H0: tl.constexpr, ACC: tl.constexpr, BLOCK_T: tl.constexpr,
                  BLOCK_H: tl.constexpr):
    # this program's batch row, its tile's row and channel indices, the channel mask, the row's
    # offset in the (B, T, H) tensors, and its initial state (0 without h0)
    pid_b, pid_h = tl.program_id(0), tl.program_id(1)
    rows = tl.arange(0, BLOCK_T)
    cols = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    cmask = cols < H
    base = pid_b.to(tl.int64) * T * H
    if HAS_H0:
        h0 = tl.load(h0_ptr + pid_b.to(tl.int64) * H + cols, mask=cmask, other=0.0).to(ACC)
    else:
        h0 = tl.zeros([BLOCK_H], dtype=ACC)
    return pid_b, rows, cols, cmask, base, h0


@triton.jit
def _fwd_kernel(a_ptr, b_ptr, h0_ptr, h_ptr, T, H,
                HAS_H0: tl.constexpr, ACC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr):
    pid_b, rows, cols, cmask, base, h = _program_tile(h0_ptr, T, H, HAS_H0, ACC, BLOCK_T, BLOCK_H)
    for t0 in range(0, T, BLOCK_T):
        t = t0 + rows
        m = (t < T)[:, None] & cmask[None, :]
        off = base + t[:, None] * H + cols[None, :]
        # padding steps are the identity map (a = 1, b = 0): the last row then holds the last valid h
        a = tl.load(a_ptr + off, mask=m, other=1.0).to(ACC)
        b = tl.load(b_ptr + off, mask=m, other=0.0).to(ACC)
        A, Bs = tl.associative_scan((a, b), 0, _affine)
        hs = Bs + A * h[None, :]
        tl.store(h_ptr + off, hs.to(h_ptr.dtype.element_ty), mask=m)
        h = _last_row(hs, rows, BLOCK_T)


@triton.jit
def _bwd_kernel(a_ptr, h_ptr, h0_ptr, gh_ptr, ga_ptr, gb_ptr, gh0_ptr, T, H,
                HAS_H0: tl.constexpr, ACC: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr):
    # g_t = dL/dh_t + a_{t+1} g_{t+1};  grad_b_t = g_t;  grad_a_t = g_t h_{t-1};  grad_h0 = a_0 g_0.
    # Tiles are walked from the end; row i of a tile is time t_hi - i, so the reverse recurrence
    # is a forward scan over rows.
    pid_b, rows, cols, cmask, base, h0 = _program_tile(h0_ptr, T, H, HAS_H0, ACC, BLOCK_T, BLOCK_H)
    g = tl.zeros([BLOCK_H], dtype=ACC)
    for j in range(0, tl.cdiv(T, BLOCK_T)):
        t = (T - 1 - j * BLOCK_T) - rows
        valid = t >= 0
        m = valid[:, None] & cmask[None, :]
        off = base + t[:, None] * H + cols[None, :]
        dh = tl.load(gh_ptr + off, mask=m, other=0.0).to(ACC)
        a_next = tl.load(a_ptr + off + H, mask=m & (t < T - 1)[:, None], other=0.0).to(ACC)
        a_next = tl.where(valid[:, None], a_next, 1.0)         # rows before t = 0: identity
        A, G = tl.associative_scan((a_next, dh), 0, _affine)
        gt = G + A * g[None, :]
        h_prev = tl.load(h_ptr + off - H, mask=m & (t > 0)[:, None], other=0.0).to(ACC)
        h_prev = tl.where((t == 0)[:, None], h0[None, :], h_prev)
        tl.store(gb_ptr + off, gt.to(gb_ptr.dtype.element_ty), mask=m)
        tl.store(ga_ptr + off, (gt * h_prev).to(ga_ptr.dtype.element_ty), mask=m)
        g = _last_row(gt, rows, BLOCK_T)                       # g at the tile's earliest step
    if HAS_H0:
        a0 = tl.load(a_ptr + base + cols, mask=cmask, other=0.0).to(ACC)
        tl.store(gh0_ptr + pid_b.to(tl.int64) * H + cols, (a0 * g).to(gh0_ptr.dtype.element_ty), mask=cmask)


def blocks(B: int, H: int, device) -> tuple[int, int]:
    """(BLOCK_T, BLOCK_H) of the float kernels: the widest channel block (<= 64, >= 16) that still
    gives about two programs per multiprocessor, since each program is one sequential walk over T;
    tiles of 2048 elements (on an H200: B=64, H=64 -> 128 x 16, B=256 -> 64 x 32, the fastest of
    BLOCK_T 32..128 x BLOCK_H 16..64 x 2..8 warps, at about 2.1 TB/s in both directions)."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    bh = min(max(triton.next_power_of_2(H), 16), 64)
    while bh > 16 and B * triton.cdiv(H, bh) < 2 * sms:
        bh //= 2
    return 2048 // bh, bh


def _acc(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def recurrence_fwd(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None,
                   block: tuple[int, int] | None = None) -> torch.Tensor:
    """``h`` (B, T, H) in ``a``'s dtype; ``a``, ``b`` (B, T, H) contiguous, same dtype; ``h0`` (B, H)."""
    B, T, H = a.shape
    h = torch.empty_like(a)
    bt, bh = block or blocks(B, H, a.device)
    _fwd_kernel[(B, triton.cdiv(H, bh))](a, b, h0 if h0 is not None else a, h, T, H,
                                         HAS_H0=h0 is not None, ACC=_acc(a.dtype), BLOCK_T=bt, BLOCK_H=bh)
    return h


def recurrence_bwd(a: torch.Tensor, h: torch.Tensor, h0: torch.Tensor | None, gh: torch.Tensor,
                   block: tuple[int, int] | None = None):
    """(grad_a, grad_b, grad_h0 or None) of :func:`recurrence_fwd` for the output gradient ``gh``."""
    B, T, H = a.shape
    ga, gb = torch.empty_like(a), torch.empty_like(a)
    gh0 = torch.empty_like(h0) if h0 is not None else None
    bt, bh = block or blocks(B, H, a.device)
    _bwd_kernel[(B, triton.cdiv(H, bh))](a, h, h0 if h0 is not None else a, gh, ga, gb,
                                         gh0 if gh0 is not None else a, T, H,
                                         HAS_H0=h0 is not None, ACC=_acc(a.dtype), BLOCK_T=bt, BLOCK_H=bh)
    return ga, gb, gh0


@triton.jit
def _round_shift(x, S: tl.constexpr, ROUND: tl.constexpr):
    # spec.fixedpoint.round_shift for S >= 1 (>> on signed integers is arithmetic in Triton)
    if ROUND == 0:
        r = x >> S
    elif ROUND == 1:
        r = (x + (1 << (S - 1))) >> S
    else:
        q = x >> S
        rem = x & ((1 << S) - 1)
        half = 1 << (S - 1)
        up = (rem > half) | ((rem == half) & ((q & 1) == 1))
        r = q + up.to(q.dtype)
    return r


@triton.jit
def _sc_kernel(k_ptr, hc_ptr, h0_ptr, out_ptr, T, H,
               HAS_H0: tl.constexpr, S: tl.constexpr, ROUND: tl.constexpr, HMIN: tl.constexpr, HMAX: tl.constexpr,
               BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr):
    pid_b, rows, cols, cmask, base, h = _program_tile(h0_ptr, T, H, HAS_H0, out_ptr.dtype.element_ty,
                                                      BLOCK_T, BLOCK_H)
    for t0 in range(0, T, BLOCK_T):
        tile = tl.zeros([BLOCK_T, BLOCK_H], dtype=out_ptr.dtype.element_ty)
        for i in tl.static_range(BLOCK_T):
            t = t0 + i
            m = cmask & (t < T)
            off = base + t * H + cols
            # past T: k = 0, hc = 0 leave h unchanged (and nothing is stored)
            k = tl.load(k_ptr + off, mask=m, other=0)
            hc = tl.load(hc_ptr + off, mask=m, other=0)
            x = k * (hc - h)
            if S > 0:
                x = _round_shift(x, S, ROUND)
            h = tl.minimum(tl.maximum(h + x, HMIN), HMAX)
            # collected in registers, stored once per tile: a store between the loads would make
            # every load wait for it (the pointers may alias), one memory latency per step
            tile = tl.where(rows[:, None] == i, h[None, :], tile)
        t = t0 + rows
        tl.store(out_ptr + base + t[:, None] * H + cols[None, :], tile, mask=(t < T)[:, None] & cmask[None, :])


def sc_state_sequence(k: torch.Tensor, hc: torch.Tensor, h0: torch.Tensor | None, b_z: int, fmt_h,
                      block_t: int = 8, block_h: int = 16) -> torch.Tensor:
    """States (B, T, H) in ``hc``'s integer dtype (int32 or int64, the arithmetic width); ``k``,
    ``hc`` (B, T, H) contiguous of that dtype, ``h0`` (B, H) or None (zeros).

    Default blocks: the fastest of BLOCK_T 8..32 x BLOCK_H 16..64 on an H200 (B=64, T=16000,
    H=64: 2.2 ms against 6.9 ms with a store per step; B=256, T=2000: 0.39 ms)."""
    B, T, H = hc.shape
    out = torch.empty_like(hc)
    _sc_kernel[(B, triton.cdiv(H, block_h))](k, hc, h0 if h0 is not None else hc, out, T, H,
                                             HAS_H0=h0 is not None, S=b_z, ROUND=_ROUNDING[fmt_h.rounding.value],
                                             HMIN=fmt_h.min_int, HMAX=fmt_h.max_int, BLOCK_T=block_t, BLOCK_H=block_h)
    return out


@triton.jit
def _round_real(x, ROUND: tl.constexpr):
    # sim.quant.round_real: floor(x), floor(x + 1/2), nearest with ties to even (rint, as torch.round)
    if ROUND == 0:
        r = tl.floor(x)
    elif ROUND == 1:
        r = tl.floor(x + 0.5)
    else:
        r = tl.extra.cuda.libdevice.rint(x)
    return r


@triton.jit
def _sc_noisy_kernel(k_ptr, hc_ptr, z_ptr, leak_ptr, off_ptr, noise_ptr, out_ptr, T, H, noise_st, noise_sb,
                     HAS_Z: tl.constexpr, HAS_LEAK: tl.constexpr, HAS_OFF: tl.constexpr, HAS_NOISE: tl.constexpr,
                     NZ: tl.constexpr, ROUND: tl.constexpr, HMIN: tl.constexpr, HMAX: tl.constexpr, LIM: tl.constexpr,
                     BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr):
    # sim.mingru.state_update_sc step by step, in float64 and in its order of operations (the
    # launch turns off multiply-add fusion, so every product and sum rounds as in NumPy / torch)
    pid_b, rows, cols, cmask, base, h = _program_tile(out_ptr, T, H, False, tl.int64, BLOCK_T, BLOCK_H)
    nbase = pid_b.to(tl.int64) * noise_sb
    if HAS_LEAK:
        leak = tl.load(leak_ptr + cols, mask=cmask, other=1.0)
    if HAS_OFF:
        off = tl.load(off_ptr + cols, mask=cmask, other=0.0)
    for t0 in range(0, T, BLOCK_T):
        tile = tl.zeros([BLOCK_T, BLOCK_H], dtype=tl.int64)
        for i in tl.static_range(BLOCK_T):
            t = t0 + i
            m = cmask & (t < T)
            off_t = base + t * H + cols
            k = tl.load(k_ptr + off_t, mask=m, other=0).to(tl.int64)
            hc = tl.load(hc_ptr + off_t, mask=m, other=0).to(tl.int64)
            hf = h.to(tl.float64)
            if HAS_LEAK:
                held = hf * leak
                delta = held - hf
            else:
                held = hf
                delta = tl.zeros([BLOCK_H], dtype=tl.float64)
            if HAS_Z:
                z = tl.load(z_ptr + cols * NZ + k, mask=m, other=0.0)
            else:
                z = k.to(tl.float64) * (1.0 / NZ)
            delta = delta + z * (hc.to(tl.float64) - held)
            if HAS_OFF:
                delta = delta + off
            if HAS_NOISE:
                delta = delta + tl.load(noise_ptr + nbase + t.to(tl.int64) * noise_st + cols, mask=m, other=0.0)
            delta = tl.minimum(tl.maximum(delta, -LIM), LIM)
            h_new = tl.minimum(tl.maximum(h + _round_real(delta, ROUND).to(tl.int64), HMIN), HMAX)
            h = tl.where(m, h_new, h)
            tile = tl.where(rows[:, None] == i, h[None, :], tile)
        t = t0 + rows
        tl.store(out_ptr + base + t[:, None] * H + cols[None, :], tile, mask=(t < T)[:, None] & cmask[None, :])


def sc_state_sequence_noisy(k: torch.Tensor, hc: torch.Tensor, b_z: int, fmt_h, z_eff=None, leak=None, offset=None,
                            noise=None, block_t: int = 8, block_h: int = 16) -> torch.Tensor:
    """int64 states (B, T, H) of :func:`sim.mingru.state_sequence_sc` from 0: ``k``, ``hc`` (B, T, H)
    contiguous integer codes; ``z_eff`` (H, 2**b_z), ``leak``, ``offset`` (H,) float64 contiguous or
    None; ``noise`` float64 (B, T, H) with unit channel stride (any time and batch strides: the
    sampler's (T, B, H) draws moved to batch-first without a copy) or None."""
    B, T, H = hc.shape
    out = torch.empty(hc.shape, dtype=torch.int64, device=hc.device)
    dummy = torch.empty(1, dtype=torch.float64, device=hc.device)
    if noise is not None and noise.stride(2) != 1:
        noise = noise.contiguous()
    ns = (noise.stride(1), noise.stride(0)) if noise is not None else (0, 0)
    _sc_noisy_kernel[(B, triton.cdiv(H, block_h))](
        k, hc, dummy if z_eff is None else z_eff, dummy if leak is None else leak,
        dummy if offset is None else offset, dummy if noise is None else noise, out, T, H, ns[0], ns[1],
        HAS_Z=z_eff is not None, HAS_LEAK=leak is not None, HAS_OFF=offset is not None, HAS_NOISE=noise is not None,
        NZ=1 << b_z, ROUND=_ROUNDING[fmt_h.rounding.value], HMIN=fmt_h.min_int, HMAX=fmt_h.max_int,
        LIM=2.0 ** (fmt_h.bits + 1), BLOCK_T=block_t, BLOCK_H=block_h, enable_fp_fusion=False)
    return out
