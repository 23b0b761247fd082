"""The `llark` command; its subcommands mirror the entry-point files.

    llark train --config configs/debug.yaml train.steps=20        # = python train.py ...
    llark evaluate --checkpoint DIR --manifest eval.jsonl --out results/   # = python evaluate.py ...
    llark evaluate-theory --checkpoint DIR --count 120 --out results/theory  # = python evaluate_theory.py ...
    llark ask --checkpoint DIR --manifest in.jsonl --out out.jsonl
    llark ask --checkpoint DIR --audio song.wav --question "What key is this in?"
    llark ask --checkpoint DIR --features clip.npy --question "What key is this in?" --stream
    llark ask --checkpoint DIR --audio song.wav --question "What key is this in?" --question "What is the tempo?"
    llark ask --checkpoint DIR --audio song.wav --track --question "What key is this in?" --task key   # every 25 s
    llark ask --checkpoint DIR --audio song.wav --question "What is the tempo?" --task tempo --exact-number-mbr
    llark ask ... --question "What key?" --task key --question "What is the tempo?" --task tempo --exact-number-mbr
"""

from __future__ import annotations

import argparse
import sys

import torch

from llark.audio import CLIP_SECONDS, audio_info
from llark.label_targets import TEMPO_BELIEF_POINTS
from llark.mbr import MBR_WEIGHTINGS


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation")
    group.add_argument("--max-new-tokens", type=int, default=64)
    group.add_argument("--batch-size", type=int, default=8,
                       help="clips answered together (with --mbr-samples N, N rows each)")
    group.add_argument("--sample", action="store_true", help="sample instead of greedy decoding")
    group.add_argument("--temperature", type=float, default=1.0)
    group.add_argument("--top-k", type=int, default=0, help="0 disables top-k")
    group.add_argument("--top-p", type=float, default=1.0, help="1.0 disables nucleus sampling")
    group.add_argument("--repetition-penalty", type=float, default=1.0,
                       help="> 1 discourages tokens already in the prompt or answer (ChatMusician: 1.1)")
    group.add_argument("--seed", type=int, default=0, help="sampling seed")
    group.add_argument("--mbr-samples", type=int, default=0,
                       help="sample N answers per question and return the one that agrees best with the rest "
                       "(minimum-Bayes-risk decoding, llark/mbr.py); 0: off")
    group.add_argument("--mbr-number-tolerance", type=float, default=0.04,
                       help="with --mbr-samples, for a question of no known task: numbers within this relative "
                       "difference agree (a known task's answers agree as the task scores them); and "
                       "--exact-number-mbr's tolerance (0.04: tempo Acc1)")
    group.add_argument("--mbr-weighting", choices=MBR_WEIGHTINGS, default="count",
                       help="with --mbr-samples: weigh each distinct sampled answer by how often it was sampled "
                       "(count) or by the model's probability of it (probability)")
    group.add_argument("--exact-number-mbr", action="store_true",
                       help="for a question whose task answers with one number (a manifest line's \"task\": "
                       "\"tempo\"; llark ask --task), restate the answer's number as the one most likely within "
                       "--mbr-number-tolerance of the truth, every number the task allows scored in the answer's words")
    group.add_argument("--head-weight", type=float, default=0.0,
                       help="with --mbr-samples, for a question of a known task with a label head: weigh the sampled "
                       "answers against the head's reading of the clip as well, the truth taken as (1 - W) x the "
                       "answers + W x the head (llark/mbr.py); 0: the answers alone")
    group.add_argument("--tempo-belief-points", type=int, default=TEMPO_BELIEF_POINTS,
                       help="with --head-weight: the tempos each 4 %% class of the tempo head is spread over, evenly "
                       "across it; 1: its centre alone (the decoding before 2026-12-06)")
    group.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


# GenerationOptions field -> its flag (add_generation_arguments); a bool field is a flag without a value.
GENERATION_FLAGS = {"max_new_tokens": "--max-new-tokens", "do_sample": "--sample", "temperature": "--temperature",
                    "top_k": "--top-k", "top_p": "--top-p", "repetition_penalty": "--repetition-penalty",
                    "seed": "--seed", "mbr_samples": "--mbr-samples", "mbr_number_tolerance": "--mbr-number-tolerance",
                    "mbr_weighting": "--mbr-weighting", "exact_number_mbr": "--exact-number-mbr",
                    "head_weight": "--head-weight", "tempo_belief_points": "--tempo-belief-points"}


