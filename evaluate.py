"""Evaluate a checkpoint with music-information-retrieval metrics, baselines, intervals and audio ablations.

    python evaluate.py --checkpoint runs/tiny/checkpoints/step-001000 --manifest data/demo/eval.jsonl --out results/
    python evaluate.py ... --ablations none --bootstrap 200          # faster: no ablations, fewer resamples

Manifest: JSON lines {"id", "question", "task", "gold", "audio" | "features", ["start", "end"], ["options"], ["groups"]}
  audio     path of an audio file (relative to the manifest); start/end seconds (default the first 25 s)
  groups    the subsets the item belongs to, e.g. ["tunes", "no drums"] (clips manifests: the clip's source and
            whether it has drums): where a task's items name two or more distinct groups, it is also scored on
            each group's items (with one, there is nothing to set it against)
  features  path of a [T, D] .npy made by the checkpoint's encoder (preprocessing/encode.py)
  task      key        gold "F# minor"          MIREX weighted score (mir_eval), exact accuracy
            tempo      gold 96.0                Acc1 (within 4 %), Acc2 (also x2, x3, x1/2, x1/3)
            meter      gold "6/8"               accuracy
            instruments gold ["Flute", "Drums"] micro and macro F1 over instrument classes
            genre      gold "jazz"              accuracy of the first genre named
            caption    gold "A slow ..."        BLEU-4 (sacrebleu), ROUGE-L F1
            mcq        gold "B", options {"A": "...", ...}   accuracy: parsed letter, and LM likelihood
            abc_transcription gold "X:1 ..."    note F1 (mir_eval.transcription, onsets only)
            exact / contains  gold "text"       string match (probe tasks)
  Make manifests with preprocessing/make_eval_manifest.py (our clips, GiantSteps, GTZAN, CSV).

Systems in the same run: the model with its audio; with features zeroed and shuffled across clips
(a model that listens falls to about the majority baseline); majority class, constant answer and
random baselines; the classic librosa key and tempo estimators on the same audio spans (items with
`audio`; in --classic-workers processes, 2 by default). Every metric has a 95 % bootstrap interval.
With --answer-workers 2 the model answers the audio and an ablated condition side by side, each process
with its share of the CPU's threads: the same answers, and the demo's evaluation in 0.78x the time (README).
Unparseable answers count as wrong and are reported per task. With groups in the manifest, the model and
the librosa estimators are also scored on each group's items (results.json: tasks.<task>.groups). Writes
results.json, report.md, predictions.jsonl and PNG plots to --out.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from llark.evaluation import get_task, item_counts
from llark.evaluation.baselines import classic_estimates, classic_pool, constant, load_span, majority, uniform_random
from llark.evaluation.bootstrap import bootstrap
from llark.evaluation.tasks.abc_generation import AbcGenerationTask
from llark.evaluation.report import key_confusion_png, report_markdown, task_bars_png, tempo_scatter_png
from llark.inference import DecodingOptionsError, EncoderFitMismatch, check_encoder_fit_for, read_manifest
from llark.jsonl import file_sha256, write_json_atomic, write_jsonl_atomic, write_text_atomic

ABLATIONS = ("zeroed", "shuffled")
GROUP_SYSTEMS = ("llark", "classic (librosa)")  # scored per group too: what the model hears against librosa


def ablate(features: list[np.ndarray | None], condition: str, seed: int) -> list[np.ndarray | None]:
    """The features the model hears under each condition (a shuffle is a seeded derangement of the
    audio clips). Text-only items (None: ABC tasks) have no audio to ablate and stay as they are."""
    if condition == "audio":
        return features
    if condition == "zeroed":
        return [None if f is None else np.zeros_like(f) for f in features]
    if condition == "shuffled":
        audio = [i for i, f in enumerate(features) if f is not None]
        if len(audio) < 2:
            raise ValueError("the shuffled ablation needs at least 2 clips")
        order = np.random.default_rng(seed).permutation(audio)
        shuffled = list(features)
        for i in range(len(order)):  # each clip gets the next clip's features in a random cycle
            shuffled[order[i]] = features[order[(i + 1) % len(order)]]
        return shuffled
    raise ValueError(f"unknown ablation {condition!r}; use zeroed or shuffled")


def with_intervals(task, predicted: list, gold: list, samples: int, seed: int) -> dict[str, dict[str, float]]:
    values = task.metrics(predicted, gold)
    intervals = bootstrap(task.metrics, predicted, gold, samples=samples, seed=seed, counts=item_counts(task))
    intervals = {m: intervals.get(m, (v, v)) for m, v in values.items()}  # --bootstrap 0: no interval
    return {m: {"value": v, "low": intervals[m][0], "high": intervals[m][1]} for m, v in values.items()}


def scored_by_group(task, groups: list[list[str]], gold: list, predictions: dict[str, list], samples: int,
                    seed: int) -> dict[str, dict[str, Any]]:
    """{group: {"n", "systems": GROUP_SYSTEMS' metrics on the group's items}} when the task's items name
    two or more groups (an item counts in each of its groups); {} otherwise. Groups come in the order of
    their place in the items' lists, then of first appearance: ["generated", "tunes", "drums", "no drums"]."""
    place: dict[str, int] = {}
    for item_groups in groups:
        for position, name in enumerate(item_groups):
            place[name] = min(place.get(name, position), position)
    names = sorted(place, key=lambda name: place[name])  # stable: first appearance breaks ties
    if len(names) < 2:
        return {}
    scored = {}
    for name in names:
        members = [i for i, item_groups in enumerate(groups) if name in item_groups]
        subset = [gold[i] for i in members]
        scored[name] = {"n": len(members), "systems": {
            label: with_intervals(task, [predictions[label][i] for i in members], subset, samples, seed)
            for label in GROUP_SYSTEMS if label in predictions}}
    return scored


