"""How well does the shipped meter model read a corpus's meters, beside a logistic regression on the same descriptors?

    python benchmarks/meter_model.py                       # the demo corpus (make demo): every split
    python benchmarks/meter_model.py --clips data/x/clips.jsonl --features data/x/features --model M.json

For every clip with a labelled meter and a features file, the meter model (llark/encoders/meter_model.py)
reads the clip's rhythm descriptors (the features' rhythm group, as the encoder hands them to it) and
names its likeliest meter; beside it, a logistic regression on the same descriptors trained on the train
split (what a linear read of the rhythm group gives, about what the trained LM answered before the meter
tags). Each split is also scored apart on the clips whose tracked beat (the rhythm group's tempo, at the
fitted beat level) lies within one step of the tempo axis (8 %) of the labelled tempo, and the rest: at a
wrong beat level the meter is most often misread whatever reads it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from llark.encoders.meter_model import SHIPPED, MeterModel
from llark.encoders.mir import RHYTHM_DIM, TRACKED_TEMPO_AXIS, MIRFeatureEncoder
from llark.jsonl import read_jsonl
from llark.label_targets import METERS

# the demo's features: log-mel, chroma, onset and level, then the rhythm group (no local tempogram)
RHYTHM_START = MIRFeatureEncoder(tempo_bins=0, rhythm=True).groups()["rhythm"][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="data/demo/clips.jsonl")
    parser.add_argument("--features", default="data/demo/features", help="directory of <clip_id>.npy")
    parser.add_argument("--model", default=str(SHIPPED))
    parser.add_argument("--rhythm-start", type=int, default=RHYTHM_START,
                        help="the rhythm group's first channel (MIRFeatureEncoder.groups()['rhythm'][0])")
    args = parser.parse_args(argv)
    model = MeterModel.load(args.model)

    splits: dict[str, tuple[list, list, list]] = {}
    for clip in read_jsonl(args.clips):
        path = Path(args.features) / f"{clip['clip_id']}.npy"
        labels = clip.get("labels") or {}
        if path.is_file() and labels.get("meter") in METERS:
            rhythm = np.load(path)[:, args.rhythm_start: args.rhythm_start + RHYTHM_DIM].mean(0).astype(np.float64)
            tracked = TRACKED_TEMPO_AXIS[int(np.argmax(rhythm[: len(TRACKED_TEMPO_AXIS)]))]
            level = bool(labels.get("tempo")) and abs(tracked / float(labels["tempo"]) - 1) <= 0.08
            rows = splits.setdefault(clip.get("split", "none"), ([], [], []))
            rows[0].append(rhythm), rows[1].append(labels["meter"]), rows[2].append(level)
    if not splits:
        raise SystemExit(f"{args.clips}: no clip has a labelled meter and features in {args.features}")
    linear = None
    if "train" in splits:
        x, y = np.stack(splits["train"][0]), np.array(splits["train"][1])
        scaler = StandardScaler().fit(x)
        regression = LogisticRegression(C=0.1, max_iter=5000).fit(scaler.transform(x), y)
        linear = lambda rows: regression.predict(scaler.transform(rows))  # noqa: E731

    print("| split | clips | meter model | at the labelled beat (clips) | elsewhere | logistic regression on train |")
    print("|---|---|---|---|---|---|")
    for name in sorted(splits, key=lambda s: ("train", "val", "test").index(s) if s in ("train", "val", "test") else 3):
        x, y, level = np.stack(splits[name][0]), np.array(splits[name][1]), np.array(splits[name][2])
        named = np.array([METERS[int(np.argmax(model.probabilities(row)))] for row in x])
        right = named == y
        apart = f"{right[level].mean():.3f} ({int(level.sum())}) | " + (f"{right[~level].mean():.3f}" if (~level).any() else "")
        probe = "" if linear is None or name == "train" else f"{np.mean(linear(x) == y):.3f}"
        print(f"| {name} | {len(y)} | {right.mean():.3f} | {apart} | {probe} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