def generation_options(args: argparse.Namespace):
    """The GenerationOptions that add_generation_arguments' flags ask for."""
    from llark.inference import GenerationOptions

    return GenerationOptions(**{name: getattr(args, flag[2:].replace("-", "_")) for name, flag in GENERATION_FLAGS.items()})


def generation_arguments(options) -> list[str]:
    """The flags that ask for `options` (those that differ from the defaults): what the demo passes to
    evaluate.py and `llark ask`. generation_options(parse(generation_arguments(o))) == o."""
    from dataclasses import fields

    from llark.inference import GenerationOptions

    defaults = GenerationOptions()
    arguments: list[str] = []
    for field in fields(GenerationOptions):
        value = getattr(options, field.name)
        if value == getattr(defaults, field.name):
            continue
        flag = GENERATION_FLAGS[field.name]
        arguments += [flag] if isinstance(value, bool) else [flag, str(value)]
    return arguments


def build_answerer(args: argparse.Namespace):
    from llark.inference import Answerer
    from llark.model import LLark

    model = LLark.from_pretrained(args.checkpoint, device=args.device)
    return Answerer(model, generation_options(args), batch_size=args.batch_size)


def stream_answer(answerer, question: str, features, task=None) -> None:
    """Prints one answer as it is generated; a decoded prefix that changes (or a number restated by
    --exact-number-mbr) is reprinted on a new line."""
    printed = ""

    def show(text: str) -> None:
        nonlocal printed
        sys.stdout.write(text[len(printed):] if text.startswith(printed) else "\n" + text)
        sys.stdout.flush()
        printed = text

    answerer.answer([question], [features], on_text=show, tasks=[task])
    print()


def span_notes(path: str, start: float, end: float | None) -> list[str]:
    """What `llark ask --audio` tells the user about the span it answers for, which is not always the whole file:
    a longer file is heard for 25 s from --start unless --end says otherwise, and a span much shorter than the
    clips the models learn from (25 s) leaves them little to hear.

        span_notes("song.wav", 0.0, None) -> ["the answers are about 0.0-25.0 s of song.wav (213.4 s long; ..."]
    """
    duration = audio_info(path).duration
    stop = min(duration, start + CLIP_SECONDS if end is None else end)
    notes = []
    if start > 0 or stop < duration - 0.05:
        notes.append(f"the answers are about {start:.1f}-{stop:.1f} s of {path} ({duration:.1f} s long; --start and "
                     "--end choose another span)")
    return notes + short_span_notes(stop - start)


def short_span_notes(seconds: float) -> list[str]:
    if seconds >= CLIP_SECONDS / 2:
        return []
    return [f"only {seconds:.1f} s to hear: the models learn from {CLIP_SECONDS:.0f} s clips, so answers about a span "
            "this short are less sure (tempo and meter most)"]


def ask_about_track(answerer, args: argparse.Namespace, tasks: list) -> int:
    """`llark ask --audio FILE --track`: each question's answer in every 25 s window, then for the track."""
    from llark.inference import answer_track

    try:
        result = answer_track(answerer, args.audio, args.question, tasks, args.start, args.end)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"llark ask: {err}", file=sys.stderr)
        return 2
    notes = short_span_notes(result.windows[-1][1] - result.windows[0][0])
    if result.unheard > 0:
        notes.append(f"the last {result.unheard:.1f} s, shorter than a window, are not heard")
    for note in notes:
        print(f"llark ask: {note}", file=sys.stderr)
    for question, window_answers, track_answer in zip(args.question, result.answers, result.track):
        print(f"Q: {question}")
        for (first, last), answer in zip(result.windows, window_answers):
            print(f"  {first:.1f}-{last:.1f} s: {answer}")
        print(f"A (the track): {track_answer}")
    return 0


