"""MIDI files of real compositions, orchestrated afresh: a labelled set of music the corpus generator did not write.

    python preprocessing/make_score_midi.py --out data/scores/midi --limit 60   # 107 scores: 60 chorales, 47 movements
    python preprocessing/make_score_midi.py --out data/train-scores --for-training --limit 100   # none of those 107
    python preprocessing/make_eval_manifest.py midi --root data/scores/midi \
        --soundfont data/soundfonts/FluidR3_GM.sf2 --out data/scores/eval.jsonl
    python evaluate.py --checkpoint runs/demo/checkpoints/step-001200 --manifest data/scores/eval.jsonl \
        --out runs/demo/eval-scores --temperature 0.5 --mbr-samples 16 --exact-number-mbr --head-weight 0.5

The scores are music21's corpus (installed with music21, no download): Bach's chorales and the string
quartets of Haydn, Mozart and Beethoven by default (`--composers`), the works whose MusicXML states their
key with its mode. Each part is given a General MIDI instrument drawn for its register (a soprano line a
flute, oboe, violin...; a bass line a cello, bassoon, tuba...), and the piece one tempo, drawn log-uniformly
in `--tempo-range` beats per minute of its meter's beat (the dotted quarter of 6/8, as the corpus labels
tempi). Both draws are seeded by `--seed` and the file's path, so a file is the same on every run. The key
signature (with its mode) and the time signature are the composer's, written into the MIDI file, where
make_eval_manifest.py's `midi` layout reads every gold answer back. Only each score's opening is written
(the bars of its first 40 s at that tempo), played once as written (repeat signs dropped). A file goes to
OUT/COMPOSER/, so the manifest groups the questions by composer. A score music21 cannot read, or whose key
has no mode, is reported and skipped; the count is printed at the end. Files are written atomically, and a
file already there is kept (a re-run goes on where an interrupted one stopped).

--for-training writes scores for a corpus instead (make_corpus.py --midi): never one of the measured set
(the --limit 60 selection of Bach, Haydn, Mozart and Beethoven), drawn from Bach's other chorales and from
composers the measurement does not hold (Monteverdi's madrigals, the Schumanns, ...), each part's instrument
drawn from the corpus generator's own instrument vocabulary for its register, so training on them teaches
real music's beats and textures, not the measurement's orchestration.

--for-tagger writes scores for the instrument tagger's fit (preprocessing/fit_instrument_tagger.py; README, "The
audio pipeline"): neither measured nor among the demo's training scores (--for-training --limit 240), Bach's 110
other chorales and the Italian trecento's 103 songs and mass movements (207 written: five files state no mode, one
piece is in the corpus twice, as .xml and .mxl), each part with an instrument of the generator's for its register.
Each --seed draws other instruments and tempi for the same scores:

    for s in 1 2 3; do python preprocessing/make_score_midi.py --for-tagger --seed $s --out data/tagscores/seed$s; done

Speed (2 cores, --jobs 2, music21's cache of parsed scores cleared): the 308 of --for-training --limit 240 in
52 s; a long quartet movement takes seconds to parse whole. music21 keeps what it parsed under its temporary
folder, and a second run reads that.
"""

from __future__ import annotations

import argparse
import math
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from llark.jsonl import write_bytes_atomic

DEFAULT_COMPOSERS = ("bach", "haydn", "mozart", "beethoven")
MEASURED_LIMIT = 60  # the demo's real-composition set: --limit 60 of DEFAULT_COMPOSERS (llark.demo --scores)
# (Palestrina's masses are Humdrum files, not MusicXML: not among them.)
TRAINING_COMPOSERS = ("bach", "monteverdi", "schumann_robert", "schumann_clara", "corelli", "handel", "cpebach",
                      "schubert", "verdi", "weber", "chopin", "beach")
DEMO_TRAINING_LIMIT = 240  # llark.demo's TRAIN_SCORES: the demo trains on --for-training --limit 240
# The instrument tagger's scores (--for-tagger): Bach's chorales neither measured nor in the demo's training, and the
# Italian trecento's ballate, madrigals and mass movements (2-4 voices; 103 files in music21's corpus).
TAGGER_COMPOSERS = ("bach", "trecento")
# General MIDI programs (0-based) a part may be given, by the register of its median pitch.
REGISTER_PROGRAMS = {
    "high": (73, 68, 40, 71, 56, 0, 19, 72),   # flute, oboe, violin, clarinet, trumpet, piano, organ, piccolo
    "middle": (71, 40, 41, 60, 65, 0, 19, 24),  # clarinet, violin, viola, horn, alto sax, piano, organ, guitar
    "low": (41, 42, 70, 57, 60, 0, 19, 66),     # viola, cello, bassoon, trombone, horn, piano, organ, tenor sax
    "bass": (42, 43, 70, 58, 32, 0, 19, 57),    # cello, contrabass, bassoon, tuba, acoustic bass, piano, organ, trombone
}
REGISTER_FLOORS = ((67, "high"), (57, "middle"), (48, "low"), (0, "bass"))  # median MIDI pitch -> register


