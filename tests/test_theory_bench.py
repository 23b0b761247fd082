"""MusicTheoryBench-format evaluation and the offline question generator.

Generated answers are re-derived here with music21 (an independent implementation of the theory),
from the question text alone; scoring is checked on toy scorers and LMs whose answer is known.
"""

from __future__ import annotations

import json
import random
import re
from fractions import Fraction

import pytest
import torch

from llark.config import Config, LMConfig, ModelConfig, TrainableConfig
from llark.inference import Answerer, GenerationOptions
from llark.model import LLark, build_lm
from llark.theory_bench import (INSTRUCTION, SCORE_SENTENCE, TheoryQuestion, answerer_generator, answerer_scorer,
                                build_prompt, causal_lm_scorer, evaluate, few_shot_examples, format_question,
                                generate_questions, load_musictheorybench, parse_choice, question_input,
                                save_questions, score_by_letter, score_by_likelihood, shuffle_options)
from llark.theory_questions import CATEGORIES
from tests.conftest import REPO, tiny_tokenizer

ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh")


# ---- generator ------------------------------------------------------------------------------------
def test_generator_is_deterministic_and_extends():
    a = [q.to_record() for q in generate_questions(40, seed=3)]
    assert a == [q.to_record() for q in generate_questions(40, seed=3)]
    assert a[:20] == [q.to_record() for q in generate_questions(20, seed=3)]  # question i depends on (seed, i)
    assert a != [q.to_record() for q in generate_questions(40, seed=4)]


def test_generator_layout_split_and_balance():
    questions = generate_questions(108, seed=0, dev=5)  # 18 rounds of the 6 categories
    assert [q.split for q in questions[:6]] == ["dev"] * 5 + ["test"]
    assert {q.category for q in questions} == set(CATEGORIES)
    for category in CATEGORIES:
        subjects = [q.subject for q in questions if q.category == category]
        assert subjects.count("knowledge") == 2 * subjects.count("reasoning")
    answers = [q.answer for q in questions]
    assert all(answers.count(letter) > 15 for letter in "ABCD")  # the right option's position is random
    for q in questions:
        assert list(q.options) == list("ABCD") and len(set(q.options.values())) == 4
        assert q.instruction == INSTRUCTION
        assert (q.category == "abc_reading") == bool(q.abc_score) == q.stem.startswith(SCORE_SENTENCE)


def m21_name(pitch) -> str:
    return pitch.name.replace("-", "b")


def pc(name: str) -> int:
    from music21 import pitch

    return pitch.Pitch(name[0] + name[1:].replace("b", "-")).pitchClass


def m21_key(tonic: str, mode: str):
    """music21 spells flats '-' and names minor keys in lower case."""
    from music21 import key

    spelled = tonic[0] + tonic[1:].replace("b", "-")
    return key.Key(spelled if mode == "major" else spelled.lower())


def m21_note(name: str, octave: int):
    from music21 import note

    return note.Note(f"{name[0]}{name[1:].replace('b', '-')}{octave}")


