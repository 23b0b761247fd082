"""Metrics against hand-computed values (and mir_eval), parsers on tricky phrasings, intervals, ablations."""

import hashlib
import json
import re
from pathlib import Path

import mir_eval
import numpy as np
import pytest

from evaluate import ablate
from llark.evaluation import answer_agreement, get_task, item_counts
from llark.evaluation.baselines import classic_estimates, classic_pool, majority, uniform_random
from llark.evaluation.bootstrap import bootstrap
from llark.evaluation.instruments import instrument_class, instrument_classes
from llark.evaluation.parsing import parse_key, parse_letter, parse_meter, parse_tempo, tempo_span
from llark.evaluation.tasks.caption import rouge_l


@pytest.mark.parametrize("answer, expected", [
    ("It's in F sharp minor.", "F# minor"), ("F♯ minor", "F# minor"), ("f# minor", "F# minor"), ("F#m", "F# minor"),
    ("B flat major", "Bb major"), ("B♭ major", "Bb major"), ("Bb maj.", "Bb major"), ("D-flat major", "Db major"),
    ("The key is D:minor", "D minor"), ("C# Major", "C# major"), ("A MINOR", "A minor"),
    ("This is a minor-sounding tune in Eb major", "Eb major"),  # "a minor" is an article, not A minor
    ("in the key of G", "G major"), ("The piece is in E.", "E major"), ("em, maybe", None), ("Cm7 chords", None),
    ("I cannot tell", None), ("E minor, with a Bm chord later", "E minor"),
])
def test_parse_key(answer, expected):
    assert parse_key(answer) == expected


@pytest.mark.parametrize("answer, expected", [
    ("about 120 BPM", 120.0), ("96.5 beats per minute", 96.5), ("Tempo: 140", 140.0), ("3/4 at about 100", 100.0),
    ("recorded in 1999, around 88 bpm", 88.0), ("very slow", None), ("72bpm", 72.0),
])
def test_parse_tempo(answer, expected):
    assert parse_tempo(answer) == expected
    span = tempo_span(answer)  # where the number read lies: exact number MBR restates that one
    assert (None if span is None else float(answer[span[0] : span[1]])) == expected


@pytest.mark.parametrize("answer, expected", [
    ("6/8", "6/8"), ("It's in 6/8 time", "6/8"), ("six-eight", "6/8"), ("three four time", "3/4"), ("3 / 4", "3/4"),
    ("common time", "4/4"), ("cut time", "2/2"), ("12/8 shuffle", "12/8"), ("120 BPM", None), ("1/2 of it", None),
])
def test_parse_meter(answer, expected):
    assert parse_meter(answer) == expected


@pytest.mark.parametrize("answer, expected", [("Answer: B", "B"), ("(C) because", "C"), ("D. the fifth", "D"),
                                              ("I choose option A", "A"), ("the answer is d", "D"), ("no idea", None)])
def test_parse_letter(answer, expected):
    assert parse_letter(answer) == expected


def test_key_metric_matches_mir_eval():
    task = get_task("key")
    gold = ["C major", "C major", "C major", "C major", "C major", "F# minor"]
    predicted = ["C major", "G major", "A minor", "C minor", None, "Gb minor"]  # exact, fifth, relative, parallel, none, enharmonic
    result = task.metrics(predicted, gold)
    assert result["mirex"] == pytest.approx((1.0 + 0.5 + 0.3 + 0.2 + 0.0 + 1.0) / 6)
    assert result["mirex"] == pytest.approx(np.mean([mir_eval.key.weighted_score(g, p) if p else 0
                                                     for g, p in zip(gold, predicted)]))
    assert result["accuracy"] == pytest.approx(2 / 6)


def test_keys_that_mir_eval_cannot_spell_are_scored_by_their_enharmonic_name():
    # "Fb major" once stopped a whole evaluate.py run: mir_eval raises on Cb, Fb, E# and B# tonics.
    assert [parse_key(k) for k in ("Cb major", "Fb major", "E# minor", "B# major")] == [
        "B major", "E major", "F minor", "C major"]
    task = get_task("key")
    predicted = [task.parse("The key is Fb major."), task.parse("It is in Cb major.")]
    assert task.metrics(predicted, ["E major", "Ab minor"]) == {"mirex": pytest.approx((1.0 + 0.3) / 2), "accuracy": 0.5}


