"""ListOps (LRA): generator with LRA's parameters, the published TSV format, and its token vocabulary.

Generator (own code, following the parameters and sampling rule of LRA's `lra_benchmarks/data/listops.py`,
Tay et al. 2021; task from Nangia & Bowman 2018):
  * operators MIN, MAX, MED (median, `int(np.median)`, i.e. the mean of the two middle values rounded
    down for an even count), SM (sum modulo 10); values 0..9;
  * a node at depth < max_depth (root depth 1) is an operator with probability 0.25, else a value; at
    max_depth it is a value; an operator takes 2..max_args arguments (uniform);
  * length = number of tokens without parentheses (operator, values, ']'); kept only if
    min_length < length < max_length (strictly, as LRA), defaults max_depth 10, max_args 10, 500, 2000;
  * examples within one call are distinct (LRA draws a set).
  The root is drawn as an operator directly (a bare value can never reach the length range, so this
  equals LRA's rejection of such trees) and a tree is abandoned as soon as it exceeds max_length.

TSV format (as LRA publishes `basic_{train,val,test}.tsv`): header 'Source<TAB>Target', then one
example a line: the expression with LRA's parentheses, e.g.
  ( ( ( [MAX 2 ) 9 ) ] )<TAB>9
(LRA's `to_string` writes a left-nested '(' ... ')' around every operator/argument pair.)

Vocabulary (token ids, int16):  0 <pad>, 1..10 digits '0'..'9', 11 '[MIN', 12 '[MAX', 13 '[MED',
14 '[SM', 15 ']'. Parentheses are dropped: they carry no information (the bracket tokens delimit
every operator) and LRA's own pipeline drops them too. Note: LRA's original tokenizer
(tfds `Tokenizer`, alphanumeric only) also dropped ']'; we keep it, as later work (S4) does, because
without it the expression is ambiguous. Sequences are padded with 0 to `max_len` (LRA: 2000).
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np

from .core import DataError, Dataset, cached_dataset, class_counts, limit_index, pad_sequences

OPERATORS = ["[MIN", "[MAX", "[MED", "[SM"]
END = "]"
VALUE_P = 0.25
PAD = 0
VOCAB = ["<pad>"] + [str(d) for d in range(10)] + OPERATORS + [END]
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
CLASSES = [str(d) for d in range(10)]
LRA_SIZES = {"train": 96000, "val": 2000, "test": 2000}
LRA_MAX_LEN = 2000
CITATION = ("Y. Tay et al., 'Long Range Arena: A Benchmark for Efficient Transformers', ICLR 2021; "
            "N. Nangia and S. Bowman, 'ListOps: A Diagnostic Dataset for Latent Tree Learning', NAACL SRW 2018")

LAYOUT = """  <root>/basic_train.tsv, <root>/basic_val.tsv, <root>/basic_test.tsv   (LRA's lra_release/listops-1000)
  each: header 'Source<TAB>Target', lines '<expression><TAB><0..9>'"""


# --------------------------------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------------------------------

class _TooLong(Exception):
    pass


def _gen_tree(rng: random.Random, depth: int, max_depth: int, max_args: int, budget: list[int],
              force_op: bool = False):
    """Tree as an int (value) or a list [op, arg, arg, ...]; budget[0] counts tokens left."""
    if force_op or (depth < max_depth and rng.random() <= VALUE_P):
        budget[0] -= 2
        if budget[0] < 0:
            raise _TooLong
        n = 2 + int(rng.random() * (max_args - 1))  # uniform on 2..max_args
        args = [_gen_tree(rng, depth + 1, max_depth, max_args, budget) for _ in range(n)]
        op = OPERATORS[int(rng.random() * len(OPERATORS))]
        return [op] + args
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLong
    return int(rng.random() * 10)


def tree_value(t) -> int:
    if isinstance(t, int):
        return t
    op, args = t[0], [tree_value(a) for a in t[1:]]
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        s = sorted(args)
        k = len(s)
        return s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) // 2
    if op == "[SM":
        return sum(args) % 10
    raise DataError(f"unknown ListOps operator {op!r}")


def tree_tokens(t) -> list[str]:
    if isinstance(t, int):
        return [str(t)]
    out = [t[0]]
    for a in t[1:]:
        out += tree_tokens(a)
    return out + [END]


def tree_lra_string(t) -> str:
    """LRA's `to_string`: ((((op, a1), a2), ...), ']') with '( x y )' around every pair."""
    if isinstance(t, int):
        return str(t)
    s = f"( {t[0]} {tree_lra_string(t[1])} )"
    for a in t[2:]:
        s = f"( {s} {tree_lra_string(a)} )"
    return f"( {s} ] )"


