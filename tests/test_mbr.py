"""Minimum-Bayes-risk choice among sampled answers (llark/mbr.py) and its use by the Answerer."""

import numpy as np
import pytest

from llark.inference import GenerationOptions
from llark.mbr import Terms, agreement, answer_terms, choose_answer, most_probable_number


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
        "minimum Bayes risk over 16 samples at temperature 0.5 (numbers agree within 4%)")
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
                                      seed=2, mbr_samples=4, mbr_number_tolerance=0.02, mbr_weighting="probability")):
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