INTERVAL_ABBR = {"minor": "m", "major": "M", "perfect": "P", "augmented": "A", "diminished": "d"}
INTERVAL_NUMBER = {"second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "octave": 8}
M21_CHORDS = {"major triad": "major triad", "minor triad": "minor triad", "diminished triad": "diminished triad",
              "augmented triad": "augmented triad", "dominant seventh": "dominant seventh chord",
              "major seventh": "major seventh chord", "minor seventh": "minor seventh chord",
              "half-diminished seventh": "half-diminished seventh chord",
              "diminished seventh": "diminished seventh chord"}


def oracle(q: TheoryQuestion) -> str:
    """The right option's text, re-derived with music21 from the question's stem and ABC score."""
    from music21 import chord, converter, interval, key, meter

    stem = q.stem
    if m := re.fullmatch(r"What is the interval from (\S+) up to (\S+)\?", stem):
        low, high = m[1], m[2]
        octave = 4 if "CDEFGAB".index(high[0]) > "CDEFGAB".index(low[0]) else 5
        return interval.Interval(m21_note(low, 4), m21_note(high, octave)).niceName.lower()
    if m := re.fullmatch(r"Which note is a (\w+) (\w+) (above|below) (\S+)\?", stem):
        step = interval.Interval(f"{INTERVAL_ABBR[m[1]]}{INTERVAL_NUMBER[m[2]]}")
        start = m21_note(m[4], 4).pitch
        return m21_name(start.transpose(step if m[3] == "above" else step.reverse()))
    if m := re.fullmatch(r"Which chord is spelled (\S+) \(root position\)\?", stem):
        common = chord.Chord([n.replace("b", "-") for n in m[1].split("-")]).commonName
        return next(k for k, v in M21_CHORDS.items() if v == common)
    if m := re.fullmatch(r"The notes (\S+) \(lowest first\) form which chord\?", stem):
        c = chord.Chord([m21_note(n, 4 + i // 2) for i, n in enumerate(m[1].split("-"))])  # any voicing works
        return f"{m21_name(c.root())} " + next(k for k, v in M21_CHORDS.items() if v == c.commonName)
    if m := re.fullmatch(r"How many sharps or flats are in the key signature of (\S+) (major|minor)\?", stem):
        n = m21_key(m[1], m[2]).sharps
        return "no sharps or flats" if n == 0 else f"{abs(n)} {'sharp' if n > 0 else 'flat'}{'s' * (abs(n) > 1)}"
    if m := re.fullmatch(r"A key signature has (.+)\. What is the relative (\w+) of the (\w+) key with this signature\?", stem):
        words = m[1].split()
        n = 0 if words[0] == "no" else int(words[0]) * (1 if words[1].startswith("sharp") else -1)
        rel = key.KeySignature(n).asKey(m[3]).relative
        return f"{m21_name(rel.tonic)} {rel.mode}"
    if m := re.fullmatch(r"What is the (\w+) degree of the (\S+) (major|natural minor) scale\?", stem):
        return m21_name(m21_key(m[2], m[3].split()[-1]).pitchFromDegree(ORDINALS.index(m[1]) + 1))
    if m := re.fullmatch(r"Which (major|natural minor) scale consists of exactly these notes: (.+)\?", stem):
        wanted = set(m[2].split(", "))
        matches = []
        for text in q.options.values():
            tonic, mode = text.split()
            k = m21_key(tonic, mode)
            if {m21_name(p) for p in k.getScale().getPitches()[:7]} == wanted and (mode == "major") == (m[1] == "major"):
                matches.append(text)
        assert len(matches) == 1, (stem, q.options)
        return matches[0]
    if m := re.fullmatch(r"How is the time signature (\S+) classified\?", stem):
        return meter.TimeSignature(m[1]).classification.lower()
    if m := re.fullmatch(r"In (\S+) time, how many (\w+) notes fill (\d+) bars\?", stem):
        value = {"half": 2.0, "quarter": 1.0, "eighth": 0.5, "sixteenth": 0.25}[m[2]]
        return str(int(Fraction(meter.TimeSignature(m[1]).barDuration.quarterLength * int(m[3]) / value)))
    notes = list(converter.parse("X:1\nT:t\n" + q.abc_score, format="abc").recurse().notes)
    if stem.endswith("Which note is written in the example?"):
        return m21_name(notes[0].pitch)
    if m := re.search(r"Which note sounds as the (\w+) note of the example\?", stem):
        return m21_name(notes[ORDINALS.index(m[1])].pitch)
    if stem.endswith("How many quarter-note beats does the example last?"):
        return str(int(sum(Fraction(n.quarterLength) for n in notes)))
    raise AssertionError(f"no oracle for {stem!r}")


def test_generated_answers_match_music21_and_distractors_are_wrong():
    pytest.importorskip("music21")
    questions = generate_questions(240, seed=11)  # 40 per category, 13-14 of them reasoning
    pitch_answers = 0
    for q in questions:
        right = oracle(q)
        assert q.options[q.answer] == right, (q.stem, q.abc_score, q.options, q.answer)
        assert list(q.options.values()).count(right) == 1
        if re.fullmatch(r"[A-G][#b]?", right):  # a note: no distractor may be the same pitch respelled
            pitch_answers += 1
            assert all(pc(t) != pc(right) for k, t in q.options.items() if k != q.answer), q.options
    assert pitch_answers > 30


# ---- loading --------------------------------------------------------------------------------------
PUBLIC = [
    {"id": 13, "instruction": "Read the following questions from the four options (A, B, C and D) given in each "
     "question. Choose the best option", "stem": f"{SCORE_SENTENCE} Which of the following best describes the "
     "seventh chord in the above example?", "options": {"A": "Major seventh in third inversion", "B": "Dominant seventh "
     "in second inversion", "C": "Major/minor seventh in third inversion", "D": "Minor seventh in second inversion"},
     "subject": "knowledge", "answer": "A", "split": "dev", "abc_score": "L:1/4\nM:4/4\nK:D\n[FGBd]4 |]",
     "analysis": "The chord has G as its root ..."},
    {"id": 200, "instruction": "Read ...", "stem": "Which interval is the inversion of a minor third?",
     "options": {"A": "major sixth", "B": "minor sixth", "C": "major third", "D": "perfect fifth"},
     "subject": "reasoning", "answer": "a", "split": "test", "abc_score": None, "analysis": None},
]


def test_loader_reads_public_layout_in_every_container(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps(PUBLIC))
    (tmp_path / "lines.jsonl").write_text("\n".join(json.dumps(r) for r in PUBLIC) + "\n\n")
    (tmp_path / "splits.json").write_text(json.dumps({"dev": [PUBLIC[0]], "test": [{k: v for k, v in PUBLIC[1].items()
                                                                                      if k != "split"}]}))
    for name in ("list.json", "lines.jsonl", "splits.json"):
        questions = load_musictheorybench(tmp_path / name)
        assert [q.id for q in questions] == [13, 200] and [q.split for q in questions] == ["dev", "test"]
        first, second = questions
        assert first.abc_score.startswith("L:1/4") and first.subject == "knowledge" and first.answer == "A"
        assert second.answer == "A" and second.abc_score == "" and second.analysis == "" and second.category == ""
    assert question_input(first) == ("Which of the following best describes the seventh chord in the above example?"
                                     "\nL:1/4\nM:4/4\nK:D\n[FGBd]4 |]")


def test_generated_set_round_trips_through_the_loader(tmp_path):
    questions = generate_questions(30, seed=1, dev=5)
    save_questions(tmp_path / "q.json", questions)
    assert load_musictheorybench(tmp_path / "q.json") == questions


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("stem"), r"missing field\(s\) \['stem'\]"),
    (lambda r: r.update(answer="E"), "answer 'E' is not one of the options"),
    (lambda r: r.update(subject="history"), "subject must be one of"),
    (lambda r: r["options"].pop("B"), "option letters must be A, B, ... consecutive"),
    (lambda r: r.update(options=["x", "y"]), "'options' must map letters"),
    (lambda r: r.update(abc_score=3), "'abc_score' must be a string"),
])
def test_malformed_record_names_file_and_record(tmp_path, change, message):
    records = json.loads(json.dumps(PUBLIC))
    change(records[1])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match=rf"bad\.json: record 1: {message}"):
        load_musictheorybench(path)
    lines = tmp_path / "bad.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in records))
    with pytest.raises(ValueError, match=rf"bad\.jsonl:2: {message}"):
        load_musictheorybench(lines)


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"a\.json: not valid JSON"):
        load_musictheorybench(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"questions": 3}))
    with pytest.raises(ValueError, match=r"b\.json: expected a list of records"):
        load_musictheorybench(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps([PUBLIC[1], PUBLIC[1]]))
    with pytest.raises(ValueError, match="duplicate question ids"):
        load_musictheorybench(tmp_path / "c.json")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_musictheorybench(tmp_path / "missing.json")