def prepare_items(manifest: str, answerer) -> tuple[list[dict], list[Any], list[np.ndarray], list[dict]]:
    """Items whose gold parses and whose features load; the rest become failures (id + reason)."""
    items = read_manifest(manifest, required=("id", "question", "task", "gold"))
    check_encoder_fit_for(answerer.model, items)  # raises EncoderFitMismatch for the run, not per item
    ready, golds, features, failures = [], [], [], []
    loaded: dict[tuple, np.ndarray | None] = {}  # each clip read once: a clips manifest asks four questions of it
    for item in items:
        try:
            groups = item.get("groups", [])
            if not (isinstance(groups, list) and all(isinstance(g, str) and g and g == g.strip() for g in groups)):
                raise ValueError(f"'groups' must be a list of non-empty names without surrounding spaces, got {groups!r}")
            gold = get_task(item["task"]).parse_gold(item["gold"])
            clip = answerer.checked_features(item, loaded)
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            failures.append({"id": item["id"], "task": item["task"], "error": f"{type(err).__name__}: {err}"})
            continue
        ready.append(item)
        golds.append(gold)
        features.append(clip)
    return ready, golds, features, failures


def answer_conditions(args: argparse.Namespace, answerer, items: list[dict], features: list[np.ndarray | None],
                      conditions: list[str]) -> dict[str, list[str]]:
    """{condition: the model's answer to every item, the features ablated as the condition says}.

    With --answer-workers N > 1, the first condition is answered in this process while the others go to N - 1
    spawned processes, each loading the checkpoint again (build_answerer), and every process keeps 1/N of
    this one's threads. A small model's matrices keep a second thread only partly busy on a CPU (on the demo's
    test questions two threads answer in about 0.75x the time of one), so two conditions side by side finish
    sooner than one after the other with both threads. Each condition's answers are one `answer` call with
    the same seed either way, so they do not depend on where they were made (tests/test_evaluate.py)."""
    import torch

    questions = [item["question"] for item in items]
    task_names = [item["task"] for item in items]  # MBR by each task's score; --exact-number-mbr, --head-weight
    workers = min(args.answer_workers, len(conditions))
    answers: dict[str, list[str]] = {}
    if workers == 1:
        for condition in conditions:
            answers[condition] = answer_condition(answerer, questions, ablate(features, condition, args.seed), task_names)
            print(f"[evaluate] answered {len(items)} questions ({condition})", file=sys.stderr)
        return answers
    threads = torch.get_num_threads()
    share = max(1, threads // workers)
    # Spawned, not forked: this process holds torch's thread pool, which a fork copies in a state that can hang.
    with ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"), initializer=_answer_worker,
                             initargs=(args, share)) as pool:
        others = {condition: pool.submit(_answer_in_worker, questions, ablate(features, condition, args.seed), task_names)
                  for condition in conditions[1:]}
        torch.set_num_threads(share)
        try:
            answers[conditions[0]] = answer_condition(answerer, questions, ablate(features, conditions[0], args.seed),
                                                      task_names)
        finally:
            torch.set_num_threads(threads)
        print(f"[evaluate] answered {len(items)} questions ({conditions[0]})", file=sys.stderr)
        for condition, future in others.items():
            answers[condition] = future.result()
            print(f"[evaluate] answered {len(items)} questions ({condition}, in a worker process)", file=sys.stderr)
    return answers  # in the order of `conditions`: the first, then the others as submitted


