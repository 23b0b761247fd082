"""Build the labelled music corpus: generated pieces and real ABC tunes, rendered with a GM soundfont.

    python preprocessing/make_corpus.py --out data/corpus --generated 400 --tunes 200 --seed 0
    python preprocessing/make_corpus.py --out data/corpus-aug --generated 400 --tunes 200 --seed 0 --augment
    python preprocessing/make_corpus.py --out data/corpus-44k --sample-rate 44100 --soundfont /path/to/FluidR3_GM.sf2
    python preprocessing/make_corpus.py --out data/essen --generated 0 --tunes 300 --enable-essen  # non-commercial only
    python preprocessing/make_corpus.py --out data/demo-fluid --generated 1800 --tunes 300 --augment --splits test \
        --soundfont data/soundfonts/FluidR3_GM.sf2       # the demo's test pieces, other instrument samples
    python preprocessing/make_corpus.py --out data/corpus-2sf --generated 400 --tunes 200 --augment \
        --train-soundfont data/soundfonts/sf_GMbank.sf2  # train pieces in either soundfont; val, test in TimGM6mb
    python preprocessing/make_corpus.py --out data/corpus-fs --generated 400 --tunes 200 --augment --formant-shift 3
                                                         # each track's timbres as if from other samples
    python preprocessing/make_corpus.py --out data/mine --generated 400 --tunes 200 --augment --midi my-midi/
                                                         # and every MIDI file under my-midi/ (labels: what it states)

Writes {out}/audio/{track_id}.flac, {out}/midi/{track_id}.mid, {out}/tracks.jsonl (one line per track,
docs/data-formats.md), {out}/failures.jsonl (each tune that could not be used and each render error,
with the reason) and {out}/corpus.json (the settings). The same seed gives the same tracks, labels and
audio bytes. Re-running skips tracks whose audio and line already exist, so an interrupted run
resumes; a run with other settings into the same --out is refused (its audio would not match).

Generated pieces are gen-00000, gen-00001, ...: gen-00000..00023, gen-00024..00047, ... each hold every
key once, and meters (blocks of 4) and 15-BPM tempo bands over 50-200 (blocks of 10) are dealt the same way. Tunes come from music21's corpus (O'Neill's 1850,
Ryan's Mammoth, Aird's Airs; Essen only with --enable-essen), the collections taking turns in a
seeded order; tunes whose key (a mode), meter or bars cannot be labelled exactly are skipped and
recorded. Splits are by piece: a stable hash of the track id (of the title, for tunes, so one tune
printed in two collections stays in one split) gives 80/10/10 train/val/test. --splits renders the
pieces of some splits only (the same bytes a full run gives them).

Every track gets a fresh synthesizer, so it renders the same whatever was rendered before it (a reused
one, even after tinysoundfont's reset, did not: released voices leave state behind). A large soundfont
therefore pays its load on every track: 0.01 s for TimGM6mb, 0.2 s for FluidR3_GM (141 MB) and 1.8 s
for MuseScore_General_Lite.sf3 (its samples are Ogg-compressed), against about 0.1 s of rendering.

--midi DIR adds every .mid/.midi file under DIR as a track (midi-<path under DIR>): its first --seconds
rendered and augmented as the rest, its labels what the file states (key signature, time signature, tempo in
beats of that meter, the instruments playing; llark.evaluation.converters.midi_labels: a label the file does
not state, or that changes in those seconds, is left out), its split a hash of its track id, or --midi-split
(training material whose held-out counterpart is measured apart, as the demo's scores are). Real
compositions so added (preprocessing/make_score_midi.py writes them from music21's corpus) teach what the
generator cannot: where real scores put the beat, textures of independent lines (docs/demo-experiments.md,
"Real compositions in training"). A file that cannot be read, or has less than 5 s of music, is recorded
as a failure.

--train-soundfont (repeatable) renders each train-split piece with one of --soundfont and these, drawn by
its track id: the model hears every instrument in more than one set of samples, and learns less of one
soundfont's sound. Val and test pieces keep --soundfont, byte for byte as without the option, so the
held-out splits measure the same audio; a piece rendered with the primary soundfont is the same bytes
either way. Each line's "render" names the soundfont its audio came from.

--formant-shift N renders each track with its instruments' formants shifted by a whole number of semitones drawn
by its track id from -N..N (llark.corpus.render, `formant_semitones`): the notes, key and beats are as written,
the spectral envelopes and envelope times are not those of the soundfont's own samples, as if another soundfont
had played. Each line's "render" holds the shift ("formant_semitones"). The instrument tagger's fit corpus uses
3 (README, "The instrument tags"): its tagger read the demo's test pieces in FluidR3_GM better than one fitted on
the same corpus rendered in a second and a third soundfont.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import multiprocessing
import re
import sys
import time
import zlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from llark.corpus.abc_tunes import COLLECTIONS, DEFAULT_COLLECTIONS, TuneSource, choose_tunes, list_tunes, tune_piece
from llark.corpus.augment import augment
from llark.corpus.generate import GENERATOR_VERSION, Piece, generate_piece
from llark.corpus.render import DEFAULT_SOUNDFONT, flac_bytes, peak_normalise, render_midi
from llark.corpus.splits import SPLITS, split_of
from llark.evaluation.converters import MIN_SECONDS, midi_files, midi_labels, read_midi
from llark.jsonl import write_bytes_atomic

GENERATED_LICENCE = "CC0 (generated by llark)"
TAIL_SECONDS = 1.0  # release after the last bar, so notes decay instead of being cut


@dataclass(frozen=True)
class Settings:
    """What decides the audio and labels: a second run into the same folder must match these."""

    seed: int = 0
    sample_rate: int = 22050
    seconds: float = 30.0
    augment: bool = False
    soundfont: str = str(DEFAULT_SOUNDFONT)
    train_soundfonts: tuple[str, ...] = ()  # more soundfonts a train-split piece may be rendered with
    formant_shift: int = 0  # each track's formants shifted by a whole number of semitones drawn from -N..N
    enable_essen: bool = False
    generator: str = GENERATOR_VERSION


@dataclass(frozen=True)
class MidiSource:
    """A MIDI file under the --midi folder `root`; `split` its split when --midi-split names one."""

    path: Path
    root: Path
    split: str = ""

    @property
    def name(self) -> str:
        return self.path.relative_to(self.root).with_suffix("").as_posix()

    @property
    def track_id(self) -> str:
        return "midi-" + re.sub(r"[^A-Za-z0-9._-]+", "_", self.name.replace("/", "__"))

    @property
    def collection(self) -> str:  # what a track row and a failure row name as its source, as a tune's collection
        return "midi"

    @property
    def where(self) -> str:
        return str(self.path)


def list_midi(root: Path, split: str = "") -> list[MidiSource]:
    if not root.is_dir():
        raise SystemExit(f"--midi {root}: folder not found")
    return [MidiSource(path, root, split) for path in midi_files(root)]


def split_for(track_id: str, item: int | TuneSource | MidiSource, piece: Piece | None) -> str:
    """A track's split: --midi-split for a MIDI file given one, else the hash of its id (a tune's: of its title)."""
    if isinstance(item, MidiSource) and item.split:
        return item.split
    return split_of(track_id, piece.title if piece else "")


def midi_piece(source: MidiSource, seconds: float) -> Piece:
    """The file's first `seconds` (its notes cut there) with the labels it states over them."""
    midi = read_midi(source.path)
    end = min(seconds, midi.get_end_time())
    if end < MIN_SECONDS:
        raise ValueError(f"{source.path}: {end:.1f} s of music, fewer than {MIN_SECONDS:g} s")
    cut = copy.deepcopy(midi)
    for instrument in cut.instruments:
        instrument.notes = [note for note in instrument.notes if note.start < end]
        for note in instrument.notes:
            note.end = min(note.end, end)
        instrument.pitch_bends = [bend for bend in instrument.pitch_bends if bend.time < end]
        instrument.control_changes = [change for change in instrument.control_changes if change.time < end]
    labels, _ = midi_labels(cut, 0.0, end, str(source.path))
    return Piece(cut, labels, end)


