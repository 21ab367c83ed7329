"""Train an mGRADE model: float phase, then hardware-aware (QAT) phase, then export.

    python -m models.train --task gsc12 --epochs 30 --qat-epochs 5 --hidden 32 --layers 2 --taps 8 \\
        --d-max 127 --out runs/gsc12 --export models/bundles/gsc12.npz

* float phase: AdamW (tap positions at ``--pos-lr-mult`` x the learning rate, no weight decay on
  biases, norms and positions), linear warm-up then cosine decay, the Gaussian width of the
  learnable delays annealed from ``--sigma0`` to ``--sigma-end`` over the first
  ``--sigma-decay`` fraction of the float steps (DCLS recipe); BatchNorm over (batch, time).
* QAT phase (``--qat-epochs``): BatchNorm folded, delays rounded to integers, every tensor
  fake-quantised to the contract's formats (straight-through estimators), a fresh cosine schedule
  at ``--qat-lr-scale`` x the learning rate.
* at the end: float accuracy (the float model, before quantisation), QAT accuracy (the quantised
  model's exact integer path, which equals ``sim/``) and ``sim/`` accuracy on the test split, in
  ``OUT/metrics.json``; ``--export`` writes the weight bundle.

``--formats PRESET|FILE.json`` picks the chip's formats (:mod:`spec.presets`: ``mgrade-hw``, the
default, or ``minimalist``, which also fixes the arch flags MINIMALIST dictates and refuses a
conflicting one); the bundle records them and ``meta['formats_preset']``.

``--noise default|zero|FILE.json`` makes the QAT phase noise-aware (:mod:`models.noise`): every
training batch sees a new chip instance of that :class:`sim.NoiseModel` (static errors drawn by its
``realize``) and fresh dynamic noise, values from the noisy chip, gradients straight through;
``--noise-seed`` seeds the sequence of chips (default ``--seed``). Validation, test and export
stay noise-free (the exported bundle equals ``sim/`` bit for bit); the bundle records the noise
model in ``meta['noise']`` and ``meta['noise_seed']``.

A checkpoint ``OUT/last.pt`` is written after every epoch (``OUT/float.pt`` at the end of the
float phase); ``--resume`` continues from ``OUT/last.pt``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data.tasks import TASKS, Split, TaskInfo, batches, load_split, task_info
from sim.noise import NoiseModel
from sim.noise import resolve as resolve_noise
from spec.arch import Arch, ArchError, Formats, memory_footprint
from spec.bundle import Bundle, save_bundle
from spec.presets import PRESETS
from spec.presets import resolve as resolve_preset

from .export import bundle_from_model, evaluate_sim, git_commit
from .mgrade import MGRADE


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m models.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = ap.add_argument_group("task and data")
    g.add_argument("--task", required=True, choices=TASKS)
    g.add_argument("--data-root", default=None, help="data root passed to data.load_task")
    g.add_argument("--limit", type=int, default=None, help="at most this many training examples")
    g.add_argument("--eval-limit", type=int, default=None, help="at most this many test (and val) examples")
    g.add_argument("--val-split", default="val", help="split used to monitor training ('' for none)")
    g.add_argument("--frame", type=int, default=1, help="audio: samples per step (d_in)")
    g.add_argument("--augment", action="store_true", help="audio: random time shift and gain")
    g.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra data.load_task option (repeatable), e.g. resplit=clip")
    g = ap.add_argument_group("architecture (spec.arch.Arch)")
    g.add_argument("--hidden", type=int, default=32)
    g.add_argument("--layers", type=int, default=2)
    g.add_argument("--taps", type=int, default=8)
    g.add_argument("--d-max", type=int, default=63)
    g.add_argument("--expand", type=int, default=2)
    g.add_argument("--mix", default="mlp", choices=("mlp", "glu", "none"))
    g.add_argument("--norm", default="affine", choices=("affine", "none"))
    g.add_argument("--no-skip", action="store_true")
    g.add_argument("--rnn-out", default="linear", choices=("linear", "heaviside"))
    g.add_argument("--readout", default="mean", choices=("mean", "last"))
    g.add_argument("--gate-bits", type=int, default=6)
    g.add_argument("--interp", default="gauss", choices=("gauss", "linear"))
    g.add_argument("--formats", default="mgrade-hw", metavar="PRESET|FILE.json",
                   help=f"the chip's fixed-point formats: a preset of spec.presets ({', '.join(PRESETS)}; a "
                        "preset may also fix arch flags, e.g. minimalist: no skip/mix/conv/norm, heaviside) or "
                        "a JSON file with a bundle header's 'formats' object")
    g = ap.add_argument_group("noise-aware training (sim.NoiseModel)")
    g.add_argument("--noise", default="none", metavar="default|zero|none|FILE.json",
                   help="QAT-phase chip non-idealities: NoiseModel.default(), NoiseModel.zero() (every magnitude "
                        "zero: bit for bit the noise-free training), none, or a JSON file of NoiseModel.to_json(); "
                        "each training batch sees a new chip instance and fresh dynamic noise")
    g.add_argument("--noise-seed", type=int, default=None, help="seed of the chip sequence (default: --seed)")
    g.add_argument("--noise-clean", type=float, default=0.0, metavar="FRACTION",
                   help="fraction of the noise-aware batches run on the ideal chip instead, so that the network "
                        "stays right without the errors too (injection's mean shift is learnt otherwise)")
    g = ap.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=10, help="float-phase epochs")
    g.add_argument("--qat-epochs", type=int, default=2, help="hardware-aware epochs")
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--bucket", type=int, default=0,
                   help="padded tasks: sort groups of this many batches by length (0: plain shuffle)")
    g.add_argument("--eval-batch-size", type=int, default=256)
    g.add_argument("--lr", type=float, default=3e-3)
    g.add_argument("--pos-lr-mult", type=float, default=5.0, help="learning-rate factor of the tap positions")
    g.add_argument("--wd", type=float, default=0.05)
    g.add_argument("--warmup", type=float, default=0.05, help="warm-up, fraction of a phase's steps")
    g.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    g.add_argument("--label-smoothing", type=float, default=0.0)
    g.add_argument("--class-weights", action="store_true", help="weight the loss by inverse class frequency")
    g.add_argument("--sigma0", type=float, default=None, help="initial Gaussian width (default d_max/(2 taps))")
    g.add_argument("--sigma-end", type=float, default=0.5)
    g.add_argument("--sigma-decay", type=float, default=0.5, help="fraction of float steps to anneal sigma")
    g.add_argument("--qat-lr-scale", type=float, default=0.1)
    g.add_argument("--qat-train-delays", action="store_true", help="keep training the integer delays (STE)")
    g = ap.add_argument_group("run")
    g.add_argument("--time-budget", type=float, default=None,
                   help="seconds for training (float + QAT, split in proportion to their epochs); a phase "
                        "ends at its epoch count or its time share, and the schedules follow the progress")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    g.add_argument("--out", required=True, help="run folder (checkpoints, metrics.json)")
    g.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    g.add_argument("--init", default=None, metavar="CKPT|BUNDLE.npz",
                   help="start from another run's weights (a checkpoint such as RUN/float.pt): transfer "
                        "learning; tensors whose name or shape differ (the decoder of a task with other "
                        "classes) keep their fresh initialisation. A weight bundle (.npz) of the same arch and "
                        "formats starts the QAT phase from its integer weights (needs --epochs 0): e.g. "
                        "noise-aware fine-tuning of a shipped bundle with --noise default")
    g.add_argument("--export", default=None, help="write the weight bundle here at the end")
    g.add_argument("--no-sim", action="store_true", help="skip the sim/ accuracy at the end")
    g.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    apply_formats_arg(ap, args, argv)
    try:
        resolve_noise(args.noise)
    except ValueError as e:
        ap.error(f"--noise: {e}")
    if args.noise_seed is not None and args.noise_seed < 0:
        ap.error(f"--noise-seed must be >= 0, not {args.noise_seed}")
    if not 0.0 <= args.noise_clean < 1.0:
        ap.error(f"--noise-clean is a fraction of the batches in [0, 1), not {args.noise_clean}")
    return args


#: Arch fields the command line sets, and the flag (dest) of each; ``skip`` is ``not --no-skip``.
ARCH_FLAGS = {"hidden": "hidden", "layers": "layers", "taps": "taps", "d_max": "d_max", "expand": "expand",
              "mix": "mix", "norm": "norm", "skip": "no_skip", "rnn_out": "rnn_out", "readout": "readout",
              "gate_bits": "gate_bits"}


def _given(ap: argparse.ArgumentParser, argv) -> set[str]:
    """The dests the command line sets explicitly (parsed again with every default suppressed)."""
    saved = [(a, a.default) for a in ap._actions]
    try:
        for a, _ in saved:
            a.default = argparse.SUPPRESS
        return set(vars(ap.parse_args(argv)))
    finally:
        for a, d in saved:
            a.default = d


def apply_formats_arg(ap: argparse.ArgumentParser, args: argparse.Namespace, argv) -> None:
    """Resolve ``--formats``; set the arch flags its preset fixes (so that ``args`` describes the
    network trained), refusing an explicit flag that the preset fixes otherwise."""
    try:
        preset = resolve_preset(args.formats)
    except ArchError as e:
        ap.error(str(e))
    given = _given(ap, argv)
    explicit = {f: (not args.no_skip if f == "skip" else getattr(args, d)) for f, d in ARCH_FLAGS.items()
                if d in given}
    bad = preset.conflicts(explicit)
    if bad:
        flags = ", ".join(f"--{ARCH_FLAGS[k].replace('_', '-')} ({k}={v[0]!r}; {preset.name!r} needs {v[1]!r})"
                          for k, v in bad.items())
        ap.error(f"--formats {args.formats} fixes {', '.join(f'{k}={v!r}' for k, v in preset.arch.items())}; "
                 f"conflicting flag(s): {flags}. Drop them or choose other formats")
    for f, v in preset.arch.items():
        if f in ARCH_FLAGS:
            setattr(args, ARCH_FLAGS[f], (not v) if f == "skip" else v)


# ---------------------------------------------------------------------------------------------
# Settings, optimiser, schedules, augmentation
# ---------------------------------------------------------------------------------------------
def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(model: MGRADE, lr: float, wd: float, pos_mult: float) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters: weight decay ``wd`` on matrices only (not on biases,
    norms or tap positions), the positions at ``pos_mult`` x ``lr``; every group keeps its
    ``base_lr`` for the schedule."""
    pos, decay, no_decay = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.endswith(".pos"):
            pos.append(p)
        elif p.dim() >= 2 and "norm" not in name:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [{"params": decay, "weight_decay": wd, "lr": lr, "base_lr": lr},
              {"params": no_decay, "weight_decay": 0.0, "lr": lr, "base_lr": lr}]
    if pos:
        groups.append({"params": pos, "weight_decay": 0.0, "lr": lr * pos_mult, "base_lr": lr * pos_mult})
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98))


