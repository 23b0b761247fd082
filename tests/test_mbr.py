"""Minimum-Bayes-risk choice among sampled answers (llark/mbr.py) and its use by the Answerer."""

import numpy as np
import pytest

from llark.inference import GenerationOptions
from llark.evaluation import get_task
from llark.mbr import Terms, agreement, answer_terms, choose_answer, choose_by_agreement, most_probable_number


def test_terms_keep_sharps_meters_and_numbers_whole():
    assert answer_terms("It is in F# minor, 6/8 at 112.5 BPM; Acoustic Guitar (nylon).") == [
        "it", "is", "in", "f#", "minor", "6/8", "at", "112.5", "bpm", "acoustic", "guitar", "nylon"]


def test_numbers_agree_within_the_tolerance_and_words_only_when_equal():
    at = lambda text: Terms.of(text)  # noqa: E731
    assert agreement(at("about 100 BPM"), at("about 104 BPM"), 0.04) == 1.0  # 4 of 104: within 4 %
    assert agreement(at("about 100 BPM"), at("about 105 BPM"), 0.04) == pytest.approx(2 * 2 / 6)
    assert agreement(at("about 100 BPM"), at("about 104 BPM"), 0.0) == pytest.approx(2 * 2 / 6)
    assert agreement(at("Drums and Piano"), at("Piano, Drums"), 0.04) == pytest.approx(2 * 2 / 5)
    # Each term matches once: a repeated name does not count twice.
    assert agreement(at("Piano, Piano"), at("Piano"), 0.04) == pytest.approx(2 * 1 / 3)
    assert agreement(at(""), at(""), 0.04) == 1.0 and agreement(at("x"), at(""), 0.04) == 0.0


def test_the_chosen_number_has_the_most_samples_near_it_not_the_most_exact_copies():
    samples = ["The tempo is about 120 BPM."] * 3 + [f"The tempo is about {n} BPM." for n in (127, 128, 129, 130)]
    assert choose_answer(samples) == 3  # 127-130 agree within 4 %; 120 is the likeliest single answer
    assert choose_answer(samples, number_tolerance=0.0) == 0  # exact agreement: the majority answer
    assert choose_answer(["It is in 3/4.", "It is in 6/8.", "It is in 3/4."]) == 0
    with pytest.raises(ValueError, match="at least one"):
        choose_answer([])


def test_probability_weighting_trusts_the_model_over_the_sample_counts():
    # Sampled at a low temperature, the likeliest answer repeats; the numbers near the gold one are each less
    # likely but together hold more of the model's probability.
    samples = ["The tempo is about 80 BPM."] * 4 + [f"The tempo is about {n} BPM." for n in (127, 129)]
    log_probs = [-1.0] * 4 + [-0.9, -1.0]
    assert choose_answer(samples) == 0  # by counts, 80 (four samples) against 127-129 (two)
    assert choose_answer(samples, log_probs=log_probs) == 4  # by probability, 127 and 129 together
    # A text sampled twice counts once, at the likelier of its spellings.
    assert choose_answer(["a", "a", "b"], number_tolerance=0.0, log_probs=[-2.0, -2.0, -1.0]) == 2
    with pytest.raises(ValueError, match="2 log-probabilities for 3 candidates"):
        choose_answer(["a", "a", "b"], log_probs=[-1.0, -1.0])


def test_generation_options_refuse_bad_mbr_settings():
    with pytest.raises(ValueError, match="mbr_samples"):
        GenerationOptions(mbr_samples=-1)
    with pytest.raises(ValueError, match="mbr_number_tolerance"):
        GenerationOptions(mbr_samples=8, mbr_number_tolerance=1.5)
    with pytest.raises(ValueError, match="mbr_weighting"):
        GenerationOptions(mbr_samples=8, mbr_weighting="votes")


