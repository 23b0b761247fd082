"""What packing (data.pack_examples) and length grouping (data.length_group_batches) save on real demo
shards: padding and step time.

    python benchmarks/batching.py                      # the demo's stage-1 checkpoint and shards
    python benchmarks/batching.py --checkpoint runs/demo/checkpoints/step-001200 --batches 32 --pool 16 --bucket 16

Reads the same training stream (every family, the checkpoint's config) three ways: batched as it
comes and padded to each batch's longest example; the same batches packed (several examples share a
row, each attending only to itself, so the step and its loss are the same); and grouped by length
(other batches of the same examples, each padded to its own longest). Then times full training steps
(forward, backward, AdamW) on each variant's batches, alternating batch by batch on one copy of the
model per variant so that load drift on a shared machine hits all alike. Prints padding, seconds per
step and examples per second; the speed-up is in examples per second, the figure a time budget buys.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from functools import partial

import torch
from torch.utils.data import DataLoader

from llark.config import load_config
from llark.data import ExampleBuilder, ShardDataset, collate
from llark.model import LLark
from llark.templates import get_template


def take_batches(model: LLark, config: str, pool: int, bucket: int, count: int, pack: bool = False
                 ) -> list[dict[str, torch.Tensor]]:
    cfg = load_config(config)
    builder = ExampleBuilder(model.tokenizer, model.ids, get_template(cfg.model.template), cfg.model.max_length,
                             audio_position=cfg.data.audio_position, system=cfg.model.system_prompt,
                             audio_pool=cfg.model.audio_pool)
    dataset = ShardDataset(cfg.data.train_shards, builder, seed=0, shuffle_buffer=cfg.data.shuffle_buffer,
                           batch_size=cfg.train.batch_size, length_group_batches=pool, length_bucket_tokens=bucket)
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, collate_fn=partial(collate, pad_id=model.ids.pad, pack=pack))
    return list(itertools.islice(loader, count))


def examples_in(batch: dict[str, torch.Tensor]) -> int:
    """Examples in a batch: one per row, or in packed rows one per real token at position 0."""
    if "position_ids" not in batch:
        return len(batch["input_ids"])
    return int(((batch["position_ids"] == 0) & (batch["attention_mask"] == 1)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/demo/listen-1/checkpoints/step-001000")
    parser.add_argument("--config", default="configs/tiny.yaml", help="shards, batch size and template")
    parser.add_argument("--pool", type=int, default=32, help="batches per length-sorted pool")
    parser.add_argument("--bucket", type=int, default=32, help="token counts per length bucket")
    parser.add_argument("--batches", type=int, default=64, help="timed batches per variant (whole pools)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.pool < 1 or args.batches % args.pool:
        parser.error(f"--batches {args.batches} must be a multiple of --pool {args.pool}: a part of a pool is "
                     "not a fair sample of the stream (its batches leave in random order)")
    torch.set_num_threads(args.threads)

    base = LLark.from_pretrained(args.checkpoint).train()
    variants = {"as it comes": take_batches(base, args.config, 0, args.bucket, args.batches),
                "packed": take_batches(base, args.config, 0, args.bucket, args.batches, pack=True),
                f"grouped ({args.pool}x{args.bucket})": take_batches(base, args.config, args.pool, args.bucket, args.batches)}
    models = {name: copy.deepcopy(base) for name in variants}
    optimizers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
                  for name, m in models.items()}
    seconds = dict.fromkeys(variants, 0.0)
    losses: dict[str, list[float]] = {name: [] for name in variants}
    for index in range(args.batches):
        for name, batches in variants.items():
            started = time.perf_counter()
            loss = models[name](**batches[index])
            loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            seconds[name] += time.perf_counter() - started
            losses[name].append(loss.item())

    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.batches} batches per variant, {args.checkpoint}")
    print(f"{'batching':20}{'examples':>9}{'real tok':>9}{'padded tok':>11}{'padding':>8}{'s/step':>8}{'examples/s':>11}")
    rates = {}
    for name, batches in variants.items():
        examples = sum(examples_in(b) for b in batches)
        real = sum(int(b["attention_mask"].sum()) for b in batches)
        padded = sum(b["input_ids"].numel() for b in batches)
        rates[name] = examples / seconds[name]
        print(f"{name:20}{examples:>9}{real:>9}{padded:>11}{1 - real / padded:>8.1%}"
              f"{seconds[name] / args.batches:>8.3f}{rates[name]:>11.1f}")
    drift = max(abs(a - b) for a, b in zip(losses["as it comes"], losses["packed"]))
    print(f"packed vs as it comes, same batches: largest loss difference over {args.batches} steps {drift:.2e}")
    plain = rates["as it comes"]
    print("speed-up (examples/s): " + ", ".join(f"{name} {rate / plain:.2f}x" for name, rate in rates.items()
                                                 if name != "as it comes"))


if __name__ == "__main__":
    main()
