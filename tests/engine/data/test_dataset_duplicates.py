"""engine/data/duplicates.py: planted exact and near duplicates and leakage are found; signatures and LSH
candidates are those of datasketch."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tunedeck.engine.data.duplicates import (
    LSH_WEIGHTS,
    _bands,
    _candidate_pairs,
    _Signer,
    find_duplicates,
    normalise,
    row_text,
    shingle_hashes,
)

VOCAB = [f"w{i}" for i in range(3000)]


def chat(user: str, answer: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def random_rows(n: int, seed: int = 0, words: int = 60) -> list[dict]:
    rng = random.Random(seed)
    return [
        chat(" ".join(rng.choices(VOCAB, k=words // 2)), " ".join(rng.choices(VOCAB, k=words // 2))) for _ in range(n)
    ]


def tweak(row: dict, index: int, word: str = "CHANGED") -> dict:
    answer = row["messages"][1]["content"].split()
    answer[index] = word
    return chat(row["messages"][0]["content"], " ".join(answer))


def test_planted_exact_and_near_duplicates():
    rows = random_rows(300)
    rows.append(
        chat("  " + rows[5]["messages"][0]["content"].upper(), rows[5]["messages"][1]["content"] + "\n")
    )  # line 301
    rows.append(tweak(rows[10], 7))  # line 302
    rows.append(tweak(rows[10], 20, "OTHER"))  # line 303
    rows.append(rows[10])  # line 304
    report = find_duplicates(rows)
    assert report.exact == [[6, 301], [11, 304]]
    assert report.near == [[11, 302, 303, 304]]
    assert report.exact_extra_rows == 2 and report.leakage == []


def test_lines_are_reported_not_indices():
    rows = random_rows(4)
    rows.append(rows[0])
    report = find_duplicates(rows, [3, 9, 12, 20, 41])
    assert report.exact == [[3, 41]]


def test_distinct_rows_are_not_near_duplicates():
    assert find_duplicates(random_rows(500, seed=2)).near == []


def test_threshold_controls_near_matches():
    rows = random_rows(50, seed=4)
    base = rows[0]["messages"][1]["content"].split()
    half = " ".join(base[:15] + [f"x{i}" for i in range(15)])  # about half of the shingles change
    rows.append(chat(rows[0]["messages"][0]["content"], half))
    assert find_duplicates(rows, threshold=0.8).near == []
    assert find_duplicates(rows, threshold=0.3).near == [[1, 51]]
    with pytest.raises(ValueError):
        find_duplicates(rows, threshold=0)


def test_leakage_against_a_separate_eval_file():
    train = random_rows(200, seed=6)
    other = random_rows(3, seed=99)
    evals = [other[0], train[20], tweak(train[30], 3), other[1]]
    report = find_duplicates(train, eval_rows=evals, eval_lines=[5, 6, 7, 8])
    leaks = [(leak.eval_line, leak.train_lines, leak.kind) for leak in report.leakage]
    assert leaks == [(6, [21], "exact"), (7, [31], "near")]
    assert report.leakage[1].similarity >= 0.8 and report.to_dict()["leakage"][0]["eval_line"] == 6


def test_leakage_within_a_split():
    rows = random_rows(100, seed=8)
    rows.append(tweak(rows[40], 2))  # index 100, line 101
    report = find_duplicates(rows, eval_indices=[100, 3])
    assert [(leak.eval_line, leak.train_lines, leak.kind) for leak in report.leakage] == [(101, [41], "near")]
    # both sides in eval: no leak
    assert find_duplicates(rows, eval_indices=[40, 100]).leakage == []


def test_all_canonical_shapes_have_text():
    assert row_text({"text": "Hi"}) == "Hi"
    assert row_text({"prompt": "a", "completion": "b"}) == "a\nb"
    pref = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": [{"role": "assistant", "content": "y"}],
        "rejected": [{"role": "assistant", "content": "n"}],
    }
    assert row_text(pref) == "user: q\nassistant: y\nassistant: n"
    assert normalise("  A\tb \n C ") == "a b c"
    report = find_duplicates([{"text": "A  b"}, {"text": "a b"}, {"text": ""}, {"text": " "}, {"text": "one"}])
    assert report.exact == [[1, 2], [3, 4]]


def test_shingles_of_short_and_empty_texts():
    h, owner = shingle_hashes(["a b c d", "", "x y", "x y", "y x"], 3)
    assert owner.tolist() == [0, 0, 2, 3, 4]
    assert h[2] == h[3] and h[3] != h[4]  # short texts are one ordered shingle


def test_signatures_equal_datasketch_minhash():
    from datasketch import MinHash

    texts = [normalise(row_text(r)) for r in random_rows(20, seed=9)] + ["hi there", ""]
    signer = _Signer(64, 3)
    sig, has = signer.sign(texts)
    hashes, owner = shingle_hashes(texts, 3)
    for i in range(len(texts)):
        m = MinHash(num_perm=64, hashfunc=lambda x: x)
        m.update_batch(hashes[owner == i].tolist())
        assert np.array_equal(m.hashvalues, sig[i]) and has[i] == (i < len(texts) - 1)


def test_candidates_equal_minhashlsh_queries():
    from datasketch import MinHash, MinHashLSH

    rows = random_rows(150, seed=10)
    rows += [tweak(rows[i], j, f"c{j}") for i in range(0, 150, 7) for j in (1, 9)]
    texts = [normalise(row_text(r)) for r in rows]
    signer = _Signer(64, 3)
    sig, has = signer.sign(texts)
    lsh = MinHashLSH(threshold=0.8, num_perm=64, weights=LSH_WEIGHTS)
    minhashes = [MinHash(hashvalues=s, permutations=signer.template.permutations, scheme="affine32") for s in sig]
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    expected = {(min(i, j), max(i, j)) for i, m in enumerate(minhashes) for j in lsh.query(m) if i != j}
    ours = {tuple(p) for p in _candidate_pairs(sig, has, _bands(64, 0.8)).tolist()}
    assert ours == expected and len(ours) >= 40


def test_recall_of_one_word_edits():
    rows = random_rows(400, seed=12)
    rows += [tweak(rows[i], 5 + i % 20) for i in range(200)]  # 200 pairs at Jaccard about 0.9
    near = find_duplicates(rows).near
    assert len(near) >= 196 and all(len(c) == 2 for c in near)


def test_progress_reaches_the_end():
    seen = []
    find_duplicates(random_rows(10), progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (3, 3)
