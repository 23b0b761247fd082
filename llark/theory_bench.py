"""MusicTheoryBench-format multiple-choice evaluation: load the public layout, build ChatMusician's
zero- and few-shot prompts, score by LM likelihood over option shuffles and by a parsed letter, and
report accuracy for knowledge, reasoning, overall and per category with 95 % bootstrap intervals.

    questions = load_musictheorybench("MusicTheoryBench/test.jsonl")      # or generate_questions(300, seed=0)
    report = evaluate(questions, scorer=causal_lm_scorer(lm, tokenizer), shots=dev_items)
    report["systems"]["likelihood"]["knowledge"]["accuracy"]

Accepted layout (m-a-p/MusicTheoryBench, one record per question; a `.json` file holding a list of
records or an object of split name -> list, or a `.jsonl` file with one record per line):
  stem      str, required     the question; stems that use a score open with SCORE_SENTENCE
  options   {letter: str}     required; consecutive letters from "A" (the benchmark has A-D)
  answer    str, required     one of the option letters
  subject   str, required     "knowledge" or "reasoning"
  id        int | str         default: the record's position in the file
  instruction str             default INSTRUCTION (the benchmark's sentence is the same in every record)
  split     str               "dev" (the 5 few-shot items) or "test"; default "test", or the split name
  abc_score str | null        an ABC fragment appended to the stem; default ""
  analysis  str | null        the worked solution (dev items); unused for scoring
  category  str               our extension (the generator's topic); absent in the benchmark
Other fields are ignored. A malformed record is an error naming the file and the record.
Export the real benchmark with `load_dataset("m-a-p/MusicTheoryBench")[split].to_json(f"{split}.jsonl")` for
the dev and test splits, then `cat dev.jsonl test.jsonl > mtb.jsonl` (records keep their `split`).

Scoring protocol (ChatMusician, eval/configs/datasets/music_theory_bench): the prompt is the
instruction, the stem (with the score sentence removed and abc_score appended), "A. ..." to "D. ..."
and "Answer:"; each completion " A".." D" is scored by the LM and the most likely wins. The paper
averages zero-shot accuracy over 5 option shuffles: `likelihood` is that figure, the mean over
shuffles of the accuracy (a question answered right in 3 of 5 shuffles scores 0.6). We also report
`likelihood_consensus`: the option whose log-likelihood, averaged over the shuffles, is highest
(log-likelihoods are averaged, not probabilities or votes). Shuffle 0 is the original order.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from llark.evaluation.bootstrap import bootstrap
from llark.evaluation.parsing import parse_letter
from llark.jsonl import write_json_atomic
from llark.theory_questions import INSTRUCTION, SCORE_SENTENCE, generate_records

SUBJECTS = ("knowledge", "reasoning")
# ChatMusician paper, MusicTheoryBench zero-shot accuracy (%), knowledge / reasoning.
REPORTED = {"ChatMusician": (39.5, 26.3), "ChatMusician-Base": (40.2, 27.1), "GPT-4": (58.2, 25.6),
            "random": (25.0, 25.0)}

Scorer = Callable[[str, Sequence[str]], Sequence[float]]  # (prompt, continuations) -> log-likelihoods
Generator = Callable[[Sequence[str]], Sequence[str | None]]  # prompts -> texts (None: could not be asked)


@dataclass(frozen=True)
class TheoryQuestion:
    """One four-option question in MusicTheoryBench's layout (see the module docstring)."""

    id: int | str
    stem: str
    options: dict[str, str]
    answer: str
    subject: str
    instruction: str = INSTRUCTION
    split: str = "test"
    abc_score: str = ""
    analysis: str = ""
    category: str = ""

    @property
    def letters(self) -> list[str]:
        return list(self.options)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