def generate_listops(n: int, seed: int = 0, max_depth: int = 10, max_args: int = 10, min_length: int = 500,
                     max_length: int = 2000, exclude: set | None = None,
                     progress: bool = True) -> list[tuple[str, int]]:
    """`n` distinct ListOps examples as (LRA source string, label). Deterministic for a given seed."""
    if min_length + 1 >= max_length:
        raise DataError(f"ListOps: empty length range ({min_length}, {max_length})")
    rng = random.Random(seed)  # Python's Mersenne Twister: fast scalar draws, stable across versions
    seen = set(exclude or ())
    out = []
    bar = None
    if progress and n >= 5000:
        from tqdm import tqdm
        bar = tqdm(total=n, desc="generating ListOps", unit="ex", leave=False)
    while len(out) < n:
        budget = [max_length - 1]
        try:
            t = _gen_tree(rng, 1, max_depth, max_args, budget, force_op=True)
        except _TooLong:
            continue
        length = max_length - 1 - budget[0]
        if not (min_length < length < max_length):
            continue
        s = tree_lra_string(t)
        if s in seen:
            continue
        seen.add(s)
        out.append((s, tree_value(t)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return out


def write_listops_tsv(path: Path | str, examples: list[tuple[str, int]]) -> Path:
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["Source", "Target"])
        w.writerows([[s, int(v)] for s, v in examples])
    return path


def generate_listops_files(out_dir: Path | str, sizes: dict[str, int] | None = None, seed: int = 0,
                           **kw) -> dict[str, Path]:
    """Write basic_{train,val,test}.tsv (LRA layout) with distinct examples across all splits."""
    sizes = sizes or LRA_SIZES
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seen: set = set()
    paths = {}
    for i, split in enumerate(("train", "val", "test")):
        ex = generate_listops(sizes[split], seed=seed * 3 + i, exclude=seen, **kw)
        seen.update(s for s, _ in ex)
        paths[split] = write_listops_tsv(out_dir / f"basic_{split}.tsv", ex)
    return paths


# --------------------------------------------------------------------------------------------------
# tokens, evaluation, loading
# --------------------------------------------------------------------------------------------------

def tokenize(source: str, where: str = "<string>") -> np.ndarray:
    """Token ids of an expression (LRA string with or without parentheses)."""
    ids = []
    for tok in source.split():
        if tok in ("(", ")"):
            continue
        i = TOKEN_ID.get(tok)
        if i is None or i == PAD:
            raise DataError(f"{where}: unknown ListOps token {tok!r} (vocabulary: {VOCAB[1:]})")
        ids.append(i)
    return np.asarray(ids, dtype=np.int16)


def evaluate_tokens(ids) -> int:
    """Value of a token-id sequence (padding ignored); DataError if it is not one well-formed expression."""
    stack: list[list] = []
    result = None
    for i in np.asarray(ids).tolist():
        if i == PAD:
            continue
        tok = VOCAB[i]
        if result is not None:
            raise DataError("ListOps: tokens after the end of the expression")
        if tok in OPERATORS:
            stack.append([tok])
        elif tok == END:
            if not stack or len(stack[-1]) < 2:
                raise DataError("ListOps: ']' without an operator or with no argument")
            v = tree_value(stack.pop())
            if stack:
                stack[-1].append(v)
            else:
                result = v
        else:
            if not stack:
                if result is None and len(np.asarray(ids).nonzero()[0]) == 1:
                    return int(tok)
                raise DataError("ListOps: value outside any operator")
            stack[-1].append(int(tok))
    if stack or result is None:
        raise DataError("ListOps: unterminated expression")
    return int(result)


def read_listops_tsv(path: Path | str) -> tuple[list[np.ndarray], np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing ListOps file {path}; expected layout:\n{LAYOUT}")
    seqs, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if not lines or lines[0].rstrip("\r") != "Source\tTarget":
        raise DataError(f"{path}:1: header must be 'Source<TAB>Target', got {lines[0][:60]!r}" if lines
                        else f"{path}: empty file")
    for i, line in enumerate(lines[1:], 2):
        line = line.rstrip("\r")
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) != 2:
            raise DataError(f"{path}:{i}: expected 2 tab-separated fields (Source, Target), got {len(parts)}")
        src, tgt = parts
        try:
            label = int(tgt)
        except ValueError:
            raise DataError(f"{path}:{i}: bad label {tgt!r} (must be an integer 0..9)") from None
        if not 0 <= label <= 9:
            raise DataError(f"{path}:{i}: bad label {label} (must be 0..9)")
        seqs.append(tokenize(src, f"{path}:{i}"))
        labels.append(label)
    if not seqs:
        raise DataError(f"{path}: no examples")
    return seqs, np.asarray(labels, dtype=np.int64)


def load_listops(root: Path | str | None = None, split: str = "train", limit: int | None = None,
                 max_len: int | None = LRA_MAX_LEN, check_labels: bool = False, seed: int = 0,
                 task_prefix: str = "basic") -> Dataset:
    """ListOps from `root` (LRA TSV layout, or a single .tsv file) or, with root=None, freshly generated.

    max_len    pad to this length (LRA: 2000); a longer sequence raises DataError (never cut).
               None pads to the longest sequence.
    check_labels  evaluate every expression and raise DataError where the label disagrees.
    root=None  generates `limit` (default: LRA's 96000/2000/2000) examples for the split, seed
               `seed*3 + {train:0, val:1, test:2}`. Examples are distinct within a split; across splits
               a repeat of a 500..2000-token random tree is practically impossible (generate_listops_files
               excludes it outright).
    """
    if split not in ("train", "val", "test"):
        raise DataError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if root is None:
        n = LRA_SIZES[split] if limit is None else limit
        gen_seed = seed * 3 + ("train", "val", "test").index(split)

        def build() -> Dataset:
            ex = generate_listops(n, seed=gen_seed)
            return _make_dataset([tokenize(s) for s, _ in ex], np.asarray([v for _, v in ex], dtype=np.int64),
                                 [f"generated:seed{gen_seed}:{i}" for i in range(len(ex))],
                                 f"generated (data.listops, seed {gen_seed}, LRA parameters)",
                                 split, limit, max_len, check_labels)
        if n >= 2000:
            return cached_dataset("listops", {"generated": True, "seed": gen_seed, "n": n, "max_len": max_len,
                                              "params": [10, 10, 500, 2000]}, build)
        return build()
    root = Path(root)
    path = root if root.is_file() else root / f"{task_prefix}_{split}.tsv"
    if not root.exists():
        raise DataError(f"ListOps data root {root} does not exist; expected layout:\n{LAYOUT}")
    seqs, y = read_listops_tsv(path)
    sel = limit_index(len(seqs), limit)
    return _make_dataset([seqs[i] for i in sel], y[sel], [f"{path.name}:{int(i) + 2}" for i in sel],
                         str(path.resolve()), split, limit, max_len, check_labels)


def _make_dataset(seqs, y, ids, source, split, limit, max_len, check_labels) -> Dataset:
    lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
    if max_len is None:
        max_len = int(lengths.max()) if len(lengths) else 0
    too_long = np.flatnonzero(lengths > max_len)
    if len(too_long):
        raise DataError(f"{ids[too_long[0]]}: {lengths[too_long[0]]} tokens, more than max_len={max_len} "
                        f"({len(too_long)} such examples); nothing is truncated: raise max_len or pass None")
    if check_labels:
        for s, lab, i in zip(seqs, y, ids, strict=True):
            v = evaluate_tokens(s)
            if v != lab:
                raise DataError(f"{i}: bad label {lab}: the expression evaluates to {v}")
    meta = {"task": "listops", "source": source, "split": split, "n": len(seqs),
            "class_counts": class_counts(y, CLASSES), "vocab": VOCAB, "pad_id": PAD, "max_len": max_len,
            "length_range": [int(lengths.min()), int(lengths.max())] if len(seqs) else None,
            "limit": limit, "licence": "generated data (LRA: Apache-2.0 code)", "citation": CITATION}
    return Dataset(pad_sequences(seqs, max_len, np.int16, PAD), y, lengths, list(CLASSES),
                   np.asarray(ids, dtype=str), meta)
