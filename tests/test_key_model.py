"""The key model (llark/encoders/key_model.py), its fit script, and the MIR encoder's group of it."""

import json

import numpy as np
import pytest
import soundfile

import llark.encoders.key_model as key_model
import llark.encoders.mir as mir
from llark.encoders.key_model import SHIPPED, STATISTICS, KeyModel, KeyModelError, fit, key_statistics, rotations
from llark.encoders.mir import MIRFeatureEncoder
from llark.jsonl import write_jsonl_atomic
from llark.label_targets import key_class
from tests.conftest import load_script
from tests.test_encoders import SR

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor: the leading tone tells it from its relative major


def statistics_of_keys(keys: np.ndarray, seed: int, noise: float = 0.35) -> np.ndarray:
    """[len(keys), S, 12]: each statistic a noisy scale of the key (tonic and fifth strongest), transposed to it."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((len(keys), len(STATISTICS), 12))
    for i, key in enumerate(keys):
        tonic, scale = key % 12, MINOR_SCALE if key >= 12 else MAJOR_SCALE
        profile = np.zeros(12)
        profile[list(scale)] = 1.0
        profile[[0, 7]] += 0.8
        profile[3 if key >= 12 else 4] += 0.4
        rows[i] = np.roll(np.abs(profile + rng.normal(0.0, noise, (len(STATISTICS), 12))), tonic, axis=-1)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_rotations_put_each_tonic_first():
    statistics = np.arange(len(STATISTICS) * 12, dtype=float).reshape(len(STATISTICS), 12)
    rotated = rotations(statistics)
    assert rotated.shape == (12, len(STATISTICS) * 12)
    for tonic in range(12):
        np.testing.assert_array_equal(rotated[tonic].reshape(len(STATISTICS), 12), np.roll(statistics, -tonic, axis=-1))
    assert rotations(np.stack([statistics, statistics])).shape == (2, 12, len(STATISTICS) * 12)


def test_fit_reads_held_out_keys_and_transposing_the_statistics_transposes_the_answer():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 24, 600)
    model = fit(statistics_of_keys(keys, seed=1), keys, provenance={"clips": "scales"})
    held_keys = rng.integers(0, 24, 300)
    held = statistics_of_keys(held_keys, seed=2)
    probabilities = model.probabilities(held)
    assert probabilities.shape == (300, 24) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.mean(probabilities.argmax(axis=-1) == held_keys) >= 0.9
    assert model.provenance == {"clips": "scales"} and model.profiles.shape == (2, len(STATISTICS), 12)
    # two semitones up: every key's probability moves to the key two semitones up, in its own mode
    up = model.probabilities(np.roll(held, 2, axis=-1))
    expected = np.concatenate([np.roll(probabilities[:, :12], 2, axis=-1), np.roll(probabilities[:, 12:], 2, axis=-1)],
                              axis=-1)
    np.testing.assert_allclose(up, expected, atol=1e-6)
    # the major profile's strongest degrees are the tonic and the fifth; the minor's third is the minor third
    assert set(np.argsort(model.profiles[0].sum(axis=0))[-2:]) == {0, 7}
    assert model.profiles[1].sum(axis=0)[3] > model.profiles[1].sum(axis=0)[4]


def test_fit_refuses_statistics_that_do_not_match_the_keys():
    keys = np.array([0, 12, 7])
    with pytest.raises(ValueError, match="expected \\[clips, 7, 12\\]"):
        fit(np.zeros((3, 5, 12)), keys)
    with pytest.raises(ValueError, match="one row per key"):
        fit(np.zeros((2, len(STATISTICS), 12)), keys)
    with pytest.raises(ValueError, match="a class of 0-23"):
        fit(np.zeros((3, len(STATISTICS), 12)), np.array([0, 24, 3]))


def test_key_statistics_are_unit_length_and_silence_gives_zeros_not_nan():
    rng = np.random.default_rng(3)
    chroma = rng.uniform(0.0, 1.0, (200, 12))
    chroma /= chroma.max(axis=1, keepdims=True)
    chroma[:, 9] = 1.0  # A the strongest pitch class of every frame
    statistics = key_statistics(chroma, rng.uniform(0, 2, 200), rng.uniform(-0.5, 0, 200), rate=43.0)
    assert statistics.shape == (len(STATISTICS), 12) and statistics.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(statistics, axis=1), 1.0, rtol=1e-5)
    strongest = statistics[STATISTICS.index("strongest")]
    assert strongest.argmax() == 9 and strongest[9] > 0.9
    silent = key_statistics(np.zeros((100, 12)), np.zeros(100), np.full(100, -1.0), rate=43.0)
    assert np.isfinite(silent).all() and (silent == 0).all()
    # the opening statistic reads the first EDGE_SECONDS only
    chroma = np.zeros((430, 12))
    chroma[:, 0], chroma[:86, 7] = 1.0, 1.0
    opening = key_statistics(chroma, np.ones(430), np.zeros(430), rate=43.0)[STATISTICS.index("opening")]
    closing = key_statistics(chroma, np.ones(430), np.zeros(430), rate=43.0)[STATISTICS.index("closing")]
    assert opening[7] > 0.7 and closing[7] == 0


def test_save_and_load_round_trip_leaves_no_temporary_file(tmp_path):
    keys = np.arange(48) % 24
    model = fit(statistics_of_keys(keys, seed=4), keys, provenance={"clips": "scales"})
    model.save(tmp_path / "key.json")
    assert [p.name for p in tmp_path.iterdir()] == ["key.json"]
    loaded = KeyModel.load(tmp_path / "key.json")
    assert loaded.fingerprint() == model.fingerprint() and loaded.provenance == {"clips": "scales"}
    held = statistics_of_keys(np.array([3, 15]), seed=5)
    np.testing.assert_array_equal(loaded.probabilities(held), model.probabilities(held))
    assert fit(statistics_of_keys(keys, seed=4), keys, l2=0.1).fingerprint() != model.fingerprint()


def test_bad_key_model_files_name_the_file_and_the_problem(tmp_path):
    keys = np.arange(48) % 24
    fit(statistics_of_keys(keys, seed=6), keys).save(tmp_path / "good.json")
    good = json.loads((tmp_path / "good.json").read_text())
    with pytest.raises(KeyModelError, match="missing.json: key model not found"):
        KeyModel.load(tmp_path / "missing.json")
    (tmp_path / "text.json").write_text("not json")
    with pytest.raises(KeyModelError, match="text.json: not a key model"):
        KeyModel.load(tmp_path / "text.json")
    for name, change, message in (
            ("format", lambda raw: raw.update(format="llark meter model"), "not a key model"),
            ("statistics", lambda raw: raw["statistics"].pop(), "refit it"),
            ("short", lambda raw: [mode.pop() for mode in raw["profiles"]], r"profiles of shape \(2, 6, 12\)"),
            ("ragged", lambda raw: raw["profiles"][0].pop(), "not a key model"),
            ("bias", lambda raw: raw.update(bias=[0.0]), r"bias of shape \(1,\)"),
            ("nan", lambda raw: raw["profiles"][1][0].__setitem__(3, float("nan")), "not finite"),
            ("text", lambda raw: raw.update(profiles="many"), "not a key model")):
        raw = json.loads(json.dumps(good))
        change(raw)
        (tmp_path / f"{name}.json").write_text(json.dumps(raw))
        with pytest.raises(KeyModelError, match=f"{name}.json: .*{message}"):
            KeyModel.load(tmp_path / f"{name}.json")


def test_the_shipped_key_model_matches_the_encoder(monkeypatch):
    model = KeyModel.load(SHIPPED)
    assert model.provenance["encoder"] == {"sample_rate": 22050}
    assert model.provenance["cross_validated"]["all"]["mirex"] > 0.85 and model.provenance["described"] > 1000
    encoder = MIRFeatureEncoder(tempo_bins=0, rhythm=True, timbre=True, clip_tempo_bins=156, beat_level=True,
                                instrument_tags=True, meter_tags=True, key_tags=True)  # the demo's settings
    assert encoder.dim == 458 + 24 and encoder.groups()["key_tags"] == (458, 482)
    assert encoder.groups()["meter_tags"] == (448, 458)
    fitted = MIRFeatureEncoder.fitted({"key_tags": True})
    assert fitted == {"key_model": model.fingerprint()}
    assert "key_model" not in MIRFeatureEncoder.fitted({"rhythm": True})
    other_rate = KeyModel(model.profiles, model.bias, {**model.provenance, "encoder": {"sample_rate": 16000}})
    monkeypatch.setattr(mir, "load_key_model", lambda: other_rate)
    with pytest.raises(ValueError, match="fitted on chroma of \\{'sample_rate': 16000\\}"):
        MIRFeatureEncoder(key_tags=True)
    assert key_model.load_shipped() is key_model.load_shipped()


def scale_wave(tonic: int, scale: tuple[int, ...], seconds: float, seed: int) -> np.ndarray:
    """A melody over the scale, each note a harmonic tone of 0.25 s above a held tonic and fifth in the bass."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.25 * SR)) / SR
    envelope = np.exp(-4.0 * t)
    notes = []
    for k in range(int(seconds / 0.25)):
        degree = 0 if k % 8 == 0 else scale[rng.integers(0, len(scale))]
        frequency = 261.63 * 2 ** ((tonic + degree) / 12)
        notes.append(envelope * sum(np.sin(2 * np.pi * h * frequency * t) / h for h in (1, 2, 3)))
    wave = np.concatenate(notes)
    tt = np.arange(len(wave)) / SR
    bass = 65.41 * 2 ** (tonic / 12)
    wave += 0.5 * (np.sin(2 * np.pi * bass * tt) + 0.5 * np.sin(2 * np.pi * bass * 1.5 * tt))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def test_encoder_appends_each_segments_key_and_the_shipped_model_hears_a_scale(monkeypatch):
    wave = np.concatenate([scale_wave(2, MAJOR_SCALE, 7.0, seed=0), scale_wave(9, MINOR_SCALE, 7.0, seed=1)])
    settings = dict(tempo_bins=0, rhythm_seconds=7.0)  # segments of at most 7 s: D major, then A minor
    plain = MIRFeatureEncoder(**settings).encode(wave)
    features = MIRFeatureEncoder(**settings, key_tags=True).encode(wave)
    assert features.shape == (350, plain.shape[1] + 24)
    np.testing.assert_array_equal(features[:, : plain.shape[1]], plain)  # the other groups do not move
    tags = features[:, plain.shape[1]:]
    np.testing.assert_allclose(tags.sum(axis=1), 1.0, rtol=1e-4)
    assert tags[20].argmax() == key_class("D major") and tags[330].argmax() == key_class("A minor")
    # a segment's tags are the model's reading of its statistics, as key_statistics computes them (the fit's), also
    # where the encoder's STFT is the fine one the clip tempogram reads (the demo's settings)
    first = wave[: 7 * SR]
    expected = key_model.load_shipped().probabilities(MIRFeatureEncoder(tempo_bins=0).key_statistics(first))
    for fine in (0, 156):
        one_segment = MIRFeatureEncoder(tempo_bins=0, clip_tempo_bins=fine, key_tags=True).encode(first)[:, -24:]
        np.testing.assert_allclose(one_segment, np.broadcast_to(expected, one_segment.shape), atol=1e-5)