def lr_at(progress: float, warmup: float) -> float:
    """Learning-rate factor at ``progress`` in [0, 1] of a phase: linear warm-up over the first
    ``warmup`` fraction, then cosine decay to 0."""
    p = min(max(progress, 0.0), 1.0)
    if warmup > 0 and p < warmup:
        return max(p / warmup, 1e-3)
    return 0.5 * (1.0 + math.cos(math.pi * (p - warmup) / max(1e-9, 1.0 - warmup)))


def sigma_at_progress(progress: float, s0: float, s1: float, frac: float) -> float:
    """Gaussian width at ``progress`` in [0, 1] of the float phase: exponential decay from ``s0``
    to ``s1`` (steps of delay) over the first ``frac`` of the phase, then ``s1``."""
    p = min(1.0, progress / max(1e-9, frac))
    return s0 * (s1 / s0) ** p


def parse_opts(items: list[str]) -> dict:
    from data.core import parse_options
    try:
        return parse_options(items)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def augment_audio(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1600) -> torch.Tensor:
    """Random circular-free time shift (zero fill) and gain on (B, T, frame) int codes.

    The shift is at most ``max_shift`` samples and at most a tenth of the clip (1,600 samples of a
    1-second 16 kHz clip either way), so short clips are shifted in proportion, never past their end."""
    B, T, Fr = x.shape
    flat = x.reshape(B, T * Fr).to(torch.float32)
    out = torch.zeros_like(flat)
    max_shift = min(max_shift, (T * Fr) // 10)
    shifts = torch.randint(-max_shift, max_shift + 1, (B,), generator=gen).tolist()
    gains = (0.6 + 0.8 * torch.rand(B, generator=gen)).tolist()
    n = T * Fr
    for i, (s, g) in enumerate(zip(shifts, gains, strict=True)):
        if s >= 0:
            out[i, s:] = flat[i, :n - s] * g
        else:
            out[i, :n + s] = flat[i, -s:] * g
    return out.round().clamp(-32768, 32767).to(x.dtype).reshape(B, T, Fr)


# ---------------------------------------------------------------------------------------------
# Typed records
# ---------------------------------------------------------------------------------------------
@dataclass
class TrainData:
    """The splits of a run, the input they imply, and what the bundle's meta records of them."""
    train: Split
    test: Split
    val: Split | None           # the ``--val-split`` split, None when there is none
    info: TaskInfo              # encoder, d_in (features per step, or vocabulary size), classes, kind
    meta: dict                  # {"task": name, "train" | "test" | VAL: split_summary(split)}


@dataclass
class EvalStats:
    """A split's accuracy (fraction correct), mean cross-entropy (nats per example) and size."""
    accuracy: float
    loss: float
    n: int

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class EpochStats:
    """One epoch: a line of ``history`` in the checkpoint and ``metrics.json``, printed as JSON."""
    epoch: int                  # 1-based, counted over both phases
    phase: str                  # 'float' | 'qat'
    train_loss: float           # mean cross-entropy over the epoch's training examples (nats)
    train_acc: float            # fraction of them classified right (during the epoch's updates)
    steps: int                  # optimiser steps taken
    epoch_s: float              # wall-clock seconds of the training part (validation excluded)
    time_s: float               # wall-clock seconds since the run started
    note: str | None = None     # why the epoch ended early (the phase's time share is used up)
    val: dict | None = None     # EvalStats.to_json() on the validation split

    @property
    def ended_early(self) -> bool:
        return self.note is not None

    def to_json(self) -> dict:
        """The stored record: ``note`` and ``val`` only when set."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None or k not in ("note", "val")}


@dataclass
class TrainResult:
    """The test-split accuracies a run ends with: fractions in [0, 1], None where not measured."""
    float_acc: float | None     # the float model (None: its phase ended in an earlier process)
    qat_acc: float              # the quantised model's exact integer path (= sim/)
    qat_fake_quant_acc: float   # the quantised model's fake-quantised float forward
    sim_acc: float | None       # sim/ itself (None: --no-sim, or sim/ not usable)
    n_test: int

    @classmethod
    def from_metrics(cls, metrics: dict) -> "TrainResult":
        return cls(metrics["float"].get("accuracy"), metrics["qat"]["accuracy"],
                   metrics["qat_fake_quant"]["accuracy"], metrics.get("sim", {}).get("accuracy"),
                   metrics["qat"]["n"])

    def summary(self) -> dict:
        """The fields of ``metrics.json``."""
        return {"float_test_acc": self.float_acc, "qat_test_acc": self.qat_acc,
                "qat_fake_quant_test_acc": self.qat_fake_quant_acc, "sim_test_acc": self.sim_acc,
                "n_test": self.n_test}

    def bundle_accuracy(self) -> dict:
        """The bundle's ``meta['accuracy']``."""
        return {"float": self.float_acc, "qat": self.qat_acc, "sim": self.sim_acc, "n_test": self.n_test,
                "split": "test"}


@dataclass
class Run:
    """What a run fixes at its start: settings, device, data, architecture."""
    args: argparse.Namespace
    out: Path                   # run folder: last.pt, float.pt, metrics.json
    device: torch.device
    data: TrainData
    arch: Arch
    fmts: Formats
    n_params: int
    sigma0: float               # initial Gaussian width of the delay kernels (steps)
    class_w: torch.Tensor | None  # per-class loss weights (--class-weights), else None
    t_start: float              # time.time() at the start
    preset: str = "mgrade-hw"   # name of the formats preset (``file:PATH`` for a JSON file)
    noise: NoiseModel | None = None   # noise-aware QAT (``--noise``), None: noise-free
    noise_seed: int = 0         # seed of the chip sequence (``--noise-seed``, default ``--seed``)

    def noise_meta(self) -> dict:
        """What the bundle and ``metrics.json`` record of the noise-aware training."""
        return {"noise": None if self.noise is None else self.noise.to_json(),
                "noise_seed": None if self.noise is None else self.noise_seed,
                "noise_clean": None if self.noise is None else self.args.noise_clean}

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.args.batch_size)

    @property
    def total_epochs(self) -> int:
        return self.args.epochs + self.args.qat_epochs

    def phase_steps(self, qat: bool) -> int:
        """Optimiser steps of a whole phase (what the schedules count against)."""
        return (self.args.qat_epochs if qat else self.args.epochs) * self.steps_per_epoch

    def input_meta(self) -> dict:
        """How the model reads its input (checkpoint and bundle meta)."""
        return {"kind": self.data.info.kind, "frame": self.args.frame, "encoder": self.data.info.encoder}


