"""Evaluation-manifest converters on tiny hand-made copies of each layout: exact rows, failures, paths."""

import importlib.util
import json

import numpy as np
import pytest
import soundfile

from llark.evaluation import get_task
from llark.evaluation.converters import (LayoutError, clips_manifest, csv_manifest, giantsteps_key_manifest,
                                         giantsteps_tempo_manifest, gtzan_manifest, midi_labels, midi_manifest,
                                         normalise_key, parse_instruments, parse_meter, parse_tempo)
from llark.jsonl import read_jsonl, resolve_path, write_jsonl_atomic
from tests.conftest import REPO

SR = 8000  # the lowest rate audio_info accepts: keeps the files (and the MP3 encoding) small


def tone(path, seconds, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    soundfile.write(str(path), (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR, **kwargs)
    return path


def errors(conv):
    return {f["item"]: f["error"] for f in conv.failures}


def assert_resolves(rows, manifest, key="audio"):
    """Written as the script writes it and read back, each path names an existing file and each gold
    answer is one the evaluation task accepts."""
    write_jsonl_atomic(manifest, rows)
    assert read_jsonl(manifest) == rows
    for row in rows:
        get_task(row["task"]).parse_gold(row["gold"])
        assert not row[key].startswith("/"), row[key]  # relative, so the manifest moves with its data
        assert resolve_path(row[key], manifest).is_file()


# ---------------------------------------------------------------- gold parsers

@pytest.mark.parametrize("text, key", [
    ("D minor", "D minor"), ("d minor", "D minor"), ("D min", "D minor"), ("D:minor", "D minor"),
    ("Eb major", "Eb major"), ("eb Major\n", "Eb major"), ("  F#  maj ", "F# major"), ("bb:min", "Bb minor"),
    ("B minor", "B minor"), ("Ebmajor", "Eb major"), ("C\tminor", "C minor"), ("D\u266f minor", "D# minor"),
])
def test_normalise_key_accepts_common_spellings(text, key):
    assert normalise_key(text, "x.key") == key


@pytest.mark.parametrize("text", ["", "D", "Dm", "H minor", "D dorian", "D minor E major", "Emaj7", "D##  minor"])
def test_normalise_key_rejects_others_naming_the_file(text):
    with pytest.raises(ValueError, match="x.key"):
        normalise_key(text, "x.key")


def test_tempo_meter_instrument_parsers():
    assert parse_tempo("128\n", "f") == 128.0 and parse_tempo(96, "f") == 96.0
    for bad in ("fast", "0", "-3", "nan", "inf", True, None):
        with pytest.raises(ValueError, match="f"):
            parse_tempo(bad, "f")
    assert parse_meter("6/8", "f") == "6/8" and parse_meter(" 3 / 4", "f") == "3/4"
    for bad in ("6:8", "0/4", "waltz"):
        with pytest.raises(ValueError):
            parse_meter(bad, "f")
    assert parse_instruments("Piano; Drums", "f") == ["Piano", "Drums"]
    assert parse_instruments('["Flute", "Violin"]', "f") == ["Flute", "Violin"]
    for bad in ("", "[1, 2]", "[oops", [], 3):
        with pytest.raises(ValueError):
            parse_instruments(bad, "f")


# ---------------------------------------------------------------- clips.jsonl

@pytest.fixture
def clips_layout(tmp_path):
    a = tone(tmp_path / "corpus" / "audio" / "a.wav", 30)
    tone(tmp_path / "corpus" / "audio" / "b.wav", 30)
    full = {"key": "F# minor", "tempo": 96.0, "meter": "6/8", "instruments": ["Flute", "Drums"], "genre": "Waltz",
            "abc": "X:1\nK:D\nABc|", "beats": [0.0, 0.625]}
    clip = lambda cid, audio, split, labels, start=0.0, end=25.0: {  # noqa: E731
        "clip_id": cid, "track_id": cid.split("-start")[0], "audio": audio, "start": start, "end": end,
        "split": split, "labels": labels}
    clips = [
        clip("a-start0.000-end25.000", "../corpus/audio/a.wav", "test", full),
        clip("b-start0.000-end25.000", "../corpus/audio/b.wav", "train", full),           # other split
        clip("bad-start0.000-end25.000", "../corpus/audio/b.wav", "test", {"key": "H minor", "tempo": 90}),
        clip("gone-start0.000-end25.000", "../corpus/audio/gone.wav", "test", {"key": "C major"}),
        clip("long-start10.000-end35.000", "../corpus/audio/b.wav", "test", {"key": "C major"}, 10.0, 35.0),
        clip("b-start5.000-end30.000", "../corpus/audio/b.wav", "test", {"tempo": 120, "meter": "4/4"}, 5.0, 30.0),
    ]
    clips_file = tmp_path / "pipeline" / "clips.jsonl"
    write_jsonl_atomic(clips_file, clips)
    features = tmp_path / "pipeline" / "features"
    features.mkdir()
    np.save(features / "a-start0.000-end25.000.npy", np.zeros((625, 4), np.float16))
    return clips_file, features, a


def test_clips_manifest_rows_and_failures(clips_layout, tmp_path):
    clips_file, _, a = clips_layout
    manifest = tmp_path / "eval" / "test.jsonl"
    conv = clips_manifest(clips_file, manifest)
    audio_a = "../corpus/audio/a.wav"
    span = {"audio": audio_a, "start": 0.0, "end": 25.0}
    aid = "a-start0.000-end25.000"
    assert conv.rows[:6] == [
        {"id": aid, "question": "What key is this piece in?", "task": "key", "gold": "F# minor", **span},
        {"id": aid, "question": "What is the tempo of this piece in beats per minute?", "task": "tempo",
         "gold": 96.0, **span},
        {"id": aid, "question": "What is the time signature of this piece?", "task": "meter", "gold": "6/8", **span},
        {"id": aid, "question": "Which instruments are playing?", "task": "instruments", "gold": ["Flute", "Drums"],
         **span},
        {"id": aid, "question": "What genre is this song?", "task": "genre", "gold": "waltz", **span},
        {"id": aid, "question": "Transcribe the melody in ABC notation.", "task": "abc_transcription",
         "gold": "X:1\nK:D\nABc|", **span},
    ]
    # only the labels a clip holds become questions, on the clip's own span
    assert [(r["id"], r["task"], r["gold"], r["start"], r["end"]) for r in conv.rows[6:]] == [
        ("b-start5.000-end30.000", "tempo", 120.0, 5.0, 30.0), ("b-start5.000-end30.000", "meter", "4/4", 5.0, 30.0)]
    failed = errors(conv)
    assert set(failed) == {"bad-start0.000-end25.000", "gone-start0.000-end25.000", "long-start10.000-end35.000"}
    assert "H minor" in failed["bad-start0.000-end25.000"] and "clips.jsonl:3" in failed["bad-start0.000-end25.000"]
    gone = failed["gone-start0.000-end25.000"]
    assert "UnreadableAudio" in gone and "gone.wav" in gone
    assert "runs past the end" in failed["long-start10.000-end35.000"]
    assert_resolves(conv.rows, manifest)
    assert resolve_path(conv.rows[0]["audio"], manifest).resolve() == a.resolve()


def test_clips_manifest_tasks_split_and_features(clips_layout, tmp_path):
    clips_file, features, _ = clips_layout
    manifest = tmp_path / "eval" / "test.jsonl"
    conv = clips_manifest(clips_file, manifest, tasks=["key", "tempo"], features_dir=features)
    assert [(r["id"], r["task"]) for r in conv.rows] == [("a-start0.000-end25.000", "key"),
                                                        ("a-start0.000-end25.000", "tempo")]
    assert conv.rows[0]["features"] == "../pipeline/features/a-start0.000-end25.000.npy"
    assert_resolves(conv.rows, manifest, key="features")
    assert "features file not found" in errors(conv)["b-start5.000-end30.000"]
    train = clips_manifest(clips_file, manifest, split="train", tasks=["meter"])
    assert [(r["id"], r["gold"]) for r in train.rows] == [("b-start0.000-end25.000", "6/8")] and not train.failures
    with pytest.raises(ValueError, match="caption"):
        clips_manifest(clips_file, manifest, tasks=["caption"])


def test_clips_manifest_rows_name_their_groups_by_source_and_drums(clips_layout, tmp_path):
    clips_file, _, _ = clips_layout
    clip = {"audio": "../corpus/audio/a.wav", "start": 0.0, "end": 25.0, "split": "test"}
    key = {"key": "C major"}
    sourced = tmp_path / "pipeline" / "sourced.jsonl"
    write_jsonl_atomic(sourced, [
        {**clip, "clip_id": "gen-00001-start0.000-end25.000", "source": "generated",
         "labels": {**key, "instruments": ["Flute", "Drums"]}},
        {**clip, "clip_id": "oneills1850-0007-start0.000-end25.000", "source": "oneills1850",
         "labels": {**key, "instruments": ["Fiddle"]}},
        {**clip, "clip_id": "gen-00002-start0.000-end25.000", "source": "generated", "labels": key},  # drums unknown
        {**clip, "clip_id": "x-start0.000-end25.000", "labels": key},  # no source: no groups
        {**clip, "clip_id": "bad-start0.000-end25.000", "source": 3, "labels": key}])
    conv = clips_manifest(sourced, tmp_path / "eval" / "test.jsonl", tasks=["key"])
    assert "sourced.jsonl:5: 'source' must be a non-empty string, got 3" in errors(conv)["bad-start0.000-end25.000"]
    rows = conv.rows
    assert [(r["id"][:9], r.get("groups")) for r in rows] == [
        ("gen-00001", ["generated", "drums"]), ("oneills18", ["tunes", "no drums"]), ("gen-00002", ["generated"]),
        ("x-start0.", None)]


# ---------------------------------------------------------------- GiantSteps

@pytest.fixture(scope="module")
def giantsteps(tmp_path_factory):
    """Shared by the GiantSteps tests (encoding the MP3s takes ~1 s); they only read it."""
    root = tmp_path_factory.mktemp("gs") / "giantsteps"
    tone(root / "audio" / "1.LOFI.mp3", 60, format="MP3")
    tone(root / "audio" / "2.LOFI.mp3", 40, format="MP3")   # shorter than the 30-55 s crop
    tone(root / "audio" / "3.LOFI.mp3", 3, format="MP3")    # too short for any crop
    tone(root / "audio" / "4.LOFI.mp3", 60, format="MP3")   # malformed annotation
    tone(root / "audio" / "6.LOFI.mp3", 60, format="MP3")   # no annotation
    (root / "audio" / "7.LOFI.mp3").write_bytes(b"not audio at all")
    keys = root / "annotations" / "key"
    keys.mkdir(parents=True)
    for track, text in {"1": "Eb major\n", "2": "d min", "3": "C major", "4": "H minor", "5": "A minor",
                        "7": "G major"}.items():
        (keys / f"{track}.LOFI.key").write_text(text)
    for folder, tempi in (("annotations", {"1": "128\n", "2": "87.5", "4": "fast"}),
                          ("annotations_v2", {"1": "64.0", "2": "175"})):
        (root / folder / "tempo").mkdir(parents=True)
        for track, text in tempi.items():
            (root / folder / "tempo" / f"{track}.LOFI.bpm").write_text(text)
    return root


def test_soundfile_reads_the_mp3_we_write(giantsteps):
    assert soundfile.info(str(giantsteps / "audio" / "1.LOFI.mp3")).format == "MP3"


def test_giantsteps_key(giantsteps):
    manifest = giantsteps.parent / "eval" / "gs-key.jsonl"
    conv = giantsteps_key_manifest(giantsteps, manifest)
    question = "What key is this piece in?"
    assert conv.rows == [
        {"id": "1-start30.000-end55.000", "question": question, "task": "key", "gold": "Eb major",
         "audio": "../giantsteps/audio/1.LOFI.mp3", "start": 30.0, "end": 55.0},
        {"id": "2-start0.000-end25.000", "question": question, "task": "key", "gold": "D minor",
         "audio": "../giantsteps/audio/2.LOFI.mp3", "start": 0.0, "end": 25.0},
    ]
    failed = errors(conv)
    assert set(failed) == {"3", "4", "5", "6", "7"}
    assert "TooShortAudio" in failed["3"]
    assert "H minor" in failed["4"] and "4.LOFI.key" in failed["4"]
    assert "UnreadableAudio" in failed["5"] and "5.LOFI.mp3" in failed["5"]
    assert "no annotation" in failed["6"]
    assert "UnreadableAudio" in failed["7"]
    assert_resolves(conv.rows, manifest)
    custom = giantsteps_key_manifest(giantsteps, manifest, start=10, end=20)
    assert [(r["start"], r["end"]) for r in custom.rows] == [(10.0, 20.0), (10.0, 20.0)]


def test_giantsteps_tempo_v1_and_v2(giantsteps, tmp_path):
    manifest = tmp_path / "gs-tempo.jsonl"
    v1 = giantsteps_tempo_manifest(giantsteps, manifest)
    assert [(r["id"], r["task"], r["gold"]) for r in v1.rows] == [("1-start30.000-end55.000", "tempo", 128.0),
                                                                ("2-start0.000-end25.000", "tempo", 87.5)]
    assert v1.rows[0]["question"] == "What is the tempo of this piece in beats per minute?"
    assert "fast" in errors(v1)["4"] and set(errors(v1)) == {"3", "4", "6", "7"}  # 3 and 7 have no .bpm
    v2 = giantsteps_tempo_manifest(giantsteps, manifest, v2=True)
    assert [r["gold"] for r in v2.rows] == [64.0, 175.0]
    assert_resolves(v2.rows, manifest)
    (tmp_path / "no-v2" / "audio").mkdir(parents=True)
    with pytest.raises(LayoutError, match="annotations_v2"):
        giantsteps_tempo_manifest(tmp_path / "no-v2", manifest, v2=True)


# ---------------------------------------------------------------- GTZAN

def test_gtzan(tmp_path):
    root = tmp_path / "gtzan"
    tone(root / "genres" / "blues" / "blues.00000.wav", 30)
    tone(root / "genres" / "rock" / "rock.00001.au", 30, format="AU", subtype="PCM_16")
    (root / "genres" / "jazz").mkdir()
    (root / "genres" / "jazz" / "jazz.00054.wav").write_bytes(b"RIFF\x00\x00garbage")
    tone(root / "genres" / "rock" / "blues.00002.wav", 30)       # filed under the wrong genre
    (root / "genres" / "rock" / "rock.mf").write_text("a list, not a track")
    manifest = root / "gtzan.jsonl"
    conv = gtzan_manifest(root, manifest)
    assert conv.rows == [
        {"id": "blues.00000-start0.000-end25.000", "question": "What genre is this song?", "task": "genre",
         "gold": "blues", "audio": "genres/blues/blues.00000.wav", "start": 0.0, "end": 25.0},
        {"id": "rock.00001-start0.000-end25.000", "question": "What genre is this song?", "task": "genre",
         "gold": "rock", "audio": "genres/rock/rock.00001.au", "start": 0.0, "end": 25.0},
    ]
    failed = errors(conv)
    assert set(failed) == {"genres/jazz/jazz.00054.wav", "genres/rock/blues.00002.wav"}
    assert "UnreadableAudio" in failed["genres/jazz/jazz.00054.wav"]
    assert "does not match its genre folder" in failed["genres/rock/blues.00002.wav"]
    assert_resolves(conv.rows, manifest)
    with pytest.raises(LayoutError, match="genres"):
        gtzan_manifest(tmp_path / "elsewhere", manifest)


# ---------------------------------------------------------------- CSV

def test_csv_rows_paths_and_failures(tmp_path):
    data = tmp_path / "data"
    tone(data / "audio" / "x.wav", 30)
    short = tone(data / "audio" / "short.wav", 10)
    absolute = tone(tmp_path / "elsewhere" / "y.flac", 30)
    (data / "labels.csv").write_text(
        "path,label,start,end,question\n"
        "audio/x.wav,120,,,\n"
        f"{absolute},96.5,5,15,How fast is it?\n"
        "audio/short.wav,60,,,\n"
        "audio/missing.wav,100,,,\n"
        "audio/x.wav,quick,,,\n"
        "audio/x.wav,100,20,40,\n"
        "audio/x.wav,100,abc,,\n")
    manifest = tmp_path / "eval" / "mine.jsonl"
    conv = csv_manifest(data / "labels.csv", manifest, task="tempo")
    question = "What is the tempo of this piece in beats per minute?"
    assert conv.rows == [
        {"id": "x-start0.000-end25.000", "question": question, "task": "tempo", "gold": 120.0,
         "audio": "../data/audio/x.wav", "start": 0.0, "end": 25.0},
        {"id": "y-start5.000-end15.000", "question": "How fast is it?", "task": "tempo", "gold": 96.5,
         "audio": "../elsewhere/y.flac", "start": 5.0, "end": 15.0},
        {"id": "short-start0.000-end10.000", "question": question, "task": "tempo", "gold": 60.0,
         "audio": "../data/audio/short.wav", "start": 0.0, "end": 10.0},
    ]
    assert_resolves(conv.rows, manifest)
    assert resolve_path(conv.rows[2]["audio"], manifest).resolve() == short.resolve()
    failed = {item.rsplit(":", 1)[1]: error for item, error in errors(conv).items()}
    assert set(failed) == {"5", "6", "7", "8"}
    assert "UnreadableAudio" in failed["5"] and "missing.wav" in failed["5"]
    assert "quick" in failed["6"] and "runs past the end" in failed["7"] and "seconds" in failed["8"]
    with pytest.raises(LayoutError, match="label"):
        (data / "nolabel.csv").write_text("path,genre\naudio/x.wav,rock\n")
        csv_manifest(data / "nolabel.csv", manifest, task="genre")


def test_csv_mcq_instruments_and_duplicate_ids(tmp_path):
    tone(tmp_path / "x.wav", 30)
    options = json.dumps({"A": "a violin", "B": "a piano"}).replace('"', '""')
    (tmp_path / "mcq.csv").write_text(
        "id,path,label,question,options\n"
        f"q1,x.wav,b,Which instrument leads?,\"{options}\"\n"
        f"q2,x.wav,C,Which instrument leads?,\"{options}\"\n"
        "q3,x.wav,A,Which instrument leads?,\n"
        f"q4,x.wav,A,,\"{options}\"\n"
        f"q1,x.wav,A,Again?,\"{options}\"\n")
    conv = csv_manifest(tmp_path / "mcq.csv", tmp_path / "mcq.jsonl", task="mcq")
    assert conv.rows == [{"id": "q1", "question": "Which instrument leads?", "task": "mcq", "gold": "B",
                          "audio": "x.wav", "start": 0.0, "end": 25.0, "options": {"A": "a violin", "B": "a piano"}}]
    assert_resolves(conv.rows, tmp_path / "mcq.jsonl")
    failed = {item.rsplit(":", 1)[1]: error for item, error in errors(conv).items()}
    assert "not one of the options" in failed["3"] and "options" in failed["4"]
    assert "question" in failed["5"] and "duplicate id 'q1'" in failed["6"]
    (tmp_path / "inst.csv").write_text('path,label\nx.wav,"Piano; Drums"\n')
    rows = csv_manifest(tmp_path / "inst.csv", tmp_path / "inst.jsonl", task="instruments").rows
    assert rows[0]["gold"] == ["Piano", "Drums"]


# ---------------------------------------------------------------- the script

def load_script():
    path = REPO / "preprocessing" / "make_eval_manifest.py"
    spec = importlib.util.spec_from_file_location("make_eval_manifest", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_writes_manifest_and_failures(tmp_path, capsys):
    script = load_script()
    root = tmp_path / "gtzan"
    tone(root / "genres" / "pop" / "pop.00000.wav", 30)
    (root / "genres" / "pop" / "pop.00001.wav").write_bytes(b"junk")
    out = tmp_path / "eval" / "gtzan.jsonl"
    assert script.main(["gtzan", "--root", str(root), "--out", str(out), "--no-progress"]) == 0
    assert [r["gold"] for r in read_jsonl(out)] == ["pop"]
    audio = resolve_path(read_jsonl(out)[0]["audio"], out)
    assert audio.resolve() == (root / "genres" / "pop" / "pop.00000.wav").resolve()
    failures = read_jsonl(out.with_name("gtzan.failures.jsonl"))
    assert [f["item"] for f in failures] == ["genres/pop/pop.00001.wav"]
    assert "1 questions (genre 1)" in capsys.readouterr().err
    (root / "genres" / "pop" / "pop.00001.wav").unlink()
    assert script.main(["gtzan", "--root", str(root), "--out", str(out), "--no-progress"]) == 0
    assert not out.with_name("gtzan.failures.jsonl").exists()  # no stale list from the earlier run
    assert script.main(["gtzan", "--root", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert script.main(["gtzan", "--root", str(root), "--start", "9", "--end", "3", "--out", str(out)]) == 2


@pytest.mark.parametrize("layout", ["clips", "giantsteps-key", "giantsteps-tempo", "gtzan", "csv", "midi"])
def test_every_subcommand_has_help(layout, capsys):
    with pytest.raises(SystemExit) as exit_:
        load_script().main([layout, "--help"])
    assert exit_.value.code == 0 and "--out" in capsys.readouterr().out


# ---------------------------------------------------------------- MIDI files rendered with a soundfont

def with_key_signature(midi, key_name):
    """The generator's MIDI states no key; a score's would (pretty_midi numbers minor keys from 12)."""
    import pretty_midi

    from llark.corpus.theory import parse_key
    key = parse_key(key_name)
    midi.key_signature_changes.append(pretty_midi.KeySignature(key.pc + (12 if key.mode == "minor" else 0), 0.0))
    return midi


def line(program, seconds, step=0.5, is_drum=False, pitch=60):
    import pretty_midi
    part = pretty_midi.Instrument(program, is_drum=is_drum)
    part.notes = [pretty_midi.Note(90, pitch + k % 5, k * step, k * step + 0.8 * step) for k in range(int(seconds / step))]
    return part


def write_midi(path, program, notes, tempi, signature=None):
    """A one-track MIDI file of `notes` quarter notes, with tempo changes {tick: quarter BPM} at 480 ticks a quarter."""
    import mido

    events = [(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))) for tick, bpm in tempi.items()]
    if signature:
        events.append((0, mido.MetaMessage("time_signature", numerator=signature[0], denominator=signature[1])))
    events.append((0, mido.Message("program_change", program=program)))
    for k in range(notes):
        events += [(480 * k, mido.Message("note_on", note=48 + k % 3, velocity=80)),
                   (480 * k + 400, mido.Message("note_off", note=48 + k % 3, velocity=0))]
    track, now = mido.MidiTrack(), 0
    for tick, message in sorted(events, key=lambda event: event[0]):
        track.append(message.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(track)
    midi.save(str(path))


def test_midi_manifest_asks_what_each_file_states(tmp_path):
    """The generator's pieces (every meter, the compound 6/8 among them), written as MIDI with their key,
    come back with their own labels; a pickup bar's signature does not hide the meter; a file whose tempo
    changes, or that states no key, is not asked about them; unreadable or silent files fail."""
    pytest.importorskip("tinysoundfont")
    import pretty_midi

    from llark.corpus.generate import generate_piece
    from llark.corpus.render import DEFAULT_SOUNDFONT

    root = tmp_path / "scores"
    (root / "sub").mkdir(parents=True)
    pieces = {f"gen{i}": generate_piece(i, 0) for i in range(4)}
    for name, piece in pieces.items():
        with_key_signature(piece.midi, piece.labels["key"]).write(str(root / ("sub" if name == "gen3" else "") / f"{name}.mid"))
    assert {p.labels["meter"] for p in pieces.values()} == {"2/4", "3/4", "4/4", "6/8"}

    pickup = pretty_midi.PrettyMIDI(initial_tempo=120)
    pickup.time_signature_changes = [pretty_midi.TimeSignature(1, 4, 0.0), pretty_midi.TimeSignature(3, 4, 0.5)]
    pickup.instruments = [line(40, 12), line(0, 12, is_drum=True, pitch=36)]
    with_key_signature(pickup, "E minor").write(str(root / "pickup.mid"))

    # halfway through its 12 s the tempo halves (written with mido: pretty_midi keeps one tempo per file it builds)
    write_midi(root / "slower.mid", program=73, notes=24, tempi={0: 120, 12 * 480: 60}, signature=(4, 4))
    # no key and no time signature (pretty_midi would write a 4/4 of its own), 90 quarter notes a minute
    write_midi(root / "bare.midi", program=42, notes=16, tempi={0: 90})

    late = pretty_midi.PrettyMIDI()
    late.instruments = [pretty_midi.Instrument(0)]
    late.instruments[0].notes = [pretty_midi.Note(80, 60, 30.0, 31.0)]
    late.write(str(root / "late.mid"))
    (root / "broken.mid").write_bytes(b"MThd not really")
    (root / "notes.txt").write_text("not a MIDI file, not looked at")

    manifest = tmp_path / "eval" / "scores.jsonl"
    conv = midi_manifest(root, manifest, DEFAULT_SOUNDFONT, end=25.0, sample_rate=16000)
    asked = {}
    for row in conv.rows:
        asked.setdefault(row["id"].split("-start")[0], {})[row["task"]] = row["gold"]
    for name, piece in pieces.items():
        stem = f"sub__{name}" if name == "gen3" else name
        assert asked[stem] == {task: piece.labels[task] for task in ("key", "tempo", "meter", "instruments")}, name
    assert asked["pickup"] == {"key": "E minor", "meter": "3/4", "tempo": 120.0, "instruments": ["Violin", "Drums"]}
    assert asked["slower"] == {"meter": "4/4", "instruments": ["Flute"]}  # 6 s at 120, 12 s at 60: no one tempo
    assert asked["bare"] == {"tempo": 90.0, "instruments": ["Cello"]}  # in quarter notes, the MIDI default beat
    assert sorted(conv.skipped, key=lambda s: (s["item"], s["task"])) == [
        {"item": str(root / "bare.midi"), "task": "key", "reason": "no key signature"},
        {"item": str(root / "bare.midi"), "task": "meter", "reason": "no time signature"},
        {"item": str(root / "slower.mid"), "task": "key", "reason": "no key signature"},
        {"item": str(root / "slower.mid"), "task": "tempo", "reason": "the tempo changes within the crop"},
    ]
    failed = errors(conv)
    assert set(failed) == {str(root / "broken.mid"), str(root / "late.mid")}
    assert "not a readable MIDI file" in failed[str(root / "broken.mid")]
    assert "no note sounds in [0, 25) s" in failed[str(root / "late.mid")]

    assert_resolves(conv.rows, manifest)
    for row in conv.rows:
        audio = resolve_path(row["audio"], manifest)
        info = soundfile.info(str(audio))
        assert audio.parent == manifest.parent / "audio" and info.samplerate == 16000
        assert row["start"] == 0.0 and row["end"] == pytest.approx(info.frames / 16000, abs=1e-3)
        drums = "Drums" in asked[row["id"].split("-start")[0]]["instruments"]
        assert row["groups"] == (["sub"] if row["id"].startswith("sub__") else []) + (["drums"] if drums else ["no drums"])
    short = [row for row in conv.rows if row["id"].startswith("pickup-")]
    # shorter than the crop: the music as a whole, to the end of its last note (11.5 + 0.4 s)
    assert short[0]["id"] == "pickup-start0.000-end11.900" and short[0]["end"] == pytest.approx(11.9, abs=0.01)
    wave, _ = soundfile.read(str(resolve_path(short[0]["audio"], manifest)))
    assert 0.85 < np.abs(wave).max() <= 0.9  # peak-normalised, as the corpus is


def test_midi_labels_hold_only_when_one_value_covers_the_crop():
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    midi.time_signature_changes = [pretty_midi.TimeSignature(4, 4, 0.0), pretty_midi.TimeSignature(3, 4, 20.0)]
    midi.key_signature_changes = [pretty_midi.KeySignature(2, 0.0), pretty_midi.KeySignature(14, 24.0)]
    midi.instruments = [line(40, 30), line(0, 30, is_drum=True)]
    labels, skipped = midi_labels(midi, 0.0, 25.0, "x.mid")
    # 4/4 holds for 20 of 25 s (0.8 < 0.9): no meter, and no beat to count the tempo in; D major for 24 of 25 s
    assert labels == {"key": "D major", "instruments": ["Violin", "Drums"]}
    assert skipped == {"meter": "the time signature changes within the crop",
                       "tempo": "the time signature, whose beat the tempo counts, changes within the crop"}
    labels, _ = midi_labels(midi, 20.0, 45.0, "x.mid")  # from 20 s on: 3/4 throughout, D major for 1 s only
    assert labels["meter"] == "3/4" and labels["tempo"] == 120.0 and "key" not in labels
    compound = pretty_midi.PrettyMIDI(initial_tempo=150)  # 150 quarters a minute in 6/8 and 2/2: 100 and 75 beats
    compound.instruments = [line(40, 30)]
    for signature, beats in (((6, 8), 100.0), ((2, 2), 75.0), ((12, 8), 100.0), ((3, 8), 300.0)):
        compound.time_signature_changes = [pretty_midi.TimeSignature(*signature, 0.0)]
        assert midi_labels(compound, 0.0, 25.0, "x.mid")[0]["tempo"] == beats, signature


def test_midi_manifest_layout_errors(tmp_path):
    from llark.corpus.render import DEFAULT_SOUNDFONT

    (tmp_path / "empty").mkdir()
    with pytest.raises(LayoutError, match="folder not found"):
        midi_manifest(tmp_path / "none", tmp_path / "m.jsonl", DEFAULT_SOUNDFONT)
    with pytest.raises(LayoutError, match="no MIDI files"):
        midi_manifest(tmp_path / "empty", tmp_path / "m.jsonl", DEFAULT_SOUNDFONT)
    with pytest.raises(LayoutError, match="soundfont file not found"):
        midi_manifest(tmp_path / "empty", tmp_path / "m.jsonl", tmp_path / "none.sf2")


def test_midi_script_writes_what_was_not_asked(tmp_path, capsys):
    pytest.importorskip("tinysoundfont")
    import pretty_midi

    from llark.corpus.render import DEFAULT_SOUNDFONT
    root = tmp_path / "scores"
    root.mkdir()
    midi = pretty_midi.PrettyMIDI(initial_tempo=96)
    midi.instruments = [line(24, 10)]
    midi.write(str(root / "song.mid"))
    out = tmp_path / "eval" / "songs.jsonl"
    assert load_script().main(["midi", "--root", str(root), "--soundfont", str(DEFAULT_SOUNDFONT), "--out", str(out),
                               "--no-progress"]) == 0
    assert [r["task"] for r in read_jsonl(out)] == ["meter", "tempo", "instruments"]
    assert read_jsonl(out.with_name("songs.skipped.jsonl")) == [
        {"item": str(root / "song.mid"), "task": "key", "reason": "no key signature"}]
    assert "1 questions not asked, for want of a gold answer (key: no key signature x1" in capsys.readouterr().err


def load_score_script():
    spec = importlib.util.spec_from_file_location("make_score_midi", REPO / "preprocessing" / "make_score_midi.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_score_orchestrated_comes_back_with_its_own_labels(tmp_path):
    """make_score_midi.py gives a score's parts instruments of their registers and the piece a tempo; the MIDI
    layout then reads back the composer's key and meter, that tempo in dotted quarters, and those instruments."""
    pytest.importorskip("tinysoundfont")
    from music21 import bar, key, meter, note, stream

    from llark.corpus.render import DEFAULT_SOUNDFONT
    from llark.corpus.theory import program_name
    script = load_score_script()

    def score(signature):
        parts = []
        for pitches in (("D5", "F5", "A5"), ("D3", "A2", "D3")):  # a treble line over a bass line
            part = stream.Part()
            for number in range(1, 41):
                measure = stream.Measure(number=number)
                if number == 1:
                    measure.insert(0, signature)
                    measure.insert(0, meter.TimeSignature("6/8"))
                if number == 4:
                    measure.rightBarline = bar.Repeat(direction="end")  # a repeat the 40 s opening cuts
                for pitch in pitches * 2:
                    measure.append(note.Note(pitch, quarterLength=0.5))
                part.append(measure)
            parts.append(part)
        return stream.Score(parts)

    (tmp_path / "corpus").mkdir()
    stated, unstated = tmp_path / "corpus" / "minor.musicxml", tmp_path / "corpus" / "unstated.musicxml"
    score(key.Key("d", "minor")).write("musicxml", fp=str(stated))
    score(key.KeySignature(-1)).write("musicxml", fp=str(unstated))
    assert "no mode" in script.orchestrate(unstated, 0, (60.0, 150.0))

    data, drawn = script.orchestrate(stated, 0, (60.0, 150.0))
    assert script.orchestrate(stated, 0, (60.0, 150.0))[0] == data  # seeded by the path: the same file every run
    assert 60 <= drawn["quarter_bpm"] / 1.5 <= 150 and drawn["key"] == "d minor"
    treble, bass = drawn["programs"]
    assert treble in script.REGISTER_PROGRAMS["high"] and bass in script.REGISTER_PROGRAMS["bass"]
    (tmp_path / "midi").mkdir()
    (tmp_path / "midi" / "minor.mid").write_bytes(data)
    conv = midi_manifest(tmp_path / "midi", tmp_path / "eval.jsonl", DEFAULT_SOUNDFONT, sample_rate=16000)
    assert not conv.failures and not conv.skipped
    assert {row["task"]: row["gold"] for row in conv.rows} == {
        "key": "D minor", "meter": "6/8", "tempo": pytest.approx(drawn["quarter_bpm"] / 1.5, abs=0.01),
        "instruments": list(dict.fromkeys([program_name(treble), program_name(bass)]))}


def test_the_tagger_scores_are_neither_measured_nor_trained_on():
    """--for-tagger's scores share no piece with the measured set nor with the demo's training scores, whose limit
    is the demo's own; and there are enough of them to fit on (Bach's other chorales and the trecento's songs)."""
    pytest.importorskip("music21")
    from llark.demo import TRAIN_SCORES
    script = load_score_script()

    assert script.DEMO_TRAINING_LIMIT == TRAIN_SCORES
    tagger = script.tagger_scores(list(script.TAGGER_COMPOSERS), 0)
    measured = script.list_scores(list(script.DEFAULT_COMPOSERS), script.MEASURED_LIMIT)
    trained = script.training_scores(list(script.TRAINING_COMPOSERS), TRAIN_SCORES)
    assert len(set(tagger)) == len(tagger) > 200
    assert not set(tagger) & set(measured) and not set(tagger) & set(trained)
    assert {path.parent.name for path in tagger} == {"bach", "trecento"}
    assert len(script.tagger_scores(["bach"], 10)) == 10
    with pytest.raises(SystemExit):  # one purpose at a time
        script.main(["--out", "unused", "--for-training", "--for-tagger"])