# ---- prompts --------------------------------------------------------------------------------------
def test_zero_and_few_shot_prompts_follow_chatmusician():
    questions = generate_questions(12, seed=2, dev=2)
    q = questions[6]
    zero = build_prompt(q)
    options = "\n".join(f"{k}. {v}" for k, v in q.options.items())
    assert zero == f"{INSTRUCTION}\n{q.stem}\n{options}\nAnswer:"
    shots = few_shot_examples(questions, 2)
    few = build_prompt(q, shots)
    assert few == INSTRUCTION + "\n" + "".join(format_question(s) + f" {s.answer}\n" for s in shots) + zero.split("\n", 1)[1]
    assert few.count("Answer:") == 3 and few.endswith("Answer:")
    abc = next(x for x in questions if x.abc_score)
    assert SCORE_SENTENCE not in build_prompt(abc) and abc.abc_score in build_prompt(abc)
    with pytest.raises(ValueError, match="only 2 questions have split 'dev'"):
        few_shot_examples(questions, 5)


# ---- likelihood scoring on toy scorers and LMs whose answer is known ---------------------------------
def knowing_scorer(questions):
    """Gives the option holding the right text the highest score: a perfect LM."""
    gold = {question_input(q): q.options[q.answer] for q in questions}

    def score(prompt, continuations):
        asked = max(gold, key=prompt.rfind)  # the last question in the prompt (after any shots)
        block = prompt[prompt.rfind(asked):]
        shown = dict(re.findall(r"^([A-D])\. (.*)$", block, re.MULTILINE))
        return [0.0 if shown[c.strip()] == gold[asked] else -5.0 for c in continuations]

    return score