@dataclass
class TrainState:
    """What training changes: everything a checkpoint stores to resume."""
    model: MGRADE
    opt: torch.optim.Optimizer
    rng: np.random.Generator    # batch order
    gen: torch.Generator        # audio augmentation
    epoch: int = 0              # epochs done, both phases
    step_in_phase: int = 0      # optimiser steps done in the current phase
    history: list[dict] = field(default_factory=list)   # EpochStats.to_json() per epoch
    metrics: dict = field(default_factory=dict)         # test-split results: 'float', 'qat', ...


@dataclass
class PhaseClock:
    """Wall-clock time of the current phase against its share of ``--time-budget`` (seconds)."""
    budget: dict[str, float] | None     # phase -> seconds; None: no time budget
    t0: float
    elapsed0: float = 0.0               # seconds spent in this phase by an earlier process (resume)

    @classmethod
    def for_run(cls, run: Run, state: TrainState) -> "PhaseClock":
        """Shares in proportion to the phases' epochs; a resumed phase keeps the time it used."""
        a, budget = run.args, None
        if a.time_budget:
            share = a.epochs / max(1, run.total_epochs)
            budget = {"float": a.time_budget * share, "qat": a.time_budget * (1 - share)}
        phase = "qat" if state.model.quantized else "float"
        return cls(budget, time.time(), sum(h.get("epoch_s", 0.0) for h in state.history if h["phase"] == phase))

    def restart(self) -> None:
        self.t0, self.elapsed0 = time.time(), 0.0

    def used(self, phase: str) -> float | None:
        """Fraction of ``phase``'s time share used so far, or None without a budget."""
        if self.budget is None:
            return None
        return (time.time() - self.t0 + self.elapsed0) / max(1e-9, self.budget[phase])


