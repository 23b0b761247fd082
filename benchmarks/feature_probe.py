"""How much of each label do the encoder's features carry? Linear probes on clip summaries, scored like evaluate.py.

    python benchmarks/feature_probe.py                                   # the demo corpus (make demo)
    python benchmarks/feature_probe.py --clips data/x/clips.jsonl --features data/x/features
    python benchmarks/feature_probe.py --split val      # scored on the val split (choose features there)
    python benchmarks/feature_probe.py --split val --train-fraction 0.5       # half the train clips
    python benchmarks/feature_probe.py --split val --more-train data/extra    # + every clip of another corpus
        # data/extra: preprocessing/run_pipeline.py --out data/extra --seed 1 --tunes 0 (other pieces), same encoder

For every clip of the train and scored (--split, default test) splits that has a features file, the probe
input is the clip's per-channel mean and standard deviation over time (2 x D numbers). Logistic
regressions trained on the train split then predict the scored split: the key (24 classes), the tempo (classes of 3 % wide log-BPM
bins, answered with the bin's centre), the meter, and each instrument class (one yes/no probe per
class). They are scored with evaluate.py's own metrics (key MIREX, tempo Acc1/Acc2, meter accuracy,
instrument micro-F1), beside the majority baseline.

A probe is not a ceiling: a model can read what a linear map of the clip's mean and spread cannot
(the order of frames, interactions). It shows which labels these features hand over readily. On the
demo corpus (1234 train, 130 test clips, MIR encoder), measured on a 2-core CPU, without the rhythm
group (`rhythm=False`, the first 174 channels) and with it:

    | task | metric | 174 channels | 270 (with rhythm) | majority (train's commonest label) |
    |---|---|---|---|---|
    | key | MIREX | 0.873 | 0.792 | 0.172 |
    | tempo | Acc1 / Acc2 | 0.523 / 0.654 | 0.638 / 0.777 | 0.100 / 0.138 |
    | meter | accuracy | 0.354 | 0.608 | 0.231 |
    | instruments | micro-F1 | 0.587 | 0.628 | 0.426 |

The key probe falls with more inputs at the same regularisation (C=0.1); the key channels are unchanged.
On the val split (136 clips), the same corpus, adding the timbre group (342 channels, the demo's encoder):

    | task | metric | 174 channels | 270 (rhythm) | 342 (rhythm, timbre) | majority |
    |---|---|---|---|---|---|
    | key | MIREX | 0.821 | 0.782 | 0.731 | 0.126 |
    | tempo | Acc1 / Acc2 | 0.566 / 0.699 | 0.699 / 0.809 | 0.728 / 0.816 | 0.074 / 0.118 |
    | meter | accuracy | 0.375 | 0.662 | 0.684 | 0.243 |
    | instruments | micro-F1 | 0.591 | 0.587 | 0.633 | 0.393 |
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from llark.evaluation.baselines import majority
from llark.evaluation.instruments import instrument_class
from llark.evaluation.tasks import TASKS
from llark.jsonl import read_jsonl

TEMPO_BIN = math.log(1.03)  # 3 % wide bins: their centres are within 1.5 % of every tempo in them


def summary(path: Path) -> np.ndarray:
    features = np.load(path).astype(np.float32)
    return np.concatenate([features.mean(axis=0), features.std(axis=0)])


def probe(train_x: np.ndarray, train_y: list, test_x: np.ndarray) -> list:
    if len(set(train_y)) == 1:
        return [train_y[0]] * len(test_x)
    model = LogisticRegression(C=0.1, max_iter=3000).fit(train_x, train_y)
    return list(model.predict(test_x))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", default="data/demo/clips.jsonl")
    parser.add_argument("--features", default="data/demo/features", help="directory of <clip_id>.npy")
    parser.add_argument("--split", default="test", choices=("val", "test"), help="the split the probes are scored on")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="train on this seeded random share of the train clips: how the probes scale with data")
    parser.add_argument("--more-train", action="append", default=[], metavar="DIR",
                        help="a corpus folder (clips.jsonl, features/) of other pieces whose clips, every split, "
                             "join the train clips (repeatable); refused if it shares a piece with --clips")
    args = parser.parse_args(argv)
    if not 0.0 < args.train_fraction <= 1.0:
        parser.error(f"--train-fraction is a share in (0, 1]; got {args.train_fraction}")

    # (features folder, clip) per split; features are read only for the clips kept.
    rows: dict[str, list[tuple[Path, dict]]] = {"train": [], args.split: []}
    pieces = set()
    for clip in read_jsonl(args.clips):
        if clip.get("provenance"):
            pieces.add(clip["provenance"])
        if clip.get("split") in rows:
            rows[clip["split"]].append((Path(args.features), clip))
    if args.train_fraction < 1.0:
        keep = np.random.default_rng(0).choice(len(rows["train"]), round(args.train_fraction * len(rows["train"])),
                                               replace=False)
        rows["train"] = [rows["train"][i] for i in sorted(keep)]
    for folder in map(Path, args.more_train):
        for clip in read_jsonl(folder / "clips.jsonl"):
            if clip.get("provenance") in pieces:  # the same piece (seed and index, or tune) as a scored clip's
                raise SystemExit(f"{folder / 'clips.jsonl'}: clip {clip['clip_id']} is {clip['provenance']!r}, "
                                 f"a piece of {args.clips} too; build it with another --seed and --tunes 0")
            rows["train"].append((folder / "features", clip))
    splits: dict[str, tuple[list[np.ndarray], list[dict]]] = {}
    missing = 0
    for name, items in rows.items():
        found = [(features / f"{clip['clip_id']}.npy", clip) for features, clip in items]
        found = [(path, clip) for path, clip in found if path.is_file()]
        missing += len(items) - len(found)
        splits[name] = ([summary(path) for path, _ in found], [clip.get("labels") or {} for _, clip in found])
    (train_x, train_labels), (test_x, test_labels) = splits["train"], splits[args.split]
    if not train_x or not test_x:
        raise SystemExit(f"{args.clips}: needs train and {args.split} clips with features in {args.features} "
                         f"(found {len(train_x)} train, {len(test_x)} {args.split}; {missing} without features)")
    scaler = StandardScaler().fit(np.stack(train_x))
    train_x, test_x = scaler.transform(np.stack(train_x)), scaler.transform(np.stack(test_x))
    print(f"[probe] {len(train_x)} train and {len(test_x)} {args.split} clips, {train_x.shape[1]} inputs per clip"
          + (f"; {missing} clips without features left out" if missing else ""))

    print("| task | metric | linear probe | majority (train) |\n|---|---|---|---|")

    def report(task_name: str, train_gold: list, gold: list, predicted: list) -> None:
        task = TASKS[task_name]
        probe_scores = task.metrics(predicted, gold)
        majority_scores = task.metrics(majority(train_gold)[: 1] * len(gold), gold)
        for metric in probe_scores:
            print(f"| {task_name} | {metric} | {probe_scores[metric]:.3f} | {majority_scores[metric]:.3f} |")

    def labelled(name: str):
        train = [(x, labels[name]) for x, labels in zip(train_x, train_labels) if labels.get(name)]
        test = [(x, labels[name]) for x, labels in zip(test_x, test_labels) if labels.get(name)]
        return (np.stack([x for x, _ in train]), [y for _, y in train],
                np.stack([x for x, _ in test]), [y for _, y in test])

    tx, ty, vx, vy = labelled("key")
    key = TASKS["key"]
    train_keys, test_keys = [key.parse_gold(y) for y in ty], [key.parse_gold(y) for y in vy]
    report("key", train_keys, test_keys, probe(tx, train_keys, vx))

    tx, ty, vx, vy = labelled("tempo")
    bins = probe(tx, [round(math.log(float(t)) / TEMPO_BIN) for t in ty], vx)
    report("tempo", [float(t) for t in ty], [float(t) for t in vy], [math.exp(b * TEMPO_BIN) for b in bins])

    tx, ty, vx, vy = labelled("meter")
    meter = TASKS["meter"]
    train_meters, test_meters = [meter.parse_gold(y) for y in ty], [meter.parse_gold(y) for y in vy]
    report("meter", train_meters, test_meters, probe(tx, train_meters, vx))

    tx, ty, vx, vy = labelled("instruments")
    train_sets = [frozenset(instrument_class(n) for n in names) for names in ty]
    test_sets = [frozenset(instrument_class(n) for n in names) for names in vy]
    predicted: list[set[str]] = [set() for _ in vx]
    for name in sorted(set().union(*train_sets)):
        for item, present in zip(predicted, probe(tx, [name in s for s in train_sets], vx)):
            if present:
                item.add(name)
    report("instruments", train_sets, test_sets, [frozenset(p) for p in predicted])
    common = Counter(c for s in test_sets for c in s).most_common(3)
    print(f"[probe] commonest {args.split} instrument classes: {common}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
