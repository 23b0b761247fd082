"""Boosted trees as JSON arrays (llark/encoders/boosted_trees.py): the form of the beat-level and meter models."""

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from llark.encoders.boosted_trees import BoostedTrees, TreesError, fit_trees


def corners(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Rows whose class is the quadrant of their first two values (an XOR: no line separates it)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (count, 5))
    names = np.array(["a", "b", "c", "d"])[(x[:, 0] > 0).astype(int) * 2 + (x[:, 1] > 0).astype(int)]
    return x, names.tolist()


def test_one_row_and_many_rows_read_the_same_scores_as_scikit_learn():
    x, labels = corners(500, seed=0)
    trees = fit_trees(x, labels, stages=40)
    held, held_labels = corners(100, seed=1)
    many = trees.scores(held)
    one_by_one = np.stack([trees.scores(row) for row in held])
    assert many.shape == (100, 4) and np.array_equal(many, one_by_one)
    booster = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False,
                                             random_state=0).fit(x, np.asarray(labels))
    np.testing.assert_allclose(trees.probabilities(held), booster.predict_proba(held), atol=1e-9)
    assert trees.predict(held) == booster.predict(held).tolist() and trees.predict(held[0]) == trees.predict(held)[0]
    assert np.mean(np.array(trees.predict(held)) == np.array(held_labels)) > 0.9
    with pytest.raises(ValueError, match="expected 5 rhythm descriptors"):
        trees.scores(np.zeros((3, 4)))


def test_json_round_trip_keeps_the_scores_and_the_fingerprint():
    x, labels = corners(200, seed=2)
    trees = fit_trees(x, labels, stages=10)
    again = BoostedTrees.from_json(json.loads(json.dumps(trees.to_json())))
    assert again.classes == trees.classes == ("a", "b", "c", "d") and again.fingerprint() == trees.fingerprint()
    np.testing.assert_array_equal(again.scores(x[:20]), trees.scores(x[:20]))
    assert fit_trees(x[1:], labels[1:], stages=10).fingerprint() != trees.fingerprint()


def test_two_classes_get_a_constant_first_tree_and_one_class_is_refused():
    x, labels = corners(200, seed=3)
    two = ["left" if label in ("a", "b") else "right" for label in labels]
    trees = fit_trees(x, two, stages=5)
    assert all(len(stage) == 2 and stage[0]["value"].tolist() == [0.0] for stage in trees.trees)
    assert trees.predict(np.array([[2.0, 0, 0, 0, 0], [-2.0, 0, 0, 0, 0]])) == ["right", "left"]
    with pytest.raises(ValueError, match="two or more classes"):
        fit_trees(x, ["a"] * len(x))


def test_trees_that_cannot_be_applied_are_refused():
    x, labels = corners(100, seed=4)
    good = fit_trees(x, labels, stages=3).to_json()
    for change, message in ((lambda raw: raw.update(classes=["a", "a", "b", "c"]), "not two or more distinct classes"),
                            (lambda raw: raw["trees"][1].pop(), "inconsistent shapes"),
                            (lambda raw: raw["trees"][0][0]["right"].__setitem__(0, 99), "points outside it"),
                            (lambda raw: raw["trees"][0][0]["feature"].__setitem__(0, 5), "a descriptor beyond 5"),
                            (lambda raw: raw["trees"][0][0]["left"].pop(), "arrays differ in length")):
        raw = json.loads(json.dumps(good))
        change(raw)
        with pytest.raises(TreesError, match=message):
            BoostedTrees.from_json(raw)
