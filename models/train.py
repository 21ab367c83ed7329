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

A checkpoint ``OUT/last.pt`` is written after every epoch (``OUT/float.pt`` at the end of the
float phase); ``--resume`` continues from ``OUT/last.pt``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data.tasks import TASKS, batches, load_split, task_info
from spec.arch import Arch, Formats, memory_footprint

from .mgrade import MGRADE

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover
    def tqdm(it, **kw):
        return it


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
    g.add_argument("--export", default=None, help="write the weight bundle here at the end")
    g.add_argument("--no-sim", action="store_true", help="skip the sim/ accuracy at the end")
    g.add_argument("--no-progress", action="store_true")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------
def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def make_optimizer(model: MGRADE, lr: float, wd: float, pos_mult: float) -> torch.optim.Optimizer:
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


def lr_factor(step: int, total: int, warmup: float) -> float:
    """:func:`lr_at` for step ``step`` of ``total`` (warm-up counted in whole steps)."""
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    return lr_at(w / total + (step - w) / max(1, total - w) * (1 - w / total), w / total)


def sigma_at(step: int, total: int, s0: float, s1: float, frac: float) -> float:
    """Exponential decay from ``s0`` to ``s1`` over the first ``frac`` of ``total`` steps."""
    return sigma_at_progress(step / max(1, total), s0, s1, frac)


def sigma_at_progress(progress: float, s0: float, s1: float, frac: float) -> float:
    p = min(1.0, progress / max(1e-9, frac))
    return s0 * (s1 / s0) ** p


def parse_opts(items: list[str]) -> dict:
    from data.core import parse_options
    try:
        return parse_options(items)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def augment_audio(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1600) -> torch.Tensor:
    """Random circular-free time shift (zero fill) and gain on (B, T, frame) int codes."""
    B, T, Fr = x.shape
    flat = x.reshape(B, T * Fr).to(torch.float32)
    out = torch.zeros_like(flat)
    shifts = torch.randint(-max_shift, max_shift + 1, (B,), generator=gen).tolist()
    gains = (0.6 + 0.8 * torch.rand(B, generator=gen)).tolist()
    n = T * Fr
    for i, (s, g) in enumerate(zip(shifts, gains)):
        if s >= 0:
            out[i, s:] = flat[i, :n - s] * g
        else:
            out[i, :n + s] = flat[i, -s:] * g
    return out.round().clamp(-32768, 32767).to(x.dtype).reshape(B, T, Fr)


@torch.no_grad()
def evaluate(model: MGRADE, split, args, device, x_fmt, desc: str, path: str = "auto") -> dict:
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
    return {"accuracy": correct / max(n, 1), "loss": loss / max(n, 1), "n": n}


