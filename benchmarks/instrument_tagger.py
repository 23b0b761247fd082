"""How well does the shipped instrument tagger read a corpus's instruments, beside a linear probe on the features?

    python benchmarks/instrument_tagger.py                       # the demo corpus (make demo): every split
    python benchmarks/instrument_tagger.py --clips data/x/clips.jsonl --features data/x/features --tagger T.safetensors
    python benchmarks/instrument_tagger.py --manifest data/demo-scores/TimGM6mb/eval.jsonl   # and a manifest's audio

For every clip with labelled instruments and a features file, the tagger (llark/encoders/instrument_tagger.py)
reads the features' log-mel group (their first n_mels channels, as the encoder feeds it) and names the
classes above each threshold; scored with evaluate.py's instrument micro-F1 per split. Beside it, one
logistic probe per class on the clips' mean and spread of the other channels (`--probe-channels`, default
the demo's 402 without the tags), trained on the train split: what the features without the tagger hand over.
Equal figures on the train split and the others say the tagger was not fitted on these pieces. The clips made
from MIDI files (make_corpus.py --midi: the demo's real compositions) are scored apart from the split they are in.
`--manifest` (repeatable) also scores the tagger on the audio of a manifest's instrument questions (their spans,
peak-normalised, as evaluate.py encodes them), such as `make demo-scores`'s real compositions.

The shipped fit (the beat-level corpus's first part and 207 other real compositions, orchestrated three times, all
rendered with formants shifted; none of the demo's pieces) on the demo corpus of a fresh clone of ceb63ef, with
`--manifest` on `make demo-scores`'s real compositions (2026-12-07):

    | split | clips | tagger > 0.3 | tagger > 0.5 | probe on the 402 channels (> 0.5) |
    |---|---|---|---|---|
    | train | 1713 | 0.820 | 0.807 | (its own training clips) |
    | val | 196 | 0.809 | 0.782 | 0.641 |
    | test | 191 | 0.851 | 0.829 | 0.635 |
    | train, real compositions | 308 | 0.542 | 0.471 | |
    | data/demo-scores/TimGM6mb/eval.jsonl | 107 | 0.535 | 0.476 | |
    | data/demo-scores/FluidR3_GM/eval.jsonl | 107 | 0.317 | 0.262 | |

The fits before it, 220k weights (README, "The instrument tags"), read val 0.782-0.791 and test 0.814-0.821 above
0.3; the one before real compositions joined its corpus read train 0.779, val 0.768, test 0.795, the 308 training
scores 0.226 and the real compositions 0.369 and 0.219.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from llark.audio import CLIP_SECONDS, load_audio
from llark.encoders.instrument_tagger import SHIPPED, InstrumentTagger, micro_f1
from llark.encoders.mir import MIRFeatureEncoder
from llark.inference import read_manifest
from llark.jsonl import read_jsonl
from llark.label_targets import MISSING, encode_label_targets

THRESHOLDS = (0.3, 0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="data/demo/clips.jsonl")
    parser.add_argument("--features", default="data/demo/features", help="directory of <clip_id>.npy")
    parser.add_argument("--tagger", default=str(SHIPPED))
    parser.add_argument("--manifest", action="append", default=[],
                        help="an evaluation manifest whose instrument questions' audio is also scored (repeatable)")
    parser.add_argument("--probe-channels", type=int, default=402, help="the probe reads channels [0, this) (0: no probe)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    tagger = InstrumentTagger.load(args.tagger)

    splits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for clip in read_jsonl(args.clips):
        path = Path(args.features) / f"{clip['clip_id']}.npy"
        target = encode_label_targets(clip.get("labels") or {})["target_instruments"]
        if path.is_file() and (target != MISSING).all():
            split = clip.get("split", "none") + (", real compositions" if clip.get("source") == "midi" else "")
            splits.setdefault(split, []).append((np.load(path).astype(np.float32), target))
    if not splits:
        raise SystemExit(f"{args.clips}: no clip has labelled instruments and features in {args.features}")
    probe = None
    if args.probe_channels and "train" in splits:
        summary = lambda f: np.concatenate([f[:, : args.probe_channels].mean(0), f[:, : args.probe_channels].std(0)])  # noqa: E731
        train_x = np.stack([summary(f) for f, _ in splits["train"]])
        train_y = np.stack([t for _, t in splits["train"]])
        scaler = StandardScaler().fit(train_x)
        models = {k: LogisticRegression(C=0.1, max_iter=2000).fit(scaler.transform(train_x), train_y[:, k])
                  for k in range(train_y.shape[1]) if 0 < train_y[:, k].sum() < len(train_y)}

        def probe(features: list[np.ndarray]) -> np.ndarray:
            x = scaler.transform(np.stack([summary(f) for f in features]))
            out = np.zeros((len(x), train_y.shape[1]))
            for k, model in models.items():
                out[:, k] = model.predict_proba(x)[:, 1]
            return out

    for manifest in args.manifest:
        splits[manifest] = manifest_log_mels(Path(manifest))
    print(f"| split | clips | {' | '.join(f'tagger > {t}' for t in THRESHOLDS)} | probe on {args.probe_channels} channels |")
    print("|---|---|" + "---|" * (len(THRESHOLDS) + 1))
    for name in sorted(splits, key=lambda s: ("train", "val", "test").index(s) if s in ("train", "val", "test") else 3):
        features = [f for f, _ in splits[name]]
        truth = np.stack([t for _, t in splits[name]])
        tagged = np.stack([tagger.probabilities(f[:, : tagger.n_mels]) for f in features])
        scores = " | ".join(f"{micro_f1(tagged, truth, t):.3f}" for t in THRESHOLDS)
        probed = "" if probe is None or name.startswith("train") or name in args.manifest else \
            f"{micro_f1(probe(features), truth):.3f}"
        print(f"| {name} | {len(features)} | {scores} | {probed} |")
    return 0


def manifest_log_mels(manifest: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(log-mel [frames, n_mels], instrument targets) of each instrument question of an evaluation manifest, from the
    audio of its span (relative to the manifest's folder), peak-normalised as evaluate.py encodes it."""
    encoder = MIRFeatureEncoder()
    rows = []
    for item in read_manifest(manifest, required=("task", "gold")):
        if item.get("task") == "instruments" and item.get("audio"):
            start = float(item.get("start", 0.0))
            wave = load_audio(item["audio"], encoder.sample_rate, start, float(item.get("end", start + CLIP_SECONDS)),
                              normalise=True)
            target = encode_label_targets({"instruments": item["gold"]})["target_instruments"]
            rows.append((encoder.log_mel_frames(wave), target))
    if not rows:
        raise SystemExit(f"{manifest}: no instrument question with audio")
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
