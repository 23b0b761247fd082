"""Evaluation manifests from common data layouts: one question per line, with its gold answer.

    conv = clips_manifest("data/pipeline/clips.jsonl", "eval/test.jsonl", split="test", features_dir="data/features")
    conv = giantsteps_key_manifest("datasets/giantsteps-key-dataset", "eval/giantsteps-key.jsonl", start=30, end=55)
    conv = giantsteps_tempo_manifest("datasets/giantsteps-tempo-dataset", "eval/giantsteps-tempo.jsonl", v2=True)
    conv = gtzan_manifest("datasets/gtzan", "eval/gtzan.jsonl")
    conv = csv_manifest("my/labels.csv", "eval/mine.jsonl", task="genre")
    conv = midi_manifest("scores/", "eval/scores.jsonl", soundfont="FluidR3_GM.sf2")  # renders each MIDI file
    write_jsonl_atomic("eval/test.jsonl", conv.rows)      # conv.failures: [{"item", "error"}, ...]

A manifest line (read by evaluate.py):
    {"id", "question", "task", "gold", "audio", "start", "end", optional "features", optional "options"}
`audio` and `features` are relative to the manifest's own directory, so a manifest moves with its
data. Every converter checks each item (annotation parses, audio header reads, span fits) and
records the items that fail with the reason; the rest convert. A layout that is not there at all
(missing folder, CSV without the required columns) raises `LayoutError` instead.
`preprocessing/make_eval_manifest.py` is the command line over these functions.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from tqdm import tqdm

from llark.audio import CLIP_SECONDS, TooShortAudio, audio_info, clip_id, clip_windows
from llark.evaluation.instruments import DRUM_KIT_NAME
from llark.jsonl import read_jsonl, relative_path, resolve_path, write_bytes_atomic

if TYPE_CHECKING:
    import pretty_midi

TASKS = ("key", "tempo", "meter", "instruments", "genre", "caption", "mcq", "abc_transcription")
QUESTIONS = {
    "key": "What key is this piece in?",
    "tempo": "What is the tempo of this piece in beats per minute?",
    "meter": "What is the time signature of this piece?",
    "instruments": "Which instruments are playing?",
    "genre": "What genre is this song?",
    "caption": "Describe this piece of music.",
    "abc_transcription": "Transcribe the melody in ABC notation.",
}  # mcq has no fixed question: each one is its own
# Which clips.jsonl label answers which task.
CLIP_LABELS = {"key": "key", "tempo": "tempo", "meter": "meter", "instruments": "instruments",
               "genre": "genre", "abc_transcription": "abc"}
MIN_SECONDS = 5.0  # as crop_clips: a shorter span says too little to be judged on
GTZAN_SUFFIXES = (".wav", ".au")


class LayoutError(ValueError):
    """The data set is not laid out as the converter expects (a folder or a CSV column is missing)."""


class ConversionError(ValueError):
    """One item cannot become a question (malformed annotation, duplicate id...); names the file."""


@dataclass
class Conversion:
    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    # questions an item converted without, and why (a MIDI file states no key, its tempo changes in the crop)
    skipped: list[dict[str, str]] = field(default_factory=list)
    _questions: set[tuple[str, str]] = field(default_factory=set, repr=False)  # (id, task) of every row

    def attempt(self, item: str, make_rows: Callable[[], list[dict[str, Any]]]) -> None:
        """Add the rows of one item, or record why it has none; a bad item never stops the batch."""
        try:
            rows = make_rows()
        except (OSError, ValueError) as err:  # AudioError and ConversionError are ValueErrors
            self.failures.append({"item": item, "error": f"{type(err).__name__}: {err}"})
            return
        for row in rows:
            # evaluate.py reports answers by id: two questions of one task under one id would be ambiguous
            if (row["id"], row["task"]) in self._questions:
                self.failures.append({"item": item, "error": f"ConversionError: duplicate id {row['id']!r} "
                                                            f"for task {row['task']!r}"})
                continue
            self._questions.add((row["id"], row["task"]))
            self.rows.append(row)


# ---------------------------------------------------------------- gold answers, one parser per task

KEY_TEXT = re.compile(r"^([A-Ga-g])([#b\u266f\u266d]?)[\s:_-]*([A-Za-z]+)$")
MODES = {"major": "major", "maj": "major", "minor": "minor", "min": "minor"}


def normalise_key(text: str, where: str) -> str:
    """'d minor', 'D min', 'D:minor', 'Eb major', 'D\u266f maj' -> 'D minor', 'Eb major', 'D# major'.

    The mode must be spelled out ('maj'/'min' at least): a bare 'D' or 'Dm' is rejected rather
    than guessed.
    """
    match = KEY_TEXT.match(" ".join(str(text).split()))
    mode = MODES.get(match.group(3).lower()) if match else None
    if not match or mode is None:
        raise ConversionError(f"{where}: {text!r} is not a key like 'D minor' or 'Eb major'")
    accidental = {"\u266f": "#", "\u266d": "b"}.get(match.group(2), match.group(2))
    return f"{match.group(1).upper()}{accidental} {mode}"


def parse_tempo(value: Any, where: str) -> float:
    """A positive finite BPM from a number or a text holding only a number ('128', '128.0\\n')."""
    if isinstance(value, bool):
        raise ConversionError(f"{where}: tempo {value!r} is not a number")
    try:
        bpm = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConversionError(f"{where}: tempo {value!r} is not a number") from None
    if not math.isfinite(bpm) or bpm <= 0:
        raise ConversionError(f"{where}: tempo {value!r} is not a positive BPM")
    return bpm


def parse_meter(value: Any, where: str) -> str:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(value))
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ConversionError(f"{where}: meter {value!r} is not a time signature like '6/8'")
    return f"{int(match.group(1))}/{int(match.group(2))}"


def parse_instruments(value: Any, where: str) -> list[str]:
    """A list of names; text may be a JSON list or names separated by ';' (a CSV cell)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                raise ConversionError(f"{where}: instruments {value!r} is not a valid JSON list") from None
        else:
            value = text.split(";")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConversionError(f"{where}: instruments {value!r} is not a list of names")
    names = [v.strip() for v in value if v.strip()]
    if not names:
        raise ConversionError(f"{where}: the instrument list is empty")
    return names


