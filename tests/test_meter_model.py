"""The meter model (llark/encoders/meter_model.py), its fit script, and the MIR encoder's group of it."""

import json

import numpy as np
import pytest
import soundfile
from sklearn.ensemble import HistGradientBoostingClassifier

import llark.encoders.meter_model as meter_model
import llark.encoders.mir as mir
from llark.encoders.meter_model import SHIPPED, MeterModel, MeterModelError, fit
from llark.encoders.mir import RHYTHM_DIM, MIRFeatureEncoder
from llark.jsonl import write_jsonl_atomic
from llark.label_targets import METERS
from tests.conftest import load_script
from tests.test_encoders import SR


def ring_meters(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Descriptors [count, 6] whose meter is set by how far the first two lie from the origin (rings: no
    straight line separates them) and the sign of the third; the rest is noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (count, 6))
    radius = np.hypot(x[:, 0], x[:, 1])
    meters = np.where(radius < 0.8, "3/4", np.where(radius < 1.5, "4/4", "6/8")).astype(object)
    meters[(radius >= 1.5) & (x[:, 2] < 0)] = "2/4"
    return x, list(meters)


def test_fit_learns_a_meter_no_line_separates_and_applies_as_scikit_learn_does():
    x, meters = ring_meters(600, seed=0)
    model = fit(x, meters, stages=60, provenance={"clips": "rings"})
    held_x, held_meters = ring_meters(200, seed=1)
    probabilities = np.stack([model.probabilities(row) for row in held_x])
    assert probabilities.shape == (200, len(METERS)) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    others = [k for k, m in enumerate(METERS) if m not in {"2/4", "3/4", "4/4", "6/8"}]
    assert (probabilities[:, others] == 0).all()  # meters it never saw
    named = [METERS[k] for k in probabilities.argmax(axis=1)]
    assert np.mean(np.array(named) == np.array(held_meters)) >= 0.85
    booster = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False,
                                             random_state=0).fit(x, np.asarray(meters))
    expected = booster.predict_proba(held_x)  # the same fit, applied by scikit-learn
    columns = [METERS.index(m) for m in booster.classes_]
    np.testing.assert_allclose(probabilities[:, columns], expected, atol=1e-5)
    assert model.provenance == {"clips": "rings"} and model.trees.features == 6


def test_two_meters_fit_as_one_tree_per_stage_and_apply_as_scikit_learn_does():
    x, meters = ring_meters(300, seed=2)
    two = ["6/8" if m in ("6/8", "2/4") else "3/4" for m in meters]
    model = fit(x, two, stages=30)
    assert [len(stage) for stage in model.trees.trees] == [2] * 30  # a one-leaf tree of 0 for the first meter
    booster = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=15, learning_rate=0.1, early_stopping=False,
                                             random_state=0).fit(x, np.asarray(two))
    probabilities = np.stack([model.probabilities(row) for row in x[:50]])
    np.testing.assert_allclose(probabilities[:, [METERS.index("3/4"), METERS.index("6/8")]],
                               booster.predict_proba(x[:50]), atol=1e-5)
    with pytest.raises(ValueError, match="two or more meters"):
        fit(x[:10], ["3/4"] * 10)
    with pytest.raises(ValueError, match="not in label_targets.METERS"):
        fit(x[:10], ["3/4", "11/8"] * 5)


def test_save_and_load_round_trip_leaves_no_temporary_file(tmp_path):
    x, meters = ring_meters(200, seed=3)
    model = fit(x, meters, stages=10, provenance={"clips": "rings"})
    model.save(tmp_path / "meter.json")
    assert [p.name for p in tmp_path.iterdir()] == ["meter.json"]
    loaded = MeterModel.load(tmp_path / "meter.json")
    assert loaded.fingerprint() == model.fingerprint() and loaded.provenance == {"clips": "rings"}
    np.testing.assert_array_equal(loaded.probabilities(x[0]), model.probabilities(x[0]))
    other = fit(x, meters, stages=11)
    assert other.fingerprint() != model.fingerprint()
    with pytest.raises(ValueError, match="expected 6 rhythm descriptors"):
        model.probabilities(np.zeros(5))