def test_tempo_acc1_acc2():
    task = get_task("tempo")
    gold = [100.0, 100.0, 100.0, 100.0, 100.0, 90.0]
    predicted = [103.9, 104.1, 200.0, 33.3, None, 45.0]
    assert task.metrics(predicted, gold) == {"acc1": pytest.approx(1 / 6), "acc2": pytest.approx(4 / 6)}
    # Acc2 agrees with the 4 % tolerance around each factor: 104.1 is outside, 33.3 = 100/3 inside.


def test_meter_accuracy():
    assert get_task("meter").metrics(["6/8", "3/4", None], ["6/8", "6/8", "4/4"]) == {"accuracy": pytest.approx(1 / 3)}


def test_instrument_classes_and_f1_by_hand():
    assert instrument_classes("Piano and fretless bass, but no drums.") == {"piano", "bass"}
    assert instrument_classes("A bass drum, a bass clarinet and an alto sax") == {"drums", "clarinet", "saxophone"}
    assert instrument_classes("There are no guitars here. Violins and a cello play.") == {"violin", "cello"}
    assert instrument_class("Electric Bass (finger)") == "bass" and instrument_class("Drums") == "drums"
    assert instrument_class("Lead 1 (square)") == "synth lead" and instrument_class("theremin") == "theremin"
    task = get_task("instruments")
    gold = [task.parse_gold(["Acoustic Grand Piano", "Drums"]), task.parse_gold(["Violin"])]
    predicted = [task.parse("piano, guitar"), task.parse("nothing I know")]
    # item 1: TP piano, FP guitar, FN drums; item 2: FN violin -> micro 2*1/(2+1+2)
    result = task.metrics(predicted, gold)
    assert result["micro_f1"] == pytest.approx(2 / 5)
    # classes: drums F1 0, guitar F1 0, piano F1 1, violin F1 0 -> macro 1/4
    assert result["macro_f1"] == pytest.approx(0.25)


def test_instrument_f1_counts_match_the_definition_on_random_sets():
    """The per-class counts are gathered in one pass over the items (the bootstrap calls this 1000 times
    per system); they must equal each class's F1 counted item by item."""
    task, rng = get_task("instruments"), np.random.default_rng(3)
    names = ["piano", "drums", "bass", "violin", "flute", "guitar"]
    pick = lambda: frozenset(n for n in names if rng.random() < 0.3)  # noqa: E731
    gold = [pick() or frozenset({"piano"}) for _ in range(40)]
    predicted = [pick() or None for _ in range(40)]  # None: an unparseable answer, an empty set
    sets = [p or frozenset() for p in predicted]

    def f1(tp, fp, fn):
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0

    per_class = [f1(sum(c in p and c in g for p, g in zip(sets, gold)), sum(c in p and c not in g for p, g in zip(sets, gold)),
                    sum(c not in p and c in g for p, g in zip(sets, gold))) for c in sorted(set().union(*gold, *sets))]
    micro = f1(sum(len(p & g) for p, g in zip(sets, gold)), sum(len(p - g) for p, g in zip(sets, gold)),
               sum(len(g - p) for p, g in zip(sets, gold)))
    assert task.metrics(predicted, gold) == {"micro_f1": pytest.approx(micro), "macro_f1": pytest.approx(np.mean(per_class))}


