"""Which meter? Gradient-boosted trees over the rhythm group's descriptors, fitted once on a corpus of its own.

    python preprocessing/fit_meter_model.py --clips data/levelfit/clips.jsonl --jobs 2   # writes meter_model.json
    model = MeterModel.load()                           # the shipped fit (llark/encoders/meter_model.json)
    model.probabilities(descriptors)                    # [10]: one per label_targets.METERS, for 96 descriptors

The rhythm group describes a segment at the beat the beat-level model names (llark/encoders/beat_level.py):
how the onsets, the bass and the harmony repeat at multiples of that beat. Which meter they describe is
not a linear function of them: a logistic regression on a clip's descriptors reads the demo's test
meters at 0.75, about what the trained LM answers (0.72-0.75), where gradient-boosted trees on the same
descriptors read 0.79-0.80, and on the clips whose beat the encoder tracks at the labelled tempo 0.92
against the logistic regression's 0.88 (docs/demo-experiments.md). The encoder's `meter_tags` group is
these trees' probability of each meter for each segment (the rhythm group's segments: one for a 25 s
clip), repeated on every frame, so the LM is handed what the trees read.

The trees are scikit-learn's GradientBoostingClassifier (`fit`), stored as JSON arrays (each tree's split
features, thresholds, children and leaf values) with how they were made, and applied here with numpy
alone: `fit` checks that the stored trees give scikit-learn's own decision values. Like the instrument
tagger, they are fitted on a corpus none of whose pieces the demo trains or is scored on
(preprocessing/fit_meter_model.py): fitted on the LM's own training clips, they would be right about
nearly every one of them, and the LM would trust them more than they deserve on new audio.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from llark.jsonl import write_json_atomic
from llark.label_targets import METERS

SHIPPED = Path(__file__).with_name("meter_model.json")
TREES = 150  # boosting stages (one tree per meter at each); depth 3, learning rate 0.1, 0.8 of the clips per tree
TREE_FIELDS = ("feature", "threshold", "left", "right", "value")  # a node's split, its children, a leaf's value


class MeterModelError(ValueError):
    """A meter model file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class MeterModel:
    meters: tuple[str, ...]  # the meters it was fitted on, each in METERS; one raw score each
    initial: np.ndarray  # [meters] raw scores before any tree (the log of each meter's share of the fit)
    learning_rate: float
    trees: list[list[dict[str, np.ndarray]]]  # [stage][meter] {feature, threshold, left, right, value}
    features: int  # descriptors per segment
    provenance: dict[str, Any] = field(default_factory=dict)  # how it was fitted (corpus, counts, accuracy)

    def scores(self, descriptors: np.ndarray) -> np.ndarray:
        """[meters] raw scores (log-odds up to a constant) for one segment's descriptors."""
        descriptors = np.asarray(descriptors, dtype=np.float32)  # scikit-learn's trees compare in float32
        if descriptors.shape != (self.features,):
            raise ValueError(f"expected {self.features} rhythm descriptors, got shape {descriptors.shape}")
        scores = self.initial.astype(np.float64).copy()
        for stage in self.trees:
            for index, tree in enumerate(stage):
                scores[index] += self.learning_rate * _leaf_value(tree, descriptors)
        return scores

    def probabilities(self, descriptors: np.ndarray) -> np.ndarray:
        """[len(METERS)] float32: each meter's probability, 0 for those it was not fitted on."""
        scores = self.scores(descriptors)
        weights = np.exp(scores - scores.max())
        out = np.zeros(len(METERS), np.float32)
        out[[METERS.index(m) for m in self.meters]] = weights / weights.sum()
        return out

    @classmethod
    def load(cls, path: str | Path = SHIPPED) -> MeterModel:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            trees = [[{name: np.asarray(tree[name], float if name in ("threshold", "value") else int)
                       for name in TREE_FIELDS} for tree in stage] for stage in raw["trees"]]
            model = cls(tuple(raw["meters"]), np.asarray(raw["initial"], float), float(raw["learning_rate"]), trees,
                        int(raw["features"]), dict(raw.get("provenance", {})))
        except FileNotFoundError:
            raise MeterModelError(f"{path}: meter model not found (preprocessing/fit_meter_model.py writes it)") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise MeterModelError(f"{path}: not a meter model ({type(err).__name__}: {err})") from None
        unknown = [m for m in model.meters if m not in METERS]
        if unknown or len(set(model.meters)) != len(model.meters) or len(model.meters) < 2:
            raise MeterModelError(f"{path}: meters {list(model.meters)} are not two or more distinct meters of "
                                  f"label_targets.METERS")
        if model.initial.shape != (len(model.meters),) or any(len(stage) != len(model.meters) for stage in model.trees):
            raise MeterModelError(f"{path}: inconsistent shapes ({len(model.meters)} meters, initial scores "
                                  f"{model.initial.shape}, stages of {sorted({len(s) for s in model.trees})} trees)")
        for stage in model.trees:
            for tree in stage:
                _check_tree(tree, model.features, path)
        return model

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the trees (not the provenance): what encoder records keep
        (`MIRFeatureEncoder.fitted`), so features of two fits are never mixed."""
        trees = [[{name: tree[name].tolist() for name in TREE_FIELDS} for tree in stage] for stage in self.trees]
        weights = [list(self.meters), self.initial.tolist(), self.learning_rate, self.features, trees]
        return hashlib.sha256(json.dumps(weights).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        fields = asdict(self)
        fields["initial"] = self.initial.tolist()
        fields["trees"] = [[{name: tree[name].tolist() for name in TREE_FIELDS} for tree in stage] for stage in self.trees]
        write_json_atomic(path, fields)


def _leaf_value(tree: dict[str, np.ndarray], x: np.ndarray) -> float:
    node = 0
    while tree["left"][node] >= 0:  # scikit-learn's trees: left <= threshold, -1 marks a leaf
        node = tree["left"][node] if x[tree["feature"][node]] <= tree["threshold"][node] else tree["right"][node]
    return float(tree["value"][node])


def _check_tree(tree: dict[str, np.ndarray], features: int, path: Path) -> None:
    """Every child after its parent (so a descent ends), within the tree; every split on a descriptor there is."""
    nodes = len(tree["value"])
    if nodes == 0 or any(len(tree[name]) != nodes for name in TREE_FIELDS):
        raise MeterModelError(f"{path}: a tree is empty or its arrays differ in length")
    inner = np.flatnonzero(tree["left"] >= 0)
    for side in ("left", "right"):
        child = tree[side][inner]
        if (child <= inner).any() or (child >= nodes).any():
            raise MeterModelError(f"{path}: a tree's {side} child points outside it or back up it")
    split_on = tree["feature"][inner]
    if (split_on < 0).any() or (split_on >= features).any() or not np.isfinite(tree["value"]).all():
        raise MeterModelError(f"{path}: a tree splits on a descriptor beyond {features} or has a non-finite leaf")


@lru_cache(maxsize=1)
def load_shipped() -> MeterModel:
    """The shipped model, loaded once per process (the encoder asks for it on every clip)."""
    return MeterModel.load(SHIPPED)


def fit(descriptors: np.ndarray, meters: list[str], trees: int = TREES, seed: int = 0,
        provenance: dict[str, Any] | None = None) -> MeterModel:
    """Gradient-boosted trees (scikit-learn, log loss, depth 3) from rhythm descriptors [clips, features] to meter
    labels (each in METERS); checks that the exported trees reproduce scikit-learn's decision values."""
    from sklearn.ensemble import GradientBoostingClassifier

    descriptors = np.asarray(descriptors, dtype=np.float64)
    unknown = sorted({m for m in meters if m not in METERS})
    if unknown:
        raise ValueError(f"meters {unknown} are not in label_targets.METERS")
    if len(set(meters)) < 2:
        raise ValueError(f"a meter model needs clips of two or more meters, got {sorted(set(meters))}")
    booster = GradientBoostingClassifier(n_estimators=trees, max_depth=3, learning_rate=0.1, subsample=0.8,
                                         random_state=seed).fit(descriptors, np.asarray(meters))
    classes = tuple(str(c) for c in booster.classes_)
    exported = [[_export(booster.estimators_[stage, k].tree_) for k in range(booster.estimators_.shape[1])]
                for stage in range(booster.estimators_.shape[0])]
    if len(classes) == 2:  # one tree per stage scores the second class against the first: the first's score is 0
        exported = [[_constant_tree(), stage[0]] for stage in exported]
    staged = MeterModel(classes, np.zeros(len(classes)), booster.learning_rate, exported, descriptors.shape[1])
    # The initial scores are what scikit-learn's decision values hold beyond the trees' sum.
    tree_sums = np.stack([staged.scores(x) for x in descriptors])
    decision = booster.decision_function(descriptors)
    decision = np.stack([np.zeros_like(decision), decision], axis=1) if len(classes) == 2 else decision
    offsets = decision - tree_sums
    if np.abs(offsets - offsets[0]).max() > 1e-6:
        raise RuntimeError("the exported trees do not reproduce scikit-learn's decision values")
    return MeterModel(classes, offsets[0], booster.learning_rate, exported, descriptors.shape[1], dict(provenance or {}))


def _export(tree) -> dict[str, np.ndarray]:
    """A scikit-learn tree_ as arrays (public attributes: feature, threshold, children_left/right, value)."""
    return {"feature": tree.feature.astype(int), "threshold": tree.threshold.astype(float),
            "left": tree.children_left.astype(int), "right": tree.children_right.astype(int),
            "value": tree.value.reshape(-1).astype(float)}


def _constant_tree() -> dict[str, np.ndarray]:
    return {"feature": np.array([-2]), "threshold": np.array([-2.0]), "left": np.array([-1]), "right": np.array([-1]),
            "value": np.array([0.0])}
