"""Gradient-boosted trees stored as JSON arrays and applied with numpy: the MIR encoder's fitted classifiers
over the rhythm descriptors (the beat level, llark/encoders/beat_level.py; the meter, meter_model.py).

    trees = fit_trees(descriptors, labels)            # scikit-learn's HistGradientBoostingClassifier, exported
    trees.probabilities(descriptors[0])               # [len(trees.classes)], in the order of trees.classes
    raw = trees.to_json(); BoostedTrees.from_json(raw)   # what the model files hold (from_json checks every tree)

A tree is five arrays over its nodes: the descriptor a node splits on, its threshold (a row goes left when its
value is at most the threshold), the left and right children (-1 at a leaf) and a leaf's value. A class's
score is its initial score plus the leaf values its trees reach at every boosting stage; the probabilities are
the softmax of the scores. With two classes scikit-learn grows one tree per stage, for the second class; the
first class then gets a tree that is one leaf of value 0, so every stage holds one tree per class.

scikit-learn keeps a fitted HistGradientBoostingClassifier's trees in a private attribute (`_predictors`: each
tree's nodes as a record array). `fit_trees` reads it and then checks that the exported trees give the
classifier's own decision values on every row it was fitted on, so a scikit-learn that stores its trees
otherwise makes the fit fail loudly, never a model file that reads differently. It is a histogram booster,
40x faster to fit than GradientBoostingClassifier on the beat-level corpus (8,640 clips: 7 s against 5 min)
and as accurate or better there (docs/demo-experiments.md); applying the trees needs numpy alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from llark.jsonl import write_json_atomic

TREE_FIELDS = ("feature", "threshold", "left", "right", "value")
STAGES = 200  # boosting stages (one tree per class each), learning rate 0.1, at most 15 leaves a tree
MAX_LEAVES = 15
LEARNING_RATE = 0.1


class TreesError(ValueError):
    """Stored trees that cannot be applied; the message says what is wrong (callers add the file)."""


@dataclass(frozen=True)
class BoostedTrees:
    classes: tuple[Any, ...]  # JSON scalars: a meter ("6/8"), a beat level ("3/2")
    initial: np.ndarray  # [classes] scores before any tree
    trees: list[list[dict[str, np.ndarray]]]  # [stage][class] {feature, threshold, left, right, value}
    features: int  # descriptors per row

    def scores(self, descriptors: np.ndarray) -> np.ndarray:
        """[classes] raw scores (log-odds up to a constant) for one row of descriptors, or [rows, classes] for
        a [rows, features] array (the trees walked for all rows at once: a fit checks thousands)."""
        rows = np.asarray(descriptors, dtype=np.float64)
        if rows.shape[-1:] != (self.features,) or rows.ndim not in (1, 2):
            raise ValueError(f"expected {self.features} rhythm descriptors, got shape {rows.shape}")
        if rows.ndim == 1:  # one row (the encoder's case): a walk over plain lists, 5x faster than over arrays
            row, scores = rows.tolist(), self.initial.tolist()
            for stage in self._tree_lists:
                for index, (feature, threshold, left, right, value) in enumerate(stage):
                    node = 0
                    while left[node] >= 0:
                        node = left[node] if row[feature[node]] <= threshold[node] else right[node]
                    scores[index] += value[node]
            return np.asarray(scores)
        scores = np.broadcast_to(self.initial.astype(np.float64), (len(rows), len(self.classes))).copy()
        for stage in self.trees:
            for index, tree in enumerate(stage):
                scores[:, index] += _leaf_values(tree, rows)
        return scores

    @cached_property
    def _tree_lists(self) -> list[list[tuple[list, ...]]]:
        return [[tuple(tree[name].tolist() for name in TREE_FIELDS) for tree in stage] for stage in self.trees]

    def probabilities(self, descriptors: np.ndarray) -> np.ndarray:
        """[classes] float64 in the order of `classes`, summing to 1 ([rows, classes] for [rows, features])."""
        scores = self.scores(descriptors)
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return weights / weights.sum(axis=-1, keepdims=True)

    def predict(self, descriptors: np.ndarray) -> Any:
        """The likeliest class for one row ([rows] of them for [rows, features])."""
        best = np.argmax(self.scores(descriptors), axis=-1)
        return self.classes[int(best)] if best.ndim == 0 else [self.classes[k] for k in best]

    def to_json(self) -> dict[str, Any]:
        return {"classes": list(self.classes), "initial": self.initial.tolist(), "features": self.features,
                "trees": [[{name: tree[name].tolist() for name in TREE_FIELDS} for tree in stage] for stage in self.trees]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BoostedTrees:
        """Trees from `to_json`'s form; raises KeyError/TypeError/ValueError on a wrong form, TreesError on a
        tree that cannot be applied (a child outside the tree or before its parent, a split on a descriptor
        that does not exist, a non-finite leaf) or on shapes that do not agree."""
        trees = [[{name: np.asarray(tree[name], float if name in ("threshold", "value") else int) for name in TREE_FIELDS}
                  for tree in stage] for stage in raw["trees"]]
        model = cls(tuple(raw["classes"]), np.asarray(raw["initial"], float), trees, int(raw["features"]))
        if len(set(model.classes)) != len(model.classes) or len(model.classes) < 2:
            raise TreesError(f"classes {list(model.classes)} are not two or more distinct classes")
        if model.initial.shape != (len(model.classes),) or any(len(stage) != len(model.classes) for stage in trees):
            raise TreesError(f"inconsistent shapes ({len(model.classes)} classes, initial scores {model.initial.shape}, "
                             f"stages of {sorted({len(s) for s in trees})} trees)")
        for stage in trees:
            for tree in stage:
                _check_tree(tree, model.features)
        return model

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the classes and trees: what encoder records keep
        (`MIRFeatureEncoder.fitted`), so features of two fits are never mixed."""
        return hashlib.sha256(json.dumps(self.to_json()).encode()).hexdigest()[:16]