def test_genre_caption_mcq_and_abc():
    genre = get_task("genre")
    assert genre.parse("Sounds like hip-hop with jazz samples") == "hiphop" == genre.parse_gold("Hip Hop")
    assert genre.metrics([genre.parse("a classical piece"), None], ["classical", "rock"]) == {"accuracy": 0.5}
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    assert rouge_l("cat the", "the cat") == pytest.approx(0.5)  # LCS 1 of 2 words
    caption = get_task("caption").metrics(["a slow piano piece in d minor"], ["A slow piano piece in D minor."])
    assert caption["rouge_l"] == 1.0 and caption["bleu"] > 0.5
    mcq = get_task("mcq")
    assert mcq.metrics([mcq.parse("Answer: C"), mcq.parse("B")], ["C", "A"]) == {"accuracy": 0.5}
    abc = get_task("abc_transcription")
    tune = "X:1\nL:1/8\nM:6/8\nK:D\nA|dfa agf|g2e e2f|"
    result = abc.metrics([abc.parse(tune), abc.parse("I can't"), abc.parse("X:1\nL:1/8\nM:6/8\nK:D\nA|dfa agf|")],
                         [abc.parse_gold(tune)] * 3)
    assert result["note_f1"] == pytest.approx((1.0 + 0.0 + 2 * 7 / (7 + 11)) / 3)  # 7 of the 11 notes, all right
    # Its gold is a pair of arrays: the majority and random baselines still pick among the golds.
    golds = [abc.parse_gold(tune), abc.parse_gold("X:1\nL:1/8\nK:D\nABc|"), abc.parse_gold(tune)]
    assert all(answer is golds[0] for answer in majority(golds))  # the tune seen twice
    guesses = uniform_random(golds * 10, seed=1)
    assert all(any(guess is gold for gold in golds) for guess in guesses)
    assert len({id(guess) for guess in guesses}) == 2  # the tune seen twice is one choice, not two


def test_majority_of_instrument_sets_is_the_commonest_members():
    task = get_task("instruments")
    # Every set is seen once except a lone harp, seen twice: the commonest whole set would be {harp}.
    gold = [frozenset(s) for s in (["bass", "drums", "guitar"], ["bass", "drums", "piano"], ["bass", "drums"],
                                   ["bass", "guitar", "organ"], ["drums", "bass", "flute", "guitar"],
                                   ["harp"], ["harp"])]
    answer = majority(gold)
    assert answer == [frozenset({"bass", "drums", "guitar"})] * len(gold)
    f1 = task.metrics(answer, gold)["micro_f1"]
    assert f1 == pytest.approx(24 / 38)  # 12 true positives, 9 false positives, 5 false negatives
    for k in (1, 2, 4):  # fewer or more of the commonest members score lower
        others = ["bass", "drums", "guitar", "harp"][:k]
        assert task.metrics([frozenset(others)] * len(gold), gold)["micro_f1"] < f1
    assert task.metrics([frozenset({"harp"})] * len(gold), gold)["micro_f1"] < f1
    assert majority(["C major", "A minor", "C major"]) == ["C major"] * 3  # single labels: unchanged


def test_bootstrap_intervals_cover_the_value_and_narrow_with_n():
    task = get_task("meter")
    gold = ["4/4"] * 40
    predicted = ["4/4"] * 30 + ["3/4"] * 10
    low, high = bootstrap(task.metrics, predicted, gold, samples=500)["accuracy"]
    assert low < 0.75 < high and 0.55 < low and high < 0.9
    low_big, high_big = bootstrap(task.metrics, predicted * 10, gold * 10, samples=500)["accuracy"]
    assert high_big - low_big < (high - low) / 2
    assert bootstrap(task.metrics, predicted, gold, samples=200, seed=3) == bootstrap(task.metrics, predicted, gold,
                                                                                       samples=200, seed=3)
    from evaluate import with_intervals

    assert with_intervals(task, predicted, gold, samples=0, seed=0) == {"accuracy": {"value": 0.75, "low": 0.75,
                                                                                     "high": 0.75}}


@pytest.mark.parametrize("name", ["key", "tempo", "meter", "instruments"])
def test_bootstrap_of_summed_counts_matches_scoring_every_resample(name):
    # The same draws scored both ways give the same interval ends; answers with unparseable ones, keys
    # spelled enharmonically, instrument sets whose classes some resamples lack (macro-F1's class list).
    rng = np.random.default_rng(7)
    task = get_task(name)
    pools = {"key": (["C major", "A minor", "F# minor", "Gb minor", "Eb major", None], ["C major", "A minor", "F# minor"]),
             "tempo": ([60.0, 61.0, 120.0, 90.0, 45.0, None], [60.0, 90.0, 120.0]),
             "meter": (["4/4", "3/4", "6/8", None], ["4/4", "3/4", "6/8"]),
             "instruments": ([frozenset({"piano"}), frozenset({"piano", "bass"}), frozenset({"harp"}), None],
                             [frozenset({"piano"}), frozenset({"bass", "drums"}), frozenset({"flute"})])}
    answers, labels = pools[name]
    predicted = [answers[i] for i in rng.integers(0, len(answers), 40)]
    gold = [labels[i] for i in rng.integers(0, len(labels), 40)]
    counts = item_counts(task)
    assert counts is not None and item_counts(get_task("caption")) is None
    scored = bootstrap(task.metrics, predicted, gold, samples=300, seed=5)
    summed = bootstrap(task.metrics, predicted, gold, samples=300, seed=5, counts=counts)
    assert scored.keys() == summed.keys() == task.metrics(predicted, gold).keys()
    for metric in scored:
        assert summed[metric] == pytest.approx(scored[metric], abs=1e-12)
        assert scored[metric][0] < scored[metric][1]  # a real spread: the check is not of two constants