# ---------------------------------------------------------------------------------------------
# Data, model, evaluation
# ---------------------------------------------------------------------------------------------
def load_data(args: argparse.Namespace) -> TrainData:
    """The train, test and (if it exists) validation splits, and the input they imply."""
    opts = parse_opts(args.data_opt)

    def load(split: str, limit: int | None) -> Split:
        return load_split(args.task, args.data_root, split, limit, seed=args.seed, options=opts)

    train, test, val = load("train", args.limit), load("test", args.eval_limit), None
    if args.val_split:
        try:
            val = load(args.val_split, args.eval_limit)
        except Exception as e:  # noqa: BLE001 - a task without a validation split
            print(f"[train] no '{args.val_split}' split ({type(e).__name__}: {e}); monitoring on none")
    info = task_info(train, args.frame)
    if train.kind in ("tokens", "pair"):    # the embedding table must hold the test split's ids too
        info.d_in = max(info.d_in, task_info(test).d_in)
    meta = {"task": args.task, "train": split_summary(train), "test": split_summary(test)}
    if val is not None:
        meta[args.val_split] = split_summary(val)
    return TrainData(train, test, val, info, meta)


def build_arch(args: argparse.Namespace, info: TaskInfo) -> Arch:
    return Arch(d_in=info.d_in, n_classes=info.n_classes, hidden=args.hidden, layers=args.layers, taps=args.taps,
                d_max=args.d_max, gate_bits=args.gate_bits, encoder=info.encoder, mix=args.mix, expand=args.expand,
                norm=args.norm, skip=not args.no_skip, rnn_out=args.rnn_out, readout=args.readout)