def test_reports_say_how_answers_were_decoded():
    from llark.evaluation.report import decoding_summary

    assert decoding_summary(vars(GenerationOptions())) == "greedy"
    assert decoding_summary(vars(GenerationOptions(do_sample=True, temperature=0.7, seed=3))) == (
        "sampled at temperature 0.7 (seed 3)")
    assert decoding_summary(vars(GenerationOptions(mbr_samples=16, temperature=0.5))) == (
        "minimum Bayes risk over 16 samples at temperature 0.5 (a task's answers agree as the task scores them, other "
        "answers by their words, numbers within 4%)")
    assert decoding_summary(vars(GenerationOptions(mbr_samples=16, temperature=0.5, head_weight=0.5))).endswith(
        "numbers within 4%, the label heads' reading weighed 0.5 beside the samples; a tempo class as 8 tempos "
        "across its 4%)")
    assert decoding_summary(vars(GenerationOptions(mbr_samples=16, head_weight=0.5, tempo_belief_points=1))).endswith(
        "weighed 0.5 beside the samples)")
    assert decoding_summary(vars(GenerationOptions(exact_number_mbr=True))) == (
        "greedy; a tempo's number: the BPM most likely within 4% of the truth, every BPM scored")


def test_generation_flags_round_trip_through_the_options():
    """The demo passes its GenerationOptions to evaluate.py and `llark ask` as flags: the same options come back."""
    import argparse

    from llark.cli import add_generation_arguments, generation_arguments, generation_options

    parser = argparse.ArgumentParser()
    add_generation_arguments(parser)
    for options in (GenerationOptions(), GenerationOptions(mbr_samples=16, temperature=0.5, exact_number_mbr=True),
                    GenerationOptions(max_new_tokens=9, do_sample=True, top_k=5, top_p=0.9, repetition_penalty=1.1,
                                      seed=2, mbr_samples=4, mbr_number_tolerance=0.02, mbr_weighting="probability"),
                    GenerationOptions(mbr_samples=16, head_weight=0.5, tempo_belief_points=1)):
        assert generation_options(parser.parse_args(generation_arguments(options))) == options
    assert generation_arguments(GenerationOptions(mbr_samples=16, exact_number_mbr=True)) == [
        "--mbr-samples", "16", "--exact-number-mbr"]


@pytest.mark.slow  # needs the trained probe checkpoint
def test_the_tempo_decoding_benchmark_scores_every_number(trained_probe_checkpoint, tmp_path, capsys):
    """benchmarks/tempo_decoding.py runs on any checkpoint and manifest; the figures are shares of clips."""
    import json
    import re

    from llark.inference import read_manifest
    from tests.conftest import load_script

    tempo_decoding = load_script("benchmarks/tempo_decoding.py")
    data, checkpoint = trained_probe_checkpoint
    items = read_manifest(data / "test.jsonl")[:2]
    manifest = tmp_path / "tempo.jsonl"
    manifest.write_text("".join(json.dumps({"id": item["id"], "task": "tempo", "question": "What is the tempo?",
                                            "gold": 120.0, "features": item["features"]}) + "\n" for item in items))
    assert tempo_decoding.main(["--checkpoint", str(checkpoint), "--manifest", str(manifest)]) == 0
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$", capsys.readouterr().out, re.MULTILINE)
    assert [name for name, _, _ in rows][:2] == ["likeliest number (greedy)", "most likely within 4 % of the truth (exact MBR)"]
    assert len(rows) == 8 and all(0 <= float(acc1) <= float(acc2) <= 1 for _, acc1, acc2 in rows)  # Acc2 includes Acc1


def test_most_probable_number_takes_the_mass_within_tolerance_not_the_peak():
    values = np.array([100, 103, 130])
    assert most_probable_number(values, np.log([0.3, 0.3, 0.4]), 0.04) == 0  # 100 and 103: 0.6 within 4 %
    assert most_probable_number(values, np.log([0.3, 0.3, 0.4]), 0.0) == 2  # no tolerance: the likeliest
    assert most_probable_number(values, np.array([-1000.0, -1000.0, -2000.0]), 0.04) == 0  # stable far from 0
    assert most_probable_number(np.array([90, 100]), np.log([0.5, 0.5]), 0.04) == 0  # first on a tie
    # Right relative to the truth, as tempo Acc1: 124 is right for every truth from 120 to 129 (0.7); 125 is
    # 5 from 120, more than 4 % of 120 (4.8), so with 124 gone 120 (0.4: truths 120 and 125) beats 125 (0.3),
    # which agreement relative to the larger number (numbers_agree) would have taken (0.6).
    assert most_probable_number(np.array([120, 124, 125, 129]), np.log([0.3, 0.1, 0.1, 0.2]), 0.04) == 1
    assert most_probable_number(np.array([120, 125, 129]), np.log([0.3, 0.1, 0.2]), 0.04) == 0
    with pytest.raises(ValueError, match="matching"):
        most_probable_number(values, np.zeros(2), 0.04)


