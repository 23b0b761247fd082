"""Which instruments play? A small CNN over the MIR encoder's log-mel, fitted once on a corpus of its own.

    python preprocessing/fit_instrument_tagger.py --clips data/levelfit/clips.jsonl   # writes instrument_tagger.safetensors
    tagger = InstrumentTagger.load()                   # the shipped fit (llark/encoders/instrument_tagger.safetensors)
    tagger.probabilities(log_mel)                      # [46]: one per INSTRUMENT_CLASSES, for log_mel [frames, 64]

The MIR encoder's log-mel group (64 bands, 25 fps) holds the instruments, but the LM sees it one token per
second, each band's mean, and what tells a clarinet from a flute or a banjo from a guitar is a pattern
across bands and frames: partials above each note, how a note starts and decays. Linear probes on the
clips' mean and spread of the other 402 channels read the demo corpus's instruments at micro-F1 0.64 (val)
and 0.64 (test); the shipped CNN, fitted on another corpus, reads 0.78 and 0.83 (0.81 and 0.85 above 0.3;
benchmarks/instrument_tagger.py, README "The audio pipeline"), and real compositions orchestrated with the
generator's instruments 0.54 (a fit without such compositions, 0.23). The encoder's `instrument_tags`
group is its 46 class probabilities for each segment (the rhythm group's segments: one for a 25 s clip),
repeated on every frame.

The CNN is four blocks of 3x3 convolutions (batch-normalized, ReLU) with 2x2 max pooling over (mel band,
frame), 24 to 144 channels, then the mean over bands, the mean and the maximum over frames, and one linear
layer: 487k weights (16 to 96 channels, 220k, read the demo's test clips 0.82 against 0.85). It is fitted
(`fit`) on a corpus none of whose pieces the demo trains or is scored on
(preprocessing/fit_instrument_tagger.py): fitted on the demo's own train split, it would be right about
every training clip and the LM would learn to trust it more than it deserves on new audio. Stored as
safetensors (weights only, nothing to unpickle) with its provenance in the file's metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from llark.label_targets import INSTRUMENT_CLASSES

SHIPPED = Path(__file__).with_name("instrument_tagger.safetensors")
WIDTH = 24  # channels of the first block (the shipped fit's); the blocks have 1, 2, 4 and 6 times it
CROP_FRAMES = 150  # training crops: 6 s at 25 fps; the encoder reads whole segments


class InstrumentTaggerError(ValueError):
    """An instrument tagger file that cannot be used; the message names the file and the problem."""


class TaggerNet(nn.Module):
    """log-mel [batch, bands, frames] -> instrument logits [batch, classes]."""

    def __init__(self, classes: int = len(INSTRUMENT_CLASSES), width: int = WIDTH) -> None:
        super().__init__()
        channels = [1, width, 2 * width, 4 * width, 6 * width]
        layers: list[nn.Module] = []
        for inner, outer in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(inner, outer, 3, padding=1), nn.BatchNorm2d(outer), nn.ReLU(),
                       nn.Conv2d(outer, outer, 3, padding=1), nn.BatchNorm2d(outer), nn.ReLU(), nn.MaxPool2d(2)]
        self.blocks = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.3)
        self.classify = nn.Linear(2 * channels[-1], classes)

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        hidden = self.blocks(log_mel[:, None]).mean(dim=2)  # [batch, channels, frames / 16]: bands averaged
        # an instrument heard all along and one heard in a few frames both count
        summary = torch.cat([hidden.mean(dim=2), hidden.amax(dim=2)], dim=1)
        return self.classify(self.dropout(summary))


@dataclass
class InstrumentTagger:
    net: TaggerNet
    n_mels: int
    provenance: dict[str, Any] = field(default_factory=dict)  # how it was fitted (corpus, steps, held-out F1)

    def __post_init__(self) -> None:
        # channels-last convolutions: 0.7x the time of the default layout on one CPU thread, the same numbers
        self.net = self.net.to(memory_format=torch.channels_last).eval()

    def probabilities(self, log_mel: np.ndarray) -> np.ndarray:
        """[classes] probabilities for one segment's log-mel [frames, n_mels] (the encoder's log-mel group)."""
        log_mel = np.asarray(log_mel, dtype=np.float32)
        if log_mel.ndim != 2 or log_mel.shape[1] != self.n_mels:
            raise ValueError(f"expected log-mel [frames, {self.n_mels}], got shape {log_mel.shape}")
        frames = max(len(log_mel), 16)  # four 2x poolings need 16 frames
        padded = np.zeros((frames, self.n_mels), np.float32)
        padded[: len(log_mel)] = log_mel
        with torch.inference_mode():
            return torch.sigmoid(self.net(torch.from_numpy(padded.T.copy())[None]))[0].numpy()

    def fingerprint(self) -> str:
        """16 hex digits of a hash of the weights: what encoder records keep (`MIRFeatureEncoder.fitted`)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def save(self, path: str | Path) -> None:
        """Atomically: a temporary file beside `path`, then a rename."""
        path = Path(path)
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.net.state_dict().items()}
        metadata = {"classes": json.dumps(list(INSTRUMENT_CLASSES)), "n_mels": str(self.n_mels),
                    "width": str(self.net.blocks[0].out_channels), "provenance": json.dumps(self.provenance)}
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(handle)
        try:
            save_file(tensors, temporary, metadata=metadata)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)

    @classmethod
    def load(cls, path: str | Path = SHIPPED) -> InstrumentTagger:
        path = Path(path)
        if not path.exists():
            raise InstrumentTaggerError(f"{path}: instrument tagger not found (preprocessing/fit_instrument_tagger.py writes it)")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensors = load_file(str(path))
            classes = json.loads(metadata["classes"])
            n_mels, width = int(metadata["n_mels"]), int(metadata["width"])
            provenance = json.loads(metadata.get("provenance", "{}"))
        except (SafetensorError, OSError, KeyError, ValueError) as err:
            raise InstrumentTaggerError(f"{path}: not an instrument tagger ({type(err).__name__}: {err})") from None
        if classes != list(INSTRUMENT_CLASSES):
            raise InstrumentTaggerError(f"{path}: fitted for {len(classes)} instrument classes that are not this "
                                        f"version's {len(INSTRUMENT_CLASSES)} (llark.label_targets): refit it")
        net = TaggerNet(len(classes), width)
        try:
            net.load_state_dict(tensors)
        except RuntimeError as err:
            raise InstrumentTaggerError(f"{path}: weights do not fit the tagger ({err})") from None
        net.eval()
        return cls(net, n_mels, provenance)