def class_weights(args: argparse.Namespace, train: Split, n_classes: int, device) -> torch.Tensor | None:
    """Inverse class frequencies normalised to mean 1 (``--class-weights``), else None."""
    if not args.class_weights:
        return None
    cnt = np.bincount(train.y, minlength=n_classes).astype(np.float64)
    return torch.tensor(cnt.sum() / np.maximum(cnt, 1) / n_classes, dtype=torch.float32, device=device)


def start_run(args: argparse.Namespace) -> tuple[Run, MGRADE]:
    """Threads, run folder, device and seeds, then the data and the model, in that order: the
    model's initial weights are the first draws of the torch RNG seeded here."""
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    seed_all(args.seed)
    t_start = time.time()
    data = load_data(args)
    print(f"[train] task {args.task}: {len(data.train)} train, {len(data.test)} test"
          + (f", {len(data.val)} {args.val_split}" if data.val is not None else "") + f"; device {device}")
    preset = resolve_preset(args.formats)
    try:
        arch, fmts = preset.apply(build_arch(args, data.info)), preset.formats
    except ArchError as e:
        raise SystemExit(f"--formats {args.formats}: {e}") from None
    sigma0 = args.sigma0 if args.sigma0 is not None else max(args.sigma_end, arch.d_max / (2 * max(arch.taps, 1)))
    model = MGRADE(arch, fmts, interp=args.interp, sigma=sigma0).to(device)
    if args.init and Path(args.init).suffix == ".npz":
        init_from_bundle(model, Path(args.init), args)
    elif args.init:
        init_from(model, Path(args.init), device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[train] {arch}\n[train] formats {preset.name}: "
          + ", ".join(f"{k} {getattr(fmts, k).name}" for k in ("w_rnn", "bias", "h", "act"))
          + f"\n[train] {n_params} parameters; chip memory {memory_footprint(arch, fmts)}")
    noise = resolve_noise(args.noise)
    noise_seed = args.seed if args.noise_seed is None else args.noise_seed
    if noise is not None:
        model.set_noise(noise, noise_seed, args.noise_clean)
        lsb = ", ".join(f"{k} {v:.3g}" for k, v in noise.describe(arch, fmts).items())
        print(f"[train] noise-aware QAT at --noise {args.noise} (noise seed {noise_seed}, noise-free batches "
              f"{args.noise_clean:.0%}), in LSB: {lsb or 'none'}"
              + ("" if args.qat_epochs else "; no QAT epochs, so no batch sees it"))
    run = Run(args, out, device, data, arch, fmts, n_params, sigma0,
              class_weights(args, data.train, data.info.n_classes, device), t_start, preset.name, noise, noise_seed)
    return run, model


def init_from_bundle(model: MGRADE, path: Path, args: argparse.Namespace) -> None:
    """Start the QAT phase from a weight bundle's integer tensors: same architecture (the gate's bits
    may differ); other formats re-quantise the bundle's values (its codes times 2**-frac of its own
    formats) to this run's, the starting point of a co-design fine-tune (:mod:`analysis.codesign`)."""
    from spec.bundle import load_bundle
    if not path.is_file():
        raise SystemExit(f"--init {path}: no such bundle")
    b = load_bundle(path)
    if dataclasses.replace(b.arch, gate_bits=model.arch.gate_bits) != model.arch:
        raise SystemExit(f"--init {path}: the bundle's arch differs from this run's (other than gate bits):\n"
                         f"  bundle {b.arch}\n  run    {model.arch}\n"
                         "give the flags the bundle was trained with (meta['train_args'])")
    if args.epochs:
        raise SystemExit(f"--init {path}: a bundle is a quantised model; give --epochs 0 (QAT epochs only)")
    target = model.formats
    model.formats = b.formats
    model.load_integer_tensors(b.tensors)
    model.quantize(target, train_delays=args.qat_train_delays)
    requant = "" if b.formats == target and b.arch == model.arch else \
        f"; re-quantised from its formats/gate bits ({b.arch.gate_bits}) to this run's ({model.arch.gate_bits})"
    print(f"[train] init from bundle {path} (QAT phase from its integer weights{requant}; "
          f"its accuracy {b.meta.get('accuracy')})")


