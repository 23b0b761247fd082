"""Training-step throughput of the debug and tiny configs: what label-only logits save, and what
train.compile gains.

    python benchmarks/train_step.py                 # label-only against full logits, 2 threads
    python benchmarks/train_step.py --steps 20 --threads 1
    python benchmarks/train_step.py --compare compile --configs tiny --steps 40   # eager against compiled
    python benchmarks/train_step.py --compare precision --configs tiny --steps 20 # fp32 against bf16 autocast
    python benchmarks/train_step.py --compare attention --configs tiny --steps 20 # sdpa against eager attention

For each config it times full training steps (forward, backward, AdamW) on the same batches twice in
one process, the two variants alternating step by step: with the LM head computed only where labels
exist (train.label_only_logits=true, the default) and over every position; or, with `--compare
compile`, eagerly and with the decoder layers compiled as train.compile=true does (bf16 autocast, as
configs/tiny.yaml trains, and packed rows where the config packs them; the compiling steps are among
the warm-up steps, and the compile time is printed); or, with `--compare precision`, in fp32 and in bf16
autocast, both compiled and packed where the config trains so: what train.precision=auto decides from
the CPU's flags (llark.distributed.cpu_computes_bf16, printed); or, with `--compare attention`, the LM's
attention as PyTorch's fused kernels compute it (model.lm.attention=sdpa) and as plain matmuls (eager), both
as the config trains otherwise (compiled, bf16 where the CPU computes it, packed). Prints tokens/s (all
positions, audio included) and the speed-up.
debug uses the probe task's 8-24 frame clips; tiny uses 625 frames, a 25 s clip at 25 fps, averaged to
the config's audio tokens (model.audio_pool);
"tiny-32k" is tiny with an LM head of Llama-2's 32000 entries, where the saving is largest.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from llark.config import load_config
from llark.data import ExampleBuilder, collate
from llark.distributed import DistEnv, cpu_computes_bf16, uses_bf16
from llark.model import LLark, build_lm, projector_channel_families
from llark.synthetic import PROBE_ANSWER, PROBE_QUESTIONS, PROBE_WORDS
from llark.templates import get_template
from llark.tokenizer import add_llark_tokens, train_bpe_tokenizer
from train import compile_decoder_layers

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FRAMES = {"debug": (8, 24), "tiny": (625, 625), "tiny-32k": (625, 625)}
CONFIG_FILE = {"debug": "debug", "tiny": "tiny", "tiny-32k": "tiny"}
HEAD_SIZE = {"tiny-32k": 32000}  # LM vocabulary (head rows) when it differs from the BPE's


def make_batches(model, builder, batch_size: int, frames: tuple[int, int], count: int, pack: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    batches = []
    for _ in range(count):
        examples = []
        for _ in range(batch_size):
            features = rng.normal(size=(int(rng.integers(frames[0], frames[1] + 1)), model.config.audio_dim))
            answer = PROBE_ANSWER.format(word=pick.choice(PROBE_WORDS))
            examples.append(builder(features.astype(np.float32), pick.choice(PROBE_QUESTIONS), answer, pick))
        batches.append(collate(examples, model.ids.pad, pack=pack))
    return batches


@dataclass
class Variant:
    model: LLark
    label_only_logits: bool = True
    bf16: bool = False


def time_interleaved(variants: dict[str, Variant], batches, warmup: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step after the warm-up, and the first step's seconds, for each variant; the
    variants alternate step by step, so load drift on a shared machine hits both alike."""
    optimizers = {k: torch.optim.AdamW([p for p in v.model.parameters() if p.requires_grad], lr=1e-4)
                  for k, v in variants.items()}
    seconds: dict[str, list[float]] = {k: [] for k in variants}
    for batch in batches:
        for name, variant in variants.items():
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.bf16):
                loss = variant.model(**batch, label_only_logits=variant.label_only_logits)
                loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            seconds[name].append(time.perf_counter() - started)
    return ({k: statistics.median(v[warmup:]) for k, v in seconds.items()}, {k: v[0] for k, v in seconds.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="debug,tiny,tiny-32k")
    parser.add_argument("--compare", choices=("logits", "compile", "precision", "attention"), default="logits",
                        help="label-only against full logits, eager against train.compile, fp32 against bf16, or "
                             "sdpa against eager attention")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    names = {"logits": ("label-only", "full-logits"), "compile": ("eager", "compiled"), "precision": ("fp32", "bf16"),
             "attention": ("sdpa", "eager-attn")}[args.compare]
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.steps} steps after {args.warmup} warm-up; "
          f"this CPU {'computes' if cpu_computes_bf16() else 'emulates'} bf16")
    print(f"{'config':9}{'params':>10} {'batch':>5} {'tok/step':>8} {names[0] + ' tok/s':>17} {names[1] + ' tok/s':>18} "
          f"{'ratio':>6}" + ("  first step (compiling)" if args.compare == "compile" else ""))
    for config_name in args.configs.split(","):
        cfg = load_config(CONFIGS / f"{CONFIG_FILE[config_name]}.yaml")
        torch.manual_seed(0)
        texts = [*PROBE_QUESTIONS, *(PROBE_ANSWER.format(word=w) for w in PROBE_WORDS)] * 4
        tokenizer = train_bpe_tokenizer(texts, cfg.model.lm.bpe_vocab_size)
        ids = add_llark_tokens(tokenizer)
        builder = ExampleBuilder(tokenizer, ids, get_template(cfg.model.template), cfg.model.max_length,
                                 audio_pool=cfg.model.audio_pool)
        models = []
        # Same initial weights and batches for both; --compare attention builds them with sdpa and eager attention.
        lm_configs = ([replace(cfg.model.lm, attention=attention) for attention in ("sdpa", "eager")]
                      if args.compare == "attention" else [cfg.model.lm] * 2)
        for lm_config in lm_configs:
            torch.manual_seed(0)
            lm = build_lm(lm_config, HEAD_SIZE.get(config_name, ids.base_vocab_size))
            models.append(LLark(cfg.model, lm, ids, len(tokenizer), projector_channel_families(cfg)).train())
        if args.compare == "logits":
            variants = {names[0]: Variant(models[0]), names[1]: Variant(models[1], label_only_logits=False)}
            pack = False
        elif args.compare == "compile":
            bf16 = uses_bf16(cfg.train.precision, torch.device("cpu"))
            if not compile_decoder_layers(models[1], DistEnv()):
                raise SystemExit("no C++ compiler: torch.compile cannot run on this CPU")
            variants = {names[0]: Variant(models[0], bf16=bf16), names[1]: Variant(models[1], bf16=bf16)}
            pack = cfg.data.pack_examples
        else:  # precision or attention: the config's training otherwise (compiled layers, packed rows)
            if cfg.train.compile and not all(compile_decoder_layers(model, DistEnv()) for model in models):
                raise SystemExit("no C++ compiler: torch.compile cannot run on this CPU")
            if args.compare == "precision":  # fp32 and bf16
                variants = {names[0]: Variant(models[0]), names[1]: Variant(models[1], bf16=True)}
            else:  # the precision train.precision=auto picks, for both
                bf16 = uses_bf16(cfg.train.precision, torch.device("cpu"))
                variants = {names[0]: Variant(models[0], bf16=bf16), names[1]: Variant(models[1], bf16=bf16)}
            pack = cfg.data.pack_examples
        batches = make_batches(models[0], builder, cfg.train.batch_size, FRAMES[config_name], args.steps + args.warmup, pack)
        tokens = statistics.mean(float(b["attention_mask"].sum()) for b in batches)
        timings, first = time_interleaved(variants, batches, args.warmup)
        params = sum(p.numel() for p in models[0].parameters())
        a, b = timings[names[0]], timings[names[1]]
        print(f"{config_name:9}{params:>10,} {cfg.train.batch_size:>5} {tokens:>8.0f} {tokens / a:>17,.0f} "
              f"{tokens / b:>18,.0f} {b / a if args.compare == 'logits' else a / b:>5.2f}x"
              + (f"  {first[names[1]]:.1f} s" if args.compare == "compile" else ""))


if __name__ == "__main__":
    main()
