"""report.md and PNG plots from evaluate.py's results: key confusion matrix, tempo scatter, and per-task
bars with 95 % intervals for the model, its audio ablations and the baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def key_index(key: str) -> int:
    """0-11 major keys, 12-23 minor keys, enharmonic spellings merged."""
    tonic, mode = key.split()
    pitch = (_SEMITONE[tonic[0]] + tonic.count("#") - tonic[1:].count("b")) % 12
    return pitch + (12 if mode == "minor" else 0)


def key_confusion_png(path: Path, predicted: list[str | None], gold: list[str]) -> None:
    matrix = np.zeros((24, 25))
    for p, g in zip(predicted, gold):
        matrix[key_index(g), key_index(p) if p else 24] += 1
    labels = [f"{pc} maj" for pc in PITCH_CLASSES] + [f"{pc} min" for pc in PITCH_CLASSES]
    fig, ax = plt.subplots(figsize=(10, 9))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(25), labels + ["unparsed"], rotation=90, fontsize=7)
    ax.set_yticks(range(24), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title("Key confusion (model, with audio)")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            ax.text(col, row, int(count), ha="center", va="center", fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def tempo_scatter_png(path: Path, predicted: list[float | None], gold: list[float], classic: list[float] | None) -> None:
    fig, ax = plt.subplots(figsize=(6, 6))
    points = [(g, p) for p, g in zip(predicted, gold) if p]
    if points:
        ax.scatter(*zip(*points), s=12, label="model", alpha=0.7)
    if classic:
        ax.scatter(gold, classic, s=10, marker="x", label="librosa", alpha=0.6)
    span = np.array([20, 420])
    for factor, style in ((1, "-"), (2, ":"), (0.5, ":"), (3, "--"), (1 / 3, "--")):
        ax.plot(span, span * factor, style, color="grey", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlim=(30, 320), ylim=(30, 320), xlabel="gold BPM", ylabel="predicted BPM",
           title="Tempo: predicted vs gold (lines: x1, x2, x1/2, x3, x1/3)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def task_bars_png(path: Path, results: dict[str, Any]) -> None:
    tasks = list(results["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        systems = results["tasks"][task]["systems"]
        metric = next(iter(next(iter(systems.values()))))  # the task's first metric
        names = list(systems)
        values = np.array([systems[s][metric]["value"] for s in names])
        errors = np.array([[values[i] - systems[s][metric]["low"], systems[s][metric]["high"] - values[i]]
                           for i, s in enumerate(names)]).T
        ax.bar(range(len(names)), values, yerr=errors, capsize=3, color=["C0" if s == "llark" else "C7" for s in names])
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{task}: {metric}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def decoding_summary(options: dict[str, Any]) -> str:
    """How the answers were decoded, in words: "greedy", "sampled at ..." or "minimum Bayes risk over 16 ..."."""
    exact = ("; a tempo's number: the BPM most likely within "
             f"{options.get('mbr_number_tolerance', 0.04):.0%} of the truth, every BPM scored") if options.get("exact_number_mbr") else ""
    if options.get("mbr_samples", 0) > 0:
        weighed = ", each answer weighed by its probability" if options.get("mbr_weighting") == "probability" else ""
        points = options.get("tempo_belief_points", 1)  # results written before the option: one point a class
        spread = f"; a tempo class as {points} tempos across its 4%" if points > 1 else ""
        heads = (f", the label heads' reading weighed {options['head_weight']:g} beside the samples{spread}"
                 if options.get("head_weight", 0) > 0 else "")
        return (f"minimum Bayes risk over {options['mbr_samples']} samples at temperature {options['temperature']} "
                f"(a task's answers agree as the task scores them, other answers by their words, numbers within "
                f"{options['mbr_number_tolerance']:.0%}{weighed}{heads}){exact}")
    if options.get("do_sample"):
        return f"sampled at temperature {options['temperature']} (seed {options['seed']}){exact}"
    return "greedy" + exact


def _cell(value: dict[str, float]) -> str:
    return f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def report_markdown(results: dict[str, Any]) -> str:
    lines = [f"# Evaluation of `{results['checkpoint']}`", "",
             f"Manifest `{results['manifest']}`: {results['answered']} questions answered, {results['failed']} failed "
             f"(see results.json). Intervals: 95 % bootstrap over items ({results['bootstrap_samples']} resamples).", ""]
    if "decoding" in results:
        lines += [f"Decoding: {decoding_summary(results['decoding'])}.", ""]
    for task, entry in results["tasks"].items():
        unparsed = ", ".join(f"{c} {n}" for c, n in entry["unparseable"].items())
        lines += [f"## {task} (n = {entry['n']}; unparseable answers: {unparsed})", ""]
        metrics = list(next(iter(entry["systems"].values())))
        lines += ["| system | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        for system, values in entry["systems"].items():
            lines.append(f"| {system} | " + " | ".join(_cell(values[m]) for m in metrics) + " |")
        lines.append("")
        if entry.get("groups"):
            lines += [f"By group ({task}):", "", "| group | n | system | " + " | ".join(metrics) + " |",
                      "|---" * (len(metrics) + 3) + "|"]
            for group, scored in entry["groups"].items():
                for system, values in scored["systems"].items():
                    lines.append(f"| {group} | {scored['n']} | {system} | " + " | ".join(_cell(values[m]) for m in metrics)
                                 + " |")
            lines.append("")
    lines += ["Plots: " + ", ".join(f"`{p}`" for p in results["plots"]), ""]
    return "\n".join(lines)