def init_from(model: MGRADE, path: Path, device) -> None:
    """Load every tensor of checkpoint ``path`` whose name and shape match ``model``'s (transfer
    learning: a network pre-trained on one task, fine-tuned on another with other classes)."""
    if not path.is_file():
        raise SystemExit(f"--init {path}: no such checkpoint (give a .pt written by models.train, e.g. RUN/float.pt)")
    ck = torch.load(path, map_location=device, weights_only=False)
    src = ck.get("model", ck) if isinstance(ck, dict) else None
    if not isinstance(src, dict):
        raise SystemExit(f"--init {path}: not a models.train checkpoint (no 'model' state dict)")
    own = model.state_dict()
    take = {k: v for k, v in src.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not take:
        raise SystemExit(f"--init {path}: no tensor matches this model's names and shapes (another architecture?)")
    model.load_state_dict(take, strict=False)
    fresh = sorted(set(own) - set(take))
    print(f"[train] init from {path}: {len(take)} tensors loaded; fresh: {', '.join(fresh) or 'none'}")


@torch.no_grad()
def evaluate(model: MGRADE, split: Split, args: argparse.Namespace, device, x_fmt, desc: str,
             path: str = "auto") -> EvalStats:
    """Accuracy and mean loss on a split (float model, or the quantised model's integer path)."""
    model.eval()
    correct = n = 0
    loss = 0.0
    it = ([torch.from_numpy(a).to(device) for a in b]
          for b in batches(split, args.eval_batch_size, x_fmt, args.frame, by_length=True))
    nb = math.ceil(len(split) / args.eval_batch_size)
    for x, y, lengths in tqdm(it, total=nb, desc=desc, leave=False, disable=args.no_progress):
        logits = model(x, lengths, path=path).float()
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(-1) == y).sum())
        n += len(y)
    return EvalStats(correct / max(n, 1), loss / max(n, 1), n)


def evaluate_test(run: Run, model: MGRADE, desc: str, path: str = "auto") -> EvalStats:
    return evaluate(model, run.data.test, run.args, run.device, run.fmts.x, desc, path=path)


def split_summary(split) -> dict:
    """What the bundle's meta records of a split: source, rule, counts (no per-example lists)."""
    m = dict(split.meta)
    keys = ("task", "source", "split", "split_rule", "speaker_disjoint", "load_options", "packed", "limit",
            "class_counts", "length_range", "max_len", "format", "licence", "citation", "fixture")
    keep = {k: m[k] for k in keys if k in m}
    keep["n"] = len(split)
    keep.setdefault("class_counts", {str(c): int((split.y == i).sum()) for i, c in enumerate(split.classes)})
    return json.loads(json.dumps(keep, default=str))


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def save_state(run: Run, state: TrainState, path: Path) -> None:
    """Write a checkpoint (``torch.save`` of a dict, written atomically) that :func:`resume` and
    :func:`models.export.load_checkpoint` read."""
    save_checkpoint(path, {
        "model": state.model.state_dict(), "model_config": state.model.config(), "optimizer": state.opt.state_dict(),
        "epoch": state.epoch, "step_in_phase": state.step_in_phase, "history": state.history,
        "metrics": state.metrics, "task": run.args.task, "data": run.data.meta, "args": vars(run.args),
        "input": run.input_meta(),
        "rng": {"numpy": state.rng.bit_generator.state, "torch_gen": state.gen.get_state(),
                "torch": torch.get_rng_state(),
                "noise": None if state.model.noise is None else state.model.noise.state_dict()}})


def qat_optimizer(run: Run, model: MGRADE) -> torch.optim.Optimizer:
    a = run.args
    return make_optimizer(model, a.lr * a.qat_lr_scale, a.wd, a.pos_lr_mult)


def new_state(run: Run, model: MGRADE) -> TrainState:
    a = run.args
    opt = qat_optimizer(run, model) if model.quantized else make_optimizer(model, a.lr, a.wd, a.pos_lr_mult)
    return TrainState(model, opt, np.random.default_rng(a.seed), torch.Generator().manual_seed(a.seed))