def soundfont_for(track_id: str, split: str, settings: Settings) -> str:
    """The soundfont a track is rendered with: --soundfont, or for a train-split piece one of it and
    --train-soundfont's, drawn with a generator of its own (the other draws of a track do not move)."""
    if split != "train" or not settings.train_soundfonts:
        return settings.soundfont
    choices = (settings.soundfont, *settings.train_soundfonts)
    rng = np.random.default_rng([settings.seed, zlib.crc32(track_id.encode()), 13])
    return choices[int(rng.integers(len(choices)))]


def formant_for(track_id: str, settings: Settings) -> int:
    """The track's formant shift in semitones, uniform over -N..N for --formant-shift N (0 without it), drawn with a
    generator of its own, so the other draws of a track do not move."""
    if not settings.formant_shift:
        return 0
    rng = np.random.default_rng([settings.seed, zlib.crc32(track_id.encode()), 13])
    return int(rng.integers(-settings.formant_shift, settings.formant_shift + 1))


def track_row(track_id: str, split: str, piece: Piece, source: TuneSource | MidiSource | None, settings: Settings,
              seconds: float, applied: dict | None, soundfont: str, formant_semitones: int = 0) -> dict[str, Any]:
    if source is None:
        origin, licence = "generated", GENERATED_LICENCE
        provenance = f"{GENERATOR_VERSION}, seed {settings.seed}, piece {int(track_id.split('-')[1])}"
    elif isinstance(source, MidiSource):
        origin, licence, provenance = "midi", "as its file's", f"MIDI file {source.path}"
    else:
        origin, licence = source.collection, COLLECTIONS[source.collection][1]
        provenance = f"{COLLECTIONS[source.collection][2]}: {source.where}" + (f' "{piece.title}"' if piece.title else "")
    row = {"track_id": track_id, "audio": f"audio/{track_id}.flac", "midi": f"midi/{track_id}.mid",
           "split": split, "source": origin, "licence": licence, "provenance": provenance,
           "duration": round(seconds, 6), "sample_rate": settings.sample_rate, "labels": piece.labels,
           "render": {"soundfont": Path(soundfont).name}}
    if settings.formant_shift:
        row["render"]["formant_semitones"] = formant_semitones
    if applied is not None:
        row["augment"] = applied
    return row