def test_instrument_f1_counts_only_the_classes_named():
    task = get_task("instruments")
    gold = [frozenset({"piano"}), frozenset({"bass"})]
    # piano: F1 1; bass: missed (F1 0); harp: named and wrong (F1 0); flute, in no answer or label, does not count.
    result = task.metrics([frozenset({"piano"}), frozenset({"harp"})], gold)
    assert result == {"micro_f1": pytest.approx(2 / 4), "macro_f1": pytest.approx(1 / 3)}
    assert task.metrics([None, None], gold) == {"micro_f1": 0.0, "macro_f1": 0.0}
    assert task.metrics([], []) == {"micro_f1": 1.0, "macro_f1": 0.0}  # nothing named, nothing missed


def test_shuffled_ablation_is_a_seeded_derangement():
    features = [np.full((2, 3), i, np.float32) for i in range(10)]
    shuffled = ablate(features, "shuffled", seed=0)
    assert all(s[0, 0] != i for i, s in enumerate(shuffled))
    assert sorted(s[0, 0] for s in shuffled) == list(range(10))
    assert all((z == 0).all() and z.shape == f.shape for z, f in zip(ablate(features, "zeroed", 0), features))


def test_gold_labels_are_checked():
    with pytest.raises(ValueError, match="gold key"):
        get_task("key").parse_gold("H dorian")
    with pytest.raises(ValueError, match="gold tempo"):
        get_task("tempo").parse_gold(-3)
    with pytest.raises(KeyError, match="unknown task"):
        get_task("bleu")


