"""How well does the shipped key model read a corpus's keys, beside librosa's profiles on the same audio?

    python benchmarks/key_model.py                                            # the demo corpus (make demo), by split
    python benchmarks/key_model.py --manifest data/demo-scores/TimGM6mb/eval.jsonl   # the real compositions
    python benchmarks/key_model.py --clips data/x/clips.jsonl --model M.json --jobs 2

For every clip with one of the 24 keys (or a manifest's key questions), read from its audio: the key
model (llark/encoders/key_model.py) over the chroma statistics as the encoder's `key_tags` group computes
them, and the classic estimator the evaluation's baseline runs (llark.annotate.classic_key: three published
profiles correlated with the mean chroma). Prints the MIREX weighted score and the accuracy of both, per
split (or the manifest) and per source or group. A clip whose audio cannot be read is skipped and counted.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")  # one thread per worker: --jobs sets the parallelism

import mir_eval  # noqa: E402
import numpy as np  # noqa: E402

from llark.annotate import classic_key  # noqa: E402
from llark.clips import clip_wave, map_clips  # noqa: E402
from llark.corpus.theory import KEYS_24  # noqa: E402
from llark.encoders.key_model import SHIPPED, KeyModel  # noqa: E402
from llark.encoders.mir import MIRFeatureEncoder  # noqa: E402
from llark.jsonl import read_jsonl  # noqa: E402
from llark.label_targets import MISSING, key_target  # noqa: E402


def read(job: tuple[str, dict]) -> tuple[np.ndarray, str] | str:
    """The clip's chroma statistics and librosa's key, or a message naming the file that could not be read."""
    root, clip = job
    encoder = MIRFeatureEncoder(tempo_bins=0)
    wave = clip_wave(root, clip, encoder.sample_rate)
    return wave if isinstance(wave, str) else (encoder.key_statistics(wave), classic_key(wave, encoder.sample_rate))


def manifest_clips(path: str) -> list[dict]:
    """An evaluation manifest's key questions as clips: the gold key, the manifest's name as the split, its groups."""
    return [{"clip_id": item["id"], "audio": item["audio"], "start": item.get("start", 0.0), "end": item.get("end"),
             "split": Path(path).parent.name or "manifest", "labels": {"key": item["gold"]},
             "groups": item.get("groups", [])}
            for item in read_jsonl(path) if item.get("task") == "key"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--clips", default="data/demo/clips.jsonl", help="clips.jsonl with labels.key")
    source.add_argument("--manifest", help="an evaluation manifest (make_eval_manifest.py): its key questions")
    parser.add_argument("--model", default=str(SHIPPED))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args(argv)
    model = KeyModel.load(args.model)
    path = args.manifest or args.clips
    clips = manifest_clips(path) if args.manifest else list(read_jsonl(path))
    labelled = [(clip, key_target((clip.get("labels") or {}).get("key"))) for clip in clips]
    labelled = [(clip, key) for clip, key in labelled if key != MISSING]  # no key, or a mode none of the 24
    if not labelled:
        parser.error(f"{path}: no clip with one of the 24 major and minor keys")
    rows, failures = map_clips(read, [clip for clip, _ in labelled], os.path.dirname(os.path.abspath(path)), args.jobs)
    keys = {clip["clip_id"]: key for clip, key in labelled}

    scores: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for clip, (statistics, librosa_key) in rows:
        gold = KEYS_24[keys[clip["clip_id"]]].name
        read_key = KEYS_24[int(model.scores(statistics).argmax())].name
        pair = (mir_eval.key.weighted_score(gold, read_key), mir_eval.key.weighted_score(gold, librosa_key))
        for group in ["all", clip.get("source", ""), *clip.get("groups", [])]:
            if group:
                scores[(clip.get("split", "?"), group)].append(pair)
    print(f"{'split':10s} {'group':16s} {'clips':>5s}  {'model MIREX':>11s} {'accuracy':>8s}  {'librosa MIREX':>13s} {'accuracy':>8s}")
    for (split, group), pairs in sorted(scores.items(), key=lambda item: (item[0][0], item[0][1] != "all", item[0][1])):
        ours, theirs = np.array(pairs).T
        print(f"{split:10s} {group:16s} {len(pairs):5d}  {ours.mean():11.3f} {np.mean(ours == 1):8.3f}  "
              f"{theirs.mean():13.3f} {np.mean(theirs == 1):8.3f}")
    print(f"model: {args.model}" + (f"; {len(failures)} clip(s) skipped (above)" if failures else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