def build_track(task: tuple[int | TuneSource | MidiSource, Piece | None, Settings]) -> dict[str, Any]:
    """One track: piece (unless given), MIDI, audio. Returns {row, flac, midi} or {failure}; never raises."""
    item, piece, settings = task
    source = item if isinstance(item, (TuneSource, MidiSource)) else None
    track_id = source.track_id if source else f"gen-{item:05d}"
    stage = "piece"
    try:
        if piece is None and isinstance(source, MidiSource):
            piece = midi_piece(source, settings.seconds)
        elif piece is None:
            piece = tune_piece(source, settings.seed, settings.seconds) if source else \
                generate_piece(item, settings.seed, settings.seconds)
        stage = "render"
        split = split_for(track_id, item, piece)
        soundfont = soundfont_for(track_id, split, settings)
        rng = np.random.default_rng([settings.seed, zlib.crc32(track_id.encode()), 11])
        tuning = float(rng.uniform(-15, 15)) if settings.augment else 0.0  # A4 = 436..444 Hz: the key is unchanged
        formant = formant_for(track_id, settings)
        wave = peak_normalise(render_midi(piece.midi, settings.sample_rate, soundfont, tail=TAIL_SECONDS,
                                          tuning_cents=tuning, formant_semitones=formant))
        applied = None
        if settings.augment:
            wave, applied = augment(wave, settings.sample_rate, rng)
            applied["tuning_cents"] = round(tuning, 2)
        midi = io.BytesIO()
        piece.midi.write(midi)
        row = track_row(track_id, split, piece, source, settings, wave.size / settings.sample_rate, applied, soundfont,
                        formant)
        return {"row": row, "flac": flac_bytes(wave, settings.sample_rate), "midi": midi.getvalue()}
    except Exception as err:  # a batch job: recorded with its reason, and the run goes on
        return {"failure": failure_row(track_id, source, stage, f"{type(err).__name__}: {err}")}


def failure_row(track_id: str, source: TuneSource | MidiSource | None, stage: str, reason: str) -> dict[str, str]:
    return {"track_id": track_id, "source": source.collection if source else "generated",
            "where": source.where if source else track_id, "stage": stage, "reason": reason}


