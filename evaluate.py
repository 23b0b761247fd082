"""Evaluate a checkpoint on a manifest of questions with gold answers, with audio ablations.

    python evaluate.py --checkpoint runs/debug/checkpoints/step-000040 --manifest eval.jsonl --out results/
    python evaluate.py ... --ablations zeroed,shuffled      # the same questions without real audio

Manifest lines (JSON): {"id", "question", "audio" | "features", "task", "gold"}
  task "exact":    the answer, lower-cased without punctuation, equals the gold answer
  task "contains": the gold answer appears in the answer as whole words
Ablations: "zeroed" replaces every clip's features with zeros; "shuffled" gives each question the
features of another clip (a derangement, seeded). A model that listens falls to chance on both.

Writes results.json (accuracy per task and condition), report.md and predictions.jsonl to --out.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from llark.inference import read_manifest
from llark.jsonl import write_jsonl_atomic

TASKS = ("exact", "contains")


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s#/]", " ", text.lower()).split())


def is_correct(task: str, answer: str, gold: str) -> bool:
    if task == "exact":
        return normalise(answer) == normalise(gold)
    if task == "contains":
        return f" {normalise(gold)} " in f" {normalise(answer)} "
    raise ValueError(f"unknown task {task!r}; known: {TASKS}")


def ablate(features: list[np.ndarray], condition: str, seed: int) -> list[np.ndarray]:
    if condition == "audio":
        return features
    if condition == "zeroed":
        return [np.zeros_like(f) for f in features]
    if condition == "shuffled":
        if len(features) < 2:
            raise ValueError("the shuffled ablation needs at least 2 clips")
        order = np.random.default_rng(seed).permutation(len(features))
        shuffled = list(features)
        for i in range(len(order)):  # each clip gets the next clip's features in a random cycle
            shuffled[order[i]] = features[order[(i + 1) % len(order)]]
        return shuffled
    raise ValueError(f"unknown ablation {condition!r}; use zeroed or shuffled")


def score(items: list[dict], answers: list[str]) -> dict[str, dict[str, float]]:
    by_task: dict[str, list[bool]] = defaultdict(list)
    for item, answer in zip(items, answers):
        by_task[item["task"]].append(is_correct(item["task"], answer, item["gold"]))
    return {task: {"n": len(hits), "correct": int(sum(hits)), "accuracy": float(np.mean(hits))}
            for task, hits in sorted(by_task.items())}


def write_report(out: Path, results: dict) -> None:
    lines = [f"# Evaluation of `{results['checkpoint']}`", "", f"Manifest: `{results['manifest']}`, "
             f"{results['answered']} questions answered, {results['failed']} failed.", "",
             "| task | condition | n | accuracy |", "|---|---|---|---|"]
    for condition, tasks in results["conditions"].items():
        for task, row in tasks.items():
            lines.append(f"| {task} | {condition} | {row['n']} | {row['accuracy']:.3f} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    from llark.cli import add_generation_arguments, build_answerer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True, help="results directory")
    parser.add_argument("--ablations", default="", help="comma list of: zeroed, shuffled")
    add_generation_arguments(parser)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    items = read_manifest(args.manifest, required=("id", "question", "task", "gold"))
    for item in items:
        if item["task"] not in TASKS:
            raise ValueError(f"{args.manifest}: item {item['id']}: unknown task {item['task']!r}; known: {TASKS}")
    answerer = build_answerer(args)
    ready, features, failures = [], [], []
    for item in items:
        try:
            clip = answerer.features_for(item)
            answerer.prompt(item["question"], clip)
            features.append(clip)
            ready.append(item)
        except Exception as err:  # recorded per item; the evaluation goes on
            failures.append({"id": item["id"], "error": f"{type(err).__name__}: {err}"})

    conditions = ["audio"] + [c for c in args.ablations.split(",") if c]
    results = {"checkpoint": args.checkpoint, "manifest": args.manifest, "answered": len(ready),
               "failed": len(failures), "failures": failures, "conditions": {}}
    predictions = []
    for condition in conditions:
        answers = answerer.answer([item["question"] for item in ready], ablate(features, condition, args.seed))
        results["conditions"][condition] = score(ready, answers)
        predictions += [{"id": item["id"], "condition": condition, "question": item["question"], "gold": item["gold"],
                         "answer": answer} for item, answer in zip(ready, answers)]
        print(f"[evaluate] {condition}: " + ", ".join(f"{task} {row['accuracy']:.3f}"
              for task, row in results["conditions"][condition].items()), file=sys.stderr)
    write_jsonl_atomic(out / "predictions.jsonl", predictions)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(out, results)
    print(f"[evaluate] {len(failures)} failed; results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
