"""Shard write and read throughput (MB/s and samples/s) for clips of 25 s at 25 fps.

    python benchmarks/shards.py                          # 400 clips of [625, 342] float16 features (the demo's MIR encoder)
    python benchmarks/shards.py --clips 200 --dim 4800   # Jukebox-sized features
    python benchmarks/shards.py --dim 402 --audio-pool 25 --pairs 8   # as configs/tiny.yaml reads the demo's shards
    python benchmarks/shards.py --read 'data/demo/shards/train-*.tar' --checkpoint runs/demo/checkpoints/step-001200

Write: ClipRecord -> webdataset tars (llark.shards.write_shards). Read: the training reader
(llark.data.ShardDataset) decoding every record and expanding and tokenizing its Q/A pairs; with
`--audio-pool k`, averaging every k frames into one audio token, once per clip for all its pairs.
With `--read`, only reading: existing shards (the demo's: their real questions and answers), as train.py
reads them with the checkpoint's tokenizer and config, in ms per example (median of three passes).
"""

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from llark.data import ExampleBuilder, ShardDataset
from llark.shards import ClipRecord, write_shards
from llark.templates import get_template
from llark.tokenizer import add_llark_tokens, train_bpe_tokenizer

QA = [{"question": "What key is this in?", "answer": "It is in F# minor.", "family": "mir_qa"},
      {"question": "Describe the tempo.", "answer": "About 96 BPM, a relaxed walking pace.", "family": "mir_qa"}]


def read_real_shards(pattern: str, checkpoint: str, examples: int) -> None:
    """ms per example of the training reader on existing shards, built as train.py builds it."""
    import torch

    from llark.model import LLark

    torch.set_num_threads(1)  # the reader runs beside training in one process; it does not use torch's threads
    model = LLark.from_pretrained(checkpoint, device="cpu")
    cfg = model.run_config
    seconds = []
    for seed in range(3):
        builder = ExampleBuilder(model.tokenizer, model.ids, get_template(cfg.model.template), cfg.model.max_length,
                                 audio_position=cfg.data.audio_position, system=cfg.model.system_prompt,
                                 audio_pool=cfg.model.audio_pool)
        dataset = ShardDataset([pattern], builder, seed=seed, shuffle_buffer=cfg.data.shuffle_buffer, loop=True,
                               label_targets=cfg.model.label_loss_weight > 0)
        started = time.perf_counter()
        count = sum(1 for _ in itertools.islice(dataset, examples))
        seconds.append((time.perf_counter() - started) / count)
    print(f"{pattern}: {statistics.median(seconds) * 1000:.3f} ms per example "
          f"(median of 3 passes over {examples}; a batch of {cfg.train.batch_size}: "
          f"{statistics.median(seconds) * 1000 * cfg.train.batch_size:.1f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400)
    parser.add_argument("--frames", type=int, default=625)
    parser.add_argument("--dim", type=int, default=342)  # the demo's encoder: rhythm and timbre groups on
    parser.add_argument("--shard-mb", type=float, default=64.0)
    parser.add_argument("--audio-pool", type=int, default=1, help="frames averaged into one audio token (model.audio_pool)")
    parser.add_argument("--pairs", type=int, default=2, help="Q/A pairs per clip")
    parser.add_argument("--read", metavar="PATTERN", help="only read these shards, with --checkpoint's tokenizer and config")
    parser.add_argument("--checkpoint", help="with --read: the checkpoint whose tokenizer and config train.py would use")
    parser.add_argument("--examples", type=int, default=6000, help="with --read: examples per pass")
    args = parser.parse_args()
    if args.read:
        if not args.checkpoint:
            parser.error("--read needs --checkpoint (the tokenizer and config the reader builds examples with)")
        read_real_shards(args.read, args.checkpoint, args.examples)
        return
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(args.frames, args.dim)).astype(np.float16) for _ in range(8)]
    pairs = [QA[k % len(QA)] for k in range(args.pairs)]
    records = (ClipRecord(f"clip{i:06d}-start0.000-end25.000", features[i % 8], {"labels": {"key": "F# minor"}}, pairs)
               for i in range(args.clips))
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = write_shards(records, Path(tmp) / "bench", max_bytes=int(args.shard_mb * (1 << 20)))
        write_seconds = time.perf_counter() - started
        megabytes = sum(s["bytes"] for s in manifest["shards"]) / 1e6
        tokenizer = train_bpe_tokenizer([q["question"] for q in QA] + [q["answer"] for q in QA], 300)
        ids = add_llark_tokens(tokenizer)
        builder = ExampleBuilder(tokenizer, ids, get_template("llama2"), max_length=args.frames + 200,
                                 audio_pool=args.audio_pool)
        started = time.perf_counter()
        examples = sum(1 for _ in ShardDataset([str(Path(tmp) / "bench-*.tar")], builder, loop=False, shuffle_buffer=64))
        read_seconds = time.perf_counter() - started
    print(f"{args.clips} clips of [{args.frames}, {args.dim}] float16 in {len(manifest['shards'])} shards, {megabytes:.0f} MB; "
          f"{args.pairs} Q/A pairs per clip, audio_pool {args.audio_pool}")
    print(f"  write: {megabytes / write_seconds:.0f} MB/s, {args.clips / write_seconds:.0f} clips/s "
          f"(incl. sha256 of each shard)")
    print(f"  read:  {megabytes / read_seconds:.0f} MB/s, {args.clips / read_seconds:.0f} clips/s, "
          f"{examples / read_seconds:.0f} examples/s (decode + Q/A expansion + tokenization)")


if __name__ == "__main__":
    main()