def write_jsonl(path: Path, rows) -> None:
    write_bytes_atomic(path, "".join(json.dumps(row) + "\n" for row in rows).encode())


def read_rows(path: Path) -> dict[str, dict]:
    rows = {}
    if path.is_file():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                    rows[row["track_id"]] = row
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise SystemExit(f"{path}:{number}: not a track line ({err}); remove the file to rebuild") from None
    return rows


def fingerprint(settings: Settings) -> dict[str, Any]:
    """The settings as recorded in corpus.json; soundfonts by name and content, not by path. Without
    --train-soundfont or --formant-shift the record has no such key, as before the options existed (older folders
    still match)."""
    record = asdict(settings)
    record["soundfont"] = soundfont_fingerprint(Path(settings.soundfont))
    if settings.train_soundfonts:
        record["train_soundfonts"] = [soundfont_fingerprint(Path(s)) for s in settings.train_soundfonts]
    else:
        del record["train_soundfonts"]
    if not settings.formant_shift:
        del record["formant_shift"]
    return record


def soundfont_fingerprint(soundfont: Path) -> str:
    return f"{soundfont.name} sha256:{hashlib.sha256(soundfont.read_bytes()).hexdigest()[:16]}"


def check_settings(out: Path, settings: Settings) -> None:
    path = out / "corpus.json"
    record = fingerprint(settings)
    if path.is_file():
        before = json.loads(path.read_text())
        changed = {k: (before.get(k), v) for k, v in record.items() if before.get(k) != v}
        if changed:
            raise SystemExit(f"{path}: this folder was built with other settings {changed} (old, new); "
                             "use another --out")
    write_bytes_atomic(path, (json.dumps(record, indent=2) + "\n").encode())


