"""How much of what a checkpoint knows about tempo each way of decoding reads: every BPM scored as the answer.

    python benchmarks/tempo_decoding.py                      # the demo's checkpoint on its test manifest
    python benchmarks/tempo_decoding.py --checkpoint DIR --manifest data/demo/eval-val.jsonl --limit 50

For each tempo question of an evaluation manifest (evaluate.py's format), the answer "The tempo is
about N BPM." is scored for every N from 30 to 300: the model's distribution over the number it would
state (the words around it are the same for every N, so they cancel). Prints tempo Acc1 and Acc2 of:
- the likeliest number, which greedy decoding approximates;
- the number most likely within 4 % of the truth (relative to the truth, as Acc1): minimum Bayes risk
  (MBR) for Acc1, exactly, which `--exact-number-mbr` decodes (llark/mbr.py: most_probable_number);
- MBR over n numbers sampled at temperature T, which `--mbr-samples n --temperature T` approximates
  (llark/mbr.py; the mean of 5 draws);
and the mean probability within 4 % of the gold tempo, and on the likeliest number alone.
On the demo's val split with row 24's checkpoint (docs/demo-experiments.md, "How the recipe was chosen") the likeliest
number scored Acc1 0.587, the exact MBR choice 0.699 and 16 samples at T=0.5 0.669, while 0.52 of the
probability lay within 4 % of the gold tempo.
About 1.2 s per question on 2 cores when every answer was read whole; the prompt is now read
once for all 271 (Answerer.number_log_probs, as --exact-number-mbr scores).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from llark.evaluation import get_task
from llark.inference import Answerer, GenerationOptions, read_manifest
from llark.mbr import most_probable_number, numbers_agree
from llark.model import LLark

TEMPO = get_task("tempo").number_answer  # 30..300 BPM
CANDIDATES = np.asarray(TEMPO.values)
TOLERANCE = GenerationOptions().mbr_number_tolerance  # 4 %, tempo Acc1's


def number_log_probs(answerer: Answerer, question: str, features: np.ndarray) -> np.ndarray:
    """Log-probability of answering "The tempo is about N BPM." for each N in CANDIDATES (up to a constant)."""
    return answerer.number_log_probs(question, features, "The tempo is about 120 BPM.", TEMPO)


def near(values: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """[len(centres), len(values)]: whether each value agrees with each centre as MBR decoding counts it."""
    return numbers_agree(values[None, :], centres[:, None], TOLERANCE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/demo/checkpoints/step-001200")
    parser.add_argument("--manifest", default="data/demo/eval.jsonl")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N tempo questions (0: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    answerer = Answerer(LLark.from_pretrained(args.checkpoint).eval())
    items = [item for item in read_manifest(args.manifest) if item.get("task") == "tempo"]
    items = items[: args.limit or None]
    if not items:
        raise SystemExit(f"{args.manifest}: no tempo questions")
    gold = np.array([float(item["gold"]) for item in items])
    log_probs = np.stack([number_log_probs(answerer, item["question"], answerer.features_for(item)) for item in items])

    choices: dict[str, np.ndarray] = {}
    probabilities = np.exp(log_probs - log_probs.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    choices["likeliest number (greedy)"] = CANDIDATES[probabilities.argmax(1)]
    choices["most likely within 4 % of the truth (exact MBR)"] = CANDIDATES[
        [most_probable_number(CANDIDATES, row, TOLERANCE) for row in log_probs]]  # what --exact-number-mbr picks
    rng = np.random.default_rng(0)
    for temperature in (0.5, 1.0):
        tempered = np.exp((log_probs - log_probs.max(1, keepdims=True)) / temperature)
        tempered /= tempered.sum(1, keepdims=True)
        for samples in (8, 16, 32):
            draws = []
            for _ in range(5):
                picks = []
                for row in tempered:
                    sampled = CANDIDATES[rng.choice(len(CANDIDATES), samples, p=row)]
                    picks.append(sampled[near(sampled, sampled).sum(1).argmax()])  # first on a tie, as mbr.py
                draws.append(picks)
            choices[f"MBR over {samples} samples at T={temperature}"] = np.array(draws)

    task = get_task("tempo")
    print(f"[tempo decoding] {args.checkpoint}: {len(items)} tempo questions of {args.manifest}")
    print("| decoding | Acc1 | Acc2 |\n|---|---|---|")
    for name, chosen in choices.items():
        runs = [task.metrics(list(map(float, row)), list(gold)) for row in np.atleast_2d(chosen)]
        print(f"| {name} | {np.mean([r['acc1'] for r in runs]):.3f} | {np.mean([r['acc2'] for r in runs]):.3f} |")
    mass_at_gold = (probabilities * near(CANDIDATES, gold)).sum(1).mean()
    print(f"mean probability within 4 % of the gold tempo {mass_at_gold:.3f}; "
          f"on the likeliest number {probabilities.max(1).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