def test_fit_script_cross_validates_by_track_and_reports_skipped_clips(tmp_path, capsys):
    script = load_script("preprocessing/fit_key_model.py")
    rows = []
    for k in range(24):
        tonic, minor = (5 * k) % 12, k % 2 == 1
        soundfile.write(tmp_path / f"c{k}.wav", scale_wave(tonic, MINOR_SCALE if minor else MAJOR_SCALE, 4.0, seed=k), SR)
        name = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"][tonic]
        rows.append({"clip_id": f"c{k}", "track_id": f"t{k // 2}", "audio": f"c{k}.wav", "start": 0.0, "end": 4.0,
                     "source": "generated" if k < 16 else "midi",
                     "labels": {"key": f"{name} {'minor' if minor else 'major'}"}})
    rows.append({"clip_id": "gone", "track_id": "gone", "audio": "missing.wav", "start": 0.0, "end": 4.0,
                 "labels": {"key": "C major"}})
    rows.append({"clip_id": "modal", "track_id": "modal", "audio": "c0.wav", "start": 0.0, "end": 4.0,
                 "labels": {"key": "D dorian"}})  # not one of the 24 keys: not described
    write_jsonl_atomic(tmp_path / "clips.jsonl", rows)
    out = tmp_path / "key.json"
    assert script.main(["--clips", str(tmp_path / "clips.jsonl"), "--out", str(out), "--jobs", "1"]) == 0
    report = capsys.readouterr()
    assert "skipped: gone:" in report.err and "1 clip(s) skipped" in report.out and "cross-validated" in report.out
    model = KeyModel.load(out)
    provenance = model.provenance
    assert provenance["described"] == 24 and provenance["skipped"] == 1 and provenance["modes"] == {"major": 12, "minor": 12}
    assert provenance["sources"] == {"generated": 16, "midi": 8}
    assert set(provenance["cross_validated"]) == {"all", "generated", "midi"}
    assert provenance["cross_validated"]["all"]["clips"] == 24
    assert provenance["cross_validated"]["all"]["mirex"] >= 0.8  # clear scales, read on folds not fitted on them
    assert provenance["encoder"] == {"sample_rate": SR}
    statistics = MIRFeatureEncoder().key_statistics(soundfile.read(tmp_path / "c3.wav", dtype="float32")[0])
    assert model.probabilities(statistics).argmax() == key_class(rows[3]["labels"]["key"])
    # a file with no clip of a labelled key is named
    write_jsonl_atomic(tmp_path / "none.jsonl", [rows[-1]])
    with pytest.raises(SystemExit):
        script.main(["--clips", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "none.json")])
    assert "none.jsonl" in capsys.readouterr().err and not (tmp_path / "none.json").exists()