def resume(run: Run, state: TrainState, path: Path) -> None:
    """Continue from a checkpoint of :func:`save_state`: model, optimiser, counters, records, RNGs."""
    ck = torch.load(path, map_location=run.device, weights_only=False)
    model = state.model
    model.load_state_dict(ck["model"])
    if model.quantized:
        for c in model.convs():
            c.pos.requires_grad_(run.args.qat_train_delays)
        state.opt = qat_optimizer(run, model)
    state.opt.load_state_dict(ck["optimizer"])
    state.epoch, state.step_in_phase = ck["epoch"], ck["step_in_phase"]
    state.history, state.metrics = ck.get("history", []), ck.get("metrics", {})
    state.rng = np.random.default_rng()
    state.rng.bit_generator.state = ck["rng"]["numpy"]
    state.gen.set_state(ck["rng"]["torch_gen"].cpu())      # map_location may have moved them
    torch.set_rng_state(ck["rng"]["torch"].cpu())
    if model.noise is not None and ck["rng"].get("noise") is not None:
        try:
            model.noise.load_state_dict(ck["rng"]["noise"])       # the chip sequence goes on
        except ValueError as e:
            print(f"[train] {e}: the chip sequence restarts")
    print(f"[train] resumed from {path} at epoch {state.epoch} ({'QAT' if model.quantized else 'float'} phase)")


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
def start_qat(run: Run, state: TrainState) -> None:
    """End of the float phase: measure the float model on the test split and keep it
    (``float.pt``), then switch to the hardware-aware model with a fresh optimiser and schedule."""
    m = evaluate_test(run, state.model, "float test")
    state.metrics["float"] = m.to_json()
    print(f"[train] float model: test acc {m.accuracy:.4f} (n={m.n})")
    save_state(run, state, run.out / "float.pt")
    state.model.quantize(run.fmts, train_delays=run.args.qat_train_delays)
    state.opt = qat_optimizer(run, state.model)
    state.step_in_phase = 0