def corpus_pools() -> dict[str, tuple[int, ...]]:
    """The generator's instrument vocabulary (llark/corpus/generate.py STYLES) by register: its acoustic melody
    instruments on top, its harmony instruments in the middle, its bass instruments at the bottom."""
    from llark.corpus.generate import STYLES

    melody = sorted({p for style in STYLES for p in style.melody if p < 80})  # no synth leads on a chorale line
    harmony = sorted({p for style in STYLES for p in style.harmony if p < 88})  # nor pads
    bass = sorted({p for style in STYLES for p in style.bass})
    return {"high": tuple(melody), "middle": tuple(sorted(set(melody) | set(harmony))),
            "low": tuple(sorted(set(harmony) | {42, 57, 58, 70})), "bass": tuple(bass)}


def training_scores(composers: list[str], limit: int) -> list[Path]:
    """Scores of `composers` (at most `limit` of each, 0: all) that the measured set does not hold."""
    return scores_outside(composers, limit, set(list_scores(list(DEFAULT_COMPOSERS), MEASURED_LIMIT)))


def tagger_scores(composers: list[str], limit: int) -> list[Path]:
    """Scores of `composers` (at most `limit` of each, 0: all) that neither the measured set nor the demo's training
    scores hold: the tagger's fit must not know the pieces the LM learns from or is measured on."""
    taken = set(list_scores(list(DEFAULT_COMPOSERS), MEASURED_LIMIT)) | \
        set(training_scores(list(TRAINING_COMPOSERS), DEMO_TRAINING_LIMIT))
    return scores_outside(composers, limit, taken)


def scores_outside(composers: list[str], limit: int, taken: set[Path]) -> list[Path]:
    """At most `limit` (0: all) of each composer's scores that `taken` does not hold, evenly spaced through them."""
    return [path for paths in scores_by_composer(composers).values()
            for path in evenly([p for p in paths if p not in taken], limit)]


def evenly(paths: list[Path], limit: int) -> list[Path]:
    """At most `limit` of `paths` (0: all), evenly spaced through them."""
    return [paths[int(k * len(paths) / limit)] for k in range(limit)] if limit and len(paths) > limit else paths


def register_of(median_pitch: float) -> str:
    return next(name for floor, name in REGISTER_FLOORS if median_pitch >= floor)


def list_scores(composers: list[str], limit: int = 0) -> list[Path]:
    """The corpus's MusicXML files of these composers (bach: its chorales, the files named bwv*); with `limit`, at
    most that many of each composer, evenly spaced through the composer's sorted list."""
    return [path for paths in scores_by_composer(composers).values() for path in evenly(paths, limit)]


def scores_by_composer(composers: list[str]) -> dict[str, list[Path]]:
    """{composer: its MusicXML files in music21's corpus, sorted}, in the order given (one scan of the corpus)."""
    from music21 import corpus

    by_composer: dict[str, list[Path]] = {composer: [] for composer in composers}
    for path in sorted(Path(p) for p in corpus.getCorePaths()):
        folder = path.as_posix().split("/corpus/")[-1].split("/")[0]
        if folder in by_composer and path.suffix in (".mxl", ".xml", ".musicxml"):
            if folder != "bach" or path.name.startswith("bwv"):
                by_composer[folder].append(path)
    return by_composer