def parse_text(value: Any, where: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConversionError(f"{where}: {what} {value!r} is not a non-empty text")
    return value.strip()


def gold_answer(task: str, value: Any, where: str) -> Any:
    """The gold answer of `task` in the manifest's format; raises ConversionError naming `where`."""
    if task == "key":
        return normalise_key(value, where)
    if task == "tempo":
        return parse_tempo(value, where)
    if task == "meter":
        return parse_meter(value, where)
    if task == "instruments":
        return parse_instruments(value, where)
    if task == "genre":
        return parse_text(value, where, "genre").lower()
    if task == "mcq":
        letter = parse_text(value, where, "mcq answer").upper()
        if not re.fullmatch(r"[A-Z]", letter):
            raise ConversionError(f"{where}: mcq answer {value!r} is not a single letter")
        return letter
    if task in ("caption", "abc_transcription"):
        return parse_text(value, where, task)
    raise ValueError(f"unknown task {task!r}; known: {TASKS}")


# ---------------------------------------------------------------- spans and rows

def check_crop(start: float, end: float) -> None:
    """A crop given as an option is checked once, up front: it is the caller's mistake, not an item's."""
    if not 0 <= start < end:
        raise ValueError(f"crop [{start}, {end}) s is empty or negative; give 0 <= start < end")


def crop_window(path: Path, start: float, end: float, min_seconds: float = MIN_SECONDS) -> tuple[float, float]:
    """[start, end) of the track at `path`, or its opening of the same length when the track is shorter.

    LLark scored GiantSteps on a crop from 30 s; a track too short for it is judged on its first
    `end - start` seconds (or all of it, when at least `min_seconds`) rather than dropped.
    """
    return crop_of_length(path, audio_info(path).duration, start, end, min_seconds, "audio")


def crop_of_length(path: Path, duration: float, start: float, end: float, min_seconds: float,
                   what: str) -> tuple[float, float]:
    """`crop_window`'s rule for a track of `duration` seconds of `what` (audio, music)."""
    if duration + 1e-6 >= end:
        return round(start, 3), round(end, 3)
    windows = clip_windows(duration, end - start, mode="first", min_seconds=min_seconds)
    if not windows:
        raise TooShortAudio(f"{path}: {duration:.3f} s of {what}, fewer than the minimum {min_seconds} s")
    return windows[0]


def check_span(path: Path, start: float, end: float) -> tuple[float, float]:
    """An explicit span (a CSV row's, a clip's) is used as given, so it must lie inside the track."""
    if not 0 <= start < end:
        raise ConversionError(f"{path}: span [{start}, {end}) s is empty or negative")
    duration = audio_info(path).duration
    if end > duration + 1e-3:
        raise TooShortAudio(f"{path}: span [{start}, {end}) s runs past the end of the track ({duration:.3f} s)")
    return round(start, 3), round(end, 3)


def question_row(item_id: str, task: str, gold: Any, audio: Path, manifest: Path, span: tuple[float, float],
                 question: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": item_id, "question": question or QUESTIONS[task], "task": task, "gold": gold,
            "audio": relative_path(audio, manifest), "start": span[0], "end": span[1], **extra}


def _progress(items: Iterable, what: str, progress: bool) -> Iterable:
    return tqdm(items, desc=what, unit="item", disable=not progress)


# ---------------------------------------------------------------- llark clips.jsonl

def clips_manifest(clips_file: str | Path, manifest: str | Path, split: str = "test",
                   tasks: Iterable[str] = tuple(CLIP_LABELS), features_dir: str | Path | None = None,
                   progress: bool = False) -> Conversion:
    """One question per task per clip of `split` ('all': every clip), for the labels the clip holds.

    id = clip_id, so the questions of one clip share it and differ by task. With `features_dir`
    (holding CLIP_ID.npy from encode.py) each row also names its features file. A clip with a `source`
    gives its rows `groups` (clip_groups), which evaluate.py also scores on their own.
    """
    clips_file, manifest = Path(clips_file), Path(manifest)
    unknown = [t for t in tasks if t not in CLIP_LABELS]
    if unknown:
        raise ValueError(f"tasks {unknown} cannot come from clips.jsonl; choose from {list(CLIP_LABELS)}")
    if features_dir is not None and not Path(features_dir).is_dir():
        raise LayoutError(f"{features_dir}: features folder not found")
    conv = Conversion()
    for number, clip in enumerate(_progress(read_jsonl(clips_file), "clips", progress), 1):
        if split != "all" and clip.get("split") != split:
            continue
        item = str(clip.get("clip_id", f"{clips_file}:{number}"))
        where = f"{clips_file}:{number}"
        conv.attempt(item, lambda: _clip_rows(clip, where, clips_file, manifest, tasks, features_dir))
    return conv


def clip_groups(clip: dict) -> list[str]:
    """The manifest groups of a corpus clip: "generated" (llark's generator) or "tunes" (make_corpus.py's
    other source is an ABC collection of real melodies, whatever the collection: each holds too few test
    clips to score alone); then "drums" or "no drums" when its instruments are labelled (a drum part marks
    the meter: music without one is where the meter is hardest to hear)."""
    groups = ["generated" if clip["source"] == "generated" else "tunes"]
    instruments = clip.get("labels", {}).get("instruments")
    if isinstance(instruments, list):
        groups.append("drums" if DRUM_KIT_NAME in instruments else "no drums")
    return groups


def _clip_rows(clip: dict, where: str, clips_file: Path, manifest: Path, tasks: Iterable[str],
               features_dir: str | Path | None) -> list[dict[str, Any]]:
    missing = [k for k in ("clip_id", "audio", "start", "end") if k not in clip]
    if missing:
        raise ConversionError(f"{where}: missing field(s) {missing}")
    labels = clip.get("labels", {})
    if (not isinstance(labels, dict) or not isinstance(clip["audio"], str)
            or not all(isinstance(clip[k], (int, float)) for k in ("start", "end"))):
        raise ConversionError(f"{where}: 'labels' must be an object, 'audio' a path and 'start'/'end' numbers")
    audio = resolve_path(clip["audio"], clips_file)
    span = check_span(audio, float(clip["start"]), float(clip["end"]))
    if "source" in clip and not (isinstance(clip["source"], str) and clip["source"]):
        raise ConversionError(f"{where}: 'source' must be a non-empty string, got {clip['source']!r}")
    extra = {"groups": clip_groups(clip)} if "source" in clip else {}
    if features_dir is not None:
        features = Path(features_dir) / f"{clip['clip_id']}.npy"
        if not features.is_file():
            raise ConversionError(f"{features}: features file not found (run preprocessing/encode.py)")
        extra["features"] = relative_path(features, manifest)
    # All of a clip's questions or none: a clip with one bad label is fixed and converted again as a whole.
    return [question_row(clip["clip_id"], task, gold_answer(task, labels[CLIP_LABELS[task]], f"{where} ({task})"),
                         audio, manifest, span, **extra)
            for task in tasks if CLIP_LABELS[task] in labels]


# ---------------------------------------------------------------- GiantSteps key and tempo

def _giantsteps(root: Path, annotations: Path, suffix: str, manifest: Path, task: str, start: float, end: float,
                read_gold: Callable[[str, str], Any], progress: bool) -> Conversion:
    """ROOT/audio/{id}.LOFI.mp3 + ANNOTATIONS/{id}.LOFI{suffix}; an id with only one of the two fails."""
    check_crop(start, end)
    for folder in (root / "audio", annotations):
        if not folder.is_dir():
            raise LayoutError(f"{folder}: folder not found (expected the GiantSteps layout under {root})")
    audio_ids = {p.name[: -len(".LOFI.mp3")] for p in (root / "audio").glob("*.LOFI.mp3")}
    gold_ids = {p.name[: -len(".LOFI" + suffix)] for p in annotations.glob("*.LOFI" + suffix)}
    conv = Conversion()
    for track in _progress(sorted(audio_ids | gold_ids), task, progress):
        audio, note = root / "audio" / f"{track}.LOFI.mp3", annotations / f"{track}.LOFI{suffix}"

        def rows(track=track, audio=audio, note=note) -> list[dict[str, Any]]:
            if not note.is_file():
                raise ConversionError(f"{audio}: no annotation {note}")
            gold = read_gold(note.read_text(errors="replace"), str(note))
            span = crop_window(audio, start, end)  # raises UnreadableAudio naming a missing file
            return [question_row(clip_id(track, *span), task, gold, audio, manifest, span)]
        conv.attempt(track, rows)
    return conv


def giantsteps_key_manifest(root: str | Path, manifest: str | Path, start: float = 30.0, end: float = 55.0,
                            progress: bool = False) -> Conversion:
    """GiantSteps key: ROOT/audio/{id}.LOFI.mp3 and ROOT/annotations/key/{id}.LOFI.key ('Eb minor')."""
    root = Path(root)
    return _giantsteps(root, root / "annotations" / "key", ".key", Path(manifest), "key", start, end,
                       normalise_key, progress)


def giantsteps_tempo_manifest(root: str | Path, manifest: str | Path, start: float = 30.0, end: float = 55.0,
                              v2: bool = False, progress: bool = False) -> Conversion:
    """GiantSteps tempo: ROOT/audio/{id}.LOFI.mp3 and ROOT/annotations[_v2]/tempo/{id}.LOFI.bpm ('128.0')."""
    root = Path(root)
    annotations = root / ("annotations_v2" if v2 else "annotations") / "tempo"
    return _giantsteps(root, annotations, ".bpm", Path(manifest), "tempo", start, end, parse_tempo, progress)


# ---------------------------------------------------------------- GTZAN

def gtzan_manifest(root: str | Path, manifest: str | Path, start: float = 0.0, end: float = CLIP_SECONDS,
                   genres_dir: str = "genres", progress: bool = False) -> Conversion:
    """GTZAN: ROOT/genres/{genre}/{genre}.000NN.wav (or .au); the folder names the gold genre.

    Files of other suffixes (the .mf lists of some copies) are not tracks and are not looked at.
    """
    root, manifest = Path(root), Path(manifest)
    check_crop(start, end)
    genres = root / genres_dir
    if not genres.is_dir():
        raise LayoutError(f"{genres}: folder not found (expected GTZAN's genres/{{genre}}/ folders under {root})")
    files = sorted(p for p in genres.glob("*/*") if p.suffix.lower() in GTZAN_SUFFIXES)
    conv = Conversion()
    for path in _progress(files, "gtzan", progress):
        def rows(path=path) -> list[dict[str, Any]]:
            genre = path.parent.name
            # A file filed under the wrong folder would silently get the wrong gold answer.
            if not re.fullmatch(rf"{re.escape(genre)}\.\d+", path.stem):
                raise ConversionError(f"{path}: name does not match its genre folder ({genre}.NNNNN{path.suffix})")
            span = crop_window(path, start, end)
            gold = gold_answer("genre", genre, str(path))
            return [question_row(clip_id(path.stem, *span), "genre", gold, path, manifest, span)]
        conv.attempt(str(path.relative_to(root)), rows)
    return conv


# ---------------------------------------------------------------- generic CSV

CSV_REQUIRED = ("path", "label")


def csv_manifest(csv_file: str | Path, manifest: str | Path, task: str, start: float = 0.0,
                 end: float = CLIP_SECONDS, progress: bool = False) -> Conversion:
    """A CSV with a header holding `path` and `label`, and optionally `start`, `end`, `question`, `id`
    and `options` (a JSON object {"A": ..., "B": ...}, required for mcq).

    Relative paths are relative to the CSV's folder. A row without `start`/`end` is judged on the
    [start, end) crop given here (its opening when shorter); a row's own span must fit the track.
    Without an `id` column the id is the clip id of the file's stem and span.
    """
    csv_file, manifest = Path(csv_file), Path(manifest)
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {TASKS}")
    check_crop(start, end)
    if not csv_file.is_file():
        raise LayoutError(f"{csv_file}: file not found")
    try:
        with csv_file.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets often write a BOM
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            lines = list(reader)
    except (csv.Error, UnicodeDecodeError) as err:
        raise LayoutError(f"{csv_file}: not a readable UTF-8 CSV ({err})") from None
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise LayoutError(f"{csv_file}: the header lacks column(s) {missing} (has {columns})")
    conv = Conversion()
    for number, line in enumerate(_progress(lines, "csv", progress), 2):  # line 1 is the header
        where = f"{csv_file}:{number}"
        conv.attempt(where, lambda: [_csv_row(line, where, csv_file, manifest, task, start, end)])
    return conv


def _csv_row(line: dict, where: str, csv_file: Path, manifest: Path, task: str, start: float,
             end: float) -> dict[str, Any]:
    if None in line:  # DictReader puts the cells beyond the header under None
        raise ConversionError(f"{where}: more cells than header columns")
    if not (line.get("path") or "").strip():
        raise ConversionError(f"{where}: empty path")
    audio = resolve_path(line["path"].strip(), csv_file)
    own_start, own_end = (line.get(k, "") or "" for k in ("start", "end"))
    if own_start.strip() or own_end.strip():
        first = _seconds(own_start, 0.0, where)
        span = check_span(audio, first, _seconds(own_end, first + CLIP_SECONDS, where))
    else:
        span = crop_window(audio, start, end)
    question = (line.get("question") or "").strip() or None
    if question is None and task not in QUESTIONS:
        raise ConversionError(f"{where}: task {task} has no fixed question; give a 'question' column")
    extra = {}
    if task == "mcq":
        extra["options"] = _options(line.get("options") or "", where)
    gold = gold_answer(task, line["label"] or "", where)
    if task == "mcq" and gold not in extra["options"]:
        raise ConversionError(f"{where}: answer {gold!r} is not one of the options {sorted(extra['options'])}")
    item_id = (line.get("id") or "").strip() or clip_id(audio.stem, *span)
    return question_row(item_id, task, gold, audio, manifest, span, question, **extra)


def _seconds(text: str, default: float, where: str) -> float:
    if not text.strip():
        return default
    try:
        return float(text)
    except ValueError:
        raise ConversionError(f"{where}: {text!r} is not a number of seconds") from None


def _options(text: str, where: str) -> dict[str, str]:
    try:
        options = json.loads(text)
    except json.JSONDecodeError:
        raise ConversionError(f"{where}: options {text!r} is not a JSON object like {{\"A\": \"...\"}}") from None
    if (not isinstance(options, dict) or not options
            or not all(re.fullmatch(r"[A-Z]", k) and isinstance(v, str) for k, v in options.items())):
        raise ConversionError(f"{where}: options must map letters A-Z to texts, got {text!r}")
    return options


# ---------------------------------------------------------------- MIDI files, rendered with a soundfont

MIDI_SUFFIXES = (".mid", ".midi")
STEADY_SHARE = 0.9  # a label holds for a crop when one value of it covers this much of the crop
SAME_TEMPO = 0.01  # tempo events within 1 % of each other are one tempo


def midi_manifest(root: str | Path, manifest: str | Path, soundfont: str | Path, start: float = 0.0,
                  end: float = CLIP_SECONDS, audio_dir: str | Path | None = None, sample_rate: int = 22050,
                  progress: bool = False) -> Conversion:
    """Every MIDI file under `root` rendered with `soundfont` and asked about what the file itself states.

    The [start, end) crop of each file (its opening of that length when the music is shorter) is rendered
    with the soundfont, peak-normalised and written as FLAC to `audio_dir` (default: `audio/` beside the
    manifest), named after the file's path under `root`. Its questions and gold answers come from the file
    (`midi_labels`): the key signature, the time signature, the tempo in beats of that meter (the dotted
    quarter in 6/8, as the corpus labels it) and the instruments that play in the crop. A label the file
    does not state, or that changes within the crop, gives no question; `Conversion.skipped` says which
    and why. A file that cannot be read or rendered, or has no note in the crop, fails and is recorded.
    Rows carry the group "drums" or "no drums", and a file in a subfolder of `root` also the subfolder's name
    (make_score_midi.py files its scores by composer), which evaluate.py scores on its own.
    """
    from llark.corpus.render import RenderError, flac_bytes, peak_normalise, render_midi  # tinysoundfont: the demo's

    root, manifest, soundfont = Path(root), Path(manifest), Path(soundfont)
    check_crop(start, end)
    if not root.is_dir():
        raise LayoutError(f"{root}: folder not found (expected MIDI files, {' or '.join(MIDI_SUFFIXES)}, under it)")
    if not soundfont.is_file():
        raise LayoutError(f"{soundfont}: soundfont file not found")
    files = midi_files(root)
    if not files:
        raise LayoutError(f"{root}: no MIDI files ({' or '.join(MIDI_SUFFIXES)}) under it")
    audio_dir = Path(audio_dir) if audio_dir is not None else manifest.parent / "audio"
    conv = Conversion()
    for path in _progress(files, "midi", progress):
        name = path.relative_to(root).with_suffix("").as_posix().replace("/", "__")

        def rows(path=path, name=name) -> list[dict[str, Any]]:
            midi = read_midi(path)
            span = crop_of_length(path, midi.get_end_time(), start, end, MIN_SECONDS, "music")
            labels, skipped = midi_labels(midi, *span, where=str(path))
            try:
                wave = render_midi(midi, sample_rate, soundfont, duration=span[1])[round(span[0] * sample_rate):]
            except RenderError as err:
                raise ConversionError(f"{path}: {err}") from None
            audio = audio_dir / f"{name}.flac"
            write_bytes_atomic(audio, flac_bytes(peak_normalise(wave), sample_rate))
            folder = path.relative_to(root).parts[:-1]
            groups = list(folder[:1]) + ["drums" if DRUM_KIT_NAME in labels["instruments"] else "no drums"]
            rendered = (0.0, round(len(wave) / sample_rate, 3))
            conv.skipped.extend({"item": str(path), "task": task, "reason": reason} for task, reason in skipped.items())
            return [question_row(clip_id(name, *span), task, gold, audio, manifest, rendered, groups=groups)
                    for task, gold in labels.items()]
        conv.attempt(str(path), rows)
    return conv


def midi_files(root: Path) -> list[Path]:
    """Every .mid/.midi file under `root`, in subfolders too, sorted."""
    return sorted(path for path in root.rglob("*") if path.suffix.lower() in MIDI_SUFFIXES and path.is_file())


def read_midi(path: Path) -> pretty_midi.PrettyMIDI:
    import pretty_midi  # here: only MIDI manifests need it

    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as err:  # mido and pretty_midi raise many kinds (OSError, EOFError, KeyError, ValueError...)
        raise ConversionError(f"{path}: not a readable MIDI file ({type(err).__name__}: {err})") from None


def midi_labels(midi: pretty_midi.PrettyMIDI, start: float, end: float,
                where: str) -> tuple[dict[str, Any], dict[str, str]]:
    """({task: gold answer} for key, tempo, meter and instruments over [start, end) s of `midi`, {task: why it
    has none}). A key, meter or tempo counts when one value of it holds for STEADY_SHARE of the crop (a
    pickup bar's own time signature, a closing ritardando do not); the tempo is in beats of the meter
    (llark.corpus.theory.Meter: the dotted quarter of a compound meter, the half note of 2/2), in quarter
    notes without a time signature. The instruments are the General MIDI names of the programs with a note
    sounding in the crop, in the file's order, then "Drums" for the percussion channel, as the corpus names
    them. Raises ConversionError when no note sounds in the crop."""
    import pretty_midi

    from llark.corpus.theory import TICKS_PER_QUARTER, Meter, program_name  # the corpus's own names and beats

    labels: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    keys = [(k.time, pretty_midi.key_number_to_key_name(k.key_number)) for k in midi.key_signature_changes]
    key = _steady(keys, start, end, lambda a, b: a == b)
    if key is None:
        skipped["key"] = "no key signature" if not keys else "the key signature changes within the crop"
    else:
        labels["key"] = normalise_key(key, f"{where} (key signature)")

    signatures = [(t.time, (t.numerator, t.denominator)) for t in midi.time_signature_changes]
    signature = _steady(signatures, start, end, lambda a, b: a == b)
    if signature is None:
        skipped["meter"] = "no time signature" if not signatures else "the time signature changes within the crop"
    else:
        labels["meter"] = f"{signature[0]}/{signature[1]}"

    times, quarter_bpms = midi.get_tempo_changes()
    quarter_bpm = _steady(list(zip(times, quarter_bpms)), start, end, lambda a, b: abs(a / b - 1) <= SAME_TEMPO)
    if quarter_bpm is None:
        skipped["tempo"] = "the tempo changes within the crop"
    elif signature is None and signatures:
        skipped["tempo"] = "the time signature, whose beat the tempo counts, changes within the crop"
    else:
        beat = Meter(*signature) if signature else Meter(4, 4)
        labels["tempo"] = round(quarter_bpm * TICKS_PER_QUARTER / beat.beat_ticks, 2)

    sounding = [i for i in midi.instruments if any(n.start < end and n.end > start for n in i.notes)]
    if not sounding:
        raise ConversionError(f"{where}: no note sounds in [{start:g}, {end:g}) s")
    names = list(dict.fromkeys(program_name(i.program) for i in sounding if not i.is_drum))
    labels["instruments"] = names + ([DRUM_KIT_NAME] if any(i.is_drum for i in sounding) else [])
    return labels, skipped


def _steady(changes: list[tuple[float, Any]], start: float, end: float, same: Callable[[Any, Any], bool]) -> Any:
    """The value of a step function (time-sorted (time, value) changes) that covers STEADY_SHARE of [start, end),
    or None (no changes at all, or no value that steady). Before its first change a file has its first value."""
    if not changes:
        return None
    changes = sorted(changes, key=lambda change: change[0])
    cover: list[tuple[Any, float]] = []  # (value, seconds of the crop), values merged by `same`
    for index, (time, value) in enumerate(changes):
        until = changes[index + 1][0] if index + 1 < len(changes) else math.inf
        seconds = max(0.0, min(until, end) - max(time if index else -math.inf, start))
        for position, (held, total) in enumerate(cover):
            if same(held, value):
                cover[position] = (held, total + seconds)
                break
        else:
            cover.append((value, seconds))
    value, seconds = max(cover, key=lambda held: held[1])
    return value if seconds >= STEADY_SHARE * (end - start) else None
