"""Join clips, features and Q/A into webdataset shards per split, with a manifest (DESIGN §3).

    python preprocessing/make_shards.py --clips data/pipeline/clips.jsonl --qa data/pipeline/qa.jsonl \
        --features data/pipeline/features --out data/pipeline/shards [--annotations data/pipeline/annotations.jsonl]

Writes <out>/{train,val,test}-NNNNNN.tar (one record per clip: features.npy float16 [T, D] and json
with metadata, labels, annotations and the Q/A list), <out>/{split}-manifest.json (counts, bytes,
sha256 per shard) and <out>/manifest.json (splits, encoder, input fingerprint). Records are written
in a seeded shuffled order; splits come from each clip's track, never from the clip. Clips without
features or Q/A are counted and listed in <out>/skipped.jsonl. Re-running with unchanged inputs does
nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from llark.jsonl import read_jsonl, write_json_atomic, write_jsonl_atomic
from llark.shards import ClipRecord, write_shards

META_FIELDS = ("track_id", "start", "end", "split", "source", "licence", "provenance", "labels")


def fingerprint(paths: list[Path], features: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    for npy in sorted(features.glob("*.npy")):
        digest.update(f"{npy.name}:{npy.stat().st_size}".encode())
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", required=True)
    parser.add_argument("--qa", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--annotations", help="optional annotations.jsonl to include per clip")
    parser.add_argument("--shard-mb", type=float, default=512.0, help="target shard size (DESIGN: 0.5-1 GB)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out, features = Path(args.out), Path(args.features)
    inputs = [Path(args.clips), Path(args.qa)] + ([Path(args.annotations)] if args.annotations else [])
    stamp = {"fingerprint": fingerprint(inputs, features), "shard_mb": args.shard_mb, "seed": args.seed}
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and json.loads(manifest_path.read_text()).get("inputs") == stamp:
        print(f"[shards] {out} is up to date", file=sys.stderr)
        return 0

    clips = read_jsonl(args.clips, required=("clip_id", "split"))
    qa = {row["clip_id"]: row["qa"] for row in read_jsonl(args.qa, required=("clip_id", "qa"))}
    annotations = ({row["clip_id"]: row["annotations"] for row in read_jsonl(args.annotations, required=("clip_id",))}
                   if args.annotations else {})
    by_split: dict[str, list[dict]] = defaultdict(list)
    skipped = []
    for clip in clips:
        npy = features / f"{clip['clip_id']}.npy"
        if not npy.exists():
            skipped.append({"clip_id": clip["clip_id"], "reason": "no features"})
        elif not qa.get(clip["clip_id"]):
            skipped.append({"clip_id": clip["clip_id"], "reason": "no Q/A pairs"})
        else:
            by_split[clip["split"]].append(clip)

    encoder = json.loads((features / "encoder.json").read_text()) if (features / "encoder.json").exists() else None
    summary = {"inputs": stamp, "encoder": encoder, "splits": {}}
    for split, split_clips in sorted(by_split.items()):
        random.Random(f"{args.seed}-{split}").shuffle(split_clips)

        def records(split_clips=split_clips):
            for clip in tqdm(split_clips, desc=f"shards {split}", unit="clip"):
                meta = {k: clip[k] for k in META_FIELDS if k in clip}
                if clip["clip_id"] in annotations:
                    meta["annotations"] = annotations[clip["clip_id"]]
                if encoder:
                    meta["encoder"] = encoder["name"]
                features_array = np.load(features / f"{clip['clip_id']}.npy", allow_pickle=False)
                yield ClipRecord(clip["clip_id"], features_array, meta, qa[clip["clip_id"]])

        split_manifest = write_shards(records(), out / split, max_bytes=int(args.shard_mb * (1 << 20)))
        summary["splits"][split] = split_manifest
    if skipped:
        write_jsonl_atomic(out / "skipped.jsonl", skipped)
    write_json_atomic(manifest_path, summary)
    counts = ", ".join(f"{s} {m['samples']} clips in {len(m['shards'])} shards" for s, m in summary["splits"].items())
    print(f"[shards] {counts}; {len(skipped)} clips skipped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