def test_a_tasks_own_score_chooses_where_shared_words_would_not():
    # Word agreement counts "the time signature is" as agreement; the meter it states is what the task scores.
    meter = get_task("meter")
    samples = ["The time signature is 3/4.", "The time signature is 3/4.", "6/8.", "It is in 6/8.", "Compound duple, 6/8 time."]
    assert choose_answer(samples) == 0
    assert choose_by_agreement(samples, meter.parse, meter.agreement) == 2


def test_agreement_choice_skips_unparseable_answers_and_weighs_the_belief():
    meter = get_task("meter")
    choose = lambda texts, *rest, **named: choose_by_agreement(texts, meter.parse, meter.agreement, *rest, **named)  # noqa: E731
    texts = ["No idea.", "3/4.", "6/8.", "In 6/8.", "Hard to say."]
    assert choose(texts) == 2  # the first of the majority; an answer stating no meter is never chosen
    assert choose(["No idea.", "Hard to say."]) is None  # the Answerer falls back to the words
    belief = [("3/4", 0.9), ("6/8", 0.1)]  # a head hearing 3/4; of the samples that state a meter, 1/3 say 3/4
    assert choose(texts, belief, 0.2) == 2  # 0.8 * 2/3 + 0.02 > 0.8 / 3 + 0.18
    assert choose(texts, belief, 0.5) == 1  # 0.5 / 3 + 0.45 > 0.5 * 2/3 + 0.05
    assert choose(texts, [("3/4", 9.0), ("6/8", 1.0)], 0.5) == 1  # the belief is normalised
    # Unparseable samples are no evidence: the samples that state a meter keep their (1 - w) whatever
    # their number (counted as truths that score 0, ten of them would hand the choice to the head's 3/4:
    # 0.9 / 13 + 0.09 > 0.9 * 2/13 + 0.01).
    assert choose(texts + ["Unclear."] * 10, belief, 0.1) == 2  # 0.9 * 2/3 + 0.01 > 0.9 / 3 + 0.09
    # The head alone chooses among the sampled answers only: 2/4 was never sampled.
    assert choose(texts, [("2/4", 1.0)], 1.0) == 1
    # Weighed by the model's probability of each distinct answer, once however often it was sampled.
    assert choose(["3/4."] * 3 + ["6/8."], log_probs=[-1.0, -1.0, -1.0, -0.2]) == 3
    assert choose(["3/4."] * 3 + ["6/8."]) == 0  # by counts
    with pytest.raises(ValueError, match="belief_weight must be in"):
        choose(texts, belief, 1.5)
    with pytest.raises(ValueError, match="needs a belief"):
        choose(texts, None, 0.5)
    # The key's MIREX weights: with a head hearing G major, D major (a fifth above it: 0.5) is chosen,
    # though no sample is G major; C major, the samples' majority, scores 0 against G major.
    key = get_task("key")
    texts = ["C major.", "It is in C major.", "A minor.", "D major."]
    assert choose_by_agreement(texts, key.parse, key.agreement) == 0
    assert choose_by_agreement(texts, key.parse, key.agreement, [("G major", 1.0)], 0.9) == 3


def test_the_numbers_belief_moves_the_most_probable_number():
    values = np.array([100, 150])
    log_probs = np.log([0.6, 0.4])
    assert most_probable_number(values, log_probs, 0.04) == 0
    belief = [(148.0, 0.8), (60.0, 0.2)]  # a tempo head reading about 150
    assert most_probable_number(values, log_probs, 0.04, belief, 0.5) == 1  # 0.2 + 0.4 > 0.3
    assert most_probable_number(values, log_probs, 0.04, belief, 0.1) == 0  # 0.54 > 0.36 + 0.08
    with pytest.raises(ValueError, match="needs a belief"):
        most_probable_number(values, log_probs, 0.04, None, 0.5)


