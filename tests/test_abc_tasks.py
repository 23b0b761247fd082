"""ChatMusician-format ABC tasks (llark/abc_tasks.py) on hand-written tunes, and the ABC data script
(preprocessing/make_abc_data.py): splits, text-only shards through ShardDataset, the eval manifest, a
small end-to-end run on music21's tunes."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import tarfile
from pathlib import Path

import pytest

from llark import abc
from llark.corpus.splits import split_of
from llark.abc_tasks import (
    ANALYSIS_QUESTIONS, CHORD_INSTRUCTIONS, CONTINUATION_INSTRUCTIONS, HEADER_INSTRUCTIONS, TEXT2ABC_INSTRUCTIONS,
    TaskConfig,
    TRANSPOSITION_SHIFTS, analysis_answers, build_pairs, chord_symbols, describe_tune, split_after_bars,
    strip_chord_symbols, transposed_variants, tune_header, variant_pairs,
)
from llark.data import ExampleBuilder, ShardDataset
from llark.evaluation import get_task
from llark.inference import read_manifest
from llark.jsonl import resolve_path
from llark.templates import get_template
from tests.conftest import tiny_tokenizer

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_abc_data", REPO / "preprocessing" / "make_abc_data.py")
make_abc_data = importlib.util.module_from_spec(spec)
sys.modules["make_abc_data"] = make_abc_data
spec.loader.exec_module(make_abc_data)

# A jig with a pickup, chord symbols, a repeated A part and a B part with two endings.
JIG = """X:7
T:The Test Jig
R:Jig
M:6/8
L:1/8
K:Em
B|:"Em"E2E GFE|"D"D2D FED|"Em"E2E GAB|1 "D"dBA GFD:|2 "D"dBA GFE||
|:"Em"g2e gfe|"D"d2B dBA|"Em"g2e gfe|"D"dBA GFE:|
"""
# A reel in A dorian without chords, pickup or repeats; the annotation "^Fine" is not a chord.
REEL = """X:3
M:C|
L:1/8
K:Ador
EAAB cBcd|eaag edBd|"^Fine"gage dBGB|ABcB A2A2|
eaag edBd|eaag edBd|gage dBGB|ABcB A4|]
"""


def record(text: str, title: str | None = None, rhythm: str | None = None, tune_id: str = "test-0000",
           split: str = "train") -> dict:
    """A tunes.jsonl line as make_abc_data.py writes it."""
    clean = abc.normalise(text)
    return {"tune_id": tune_id, "collection": "oneills1850", "source": "test.abc X:1", "licence": "test",
            "provenance": "test", "split": split, "abc": clean, **describe_tune(clean, title, rhythm)}


@pytest.fixture()
def jig() -> dict:
    return record(JIG, "The Test Jig", "Jig")


@pytest.fixture()
def reel() -> dict:
    return record(REEL)


def families(pairs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for pair in pairs:
        out.setdefault(pair["family"], []).append(pair)
    return out


# ---- facts and families --------------------------------------------------------------------------
def test_describe_tune_reads_the_facts(jig, reel):
    assert (jig["key"], jig["meter"], jig["unit"], jig["rhythm"]) == ("E minor", "6/8", "1/8", "jig")
    assert (jig["bars"], jig["pickup"], jig["repeats"], jig["has_chords"]) == (9, True, 2, True)
    assert (reel["key"], reel["meter"], reel["rhythm"]) == ("A dorian", "2/2", None)
    assert (reel["bars"], reel["pickup"], reel["repeats"]) == (8, False, 0)
    assert not reel["has_chords"] and chord_symbols(reel["abc"]) == []
    assert chord_symbols(jig["abc"])[:4] == ["Em", "D", "Em", "D"]


def test_text2abc_states_the_header_fields_and_answers_the_tune(jig):
    pairs = families(build_pairs(jig, TaskConfig(), random.Random(0)))["text2abc"]
    (pair,) = pairs
    instruction, fields = pair["question"].split("\n", 1)
    assert instruction in TEXT2ABC_INSTRUCTIONS
    for word, value in (("Meter", "6/8"), ("Note Length", "1/8"), ("Rhythm", "jig")):
        assert f"{word} {value}" in fields or f"{word}: {value}" in fields
    assert "Key Em" in fields or "Key: Em" in fields or "E minor" in fields
    assert pair["answer"] == jig["abc"] and pair["answer"].startswith("X:1\nL:1/8\nM:6/8\nK:Em\n")


@pytest.mark.parametrize("bars", [1, 2, 4])
def test_continuation_reassembles_the_tune(jig, reel, bars):
    for tune in (jig, reel):
        beginning, rest = split_after_bars(tune["abc"], bars)
        assert beginning + rest == tune["abc"]
        assert rest and not rest[0].isspace()  # the rest starts with music
        head = abc.parse_tune(beginning)
        full = [b for b in head.voices["1"] if b.duration == b.meter]
        assert len(full) == bars and len(head.voices["1"]) == bars + tune["pickup"]


def test_continuation_pair_is_the_beginning_and_the_rest(jig):
    for seed in range(6):
        (pair,) = families(build_pairs(jig, TaskConfig(), random.Random(seed)))["continuation"]
        instruction, beginning = pair["question"].split("\n", 1)
        assert any(instruction == text.format(n=n) for text in CONTINUATION_INSTRUCTIONS for n in (2, 4))
        assert beginning + pair["answer"] == jig["abc"]


def test_continuation_keeps_a_closing_repeat_with_its_bar():
    tune = abc.normalise("X:1\nM:2/4\nL:1/8\nK:D\nAB cd|ef g2| :|AB cd|e4|]\n")
    assert split_after_bars(tune, 2) == ("X:1\nL:1/8\nM:2/4\nK:D\nAB cd|ef g2| :|", "AB cd|e4|]\n")
    assert split_after_bars(tune, 4) is None  # nothing left to continue


def test_analysis_answers_parse_back_with_the_evaluation_parsers(jig, reel):
    answers = analysis_answers(jig)
    assert answers == {"key": "E minor", "meter": "6/8", "rhythm": "jig", "bars": "9", "repeats": "2",
                       "has_repeats": "Yes"}
    for kind, task_name in (("key", "key"), ("meter", "meter"), ("bars", "exact"), ("repeats", "exact")):
        task = get_task(task_name)
        assert task.parse(answers[kind]) == task.parse_gold(answers[kind])
    assert get_task("meter").parse(analysis_answers(reel)["meter"]) == "2/2"
    assert analysis_answers(reel)["has_repeats"] == "No" and "rhythm" not in analysis_answers(reel)
    pairs = families(build_pairs(jig, TaskConfig(), random.Random(0)))["analysis"]
    assert len(pairs) == len(answers) and {p["answer"] for p in pairs} == set(answers.values())
    for pair in pairs:
        assert jig["abc"] in pair["question"]
        assert any(q in pair["question"] for qs in ANALYSIS_QUESTIONS.values() for q in qs)


def test_no_key_or_meter_question_when_the_body_changes_them():
    changing = record("X:1\nM:6/8\nL:1/8\nK:G\nGAG GAB|ABA ABd|\nM:2/4\nK:D\nAB cd|ef ga|]\n")
    assert changing["changes"] == ["K", "M"]
    assert {"key", "meter"}.isdisjoint(analysis_answers(changing))


def test_harmonisation_only_for_tunes_with_chords(jig, reel):
    jig_families = families(build_pairs(jig, TaskConfig(), random.Random(0)))
    (harmony,) = jig_families["harmonisation"]
    melody = harmony["question"].split("\n", 1)[1]
    assert harmony["answer"] == jig["abc"] and chord_symbols(melody) == []
    assert abc.parse_tune(melody).bar_counts == abc.parse_tune(jig["abc"]).bar_counts
    assert melody == strip_chord_symbols(jig["abc"]) and '"' not in melody
    (chords,) = jig_families["chord_conditioned"]
    assert any(chords["question"].startswith(text) for text in CHORD_INSTRUCTIONS)
    assert "'Em', 'D', 'Em', 'D'" in chords["question"] and chords["answer"] == jig["abc"]
    reel_families = families(build_pairs(reel, TaskConfig(), random.Random(0)))
    assert "harmonisation" not in reel_families and "chord_conditioned" not in reel_families
    assert '"^Fine"' in reel["abc"]  # an annotation, not a chord


def test_answers_are_length_capped(jig):
    config = TaskConfig(max_chars=len(jig["abc"]) - 1)
    pairs = build_pairs(jig, config, random.Random(0))
    assert {p["family"] for p in pairs} == {"analysis", "header"}  # a long tune still serves analysis
    short = build_pairs(jig, TaskConfig(max_chars=10, max_analysis_chars=10), random.Random(0))
    assert [p["family"] for p in short] == ["header"]  # every tune has a header
    for pair in build_pairs(jig, TaskConfig(max_chars=len(jig["abc"])), random.Random(0)):
        assert len(pair["answer"]) <= len(jig["abc"])


def test_pairs_are_seeded(jig):
    assert build_pairs(jig, TaskConfig(), random.Random(3)) == build_pairs(jig, TaskConfig(), random.Random(3))
    questions = {build_pairs(jig, TaskConfig(), random.Random(s))[0]["question"] for s in range(12)}
    assert len(questions) > 3  # phrasings, field order and styles vary with the seed


def test_header_pairs_answer_the_header_under_their_own_instruction(jig):
    pairs = families(build_pairs(jig, TaskConfig(), random.Random(5)))
    (header,) = pairs["header"]
    assert header["answer"] == "X:1\nL:1/8\nM:6/8\nK:Em\n" and jig["abc"].startswith(header["answer"])
    instruction, fields = header["question"].split("\n", 1)
    assert instruction in HEADER_INSTRUCTIONS and instruction not in TEXT2ABC_INSTRUCTIONS  # never a whole-tune prompt
    assert "6/8" in fields and ("Em" in fields or "E minor" in fields)
    with pytest.raises(abc.AbcError, match="no K:"):
        tune_header("X:1\nL:1/8\n")


# ---- transposed copies ---------------------------------------------------------------------------
def test_transposed_variants_move_the_key_and_nothing_else(jig, reel):
    variants, skipped = transposed_variants(jig, TaskConfig(transpositions=3), random.Random(0))
    assert skipped == [] and len(variants) == 3
    shifts = [v["transposition"] for v in variants]
    assert len(set(shifts)) == 3 and set(shifts) <= set(TRANSPOSITION_SHIFTS)
    for variant in variants:
        assert variant["tune_id"] == f"test-0000{variant['transposition']:+d}" and variant["transposed_from"] == "test-0000"
        facts = describe_tune(variant["abc"])
        assert variant["key"] == facts["key"] != "E minor" and variant["key"].endswith(" minor")
        assert {k: facts[k] for k in ("meter", "unit", "bars", "repeats")} == \
            {k: jig[k] for k in ("meter", "unit", "bars", "repeats")}
        assert abc.check_bars(abc.parse_tune(variant["abc"])).ok
        back = abc.transpose(variant["abc"], -variant["transposition"])
        assert abc.score_notes(abc.to_score(back)) == abc.score_notes(abc.to_score(jig["abc"]))  # same pitches
    assert transposed_variants(jig, TaskConfig(transpositions=3), random.Random(0)) == (variants, [])  # seeded
    assert transposed_variants(jig, TaskConfig(), random.Random(0)) == ([], [])  # off by default
    assert len(transposed_variants(reel, TaskConfig(transpositions=20), random.Random(0))[0]) == len(TRANSPOSITION_SHIFTS)
    changing = record("X:1\nL:1/8\nM:2/4\nK:G\nGABc|dcBA|\nK:D\ndefg|afd2|]\n")
    assert transposed_variants(changing, TaskConfig(transpositions=3), random.Random(0)) == ([], [])


def test_variant_pairs_state_the_new_key(jig):
    config = TaskConfig(transpositions=2)
    for variant in transposed_variants(jig, config, random.Random(1))[0]:
        pairs = families(variant_pairs(variant, config, random.Random(2)))
        assert set(pairs) == {"text2abc", "continuation", "analysis", "header"}
        assert all(p["transposition"] == variant["transposition"] for group in pairs.values() for p in group)
        (text2abc,) = pairs["text2abc"]
        key_field = abc.first_field(variant["abc"], "K")
        assert text2abc["answer"] == variant["abc"]
        assert f"Key {key_field}" in text2abc["question"] or f"Key: {key_field}" in text2abc["question"] \
            or variant["key"] in text2abc["question"]
        (continuation,) = pairs["continuation"]
        assert continuation["question"].split("\n", 1)[1] + continuation["answer"] == variant["abc"]
        (key_question,) = pairs["analysis"]  # only the key: meter, bars and repeats did not move
        assert key_question["answer"] == variant["key"] and variant["abc"] in key_question["question"]


def test_transposed_copies_join_their_tune_and_bad_copies_are_dropped(jig, reel):
    records = [dict(jig, tune_id="jig-1"), dict(reel, tune_id="reel-1", split="test")]
    config = TaskConfig(transpositions=2)
    variants, dropped = make_abc_data.make_variants(records, config, seed=0, workers=1)
    assert dropped == [] and [v["transposed_from"] for v in variants] == ["jig-1", "jig-1"]  # train tunes only
    pairs = make_abc_data.tune_pairs(records, variants, config, seed=0)
    own = build_pairs(records[0], config, random.Random("0-jig-1"))
    assert pairs["jig-1"][:len(own)] == own
    assert len(pairs["jig-1"]) == len(own) + sum(len(variant_pairs(v, config, random.Random(f"0-{v['tune_id']}")))
                                                for v in variants)
    assert all("transposition" not in p for p in pairs["reel-1"])
    broken = dict(variants[0], abc=variants[0]["abc"].replace("|1", "|1 E2", 1))  # an ending now too long
    assert make_abc_data.check_variant(broken) is not None and make_abc_data.check_variant(variants[0]) is None


# ---- splits, shards and the eval manifest --------------------------------------------------------
def test_splits_use_the_audio_corpus_rule_and_duplicates_stay_out(jig, reel):
    # The audio corpus's rule: one tune printed in two collections (same title) lands in one split.
    assert split_of("oneills1850-0001", "The Kesh.") == split_of("ryansmammoth-0200", "the kesh")
    first = dict(jig, tune_id="oneills1850-0001", title="Tune 0")
    other_split = next(f"Tune {i}" for i in range(1, 200) if split_of("x", f"Tune {i}") != split_of("x", "Tune 0"))
    same_title = dict(jig, tune_id="ryansmammoth-0009", title="tune 0")
    conflicting = dict(jig, tune_id="airdsairs-0003", title=other_split)
    different = dict(reel, tune_id="airdsairs-0004", title="A Reel")

    kept, dropped = make_abc_data.assign_splits([dict(first), dict(same_title), dict(different)], split_of)
    assert [r["tune_id"] for r in kept] == ["oneills1850-0001", "airdsairs-0004"]
    assert [(d["tune_id"], d["stage"]) for d in dropped] == [("ryansmammoth-0009", "duplicate")]
    assert all(r["split"] == split_of(r["tune_id"], r["title"]) for r in kept)
    again, _ = make_abc_data.assign_splits([dict(first), dict(same_title), dict(different)], split_of)
    assert [r["split"] for r in again] == [r["split"] for r in kept]  # deterministic

    # Copies of one tune in different splits: none of them is kept, so none trains while another tests.
    kept, dropped = make_abc_data.assign_splits([dict(first), dict(conflicting), dict(different)], split_of)
    assert [r["tune_id"] for r in kept] == ["airdsairs-0004"]
    assert {d["tune_id"] for d in dropped} == {"oneills1850-0001", "airdsairs-0003"}
    assert all("different splits" in d["reason"] for d in dropped)


def test_text_only_shards_load_through_shard_dataset(jig, reel, tmp_path):
    records = [dict(jig, tune_id="jig-1", split="train"), dict(reel, tune_id="reel-1", split="train"),
               dict(reel, tune_id="reel-2", split="test")]
    pairs = make_abc_data.tune_pairs(records, [], TaskConfig(), seed=0)
    manifests = make_abc_data.write_split_shards(records, pairs, tmp_path, seed=0, shard_mb=1.0)
    assert manifests["train"]["samples"] == 2 and manifests["test"]["samples"] == 1 and manifests["val"]["samples"] == 0
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile("abc-jig-1.json").read())
    assert not any(name.endswith(".npy") for name in names)
    assert meta["modality"] == "text" and meta["licence"] == "test" and meta["labels"]["key"] == "E minor"
    tokenizer, ids = tiny_tokenizer()
    builder = ExampleBuilder(tokenizer, ids, get_template("chatmusician"), max_length=8192)
    examples = list(ShardDataset([str(tmp_path / "train-*.tar")], builder, loop=False, shuffle_buffer=0))
    assert len(examples) == len(pairs["jig-1"]) + len(pairs["reel-1"])
    assert all(e["features"].shape == (0, 0) for e in examples)


def test_eval_manifest_items(jig, reel, tmp_path):
    records = [dict(jig, tune_id="jig-1", split="test"), dict(reel, tune_id="reel-1", split="test"),
               dict(reel, tune_id="reel-2", split="train")]
    items = make_abc_data.eval_items(records, TaskConfig(), seed=0, generation=5, analysis=5)
    assert all(item["modality"] == "text" and {"id", "task", "question", "gold"} <= set(item) for item in items)
    assert len({item["id"] for item in items}) == len(items)
    generation = {item["tune_id"]: item for item in items if item["task"] == "abc_generation"}
    assert set(generation) == {"jig-1", "reel-1"}
    gold = generation["jig-1"]["gold"]
    assert {k: gold[k] for k in ("key", "meter", "unit", "rhythm")} == {"key": "E minor", "meter": "6/8",
                                                                        "unit": "1/8", "rhythm": "jig"}
    assert gold["reference_abc"] == jig["abc"] and gold["novelty_reference"] == "../tunes-train.jsonl"
    assert gold["title"] in (None, "The Test Jig")
    assert (gold["title"] is not None) == ("The Test Jig" in generation["jig-1"]["question"])
    manifest = tmp_path / "eval" / "test.jsonl"
    assert resolve_path(gold["novelty_reference"], manifest).resolve() == (tmp_path / "tunes-train.jsonl").resolve()
    by_task = {}
    for item in items:
        by_task.setdefault(item["task"], []).append(item)
    assert [i["gold"] for i in by_task["key"]] == ["E minor"]  # A dorian is not a key the key task scores
    assert sorted(i["gold"] for i in by_task["meter"]) == ["2/2", "6/8"]
    assert sorted(i["gold"] for i in by_task["exact"]) == ["0", "2", "8", "9"]
    for item in items:
        get_task(item["task"]).parse_gold(item["gold"])  # every gold is one its task reads


# ---- the script end to end -----------------------------------------------------------------------
def test_make_abc_data_end_to_end(tmp_path, capsys):
    out = tmp_path / "abc"
    args = ["--out", str(out), "--limit", "60", "--workers", "1", "--generation-prompts", "3", "--analysis-items", "2"]
    assert make_abc_data.main(args) == 0
    tunes = [json.loads(line) for line in (out / "tunes.jsonl").read_text().splitlines()]
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert len(tunes) + len(dropped) == 60 and len({t["tune_id"] for t in tunes}) == len(tunes)
    assert {t["collection"] for t in tunes} == {"oneills1850", "ryansMammoth", "airdsAirs"}
    fields = {"tune_id", "collection", "source", "title", "licence", "split", "abc", "key", "meter", "unit", "rhythm",
              "bars", "repeats", "has_chords"}
    assert all(fields <= set(t) and t["split"] in ("train", "val", "test") for t in tunes)
    assert all({"tune_id", "source", "stage", "reason"} <= set(d) for d in dropped)
    train = [json.loads(line) for line in (out / "tunes-train.jsonl").read_text().splitlines()]
    real_train = [t for t in tunes if t["split"] == "train"]
    copies = train[len(real_train):]
    summary = json.loads((out / "abc_data.json").read_text())
    assert train[:len(real_train)] == real_train and len(copies) == summary["counts"]["transposed_copies"] > 0
    assert {c["transposed_from"] for c in copies} <= {t["tune_id"] for t in real_train}
    assert summary["counts"]["pairs"]["train"]["transposed text2abc"] > 0
    manifest = json.loads((out / "shards" / "manifest.json").read_text())
    assert sum(m["samples"] for m in manifest["splits"].values()) == len(tunes)
    assert summary["counts"]["kept"] == len(tunes)
    items = read_manifest(out / "eval" / "test.jsonl", required=("id", "question", "task", "gold"))
    test_ids = {t["tune_id"] for t in tunes if t["split"] == "test"}
    assert items and all(item["modality"] == "text" and item["tune_id"] in test_ids for item in items)
    val_items = read_manifest(out / "eval" / "val.jsonl", required=("id", "question", "task", "gold"))
    val_ids = {t["tune_id"] for t in tunes if t["split"] == "val"}
    assert val_items and all(item["tune_id"] in val_ids for item in val_items)
    stamp = (out / "tunes.jsonl").stat().st_mtime_ns
    capsys.readouterr()
    assert make_abc_data.main(args) == 0
    assert "up to date" in capsys.readouterr().err and (out / "tunes.jsonl").stat().st_mtime_ns == stamp