def test_bad_meter_model_files_name_the_file_and_the_problem(tmp_path):
    x, meters = ring_meters(200, seed=4)
    fit(x, meters, stages=5).save(tmp_path / "good.json")
    good = json.loads((tmp_path / "good.json").read_text())
    with pytest.raises(MeterModelError, match="missing.json: meter model not found"):
        MeterModel.load(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(MeterModelError, match="text.json: not a meter model"):
        MeterModel.load(tmp_path / "text.json")
    for name, change, message in (
            ("unknown", lambda raw: raw.update(classes=["3/4", "4/4", "6/8", "11/8"]), r"\['11/8'\] are not in label_targets"),
            ("twice", lambda raw: raw.update(classes=["3/4", "3/4", "6/8", "2/4"]), "not two or more distinct classes"),
            ("short", lambda raw: raw.update(initial=raw["initial"][:2]), "inconsistent shapes"),
            ("loop", lambda raw: raw["trees"][0][0]["left"].__setitem__(0, 0), "points outside it or back up it"),
            ("beyond", lambda raw: raw["trees"][0][0]["feature"].__setitem__(0, 6), "splits on a descriptor beyond 6")):
        raw = json.loads(json.dumps(good))
        change(raw)
        (tmp_path / f"{name}.json").write_text(json.dumps(raw))
        with pytest.raises(MeterModelError, match=f"{name}.json: .*{message}"):
            MeterModel.load(tmp_path / f"{name}.json")


def test_the_shipped_meter_model_matches_the_encoder(monkeypatch):
    model = MeterModel.load(SHIPPED)
    assert model.trees.features == RHYTHM_DIM and set(model.meters) <= set(METERS)
    assert model.provenance["encoder"] == {"sample_rate": 22050, "n_mels": 64}
    assert model.provenance["beat_level"] == MIRFeatureEncoder.fitted({"beat_level": True})["beat_level"]
    assert model.provenance["cross_validated_accuracy"]["all"] > 0.7 and model.provenance["described"] > 1000
    encoder = MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True,
                                instrument_tags=True, meter_tags=True)  # the demo's settings
    assert encoder.dim == 448 + len(METERS) and encoder.groups()["meter_tags"] == (448, 458)
    fitted = MIRFeatureEncoder.fitted({"rhythm": True, "beat_level": True, "meter_tags": True})
    assert fitted["meter_model"] == model.fingerprint() and "beat_level" in fitted
    assert "meter_model" not in MIRFeatureEncoder.fitted({"rhythm": True, "beat_level": True})
    with pytest.raises(ValueError, match="needs rhythm=True and beat_level=True"):
        MIRFeatureEncoder(rhythm=True, meter_tags=True)
    stale = MeterModel(model.trees, {**model.provenance, "beat_level": "0" * 16})  # fitted at another beat-level fit
    monkeypatch.setattr(mir, "load_meter_model", lambda: stale)
    with pytest.raises(ValueError, match="another beat-level fit"):
        MIRFeatureEncoder(rhythm=True, beat_level=True, meter_tags=True)
    assert meter_model.load_shipped() is meter_model.load_shipped()