def constant_scorer(prompt, continuations):
    """Always prefers the first position, whatever it holds."""
    return [-1.0 * i for i in range(len(continuations))]


def test_shuffles_map_back_perfect_scorer_scores_one():
    questions = generate_questions(60, seed=5, dev=5)
    report = evaluate(questions[5:], scorer=knowing_scorer(questions), shots=questions[:5], bootstrap_samples=50)
    for system in ("likelihood", "likelihood_consensus"):
        groups = report["systems"][system]
        assert groups["overall"]["accuracy"] == groups["knowledge"]["accuracy"] == groups["reasoning"]["accuracy"] == 1.0
        assert all(g["accuracy"] == 1.0 for g in groups["categories"].values()) and len(groups["categories"]) == 6
    assert report["questions"] == 55 and report["chance"]["overall"] == 0.25
    assert all(len(set(item["shuffle_choices"])) == 1 for item in report["items"])


def test_constant_scorer_is_at_chance_and_choices_follow_the_shuffles():
    questions = generate_questions(300, seed=6)
    report = evaluate(questions, scorer=constant_scorer, bootstrap_samples=50)
    overall = report["systems"]["likelihood"]["overall"]
    assert 0.18 < overall["accuracy"] < 0.32 and overall["low"] < 0.25 < overall["high"]
    q = questions[7]
    result = score_by_likelihood(constant_scorer, q, shuffles=5, seed=0)
    rng = random.Random(f"0:{q.id}")
    expected = ["A"] + [shuffle_options(q, rng)[1][0] for _ in range(4)]  # the option shown first each time
    assert result.choices == expected
    assert result.correct_fraction == sum(c == q.answer for c in expected) / 5


def test_shuffle_keeps_the_right_text_under_the_answer_letter():
    q = generate_questions(1, seed=0)[0]
    for i in range(10):
        shown, order = shuffle_options(q, random.Random(i))
        assert shown.options[shown.answer] == q.options[q.answer]
        assert all(shown.options[new] == q.options[old] for new, old in zip("ABCD", order))