@lru_cache(maxsize=1)
def load_shipped() -> InstrumentTagger:
    """The shipped tagger, loaded once per process (the encoder asks for it on every clip)."""
    return InstrumentTagger.load(SHIPPED)


def micro_f1(probabilities: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> float:
    """Micro-F1 of the classes above `threshold` against 0/1 targets (both [clips, classes])."""
    chosen = probabilities >= threshold
    hits = float((chosen * targets).sum())
    return 2 * hits / max(float(chosen.sum() + targets.sum()), 1.0)


def fit(log_mels: list[np.ndarray], targets: np.ndarray, steps: int, batch_size: int = 16, seed: int = 0,
        learning_rate: float = 2e-3, width: int = WIDTH, provenance: dict[str, Any] | None = None,
        log_every: int = 0, weights: np.ndarray | None = None) -> InstrumentTagger:
    """Train a tagger on clips' log-mel ([frames, n_mels] each) and their 0/1 instrument targets [clips, classes]:
    random CROP_FRAMES crops with a random level shift, binary cross-entropy, AdamW with a one-cycle schedule.
    `weights` (one per clip, summing to 1) is how often each clip is drawn; None: every clip alike."""
    if len(log_mels) != len(targets) or not log_mels:
        raise ValueError(f"{len(log_mels)} log-mel clips against {len(targets)} target rows")
    if weights is not None and (len(weights) != len(log_mels) or not np.isclose(np.sum(weights), 1.0)):
        raise ValueError(f"weights must be one per clip ({len(log_mels)}) and sum to 1")
    n_mels = log_mels[0].shape[1]
    generator = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = TaggerNet(targets.shape[1], width)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.1)
    truth = torch.as_tensor(np.asarray(targets, np.float32))
    net.train()
    for step in range(steps):
        chosen = generator.integers(0, len(log_mels), batch_size) if weights is None else \
            generator.choice(len(log_mels), batch_size, p=weights)
        crops = np.zeros((batch_size, n_mels, CROP_FRAMES), np.float32)
        for row, index in enumerate(chosen):
            clip = log_mels[index]
            start = int(generator.integers(0, max(1, len(clip) - CROP_FRAMES + 1)))
            crop = clip[start: start + CROP_FRAMES].T
            crops[row, :, : crop.shape[1]] = crop + generator.normal(0.0, 0.1)  # the level varies between recordings
        loss = F.binary_cross_entropy_with_logits(net(torch.from_numpy(crops)), truth[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step}: loss {loss.item():.4f}", flush=True)
    net.eval()
    return InstrumentTagger(net, n_mels, dict(provenance or {}))