def read_model_file(path: Path, what: str, fitted_by: str, error: type[ValueError]) -> tuple[BoostedTrees, dict]:
    """The trees and provenance of a model file `write_model_file` wrote; any problem is raised as `error`,
    naming the file (`what`: "meter model"; `fitted_by`: the script that writes it)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return BoostedTrees.from_json(raw), dict(raw.get("provenance", {}))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found ({fitted_by} writes it)") from None
    except TreesError as err:
        raise error(f"{path}: {err}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise error(f"{path}: not a {what} ({type(err).__name__}: {err})") from None


def write_model_file(path: str | Path, trees: BoostedTrees, provenance: dict[str, Any]) -> None:
    """The trees (`to_json`) and how they were fitted, as one JSON file, written atomically."""
    write_json_atomic(path, {**trees.to_json(), "provenance": provenance})


def _leaf_values(tree: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The leaf value each row of [rows, features] reaches, the rows walked down one level at a time."""
    node = np.zeros(len(rows), dtype=int)
    inner = tree["left"][node] >= 0
    while inner.any():
        at = node[inner]
        goes_left = rows[inner, tree["feature"][at]] <= tree["threshold"][at]
        node[inner] = np.where(goes_left, tree["left"][at], tree["right"][at])
        inner = tree["left"][node] >= 0
    return tree["value"][node]


def _check_tree(tree: dict[str, np.ndarray], features: int) -> None:
    """Every child after its parent (so a descent ends) and within the tree; every split on a descriptor there is."""
    nodes = len(tree["value"])
    if nodes == 0 or any(len(tree[name]) != nodes for name in TREE_FIELDS):
        raise TreesError("a tree is empty or its arrays differ in length")
    inner = np.flatnonzero(tree["left"] >= 0)
    for side in ("left", "right"):
        child = tree[side][inner]
        if (child <= inner).any() or (child >= nodes).any():
            raise TreesError(f"a tree's {side} child points outside it or back up it")
    split_on = tree["feature"][inner]
    if (split_on < 0).any() or (split_on >= features).any() or not np.isfinite(tree["value"]).all():
        raise TreesError(f"a tree splits on a descriptor beyond {features} or has a non-finite leaf")


def fit_trees(descriptors: np.ndarray, labels: list, stages: int = STAGES, max_leaves: int = MAX_LEAVES,
              seed: int = 0) -> BoostedTrees:
    """Gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier, log loss, no early stopping) from
    descriptors [rows, features] to labels (two or more distinct JSON scalars), exported and checked against
    scikit-learn's own decision values."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    descriptors = np.asarray(descriptors, dtype=np.float64)
    if len(set(labels)) < 2:
        raise ValueError(f"boosted trees need rows of two or more classes, got {sorted(set(labels))}")
    booster = HistGradientBoostingClassifier(max_iter=stages, max_leaf_nodes=max_leaves, learning_rate=LEARNING_RATE,
                                             early_stopping=False, random_state=seed)
    booster.fit(descriptors, np.asarray(labels))
    classes = tuple(c.item() if isinstance(c, np.generic) else c for c in booster.classes_)
    exported = [[_export(predictor.nodes) for predictor in stage] for stage in booster._predictors]
    if len(classes) == 2:  # one tree per stage, for the second class: the first's score stays 0
        exported = [[_constant_tree(), stage[0]] for stage in exported]
    summed = BoostedTrees(classes, np.zeros(len(classes)), exported, descriptors.shape[1])
    tree_sums = summed.scores(descriptors)
    decision = booster.decision_function(descriptors)
    decision = np.stack([np.zeros_like(decision), decision], axis=1) if len(classes) == 2 else decision
    offsets = decision - tree_sums  # the initial scores: what the decision values hold beyond the trees
    if np.abs(offsets - offsets[0]).max() > 1e-6:
        raise RuntimeError("the exported trees do not reproduce scikit-learn's decision values "
                           f"(scikit-learn {_sklearn_version()} stores its trees otherwise)")
    return BoostedTrees(classes, offsets[0], exported, descriptors.shape[1])


def _export(nodes: np.ndarray) -> dict[str, np.ndarray]:
    """One tree's record array (scikit-learn's TreePredictor.nodes) as five arrays; -1 marks a leaf's children."""
    leaf = nodes["is_leaf"].astype(bool)
    if (nodes["is_categorical"].astype(bool) & ~leaf).any():
        raise RuntimeError("a categorical split: the descriptors are all numeric")
    field = lambda name, kind: nodes[name].astype(kind)  # noqa: E731  (the record's fields are unsigned or float32)
    return {"feature": np.where(leaf, -2, field("feature_idx", np.int64)),
            "threshold": np.where(leaf, 0.0, field("num_threshold", np.float64)),
            "left": np.where(leaf, -1, field("left", np.int64)), "right": np.where(leaf, -1, field("right", np.int64)),
            "value": np.where(leaf, field("value", np.float64), 0.0)}


def _constant_tree() -> dict[str, np.ndarray]:
    return {"feature": np.array([-2]), "threshold": np.array([0.0]), "left": np.array([-1]), "right": np.array([-1]),
            "value": np.array([0.0])}


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__