def test_consensus_averages_log_likelihoods_across_shuffles():
    q = TheoryQuestion(id=1, stem="s", options={"A": "w", "B": "x", "C": "y", "D": "z"}, answer="C", subject="knowledge")
    preference = {"w": -1.0, "x": -3.0, "y": -1.1, "z": -4.0}

    def by_text(prompt, continuations):
        shown = dict(re.findall(r"^([A-D])\. (.*)$", prompt, re.MULTILINE))
        return [preference[shown[c.strip()]] for c in continuations]

    result = score_by_likelihood(by_text, q, shuffles=5)
    assert result.mean_loglik == pytest.approx({"A": -1.0, "B": -3.0, "C": -1.1, "D": -4.0})
    assert result.consensus == "A" and result.choices == ["A"] * 5 and result.correct_fraction == 0.0


class UnigramLM(torch.nn.Module):
    """A toy causal LM whose next-token distribution is the same everywhere: it always favours one token."""

    def __init__(self, vocab: int, favourite: int):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab))
        with torch.no_grad():
            self.bias[favourite] = 5.0

    def forward(self, input_ids, attention_mask):
        return type("Out", (), {"logits": self.bias.expand(*input_ids.shape, -1)})()


def test_causal_lm_scorer_on_a_toy_lm_picks_its_favourite_letter():
    tokenizer, _ = tiny_tokenizer()
    last_tokens = [tokenizer(f" {letter}")["input_ids"][-1] for letter in "ABCD"]
    assert len(set(last_tokens)) == 4  # the letters differ in their last token, which the toy LM favours for C
    scorer = causal_lm_scorer(UnigramLM(len(tokenizer), last_tokens[2]), tokenizer)
    q = generate_questions(8, seed=0)[3]
    result = score_by_likelihood(scorer, q, shuffles=5)
    rng = random.Random(f"0:{q.id}")
    assert result.choices == ["C"] + [shuffle_options(q, rng)[1][2] for _ in range(4)]  # what sat at C each time


def test_causal_lm_scorer_equals_summed_token_logprobs():
    tokenizer, ids = tiny_tokenizer()
    torch.manual_seed(0)
    lm = build_lm(LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                           max_position_embeddings=1024), ids.base_vocab_size).eval()
    prompt = build_prompt(generate_questions(1, seed=0)[0])
    scores = causal_lm_scorer(lm, tokenizer)(prompt, [" A", " B", " C", " D"])
    for letter, score in zip("ABCD", scores):
        full = tokenizer(prompt + " " + letter)["input_ids"]
        n_prompt = len(tokenizer(prompt)["input_ids"])
        log_probs = lm(input_ids=torch.tensor([full])).logits[0].log_softmax(-1)
        expected = sum(log_probs[t - 1, full[t]].item() for t in range(n_prompt, len(full)))
        assert score == pytest.approx(expected, abs=1e-4)


# ---- letter path ----------------------------------------------------------------------------------
def test_letter_scoring_parses_letters_and_option_texts():
    questions = generate_questions(24, seed=9)
    gold = {build_prompt(q): q for q in questions}

    def answers(prompts):
        out = []
        for i, p in enumerate(prompts):
            q = gold[p]
            out.append([f" {q.answer}. because", f"The answer is ({q.answer})", f"It is {q.options[q.answer]}.",
                        "no idea", None][i % 5])
        return out

    results = score_by_letter(answers, questions)
    assert [r.letter == q.answer for r, q in zip(results, questions)][:4] == [True, True, True, False]
    report = evaluate(questions, generate=answers, bootstrap_samples=50)
    kept = [i for i in range(24) if i % 5 != 4]
    assert report["failed"]["letter"] == [questions[i].id for i in range(24) if i % 5 == 4]
    assert report["systems"]["letter"]["overall"]["n"] == len(kept)
    assert report["unparseable"] == sum(1 for i in kept if i % 5 == 3)
    notes = TheoryQuestion(id=0, stem="s", options={"A": "C", "B": "C#", "C": "Cb", "D": "E"}, answer="B",
                           subject="knowledge")
    assert [parse_choice(t, notes) for t in ("It is C#.", "Cb", "it is c, I think", "It is C or E", "G")] == ["B", "C", "A", None, None]
    chords = TheoryQuestion(id=1, stem="s", options={"A": "diminished seventh", "B": "half-diminished seventh",
                                                     "C": "minor seventh", "D": "major seventh"}, answer="B",
                            subject="knowledge")
    assert parse_choice("a half-diminished seventh chord", chords) == "B"
    assert parse_choice("the diminished seventh", chords) == "A"


