"""Training-step throughput of the debug and tiny configs, and what label-only logits save.

    python benchmarks/train_step.py                 # both configs, 2 threads
    python benchmarks/train_step.py --steps 20 --threads 1

For each config it times full training steps (forward, backward, AdamW) on the same batches twice in
one process: with the LM head computed only where labels exist (train.label_only_logits=true, the
default) and over every position. Prints tokens/s (all positions, audio included) and the speed-up.
debug uses the probe task's 8-24 frame clips; tiny uses 625 frames, a 25 s clip at 25 fps, averaged to
the config's audio tokens (model.audio_pool);
"tiny-32k" is tiny with an LM head of Llama-2's 32000 entries, where the saving is largest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from llark.config import load_config
from llark.data import ExampleBuilder, collate
from llark.model import LLark, build_lm
from llark.synthetic import PROBE_ANSWER, PROBE_QUESTIONS, PROBE_WORDS
from llark.templates import get_template
from llark.tokenizer import add_llark_tokens, train_bpe_tokenizer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FRAMES = {"debug": (8, 24), "tiny": (625, 625), "tiny-32k": (625, 625)}
CONFIG_FILE = {"debug": "debug", "tiny": "tiny", "tiny-32k": "tiny"}
HEAD_SIZE = {"tiny-32k": 32000}  # LM vocabulary (head rows) when it differs from the BPE's


def make_batches(model, builder, batch_size: int, frames: tuple[int, int], count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    batches = []
    for _ in range(count):
        examples = []
        for _ in range(batch_size):
            features = rng.normal(size=(int(rng.integers(frames[0], frames[1] + 1)), model.config.audio_dim))
            answer = PROBE_ANSWER.format(word=pick.choice(PROBE_WORDS))
            examples.append(builder(features.astype(np.float32), pick.choice(PROBE_QUESTIONS), answer, pick))
        batches.append(collate(examples, model.ids.pad))
    return batches


def time_interleaved(models: dict[bool, LLark], batches, warmup: int) -> dict[bool, float]:
    """Median seconds per step for each variant; the variants alternate step by step, so load drift
    on a shared machine hits both alike."""
    optimizers = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for k, m in models.items()}
    seconds: dict[bool, list[float]] = {k: [] for k in models}
    for index, batch in enumerate(batches):
        for label_only, model in models.items():
            started = time.perf_counter()
            loss = model(**batch, label_only_logits=label_only)
            loss.backward()
            optimizers[label_only].step()
            optimizers[label_only].zero_grad(set_to_none=True)
            if index >= warmup:
                seconds[label_only].append(time.perf_counter() - started)
    return {k: statistics.median(v) for k, v in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="debug,tiny,tiny-32k")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'config':9}{'params':>10} {'batch':>5} {'tok/step':>8} {'label-only tok/s':>17} {'full-logits tok/s':>18} {'speed-up':>8}")
    for name in args.configs.split(","):
        cfg = load_config(CONFIGS / f"{CONFIG_FILE[name]}.yaml")
        torch.manual_seed(0)
        texts = [*PROBE_QUESTIONS, *(PROBE_ANSWER.format(word=w) for w in PROBE_WORDS)] * 4
        tokenizer = train_bpe_tokenizer(texts, cfg.model.lm.bpe_vocab_size)
        ids = add_llark_tokens(tokenizer)
        builder = ExampleBuilder(tokenizer, ids, get_template(cfg.model.template), cfg.model.max_length,
                                 audio_pool=cfg.model.audio_pool)
        models = {}
        for label_only in (True, False):  # same initial weights and batches for both
            torch.manual_seed(0)
            lm = build_lm(cfg.model.lm, HEAD_SIZE.get(name, ids.base_vocab_size))
            models[label_only] = LLark(cfg.model, lm, ids, len(tokenizer)).train()
        model = models[True]
        batches = make_batches(model, builder, cfg.train.batch_size, FRAMES[name], args.steps + args.warmup)
        tokens = statistics.mean(float(b["attention_mask"].sum()) for b in batches)
        timings = time_interleaved(models, batches, args.warmup)
        params = sum(p.numel() for p in model.parameters())
        fast, slow = timings[True], timings[False]
        print(f"{name:9}{params:>10,} {cfg.train.batch_size:>5} {tokens:>8.0f} {tokens / fast:>17,.0f} "
              f"{tokens / slow:>18,.0f} {slow / fast:>7.2f}x")


if __name__ == "__main__":
    main()