def test_encoder_appends_each_segments_meter_read_off_its_rhythm_descriptors(monkeypatch):
    t = np.arange(int(14.0 * SR)) / SR
    clicks = np.zeros_like(t)
    for k, beat in enumerate(np.arange(0.0, 14.0, 0.5)):  # 120 BPM; accented every 3 beats, then every 2
        start = int(beat * SR)
        loud = 1.0 if (beat < 7 and k % 3 == 0) or (beat >= 7 and k % 2 == 0) else 0.4
        clicks[start:start + 400] += loud * np.random.default_rng(k).normal(0, 0.5, 400)
    wave = (clicks + 0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    x, meters = ring_meters(300, seed=5)
    trees = fit(np.concatenate([x, x[:, :1].repeat(RHYTHM_DIM - 6, axis=1)], axis=1), meters, stages=5,
                provenance={"encoder": {"sample_rate": SR, "n_mels": 64},
                            "beat_level": MIRFeatureEncoder.fitted({"beat_level": True})["beat_level"]})
    monkeypatch.setattr(mir, "load_meter_model", lambda: trees)
    settings = dict(tempo_bins=0, rhythm=True, beat_level=True, rhythm_seconds=7.0)  # segments of at most 7 s
    plain = MIRFeatureEncoder(**settings).encode(wave)
    features = MIRFeatureEncoder(**settings, meter_tags=True).encode(wave)
    assert features.shape == (350, plain.shape[1] + len(METERS))
    np.testing.assert_array_equal(features[:, : plain.shape[1]], plain)  # the other groups do not move
    rhythm, tags = plain[:, -RHYTHM_DIM:], features[:, plain.shape[1]:]
    # inside a segment the rhythm rows repeat (pooling to 25 fps mixes two segments only at a border)
    inside = [i for i in range(1, 349) if (rhythm[i - 1] == rhythm[i]).all() and (rhythm[i + 1] == rhythm[i]).all()]
    assert len(inside) > 300 and len({rhythm[i].tobytes() for i in inside}) >= 2  # two segments or more
    for i in inside:
        np.testing.assert_allclose(tags[i], trees.probabilities(rhythm[i]), atol=1e-6)


def test_fit_script_cross_validates_by_track_and_reports_skipped_clips(tmp_path, capsys):
    script = load_script("preprocessing/fit_meter_model.py")
    rows = []
    for k in range(16):
        beats = 3 if k % 2 else 2  # accents every 3 or every 2 beats of 0.5 s
        t = np.arange(int(6.0 * SR)) / SR
        wave = 0.05 * np.sin(2 * np.pi * 330 * t)
        for j, beat in enumerate(np.arange(0.0, 6.0, 0.5)):
            start = int(beat * SR)
            wave[start:start + 300] += (1.0 if j % beats == 0 else 0.3) * np.random.default_rng(j + 100 * k).normal(0, 0.5, 300)
        soundfile.write(tmp_path / f"c{k}.wav", wave.astype(np.float32), SR)
        rows.append({"clip_id": f"c{k}", "track_id": f"t{k // 2}", "audio": f"c{k}.wav", "start": 0.0, "end": 6.0,
                     "source": "generated", "labels": {"meter": "3/4" if beats == 3 else "2/4"}})
    rows.append({"clip_id": "gone", "track_id": "gone", "audio": "missing.wav", "start": 0.0, "end": 6.0,
                 "labels": {"meter": "3/4"}})
    rows.append({"clip_id": "odd", "track_id": "odd", "audio": "c0.wav", "start": 0.0, "end": 6.0,
                 "labels": {"meter": "11/8"}})  # not a meter the heads know: not described
    rows += [{"clip_id": f"rare{k}", "track_id": f"rare{k}", "audio": "c0.wav", "start": 0.0, "end": 6.0,
              "labels": {"meter": "6/8"}} for k in range(2)]  # too few to fit: left out, and named
    write_jsonl_atomic(tmp_path / "clips.jsonl", rows)
    out = tmp_path / "meter.json"
    assert script.main(["--clips", str(tmp_path / "clips.jsonl"), "--out", str(out), "--stages", "5",
                        "--min-clips", "3"]) == 0
    report = capsys.readouterr()
    assert "skipped: gone:" in report.err and "1 clip(s) skipped" in report.out and "cross-validated" in report.out
    assert "left out, fewer than 3 clips each: 6/8 2" in report.out
    model = MeterModel.load(out)
    assert model.provenance["described"] == 18 and model.provenance["skipped"] == 1
    assert model.provenance["meters"] == {"2/4": 8, "3/4": 8} and model.provenance["stages"] == 5
    assert model.provenance["left_out_meters"] == {"6/8": 2}
    assert 0.0 <= model.provenance["cross_validated_accuracy"]["all"] <= 1.0
    assert set(model.meters) == {"2/4", "3/4"} and model.trees.features == RHYTHM_DIM
    # every meter under the bar (the default's 50 clips): nothing to fit, and nothing written
    assert script.main(["--clips", str(tmp_path / "clips.jsonl"), "--out", str(tmp_path / "none.json")]) == 1
    assert "0 meter(s) with 50 clips or more" in capsys.readouterr().err and not (tmp_path / "none.json").exists()
