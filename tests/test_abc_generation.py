"""The abc_generation task: generated tunes judged against their prompt, and its evaluate.py systems."""

from __future__ import annotations

import json

import pytest

from llark.evaluation.tasks.abc_generation import AbcGenerationTask, note_text

JIG = "X:1\nT:Test Jig\nL:1/8\nM:6/8\nK:D\n|:A|dfa afd|gbg faf|edc dcB|A3 A2:|\n"
TRAINING = [
    "X:1\nL:1/8\nM:6/8\nK:D\n|:A|dFA AFA|BGB AFA|dFA AFd|ecA A2:|\n",
    "X:1\nL:1/8\nM:4/4\nK:G\nGABc dBGB|cBAG FDEF|GABc dBGB|AGFA G4|]\n",
]


@pytest.fixture()
def gold_of(tmp_path):
    reference = tmp_path / "tunes-train.jsonl"
    reference.write_text("".join(json.dumps({"abc": tune}) + "\n" for tune in TRAINING))
    task = AbcGenerationTask()

    def make(key="D major", meter="6/8", reference_abc=JIG):
        return task.parse_gold({"key": key, "meter": meter, "reference_abc": reference_abc,
                                "novelty_reference": str(reference)})

    return task, make


def test_a_good_new_tune_passes_everything(gold_of):
    task, gold = gold_of
    row = task.judge(task.parse("Here is a jig:\n" + JIG), gold())
    assert {k: row[k] for k in ("parse", "bars", "key", "meter", "repeats", "repeats_like_ref", "novel")} == \
        dict.fromkeys(("parse", "bars", "key", "meter", "repeats", "repeats_like_ref", "novel"), 1.0)
    assert 0 <= row["nearest_similarity"] < 0.5


@pytest.mark.parametrize("gold_key, adheres", [("D major", 1.0), ("Dmaj", 1.0), ("B minor", 0.0), ("D dorian", 0.0)])
def test_key_adherence_compares_tonic_and_mode(gold_of, gold_key, adheres):
    task, gold = gold_of
    assert task.judge(JIG, gold(key=gold_key))["key"] == adheres


def test_enharmonic_keys_adhere(gold_of):
    task, gold = gold_of
    tune = JIG.replace("K:D", "K:C#m")
    assert task.judge(tune, gold(key="Db minor"))["key"] == 1.0


def test_meter_bars_and_repeats_are_checked(gold_of):
    task, gold = gold_of
    assert task.judge(JIG, gold(meter="3/4"))["meter"] == 0.0
    assert task.judge(JIG.replace("M:6/8", "M:C"), gold(meter="4/4"))["meter"] == 1.0
    long_bar = JIG.replace("gbg faf", "gbg fafa")
    assert task.judge(long_bar, gold())["bars"] == 0.0
    assert task.judge(long_bar, gold())["bar_consistency"] == pytest.approx(4 / 5)  # 1 of 5 checked bars is long
    assert task.judge(JIG, gold())["bar_consistency"] == 1.0
    unbalanced = JIG.replace("A2:|", "A2|:")
    assert task.judge(unbalanced, gold())["repeats"] == 0.0
    no_repeat = JIG.replace("|:", "|").replace(":|", "|]")
    row = task.judge(no_repeat, gold())
    assert row["repeats"] == 1.0 and row["repeats_like_ref"] == 0.0


def test_a_copy_is_not_novel_and_nonsense_does_not_parse(gold_of):
    task, gold = gold_of
    copy = task.judge("X:5\nT:Renamed\n" + TRAINING[0].split("\n", 1)[1], gold())
    assert copy["nearest_similarity"] == 1.0 and copy["novel"] == 0.0 and copy["parse"] == 1.0
    assert task.parse("I cannot write music.") is None
    assert task.metrics([None], [gold()]) == dict.fromkeys(task.metrics([None], [gold()]), 0.0)
    broken = task.judge("X:1\nK:D\nzz|", gold())  # too few notes
    assert broken["parse"] == 0.0 and broken["novel"] == 0.0


def test_note_text_ignores_layout():
    assert note_text("X:1\nK:D\n|: A B | c d :|\n") == note_text("X:2\nT:x\nK:D\nAB|cd|\n")


def test_baselines_show_what_each_metric_catches(gold_of):
    task, gold = gold_of
    golds = [gold(), gold(key="G major", meter="4/4")]
    systems = {name: task.metrics(values, golds) for name, values in task.baselines(golds).items()}
    assert systems["held-out real tunes"]["parse"] == 1.0 and systems["held-out real tunes"]["key"] == 0.5
    copied = systems["copy of a training tune"]
    assert copied["key"] == 1.0 and copied["meter"] == 1.0 and copied["novel"] == 0.0
    assert systems["fixed tune"]["meter"] == 0.5 and systems["fixed tune"]["key"] == 0.0


def test_gold_needs_the_prompt_fields():
    with pytest.raises(ValueError, match="needs key, meter and reference_abc"):
        AbcGenerationTask().parse_gold({"key": "D"})


@pytest.mark.slow
def test_evaluate_runs_a_text_only_generation_manifest(trained_probe_checkpoint, tmp_path):
    import evaluate

    _, checkpoint = trained_probe_checkpoint
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"abc": t}) + "\n" for t in TRAINING))
    items = [{"id": f"g{i}", "task": "abc_generation", "modality": "text", "question": "Write a jig in D major.",
              "gold": {"key": "D major", "meter": "6/8", "reference_abc": JIG, "novelty_reference": "train.jsonl"}}
             for i in range(3)]
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("".join(json.dumps(item) + "\n" for item in items))
    assert evaluate.main(["--checkpoint", str(checkpoint), "--manifest", str(manifest), "--out", str(tmp_path / "out"),
                          "--bootstrap", "20", "--max-new-tokens", "8"]) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    systems = results["tasks"]["abc_generation"]["systems"]
    assert set(systems) == {"llark", "held-out real tunes", "copy of a training tune", "fixed tune"}
    assert systems["held-out real tunes"]["parse"]["value"] == 1.0