def ask(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="llark ask",
        description="Answer questions about clips. Manifest lines: {id, question, audio|features}; "
        "output lines: {id, question, answer}; failed lines go to <out>.failures.jsonl.",
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoints/step-NNNNNN directory")
    parser.add_argument("--manifest", help="JSON lines to answer in batches (needs --out)")
    parser.add_argument("--out", help="where the answers go (JSON lines, written atomically)")
    parser.add_argument("--audio", help="one audio file (needs a checkpoint with an encoder)")
    parser.add_argument("--features", help="one [T, D] .npy feature file")
    parser.add_argument("--start", type=float, default=0.0, help="with --audio: where the clip starts (seconds)")
    parser.add_argument("--end", type=float, help="with --audio: where it ends (default start + 25 s)")
    parser.add_argument("--track", action="store_true",
                        help="with --audio: ask about the whole file (from --start to --end when given): every 25 s "
                        "window in turn, then one answer for the track, the window answer that agrees best with the "
                        "others (by the --task's score where one is named)")
    parser.add_argument("--question", action="append",
                        help="a question for --audio / --features; repeat it to ask several about the same clip, "
                        "which is encoded once (the answers are printed as 'Q: ...' / 'A: ...' pairs)")
    parser.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    parser.add_argument("--task", action="append",
                        help="with --question: the evaluation task a question asks about (key, tempo, meter, "
                        "instruments), which MBR decoding chooses by (its score, --head-weight, --exact-number-mbr); "
                        "once for every question, or once per --question in their order (a manifest line names its "
                        "own \"task\")")
    add_generation_arguments(parser)
    args = parser.parse_args(argv)
    if args.manifest:
        if not args.out:
            parser.error("--manifest needs --out")
    elif not (args.audio or args.features) or not args.question:
        parser.error("give --manifest and --out, or --audio/--features with --question")
    if args.track and (not args.audio or args.manifest or args.stream):
        parser.error("--track answers about one --audio file (not --features or --manifest), without --stream")

    from llark.evaluation import get_task
    from llark.inference import DecodingOptionsError, EncoderFitMismatch, answer_manifest, failures_path

    tasks = args.task or [None]
    if len(tasks) == 1:
        tasks = tasks * len(args.question or [None])
    if args.question and len(tasks) != len(args.question):
        parser.error(f"{len(args.task)} --task for {len(args.question)} --question: give one, or one per question")
    try:
        tasks = [get_task(task) if task else None for task in tasks]
    except KeyError as err:
        parser.error(str(err))
    try:
        answerer = build_answerer(args)
    except DecodingOptionsError as err:
        parser.error(str(err))
    if args.manifest:
        try:
            answered, failed = answer_manifest(answerer, args.manifest, args.out)
        except EncoderFitMismatch as err:
            print(f"llark ask: {err}", file=sys.stderr)
            return 2
        print(f"answered {answered}, failed {failed} -> {args.out}", file=sys.stderr)
        if failed:
            print(f"failures listed in {failures_path(args.out)}", file=sys.stderr)
        return 1 if failed else 0
    if args.track:
        return ask_about_track(answerer, args, tasks)
    try:
        item = {"audio": args.audio, "features": args.features, "start": args.start}
        if args.end is not None:
            item["end"] = args.end
        features = answerer.features_for(item)
        notes = span_notes(args.audio, args.start, args.end) if args.audio else []
    except (OSError, ValueError, RuntimeError) as err:
        print(f"llark ask: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"llark ask: {note}", file=sys.stderr)
    questions = args.question
    if args.stream:
        for question, task in zip(questions, tasks):
            if len(questions) > 1:
                print(f"Q: {question}\nA: ", end="")
            stream_answer(answerer, question, features, task)
    else:
        answers = answerer.answer(questions, [features] * len(questions), tasks=tasks)
        for question, answer in zip(questions, answers):
            print(answer if len(questions) == 1 else f"Q: {question}\nA: {answer}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = ("train", "evaluate", "evaluate-theory", "ask")
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "train":
        import train

        train.main(rest)
        return 0
    if command == "evaluate":
        import evaluate

        return evaluate.main(rest)
    if command == "evaluate-theory":
        import evaluate_theory

        return evaluate_theory.main(rest)
    return ask(rest)


if __name__ == "__main__":
    sys.exit(main())