def answer_condition(answerer, questions: list[str], features: list[np.ndarray | None], task_names: list[str]) -> list[str]:
    return answerer.answer(questions, features, tasks=[get_task(name) for name in task_names])


_worker_answerer = None  # an --answer-workers process's own model, built once by _answer_worker


def _answer_worker(args: argparse.Namespace, threads: int) -> None:
    global _worker_answerer
    import torch

    from llark.cli import build_answerer

    torch.set_num_threads(threads)
    _worker_answerer = build_answerer(args)


def _answer_in_worker(questions: list[str], features: list[np.ndarray | None], task_names: list[str]) -> list[str]:
    return answer_condition(_worker_answerer, questions, features, task_names)


def classic_wave_loader(sample_rate: int = 22050):
    return partial(load_span, sample_rate=sample_rate)  # a partial, not a closure: classic_pool's processes pickle it


def main(argv: list[str] | None = None) -> int:
    from llark.cli import add_generation_arguments, build_answerer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True, help="results directory")
    parser.add_argument("--ablations", default="zeroed,shuffled", help="comma list of zeroed, shuffled; or none")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95 %% intervals (0: none, low = high = value)")
    parser.add_argument("--no-classic", action="store_true", help="skip the librosa key/tempo estimators")
    parser.add_argument("--classic-workers", type=int, default=2,
                        help="processes for the librosa estimators (1: in this one; default 2)")
    parser.add_argument("--answer-workers", type=int, default=1,
                        help="processes answering the conditions (the audio, each ablation) side by side, sharing "
                             "the CPU's threads, each with its own copy of the model (1, the default: one after "
                             "another in this process)")
    add_generation_arguments(parser)
    args = parser.parse_args(argv)
    if args.classic_workers < 1:
        parser.error(f"--classic-workers must be >= 1 (1: in this process), got {args.classic_workers}")
    if args.answer_workers < 1:
        parser.error(f"--answer-workers must be >= 1 (1: in this process), got {args.answer_workers}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    conditions = ["audio"] + [c for c in args.ablations.split(",") if c and c != "none"]
    for condition in conditions[1:]:
        if condition not in ABLATIONS:
            parser.error(f"unknown ablation {condition!r}; use {', '.join(ABLATIONS)} or none")

    # --- model, items and answers under each condition ---------------------------------------
    try:
        answerer = build_answerer(args)
    except DecodingOptionsError as err:
        parser.error(str(err))
    try:
        items, golds, features, failures = prepare_items(args.manifest, answerer)
    except EncoderFitMismatch as err:
        print(f"[evaluate] {args.checkpoint}: {err}", file=sys.stderr)
        return 1
    if not items:
        print(f"[evaluate] no item could be evaluated ({len(failures)} failed)", file=sys.stderr)
        return 1
    if all(f is None for f in features) and len(conditions) > 1:
        print("[evaluate] text-only manifest: no audio to ablate", file=sys.stderr)
        conditions = ["audio"]
    answers = answer_conditions(args, answerer, items, features, conditions)

    # --- score each task: model, ablations, baselines ------------------------------------------
    by_task: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_task[item["task"]].append(index)
    results: dict[str, Any] = {"checkpoint": args.checkpoint, "manifest": args.manifest,
                               "manifest_sha256": file_sha256(args.manifest), "answered": len(items),
                               "failed": len(failures), "failures": failures, "bootstrap_samples": args.bootstrap,
                               "decoding": asdict(answerer.options), "tasks": {}, "plots": []}
    classic: dict[str, list] = {}  # the librosa estimators, where a task has them and every item has its audio
    if not args.no_classic:
        with classic_pool(args.classic_workers) as pool:
            for name, indices in by_task.items():
                task_items = [items[i] for i in indices]
                if all(item.get("audio") for item in task_items):
                    estimates = classic_estimates(name, task_items, classic_wave_loader(), pool)
                    if estimates is not None:
                        classic[name] = estimates
    for name, indices in by_task.items():
        task = get_task(name)
        gold = [golds[i] for i in indices]
        task_items = [items[i] for i in indices]
        predictions, unparseable = {}, {}  # system -> one prediction per item of the task
        for condition in conditions:
            parsed = [task.parse(answers[condition][i]) for i in indices]
            unparseable[condition] = sum(p is None for p in parsed)
            predictions["llark" if condition == "audio" else f"llark, features {condition}"] = parsed
        if name == "mcq" and all("options" in it for it in task_items):
            chosen = []
            for item, i in zip(task_items, indices):
                letters = sorted(item["options"])
                scores = answerer.option_scores(item["question"], features[i], [item["options"][k] for k in letters])
                chosen.append(letters[int(np.argmax(scores))])
            predictions["llark, option likelihood"] = chosen
        if isinstance(task, AbcGenerationTask):  # tunes, not labels: its own side-by-side systems
            baselines = task.baselines(gold)
        else:
            baselines = {"majority": majority(gold), "constant": constant(task, gold),
                         "random": uniform_random(gold, args.seed)}
        if name in classic:
            baselines["classic (librosa)"] = classic[name]
        predictions.update(baselines)
        systems = {label: with_intervals(task, values, gold, args.bootstrap, args.seed)
                   for label, values in predictions.items()}
        results["tasks"][name] = {"n": len(indices), "unparseable": unparseable, "systems": systems}
        groups = scored_by_group(task, [item.get("groups", []) for item in task_items], gold, predictions, args.bootstrap,
                                 args.seed)
        if groups:
            results["tasks"][name]["groups"] = groups
        if name == "key":
            key_confusion_png(out / "key_confusion.png", predictions["llark"], gold)
            results["plots"].append("key_confusion.png")
        if name == "tempo":
            tempo_scatter_png(out / "tempo_scatter.png", predictions["llark"], gold, baselines.get("classic (librosa)"))
            results["plots"].append("tempo_scatter.png")
        summary = ", ".join(f"{m} {v['value']:.3f}" for m, v in systems["llark"].items())
        print(f"[evaluate] {name}: {summary} (unparseable {unparseable['audio']}/{len(indices)})", file=sys.stderr)

    # --- write ---------------------------------------------------------------------------------
    task_bars_png(out / "tasks.png", results)
    results["plots"].append("tasks.png")
    write_jsonl_atomic(out / "predictions.jsonl", (
        {"id": item["id"], "task": item["task"], "condition": condition, "question": item["question"],
         "gold": item["gold"], "answer": answers[condition][i]}
        for condition in conditions for i, item in enumerate(items)))
    write_json_atomic(out / "results.json", results)
    write_text_atomic(out / "report.md", report_markdown(results))
    print(f"[evaluate] {len(failures)} items failed; results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
