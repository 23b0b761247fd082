"""The labelled corpus: theory, generated pieces, ABC tunes, rendering, augmentation and the script.

    python -m pytest tests/test_corpus.py -q
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile
import symusic

from llark.corpus.splits import split_of
from llark.corpus.abc_tunes import (
    TuneError, TuneSource, bar_durations, choose_tunes, list_tunes, make_excerpt, parse_key_field, read_tune, tune_piece,
)
from llark.corpus.augment import augment
from llark.corpus.generate import generate_piece
from llark.corpus.render import RenderError, render_midi
from llark.corpus.theory import (
    KEYS_24, METERS, TICKS_PER_QUARTER, Key, TheoryError, diatonic_chord, diatonic_chord_labels, parse_key,
    parse_meter, program_name,
)

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_corpus", REPO / "preprocessing" / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(spec)
sys.modules["make_corpus"] = make_corpus  # its dataclasses look their module up while being defined
spec.loader.exec_module(make_corpus)

# A tune with a pickup, a repeat with two endings and a B part: played once, the first ending dropped.
JIG = """X:7
T:Test Jig
R:jig
M:6/8
L:1/8
Q:3/8=100
K:Em
B|:"Em"E2E GFE|"D"D2D FED|E2E GAB|1 dBA GFD:|2 dBA GFE||
|:g2e gfe|d2B dBA|g2e gfe|dBA GFE|]
"""


def source(text: str, number: str = "1") -> TuneSource:
    return TuneSource("oneills1850", "test/inline.abc", number, 9000 + int(number), text)


# ---- theory -------------------------------------------------------------------------------------
def test_keys_spelling_and_chords_are_valid_mir_eval():
    assert len({(k.pc, k.mode) for k in KEYS_24}) == 24
    assert parse_key("F# minor").spelled_scale() == ["F#", "G#", "A", "B", "C#", "D", "E"]
    assert Key("F#", "major").spelled_scale()[-1] == "E#"
    assert str(diatonic_chord(Key("F", "major"), 4)) == "Bb:maj"
    assert str(diatonic_chord(Key("A", "minor"), 5)) == "E:maj"  # harmonic minor V
    assert str(diatonic_chord(Key("A", "minor"), 5, harmonic=False)) == "E:min"
    assert str(diatonic_chord(Key("C", "major"), 5, seventh=True)) == "G:7"
    for key in KEYS_24:
        for label in diatonic_chord_labels(key):
            root, _, _ = mir_eval.chord.encode(label)
            assert root == parse_key(f"{label.split(':')[0]} major").pc
    with pytest.raises(TheoryError, match="H#"):
        parse_key("H# major")
    with pytest.raises(TheoryError, match="5/4"):
        parse_meter("5/4")
    assert METERS["6/8"].beat_ticks == 3 * TICKS_PER_QUARTER // 2 and METERS["6/8"].beats_per_bar == 2


# ---- generated pieces ---------------------------------------------------------------------------
def midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def test_generated_piece_is_deterministic():
    a, b = generate_piece(5, seed=3), generate_piece(5, seed=3)
    assert a.labels == b.labels and midi_bytes(a.midi) == midi_bytes(b.midi)
    assert np.array_equal(render_midi(a.midi, 16000), render_midi(b.midi, 16000))
    assert generate_piece(5, seed=4).labels != a.labels


def check_grid(labels: dict, music_seconds: float) -> None:
    """beats every 60/tempo s, downbeats every bar on the beats, chords one per bar from the downbeats."""
    meter = parse_meter(labels["meter"])
    beat = 60.0 / labels["tempo"]
    beats, downbeats = np.array(labels["beats"]), np.array(labels["downbeats"])
    assert np.allclose(np.diff(beats), beat, atol=2e-6) and beats[0] >= 0 and beats[-1] < music_seconds
    assert np.allclose(np.diff(downbeats), beat * meter.beats_per_bar, atol=2e-6)
    assert all(np.isclose(beats, d, atol=2e-6).any() for d in downbeats)
    if "chords" in labels:
        bars = [c for c in labels["chords"] if c["chord"] != "N"]
        assert np.allclose([c["start"] for c in bars], downbeats, atol=2e-6)
        assert abs(bars[-1]["end"] - music_seconds) < 1e-5


def test_generated_labels_match_the_midi():
    for index in range(12):  # three of each meter
        piece = generate_piece(index, seed=0, seconds=20.0)
        labels = piece.labels
        check_grid(labels, piece.music_seconds)
        assert labels["downbeats"][0] == 0.0
        key = parse_key(labels["key"])
        assert {c["chord"] for c in labels["chords"]} <= diatonic_chord_labels(key)
        assert len(labels["chords"]) == len(labels["downbeats"])
        # the written MIDI file, read back, has the same beats and instruments
        midi = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(piece.midi)))
        file_beats = midi.get_beats()
        n = len(labels["beats"])
        assert np.allclose(file_beats[:n], labels["beats"], atol=1e-3)
        file_downbeats = midi.get_downbeats()
        assert np.allclose(file_downbeats[:len(labels["downbeats"])], labels["downbeats"], atol=1e-3)
        names = {program_name(i.program) for i in midi.instruments if i.notes and not i.is_drum}
        names |= {"Drums"} if any(i.is_drum and i.notes for i in midi.instruments) else set()
        assert set(labels["instruments"]) == names
        # every downbeat is struck by some part (within a strum's spread or a humanised onset)
        onsets = np.array(sorted(n.start for i in midi.instruments for n in i.notes))
        assert all(np.min(np.abs(onsets - d)) < 0.03 for d in labels["downbeats"])
        assert onsets.max() < piece.music_seconds


def test_generated_coverage_of_keys_meters_tempi_and_instruments():
    pieces = [generate_piece(i, seed=0) for i in range(96)]
    keys = Counter(p.labels["key"] for p in pieces)
    assert len(keys) == 24 and set(keys.values()) == {4}
    assert Counter(p.labels["meter"] for p in pieces) == {m: 24 for m in METERS}
    tempi = np.array([p.labels["tempo"] for p in pieces])
    assert tempi.min() >= 50 and tempi.max() <= 200 and tempi.min() < 65 and tempi.max() > 185
    assert np.histogram(tempi, bins=10, range=(50, 200))[0].min() >= 5
    instruments = Counter(name for p in pieces for name in p.labels["instruments"])
    assert len(instruments) >= 40
    drums = sum("Drums" in p.labels["instruments"] for p in pieces)
    assert 20 < drums < 80
    assert len({p.labels["genre"] for p in pieces}) >= 8
    assert set(p.labels["dynamics"] for p in pieces) == {"soft", "medium", "loud", "crescendo", "diminuendo"}
    assert all(24.0 <= p.music_seconds <= 30.0 for p in pieces)


# ---- ABC tunes ----------------------------------------------------------------------------------
def test_key_fields_and_bar_durations():
    assert parse_key_field("Gm") == Key("G", "minor")
    assert parse_key_field("E Minor") == Key("E", "minor")
    assert parse_key_field("Bb") == Key("Bb", "major")
    assert parse_key_field("F#m clef=treble") == Key("F#", "minor")
    with pytest.raises(TheoryError, match="Dorian"):
        parse_key_field("A Dorian")
    meter = METERS["2/4"]
    assert bar_durations("(3ABc d>e f2", meter, "x").duration == 6  # triplet of 3 in 2, broken pair keeps 2
    assert bar_durations("{ag}[CEG]2 z A/B/", meter, "x").duration == 4
    info = bar_durations("z2 A2-", meter, "x")
    assert info.first_note == 2 and info.tied_out


def test_tune_linearised_with_pickup_and_labels():
    tune = read_tune(source(JIG))
    assert tune.key == Key("E", "minor") and tune.meter.label == "6/8" and tune.header_tempo == 100.0
    assert tune.bars == ["B", "E2E GFE", "D2D FED", "E2E GAB", "dBA GFE", "g2e gfe", "d2B dBA", "g2e gfe", "dBA GFE"]
    piece = tune_piece(source(JIG), seed=0, seconds=30.0, min_seconds=5.0)
    labels = piece.labels
    beat = 60.0 / 100
    pickup = beat / 3  # one eighth of a dotted-quarter beat
    assert labels["downbeats"][0] == pytest.approx(pickup, abs=1e-6) and labels["beats"][0] == labels["downbeats"][0]
    check_grid(labels, piece.music_seconds)
    assert labels["key"] == "E minor" and labels["meter"] == "6/8" and labels["tempo"] == 100.0
    assert labels["genre"] == "jig" and '"' not in labels["abc"]  # chord symbols removed: we harmonise
    if "chords" in labels:
        assert labels["chords"][0] == {"start": 0.0, "end": pytest.approx(pickup, abs=1e-6), "chord": "N"}


def abc_onsets(abc: str, meter, tempo: float) -> list[tuple[float, int]]:
    score = symusic.Score.from_abc(abc)
    notes = sorted((n.time, n.pitch) for t in score.tracks for n in t.notes)
    shift = notes[0][0] % 2  # abc2midi starts every note one tick late
    seconds = 60.0 / (meter.quarter_bpm(tempo) * score.ticks_per_quarter)
    return [(round((t - shift) * seconds, 4), p) for t, p in notes]


def test_real_tunes_rendered_bars_reparse_to_the_same_notes():
    sources = list_tunes(["airdsAirs"])
    chosen, rejected = choose_tunes(sources, 3, seed=0)
    assert len(chosen) == 3
    for tune_source, piece in chosen:
        labels, meter = piece.labels, parse_meter(piece.labels["meter"])
        assert piece.music_seconds <= 30.0 and labels["key"].split()[1] in ("major", "minor")
        check_grid(labels, piece.music_seconds)
        header = dict(line.split(":", 1) for line in labels["abc"].splitlines() if line[1:2] == ":")
        assert parse_meter(header["M"]) == meter and parse_key_field(header["K"]).name == labels["key"]
        melody = next(i for i in piece.midi.instruments if i.name == "melody")
        rendered = sorted((round(n.start, 4), n.pitch) for n in melody.notes)
        assert rendered == abc_onsets(labels["abc"], meter, labels["tempo"])
        # the excerpt is whole bars: the music ends on a downbeat of the grid
        bar = 60.0 / labels["tempo"] * meter.beats_per_bar
        assert (piece.music_seconds - labels["downbeats"][0]) / bar == pytest.approx(len(labels["downbeats"]), abs=1e-6)


def test_unusable_tunes_raise_typed_errors_naming_the_tune():
    with pytest.raises(TuneError, match=r"inline.abc X:1: unsupported meter M:9/8"):
        read_tune(source("X:1\nM:9/8\nL:1/8\nK:G\nGAB GAB GAB|\n"))
    with pytest.raises(TuneError, match="unsupported ABC symbol 'q'"):
        tune_piece(source("X:1\nM:2/4\nL:1/8\nK:G\nGA Bq|cd ef|\n"), seed=0)
    with pytest.raises(TuneError, match="ends on pitch class 9, not on the tonic of K:G"):  # A dorian as K:G
        tune_piece(source("X:1\nM:2/4\nL:1/8\nK:G\n" + "AB cd|ed BA|" * 8 + "\n"), seed=0, min_seconds=1.0)
    with pytest.raises(TuneError, match="regular whole bars"):  # drifting bars (one eighth short, twice)
        make_excerpt(read_tune(source("X:1\nM:2/4\nL:1/8\nK:G\nGAB|cde|fga|bag|\n")), 100.0, 30.0, 5.0)


# ---- splits, rendering, augmentation ------------------------------------------------------------
def test_splits_are_by_piece_and_stable():
    splits = Counter(split_of(f"gen-{i:05d}") for i in range(2000))
    assert 0.76 < splits["train"] / 2000 < 0.84 and splits["val"] > 140 and splits["test"] > 140
    assert split_of("oneills1850-0001", "The Kesh.") == split_of("ryansmammoth-0200", "the kesh")
    assert split_of("gen-00001") == split_of("gen-00001")


def test_render_errors_name_the_soundfont(tmp_path):
    piece = generate_piece(0, seed=0, seconds=6.0)
    with pytest.raises(RenderError, match="missing.sf2"):
        render_midi(piece.midi, 16000, soundfont=tmp_path / "missing.sf2")
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(b"not a soundfont")
    with pytest.raises(RenderError, match="bad.sf2"):
        render_midi(piece.midi, 16000, soundfont=bad)
    wave = render_midi(piece.midi, 16000, duration=2.5)
    assert wave.shape == (40000,) and wave.dtype == np.float32 and np.abs(wave).max() > 0


def test_formant_shift_keeps_pitches_and_times_and_moves_the_spectrum():
    import librosa

    midi = generate_piece(2, seed=0, seconds=6.0).midi
    plain = render_midi(midi, 16000)
    assert np.array_equal(render_midi(midi, 16000, formant_semitones=0), plain)
    waves = {k: render_midi(midi, 16000, formant_semitones=k) for k in (-3, 3)}

    def chroma(wave):
        return librosa.feature.chroma_stft(y=wave, sr=16000).mean(axis=1)

    def level(wave):  # RMS in 0.25 s frames: when the notes sound
        return np.sqrt((wave[: wave.size // 4000 * 4000].reshape(-1, 4000) ** 2).mean(axis=1))

    def centroid(wave):
        return float(librosa.feature.spectral_centroid(y=wave, sr=16000).mean())

    for k, wave in waves.items():
        assert wave.shape == plain.shape and np.isfinite(wave).all()
        assert np.corrcoef(chroma(wave), chroma(plain))[0, 1] > 0.9, k  # the pitches as written
        assert np.corrcoef(level(wave), level(plain))[0, 1] > 0.9, k  # the notes at their times
        assert not np.allclose(wave, plain)
    assert centroid(waves[3]) < centroid(plain) < centroid(waves[-3])  # the spectra move the other way


def test_augmentation_is_seeded_and_keeps_length():
    wave = render_midi(generate_piece(1, seed=0, seconds=6.0).midi, 16000)
    results = []
    for seed in (0, 0, 1, 2, 3):
        out, applied = augment(wave, 16000, np.random.default_rng(seed))
        assert out.shape == wave.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0 + 1e-6 and "gain_db" in applied
        results.append((out, applied))
    assert np.array_equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]
    assert not np.array_equal(results[0][0], results[2][0])


# ---- the script ---------------------------------------------------------------------------------
def test_make_corpus_end_to_end_resume_and_failures(tmp_path):
    good = [s for s in list_tunes(["airdsAirs"]) if s.number in ("0001", "0002", "0003", "0004", "0005", "0006")]
    bad = source("X:99\nT:Broken\nM:2/4\nL:1/8\nK:G\nGA [Bc|de fg|\n", number="99")
    sources = [bad] + good
    settings = make_corpus.Settings(seed=0, sample_rate=16000, seconds=12.0)
    first = make_corpus.build_corpus(tmp_path / "a", 6, 4, settings, sources=sources, progress=False)
    assert first["tracks"] == 10 and first["rendered"] == 10 and first["failures"] >= 1
    failures = [json.loads(line) for line in (tmp_path / "a" / "failures.jsonl").read_text().splitlines()]
    assert any(f["where"].endswith("X:99") and "chord" in f["reason"] for f in failures)
    rows = [json.loads(line) for line in (tmp_path / "a" / "tracks.jsonl").read_text().splitlines()]
    assert [r["track_id"] for r in rows[:6]] == [f"gen-{i:05d}" for i in range(6)]
    for row in rows:
        wave, rate = soundfile.read(tmp_path / "a" / row["audio"])
        assert rate == 16000 and abs(len(wave) / rate - row["duration"]) < 1e-3
        assert (tmp_path / "a" / row["midi"]).is_file() and row["split"] in ("train", "val", "test")
        assert {"key", "tempo", "meter", "instruments", "beats", "downbeats"} <= set(row["labels"])
        assert row["licence"] and row["provenance"]
    assert {r["source"] for r in rows} == {"generated", "airdsAirs"}
    assert all("abc" in r["labels"] for r in rows if r["source"] == "airdsAirs")
    # the same seed elsewhere gives the same bytes; a re-run skips finished work and keeps its lines
    make_corpus.build_corpus(tmp_path / "b", 6, 4, settings, sources=sources, progress=False)
    for row in rows:
        for kind in ("audio", "midi"):
            assert (tmp_path / "a" / row[kind]).read_bytes() == (tmp_path / "b" / row[kind]).read_bytes()
    before = (tmp_path / "a" / "tracks.jsonl").read_bytes()
    again = make_corpus.build_corpus(tmp_path / "a", 6, 4, settings, sources=sources, progress=False)
    assert again["rendered"] == 0 and again["kept"] == 10
    assert (tmp_path / "a" / "tracks.jsonl").read_bytes() == before
    with pytest.raises(SystemExit, match="other settings"):
        make_corpus.build_corpus(tmp_path / "a", 6, 4, make_corpus.Settings(seed=1, sample_rate=16000, seconds=12.0),
                                 sources=sources, progress=False)


def test_make_corpus_renders_only_the_chosen_splits(tmp_path):
    # The test split alone, e.g. rendered with another soundfont: the same tracks, bytes and labels as in a
    # full run, and a later full run into the same folder renders the rest and keeps them.
    settings = make_corpus.Settings(seed=0, sample_rate=16000, seconds=6.0)
    generated = 30
    splits = {f"gen-{i:05d}": split_of(f"gen-{i:05d}") for i in range(generated)}
    assert {"train", "test"} <= set(splits.values())
    only = make_corpus.build_corpus(tmp_path / "a", generated, 0, settings, progress=False, splits=("val", "test"))
    rows = [json.loads(line) for line in (tmp_path / "a" / "tracks.jsonl").read_text().splitlines()]
    wanted = sorted(tid for tid, split in splits.items() if split != "train")
    assert sorted(r["track_id"] for r in rows) == wanted and only["rendered"] == len(wanted)
    assert sorted(p.stem for p in (tmp_path / "a" / "audio").iterdir()) == wanted
    full = make_corpus.build_corpus(tmp_path / "a", generated, 0, settings, progress=False)
    assert full["kept"] == len(wanted) and full["rendered"] == generated - len(wanted)
    make_corpus.build_corpus(tmp_path / "b", generated, 0, settings, progress=False)
    for tid in wanted:
        assert (tmp_path / "a" / "audio" / f"{tid}.flac").read_bytes() == (tmp_path / "b" / "audio" / f"{tid}.flac").read_bytes()
    with pytest.raises(SystemExit):
        make_corpus.main(["--out", str(tmp_path / "c"), "--generated", "1", "--splits", "testing"])


def negated_soundfont(path: Path) -> Path:
    """A copy of TimGM6mb whose samples (the sdta list's smpl chunk, 16-bit) are negated: a soundfont that
    renders every score as the inverted wave, so which of two soundfonts rendered a track shows in its bytes."""
    data = bytearray(make_corpus.DEFAULT_SOUNDFONT.read_bytes())
    start = data.index(b"smpl") + 8
    size = int.from_bytes(data[start - 4: start], "little")
    samples = np.frombuffer(bytes(data[start: start + size]), dtype="<i2").astype(np.int32)
    data[start: start + size] = np.clip(-samples, -32768, 32767).astype("<i2").tobytes()
    path.write_bytes(bytes(data))
    return path


def test_make_corpus_train_soundfonts(tmp_path):
    # Train pieces in either soundfont, drawn per piece; val and test pieces, and the train pieces that drew
    # the primary soundfont, the same bytes as a run without the option.
    other = negated_soundfont(tmp_path / "Negated.sf2")
    plain = make_corpus.Settings(seed=0, sample_rate=16000, seconds=6.0)
    mixed = make_corpus.Settings(seed=0, sample_rate=16000, seconds=6.0, train_soundfonts=(str(other),))
    make_corpus.build_corpus(tmp_path / "plain", 20, 0, plain, progress=False)
    make_corpus.build_corpus(tmp_path / "mixed", 20, 0, mixed, progress=False)
    rows = {name: {r["track_id"]: r for r in map(json.loads, (tmp_path / name / "tracks.jsonl").read_text().splitlines())}
            for name in ("plain", "mixed")}
    used = Counter()
    for track_id, row in rows["mixed"].items():
        font = row["render"]["soundfont"]
        same = (tmp_path / "mixed" / row["audio"]).read_bytes() == (tmp_path / "plain" / row["audio"]).read_bytes()
        assert rows["plain"][track_id]["render"]["soundfont"] == "TimGM6mb.sf2"
        assert font == "TimGM6mb.sf2" if row["split"] != "train" else font in ("TimGM6mb.sf2", "Negated.sf2")
        assert same == (font == "TimGM6mb.sf2"), (track_id, font)
        assert row["labels"] == rows["plain"][track_id]["labels"]
        used[font] += row["split"] == "train"
    assert used["TimGM6mb.sf2"] > 0 and used["Negated.sf2"] > 0
    assert "train_soundfonts" not in json.loads((tmp_path / "plain" / "corpus.json").read_text())
    assert json.loads((tmp_path / "mixed" / "corpus.json").read_text())["train_soundfonts"][0].startswith("Negated.sf2 sha256:")
    with pytest.raises(SystemExit, match="other settings"):  # the folder's audio would not match
        make_corpus.build_corpus(tmp_path / "plain", 20, 0, mixed, progress=False)
    with pytest.raises(SystemExit):
        make_corpus.main(["--out", str(tmp_path / "c"), "--generated", "1", "--train-soundfont", str(tmp_path / "none.sf2")])


def test_make_corpus_formant_shift(tmp_path):
    # Each track draws its shift from -N..N by its id; a track that drew 0 is the same bytes as without the option.
    plain = make_corpus.Settings(seed=0, sample_rate=16000, seconds=6.0)
    shifted = make_corpus.Settings(seed=0, sample_rate=16000, seconds=6.0, formant_shift=3)
    make_corpus.build_corpus(tmp_path / "plain", 12, 0, plain, progress=False)
    make_corpus.build_corpus(tmp_path / "shifted", 12, 0, shifted, progress=False)
    rows = {name: {r["track_id"]: r for r in map(json.loads, (tmp_path / name / "tracks.jsonl").read_text().splitlines())}
            for name in ("plain", "shifted")}
    drawn = set()
    for track_id, row in rows["shifted"].items():
        shift = row["render"]["formant_semitones"]
        assert shift == make_corpus.formant_for(track_id, shifted) and -3 <= shift <= 3
        same = (tmp_path / "shifted" / row["audio"]).read_bytes() == (tmp_path / "plain" / row["audio"]).read_bytes()
        assert same == (shift == 0), (track_id, shift)
        assert row["labels"] == rows["plain"][track_id]["labels"]
        assert "formant_semitones" not in rows["plain"][track_id]["render"]
        drawn.add(shift)
    assert len(drawn) >= 3
    assert "formant_shift" not in json.loads((tmp_path / "plain" / "corpus.json").read_text())
    assert json.loads((tmp_path / "shifted" / "corpus.json").read_text())["formant_shift"] == 3
    with pytest.raises(SystemExit, match="other settings"):
        make_corpus.build_corpus(tmp_path / "plain", 12, 0, shifted, progress=False)
    with pytest.raises(SystemExit):
        make_corpus.main(["--out", str(tmp_path / "c"), "--generated", "1", "--formant-shift", "13"])


def test_make_corpus_adds_midi_files_with_the_labels_they_state(tmp_path):
    """--midi: each file's first --seconds becomes a track labelled by what it states, split by its id; a
    generated piece written out as MIDI (with its key) comes back with its own labels; bad files are failures."""
    root = tmp_path / "midi"
    (root / "set").mkdir(parents=True)
    piece = generate_piece(3, 0, seconds=6.0)
    key = parse_key(piece.labels["key"])
    piece.midi.key_signature_changes.append(pretty_midi.KeySignature(key.pc + (12 if key.mode == "minor" else 0), 0.0))
    piece.midi.write(str(root / "set" / "Piece 3.mid"))
    long = pretty_midi.PrettyMIDI(initial_tempo=90)
    long.instruments = [pretty_midi.Instrument(42)]
    long.instruments[0].notes = [pretty_midi.Note(80, 48, k * 0.5, k * 0.5 + 0.6) for k in range(40)]  # 20.1 s
    long.write(str(root / "long.midi"))
    short = pretty_midi.PrettyMIDI()
    short.instruments = [pretty_midi.Instrument(0)]
    short.instruments[0].notes = [pretty_midi.Note(80, 60, 0.0, 2.0)]
    short.write(str(root / "short.mid"))
    (root / "junk.mid").write_bytes(b"not MIDI")
    settings = make_corpus.Settings(seed=0, sample_rate=16000, seconds=6.0, augment=True)
    summary = make_corpus.build_corpus(tmp_path / "c", 0, 0, settings, progress=False,
                                       midi=make_corpus.list_midi(root))
    rows = {r["track_id"]: r for r in map(json.loads, (tmp_path / "c" / "tracks.jsonl").read_text().splitlines())}
    assert set(rows) == {"midi-set__Piece_3", "midi-long"} and summary["sources"] == {"midi": 2}
    assert rows["midi-set__Piece_3"]["labels"] == {k: piece.labels[k] for k in ("key", "meter", "tempo", "instruments")}
    assert rows["midi-long"]["labels"] == {"meter": "4/4", "tempo": 90.0, "instruments": ["Cello"]}
    for track_id, row in rows.items():
        assert row["split"] == split_of(track_id) and row["source"] == "midi" and "augment" in row
        audio, rate = soundfile.read(str(tmp_path / "c" / row["audio"]))
        assert rate == 16000 and len(audio) / rate == pytest.approx(row["duration"])
    # the long file is cut at --seconds (its MIDI too), then a second of release
    assert rows["midi-long"]["duration"] == pytest.approx(7.0, abs=0.01)
    assert pretty_midi.PrettyMIDI(str(tmp_path / "c" / rows["midi-long"]["midi"])).get_end_time() <= 6.0 + 1e-6
    failures = {f["where"]: f["reason"] for f in map(json.loads, (tmp_path / "c" / "failures.jsonl").read_text().splitlines())}
    assert "fewer than 5 s" in failures[str(root / "short.mid")]
    assert "not a readable MIDI file" in failures[str(root / "junk.mid")]
    with pytest.raises(SystemExit, match="folder not found"):
        make_corpus.main(["--out", str(tmp_path / "d"), "--generated", "0", "--tunes", "0", "--midi", str(tmp_path / "none")])
    # --midi-split: every file in one split (held-out counterparts measured apart); --splits filters by it
    make_corpus.build_corpus(tmp_path / "v", 0, 0, settings, progress=False, midi=make_corpus.list_midi(root, "val"),
                             splits=("val",))
    assert {json.loads(line)["split"] for line in (tmp_path / "v" / "tracks.jsonl").read_text().splitlines()} == {"val"}


def test_make_corpus_cli_with_augmentation(tmp_path, capsys):
    with pytest.raises(SystemExit):
        make_corpus.main(["--help"])
    assert "python preprocessing/make_corpus.py --out data/corpus --generated 400 --tunes 200" in capsys.readouterr().out
    assert make_corpus.main(["--out", str(tmp_path), "--generated", "2", "--tunes", "1", "--seconds", "8",
                             "--sample-rate", "16000", "--augment", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "tracks.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all("augment" in r and "tuning_cents" in r["augment"] for r in rows)
    assert rows[2]["source"] in ("oneills1850", "ryansMammoth", "airdsAirs")  # Essen only when enabled
    assert "public domain" in rows[2]["licence"] and "music21" in rows[2]["licence"]
    assert Fraction(rows[0]["sample_rate"]) == 16000
