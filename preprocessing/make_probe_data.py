"""Write the synthetic probe task (which of 8 channels is loudest) as shards and an eval manifest.

    python preprocessing/make_probe_data.py --out data/probe --audio-dim 16
    python preprocessing/make_probe_data.py --out data/probe --train-clips 2000 --test-clips 200

Writes {out}/train-000000.tar (+ manifest), {out}/test/*.npy and {out}/test.jsonl (paths relative
to it), a manifest in
the `llark ask` / `evaluate.py` format (task "contains", gold = the loudest instrument). Re-running
with the same arguments rewrites the same files (seeded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from llark.jsonl import relative_path, write_jsonl_atomic
from llark.shards import write_shards
from llark.synthetic import probe_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--audio-dim", type=int, default=16)
    parser.add_argument("--train-clips", type=int, default=600)
    parser.add_argument("--test-clips", type=int, default=100)
    parser.add_argument("--shard-bytes", type=int, default=1 << 20, help="target shard size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    out = Path(args.out)
    train = probe_records(args.train_clips, args.audio_dim, seed=args.seed, split="train")
    manifest = write_shards(train, out / "train", max_bytes=args.shard_bytes)
    test = probe_records(args.test_clips, args.audio_dim, seed=args.seed + 1_000_003, split="test")
    (out / "test").mkdir(parents=True, exist_ok=True)
    rows, test_manifest = [], out / "test.jsonl"
    for record in test:
        path = out / "test" / f"{record.clip_id}.npy"
        np.save(path, record.features.astype(np.float16), allow_pickle=False)
        for pair in record.qa:
            rows.append({"id": record.clip_id, "question": pair["question"], "features": relative_path(path, test_manifest),
                         "task": "contains", "gold": record.meta["labels"]["loudest"]})
    write_jsonl_atomic(test_manifest, rows)
    print(json.dumps({"train_shards": len(manifest["shards"]), "train_clips": manifest["samples"],
                      "test_questions": len(rows)}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