# ---- through an llark model with no audio -----------------------------------------------------------
def text_model(template: str = "chatmusician") -> LLark:
    """A tiny LLark with room for text-only theory prompts (the shared fixture's max_length is 128)."""
    torch.manual_seed(0)
    tokenizer, ids = tiny_tokenizer()
    config = ModelConfig(lm=LMConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=2, intermediate_size=64,
                                     max_position_embeddings=2048),
                         audio_dim=16, template=template, max_length=2048,
                         trainable=TrainableConfig(lm="full", lm_embeddings=True))
    model = LLark(config, build_lm(config.lm, ids.base_vocab_size), ids, len(tokenizer)).eval()
    model.tokenizer = tokenizer
    model.run_config = Config(model=config)  # what from_pretrained attaches
    return model


def test_answerer_adapters_score_text_only_prompts():
    answerer = Answerer(text_model(), GenerationOptions(max_new_tokens=3), batch_size=4)
    questions = generate_questions(10, seed=0, dev=2)
    report = evaluate(questions[2:], scorer=answerer_scorer(answerer), generate=answerer_generator(answerer),
                      shots=questions[:2], shuffles=2, bootstrap_samples=20)
    assert report["failed"] == {"likelihood": [], "letter": []}
    for system in ("likelihood", "likelihood_consensus", "letter"):
        assert 0.0 <= report["systems"][system]["overall"]["accuracy"] <= 1.0
        assert report["systems"][system]["overall"]["n"] == 8
    assert all(len(item["shuffle_choices"]) == 2 and "generated" in item for item in report["items"])


def test_prompts_too_long_for_the_model_are_recorded_as_failed():
    model = text_model()
    model.config.max_length = 40  # shorter than any theory prompt
    answerer = Answerer(model, GenerationOptions(max_new_tokens=2))
    report = evaluate(generate_questions(3, seed=0), scorer=answerer_scorer(answerer),
                      generate=answerer_generator(answerer), bootstrap_samples=10)
    assert len(report["failed"]["likelihood"]) == len(report["failed"]["letter"]) == 3
    assert report["systems"]["likelihood"]["overall"] == {"accuracy": None, "low": None, "high": None, "n": 0}


def test_cli_writes_questions_and_evaluates_a_checkpoint(tmp_path):
    import importlib.util

    import evaluate_theory

    spec = importlib.util.spec_from_file_location("make_theory_questions", REPO / "preprocessing" / "make_theory_questions.py")
    make_theory_questions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_theory_questions)

    questions = tmp_path / "q.json"
    assert make_theory_questions.main(["--out", str(questions), "--count", "14", "--dev", "2", "--seed", "3"]) == 0
    assert len(json.loads(questions.read_text())) == 14
    model = text_model()
    model.save_pretrained(tmp_path / "ckpt", model.run_config, model.tokenizer)
    out = tmp_path / "results"
    assert evaluate_theory.main(["--checkpoint", str(tmp_path / "ckpt"), "--questions", str(questions), "--out", str(out),
                                 "--shots", "2", "--shuffles", "2", "--bootstrap", "20", "--device", "cpu"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["systems"]) == {"likelihood", "likelihood_consensus", "letter"} and results["questions"] == 12
    assert "| chance |" in (out / "report.md").read_text() and "ChatMusician" in (out / "report.md").read_text()
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 12
    raw = tmp_path / "raw"
    assert evaluate_theory.main(["--checkpoint", str(tmp_path / "ckpt"), "--count", "8", "--out", str(raw),
                                 "--prompting", "raw", "--scoring", "likelihood", "--bootstrap", "10",
                                 "--device", "cpu"]) == 0
    assert json.loads((raw / "results.json").read_text())["questions"] == 3  # 8 generated, 5 of them dev