def split_summary(split) -> dict:
    """What the bundle's meta records of a split: source, rule, counts (no per-example lists)."""
    m = dict(split.meta)
    keys = ("task", "source", "split", "split_rule", "speaker_disjoint", "load_options", "packed", "limit",
            "class_counts", "length_range", "max_len", "format", "licence", "citation", "fixture")
    keep = {k: m[k] for k in keys if k in m}
    keep["n"] = len(split)
    keep.setdefault("class_counts", {str(c): int((split.y == i).sum()) for i, c in enumerate(split.classes)})
    return json.loads(json.dumps(keep, default=str))


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device)
    seed_all(args.seed)
    t_start = time.time()

    # ---- data --------------------------------------------------------------------------------
    opts = parse_opts(args.data_opt)
    train = load_split(args.task, args.data_root, "train", args.limit, seed=args.seed, options=opts)
    test = load_split(args.task, args.data_root, "test", args.eval_limit, seed=args.seed, options=opts)
    val = None
    if args.val_split:
        try:
            val = load_split(args.task, args.data_root, args.val_split, args.eval_limit, seed=args.seed,
                             options=opts)
        except Exception as e:  # noqa: BLE001 - a task without a validation split
            print(f"[train] no '{args.val_split}' split ({type(e).__name__}: {e}); monitoring on none")
    info = task_info(train, args.frame)
    if train.kind in ("tokens", "pair"):
        info.d_in = max(info.d_in, task_info(test).d_in)
    data_meta = {"task": args.task, "train": split_summary(train), "test": split_summary(test)}
    if val is not None:
        data_meta[args.val_split] = split_summary(val)
    print(f"[train] task {args.task}: {len(train)} train, {len(test)} test"
          + (f", {len(val)} {args.val_split}" if val is not None else "") + f"; device {device}")

    arch = Arch(d_in=info.d_in, n_classes=info.n_classes, hidden=args.hidden, layers=args.layers, taps=args.taps,
                d_max=args.d_max, gate_bits=args.gate_bits, encoder=info.encoder, mix=args.mix, expand=args.expand,
                norm=args.norm, skip=not args.no_skip, rnn_out=args.rnn_out, readout=args.readout)
    fmts = Formats()
    sigma0 = args.sigma0 if args.sigma0 is not None else max(args.sigma_end, args.d_max / (2 * max(args.taps, 1)))
    model = MGRADE(arch, fmts, interp=args.interp, sigma=sigma0).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[train] {arch}\n[train] {n_params} parameters; chip memory {memory_footprint(arch, fmts)}")

    class_w = None
    if args.class_weights:
        cnt = np.bincount(train.y, minlength=info.n_classes).astype(np.float64)
        class_w = torch.tensor(cnt.sum() / np.maximum(cnt, 1) / info.n_classes, dtype=torch.float32, device=device)

    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    float_total = args.epochs * steps_per_epoch
    qat_total = args.qat_epochs * steps_per_epoch
    epoch, step_in_phase = 0, 0
    history: list[dict] = []
    metrics: dict = {}
    opt = make_optimizer(model, args.lr, args.wd, args.pos_lr_mult)
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    ck_path = out / "last.pt"
    if args.resume and ck_path.exists():
        ck = torch.load(ck_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        if model.quantized:
            for c in model.convs():
                c.pos.requires_grad_(args.qat_train_delays)
            opt = make_optimizer(model, args.lr * args.qat_lr_scale, args.wd, args.pos_lr_mult)
        opt.load_state_dict(ck["optimizer"])
        epoch, step_in_phase = ck["epoch"], ck["step_in_phase"]
        history, metrics = ck.get("history", []), ck.get("metrics", {})
        rng = np.random.default_rng()
        rng.bit_generator.state = ck["rng"]["numpy"]
        gen.set_state(ck["rng"]["torch_gen"].cpu())      # map_location may have moved them
        torch.set_rng_state(ck["rng"]["torch"].cpu())
        print(f"[train] resumed from {ck_path} at epoch {epoch} ({'QAT' if model.quantized else 'float'} phase)")

    def checkpoint(path: Path):
        save_checkpoint(path, {
            "model": model.state_dict(), "model_config": model.config(), "optimizer": opt.state_dict(),
            "epoch": epoch, "step_in_phase": step_in_phase, "history": history, "metrics": metrics,
            "task": args.task, "data": data_meta, "args": vars(args),
            "input": {"kind": info.kind, "frame": args.frame, "encoder": info.encoder},
            "rng": {"numpy": rng.bit_generator.state, "torch_gen": gen.get_state(), "torch": torch.get_rng_state()}})

    total_epochs = args.epochs + args.qat_epochs
    phase_budget = None
    if args.time_budget:
        share = args.epochs / max(1, total_epochs)
        phase_budget = {"float": args.time_budget * share, "qat": args.time_budget * (1 - share)}
    phase_t0 = time.time()
    phase_elapsed0 = 0.0            # time already spent in this phase by an earlier process (resume)
    if history:
        cur = "qat" if model.quantized else "float"
        phase_elapsed0 = sum(h.get("epoch_s", 0.0) for h in history if h["phase"] == cur)
    while epoch < total_epochs:
        qat_phase = epoch >= args.epochs
        if qat_phase and not model.quantized:
            # ---- end of the float phase: measure, then switch to the hardware-aware model ------
            metrics["float"] = evaluate(model, test, args, device, fmts.x, "float test")
            print(f"[train] float model: test acc {metrics['float']['accuracy']:.4f} (n={metrics['float']['n']})")
            checkpoint(out / "float.pt")
            model.quantize(fmts, train_delays=args.qat_train_delays)
            opt = make_optimizer(model, args.lr * args.qat_lr_scale, args.wd, args.pos_lr_mult)
            step_in_phase = 0
            phase_t0, phase_elapsed0 = time.time(), 0.0
        total = qat_total if qat_phase else float_total
        torch.backends.cuda.matmul.allow_tf32 = not qat_phase
        torch.backends.cudnn.allow_tf32 = not qat_phase
        model.train()
        phase = "qat" if qat_phase else "float"
        epoch_t0 = time.time()
        out_of_time = False
        tl = tc = tn = 0.0
        it = batches(train, args.batch_size, fmts.x, args.frame, shuffle=True, rng=rng, bucket=args.bucket)
        bar = tqdm(it, total=steps_per_epoch, desc=f"{'qat' if qat_phase else 'float'} epoch {epoch + 1}/{total_epochs}",
                   disable=args.no_progress, mininterval=2.0)
        for x, y, lengths in bar:
            x, y, lengths = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(lengths)
            if args.augment and info.kind == "audio":
                x = augment_audio(x, gen)
            x, y, lengths = x.to(device), y.to(device), lengths.to(device)
            progress = step_in_phase / max(1, total)
            if phase_budget is not None:
                t_frac = (time.time() - phase_t0 + phase_elapsed0) / max(1e-9, phase_budget[phase])
                if t_frac >= 1.0:
                    out_of_time = True
                    break
                progress = max(progress, t_frac)
            f = lr_at(progress, args.warmup)
            for grp in opt.param_groups:
                grp["lr"] = grp["base_lr"] * f
            if not qat_phase and args.interp == "gauss":
                model.set_sigma(sigma_at_progress(progress, sigma0, args.sigma_end, args.sigma_decay))
            logits = model(x, lengths)
            loss = F.cross_entropy(logits, y, weight=class_w, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            model.clamp_()
            step_in_phase += 1
            b = len(y)
            tl += float(loss.detach()) * b
            tc += float((logits.argmax(-1) == y).sum())
            tn += b
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{tl / tn:.3f}", acc=f"{tc / tn:.3f}")
        rec = {"epoch": epoch + 1, "phase": phase, "train_loss": tl / max(tn, 1),
               "train_acc": tc / max(tn, 1), "steps": int(tn and math.ceil(tn / args.batch_size)),
               "epoch_s": round(time.time() - epoch_t0, 2), "time_s": round(time.time() - t_start, 1)}
        if out_of_time:
            rec["note"] = f"{phase} phase time share used up"
            if not qat_phase and args.interp == "gauss":
                model.set_sigma(args.sigma_end)
        if val is not None:
            # float phase: float model; QAT phase: fake-quantised forward (the integer path is
            # measured on the test split at the end)
            rec["val"] = evaluate(model, val, args, device, fmts.x, "val", path="float")
        history.append(rec)
        print(f"[train] {json.dumps(rec)}")
        epoch += 1
        if out_of_time:
            epoch = args.epochs if not qat_phase else total_epochs
        checkpoint(ck_path)

    # ---- final measurements -----------------------------------------------------------------------
    if not model.quantized:                      # no QAT epochs: measure the float model, quantise a copy
        metrics["float"] = evaluate(model, test, args, device, fmts.x, "float test")
        checkpoint(out / "float.pt")
        qmodel = model.quantized_copy(fmts)
    else:
        qmodel = model
        metrics.setdefault("float", {"accuracy": None, "note": "float phase measured in an earlier process"})
    metrics["qat"] = evaluate(qmodel, test, args, device, fmts.x, "qat test (integer path)", path="int")
    metrics["qat_fake_quant"] = evaluate(qmodel, test, args, device, fmts.x, "qat test (fake-quant)", path="float")
    print(f"[train] float test acc {metrics['float'].get('accuracy')}, QAT (integer path) test acc "
          f"{metrics['qat']['accuracy']:.4f}, fake-quant {metrics['qat_fake_quant']['accuracy']:.4f} "
          f"(n={metrics['qat']['n']})")
    checkpoint(ck_path)

    from .export import bundle_from_model, evaluate_sim, git_commit
    meta = {"task": args.task, "data": data_meta, "metrics": metrics, "train_args": vars(args),
            "input": {"kind": info.kind, "frame": args.frame, "encoder": info.encoder},
            "formats": fmts.to_json(), "git_commit": git_commit(), "source": "python -m models.train"}
    bundle = bundle_from_model(qmodel.cpu(), meta=json.loads(json.dumps(meta, default=str)))
    if not args.no_sim:
        try:
            metrics["sim"] = evaluate_sim(bundle, test, frame=args.frame, batch=args.eval_batch_size)
            print(f"[train] sim/ test acc {metrics['sim']['accuracy']:.4f} (n={metrics['sim']['n']})")
        except (ImportError, AttributeError) as e:
            metrics["sim"] = {"accuracy": None, "note": f"sim/ not usable: {e}"}
        bundle.meta["metrics"] = json.loads(json.dumps(metrics, default=str))
    summary = {"task": args.task, "arch": arch.to_json(), "params": n_params,
               "memory_bits": memory_footprint(arch, fmts), "data": data_meta,
               "float_test_acc": metrics["float"].get("accuracy"), "qat_test_acc": metrics["qat"]["accuracy"],
               "qat_fake_quant_test_acc": metrics["qat_fake_quant"]["accuracy"],
               "sim_test_acc": metrics.get("sim", {}).get("accuracy"), "n_test": metrics["qat"]["n"],
               "metrics": metrics, "history": history, "args": vars(args), "device": str(device),
               "wall_s": round(time.time() - t_start, 1), "git_commit": meta["git_commit"]}
    (out / "metrics.json").write_text(json.dumps(summary, indent=1, default=str))
    if args.export:
        from spec.bundle import save_bundle
        bundle.meta["accuracy"] = {"float": summary["float_test_acc"], "qat": summary["qat_test_acc"],
                                   "sim": summary["sim_test_acc"], "n_test": summary["n_test"], "split": "test"}
        p = save_bundle(bundle, args.export)
        print(f"[train] wrote bundle {p}")
    print(f"[train] metrics in {out / 'metrics.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
