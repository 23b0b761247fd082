"""Evaluate a checkpoint on MusicTheoryBench-format questions with ChatMusician's protocol: offline on
a generated set, or on the real benchmark when you have its file (llark/theory_bench.py lists the fields).

    python preprocessing/make_theory_questions.py --count 300 --dev 5 --out data/theory/questions.json
    python evaluate_theory.py --checkpoint runs/abc/checkpoints/step-001000 \\
        --questions data/theory/questions.json --out results/theory
    python evaluate_theory.py --checkpoint CKPT --questions mtb/test_and_dev.jsonl --shots 5 --out results/mtb-5shot
    python evaluate_theory.py --checkpoint CKPT --count 120 --out results/theory     # generate in memory
    python evaluate_theory.py ... --device cuda --bootstrap 200                     # one GPU, faster intervals

Scoring: `likelihood` ranks " A".." D" after the prompt, averaged over --shuffles option orders
(the paper's figure), plus the consensus of the averaged log-likelihoods; `letter` generates an answer
and parses the letter. Prompting: `template` (default) asks through the checkpoint's own chat template
with no audio frames; `raw` scores the plain prompt with the checkpoint's LM as ChatMusician's harness
did (likelihood only). Only split "test" questions are scored; --shots k puts the first k "dev" ones,
solved, in front. Writes results.json, report.md and predictions.jsonl to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llark.jsonl import write_jsonl_atomic
from llark.theory_bench import (SUBJECTS, answerer_generator, answerer_scorer, causal_lm_scorer, evaluate,
                                few_shot_examples, generate_questions, load_musictheorybench)

SCORINGS = ("likelihood", "letter")
SYSTEM_LABELS = {"likelihood": "likelihood, mean over shuffles", "likelihood_consensus": "likelihood, consensus",
                 "letter": "parsed letter"}


def _cell(group: dict[str, Any]) -> str:
    if not group.get("n"):
        return "-"
    return f"{100 * group['accuracy']:.1f} % [{100 * group['low']:.1f}, {100 * group['high']:.1f}] (n {group['n']})"


def _row(label: str, cells: list[str]) -> str:
    return "| " + " | ".join([label, *cells]) + " |"


def report_markdown(report: dict[str, Any]) -> str:
    """Accuracy tables: systems by subject (with chance and the paper's figures), then by category."""
    groups = ("overall", *SUBJECTS)
    lines = [f"# Music theory multiple choice ({report['questions']} questions, {report['shots']}-shot, "
             f"{report['shuffles']} shuffles)", "", _row("system", list(groups)), _row("---", ["---"] * len(groups))]
    for name, results in report["systems"].items():
        lines.append(_row(SYSTEM_LABELS.get(name, name), [_cell(results[g]) for g in groups]))
    chance = report["chance"]
    lines.append(_row("chance", ["-" if chance[g] is None else f"{100 * chance[g]:.1f} %" for g in groups]))
    for name, figures in report["reported"].items():
        lines.append(_row(f"{name} (paper, MusicTheoryBench zero-shot)",
                          ["-", f"{figures['knowledge']} %", f"{figures['reasoning']} %"]))
    categories = sorted({c for results in report["systems"].values() for c in results["categories"]})
    if categories:
        systems = list(report["systems"])
        lines += ["", _row("category", [SYSTEM_LABELS.get(n, n) for n in systems]), _row("---", ["---"] * len(systems))]
        for category in categories:
            lines.append(_row(category, [_cell(report["systems"][n]["categories"].get(category, {})) for n in systems]))
    failed = {k: len(v) for k, v in report["failed"].items() if v}
    lines += ["", f"Failed (left out): {failed or 'none'}; unparseable letters (counted wrong): "
                  f"{report.get('unparseable', '-')}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from llark.cli import add_generation_arguments, build_answerer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--questions", help="a .json/.jsonl file in MusicTheoryBench's layout (default: generate)")
    parser.add_argument("--count", type=int, default=300, help="without --questions: how many to generate")
    parser.add_argument("--question-seed", type=int, default=0, help="without --questions: the generator's seed")
    parser.add_argument("--out", required=True, help="results directory")
    parser.add_argument("--shots", type=int, default=0, help="solved dev questions in front (ChatMusician: 0 or 5)")
    parser.add_argument("--shuffles", type=int, default=5, help="option orders per question (likelihood)")
    parser.add_argument("--scoring", default="likelihood,letter", help="comma list of likelihood, letter")
    parser.add_argument("--prompting", choices=("template", "raw"), default="template")
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for the 95 %% intervals")
    add_generation_arguments(parser)
    parser.set_defaults(max_new_tokens=8)  # a letter, maybe with its option text
    args = parser.parse_args(argv)
    scoring = [s for s in args.scoring.split(",") if s]
    if not scoring or any(s not in SCORINGS for s in scoring):
        parser.error(f"--scoring takes a comma list of {', '.join(SCORINGS)}")
    if args.prompting == "raw" and "letter" in scoring:
        parser.error("--prompting raw scores likelihood only; use --scoring likelihood")

    # --- questions -----------------------------------------------------------------------------
    if args.questions:
        questions = load_musictheorybench(args.questions)
    else:
        questions = generate_questions(args.count, seed=args.question_seed, dev=max(args.shots, 5))
    try:
        shots = few_shot_examples(questions, args.shots) if args.shots else []
    except ValueError as err:
        parser.error(str(err))
    test = [q for q in questions if q.split != "dev"]
    print(f"[theory] {len(test)} test questions, {len(shots)} shots", file=sys.stderr)

    # --- model and scoring ---------------------------------------------------------------------
    answerer = build_answerer(args)
    answerer.model.eval()
    if args.prompting == "raw":
        scorer = causal_lm_scorer(answerer.model.base_lm(), answerer.model.tokenizer)
    else:
        scorer = answerer_scorer(answerer)
    report = evaluate(test, scorer=scorer if "likelihood" in scoring else None,
                      generate=answerer_generator(answerer) if "letter" in scoring else None,
                      shots=shots, shuffles=args.shuffles, seed=args.seed, bootstrap_samples=args.bootstrap,
                      progress=True)
    report.update(checkpoint=args.checkpoint, questions_file=args.questions, prompting=args.prompting)

    # --- write ---------------------------------------------------------------------------------
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_atomic(out / "predictions.jsonl", report.pop("items"))
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(report))
    for name, groups in report["systems"].items():
        print(f"[theory] {SYSTEM_LABELS.get(name, name)}: " + ", ".join(
            f"{g} {_cell(groups[g])}" for g in ("overall", *SUBJECTS)), file=sys.stderr)
    print(f"[theory] results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