@pytest.mark.slow
def test_evaluate_end_to_end_writes_results_report_and_plots(trained_probe_checkpoint, tmp_path):
    """Probe checkpoint (16-d features) on MIR questions: the plumbing, baselines, intervals and files."""
    import soundfile

    import evaluate

    _, checkpoint = trained_probe_checkpoint
    rng = np.random.default_rng(0)
    rows = []
    keys = ["C major", "A minor", "G major", "E minor"]
    for i in range(8):
        np.save(tmp_path / f"clip{i}.npy", rng.normal(size=(20, 16)).astype(np.float32))
        t = np.arange(22050 * 4) / 22050
        soundfile.write(tmp_path / f"clip{i}.wav", (0.3 * np.sin(2 * np.pi * 220 * (1 + i / 8) * t)).astype(np.float32), 22050)
        common = {"features": f"clip{i}.npy", "audio": f"clip{i}.wav", "start": 0.0, "end": 4.0,
                  "groups": [("even", "odd")[i % 2]] + (["first three"] if i < 3 else [])}
        rows += [{"id": f"clip{i}", "task": "key", "question": "What key?", "gold": keys[i % 4], **common},
                 {"id": f"clip{i}", "task": "tempo", "question": "What tempo?", "gold": 90.0 + 10 * i, **common},
                 {"id": f"clip{i}", "task": "instruments", "question": "Which instrument is loudest in this clip?",
                  "gold": ["Acoustic Grand Piano"] if i % 2 else ["Violin"], **common},
                 {"id": f"clip{i}", "task": "mcq", "question": "Which instrument is loudest in this clip?", "gold": "A",
                  "options": {"A": "The loudest instrument is the piano.", "B": "The loudest instrument is the organ."},
                  **common}]
    rows.append({"id": "broken", "task": "key", "question": "What key?", "gold": "C major", "features": "missing.npy"})
    rows.append({"id": "badgold", "task": "key", "question": "What key?", "gold": "H dorian", "features": "clip0.npy"})
    rows.append({"id": "badgroup", "task": "key", "question": "What key?", "gold": "C major", "features": "clip0.npy",
                 "groups": "tunes"})
    rows.append({"id": "spacedgroup", "task": "key", "question": "What key?", "gold": "C major", "features": "clip0.npy",
                 "groups": ["tunes "]})  # would be a group apart from "tunes"
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "results"
    assert evaluate.main(["--checkpoint", str(checkpoint), "--manifest", str(manifest), "--out", str(out),
                          "--bootstrap", "50", "--max-new-tokens", "16"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["answered"] == 32 and results["failed"] == 4
    assert results["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert {f["id"] for f in results["failures"]} == {"broken", "badgold", "badgroup", "spacedgroup"}
    for failure in results["failures"][-2:]:
        assert "'groups' must be a list of non-empty names without surrounding spaces" in failure["error"]
    assert set(results["tasks"]) == {"key", "tempo", "instruments", "mcq"}
    key = results["tasks"]["key"]
    assert key["n"] == 8 and key["unparseable"]["audio"] == 8  # the probe model only names instruments
    systems = key["systems"]
    assert {"llark", "llark, features zeroed", "llark, features shuffled", "majority", "constant", "random",
            "classic (librosa)"} <= set(systems)
    assert systems["llark"]["mirex"]["value"] == 0.0
    expected = np.mean([mir_eval.key.weighted_score(keys[i % 4], "C major") for i in range(8)])  # the first of 4 ties
    assert systems["majority"]["mirex"]["value"] == pytest.approx(expected)
    for task in results["tasks"].values():
        for metrics in task["systems"].values():
            for value in metrics.values():
                assert value["low"] <= value["value"] + 1e-9 and value["value"] <= value["high"] + 1e-9
    assert "llark, option likelihood" in results["tasks"]["mcq"]["systems"]
    assert results["tasks"]["instruments"]["unparseable"]["audio"] < 8  # it does name instruments
    report = (out / "report.md").read_text()
    assert "## key (n = 8" in report and "classic (librosa)" in report and "Decoding: greedy." in report
    assert results["decoding"]["mbr_samples"] == 0 and results["decoding"]["max_new_tokens"] == 16
    for plot in ("key_confusion.png", "tempo_scatter.png", "tasks.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 32 * 3
    # each group's figures are the task's metrics on that group's items alone; an item counts in each of its groups
    tempo = get_task("tempo")
    tempo_items = [{**r, "audio": str(tmp_path / r["audio"])} for r in rows if r["task"] == "tempo"]  # clip0..clip7
    librosa_tempi = classic_estimates("tempo", tempo_items, evaluate.classic_wave_loader())
    with classic_pool(2) as pool:  # evaluate.py's way: the same estimates, in order, from two spawned processes
        assert classic_estimates("tempo", tempo_items, evaluate.classic_wave_loader(), pool) == librosa_tempi
    assert list(results["tasks"]["tempo"]["groups"]) == ["even", "odd", "first three"]
    for group, member in (("even", lambda i: i % 2 == 0), ("odd", lambda i: i % 2 == 1), ("first three", lambda i: i < 3)):
        scored = results["tasks"]["tempo"]["groups"][group]
        assert scored["n"] == sum(map(member, range(8))) and set(scored["systems"]) == {"llark", "classic (librosa)"}
        mine = [p for p in predictions if p["task"] == "tempo" and p["condition"] == "audio" and member(int(p["id"][4:]))]
        expected = tempo.metrics([tempo.parse(p["answer"]) for p in mine], [tempo.parse_gold(p["gold"]) for p in mine])
        assert {m: v["value"] for m, v in scored["systems"]["llark"].items()} == pytest.approx(expected)
        classic = [estimate for i, estimate in enumerate(librosa_tempi) if member(i)]
        assert {m: v["value"] for m, v in scored["systems"]["classic (librosa)"].items()} == pytest.approx(
            tempo.metrics(classic, [tempo.parse_gold(p["gold"]) for p in mine]))
    assert "By group (tempo):" in report and "| odd | 4 | classic (librosa) |" in report
    assert "| first three | 3 | llark |" in report


def test_answer_workers_give_the_same_answers_and_load_each_clip_once(trained_probe_checkpoint, tmp_path, monkeypatch):
    """--answer-workers 2 answers the ablated conditions in a spawned process, with sampled (MBR) decoding: the
    same predictions as one process answering them in turn. A clip asked four questions is read once."""
    import evaluate
    from llark.inference import Answerer

    _, checkpoint = trained_probe_checkpoint
    rng = np.random.default_rng(1)
    rows = []
    for i in range(6):
        np.save(tmp_path / f"clip{i}.npy", rng.normal(size=(20, 16)).astype(np.float32))
        rows += [{"id": f"clip{i}", "task": task, "question": question, "gold": gold, "features": f"clip{i}.npy"}
                 for task, question, gold in (("key", "What key?", "C major"), ("tempo", "What tempo?", 100.0),
                                              ("instruments", "Which instrument is loudest in this clip?", ["Violin"]),
                                              ("meter", "What is the time signature?", "3/4"))]
    manifest = tmp_path / "eval.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reads = []
    features_for = Answerer.features_for
    monkeypatch.setattr(Answerer, "features_for", lambda self, item: reads.append(item["features"]) or features_for(self, item))
    common = ["--checkpoint", str(checkpoint), "--manifest", str(manifest), "--bootstrap", "0", "--no-classic",
              "--ablations", "zeroed,shuffled", "--max-new-tokens", "12", "--mbr-samples", "3", "--temperature", "1.0"]
    assert evaluate.main([*common, "--out", str(tmp_path / "one")]) == 0
    assert sorted(Path(path).name for path in reads) == [f"clip{i}.npy" for i in range(6)]  # the workers get arrays
    assert evaluate.main([*common, "--out", str(tmp_path / "two"), "--answer-workers", "2"]) == 0
    one, two = ((tmp_path / out / "predictions.jsonl").read_text().splitlines() for out in ("one", "two"))
    assert len(one) == 3 * 24 and one == two
    answers = [json.loads(line)["answer"] for line in one]
    assert len(set(answers)) > 3  # sampled answers that differ between items, not one constant string
    with pytest.raises(SystemExit):
        evaluate.main([*common, "--out", str(tmp_path / "none"), "--answer-workers", "0"])


def write_probe_corpus(folder, seed: int, clips: int, splits=("train", "val")) -> None:
    """A corpus folder as benchmarks/feature_probe.py reads it: clips.jsonl and features/<clip_id>.npy."""
    rng = np.random.default_rng(seed)
    (folder / "features").mkdir(parents=True)
    rows = []
    for index in range(clips):
        clip_id = f"gen-{index:05d}"
        np.save(folder / "features" / f"{clip_id}.npy", rng.normal(size=(10, 4)).astype(np.float16))
        rows.append({"clip_id": clip_id, "split": splits[index % len(splits)],
                     "provenance": f"llark corpus generator v1, seed {seed}, piece {index}",
                     "labels": {"key": ("C major", "A minor")[index % 2], "tempo": 100.0 + index % 3 * 20,
                                "meter": ("3/4", "4/4")[index % 2], "instruments": ["Drums", "Flute"][: 1 + index % 2]}})
    (folder / "clips.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_feature_probe_scales_its_train_clips(tmp_path, capsys):
    """--train-fraction keeps a share of the train clips; --more-train adds another corpus's clips, unless
    that corpus holds a piece of the scored one (it would be scored on what it trained on)."""
    from tests.conftest import load_script

    feature_probe = load_script("benchmarks/feature_probe.py")
    write_probe_corpus(tmp_path / "demo", seed=0, clips=24)
    write_probe_corpus(tmp_path / "extra", seed=1, clips=9, splits=("train", "val", "test"))
    base = ["--clips", str(tmp_path / "demo" / "clips.jsonl"), "--features", str(tmp_path / "demo" / "features"),
            "--split", "val"]

    def train_clips(*options: str) -> int:
        assert feature_probe.main([*base, *options]) == 0
        return int(re.search(r"\[probe\] (\d+) train and 12 val clips", capsys.readouterr().out).group(1))

    assert train_clips() == 12
    assert train_clips("--train-fraction", "0.5") == 6
    assert train_clips("--more-train", str(tmp_path / "extra")) == 12 + 9  # every split of the other corpus
    write_probe_corpus(tmp_path / "same", seed=0, clips=3)
    with pytest.raises(SystemExit, match=r"same/clips.jsonl: clip gen-00000 is .*seed 0, piece 0.*another --seed"):
        feature_probe.main([*base, "--more-train", str(tmp_path / "same")])


def test_the_projector_probe_trains_the_configs_projector_and_heads(tmp_path, capsys):
    """benchmarks/projector_probe.py: the config's projector (grouped here) and label heads, trained alone,
    read a meter that one feature family carries; overrides switch the projector; no heads is refused."""
    from tests.conftest import load_script

    projector_probe = load_script("benchmarks/projector_probe.py")
    rng = np.random.default_rng(0)
    (tmp_path / "features").mkdir()
    rows = []
    for index in range(48):  # 16 MIR channels (n_mels 2, no tempogram): log_mel 0-1, chroma 2-13, onset 14, rms 15
        meter = ("3/4", "4/4")[index % 2]
        frames = rng.normal(size=(20 + index % 3, 16)).astype(np.float32)
        frames[:, 14] += 2.0 if meter == "3/4" else -2.0  # the onset channel tells the meter
        np.save(tmp_path / "features" / f"clip-{index}.npy", frames)
        rows.append({"clip_id": f"clip-{index}", "split": "train" if index < 32 else "val",
                     "labels": {"key": "C major", "tempo": 120.0, "meter": meter, "instruments": ["Flute"]}})
    (tmp_path / "clips.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "probe.yaml").write_text(
        "model:\n  audio_dim: 16\n  audio_pool: 5\n  standardize_audio: true\n  projector: grouped_mlp2\n"
        "  projector_families: [[log_mel, chroma], [onset, rms]]\n  label_loss_weight: 1.0\n  label_layer: 0\n"
        "  lm: {source: scratch, tokenizer: bpe, bpe_vocab_size: 300, hidden_size: 16, num_layers: 1, num_heads: 2,"
        " num_kv_heads: 2, intermediate_size: 32, max_position_embeddings: 64}\n"
        "encoder: {name: mir, settings: {n_mels: 2, tempo_bins: 0}}\noptim: {lr: 1.0e-2}\ntrain: {batch_size: 8}\n")
    base = ["--config", str(tmp_path / "probe.yaml"), "--clips", str(tmp_path / "clips.jsonl"),
            "--features", str(tmp_path / "features"), "--steps", "80"]

    def figures(*arguments: str) -> dict[tuple[str, str], list[float]]:
        assert projector_probe.main([*base, *arguments]) == 0
        table = [line.strip("|").split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "seed" not in line]
        return {(cells[0].strip(), cells[1].strip()): [float(c) for c in cells[2:]] for cells in table}

    grouped = figures("--seeds", "0,1")
    assert set(grouped) == {("0", "train"), ("0", "val"), ("1", "train"), ("1", "val")}
    for seed in ("0", "1"):
        key, _, meter, *_ = grouped[(seed, "val")]
        assert key == 1.0 and meter >= 0.9  # one key; the meter from the onset channel
    assert figures("model.projector=mlp2")[("0", "val")][2] >= 0.9
    with pytest.raises(SystemExit):
        projector_probe.main([*base, "model.label_loss_weight=0"])
    assert "model.label_loss_weight is 0: there are no label heads to probe with" in capsys.readouterr().err


def test_a_tasks_agreement_is_its_score_of_one_item():
    # MBR decoding (llark/mbr.py: choose_by_agreement) scores a sampled answer against another as the task
    # scores an answer against its truth: the first metric of the one-item list.
    cases = {
        "key": ["C major", "G major", "A minor", "C minor", "F major", "Db major", "C# major"],
        "tempo": [120.0, 124.0, 125.0, 60.0, 240.0, 80.0],
        "meter": ["3/4", "6/8", "4/4", "2/4"],
        "instruments": [frozenset(), frozenset({"piano"}), frozenset({"piano", "drums"}), frozenset({"bass", "drums", "organ"})],
    }
    for name, values in cases.items():
        task = get_task(name)
        for predicted in values:
            for gold in values:
                if name == "instruments" and not gold:
                    continue  # a gold set names at least one instrument
                first = next(iter(task.metrics([predicted], [gold]).values()))
                assert task.agreement(predicted, gold) == pytest.approx(first), (name, predicted, gold)
    assert get_task("key").agreement("G major", "C major") == 0.5  # a fifth above the truth
    assert get_task("instruments").agreement(frozenset(), frozenset()) == 1.0
    assert answer_agreement(get_task("caption")) is None and answer_agreement(get_task("meter")) is not None