# ---- loading --------------------------------------------------------------------------------------
def parse_record(raw: Any, where: str, default_id: int | str, default_split: str = "test") -> TheoryQuestion:
    """A question from one record; ValueError naming `where` (file and record) when malformed."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    missing = [k for k in ("stem", "options", "answer", "subject") if k not in raw]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    if not isinstance(raw["stem"], str) or not raw["stem"].strip():
        raise ValueError(f"{where}: 'stem' must be a non-empty string")
    options = raw["options"]
    if not isinstance(options, dict) or not all(isinstance(v, str) and v.strip() for v in options.values()):
        raise ValueError(f"{where}: 'options' must map letters to non-empty strings, got {options!r}")
    expected = [chr(ord("A") + i) for i in range(len(options))]
    if len(options) < 2 or sorted(options) != expected:
        raise ValueError(f"{where}: option letters must be A, B, ... consecutive (at least 2), got {sorted(options)}")
    answer = str(raw["answer"]).strip().upper()
    if answer not in options:
        raise ValueError(f"{where}: answer {raw['answer']!r} is not one of the options {expected}")
    subject = str(raw["subject"]).strip().lower()
    if subject not in SUBJECTS:
        raise ValueError(f"{where}: subject must be one of {SUBJECTS}, got {raw['subject']!r}")
    text = {k: raw.get(k) or "" for k in ("instruction", "abc_score", "analysis", "category")}
    for name, value in text.items():
        if not isinstance(value, str):
            raise ValueError(f"{where}: {name!r} must be a string, got {type(value).__name__}")
    return TheoryQuestion(id=default_id if raw.get("id") is None else raw["id"], stem=raw["stem"],
                          options={k: options[k] for k in expected}, answer=answer, subject=subject,
                          instruction=text["instruction"] or INSTRUCTION,
                          split=str(raw.get("split") or default_split), abc_score=text["abc_score"],
                          analysis=text["analysis"], category=text["category"])


def _raw_records(path: Path) -> list[tuple[str, Any, str]]:
    """(where, record, default split) for each record of a .json or .jsonl file."""
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"{path}:{number}", json.loads(line), "test"))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        return rows
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, list):
        return [(f"{path}: record {i}", raw, "test") for i, raw in enumerate(data)]
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return [(f"{path}: {split} record {i}", raw, split)
                for split, rows in data.items() for i, raw in enumerate(rows)]
    raise ValueError(f"{path}: expected a list of records or an object of split -> list of records")


def load_musictheorybench(path: str | Path) -> list[TheoryQuestion]:
    """Every question of a file in the public layout (.json list / split object, or .jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    questions = [parse_record(raw, where, default_id=i, default_split=split)
                 for i, (where, raw, split) in enumerate(_raw_records(path))]
    if not questions:
        raise ValueError(f"{path}: no questions")
    ids = [q.id for q in questions]
    if len(set(map(str, ids))) != len(ids):
        raise ValueError(f"{path}: duplicate question ids")
    return questions


def save_questions(path: str | Path, questions: Iterable[TheoryQuestion]) -> None:
    """Write a JSON list in the public layout (atomically: temp file, then rename)."""
    write_json_atomic(path, [q.to_record() for q in questions])


def generate_questions(count: int, seed: int = 0, dev: int = 0) -> list[TheoryQuestion]:
    """`count` checkable questions (llark.theory_questions); the first `dev` are split 'dev'."""
    return [parse_record(r, f"generated question {r['id']}", r["id"]) for r in generate_records(count, seed, dev)]


# ---- prompts --------------------------------------------------------------------------------------
def question_input(question: TheoryQuestion) -> str:
    """The stem as ChatMusician feeds it: the score sentence dropped and the ABC fragment appended."""
    if not question.abc_score:
        return question.stem
    return f"{question.stem.replace(SCORE_SENTENCE, '').strip()}\n{question.abc_score}"


def format_question(question: TheoryQuestion, solved: bool = False) -> str:
    """'{input}\\nA. ...\\nD. ...\\nAnswer:' and, for a solved few-shot example, ' X\\n'."""
    lines = [question_input(question)] + [f"{letter}. {text}" for letter, text in question.options.items()]
    text = "\n".join(lines) + "\nAnswer:"
    return text + f" {question.answer}\n" if solved else text


def build_prompt(question: TheoryQuestion, shots: Sequence[TheoryQuestion] = (), instruction: str | None = None) -> str:
    """Zero-shot (no shots) or few-shot prompt ending in 'Answer:'; the model continues with ' X'.

    The head is `instruction`, else the question's own (the benchmark's records omit the final period
    that ChatMusician's harness wrote; pass instruction=INSTRUCTION for that exact text).

        build_prompt(q)                  # "Read the following ...\\n{stem}\\nA. ...\\nAnswer:"
        build_prompt(q, shots=dev[:5])   # the solved dev items between the instruction and q
    """
    head = instruction or question.instruction or INSTRUCTION
    return f"{head}\n" + "".join(format_question(s, solved=True) for s in shots) + format_question(question)


def few_shot_examples(questions: Sequence[TheoryQuestion], k: int = 5) -> list[TheoryQuestion]:
    """The first `k` dev-split questions (ChatMusician used the benchmark's 5 dev items)."""
    dev = [q for q in questions if q.split == "dev"]
    if len(dev) < k:
        raise ValueError(f"{k} few-shot examples asked for, but only {len(dev)} questions have split 'dev'")
    return dev[:k]


# ---- likelihood scoring ---------------------------------------------------------------------------
def shuffle_options(question: TheoryQuestion, rng: random.Random) -> tuple[TheoryQuestion, list[str]]:
    """The question with its options permuted, and `order`: order[i] is the original letter now at position i."""
    letters = question.letters
    order = letters[:]
    rng.shuffle(order)
    options = {new: question.options[old] for new, old in zip(letters, order)}
    answer = letters[order.index(question.answer)]
    return TheoryQuestion(**{**asdict(question), "options": options, "answer": answer}), order


@dataclass
class LikelihoodResult:
    """One question scored under several option orders; letters are the question's original ones."""

    choices: list[str]  # the original letter chosen under each shuffle
    mean_loglik: dict[str, float]  # per original option, averaged over the shuffles
    correct_fraction: float  # share of shuffles answered right (ChatMusician's averaged accuracy)

    @property
    def consensus(self) -> str:
        """The option with the highest mean log-likelihood (the first one on a tie)."""
        return max(self.mean_loglik, key=lambda letter: self.mean_loglik[letter])


def score_by_likelihood(
    scorer: Scorer, question: TheoryQuestion, shuffles: int = 5, seed: int = 0, shots: Sequence[TheoryQuestion] = ()
) -> LikelihoodResult:
    """Score " A".." D" after the prompt under `shuffles` option orders, mapping each choice back.

        result = score_by_likelihood(causal_lm_scorer(lm, tok), question)   # result.correct_fraction
    """
    if shuffles < 1:
        raise ValueError(f"shuffles must be at least 1, got {shuffles}")
    rng = random.Random(f"{seed}:{question.id}")  # per question, so results do not depend on the order asked
    sums = dict.fromkeys(question.letters, 0.0)
    choices = []
    for index in range(shuffles):
        shown, order = (question, question.letters) if index == 0 else shuffle_options(question, rng)
        scores = [float(s) for s in scorer(build_prompt(shown, shots), [f" {letter}" for letter in shown.letters])]
        if len(scores) != len(order) or not all(math.isfinite(s) for s in scores):
            raise ValueError(f"question {question.id}: the scorer returned {scores} for {len(order)} options")
        choices.append(order[int(np.argmax(scores))])
        for position, original in enumerate(order):
            sums[original] += scores[position]
    return LikelihoodResult(choices=choices, mean_loglik={k: v / shuffles for k, v in sums.items()},
                            correct_fraction=sum(c == question.answer for c in choices) / shuffles)


# ---- letter scoring -------------------------------------------------------------------------------
def parse_choice(text: str, question: TheoryQuestion) -> str | None:
    """The option a generated answer picks: a stated letter, else the one option whose text it quotes.

    Texts match as whole words ('C' is not found in 'C#' or 'Cb'), and a match inside a longer
    option's match does not count ('diminished seventh' inside 'half-diminished seventh').
    """
    letter = parse_letter(text, "".join(question.letters))
    if letter is not None:
        return letter
    spans = {k: [m.span() for m in re.finditer(rf"(?<![\w#]){re.escape(v)}(?![\w#])", text, re.IGNORECASE)]
             for k, v in question.options.items()}
    every = [(k, span) for k, found in spans.items() for span in found]
    quoted = {k for k, (start, end) in every
              if not any(o != k and s <= start and end <= e and (s, e) != (start, end) for o, (s, e) in every)}
    return quoted.pop() if len(quoted) == 1 else None


@dataclass
class LetterResult:
    text: str | None  # the generated answer; None when the prompt could not be asked
    letter: str | None  # the parsed choice; None when unparseable (counted wrong)


def score_by_letter(
    generate: Generator, questions: Sequence[TheoryQuestion], shots: Sequence[TheoryQuestion] = ()
) -> list[LetterResult]:
    """Generate an answer to each prompt (one batch call) and parse the chosen letter.

        results = score_by_letter(answerer_generator(answerer), questions)
    """
    texts = list(generate([build_prompt(q, shots) for q in questions]))
    if len(texts) != len(questions):
        raise ValueError(f"the generator returned {len(texts)} answers for {len(questions)} prompts")
    return [LetterResult(t, None if t is None else parse_choice(t, q)) for t, q in zip(texts, questions)]


# ---- report ---------------------------------------------------------------------------------------
def _accuracy(scores: list[float], samples: int, seed: int) -> dict[str, Any]:
    """Mean score with its bootstrap interval; None values for an empty group (JSON has no NaN)."""
    def metric(predicted: list[float], gold: list[Any]) -> dict[str, float]:
        return {"accuracy": float(np.mean(predicted))}

    if not scores:
        return {"accuracy": None, "low": None, "high": None, "n": 0}
    low, high = bootstrap(metric, scores, [None] * len(scores), samples=samples, seed=seed)["accuracy"]
    return {"accuracy": float(np.mean(scores)), "low": low, "high": high, "n": len(scores)}


def grouped_accuracy(
    scores: dict[Any, float], questions: Sequence[TheoryQuestion], samples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Accuracy with a 95 % bootstrap interval overall, per subject and per category.

    `scores` maps question id -> score in [0, 1]; questions without a score (failed) are left out.
    """
    def pick(keep: Callable[[TheoryQuestion], bool]) -> list[float]:
        return [scores[q.id] for q in questions if q.id in scores and keep(q)]

    groups = {"overall": _accuracy(pick(lambda q: True), samples, seed)}
    for subject in SUBJECTS:
        groups[subject] = _accuracy(pick(lambda q, s=subject: q.subject == s), samples, seed)
    categories = sorted({q.category for q in questions if q.category})
    groups["categories"] = {c: _accuracy(pick(lambda q, c=c: q.category == c), samples, seed) for c in categories}
    return groups


def chance(questions: Sequence[TheoryQuestion]) -> dict[str, float | None]:
    """The random-guess baseline: the expected accuracy 1 / (number of options), per group."""
    def mean(keep: Callable[[TheoryQuestion], bool]) -> float | None:
        values = [1 / len(q.options) for q in questions if keep(q)]
        return float(np.mean(values)) if values else None

    return {"overall": mean(lambda q: True), **{s: mean(lambda q, s=s: q.subject == s) for s in SUBJECTS}}


def evaluate(
    questions: Sequence[TheoryQuestion],
    scorer: Scorer | None = None,
    generate: Generator | None = None,
    shots: Sequence[TheoryQuestion] = (),
    shuffles: int = 5,
    seed: int = 0,
    bootstrap_samples: int = 1000,
    progress: bool = False,
) -> dict[str, Any]:
    """Score `questions` by likelihood (with `scorer`) and/or by parsed letter (with `generate`).

    Returns {"questions", "shots", "shuffles", "chance", "reported", "systems": {name: groups},
    "failed": {system: [ids]}, "items": [per question]}; a question the scorer or generator cannot
    take (ValueError, e.g. a prompt longer than the model's context) is recorded and left out.
    """
    from tqdm import tqdm

    if scorer is None and generate is None:
        raise ValueError("evaluate needs a scorer, a generator, or both")
    shot_ids = {s.id for s in shots}
    questions = [q for q in questions if q.id not in shot_ids]  # never score a question shown solved
    items = {q.id: {"id": q.id, "subject": q.subject, "category": q.category, "gold": q.answer} for q in questions}
    systems: dict[str, dict[Any, float]] = {}
    failed: dict[str, list[Any]] = {}
    if scorer is not None:
        systems["likelihood"], systems["likelihood_consensus"], failed["likelihood"] = {}, {}, []
        for q in tqdm(questions, desc="likelihood", disable=not progress):
            try:
                result = score_by_likelihood(scorer, q, shuffles, seed, shots)
            except ValueError as err:  # recorded per question; the run goes on
                failed["likelihood"].append(q.id)
                items[q.id]["likelihood_error"] = str(err)
                continue
            systems["likelihood"][q.id] = result.correct_fraction
            systems["likelihood_consensus"][q.id] = float(result.consensus == q.answer)
            items[q.id].update(shuffle_choices=result.choices, consensus=result.consensus,
                               mean_loglik=result.mean_loglik)
    if generate is not None:
        systems["letter"], failed["letter"] = {}, []
        for q, result in zip(questions, score_by_letter(generate, questions, shots)):
            if result.text is None:
                failed["letter"].append(q.id)
                continue
            systems["letter"][q.id] = float(result.letter == q.answer)
            items[q.id].update(generated=result.text, letter=result.letter)
    report: dict[str, Any] = {
        "questions": len(questions), "shots": len(shots), "shuffles": shuffles, "chance": chance(questions),
        "reported": {name: {"knowledge": k, "reasoning": r} for name, (k, r) in REPORTED.items()},
        "systems": {name: grouped_accuracy(scores, questions, bootstrap_samples, seed)
                    for name, scores in systems.items()},
        "failed": failed, "items": list(items.values()),
    }
    if generate is not None:
        report["unparseable"] = sum(1 for i in report["items"] if "generated" in i and i["letter"] is None)
    return report


# ---- model adapters -------------------------------------------------------------------------------
def causal_lm_scorer(lm: Any, tokenizer: Any) -> Scorer:
    """Raw-text scoring with a Hugging Face causal LM, as ChatMusician's harness did (no chat template):
    the summed log-probability of each continuation's tokens after the prompt.

        scorer = causal_lm_scorer(model.base_lm(), model.tokenizer)   # an llark checkpoint's LM
    """
    import torch

    def common_prefix(a: list[int], b: list[int]) -> int:
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n

    @torch.no_grad()
    def score(prompt: str, continuations: Sequence[str]) -> list[float]:
        prompt_ids = tokenizer(prompt)["input_ids"]
        rows = [tokenizer(prompt + c)["input_ids"] for c in continuations]
        # Score from where the rows part from the prompt (a token may merge across the boundary).
        start = min(common_prefix(prompt_ids, row) for row in rows)
        if start == 0:
            raise ValueError("the prompt has no token before the continuations diverge")
        device = next(lm.parameters()).device
        longest = max(len(row) for row in rows)
        input_ids = torch.zeros(len(rows), longest, dtype=torch.long)
        mask = torch.zeros(len(rows), longest, dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        logits = lm(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        log_probs = logits.log_softmax(-1).cpu()
        return [float(sum(log_probs[i, t - 1, row[t]] for t in range(start, len(row)))) for i, row in enumerate(rows)]

    return score


def answerer_scorer(answerer: Any) -> Scorer:
    """Scoring through an llark `Answerer`, in the checkpoint's own chat template, as a text-only prompt:
    the mean log-probability of each letter (and EOS) as the assistant's answer. A prompt and answer
    longer than the model's max_length raise ExampleTooLong (evaluate() records the question as failed)."""
    def score(prompt: str, continuations: Sequence[str]) -> list[float]:
        return answerer.option_scores(prompt, None, [c.strip() for c in continuations])

    return score


def answerer_generator(answerer: Any) -> Generator:
    """Generation through an llark `Answerer` with no audio; a prompt too long for the model gives None."""
    def generate(prompts: Sequence[str]) -> list[str | None]:
        fits = []
        for prompt in prompts:
            try:
                answerer.prompt(prompt, None)
                fits.append(True)
            except ValueError:  # ExampleTooLong: recorded as failed by evaluate()
                fits.append(False)
        asked = [p for p, ok in zip(prompts, fits) if ok]
        answers = iter(answerer.answer(asked, [None] * len(asked)) if asked else [])
        return [next(answers) if ok else None for ok in fits]

    return generate