def orchestrate(path: Path, seed: int, tempo_range: tuple[float, float], seconds: float = 40.0,
                pools: dict[str, tuple[int, ...]] = REGISTER_PROGRAMS) -> tuple[bytes, dict] | str:
    """The opening of the score at `path` (its bars that last `seconds` at the drawn tempo) as MIDI bytes, with
    drawn instruments (each part's from `pools`, by its register) and tempo, and what was drawn; or why not."""
    from music21 import bar, converter, instrument, key, meter, midi, repeat, tempo

    try:
        score = converter.parse(str(path))
    except Exception as err:  # music21 raises many kinds on malformed files
        return f"{path}: music21 cannot read it ({type(err).__name__}: {err})"
    keys = list(score.recurse().getElementsByClass(key.KeySignature))
    if not keys or not isinstance(keys[0], key.Key):
        return f"{path}: its key signature has no mode, so its key is not stated"
    signatures = list(score.recurse().getElementsByClass(meter.TimeSignature))
    if not signatures:
        return f"{path}: no time signature"
    rng = np.random.default_rng([seed, zlib.crc32(path.as_posix().split("/corpus/")[-1].encode())])

    from llark.corpus.theory import TICKS_PER_QUARTER, Meter

    beat_bpm = float(np.exp(rng.uniform(math.log(tempo_range[0]), math.log(tempo_range[1]))))
    beat = Meter(signatures[0].numerator, signatures[0].denominator)
    quarter_bpm = round(beat_bpm * beat.beat_ticks / TICKS_PER_QUARTER, 2)
    # Only the opening is rendered and asked about: writing a long movement whole takes minutes.
    bars = math.ceil(seconds * quarter_bpm / 60.0 / signatures[0].barDuration.quarterLength) + 1
    try:
        opening = score.measures(0, bars)
    except Exception as err:
        return f"{path}: music21 cannot take its first {bars} bars ({type(err).__name__}: {err})"
    for old in list(opening.recurse().getElementsByClass((tempo.MetronomeMark, instrument.Instrument,
                                                          repeat.RepeatExpression))):
        old.activeSite.remove(old)
    for measure in opening.recurse().getElementsByClass("Measure"):  # the opening is played once, as written:
        for side in ("leftBarline", "rightBarline"):               # a repeat cut by the slice cannot be expanded
            if isinstance(getattr(measure, side), bar.Repeat):
                setattr(measure, side, None)
    programs = []
    for part in opening.parts:
        pitches = [p.midi for n in part.recurse().notes for p in n.pitches]
        first_bar = part.getElementsByClass("Measure").first()
        if not pitches or first_bar is None:
            continue
        program = int(rng.choice(pools[register_of(float(np.median(pitches)))]))
        first_bar.insert(0, instrument.instrumentFromMidiProgram(program))
        if not programs:  # the first part that plays carries the score's one tempo
            first_bar.insert(0, tempo.MetronomeMark(number=quarter_bpm, referent=1.0))
        programs.append(program)
    if not programs:
        return f"{path}: no notes in its first {bars} bars"
    try:
        data = midi.translate.streamToMidiFile(opening).writestr()
    except Exception as err:  # badly formed repeats, unusual notation music21 cannot play
        return f"{path}: music21 cannot write it as MIDI ({type(err).__name__}: {err})"
    return data, {"quarter_bpm": quarter_bpm, "programs": programs, "key": str(keys[0])}


def build(job: tuple[Path, Path, int, tuple[float, float], dict[str, tuple[int, ...]]]) -> str:
    path, out, seed, tempo_range, pools = job
    composer, *rest = path.as_posix().split("/corpus/")[-1].rsplit(".", 1)[0].split("/")
    target = out / composer / ("__".join(rest) + ".mid")  # a folder per composer: the manifest's groups
    if target.is_file():
        return "kept"
    result = orchestrate(path, seed, tempo_range, pools=pools)
    if isinstance(result, str):
        return result
    write_bytes_atomic(target, result[0])
    return "written"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for the .mid files")
    parser.add_argument("--composers", default="", help="music21 corpus folders, comma list (default: "
                        f"{','.join(DEFAULT_COMPOSERS)}; with --for-training {','.join(TRAINING_COMPOSERS)}; "
                        f"with --for-tagger {','.join(TAGGER_COMPOSERS)})")
    purpose = parser.add_mutually_exclusive_group()
    purpose.add_argument("--for-training", action="store_true",
                         help="scores for a corpus: none of the measured set, the generator's instruments (above)")
    purpose.add_argument("--for-tagger", action="store_true",
                         help="scores for the instrument tagger's fit: none of the measured set nor of the demo's "
                              "training scores, the generator's instruments (above)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many scores of each composer (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tempo-range", type=float, nargs=2, default=(60.0, 150.0), metavar=("LOW", "HIGH"),
                        help="beats per minute of the meter's beat (default 60 150)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    if not 0 < args.tempo_range[0] < args.tempo_range[1]:
        parser.error(f"--tempo-range {args.tempo_range}: give 0 < LOW < HIGH")

    if args.for_training:
        default, choose, pools = TRAINING_COMPOSERS, training_scores, corpus_pools()
    elif args.for_tagger:
        default, choose, pools = TAGGER_COMPOSERS, tagger_scores, corpus_pools()
    else:
        default, choose, pools = DEFAULT_COMPOSERS, list_scores, REGISTER_PROGRAMS
    composers = [c.strip() for c in args.composers.split(",") if c.strip()] or list(default)
    scores = choose(composers, args.limit)
    if not scores:
        print(f"[scores] no scores of {args.composers} in music21's corpus", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(path, out, args.seed, tuple(args.tempo_range), pools) for path in scores]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(build, jobs, chunksize=4))
    else:
        results = [build(job) for job in jobs]
    failures = [r for r in results if r not in ("kept", "written")]
    for failure in failures:
        print(f"[scores] skipped: {failure}", file=sys.stderr)
    print(f"[scores] {results.count('written')} written, {results.count('kept')} already there, "
          f"{len(failures)} skipped; in {out}", file=sys.stderr)
    return 0 if len(failures) < len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