def test_key_benchmark_reads_a_manifests_key_questions_beside_librosa(tmp_path, capsys):
    bench = load_script("benchmarks/key_model.py")
    (tmp_path / "scales" / "audio").mkdir(parents=True)  # audio paths are relative to the manifest's folder
    items = []
    for k, (tonic, scale, name) in enumerate([(0, MAJOR_SCALE, "C major"), (7, MAJOR_SCALE, "G major"),
                                              (9, MINOR_SCALE, "A minor"), (2, MINOR_SCALE, "D minor")]):
        soundfile.write(tmp_path / "scales" / "audio" / f"s{k}.wav", scale_wave(tonic, scale, 6.0, seed=10 + k), SR)
        group = "major" if scale is MAJOR_SCALE else "minor"
        items.append({"id": f"s{k}", "task": "key", "gold": name, "audio": f"audio/s{k}.wav", "start": 0.0, "end": 6.0,
                      "groups": [group]})
        items.append({"id": f"s{k}", "task": "tempo", "gold": 120.0, "audio": f"audio/s{k}.wav", "start": 0.0,
                      "end": 6.0})  # not a key question: not read
    items.append({"id": "gone", "task": "key", "gold": "C major", "audio": "audio/gone.wav", "start": 0.0, "end": 6.0})
    write_jsonl_atomic(tmp_path / "scales" / "eval.jsonl", items)
    assert bench.main(["--manifest", str(tmp_path / "scales" / "eval.jsonl"), "--jobs", "1"]) == 0
    report = capsys.readouterr()
    assert "skipped: gone:" in report.err and "1 clip(s) skipped" in report.out
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in report.out.splitlines() if line.startswith("scales")}
    assert set(rows) == {("scales", "all"), ("scales", "major"), ("scales", "minor")}
    clips, model_mirex, model_accuracy, librosa_mirex, librosa_accuracy = rows[("scales", "all")]
    assert int(clips) == 4 and float(model_mirex) >= 0.75 and 0.0 <= float(librosa_mirex) <= 1.0
