import numpy as np
import pytest

from evaluate import ablate, is_correct, normalise, score


@pytest.mark.parametrize("task, answer, gold, expected", [
    ("exact", "D minor.", "d minor", True),
    ("exact", "It is in D minor.", "D minor", False),
    ("contains", "The loudest instrument is the cello.", "cello", True),
    ("contains", "The loudest instrument is the violoncello.", "cello", False),  # whole words only
    ("contains", "In 6/8 time.", "6/8", True),
    ("contains", "F# minor", "f# minor", True),
])
def test_is_correct(task, answer, gold, expected):
    assert is_correct(task, answer, gold) is expected


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task"):
        is_correct("bleu", "a", "b")


def test_shuffled_ablation_is_a_seeded_derangement():
    features = [np.full((2, 3), i, np.float32) for i in range(10)]
    shuffled = ablate(features, "shuffled", seed=0)
    assert all(s[0, 0] != i for i, s in enumerate(shuffled))
    assert sorted(s[0, 0] for s in shuffled) == list(range(10))
    assert all((a == b).all() for a, b in zip(shuffled, ablate(features, "shuffled", seed=0)))
    assert all((z == 0).all() and z.shape == f.shape for z, f in zip(ablate(features, "zeroed", 0), features))


def test_score_counts_per_task():
    items = [{"task": "contains", "gold": "cello"}, {"task": "contains", "gold": "organ"}, {"task": "exact", "gold": "x"}]
    result = score(items, ["the cello", "the flute", "X"])
    assert result == {"contains": {"n": 2, "correct": 1, "accuracy": 0.5}, "exact": {"n": 1, "correct": 1, "accuracy": 1.0}}
    assert normalise("  The  CELLO! ") == "the cello"