def test_head_weight_reads_each_prompts_heads_and_needs_them(tmp_path):
    import torch

    from llark.config import Config
    from llark.data import collate
    from llark.inference import Answerer
    from llark.label_targets import head_belief
    from llark.model import LLark
    from tests.conftest import tiny_model

    torch.manual_seed(0)
    for name, weight in (("heads", 1.0), ("plain", 0.0)):
        model = tiny_model(seed=2, label_loss_weight=weight)
        model.save_pretrained(tmp_path / name, Config(model=model.config), model.tokenizer)
    model = LLark.from_pretrained(tmp_path / "heads").eval()
    with pytest.raises(ValueError, match="needs mbr_samples"):
        GenerationOptions(head_weight=0.5)
    options = GenerationOptions(mbr_samples=4, temperature=0.5, head_weight=0.5, max_new_tokens=6)
    with pytest.raises(ValueError, match="needs a checkpoint with label heads"):
        Answerer(LLark.from_pretrained(tmp_path / "plain"), options)
    answerer = Answerer(model, options, batch_size=2)
    rng = np.random.default_rng(0)
    features = [rng.normal(size=(t, 16)).astype(np.float32) for t in (3, 5, 4)]
    questions = ["What key is it in?", "What is the time signature?", "Describe the clip."]
    tasks = [get_task("key"), get_task("meter"), None]
    batch = collate([answerer.prompt(q, f) for q, f in zip(questions, features)], model.ids.pad, left_pad=True)
    probabilities = model.label_probabilities(batch["input_ids"], batch["attention_mask"], batch["audio"],
                                              batch["audio_lengths"])
    beliefs = answerer.head_beliefs(batch, tasks)
    assert beliefs[0] == head_belief("key", probabilities["key"][0].numpy())
    assert beliefs[1] == head_belief("meter", probabilities["meter"][1].numpy()) and beliefs[2] is None
    assert answerer.head_beliefs(batch, [None, None, get_task("caption")]) == [None] * 3  # no head for these
    answers = answerer.answer(questions, features, tasks=tasks)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    with pytest.raises(ValueError, match="2 tasks for 3 questions"):
        answerer.answer(questions, features, tasks=tasks[:2])


def test_the_heads_belief_decides_between_a_tasks_sampled_answers(tmp_path, monkeypatch):
    # The model's sampling replaced by fixed samples: a meter question whose samples mostly say 6/8, and a
    # question of no task. With the head hearing 3/4 at weight 0.5, the meter answer is the sample saying so.
    from llark.config import Config
    from llark.inference import Answerer
    from llark.model import LLark
    from tests.conftest import tiny_model

    model = tiny_model(seed=2, label_loss_weight=1.0)
    model.save_pretrained(tmp_path / "ckpt", Config(model=model.config), model.tokenizer)
    model = LLark.from_pretrained(tmp_path / "ckpt").eval()
    samples = {0: ["It is 3/4.", "6/8.", "In 6/8.", "6/8."], 1: ["The cello.", "The organ.", "The cello.", "No."]}

    def generate(input_ids, *args, samples_per_prompt=1, **kwargs):
        assert samples_per_prompt == 4
        return [model.tokenizer.encode(text, add_special_tokens=False) for row in range(len(input_ids)) for text in samples[row]]

    monkeypatch.setattr(model, "generate", generate)
    answerer = Answerer(model, GenerationOptions(mbr_samples=4, temperature=0.5, head_weight=0.5), batch_size=2)
    features = [np.zeros((3, 16), np.float32)] * 2
    questions, tasks = ["What is the time signature?", "Which instrument?"], [get_task("meter"), None]
    beliefs = {"3/4": [[("3/4", 1.0)], None], "none": [None, None]}
    for heard, expected in (("3/4", "It is 3/4."), ("none", "6/8.")):
        monkeypatch.setattr(answerer, "head_beliefs", lambda batch, chunk_tasks: beliefs[heard])
        assert answerer.answer(questions, features, tasks=tasks) == [expected, "The cello."], heard