def batch_to_device(run: Run, state: TrainState, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NumPy (x, y, lengths) -> tensors on the device, audio augmented first (``--augment``)."""
    x, y, lengths = (torch.from_numpy(a) for a in batch)
    if run.args.augment and run.data.info.kind == "audio":
        x = augment_audio(x, state.gen)
    return x.to(run.device), y.to(run.device), lengths.to(run.device)


def train_step(run: Run, state: TrainState, x, y, lengths, progress: float, qat: bool) -> tuple[float, int]:
    """One optimiser step at ``progress`` in [0, 1] of the phase (which sets the learning rate
    and, in the float phase, the delay kernels' width); returns the batch's mean loss and the
    number classified right."""
    a, model, opt = run.args, state.model, state.opt
    f = lr_at(progress, a.warmup)
    for grp in opt.param_groups:
        grp["lr"] = grp["base_lr"] * f
    if not qat and a.interp == "gauss":
        model.set_sigma(sigma_at_progress(progress, run.sigma0, a.sigma_end, a.sigma_decay))
    logits = model(x, lengths)
    loss = F.cross_entropy(logits, y, weight=run.class_w, label_smoothing=a.label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if a.clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
    opt.step()
    model.clamp_()
    state.step_in_phase += 1
    return float(loss.detach()), int((logits.argmax(-1) == y).sum())


def train_epoch(run: Run, state: TrainState, clock: PhaseClock, qat: bool) -> EpochStats:
    """One pass over the shuffled training split, or less when the phase's time share runs out."""
    a, phase = run.args, "qat" if qat else "float"
    total = run.phase_steps(qat)
    # TF32 matmuls only for the float model: the QAT forward must round like float32 to match its grid
    torch.backends.cuda.matmul.allow_tf32 = not qat
    torch.backends.cudnn.allow_tf32 = not qat
    state.model.train()
    t0, out_of_time = time.time(), False
    loss_sum, correct, n = 0.0, 0, 0
    it = batches(run.data.train, a.batch_size, run.fmts.x, a.frame, shuffle=True, rng=state.rng, bucket=a.bucket)
    bar = tqdm(it, total=run.steps_per_epoch, desc=f"{phase} epoch {state.epoch + 1}/{run.total_epochs}",
               disable=a.no_progress, mininterval=2.0)
    for batch in bar:
        x, y, lengths = batch_to_device(run, state, batch)
        progress, used = state.step_in_phase / max(1, total), clock.used(phase)
        if used is not None:
            if used >= 1.0:
                out_of_time = True
                break
            progress = max(progress, used)         # the schedules follow time when it runs faster
        loss, right = train_step(run, state, x, y, lengths, progress, qat)
        loss_sum, correct, n = loss_sum + loss * len(y), correct + right, n + len(y)
        bar.set_postfix(loss=f"{loss_sum / n:.3f}", acc=f"{correct / n:.3f}")
    stats = EpochStats(state.epoch + 1, phase, loss_sum / max(n, 1), correct / max(n, 1),
                       math.ceil(n / a.batch_size), round(time.time() - t0, 2), round(time.time() - run.t_start, 1))
    if out_of_time:
        stats.note = f"{phase} phase time share used up"
        if not qat and a.interp == "gauss":
            state.model.set_sigma(a.sigma_end)
    return stats


def end_epoch(run: Run, state: TrainState, stats: EpochStats) -> None:
    """Validate, record and print the epoch; count it (skip the rest of a phase whose time share
    is used up); checkpoint ``last.pt``."""
    if run.data.val is not None:
        # float phase: float model; QAT phase: the fake-quantised forward (the integer path is
        # measured on the test split at the end)
        stats.val = evaluate(state.model, run.data.val, run.args, run.device, run.fmts.x, "val",
                             path="float").to_json()
    rec = stats.to_json()
    state.history.append(rec)
    print(f"[train] {json.dumps(rec)}")
    state.epoch += 1
    if stats.ended_early:
        state.epoch = run.args.epochs if stats.phase == "float" else run.total_epochs
    save_state(run, state, run.out / "last.pt")


def train_loop(run: Run, state: TrainState) -> None:
    """The float epochs, then the QAT epochs, from wherever ``state`` is."""
    clock = PhaseClock.for_run(run, state)
    while state.epoch < run.total_epochs:
        qat = state.epoch >= run.args.epochs
        if qat and not state.model.quantized:
            start_qat(run, state)
            clock.restart()
        end_epoch(run, state, train_epoch(run, state, clock, qat))


# ---------------------------------------------------------------------------------------------
# Final measurements and export
# ---------------------------------------------------------------------------------------------
def measure_final(run: Run, state: TrainState) -> MGRADE:
    """Test-split metrics of the trained model; returns the quantised model (without QAT
    epochs: a quantised copy of the float model, which is measured first)."""
    model, metrics = state.model, state.metrics
    if not model.quantized:
        metrics["float"] = evaluate_test(run, model, "float test").to_json()
        save_state(run, state, run.out / "float.pt")
        qmodel = model.quantized_copy(run.fmts)
    else:
        qmodel = model
        metrics.setdefault("float", {"accuracy": None, "note": "float phase measured in an earlier process"})
    metrics["qat"] = evaluate_test(run, qmodel, "qat test (integer path)", path="int").to_json()
    metrics["qat_fake_quant"] = evaluate_test(run, qmodel, "qat test (fake-quant)", path="float").to_json()
    print(f"[train] float test acc {metrics['float'].get('accuracy')}, QAT (integer path) test acc "
          f"{metrics['qat']['accuracy']:.4f}, fake-quant {metrics['qat_fake_quant']['accuracy']:.4f} "
          f"(n={metrics['qat']['n']})")
    save_state(run, state, run.out / "last.pt")
    return qmodel


def make_bundle(run: Run, state: TrainState, qmodel: MGRADE, commit: str | None) -> Bundle:
    """The weight bundle of the quantised model (moved to the CPU), with the run's meta."""
    meta = {"task": run.args.task, "data": run.data.meta, "metrics": state.metrics, "train_args": vars(run.args),
            "input": run.input_meta(), "formats": run.fmts.to_json(), "formats_preset": run.preset,
            **run.noise_meta(), "git_commit": commit,
            "source": "python -m models.train"}
    return bundle_from_model(qmodel.cpu(), meta=json.loads(json.dumps(meta, default=str)))


def measure_sim(run: Run, state: TrainState, bundle: Bundle) -> None:
    """``sim/``'s test accuracy on the bundle, into the metrics and the bundle's meta."""
    try:
        state.metrics["sim"] = evaluate_sim(bundle, run.data.test, frame=run.args.frame,
                                            batch=run.args.eval_batch_size, progress=not run.args.no_progress)
        print(f"[train] sim/ test acc {state.metrics['sim']['accuracy']:.4f} (n={state.metrics['sim']['n']})")
    except (ImportError, AttributeError) as e:
        state.metrics["sim"] = {"accuracy": None, "note": f"sim/ not usable: {e}"}
    bundle.meta["metrics"] = json.loads(json.dumps(state.metrics, default=str))


def write_metrics(run: Run, state: TrainState, result: TrainResult, commit: str | None) -> Path:
    """``OUT/metrics.json``: the run's summary, records and settings."""
    summary = {"task": run.args.task, "arch": run.arch.to_json(), "formats": run.fmts.to_json(),
               "formats_preset": run.preset, **run.noise_meta(), "params": run.n_params,
               "memory_bits": memory_footprint(run.arch, run.fmts), "data": run.data.meta, **result.summary(),
               "metrics": state.metrics, "history": state.history, "args": vars(run.args),
               "device": str(run.device), "wall_s": round(time.time() - run.t_start, 1), "git_commit": commit}
    path = run.out / "metrics.json"
    path.write_text(json.dumps(summary, indent=1, default=str))
    return path


def finish(run: Run, state: TrainState, qmodel: MGRADE) -> TrainResult:
    """Bundle, ``sim/`` accuracy (unless ``--no-sim``), ``metrics.json``, and ``--export``."""
    commit = git_commit()
    bundle = make_bundle(run, state, qmodel, commit)
    if not run.args.no_sim:
        measure_sim(run, state, bundle)
    result = TrainResult.from_metrics(state.metrics)
    path = write_metrics(run, state, result, commit)
    if run.args.export:
        bundle.meta["accuracy"] = result.bundle_accuracy()
        print(f"[train] wrote bundle {save_bundle(bundle, run.args.export)}")
    print(f"[train] metrics in {path}")
    return result


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    run, model = start_run(args)
    state = new_state(run, model)
    if args.resume and (run.out / "last.pt").exists():
        resume(run, state, run.out / "last.pt")
    train_loop(run, state)
    finish(run, state, measure_final(run, state))
    return 0


if __name__ == "__main__":
    sys.exit(main())
