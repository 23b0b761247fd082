"""Which key? Learnt key profiles over a segment's chroma statistics, the same for every tonic, fitted once.

    python preprocessing/fit_key_model.py --clips data/levelfit/clips.jsonl --jobs 2   # writes key_model.json
                                                        # (the shipped fit: four corpora, the script's docstring)
    model = KeyModel.load()                             # the shipped fit (llark/encoders/key_model.json)
    model.probabilities(key_statistics(chroma, onset, level, rate))   # [24]: label_targets.key_class's order

The classic estimator (llark.annotate) correlates a clip's mean chroma with three published major and
minor profiles. This model learns the profiles instead, from clips with known keys, and for more than the
mean: for each of STATISTICS (the mean chroma, its mean weighted by loudness and by attack, the frames'
strongest pitch classes, the opening and closing seconds...) one profile of 12 weights per mode. A key, a
tonic t in a mode m, scores the sum over the statistics of mode m's profile dotted with the statistic
rotated so that t comes first, plus a bias per mode; a softmax over the 24 keys gives their probabilities.
The scores are the same function for every tonic (transposing the audio transposes the answer), so a key
the fit corpus holds few clips of is read as well as any, and 2 x 7 x 12 + 2 = 170 weights are all there
is to fit.

The shipped fit reads the demo's test split at MIREX 0.939 where librosa's profiles read 0.903 and the
trained LM without it 0.90-0.95, and the real compositions in TimGM6mb at 0.792 against 0.737
(benchmarks/key_model.py; docs/demo-experiments.md, "The key tags").

The encoder's `key_tags` group is its probability of each key for each segment (the rhythm group's
segments: one for a 25 s clip), repeated on every frame, so the LM is handed what it reads. Like the
meter model, it is fitted on a corpus none of whose pieces the demo trains or is scored on
(preprocessing/fit_key_model.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from llark.jsonl import write_json_atomic

SHIPPED = Path(__file__).with_name("key_model.json")
FORMAT = "llark key model v1"
EDGE_SECONDS = 2.0  # the opening and closing statistics: where a tune or a phrase states its tonic
# What a segment's chroma is summarised by; each a 12-vector over pitch classes C..B, scaled to unit length.
STATISTICS = ("mean", "loudness_weighted", "attack_weighted", "peaks", "strongest", "opening", "closing")
MODES = ("major", "minor")  # key_class: 0-11 major by tonic pitch class, 12-23 minor


class KeyModelError(ValueError):
    """A key model file that cannot be used; the message names the file and the problem."""


def key_statistics(chroma: np.ndarray, onset: np.ndarray, level: np.ndarray, rate: float) -> np.ndarray:
    """[len(STATISTICS), 12] float32 of one segment, from the encoder's chroma group ([frames, 12], max-normalised
    per frame), onset group ([frames]: log onset strength) and level group ([frames]: dB / 80), at `rate` frames
    per second."""
    chroma = np.asarray(chroma, np.float64)
    onset = np.clip(np.asarray(onset, np.float64).reshape(-1), 0.0, None)
    loudness = 10.0 ** (4.0 * np.asarray(level, np.float64).reshape(-1))  # dB / 80 back to amplitude
    edge = max(1, int(round(EDGE_SECONDS * rate)))
    strongest = (chroma >= chroma.max(axis=1, keepdims=True) - 1e-6) & (chroma > 0)
    rows = [chroma.mean(axis=0),
            _weighted_mean(chroma, loudness),
            _weighted_mean(chroma, onset),
            (chroma**4).mean(axis=0),  # the strong pitch classes of each frame, the weak ones nearly gone
            strongest.mean(axis=0),
            chroma[:edge].mean(axis=0),
            chroma[-edge:].mean(axis=0)]
    statistics = np.stack(rows)
    norms = np.linalg.norm(statistics, axis=1, keepdims=True)
    return (statistics / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _weighted_mean(chroma: np.ndarray, weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    return (chroma * weights[:, None]).sum(axis=0) / total if total > 0 else chroma.mean(axis=0)


def rotations(statistics: np.ndarray) -> np.ndarray:
    """[..., 12, S * 12]: for each tonic t, the statistics [..., S, 12] rotated so that pitch class t comes first."""
    pitch_classes = (np.arange(12)[:, None] + np.arange(12)[None, :]) % 12  # [tonic, degree]
    rotated = np.asarray(statistics)[..., pitch_classes]  # [..., S, tonic, degree]
    return np.swapaxes(rotated, -3, -2).reshape(*rotated.shape[:-3], 12, -1)


@dataclass(frozen=True)
class KeyModel:
    profiles: np.ndarray  # [2 modes, len(STATISTICS), 12]: a weight per scale degree, from the tonic up
    bias: np.ndarray  # [2 modes]
    provenance: dict[str, Any] = field(default_factory=dict)  # how it was fitted (corpus, counts, accuracy)

    def scores(self, statistics: np.ndarray) -> np.ndarray:
        """[..., 24] key scores (label_targets.key_class's order) for statistics [..., S, 12]."""
        rotated = rotations(statistics).astype(np.float64)  # [..., tonic, S * 12]
        per_mode = rotated @ self.profiles.reshape(2, -1).T.astype(np.float64) + self.bias  # [..., tonic, mode]
        return np.concatenate([per_mode[..., 0], per_mode[..., 1]], axis=-1)

    def probabilities(self, statistics: np.ndarray) -> np.ndarray:
        """[..., 24] float32: each key's probability, in label_targets.key_class's order."""
        scores = self.scores(statistics)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return (scores / scores.sum(axis=-1, keepdims=True)).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "statistics": list(STATISTICS), "modes": list(MODES),
                "profiles": self.profiles.tolist(), "bias": self.bias.tolist()}

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the weights (not the provenance): what encoder records keep
        (`MIRFeatureEncoder.fitted`), so features of two fits are never mixed."""
        return hashlib.sha256(json.dumps(self.to_json()).encode()).hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        write_json_atomic(path, {**self.to_json(), "provenance": self.provenance})

    @classmethod
    def load(cls, path: str | Path = SHIPPED) -> KeyModel:
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise KeyModelError(f"{path}: key model not found (preprocessing/fit_key_model.py writes it)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise KeyModelError(f"{path}: not a key model ({type(err).__name__}: {err})") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise KeyModelError(f"{path}: not a key model (format {raw.get('format') if isinstance(raw, dict) else None!r}, "
                                f"expected {FORMAT!r})")
        if raw.get("statistics") != list(STATISTICS) or raw.get("modes") != list(MODES):
            raise KeyModelError(f"{path}: fitted on statistics {raw.get('statistics')} and modes {raw.get('modes')}, "
                                f"not this code's {list(STATISTICS)} and {list(MODES)}: refit it "
                                "(preprocessing/fit_key_model.py)")
        try:
            profiles = np.asarray(raw["profiles"], np.float64)
            bias = np.asarray(raw["bias"], np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise KeyModelError(f"{path}: not a key model ({type(err).__name__}: {err})") from None
        if profiles.shape != (len(MODES), len(STATISTICS), 12) or bias.shape != (len(MODES),):
            raise KeyModelError(f"{path}: profiles of shape {profiles.shape} and bias of shape {bias.shape}, expected "
                                f"{(len(MODES), len(STATISTICS), 12)} and {(len(MODES),)}")
        if not (np.isfinite(profiles).all() and np.isfinite(bias).all()):
            raise KeyModelError(f"{path}: the weights hold values that are not finite")
        return cls(profiles, bias, dict(raw.get("provenance", {})))


@lru_cache(maxsize=1)
def load_shipped() -> KeyModel:
    """The shipped model, loaded once per process (the encoder asks for it on every clip)."""
    return KeyModel.load(SHIPPED)


def fit(statistics: np.ndarray, keys: np.ndarray, l2: float = 1e-3, provenance: dict[str, Any] | None = None) -> KeyModel:
    """The profiles and biases that minimise the mean cross-entropy of the labelled keys (key_class: 0-23) given
    the statistics [clips, S, 12], plus `l2` times the profiles' squared sum; full-batch L-BFGS, deterministic."""
    import torch  # the fit alone needs torch; reading the model needs numpy only

    keys = np.asarray(keys)
    if statistics.ndim != 3 or statistics.shape[1:] != (len(STATISTICS), 12) or len(statistics) != len(keys):
        raise ValueError(f"statistics of shape {statistics.shape} for {len(keys)} keys: expected "
                         f"[clips, {len(STATISTICS)}, 12], one row per key")
    if len(keys) == 0 or keys.min() < 0 or keys.max() >= 24:
        raise ValueError("a key model needs one or more clips, each key a class of 0-23 (label_targets.key_class)")
    rotated = torch.tensor(rotations(statistics), dtype=torch.float64)  # [clips, tonic, S * 12]
    target = torch.tensor(keys, dtype=torch.long)
    profiles = torch.zeros(2, rotated.shape[-1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([profiles, bias], lr=1.0, max_iter=500, tolerance_grad=1e-9,
                                  tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        per_mode = rotated @ profiles.T + bias  # [clips, tonic, mode]
        scores = torch.cat([per_mode[..., 0], per_mode[..., 1]], dim=-1)
        value = torch.nn.functional.cross_entropy(scores, target) + l2 * (profiles**2).sum()
        value.backward()
        return value

    optimiser.step(loss)
    return KeyModel(profiles.detach().numpy().reshape(2, len(STATISTICS), 12).copy(), bias.detach().numpy().copy(),
                    dict(provenance or {}))