def build_corpus(out: str | Path, generated: int, tunes: int, settings: Settings, workers: int = 1,
                 sources: list[TuneSource] | None = None, progress: bool = True,
                 splits: tuple[str, ...] = (), midi: list[MidiSource] = ()) -> dict[str, Any]:
    """Render the corpus into `out` and return the run's summary. `sources`: the tune candidates
    (default: music21's collections, Essen only when settings.enable_essen). `splits`: render only the
    pieces of these splits (empty: all); tracks of other splits already rendered into `out` are kept.
    `midi`: MIDI files to add as tracks (`list_midi`)."""
    out = Path(out)
    for sub in ("audio", "midi"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    check_settings(out, settings)
    existing = read_rows(out / "tracks.jsonl")
    finished = {tid for tid, row in existing.items() if (out / row["audio"]).is_file()}
    started = time.perf_counter()

    plan: list[tuple[str, int | TuneSource, Piece | None]] = [(f"gen-{i:05d}", i, None) for i in range(generated)]
    failures: list[dict] = []
    if tunes > 0:
        if sources is None:
            collections = DEFAULT_COLLECTIONS + (("essenFolksong",) if settings.enable_essen else ())
            sources = list_tunes(collections)
        chosen, rejected = choose_tunes(sources, tunes, settings.seed, settings.seconds, finished, progress)
        plan += [(source.track_id, source, piece) for source, piece in chosen]
        failures += [failure_row(source.track_id, source, "piece", reason) for source, reason in rejected]
    plan += [(source.track_id, source, None) for source in midi]

    if splits:  # known before rendering: a generated piece's split from its id, a tune's from its title
        plan = [(track_id, item, piece) for track_id, item, piece in plan
                if track_id in finished or split_for(track_id, item, piece) in splits]
    todo = [(item, piece, settings) for track_id, item, piece in plan if track_id not in finished]
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 and todo else None
    results = pool.imap(build_track, todo) if pool else map(build_track, todo)
    rows: dict[str, dict] = {}
    kept = rendered = 0
    try:
        for track_id, _, _ in tqdm(plan, desc="rendering", unit="track", disable=not progress):
            if track_id in finished:
                rows[track_id], kept = existing[track_id], kept + 1
                continue
            result = next(results)
            if "failure" in result:
                failures.append(result["failure"])
                continue
            row = result["row"]
            write_bytes_atomic(out / row["midi"], result["midi"])
            write_bytes_atomic(out / row["audio"], result["flac"])
            rows[track_id], rendered = row, rendered + 1
            if rendered % 50 == 0:  # finished lines are kept safe against a crash mid-run
                write_jsonl(out / "tracks.jsonl", {**existing, **rows}.values())
    finally:
        if pool:
            pool.terminate()
    elapsed = time.perf_counter() - started
    write_jsonl(out / "tracks.jsonl", rows.values())
    write_jsonl(out / "failures.jsonl", failures)
    summary = {"tracks": len(rows), "rendered": rendered, "kept": kept, "failures": len(failures),
               "seconds": round(elapsed, 2), "tracks_per_second": round(rendered / max(elapsed, 1e-9), 2),
               "splits": dict(Counter(r["split"] for r in rows.values())),
               "sources": dict(Counter(r["source"] for r in rows.values()))}
    got_tunes = sum(1 for _, item, _ in plan if isinstance(item, TuneSource))
    if got_tunes < tunes:
        summary["warning"] = f"only {got_tunes} usable tunes among {len(sources or [])} candidates"
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder (audio/, midi/, tracks.jsonl, failures.jsonl)")
    parser.add_argument("--generated", type=int, default=400, help="generated pieces")
    parser.add_argument("--tunes", type=int, default=200, help="tunes from music21's ABC collections")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--seconds", type=float, default=30.0, help="target track length (whole bars up to it)")
    parser.add_argument("--augment", action="store_true", help="seeded EQ, reverb, noise, gain and a slight detune")
    parser.add_argument("--enable-essen", action="store_true",
                        help="also draw tunes from the Essen collection (non-commercial research use only)")
    parser.add_argument("--soundfont", default=str(DEFAULT_SOUNDFONT), help="General MIDI .sf2 (default: TimGM6mb)")
    parser.add_argument("--train-soundfont", action="append", default=[], metavar="SF2",
                        help="another General MIDI .sf2 a train-split piece may be rendered with, drawn per piece "
                        "among it and --soundfont (repeatable; val and test keep --soundfont)")
    parser.add_argument("--formant-shift", type=int, default=0, metavar="N",
                        help="shift each track's formants by a whole number of semitones drawn from -N..N, its pitches "
                        "and times as written (see above; 0: none)")
    parser.add_argument("--midi", default="", metavar="DIR",
                        help="also every MIDI file under DIR, labelled by what it states (see above)")
    parser.add_argument("--midi-split", default="", choices=("", "train", "val", "test"),
                        help="put every --midi file in this split (default: by a hash of its track id)")
    parser.add_argument("--workers", type=int, default=1, help="processes (output is identical for any number)")
    parser.add_argument("--splits", default="", help="render only these splits, e.g. test or val,test (default: all)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    splits = tuple(s for s in args.splits.split(",") if s)
    names = [name for name, _ in SPLITS]
    if not set(splits) <= set(names):
        parser.error(f"--splits {args.splits}: each must be one of {', '.join(names)}")
    if args.generated < 0 or args.tunes < 0 or args.seconds <= 0 or args.sample_rate <= 0:
        parser.error("--generated/--tunes must be >= 0, --seconds and --sample-rate > 0")
    if not 0 <= args.formant_shift <= 12:
        parser.error(f"--formant-shift {args.formant_shift}: must be 0-12 semitones")
    for flag, path in [("--soundfont", args.soundfont), *(("--train-soundfont", s) for s in args.train_soundfont)]:
        if not Path(path).is_file():
            parser.error(f"{flag} {path}: file not found")

    settings = Settings(seed=args.seed, sample_rate=args.sample_rate, seconds=args.seconds, augment=args.augment,
                        soundfont=str(Path(args.soundfont).resolve()),
                        train_soundfonts=tuple(str(Path(s).resolve()) for s in args.train_soundfont),
                        formant_shift=args.formant_shift, enable_essen=args.enable_essen)
    midi = list_midi(Path(args.midi), args.midi_split) if args.midi else []
    summary = build_corpus(args.out, args.generated, args.tunes, settings, workers=args.workers,
                           progress=not args.no_progress, splits=splits, midi=midi)
    print(json.dumps(summary), file=sys.stderr)
    if summary["failures"]:
        print(f"{summary['failures']} tracks failed or were skipped; reasons in {Path(args.out) / 'failures.jsonl'}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
