"""ListOps: generator (LRA parameters, values checked by an independent evaluator), TSV loader, errors."""
import numpy as np
import pytest

from data import DataError, load_task
from data.listops import (
    OPERATORS,
    VOCAB,
    evaluate_tokens,
    generate_listops,
    generate_listops_files,
    load_listops,
    tokenize,
)


def _parse(source: str):
    """Independent parser of LRA's parenthesised string: returns (value, depth, max args, n tokens)."""
    toks = [t for t in source.split() if t not in ("(", ")")]
    pos = 0

    def node(depth):
        nonlocal pos
        t = toks[pos]
        pos += 1
        if t.isdigit():
            return int(t), depth, 0
        assert t in ("[MIN", "[MAX", "[MED", "[SM"), t
        vals, dmax, amax = [], depth, 0
        while toks[pos] != "]":
            v, d, a = node(depth + 1)
            vals.append(v)
            dmax, amax = max(dmax, d), max(amax, a)
        pos += 1
        s = sorted(vals)
        value = {"[MIN": min(vals), "[MAX": max(vals), "[SM": sum(vals) % 10,
                 "[MED": s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) // 2}[t]
        return value, dmax, max(amax, len(vals))

    v, d, a = node(1)
    assert pos == len(toks)
    return v, d, a, len(toks)


def test_generator_values_lengths_and_lra_parameters():
    ex = generate_listops(60, seed=3)
    ops = set()
    for src, label in ex:
        v, depth, max_args, n = _parse(src)
        assert v == label
        assert 500 < n < 2000          # LRA keeps min_length < length < max_length
        assert depth <= 10 and max_args <= 10
        assert evaluate_tokens(tokenize(src)) == label
        assert src.startswith("( ") and src.endswith(" ] )")  # LRA's to_string form
        ops.update(t for t in src.split() if t.startswith("["))
    assert ops == set(OPERATORS)
    assert len({s for s, _ in ex}) == 60  # distinct


def test_generator_deterministic_by_seed():
    assert generate_listops(5, seed=11) == generate_listops(5, seed=11)
    assert generate_listops(5, seed=11) != generate_listops(5, seed=12)


def test_median_rounds_down_like_lra():
    assert evaluate_tokens(tokenize("[MED 3 4 ]")) == 3      # int(np.median([3, 4])) == 3
    assert evaluate_tokens(tokenize("[MED 3 6 ]")) == 4
    assert evaluate_tokens(tokenize("[SM 9 9 5 ]")) == 3
    assert evaluate_tokens(tokenize("( ( ( [MAX 2 ) 9 ) ] )")) == 9


def test_vocabulary():
    assert VOCAB == ["<pad>", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "[MIN", "[MAX", "[MED", "[SM", "]"]
    assert tokenize("( ( [MIN 0 ) 9 ] )").tolist() == [11, 1, 10, 15]


def test_fixture_files_and_labels():
    tr = load_task("listops", root="fixture", split="train", check_labels=True)
    assert tr.x.shape == (12, 2000) and tr.x.dtype == np.int16 and tr.y.dtype == np.int64
    assert np.all((tr.lengths > 500) & (tr.lengths < 2000))
    for i in range(len(tr)):
        assert np.all(tr.x[i, tr.lengths[i]:] == 0) and np.all(tr.x[i, : tr.lengths[i]] > 0)
        assert evaluate_tokens(tr.x[i]) == tr.y[i]
    for s, n in (("val", 4), ("test", 4)):
        assert len(load_task("listops", root="fixture", split=s, check_labels=True)) == n


def test_generated_task_and_file_round_trip(tmp_path):
    ds = load_task("listops", split="val", limit=8, seed=5)
    assert len(ds) == 8 and ds.meta["source"].startswith("generated")
    assert all(evaluate_tokens(ds.x[i]) == ds.y[i] for i in range(8))
    paths = generate_listops_files(tmp_path, sizes={"train": 5, "val": 2, "test": 2}, seed=9)
    assert paths["train"].read_text().splitlines()[0] == "Source\tTarget"
    back = load_listops(tmp_path, split="train", check_labels=True)
    assert len(back) == 5 and back.meta["source"].endswith("basic_train.tsv")
    srcs = set()
    for s in ("train", "val", "test"):
        srcs |= {line.split("\t")[0] for line in paths[s].read_text().splitlines()[1:]}
    assert len(srcs) == 9  # distinct across splits


@pytest.mark.parametrize("content, message", [
    ("Src\tTgt\n( [MIN 1 2 ] )\t1\n", "header must be 'Source<TAB>Target'"),
    ("Source\tTarget\n( ( [MIN 1 ) 2 ] )\t1\t5\n", "expected 2 tab-separated fields"),
    ("Source\tTarget\n( ( [MIN 1 ) 2 ] )\tone\n", "bad label 'one'"),
    ("Source\tTarget\n( ( [MIN 1 ) 2 ] )\t10\n", "bad label 10"),
    ("Source\tTarget\n( ( [AVG 1 ) 2 ] )\t1\n", "unknown ListOps token '[AVG'"),
    ("Source\tTarget\n", "no examples"),
    ("", "header must be"),
])
def test_tsv_malformed(tmp_path, content, message):
    (tmp_path / "basic_train.tsv").write_text(content)
    with pytest.raises(DataError) as e:
        load_listops(tmp_path, split="train")
    assert message in str(e.value)


def test_tsv_wrong_label_and_length_errors(tmp_path):
    (tmp_path / "basic_train.tsv").write_text("Source\tTarget\n( ( [MAX 1 ) 2 ] )\t1\n")
    assert len(load_listops(tmp_path, split="train")) == 1
    with pytest.raises(DataError, match="bad label 1: the expression evaluates to 2"):
        load_listops(tmp_path, split="train", check_labels=True)
    with pytest.raises(DataError, match="more than max_len=3"):
        load_listops(tmp_path, split="train", max_len=3)
    with pytest.raises(DataError, match="missing ListOps file"):
        load_listops(tmp_path, split="test")
    with pytest.raises(DataError, match="does not exist"):
        load_listops(tmp_path / "nope", split="test")
